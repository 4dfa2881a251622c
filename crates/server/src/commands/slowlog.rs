//! SLOWLOG GET/LEN/RESET/HELP and the log itself (Redis's `slowlog.c`): commands that
//! ran for at least `slowlog-log-slower-than` microseconds (negative: never, 0:
//! every command), newest first, at most `slowlog-max-len` of them. An entry keeps
//! the command as the client sent it (at most 32 arguments, the last one then saying
//! how many more there were; arguments over 128 bytes cut, saying how many bytes
//! more), with secrets `(redacted)`, and the client's address and name. EXEC is not
//! logged (`skip_slowlog`), the commands it ran are.

use super::Handler;
use crate::calls::Caller;
use crate::conn::{Conn, Step};
use crate::state::Inner;
use bytes::Bytes;
use redsnap_engine::cmd::is;
use redsnap_engine::table::{flags, CommandSpec};
use redsnap_engine::Reply;
use std::collections::VecDeque;

/// Redis's `SLOWLOG_ENTRY_MAX_ARGC` and `SLOWLOG_ENTRY_MAX_STRING`.
const MAX_ARGC: usize = 32;
const MAX_STRING: usize = 128;

pub(crate) const HANDLERS: &[(&str, Handler)] = &[("slowlog", slowlog)];

struct Entry {
    id: u64,
    time: u64,
    us: u64,
    argv: Vec<Bytes>,
    addr: Bytes,
    name: Bytes,
}

/// The slow log, newest entry first.
#[derive(Default)]
pub(crate) struct SlowLog {
    entries: VecDeque<Entry>,
    next_id: u64,
}

/// Logs a call that ran for `us` microseconds if it is slow enough, then trims the
/// log to `slowlog-max-len` (Redis's `slowlogPushEntryIfNeeded`).
pub(crate) fn push_if_slow(
    inner: &mut Inner,
    who: Caller,
    real: &CommandSpec,
    argv: Vec<Bytes>,
    us: u64,
) {
    let threshold = inner.tun.slowlog_slower_than;
    if threshold < 0 || real.has(flags::SKIP_SLOWLOG) {
        return;
    }
    if us >= threshold as u64 {
        let (addr, name) = if who.script {
            (Bytes::from_static(b"?:0"), Bytes::new())
        } else {
            match inner.clients.get(&who.id) {
                Some(c) => (Bytes::from(c.addr.clone()), c.name.clone()),
                None => (Bytes::new(), Bytes::new()),
            }
        };
        let argv = shown_argv(real, argv);
        let log = &mut inner.slowlog;
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        log.entries.push_front(Entry {
            id: log.next_id,
            time,
            us,
            argv,
            addr,
            name,
        });
        log.next_id += 1;
    }
    let max = inner.tun.slowlog_max_len;
    inner.slowlog.entries.truncate(max);
}

/// The arguments an entry keeps: redacted, at most 32 (the last then says how many
/// more there were), each at most 128 bytes; copied, so that an entry does not pin
/// the buffer the request was read into.
fn shown_argv(real: &CommandSpec, argv: Vec<Bytes>) -> Vec<Bytes> {
    let hidden = crate::calls::redacted(real, &argv);
    let argc = argv.len();
    let kept = argc.min(MAX_ARGC);
    (0..kept)
        .map(|j| {
            if kept != argc && j == kept - 1 {
                return Bytes::from(format!("... ({} more arguments)", argc - kept + 1));
            }
            let a = crate::calls::shown_arg(&argv, &hidden, j);
            if a.len() > MAX_STRING {
                let mut s = a[..MAX_STRING].to_vec();
                s.extend_from_slice(
                    format!("... ({} more bytes)", a.len() - MAX_STRING).as_bytes(),
                );
                Bytes::from(s)
            } else {
                Bytes::copy_from_slice(a)
            }
        })
        .collect()
}

fn slowlog(_: &mut Conn, inner: &mut Inner, _: &'static CommandSpec, argv: &[Bytes]) -> Step {
    let sub = &argv[1];
    if argv.len() == 2 && is(sub, "help") {
        return super::help(
            "SLOWLOG",
            &[
                "GET [<count>]",
                "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
                "    Entries are made of:",
                "    id, timestamp, time in microseconds, arguments array, client IP and port,",
                "    client name",
                "LEN",
                "    Return the length of the slowlog.",
                "RESET",
                "    Reset the slowlog.",
            ],
        )
        .into();
    }
    if argv.len() == 2 && is(sub, "reset") {
        inner.slowlog.entries.clear();
        return Reply::ok().into();
    }
    if argv.len() == 2 && is(sub, "len") {
        return Reply::Int(inner.slowlog.entries.len() as i64).into();
    }
    if (argv.len() == 2 || argv.len() == 3) && is(sub, "get") {
        let mut count = 10usize;
        if let Some(a) = argv.get(2) {
            match redsnap_engine::num::parse_i64(a) {
                Some(-1) => count = inner.slowlog.entries.len(),
                Some(n) if n >= 0 => count = n as usize,
                _ => return Reply::err("ERR count should be greater than or equal to -1").into(),
            }
        }
        let entries = inner
            .slowlog
            .entries
            .iter()
            .take(count)
            .map(|e| {
                Reply::Array(vec![
                    Reply::Int(e.id as i64),
                    Reply::Int(e.time as i64),
                    Reply::Int(e.us as i64),
                    Reply::Array(e.argv.iter().cloned().map(Reply::Bulk).collect()),
                    Reply::Bulk(e.addr.clone()),
                    Reply::Bulk(e.name.clone()),
                ])
            })
            .collect();
        return Reply::Array(entries).into();
    }
    super::subcommand_syntax_error("SLOWLOG", sub).into()
}
