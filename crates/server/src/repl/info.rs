//! INFO replication and ROLE, as Redis 7.0 prints them for a master.

use super::State;
use crate::state::Inner;
use redsnap_engine::Reply;
use std::fmt::Write;

fn state_name(s: State) -> &'static str {
    match s {
        State::WaitStart | State::Transfer => "wait_bgsave",
        State::WaitAck | State::Online => "online",
    }
}

/// The `# Replication` section (Redis's `genRedisInfoString`).
pub(crate) fn info_section(inner: &Inner) -> String {
    let r = &inner.repl;
    let (connected, offset) = super::replicas_and_offset(inner);
    let mut s = if r.link.is_some() {
        let mut s = String::from("# Replication\r\nrole:slave\r\n");
        super::replica::info_fields(inner, &mut s);
        s
    } else {
        String::from("# Replication\r\nrole:master\r\n")
    };
    let _ = write!(s, "connected_slaves:{connected}\r\n");
    if r.conf.min_to_write > 0 && r.conf.max_lag > 0 {
        let good = r
            .replicas
            .iter()
            .filter(|x| {
                x.state == State::Online && x.ack_time.elapsed().as_secs() <= r.conf.max_lag
            })
            .count();
        let _ = write!(s, "min_slaves_good_slaves:{good}\r\n");
    }
    for (i, x) in r.replicas.iter().enumerate() {
        let lag = if x.syncing() {
            0
        } else {
            x.ack_time.elapsed().as_secs()
        };
        let _ = write!(
            s,
            "slave{i}:ip={},port={},state={},offset={},lag={lag}\r\n",
            x.ip(),
            x.hs.listening_port,
            state_name(x.state),
            x.ack_off
        );
    }
    let (size, first, histlen) = match &r.backlog {
        Some(b) => (b.size(), b.first(), b.histlen()),
        None => (r.conf.backlog_size.max(super::backlog::MIN_SIZE), 0, 0),
    };
    let _ = write!(
        s,
        "master_failover_state:no-failover\r\nmaster_replid:{}\r\nmaster_replid2:{}\r\nmaster_repl_offset:{}\r\nsecond_repl_offset:{}\r\nrepl_backlog_active:{}\r\nrepl_backlog_size:{size}\r\nrepl_backlog_first_byte_offset:{first}\r\nrepl_backlog_histlen:{histlen}\r\n",
        r.replid,
        r.replid2,
        offset,
        r.second_offset,
        u8::from(r.backlog.is_some()),
    );
    s
}

/// ROLE: `["master", offset, [[ip, port, acknowledged offset], ...]]` for the
/// replicas that are online.
pub(crate) fn role(inner: &Inner) -> Reply {
    if let Some(r) = super::replica::role(inner) {
        return r;
    }
    let r = &inner.repl;
    let replicas = r
        .replicas
        .iter()
        .filter(|x| !x.syncing())
        .map(|x| {
            Reply::Array(vec![
                Reply::bulk_str(&x.ip()),
                Reply::bulk_str(&x.hs.listening_port.to_string()),
                Reply::bulk_str(&x.ack_off.to_string()),
            ])
        })
        .collect();
    Reply::Array(vec![
        Reply::bulk_str("master"),
        Reply::Int(r.offset as i64),
        Reply::Array(replicas),
    ])
}
