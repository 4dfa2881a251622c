//! Server administration commands: INFO, CONFIG, CLIENT, COMMAND, DEBUG, MEMORY,
//! LATENCY, SLOWLOG, persistence commands.

use crate::conn::{Conn, Step};
use crate::state::{ConnMsg, Inner};
use bytes::Bytes;
use redsnap_engine::cmd::is;
use redsnap_engine::table::{self, flags, CommandSpec};
use redsnap_engine::{now_ms, Reply};
use std::fmt::Write;
use std::time::Duration;

pub(crate) fn run(
    conn: &mut Conn,
    inner: &mut Inner,
    spec: &'static CommandSpec,
    argv: &[Bytes],
) -> Step {
    match spec.name {
        "info" => info_reply(conn, inner, argv),
        "config" => config(conn, inner, argv).into(),
        "client" => client(conn, inner, argv),
        "command" => command(conn, argv).into(),
        "debug" => debug(conn, inner, argv),
        "cluster" => Reply::err("ERR This instance has cluster support disabled").into(),
        "memory" => memory(conn, inner, argv).into(),
        "latency" => {
            if is(&argv[1], "reset") {
                Reply::Int(0).into()
            } else if is(&argv[1], "doctor") {
                Reply::Verbatim("txt", Bytes::from_static(b"Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. I honestly think you ought to sleep better.\n")).into()
            } else {
                Reply::Array(vec![]).into()
            }
        }
        "slowlog" => {
            if is(&argv[1], "len") {
                Reply::Int(0).into()
            } else if is(&argv[1], "reset") {
                Reply::ok().into()
            } else {
                Reply::Array(vec![]).into()
            }
        }
        "lolwut" => Reply::Verbatim(
            "txt",
            Bytes::from(format!("redsnap ver. {}\n", crate::REDSNAP_VERSION)),
        )
        .into(),
        "save" | "bgsave" | "bgrewriteaof" | "lastsave" => {
            crate::persist_command(&conn.shared.clone(), inner, spec.name, argv)
        }
        _ => Reply::error(format!("ERR '{}' is not supported by redsnap", spec.name)).into(),
    }
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

fn client_line(c: &crate::state::ClientInfo) -> String {
    let now = std::time::Instant::now();
    format!(
        "id={} addr={} laddr={} fd=8 name={} age={} idle={} flags={} db={} sub={} psub={} ssub=0 multi={} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=16384 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
        c.id,
        c.addr,
        c.laddr,
        String::from_utf8_lossy(&c.name),
        now.duration_since(c.created).as_secs(),
        now.duration_since(c.last_active).as_secs(),
        if c.sub + c.psub > 0 { "P" } else if c.multi >= 0 { "x" } else { "N" },
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
            .map(client_line)
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
                s.push_str(&client_line(c));
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
        if is(&argv[2], "on") {
            Reply::ok().into()
        } else {
            Reply::err("ERR CLIENT REPLY OFF/SKIP is not supported by redsnap").into()
        }
    } else if is(sub, "getredir") {
        Reply::Int(-1).into()
    } else if is(sub, "unblock") {
        let id = redsnap_engine::num::parse_i64(&argv[2]).unwrap_or(0) as u64;
        if inner.blocked.contains_key(&id) {
            let error = argv.get(3).is_some_and(|a| is(a, "error"));
            crate::blocking::unblock(inner, id);
            if let Some(c) = inner.clients.get(&id) {
                let r = if error {
                    Reply::err("UNBLOCKED client unblocked via CLIENT UNBLOCK")
                } else {
                    Reply::NilArray
                };
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

fn config(conn: &mut Conn, inner: &mut Inner, argv: &[Bytes]) -> Reply {
    let sub = &argv[1];
    if is(sub, "get") {
        let mut pairs = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for pat in &argv[2..] {
            for (k, v) in inner.config.matching(pat) {
                if seen.insert(k) {
                    pairs.push((Reply::bulk_str(k), Reply::bulk_str(&v)));
                }
            }
        }
        let _ = conn;
        Reply::Map(pairs)
    } else if is(sub, "set") {
        if !argv.len().is_multiple_of(2) {
            return Reply::err("ERR wrong number of arguments for 'config|set' command");
        }
        let mut next = inner.config.clone();
        for pair in argv[2..].chunks(2) {
            let name = String::from_utf8_lossy(&pair[0]).into_owned();
            let value = String::from_utf8_lossy(&pair[1]).into_owned();
            if let Err(e) = next.set_runtime(&name, &value) {
                return Reply::error(format!("ERR {e}"));
            }
        }
        let old = std::mem::replace(&mut inner.config, next);
        let shared = conn.shared.clone();
        if let Err(e) = crate::apply_config_change(&shared, inner, &old) {
            inner.config = old;
            crate::apply_config(inner);
            return Reply::error(format!("ERR {e}"));
        }
        crate::publish_live(&shared, &inner.config);
        Reply::ok()
    } else if is(sub, "resetstat") {
        inner.stats = Default::default();
        inner.store.stats = Default::default();
        conn.shared
            .live
            .rejected_connections
            .store(0, std::sync::atomic::Ordering::Relaxed);
        Reply::ok()
    } else if is(sub, "rewrite") {
        Reply::err("ERR The server is running without a config file")
    } else {
        Reply::Array(vec![Reply::bulk_str("CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are: GET, SET, RESETSTAT, REWRITE.")])
    }
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
        let pos = spec.key_positions(argv.len() - 2);
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

fn debug(conn: &mut Conn, inner: &mut Inner, argv: &[Bytes]) -> Step {
    let allowed = match inner.config.str("enable-debug-command").as_str() {
        "yes" => true,
        "local" => inner
            .clients
            .get(&conn.id)
            .is_some_and(|c| c.addr.starts_with("127.0.0.1:") || c.addr.starts_with("[::1]:")),
        _ => false,
    };
    if !allowed {
        return Reply::err("ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.").into();
    }
    let sub = &argv[1];
    if is(sub, "sleep") {
        let secs = argv
            .get(2)
            .and_then(|a| redsnap_engine::num::parse_f64(a))
            .unwrap_or(0.0)
            .clamp(0.0, 3600.0);
        Step::Sleep(Duration::from_secs_f64(secs), Reply::ok())
    } else if is(sub, "set-active-expire") {
        inner.store.active_expire = argv.get(2).is_none_or(|a| &a[..] != b"0");
        Reply::ok().into()
    } else if is(sub, "set-disable-deny-scripts") && argv.len() == 3 {
        inner.scripts.allow_denied =
            redsnap_engine::num::parse_i64(&argv[2]).is_some_and(|v| v != 0);
        Reply::ok().into()
    } else if is(sub, "protocol") && argv.len() == 3 {
        debug_protocol(&argv[2], conn.resp3)
    } else if is(sub, "object") {
        let Some(key) = argv.get(2) else {
            return Reply::err("ERR syntax error").into();
        };
        let db = conn.db;
        match inner.store.dbs[db].get(key) {
            None => Reply::err("ERR no such key").into(),
            Some(e) => {
                let enc = redsnap_engine::Store::encoding_of(&inner.store.config, e.value());
                Reply::Simple(Bytes::from(format!("Value at:0x0 refcount:1 encoding:{enc} serializedlength:{} lru:0 lru_seconds_idle:0", e.value().mem_usage()))).into()
            }
        }
    } else if is(sub, "reload") {
        crate::persist_command(&conn.shared.clone(), inner, "debug-reload", argv)
    } else if is(sub, "jmap") || is(sub, "quicklist-packed-threshold") || is(sub, "change-repl-id")
    {
        Reply::ok().into()
    } else {
        Reply::error(format!(
            "ERR DEBUG subcommand '{}' is not supported by redsnap",
            String::from_utf8_lossy(sub)
        ))
        .into()
    }
}

/// DEBUG PROTOCOL <type>: a reply of each RESP3 type (Redis's debug.c).
fn debug_protocol(name: &[u8], resp3: bool) -> Step {
    let ints = || (0..3).map(Reply::Int).collect::<Vec<_>>();
    let name = name.to_ascii_lowercase();
    if name == b"push" {
        if !resp3 {
            return Reply::err("ERR RESP2 is not supported by this command").into();
        }
        // Push replies are not replies to a command: a real one follows.
        return Step::Many(vec![
            Reply::Push(vec![Reply::bulk_str("server-cpu-usage"), Reply::Int(42)]),
            Reply::bulk_str("Some real reply following the push reply"),
        ]);
    }
    let reply = match name.as_slice() {
        b"string" => Reply::bulk_str("Hello World"),
        b"integer" => Reply::Int(12345),
        // Redis's literal, not pi.
        #[allow(clippy::approx_constant)]
        b"double" => Reply::Double(3.141),
        b"bignum" => Reply::BigNum(Bytes::from_static(b"1234567999999999999999999999999999999")),
        b"null" => Reply::Nil,
        b"array" => Reply::Array(ints()),
        b"set" => Reply::Set(ints()),
        b"map" => Reply::Map((0..3).map(|j| (Reply::Int(j), Reply::Bool(j == 1))).collect()),
        b"attrib" => Reply::Attribute(
            vec![(
                Reply::bulk_str("key-popularity"),
                Reply::Array(vec![Reply::bulk_str("key:123"), Reply::Int(90)]),
            )],
            Box::new(Reply::bulk_str("Some real reply following the attribute")),
        ),
        b"verbatim" => Reply::Verbatim("txt", Bytes::from_static(b"This is a verbatim\nstring")),
        b"true" => Reply::Bool(true),
        b"false" => Reply::Bool(false),
        _ => Reply::err("ERR Wrong protocol type name. Please use one of the following: string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false"),
    };
    reply.into()
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
            inner.blocked.len(),
            inner.clients.values().filter(|c| c.sub + c.psub > 0).count(),
        );
    }
    if want("memory") {
        let rss = rss_bytes();
        let used = crate::used_memory(inner);
        let _ = write!(
            out,
            "# Memory\r\nused_memory:{used}\r\nused_memory_human:{:.2}M\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{:.2}M\r\nused_memory_peak:{used}\r\n",
            used as f64 / 1048576.0,
            rss as f64 / 1048576.0,
        );
        out.push_str(&crate::scripting::memory_info(inner));
        let _ = write!(
            out,
            "maxmemory:{}\r\nmaxmemory_policy:{}\r\nmem_allocator:libc\r\n\r\n",
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
