//! What an operator asks the server about itself: INFO, MEMORY, LATENCY,
//! SLOWLOG, MONITOR, TIME, LOLWUT.

use super::Handler;
use crate::conn::{Conn, Step};
use crate::state::Inner;
use bytes::Bytes;
use redsnap_engine::cmd::is;
use redsnap_engine::table::CommandSpec;
use redsnap_engine::{now_ms, Reply};
use std::fmt::Write;

pub(crate) const HANDLERS: &[(&str, Handler)] = &[
    ("info", info_cmd),
    ("memory", memory_cmd),
    ("latency", latency),
    ("slowlog", slowlog),
    ("monitor", monitor),
    ("time", time),
    ("lolwut", lolwut),
];

fn info_cmd(conn: &mut Conn, inner: &mut Inner, _: &'static CommandSpec, argv: &[Bytes]) -> Step {
    info_reply(conn, inner, argv)
}

fn memory_cmd(conn: &mut Conn, inner: &mut Inner, _: &'static CommandSpec, argv: &[Bytes]) -> Step {
    memory(conn, inner, argv).into()
}

fn latency(_: &mut Conn, _: &mut Inner, _: &'static CommandSpec, argv: &[Bytes]) -> Step {
    if is(&argv[1], "reset") {
        Reply::Int(0).into()
    } else if is(&argv[1], "doctor") {
        Reply::Verbatim("txt", Bytes::from_static(b"Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. I honestly think you ought to sleep better.\n")).into()
    } else {
        Reply::Array(vec![]).into()
    }
}

fn slowlog(_: &mut Conn, _: &mut Inner, _: &'static CommandSpec, argv: &[Bytes]) -> Step {
    if is(&argv[1], "len") {
        Reply::Int(0).into()
    } else if is(&argv[1], "reset") {
        Reply::ok().into()
    } else {
        Reply::Array(vec![]).into()
    }
}

fn monitor(_: &mut Conn, _: &mut Inner, _: &'static CommandSpec, _: &[Bytes]) -> Step {
    Reply::err("ERR 'monitor' is not supported by redsnap").into()
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

fn lolwut(_: &mut Conn, _: &mut Inner, _: &'static CommandSpec, _: &[Bytes]) -> Step {
    Reply::Verbatim(
        "txt",
        Bytes::from(format!("redsnap ver. {}\n", crate::REDSNAP_VERSION)),
    )
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
        Reply::Map(vec![(
            Reply::bulk_str("keys.count"),
            Reply::Int(inner.store.total_keys() as i64),
        )])
    } else if is(sub, "doctor") {
        Reply::bulk_str("Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.")
    } else if is(sub, "purge") {
        Reply::ok()
    } else {
        Reply::Array(vec![Reply::bulk_str("MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are: USAGE, STATS, DOCTOR, PURGE.")])
    }
}

fn info_reply(conn: &mut Conn, inner: &mut Inner, argv: &[Bytes]) -> Step {
    let s = info(conn, inner, &argv[1..]);
    if conn.resp3 {
        Reply::Verbatim("txt", Bytes::from(s)).into()
    } else {
        Reply::Bulk(Bytes::from(s)).into()
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

pub(crate) fn info(conn: &Conn, inner: &Inner, sections: &[Bytes]) -> String {
    let all = sections.is_empty()
        || sections
            .iter()
            .any(|s| is(s, "all") || is(s, "everything") || is(s, "default"));
    let want = |name: &str| all || sections.iter().any(|s| is(s, name));
    let mut out = String::new();
    let uptime = conn.shared.started.elapsed().as_secs();
    let cfg = &inner.config;
    if want("server") {
        let _ = write!(
            out,
            "# Server\r\nredis_version:{}\r\nredsnap_version:{}\r\nredis_mode:standalone\r\nos:{} {}\r\narch_bits:64\r\nmultiplexing_api:epoll\r\nprocess_id:{}\r\nrun_id:{}\r\ntcp_port:{}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\nhz:{}\r\nexecutable:redsnap\r\nconfig_file:\r\n\r\n",
            crate::REDIS_VERSION,
            crate::REDSNAP_VERSION,
            std::env::consts::OS,
            std::env::consts::ARCH,
            std::process::id(),
            conn.shared.run_id,
            cfg.int("port"),
            now_ms() * 1000,
            uptime,
            uptime / 86400,
            conn.shared
                .live
                .hz
                .load(std::sync::atomic::Ordering::Relaxed),
        );
    }
    if want("clients") {
        let _ = write!(
            out,
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:{}\r\npubsub_clients:{}\r\n\r\n",
            inner.clients.len(),
            cfg.int("maxclients"),
            crate::commands::client::blocked_count(inner),
            inner.clients.values().filter(|c| c.sub + c.psub > 0).count(),
        );
    }
    if want("memory") {
        let rss = rss_bytes();
        let used = crate::used_memory(inner);
        let _ = write!(
            out,
            "# Memory\r\nused_memory:{used}\r\nused_memory_human:{:.2}M\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{:.2}M\r\nused_memory_peak:{used}\r\nmaxmemory:{}\r\nmaxmemory_policy:{}\r\nmem_allocator:libc\r\n\r\n",
            used as f64 / 1048576.0,
            rss as f64 / 1048576.0,
            cfg.u64("maxmemory"),
            cfg.str("maxmemory-policy"),
        );
    }
    if want("persistence") {
        out.push_str(&crate::persistence_info(inner));
    }
    if want("stats") {
        let st = &inner.stats;
        let es = &inner.store.stats;
        let _ = write!(
            out,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\nrejected_connections:{}\r\nexpired_keys:{}\r\nevicted_keys:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\npubsub_channels:{}\r\npubsub_patterns:{}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\n\r\n",
            st.total_connections,
            st.total_commands,
            conn.shared
                .live
                .rejected_connections
                .load(std::sync::atomic::Ordering::Relaxed),
            es.expired_keys,
            es.evicted_keys,
            es.keyspace_hits,
            es.keyspace_misses,
            inner.channels.len(),
            inner.patterns.len(),
            st.net_input_bytes,
            st.net_output_bytes,
        );
    }
    if want("replication") {
        out.push_str(
            "# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_repl_offset:0\r\n\r\n",
        );
    }
    if want("cpu") {
        out.push_str("# CPU\r\nused_cpu_sys:0.0\r\nused_cpu_user:0.0\r\n\r\n");
    }
    if want("keyspace") {
        out.push_str("# Keyspace\r\n");
        for (i, db) in inner.store.dbs.iter().enumerate() {
            if !db.is_empty() {
                let _ = write!(
                    out,
                    "db{i}:keys={},expires={},avg_ttl=0\r\n",
                    db.len(),
                    db.volatile_len()
                );
            }
        }
        out.push_str("\r\n");
    }
    while out.ends_with("\r\n\r\n") {
        out.truncate(out.len() - 2);
    }
    out
}
