//! CLIENT and its subcommands (ID, INFO, LIST, KILL, SETNAME, GETNAME, SETINFO,
//! PAUSE, UNPAUSE, NO-EVICT, NO-TOUCH, REPLY, TRACKING, GETREDIR, UNBLOCK, HELP).

use super::Handler;
use crate::conn::{Conn, Step};
use crate::state::{ConnMsg, Inner};
use bytes::Bytes;
use redsnap_engine::cmd::is;
use redsnap_engine::table::CommandSpec;
use redsnap_engine::Reply;
use std::time::Duration;

pub(crate) const HANDLERS: &[(&str, Handler)] = &[("client", client_cmd)];

fn client_cmd(conn: &mut Conn, inner: &mut Inner, _: &'static CommandSpec, argv: &[Bytes]) -> Step {
    client(conn, inner, argv)
}

/// Checks a client name as CLIENT SETNAME does.
pub(crate) fn valid_client_name(n: &[u8]) -> Result<(), Reply> {
    if n.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(Reply::err(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(())
}

fn client_line(inner: &Inner, c: &crate::state::ClientInfo) -> String {
    let now = std::time::Instant::now();
    // Redis's order: O (monitor), S (replica), P (pub/sub), x (MULTI), b (blocked);
    // N for none.
    let mut flags = String::new();
    if c.monitor {
        flags.push('O');
    }
    if inner.repl.is_replica(c.id) {
        flags.push('S');
    }
    if c.sub + c.psub > 0 {
        flags.push('P');
    }
    if c.multi >= 0 {
        flags.push('x');
    }
    if inner.blocked.contains_key(&c.id) {
        flags.push('b');
    }
    if flags.is_empty() {
        flags.push('N');
    }
    format!(
        "id={} addr={} laddr={} fd=8 name={} age={} idle={} flags={} db={} sub={} psub={} ssub=0 multi={} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=16384 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
        c.id,
        c.addr,
        c.laddr,
        String::from_utf8_lossy(&c.name),
        now.duration_since(c.created).as_secs(),
        now.duration_since(c.last_active).as_secs(),
        flags,
        c.db,
        c.sub,
        c.psub,
        c.multi,
        c.last_cmd,
        c.resp,
        c.lib_name,
        c.lib_ver,
    )
}

fn client(conn: &mut Conn, inner: &mut Inner, argv: &[Bytes]) -> Step {
    let sub = &argv[1];
    let text = |s: String| {
        if conn.resp3 {
            Reply::Verbatim("txt", Bytes::from(s))
        } else {
            Reply::Bulk(Bytes::from(s))
        }
    };
    if is(sub, "id") {
        Reply::Int(conn.id as i64).into()
    } else if is(sub, "info") {
        let line = inner
            .clients
            .get(&conn.id)
            .map(|c| client_line(inner, c))
            .unwrap_or_default();
        text(line + "\n").into()
    } else if is(sub, "list") {
        let mut ids: Vec<&u64> = inner.clients.keys().collect();
        ids.sort();
        let mut filter_ids: Option<Vec<u64>> = None;
        if argv.len() > 2 {
            if is(&argv[2], "id") && argv.len() > 3 {
                let mut v = Vec::new();
                for a in &argv[3..] {
                    match redsnap_engine::num::parse_i64(a) {
                        Some(i) if i > 0 => v.push(i as u64),
                        _ => return Reply::err("ERR Invalid client ID").into(),
                    }
                }
                filter_ids = Some(v);
            } else if is(&argv[2], "type") && argv.len() == 4 {
                if !["normal", "master", "replica", "pubsub", "slave"]
                    .iter()
                    .any(|t| is(&argv[3], t))
                {
                    return Reply::error(format!(
                        "ERR Unknown client type '{}'",
                        String::from_utf8_lossy(&argv[3])
                    ))
                    .into();
                }
            } else {
                return Reply::err("ERR syntax error").into();
            }
        }
        let mut s = String::new();
        for id in ids {
            if filter_ids.as_ref().is_some_and(|f| !f.contains(id)) {
                continue;
            }
            if let Some(c) = inner.clients.get(id) {
                s.push_str(&client_line(inner, c));
                s.push('\n');
            }
        }
        text(s).into()
    } else if is(sub, "setname") {
        if let Err(e) = valid_client_name(&argv[2]) {
            return e.into();
        }
        conn.name = argv[2].clone();
        if let Some(c) = inner.clients.get_mut(&conn.id) {
            c.name = argv[2].clone();
        }
        Reply::ok().into()
    } else if is(sub, "getname") {
        if conn.name.is_empty() {
            Reply::Nil.into()
        } else {
            Reply::Bulk(conn.name.clone()).into()
        }
    } else if is(sub, "setinfo") {
        let val = String::from_utf8_lossy(&argv[3]).into_owned();
        if val.contains([' ', '\n']) {
            return Reply::err(
                "ERR lib-name and lib-ver cannot contain spaces, newlines or special characters.",
            )
            .into();
        }
        let Some(c) = inner.clients.get_mut(&conn.id) else {
            return Reply::ok().into();
        };
        if is(&argv[2], "lib-name") {
            c.lib_name = val;
        } else if is(&argv[2], "lib-ver") {
            c.lib_ver = val;
        } else {
            return Reply::error(format!(
                "ERR Unrecognized option '{}'",
                String::from_utf8_lossy(&argv[2])
            ))
            .into();
        }
        Reply::ok().into()
    } else if is(sub, "kill") {
        client_kill(conn, inner, argv)
    } else if is(sub, "pause") {
        let Some(ms) = redsnap_engine::num::parse_i64(&argv[2]).filter(|v| *v >= 0) else {
            return Reply::err("ERR timeout is not an integer or out of range").into();
        };
        let writes_only = argv.get(3).is_some_and(|m| is(m, "write"));
        inner.paused_until = Some((
            std::time::Instant::now() + Duration::from_millis(ms as u64),
            writes_only,
        ));
        Reply::ok().into()
    } else if is(sub, "unpause") {
        inner.paused_until = None;
        Reply::ok().into()
    } else if is(sub, "no-evict") || is(sub, "no-touch") {
        let on = is(&argv[2], "on");
        if !on && !is(&argv[2], "off") {
            return Reply::err("ERR syntax error").into();
        }
        if let Some(c) = inner.clients.get_mut(&conn.id) {
            if is(sub, "no-evict") {
                c.no_evict = on;
            }
        }
        Reply::ok().into()
    } else if is(sub, "reply") {
        // Redis's clientCommand: OFF and SKIP answer nothing (an empty `Many`);
        // the connection loop then silences replies (`Conn::emit`).
        if is(&argv[2], "on") {
            // As Redis: a SKIP_NEXT set earlier in the same EXEC stays.
            conn.reply_off = false;
            conn.reply_skip = false;
            Reply::ok().into()
        } else if is(&argv[2], "off") {
            conn.reply_off = true;
            Step::Many(Vec::new())
        } else if is(&argv[2], "skip") {
            if !conn.reply_off {
                conn.reply_skip_next = true;
            }
            Step::Many(Vec::new())
        } else {
            Reply::err("ERR syntax error").into()
        }
    } else if is(sub, "getredir") {
        Reply::Int(-1).into()
    } else if is(sub, "unblock") {
        let error = match argv.get(3) {
            None => false,
            Some(a) if is(a, "timeout") => false,
            Some(a) if is(a, "error") => true,
            Some(_) => {
                return Reply::err("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR").into()
            }
        };
        let Some(id) = redsnap_engine::num::parse_i64(&argv[2]) else {
            return Reply::err(redsnap_engine::reply::ERR_NOT_INT).into();
        };
        let id = id as u64;
        if inner.blocked.contains_key(&id) {
            let r = if error {
                Reply::err("UNBLOCKED client unblocked via CLIENT UNBLOCK")
            } else {
                Reply::NilArray
            };
            crate::commands::blocking::end_unserved(inner, id, &r);
            if let Some(c) = inner.clients.get(&id) {
                let _ = c.tx.send(ConnMsg::Unblocked(r));
            }
            Reply::Int(1).into()
        } else {
            Reply::Int(0).into()
        }
    } else if is(sub, "tracking") {
        Reply::err("ERR CLIENT TRACKING is not supported by redsnap").into()
    } else {
        Reply::Array(vec![Reply::bulk_str("CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are: ID, INFO, LIST, KILL, SETNAME, GETNAME, SETINFO, PAUSE, UNPAUSE, NO-EVICT, UNBLOCK.")]).into()
    }
}

fn client_kill(conn: &mut Conn, inner: &mut Inner, argv: &[Bytes]) -> Step {
    let mut victims = Vec::new();
    if argv.len() == 3 {
        // Old form: CLIENT KILL addr:port
        let addr = String::from_utf8_lossy(&argv[2]).into_owned();
        victims.extend(
            inner
                .clients
                .values()
                .filter(|c| c.addr == addr)
                .map(|c| c.id),
        );
        if victims.is_empty() {
            return Reply::err("ERR No such client").into();
        }
        for id in &victims {
            if let Some(c) = inner.clients.get(id) {
                c.kill();
            }
        }
        return Reply::ok().into();
    }
    let mut skipme = true;
    let mut i = 2;
    let mut filters: Vec<(String, String)> = Vec::new();
    while i + 1 < argv.len() {
        let k = String::from_utf8_lossy(&argv[i]).to_ascii_lowercase();
        let v = String::from_utf8_lossy(&argv[i + 1]).into_owned();
        match k.as_str() {
            "id" | "addr" | "laddr" | "type" | "user" => filters.push((k, v)),
            "skipme" => skipme = v.eq_ignore_ascii_case("yes"),
            _ => return Reply::err("ERR syntax error").into(),
        }
        i += 2;
    }
    if i != argv.len() {
        return Reply::err("ERR syntax error").into();
    }
    for c in inner.clients.values() {
        if skipme && c.id == conn.id {
            continue;
        }
        let ok = filters.iter().all(|(k, v)| match k.as_str() {
            "id" => v.parse::<u64>().ok() == Some(c.id),
            "addr" => &c.addr == v,
            "laddr" => &c.laddr == v,
            "type" => {
                v.eq_ignore_ascii_case("normal") && c.sub + c.psub == 0
                    || v.eq_ignore_ascii_case("pubsub") && c.sub + c.psub > 0
            }
            "user" => v == "default",
            _ => false,
        });
        if ok {
            victims.push(c.id);
        }
    }
    for id in &victims {
        if let Some(c) = inner.clients.get(id) {
            c.kill();
        }
    }
    Reply::Int(victims.len() as i64).into()
}
