//! COMMAND and its subcommands (COUNT, INFO, DOCS, LIST, GETKEYS, GETKEYSANDFLAGS,
//! HELP): the command table (`redsnap_engine::table`) with Redis 7.0's metadata
//! (`redsnap_engine::cmdmeta`: key specs, ACL categories, tips, documentation).

use super::Handler;
use crate::conn::{Conn, Step};
use crate::state::Inner;
use bytes::Bytes;
use redsnap_engine::cmd::is;
use redsnap_engine::cmdmeta::{acl, argflags, keyflags, Arg, BeginSearch, FindKeys, KeySpec};
use redsnap_engine::table::{self, flags, CommandSpec};
use redsnap_engine::{getkeys, Reply};

pub(crate) const HANDLERS: &[(&str, Handler)] = &[("command", command_cmd)];

fn command_cmd(_: &mut Conn, _: &mut Inner, _: &'static CommandSpec, argv: &[Bytes]) -> Step {
    command(argv).into()
}

/// Redis's `addReplyHelp`: the header, the lines, and HELP's own entry.
pub(crate) fn help(cmd: &str, lines: &[&'static str]) -> Reply {
    let mut out = Vec::with_capacity(lines.len() + 3);
    out.push(Reply::Simple(Bytes::from(format!(
        "{} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        cmd.to_ascii_uppercase()
    ))));
    out.extend(lines.iter().map(|l| Reply::simple(l)));
    out.push(Reply::simple("HELP"));
    out.push(Reply::simple("    Prints this help."));
    Reply::Array(out)
}

const HELP: &[&str] = &[
    "(no subcommand)",
    "    Return details about all Redis commands.",
    "COUNT",
    "    Return the total number of commands in this Redis server.",
    "LIST",
    "    Return a list of all commands in this Redis server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "GETKEYS <full-command>",
    "    Return the keys from a full Redis command.",
    "GETKEYSANDFLAGS <full-command>",
    "    Return the keys and the access flags from a full Redis command.",
];

fn command(argv: &[Bytes]) -> Reply {
    if argv.len() == 1 {
        return Reply::Array(table::all().map(info).collect());
    }
    let sub = &argv[1];
    if is(sub, "count") {
        Reply::Int(table::all().count() as i64)
    } else if is(sub, "info") {
        if argv.len() == 2 {
            return Reply::Array(table::all().map(info).collect());
        }
        Reply::Array(
            argv[2..]
                .iter()
                .map(|n| by_full_name(n).map_or(Reply::Nil, info))
                .collect(),
        )
    } else if is(sub, "docs") {
        let specs: Vec<&'static CommandSpec> = if argv.len() == 2 {
            table::all().collect()
        } else {
            argv[2..].iter().filter_map(|n| by_full_name(n)).collect()
        };
        Reply::Map(
            specs
                .into_iter()
                .map(|c| (Reply::bulk_str(c.name), docs(c)))
                .collect(),
        )
    } else if is(sub, "list") {
        list(argv)
    } else if is(sub, "getkeys") {
        get_keys(&argv[2..], false)
    } else if is(sub, "getkeysandflags") {
        get_keys(&argv[2..], true)
    } else {
        help("command", HELP)
    }
}

/// A command by its full name (`get`, `config|get`), as Redis's
/// `lookupCommandBySds`: one level of subcommands, nothing deeper.
fn by_full_name(name: &[u8]) -> Option<&'static CommandSpec> {
    let mut parts = name.split(|&c| c == b'|');
    let base = table::lookup(parts.next()?)?;
    match (parts.next(), parts.next()) {
        (None, _) => Some(base),
        (Some(sub), None) if !base.subs.is_empty() => table::lookup_sub(base, sub),
        _ => None,
    }
}

fn simple(s: &'static str) -> Reply {
    Reply::Simple(Bytes::from_static(s.as_bytes()))
}

/// One command as COMMAND INFO shows it (Redis's `addReplyCommandInfo`).
fn info(c: &'static CommandSpec) -> Reply {
    let meta = c.meta();
    let (first, last, step) = match meta {
        Some(m) => {
            let (f, l, s, _) = m.legacy_range();
            (f, l, s)
        }
        None => (c.first_key as i64, c.last_key as i64, c.step as i64),
    };
    let categories = acl::names(c.acl_categories())
        .map(|n| Reply::Simple(Bytes::from(format!("@{n}"))))
        .collect();
    let tips = meta.map_or(Vec::new(), |m| {
        m.tips.iter().map(|t| Reply::bulk_str(t)).collect()
    });
    let specs = meta.map_or(Vec::new(), |m| m.key_specs.iter().map(key_spec).collect());
    let subs = if c.subs.is_empty() {
        Reply::Set(Vec::new())
    } else {
        Reply::Array(c.subs.iter().map(info).collect())
    };
    Reply::Array(vec![
        Reply::bulk_str(c.name),
        Reply::Int(c.arity as i64),
        Reply::Set(c.shown_flags().into_iter().map(simple).collect()),
        Reply::Int(first),
        Reply::Int(last),
        Reply::Int(step),
        Reply::Set(categories),
        Reply::Set(tips),
        Reply::Set(specs),
        subs,
    ])
}

fn pair(k: &str, v: Reply) -> (Reply, Reply) {
    (Reply::bulk_str(k), v)
}

fn key_flags(f: u32) -> Reply {
    Reply::Set(keyflags::names(f).map(simple).collect())
}

/// A key spec as COMMAND INFO shows it (`addReplyCommandKeySpecs`).
fn key_spec(k: &KeySpec) -> Reply {
    let typed = |t: &str, spec: Vec<(Reply, Reply)>| {
        Reply::Map(vec![
            pair("type", Reply::bulk_str(t)),
            pair("spec", Reply::Map(spec)),
        ])
    };
    let begin = match k.begin {
        BeginSearch::Index(i) => typed("index", vec![pair("index", Reply::Int(i))]),
        BeginSearch::Keyword { keyword, startfrom } => typed(
            "keyword",
            vec![
                pair("keyword", Reply::bulk_str(keyword)),
                pair("startfrom", Reply::Int(startfrom)),
            ],
        ),
        BeginSearch::Unknown => typed("unknown", Vec::new()),
    };
    let find = match k.find {
        FindKeys::Range {
            lastkey,
            step,
            limit,
        } => typed(
            "range",
            vec![
                pair("lastkey", Reply::Int(lastkey)),
                pair("keystep", Reply::Int(step)),
                pair("limit", Reply::Int(limit)),
            ],
        ),
        FindKeys::Keynum {
            keynumidx,
            firstkey,
            step,
        } => typed(
            "keynum",
            vec![
                pair("keynumidx", Reply::Int(keynumidx)),
                pair("firstkey", Reply::Int(firstkey)),
                pair("keystep", Reply::Int(step)),
            ],
        ),
        FindKeys::Unknown => typed("unknown", Vec::new()),
    };
    let mut m = Vec::with_capacity(4);
    if let Some(n) = k.notes {
        m.push(pair("notes", Reply::bulk_str(n)));
    }
    m.push(pair("flags", key_flags(k.flags)));
    m.push(pair("begin_search", begin));
    m.push(pair("find_keys", find));
    Reply::Map(m)
}

/// One command as COMMAND DOCS shows it (`addReplyCommandDocs`).
fn docs(c: &'static CommandSpec) -> Reply {
    let mut m = Vec::new();
    match c.meta() {
        Some(meta) => {
            m.push(pair("summary", Reply::bulk_str(meta.summary)));
            m.push(pair("since", Reply::bulk_str(meta.since)));
            // The data keeps the JSON files' group names; COMMAND DOCS prints Redis's
            // COMMAND_GROUP_STR ("sorted-set").
            let group = if meta.group == "sorted_set" {
                "sorted-set"
            } else {
                meta.group
            };
            m.push(pair("group", Reply::bulk_str(group)));
            if let Some(x) = meta.complexity {
                m.push(pair("complexity", Reply::bulk_str(x)));
            }
            if !meta.doc_flags.is_empty() {
                let f = meta.doc_flags.iter().map(|f| simple(f)).collect();
                m.push(pair("doc_flags", Reply::Set(f)));
            }
            if let Some(v) = meta.deprecated_since {
                m.push(pair("deprecated_since", Reply::bulk_str(v)));
            }
            if let Some(v) = meta.replaced_by {
                m.push(pair("replaced_by", Reply::bulk_str(v)));
            }
            if !meta.history.is_empty() {
                let h = meta
                    .history
                    .iter()
                    .map(|(v, what)| Reply::Array(vec![Reply::bulk_str(v), Reply::bulk_str(what)]))
                    .collect();
                m.push(pair("history", Reply::Set(h)));
            }
            if !meta.args.is_empty() {
                m.push(pair("arguments", args(&meta.args)));
            }
        }
        None => m.push(pair("group", Reply::bulk_str(c.group))),
    }
    if !c.subs.is_empty() {
        let subs = c
            .subs
            .iter()
            .map(|s| (Reply::bulk_str(s.name), docs(s)))
            .collect();
        m.push(pair("subcommands", Reply::Map(subs)));
    }
    Reply::Map(m)
}

/// Documented arguments (`addReplyCommandArgList`).
fn args(list: &[Arg]) -> Reply {
    Reply::Array(
        list.iter()
            .map(|a| {
                let mut m = vec![
                    pair("name", Reply::bulk_str(a.name)),
                    pair("type", Reply::bulk_str(a.kind)),
                ];
                if let Some(k) = a.key_spec_index {
                    m.push(pair("key_spec_index", Reply::Int(k)));
                }
                if let Some(t) = a.token {
                    m.push(pair("token", Reply::bulk_str(t)));
                }
                if let Some(v) = a.since {
                    m.push(pair("since", Reply::bulk_str(v)));
                }
                if let Some(v) = a.deprecated_since {
                    m.push(pair("deprecated_since", Reply::bulk_str(v)));
                }
                if a.flags != 0 {
                    let f = argflags::NAMES
                        .iter()
                        .filter(|(b, _)| a.flags & b != 0)
                        .map(|(_, n)| simple(n))
                        .collect();
                    m.push(pair("flags", Reply::Set(f)));
                }
                if matches!(a.kind, "oneof" | "block") {
                    m.push(pair("arguments", args(&a.args)));
                }
                Reply::Map(m)
            })
            .collect(),
    )
}

enum Filter<'a> {
    All,
    Module(&'a [u8]),
    AclCat(u32),
    Pattern(&'a [u8]),
}

/// COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern]:
/// commands and their subcommands.
fn list(argv: &[Bytes]) -> Reply {
    let mut filter = Filter::All;
    let mut i = 2;
    while i < argv.len() {
        let more = argv.len() - 1 - i;
        if !(is(&argv[i], "filterby") && more == 2) {
            return Reply::err(redsnap_engine::reply::ERR_SYNTAX);
        }
        let arg = &argv[i + 2];
        filter = if is(&argv[i + 1], "module") {
            Filter::Module(arg)
        } else if is(&argv[i + 1], "aclcat") {
            Filter::AclCat(acl::by_name(arg))
        } else if is(&argv[i + 1], "pattern") {
            Filter::Pattern(arg)
        } else {
            return Reply::err(redsnap_engine::reply::ERR_SYNTAX);
        };
        i += 3;
    }
    let keep = |c: &CommandSpec| match filter {
        Filter::All => true,
        // redsnap loads no modules; the built-in JSON commands answer to RedisJSON's
        // module name.
        Filter::Module(m) => m.eq_ignore_ascii_case(b"ReJSON") && c.name.starts_with("json."),
        Filter::AclCat(cat) => cat != 0 && c.acl_categories() & cat != 0,
        Filter::Pattern(p) => redsnap_engine::glob::glob_match(p, c.name.as_bytes(), true),
    };
    let mut out = Vec::new();
    for c in table::all() {
        for c in std::iter::once(c).chain(c.subs) {
            if keep(c) {
                out.push(Reply::bulk_str(c.name));
            }
        }
    }
    Reply::Array(out)
}

/// COMMAND GETKEYS / GETKEYSANDFLAGS <full command> (Redis's
/// `getKeysSubcommandImpl`).
fn get_keys(cmd: &[Bytes], with_flags: bool) -> Reply {
    let Some(base) = cmd.first().and_then(|n| table::lookup(n)) else {
        return Reply::err("ERR Invalid command specified");
    };
    let spec = if cmd.len() > 1 && !base.subs.is_empty() {
        match table::lookup_sub(base, &cmd[1]) {
            Some(s) => s,
            None => return Reply::err("ERR Invalid command specified"),
        }
    } else {
        base
    };
    let Some(meta) = spec.meta().filter(|m| m.has_keys()) else {
        return Reply::err("ERR The command has no key arguments");
    };
    let argc = cmd.len() as i64;
    let arity = spec.arity as i64;
    if (arity > 0 && arity != argc) || argc < -arity {
        return Reply::err("ERR Invalid number of arguments specified for command");
    }
    let keys = getkeys::keys(meta, cmd);
    if keys.is_empty() {
        return if spec.has(flags::NO_MANDATORY_KEYS) {
            Reply::Array(Vec::new())
        } else {
            Reply::err("ERR Invalid arguments specified for command")
        };
    }
    Reply::Array(
        keys.into_iter()
            .map(|k| {
                let key = Reply::Bulk(cmd[k.pos].clone());
                if with_flags {
                    Reply::Array(vec![key, key_flags(k.flags)])
                } else {
                    key
                }
            })
            .collect(),
    )
}
