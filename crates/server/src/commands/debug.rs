//! DEBUG and the subcommands Redis's tools and test suite use.

use super::Handler;
use crate::conn::{Conn, Step};
use crate::state::Inner;
use bytes::Bytes;
use redsnap_engine::cmd::is;
use redsnap_engine::digest;
use redsnap_engine::table::CommandSpec;
use redsnap_engine::Reply;
use std::time::Duration;

pub(crate) const HANDLERS: &[(&str, Handler)] = &[("debug", debug_cmd)];

fn debug_cmd(conn: &mut Conn, inner: &mut Inner, _: &'static CommandSpec, argv: &[Bytes]) -> Step {
    debug(conn, inner, argv)
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
    } else if is(sub, "error") && argv.len() == 3 {
        // The argument as an error reply, newlines made spaces (debug.c).
        let text: Vec<u8> = argv[2]
            .iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b })
            .collect();
        Reply::Error(Bytes::from(text)).into()
    } else if is(sub, "pause-cron") && argv.len() == 3 {
        // The cron's Redis work stops (active expiry, the tracking table limit).
        inner.cron_paused = redsnap_engine::num::parse_i64(&argv[2]).is_some_and(|v| v != 0);
        Reply::ok().into()
    } else if is(sub, "set-disable-deny-scripts") && argv.len() == 3 {
        inner.scripts.allow_denied =
            redsnap_engine::num::parse_i64(&argv[2]).is_some_and(|v| v != 0);
        Reply::ok().into()
    } else if is(sub, "object") {
        let Some(key) = argv.get(2) else {
            return Reply::err("ERR syntax error").into();
        };
        let db = conn.db;
        match inner.store.dbs[db].get(key) {
            None => Reply::err("ERR no such key").into(),
            Some(e) => {
                let enc = redsnap_engine::Store::encoding_of(&inner.store.config, &e.obj);
                Reply::Simple(Bytes::from(format!("Value at:0x0 refcount:1 encoding:{enc} serializedlength:{} lru:0 lru_seconds_idle:0", e.value().mem_usage()))).into()
            }
        }
    } else if is(sub, "populate") && (3..=5).contains(&argv.len()) {
        populate(conn, inner, argv).into()
    } else if is(sub, "reload") {
        super::persistence::persist_command(&conn.shared.clone(), inner, "debug-reload", argv)
    } else if let Some(step) = inspect(conn, inner, argv) {
        step
    } else if is(sub, "jmap") || is(sub, "quicklist-packed-threshold") || is(sub, "change-repl-id")
    {
        Reply::ok().into()
    } else if is(sub, "replybuffer") && argv.len() == 4 {
        // The reply buffers' resizing by the cron (`querybuf.rs`).
        use crate::querybuf::{REPLY_PEAK_RESET_DEFAULT, REPLY_PEAK_RESET_MS, REPLY_RESIZING};
        use std::sync::atomic::Ordering::Relaxed;
        if is(&argv[2], "peak-reset-time") {
            let ms = if is(&argv[3], "never") {
                -1
            } else if is(&argv[3], "reset") {
                REPLY_PEAK_RESET_DEFAULT
            } else {
                match redsnap_engine::num::parse_i64(&argv[3]) {
                    Some(v) => v,
                    None => return Reply::err(redsnap_engine::reply::ERR_NOT_INT).into(),
                }
            };
            REPLY_PEAK_RESET_MS.store(ms, Relaxed);
            Reply::ok().into()
        } else if is(&argv[2], "resizing") {
            // Redis reads it with atoi.
            let on = std::str::from_utf8(&argv[3])
                .ok()
                .and_then(|t| t.trim().parse::<i64>().ok())
                .unwrap_or(0);
            REPLY_RESIZING.store(on != 0, Relaxed);
            Reply::ok().into()
        } else {
            Reply::error(format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try DEBUG HELP.",
                String::from_utf8_lossy(sub)
            ))
            .into()
        }
    } else {
        Reply::error(format!(
            "ERR DEBUG subcommand '{}' is not supported by redsnap",
            String::from_utf8_lossy(sub)
        ))
        .into()
    }
}

/// A positive integer argument of DEBUG POPULATE, with Redis's errors
/// (`getPositiveLongFromObjectOrReply`).
fn positive(arg: &[u8]) -> Result<u64, Reply> {
    match redsnap_engine::num::parse_i64(arg) {
        Some(n) if n >= 0 => Ok(n as u64),
        Some(_) => Err(Reply::err("ERR value is out of range, must be positive")),
        None => Err(Reply::err("ERR value is not an integer or out of range")),
    }
}

/// DEBUG POPULATE count [prefix] [size], as debug.c: keys `<prefix>:<j>` (prefix
/// `key` by default) for j in 0..count holding `value:<j>`, cut or zero-padded to
/// `size` bytes when a size is given; keys that exist are left alone. Unlike Redis,
/// which adds them behind persistence's back, each key is written as a SET NX:
/// logged and replicated, so the append log, the next snapshot and replicas hold
/// what memory holds.
fn populate(conn: &mut Conn, inner: &mut Inner, argv: &[Bytes]) -> Reply {
    let count = match positive(&argv[2]) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let size = match argv.get(4).map(|a| positive(a)) {
        None => 0,
        Some(Ok(n)) => n as usize,
        Some(Err(e)) => return e,
    };
    if size > inner.config.u64("proto-max-bulk-len") as usize {
        return Reply::err("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
    }
    let Some(set) = redsnap_engine::table::lookup(b"set") else {
        return Reply::err("ERR SET is not in the command table");
    };
    let prefix = argv.get(3).cloned().unwrap_or(Bytes::from_static(b"key"));
    let now = conn.command_ms();
    let (name, nx) = (Bytes::from_static(b"SET"), Bytes::from_static(b"NX"));
    for j in 0..count {
        let mut key = Vec::with_capacity(prefix.len() + 21);
        key.extend_from_slice(&prefix);
        key.extend_from_slice(format!(":{j}").as_bytes());
        let text = format!("value:{j}");
        let value = if size == 0 {
            text.into_bytes()
        } else {
            let mut v = vec![0u8; size];
            let n = size.min(text.len());
            v[..n].copy_from_slice(&text.as_bytes()[..n]);
            v
        };
        let args = [
            name.clone(),
            Bytes::from(key),
            Bytes::from(value),
            nx.clone(),
        ];
        if let Reply::Error(e) = inner.store.call(set, conn.db, now, &args, false) {
            return Reply::Error(e);
        }
    }
    Reply::ok()
}

/// DIGEST, DIGEST-VALUE, PROTOCOL and LOADAOF: runs `argv` (DEBUG <sub> ...) when it
/// is one of these.
fn inspect(conn: &mut Conn, inner: &mut Inner, argv: &[Bytes]) -> Option<Step> {
    let sub = &argv[1];
    let reply = if is(sub, "digest") && argv.len() == 2 {
        let d = digest::dataset_digest(&inner.store);
        Reply::Simple(Bytes::from(digest::hex(&d)))
    } else if is(sub, "digest-value") {
        // A debug command sees logically expired keys too (Redis does not use
        // lookupKey here).
        let db = &inner.store.dbs[conn.db];
        Reply::Array(
            argv[2..]
                .iter()
                .map(|k| {
                    let d = digest::value_digest(db.get(k));
                    Reply::Simple(Bytes::from(digest::hex(&d)))
                })
                .collect(),
        )
    } else if is(sub, "protocol") && argv.len() == 3 {
        if is(&argv[2], "push") && conn.resp3 {
            // A push is not the command's reply: a normal reply follows it, for
            // clients that discard pushes (as Redis does).
            return Some(Step::Many(vec![
                Reply::Push(vec![Reply::bulk_str("server-cpu-usage"), Reply::Int(42)]),
                Reply::bulk_str("Some real reply following the push reply"),
            ]));
        }
        protocol(&argv[2])
    } else if is(sub, "loadaof") && argv.len() == 2 {
        // Redis flushes its AOF, empties the dataset and loads the AOF back. redsnap's
        // equivalent: flush the append log and recover from the data directory (the
        // snapshot plus the log generations after it), without saving first.
        crate::persist::reload_locked(inner)
    } else {
        return None;
    };
    Some(reply.into())
}

/// DEBUG PROTOCOL <type>: one reply of each RESP type, as Redis's debug.c sends them.
fn protocol(name: &[u8]) -> Reply {
    let ints = || (0..3).map(Reply::Int).collect::<Vec<_>>();
    let n = name.to_ascii_lowercase();
    match n.as_slice() {
        b"string" => Reply::bulk_str("Hello World"),
        b"integer" => Reply::Int(12345),
        // Redis's literal, not pi.
        #[allow(clippy::approx_constant)]
        b"double" => Reply::Double(3.141),
        b"bignum" => Reply::BigNumber(Bytes::from_static(
            b"1234567999999999999999999999999999999",
        )),
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
        b"push" => Reply::err("ERR RESP2 is not supported by this command"),
        b"true" => Reply::Bool(true),
        b"false" => Reply::Bool(false),
        b"verbatim" => Reply::Verbatim("txt", Bytes::from_static(b"This is a verbatim\nstring")),
        _ => Reply::err("ERR Wrong protocol type name. Please use one of the following: string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false"),
    }
}
