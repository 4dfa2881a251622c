//! MONITOR: every command the server runs, as a line sent to each client in MONITOR
//! mode (Redis's `replicationFeedMonitors`):
//! `+<unix time>.<microseconds> [<db> <addr>|lua] "arg" ...`, arguments quoted as
//! `sdscatrepr` does, secrets `(redacted)`, commands flagged `admin` or
//! `skip_monitor` left out (EVAL and FCALL show themselves before the commands their
//! script runs). Lines travel through the client's push channel, as pub/sub messages
//! do, so a monitor that does not read costs the server nothing but the queued bytes,
//! and is disconnected past the `normal` output buffer limit (none by default, as in
//! Redis). With no monitor connected nothing of this runs (`Inner::monitors` is
//! empty).

use super::Handler;
use crate::calls::Caller;
use crate::conn::{ok, Conn, Step};
use crate::state::{ConnMsg, Inner};
use bytes::Bytes;
use redsnap_engine::table::{flags, CommandSpec};
use redsnap_engine::Reply;
use std::sync::atomic::Ordering;

pub(crate) const HANDLERS: &[(&str, Handler)] = &[("monitor", monitor)];

fn monitor(conn: &mut Conn, inner: &mut Inner, _: &'static CommandSpec, _: &[Bytes]) -> Step {
    if conn.in_exec {
        // EXEC (and scripts, which cannot call MONITOR) expect one reply per command.
        return Reply::err("ERR MONITOR isn't allowed for DENY BLOCKING client").into();
    }
    if inner.monitors.contains(&conn.id) {
        // Already monitoring: Redis ignores it, without a reply.
        return Step::Many(Vec::new());
    }
    inner.monitors.push(conn.id);
    if let Some(c) = inner.clients.get_mut(&conn.id) {
        c.monitor = true;
    }
    ok().into()
}

/// Leaves MONITOR mode (RESET, disconnection).
pub(crate) fn stop(inner: &mut Inner, id: u64) {
    if inner.monitors.is_empty() {
        return;
    }
    inner.monitors.retain(|&m| m != id);
    if let Some(c) = inner.clients.get_mut(&id) {
        c.monitor = false;
    }
}

/// Whether a monitor client may run this command: not one that reads or writes the
/// keyspace (Redis treats monitors as replicas: "Replica can't interact with the
/// keyspace").
pub(crate) fn refusal(inner: &Inner, id: u64, spec: &CommandSpec) -> Option<Reply> {
    if inner.monitors.is_empty()
        || !spec.has(flags::READONLY | flags::WRITE | flags::MAY_REPLICATE)
        || !inner.monitors.contains(&id)
    {
        return None;
    }
    Some(Reply::err("ERR Replica can't interact with the keyspace"))
}

/// The hard output buffer limit of monitors: `client-output-buffer-limit`'s `normal`
/// class (Redis counts monitors as normal clients), 0 for none.
pub(crate) fn output_limit(config: &crate::config::Config) -> u64 {
    config.obuf_hard_limit("normal").unwrap_or(0)
}

/// Scripts feed monitors before they run, so that their commands follow them.
pub(crate) fn feeds_before(spec: &CommandSpec) -> bool {
    spec.has(flags::SKIP_MONITOR)
        && matches!(
            spec.name,
            "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro"
        )
}

/// Sends the line of one command to every monitor.
pub(crate) fn feed(inner: &mut Inner, who: Caller, real: &CommandSpec, argv: &[Bytes]) {
    if inner.monitors.is_empty() {
        return;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let addr = if who.script {
        None
    } else {
        inner.clients.get(&who.id).map(|c| c.addr.as_str())
    };
    let line = Bytes::from(line(now, who.db, addr, real, argv));
    let limit = inner.tun.monitor_obuf_limit;
    let size = line.len() as u64 + 3;
    let mut dead = Vec::new();
    for &id in &inner.monitors {
        let Some(c) = inner.clients.get(&id) else {
            continue;
        };
        let pending = c.pending_out.fetch_add(size, Ordering::Relaxed) + size;
        if limit > 0 && pending > limit {
            tracing::warn!(
                client = id,
                "closing MONITOR client over its output buffer limit"
            );
            c.kill();
            dead.push(id);
        } else {
            let _ = c.tx.send(ConnMsg::Push(Reply::Simple(line.clone())));
        }
    }
    if !dead.is_empty() {
        inner.monitors.retain(|m| !dead.contains(m));
    }
}

/// The text of a monitor line (without `+` and CRLF).
pub(crate) fn line(
    now: std::time::Duration,
    db: usize,
    addr: Option<&str>,
    real: &CommandSpec,
    argv: &[Bytes],
) -> Vec<u8> {
    let hidden = crate::calls::redacted(real, argv);
    let mut out = Vec::with_capacity(48 + argv.iter().map(|a| a.len() + 3).sum::<usize>());
    out.extend_from_slice(
        format!(
            "{}.{:06} [{db} {}]",
            now.as_secs(),
            now.subsec_micros(),
            addr.unwrap_or("lua")
        )
        .as_bytes(),
    );
    for i in 0..argv.len() {
        out.push(b' ');
        repr(&mut out, crate::calls::shown_arg(argv, &hidden, i));
    }
    out
}

/// Redis's `sdscatrepr`: a quoted string with `\n \r \t \a \b \\ \"` escaped and other
/// non-printable bytes as `\xHH`.
pub(crate) fn repr(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &c in s {
        match c {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            7 => out.extend_from_slice(b"\\a"),
            8 => out.extend_from_slice(b"\\b"),
            0x20..=0x7e => out.push(c),
            _ => out.extend_from_slice(format!("\\x{c:02x}").as_bytes()),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_quote_like_sdscatrepr() {
        let set = redsnap_engine::table::lookup(b"set").unwrap();
        let argv: Vec<Bytes> = [&b"set"[..], b"k", b"a\x00b\xe9\"\\ \n\r\t\x07\x08"]
            .iter()
            .map(|a| Bytes::copy_from_slice(a))
            .collect();
        let l = line(
            std::time::Duration::new(1700000000, 5_000),
            3,
            Some("127.0.0.1:5000"),
            set,
            &argv,
        );
        assert_eq!(
            String::from_utf8(l).unwrap(),
            r#"1700000000.000005 [3 127.0.0.1:5000] "set" "k" "a\x00b\xe9\"\\ \n\r\t\a\b""#
        );
        let auth = redsnap_engine::table::lookup(b"auth").unwrap();
        let argv = vec![Bytes::from_static(b"AUTH"), Bytes::from_static(b"secret")];
        let l = line(std::time::Duration::new(1, 0), 0, None, auth, &argv);
        assert_eq!(
            String::from_utf8(l).unwrap(),
            r#"1.000000 [0 lua] "AUTH" "(redacted)""#
        );
    }
}
