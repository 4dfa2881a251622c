//! What an operator asks the server about itself: MEMORY, TIME, LOLWUT (INFO,
//! COMMAND, SLOWLOG, LATENCY and MONITOR have files of their own).

use super::Handler;
use crate::conn::{Conn, Step};
use crate::state::Inner;
use bytes::Bytes;
use redsnap_engine::cmd::is;
use redsnap_engine::table::CommandSpec;
use redsnap_engine::{now_ms, Reply};

pub(crate) const HANDLERS: &[(&str, Handler)] = &[
    ("memory", memory_cmd),
    ("time", time),
    ("lolwut", super::lolwut::lolwut),
];

fn memory_cmd(conn: &mut Conn, inner: &mut Inner, _: &'static CommandSpec, argv: &[Bytes]) -> Step {
    memory(conn, inner, argv).into()
}

fn time(_: &mut Conn, _: &mut Inner, _: &'static CommandSpec, _: &[Bytes]) -> Step {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Reply::Array(vec![
        Reply::bulk_str(&now.as_secs().to_string()),
        Reply::bulk_str(&now.subsec_micros().to_string()),
    ])
    .into()
}

fn memory(conn: &mut Conn, inner: &mut Inner, argv: &[Bytes]) -> Reply {
    let sub = &argv[1];
    if is(sub, "usage") {
        let now = now_ms();
        match inner.store.dbs[conn.db].get(&argv[2]) {
            Some(e) if !e.is_expired(now) => {
                Reply::Int((e.value().mem_usage() + argv[2].len() + 56) as i64)
            }
            _ => Reply::Nil,
        }
    } else if is(sub, "stats") {
        super::memory::stats(inner)
    } else if is(sub, "doctor") {
        super::memory::doctor(inner)
    } else if is(sub, "malloc-stats") {
        super::memory::malloc_stats()
    } else if is(sub, "purge") {
        super::memory::purge()
    } else {
        Reply::Array(vec![Reply::bulk_str("MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are: USAGE, STATS, DOCTOR, PURGE.")])
    }
}

/// Resident set size of this process in bytes (Linux), 0 if unknown.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}
