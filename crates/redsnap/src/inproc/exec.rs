//! Running commands on the engine, under the engine lock: the keyspace commands
//! through the engine's command table (`Store::call`, as the server's dispatch
//! does), the few server commands the library uses (PING, ECHO, PUBLISH, EVAL and
//! EVALSHA of the library's scripts, SCRIPT, TIME), and the conversion of the
//! engine's typed replies to redis-rs values as a RESP2 connection would see them.

use bytes::Bytes;
use redis::Value;
use redsnap_engine::{table, Reply, Store};
use redsnap_persist::Durable;

use super::pubsub::PubSub;
use super::scripts;

/// The commands of one batch (a command, a pipeline, a transaction) under the lock.
pub(crate) struct Batch<'a> {
    pub(crate) store: &'a mut Store,
    pub(crate) durable: Option<&'a Durable>,
    pub(crate) pubsub: &'a PubSub,
    /// `(channel, payload)` published by the batch, delivered once it is durable.
    pub(crate) published: Vec<(Bytes, Bytes)>,
    /// The batch's clock (ms): one reading, as Redis runs a transaction or a script
    /// at one time.
    pub(crate) now: u64,
}

/// The error of a command the in-process backend does not run.
fn unavailable(name: &str) -> Reply {
    Reply::error(format!(
        "ERR '{name}' is not available in the in-process backend (redsnap://)"
    ))
}

impl Batch<'_> {
    /// The MISCONF refusal for writes while persistence is failing.
    pub(crate) fn refusal(&self) -> Option<Reply> {
        self.durable
            .and_then(|d| d.write_refusal())
            .map(Reply::error)
    }

    /// The checks a command passes before it is queued in a transaction (unknown
    /// command, arity, a command this backend does not run): a failure aborts the
    /// transaction (EXECABORT), as in Redis.
    pub(crate) fn queue_check(argv: &[Bytes]) -> Result<(), Reply> {
        let Some(spec) = argv.first().and_then(|n| table::lookup(n)) else {
            return Err(table::unknown_command(argv));
        };
        table::check_arity(spec, argv)?;
        if spec.handler.is_none() && !is_server_command(spec.name) {
            return Err(unavailable(spec.name));
        }
        Ok(())
    }

    /// Runs one command as a client's.
    pub(crate) fn run(&mut self, argv: &[Bytes]) -> Reply {
        let Some(spec) = argv.first().and_then(|n| table::lookup(n)) else {
            return table::unknown_command(argv);
        };
        if let Err(e) = table::check_arity(spec, argv) {
            return e;
        }
        if spec.handler.is_none() {
            return self.server_command(spec.name, argv);
        }
        if spec.is_write() {
            if let Some(r) = self.refusal() {
                return r;
            }
        }
        self.store.call(spec, 0, self.now, argv, false)
    }

    /// Runs one command for a script's `redis.call` (Redis 7.0's `scriptCall`
    /// checks, with the clock frozen at the script's start).
    fn run_in_script(&mut self, argv: &[Bytes]) -> Reply {
        let Some(spec) = argv.first().and_then(|n| table::lookup(n)) else {
            return Reply::err("ERR Unknown Redis command called from script");
        };
        if table::check_arity(spec, argv).is_err() {
            return Reply::err("ERR Wrong number of args calling Redis command from script");
        }
        if spec.has(table::flags::NOSCRIPT) {
            return Reply::err("ERR This Redis command is not allowed from script");
        }
        if spec.handler.is_none() {
            return match spec.name {
                "publish" | "ping" | "echo" | "time" => self.server_command(spec.name, argv),
                name => unavailable(name),
            };
        }
        if spec.is_write() {
            if let Some(r) = self.refusal() {
                return r;
            }
        }
        self.store.call(spec, 0, self.now, argv, false)
    }

    fn server_command(&mut self, name: &str, argv: &[Bytes]) -> Reply {
        match name {
            // Refused while persistence fails, as Redis 7.0's processCommand refuses
            // PING with writes: a health check sees the failure.
            "ping" => match (self.refusal(), argv.get(1)) {
                (Some(r), _) => r,
                (None, None) => Reply::simple("PONG"),
                (None, Some(m)) => Reply::Bulk(m.clone()),
            },
            "echo" => Reply::Bulk(argv[1].clone()),
            "time" => {
                let us = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_micros());
                Reply::Array(vec![
                    Reply::bulk_str(&(us / 1_000_000).to_string()),
                    Reply::bulk_str(&(us % 1_000_000).to_string()),
                ])
            }
            "publish" => {
                let n = self.pubsub.receivers(&argv[1]);
                self.published.push((argv[1].clone(), argv[2].clone()));
                Reply::Int(n)
            }
            "eval" | "eval_ro" => self.eval(scripts::by_text(&argv[1]), false, argv),
            "evalsha" | "evalsha_ro" => self.eval(scripts::by_sha(&argv[1]), true, argv),
            "script" => script_command(argv),
            "select" => match &argv[1][..] {
                b"0" => Reply::ok(),
                _ => Reply::err(
                    "ERR the in-process backend (redsnap://) serves database 0 only",
                ),
            },
            "cluster" => Reply::err("ERR This instance has cluster support disabled"),
            "quit" => Reply::ok(),
            "multi" | "exec" | "discard" | "watch" | "unwatch" => Reply::error(format!(
                "ERR '{name}' as a separate command is not available in the in-process backend (redsnap://): use an atomic pipeline (MULTI/EXEC), which runs whole under its lock"
            )),
            _ => unavailable(name),
        }
    }

    /// EVAL / EVALSHA of one of the library's scripts, run natively (see
    /// [`scripts`]), atomically: the whole batch holds the engine lock.
    fn eval(
        &mut self,
        native: Option<&'static scripts::Native>,
        by_sha: bool,
        argv: &[Bytes],
    ) -> Reply {
        let numkeys = match std::str::from_utf8(&argv[2])
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
        {
            Some(n) => n,
            None => return Reply::err(redsnap_engine::reply::ERR_NOT_INT),
        };
        if numkeys < 0 {
            return Reply::err("ERR Number of keys can't be negative");
        }
        let rest = &argv[3..];
        if numkeys as u64 > rest.len() as u64 {
            return Reply::err("ERR Number of keys can't be greater than number of args");
        }
        let Some(native) = native else {
            return if by_sha {
                Reply::err("NOSCRIPT No matching script. Please use EVAL.")
            } else {
                Reply::err(scripts::UNKNOWN)
            };
        };
        let (keys, args) = rest.split_at(numkeys as usize);
        self.store.in_script = true;
        let reply = native.run(&mut |a: &[Bytes]| self.run_in_script(a), keys, args);
        self.store.in_script = false;
        reply
    }
}

/// Server commands the in-process backend runs (anything else without an engine
/// handler is refused with an error naming the backend).
fn is_server_command(name: &str) -> bool {
    matches!(
        name,
        "ping"
            | "echo"
            | "time"
            | "publish"
            | "eval"
            | "eval_ro"
            | "evalsha"
            | "evalsha_ro"
            | "script"
            | "select"
            | "quit"
    )
}

/// SCRIPT LOAD / EXISTS / FLUSH over the library's scripts.
fn script_command(argv: &[Bytes]) -> Reply {
    let sub = argv
        .get(1)
        .map(|s| s.to_ascii_lowercase())
        .unwrap_or_default();
    match &sub[..] {
        b"load" if argv.len() == 3 => match scripts::by_text(&argv[2]) {
            Some(s) => Reply::bulk_str(&s.sha),
            None => Reply::err(scripts::UNKNOWN),
        },
        b"exists" if argv.len() >= 3 => Reply::Array(
            argv[2..]
                .iter()
                .map(|sha| Reply::Int(scripts::by_sha(sha).is_some() as i64))
                .collect(),
        ),
        // The library's scripts are built in: nothing to flush.
        b"flush" => Reply::ok(),
        _ => unavailable("script"),
    }
}

/// The value a RESP2 connection would read for `reply` (what redis-rs's parser
/// makes of the server's encoding), built directly: no RESP on the data path.
pub(crate) fn to_value(reply: Reply) -> Value {
    match reply {
        Reply::Simple(s) if &s[..] == b"OK" => Value::Okay,
        Reply::Simple(s) => Value::SimpleString(String::from_utf8_lossy(&s).into_owned()),
        Reply::Error(e) => error_value(&e),
        Reply::Int(i) => Value::Int(i),
        Reply::Bulk(b) => Value::BulkString(b.to_vec()),
        Reply::Nil | Reply::NilArray => Value::Nil,
        Reply::Array(items) | Reply::Set(items) | Reply::Push(items) => {
            Value::Array(items.into_iter().map(to_value).collect())
        }
        Reply::Map(pairs) => {
            let mut out = Vec::with_capacity(pairs.len() * 2);
            for (k, v) in pairs {
                out.push(to_value(k));
                out.push(to_value(v));
            }
            Value::Array(out)
        }
        Reply::Double(d) => Value::BulkString(redsnap_engine::num::fmt_g17(d).into_bytes()),
        Reply::HumanDouble(d) => Value::BulkString(redsnap_engine::num::fmt_human(d).into_bytes()),
        Reply::Bool(b) => Value::Int(b as i64),
        Reply::Verbatim(_, text) => Value::BulkString(text.to_vec()),
        Reply::BigNumber(n) => Value::BulkString(n.to_vec()),
        Reply::Attribute(_, r) => to_value(*r),
    }
}

/// An error reply as redis-rs represents it. redis-rs builds its `ServerError`
/// only from the wire, so the one line is parsed (error paths only).
pub(crate) fn error_value(text: &[u8]) -> Value {
    let mut line = Vec::with_capacity(text.len() + 3);
    line.push(b'-');
    line.extend(
        text.iter()
            .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }),
    );
    line.extend_from_slice(b"\r\n");
    match redis::parse_redis_value(&line) {
        Ok(v) => v,
        Err(_) => Value::SimpleString(String::from_utf8_lossy(text).into_owned()),
    }
}

/// An error reply as a `RedisError` (for a request that fails as a whole).
pub(crate) fn error(text: &str) -> redis::RedisError {
    match error_value(text.as_bytes()) {
        Value::ServerError(e) => e.into(),
        _ => redis::RedisError::from((
            redis::ErrorKind::Client,
            "in-process error",
            text.to_string(),
        )),
    }
}

/// The arguments of a redis-rs command, copied out of it.
pub(crate) fn argv(cmd: &redis::Cmd) -> Vec<Bytes> {
    if cmd.args_iter().any(|a| matches!(a, redis::Arg::Cursor)) {
        // A cursor argument holds state only the packed form shows.
        return unpack(&cmd.get_packed_command());
    }
    cmd.args_iter()
        .map(|a| match a {
            redis::Arg::Simple(b) => Bytes::copy_from_slice(b),
            _ => Bytes::new(),
        })
        .collect()
}

/// The arguments of a packed command (`*n` then `$len` bulk strings).
fn unpack(packed: &[u8]) -> Vec<Bytes> {
    fn line(b: &[u8], at: &mut usize) -> Option<usize> {
        let start = *at;
        let end = start + b.get(start..)?.windows(2).position(|w| w == b"\r\n")?;
        *at = end + 2;
        std::str::from_utf8(b.get(start + 1..end)?)
            .ok()?
            .parse()
            .ok()
    }
    let mut at = 0;
    let mut out = Vec::new();
    let Some(n) = line(packed, &mut at) else {
        return out;
    };
    for _ in 0..n {
        let Some(len) = line(packed, &mut at) else {
            break;
        };
        let Some(arg) = packed.get(at..at + len) else {
            break;
        };
        out.push(Bytes::copy_from_slice(arg));
        at += len + 2;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_convert_as_resp2_reads_them() {
        assert_eq!(to_value(Reply::ok()), Value::Okay);
        assert_eq!(
            to_value(Reply::simple("PONG")),
            Value::SimpleString("PONG".into())
        );
        assert_eq!(to_value(Reply::NilArray), Value::Nil);
        assert_eq!(
            to_value(Reply::Map(vec![(Reply::bulk_str("a"), Reply::Int(1))])),
            Value::Array(vec![Value::BulkString(b"a".to_vec()), Value::Int(1)])
        );
        assert_eq!(
            to_value(Reply::Double(1.5)),
            Value::BulkString(b"1.5".to_vec())
        );
        match to_value(Reply::err("WRONGTYPE Operation against a key")) {
            Value::ServerError(e) => {
                assert_eq!(e.code(), "WRONGTYPE");
                assert_eq!(e.details(), Some("Operation against a key"));
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn cursor_arguments_are_read_from_the_packed_command() {
        let mut cmd = redis::cmd("SCAN");
        cmd.cursor_arg(7).arg("MATCH").arg("a*");
        assert_eq!(
            argv(&cmd),
            vec![
                Bytes::from_static(b"SCAN"),
                Bytes::from_static(b"7"),
                Bytes::from_static(b"MATCH"),
                Bytes::from_static(b"a*")
            ]
        );
    }
}
