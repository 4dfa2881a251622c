//! What an operator asks the server about itself: COMMAND, MEMORY, TIME, LOLWUT
//! (INFO, SLOWLOG, LATENCY and MONITOR have files of their own).

use super::Handler;
use crate::conn::{Conn, Step};
use crate::state::Inner;
use bytes::Bytes;
use redsnap_engine::cmd::is;
use redsnap_engine::table::{self, flags, CommandSpec};
use redsnap_engine::{now_ms, Reply};

pub(crate) const HANDLERS: &[(&str, Handler)] = &[
    ("command", command_cmd),
    ("memory", memory_cmd),
    ("time", time),
    ("lolwut", lolwut),
];

fn command_cmd(conn: &mut Conn, _: &mut Inner, _: &'static CommandSpec, argv: &[Bytes]) -> Step {
    command(conn, argv).into()
}

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

fn lolwut(_: &mut Conn, _: &mut Inner, _: &'static CommandSpec, _: &[Bytes]) -> Step {
    Reply::Verbatim(
        "txt",
        Bytes::from(format!("redsnap ver. {}\n", crate::REDSNAP_VERSION)),
    )
    .into()
}

fn command_info(c: &CommandSpec) -> Reply {
    let flag_names: Vec<Reply> = flags::NAMES
        .iter()
        .filter(|(f, _)| c.flags & f != 0)
        .map(|(_, n)| Reply::Simple(Bytes::from_static(n.as_bytes())))
        .collect();
    let name = c.name.to_string();
    Reply::Array(vec![
        Reply::bulk_str(&name),
        Reply::Int(c.arity as i64),
        Reply::Set(flag_names),
        Reply::Int(c.first_key as i64),
        Reply::Int(c.last_key as i64),
        Reply::Int(c.step as i64),
        Reply::Set(vec![Reply::Simple(Bytes::from(format!("@{}", c.group)))]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
        Reply::Array(c.subs.iter().map(command_info).collect()),
    ])
}

fn command_docs(c: &CommandSpec) -> Reply {
    let mut m = vec![
        (Reply::bulk_str("summary"), Reply::bulk_str(c.summary)),
        (Reply::bulk_str("since"), Reply::bulk_str("1.0.0")),
        (Reply::bulk_str("group"), Reply::bulk_str(c.group)),
    ];
    if !c.subs.is_empty() {
        m.push((
            Reply::bulk_str("subcommands"),
            Reply::Map(
                c.subs
                    .iter()
                    .map(|s| (Reply::bulk_str(s.name), command_docs(s)))
                    .collect(),
            ),
        ));
    }
    Reply::Map(m)
}

fn command(conn: &mut Conn, argv: &[Bytes]) -> Reply {
    let _ = conn;
    if argv.len() == 1 {
        return Reply::Array(table::all().map(command_info).collect());
    }
    let sub = &argv[1];
    if is(sub, "count") {
        Reply::Int(table::all().count() as i64)
    } else if is(sub, "info") {
        if argv.len() == 2 {
            return Reply::Array(table::all().map(command_info).collect());
        }
        Reply::Array(
            argv[2..]
                .iter()
                .map(|n| {
                    table::lookup(n)
                        .map(command_info)
                        .unwrap_or(Reply::NilArray)
                })
                .collect(),
        )
    } else if is(sub, "docs") {
        let specs: Vec<&CommandSpec> = if argv.len() == 2 {
            table::all().collect()
        } else {
            argv[2..].iter().filter_map(|n| table::lookup(n)).collect()
        };
        Reply::Map(
            specs
                .into_iter()
                .map(|c| (Reply::bulk_str(c.name), command_docs(c)))
                .collect(),
        )
    } else if is(sub, "list") {
        Reply::Array(table::all().map(|c| Reply::bulk_str(c.name)).collect())
    } else if is(sub, "getkeys") {
        let Some(spec) = table::lookup(&argv[2]) else {
            return Reply::err("ERR Invalid command specified");
        };
        if table::check_arity(spec, &argv[2..]).is_err() {
            return Reply::err("ERR Invalid number of arguments specified for command");
        }
        if let Some(keys) = crate::scripting::movable_keys(spec, &argv[2..]) {
            return Reply::Array(keys.iter().cloned().map(Reply::Bulk).collect());
        }
        let pos = match spec.name {
            "sort" => redsnap_engine::cmd::sort::get_keys(&argv[2..]),
            _ => spec.key_positions(argv.len() - 2),
        };
        if pos.is_empty() {
            return Reply::err("ERR The command has no key arguments");
        }
        Reply::Array(
            pos.into_iter()
                .filter_map(|p| argv.get(p + 2))
                .map(|k| Reply::Bulk(k.clone()))
                .collect(),
        )
    } else {
        Reply::Array(vec![Reply::bulk_str("COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are: COUNT, INFO, DOCS, LIST, GETKEYS.")])
    }
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
