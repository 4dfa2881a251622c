//! A replication source: SYNC and PSYNC (full resynchronization only) hand a replica
//! the dataset as an RDB file, then the stream of writes in the form Redis 7.0
//! propagates them (`replicationFeedSlaves`): a SELECT whenever the database changes,
//! one multibulk per command, relative expiries as absolute ones (PEXPIREAT, SET ...
//! PXAT), the writes of one command (EXEC, a script, a write that lazily expired a
//! key first) wrapped in MULTI/EXEC when there are several, as
//! `propagatePendingCommands` does, and a PING every `repl-ping-replica-period`
//! seconds.
//!
//! The stream is built from the append log's records (`Effects::log`): a command's
//! records are fed when it returns (`after_command`), records left by anything else
//! (blocked clients served after a command, active expiry, eviction) one by one
//! before the next command runs and before the records are handed to the log
//! (`drain`). Nothing is done when no replica is attached.
//!
//! Limits: the RDB file is built under the server lock (a fork in Redis), so SYNC on
//! a large dataset stalls other clients while it is encoded; there is no backlog,
//! so a replica that reconnects gets a full resynchronization.

use crate::conn::{Conn, Step};
use crate::state::{ConnMsg, Inner};
use bytes::Bytes;
use redsnap_engine::cmd::is;
use redsnap_engine::table::CommandSpec;
use redsnap_engine::{LogRecord, Reply};
use std::fmt::Write;
use std::time::Instant;

/// Replicas attached to this server and the state of their stream.
#[derive(Debug)]
pub(crate) struct Replication {
    replicas: Vec<Replica>,
    /// How many records of `Effects::log` were fed already.
    fed: usize,
    /// The replication id FULLRESYNC announces (random, per process).
    replid: String,
    /// Bytes of stream produced so far (`master_repl_offset`).
    offset: u64,
    last_ping: Instant,
}

#[derive(Debug)]
struct Replica {
    id: u64,
    /// The database the replica's stream last SELECTed.
    db: Option<usize>,
}

impl Default for Replication {
    fn default() -> Self {
        let mut replid = String::with_capacity(40);
        for _ in 0..5 {
            let _ = write!(replid, "{:08x}", rand::random::<u32>());
        }
        Replication {
            replicas: Vec::new(),
            fed: 0,
            replid,
            offset: 0,
            last_ping: Instant::now(),
        }
    }
}

impl Replication {
    /// Whether a connection is a replica (its own commands get no reply).
    pub(crate) fn is_replica(&self, id: u64) -> bool {
        self.replicas.iter().any(|r| r.id == id)
    }
}

/// SYNC, PSYNC and REPLCONF.
pub(crate) fn command(conn: &mut Conn, inner: &mut Inner, name: &str, argv: &[Bytes]) -> Step {
    match name {
        "replconf" => {
            // ACK and GETACK are part of the stream's conversation: no reply, as Redis.
            if argv.len() >= 2 && (is(&argv[1], "ack") || is(&argv[1], "getack")) {
                return Step::Many(vec![]);
            }
            if argv.len().is_multiple_of(2) {
                return Reply::err("ERR syntax error").into();
            }
            Reply::ok().into()
        }
        _ => {
            if inner.repl.is_replica(conn.id) {
                // Redis ignores SYNC from a connection that is a replica already.
                return Step::Many(vec![]);
            }
            attach(conn, inner, name == "psync");
            Step::Many(vec![])
        }
    }
}

/// Makes `conn` a replica: FULLRESYNC (for PSYNC), then the RDB file, then the stream.
fn attach(conn: &mut Conn, inner: &mut Inner, psync: bool) {
    // What earlier commands changed is in the file: the stream starts after it.
    feed_each(inner);
    let Some(tx) = inner.clients.get(&conn.id).map(|c| c.tx.clone()) else {
        return;
    };
    let rdb = match replica_rdb(inner) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(
                client = conn.id,
                "cannot build the RDB file for a replica: {e}"
            );
            return;
        }
    };
    let mut out = Vec::with_capacity(rdb.len() + 80);
    if psync {
        let _ = write!(
            Wrapper(&mut out),
            "+FULLRESYNC {} {}\r\n",
            inner.repl.replid,
            inner.repl.offset
        );
    }
    // The payload is not followed by CRLF (Redis's replica protocol).
    let _ = write!(Wrapper(&mut out), "${}\r\n", rdb.len());
    out.extend_from_slice(&rdb);
    let _ = tx.send(ConnMsg::Raw(Bytes::from(out)));
    inner.repl.replicas.push(Replica {
        id: conn.id,
        db: None,
    });
    inner.repl.fed = inner.store.effects.log.len();
    // Every write must leave a record now, whether or not the append log is on.
    inner.store.log_enabled = true;
    tracing::info!(
        client = conn.id,
        "replica attached (full resynchronization)"
    );
}

/// `fmt::Write` over a byte vector.
struct Wrapper<'a>(&'a mut Vec<u8>);

impl Write for Wrapper<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Feeds the records left since the last feed, each on its own (before a command
/// runs: what blocked clients, expiry or eviction did).
pub(crate) fn feed_each(inner: &mut Inner) {
    if inner.repl.replicas.is_empty() {
        return;
    }
    feed(inner, false);
}

/// Feeds the records a top-level command left, as one unit: wrapped in MULTI/EXEC
/// when there are several, except for commands that may lazily expire arbitrary
/// keys (SCAN, RANDOMKEY: Redis's CMD_TOUCHES_ARBITRARY_KEYS), whose deletions go
/// out one by one.
pub(crate) fn after_command(inner: &mut Inner, spec: &CommandSpec) {
    if inner.repl.replicas.is_empty() {
        return;
    }
    feed(inner, !matches!(spec.name, "scan" | "randomkey"));
}

/// Before the records are taken for the append log: feeds what is left and starts
/// counting from the empty list again.
pub(crate) fn drain(inner: &mut Inner) {
    feed_each(inner);
    inner.repl.fed = 0;
}

/// Every `repl-ping-replica-period` seconds, a PING in the stream (replicas use it
/// to detect a dead link).
pub(crate) fn cron(inner: &mut Inner) {
    if inner.repl.replicas.is_empty() {
        return;
    }
    let period = inner.config.u64("repl-ping-replica-period").max(1);
    if inner.repl.last_ping.elapsed().as_secs() < period {
        return;
    }
    inner.repl.last_ping = Instant::now();
    let mut out = Vec::new();
    encode_command(&mut out, &[Bytes::from_static(b"PING")]);
    send(inner, |_| out.clone());
}

fn feed(inner: &mut Inner, as_unit: bool) {
    let log = &inner.store.effects.log;
    let from = inner.repl.fed.min(log.len());
    if from == log.len() {
        return;
    }
    let cmds: Vec<(usize, Vec<Bytes>)> = log[from..].iter().map(|r| (r.db, to_stream(r))).collect();
    inner.repl.fed = log.len();
    let wrap = as_unit && cmds.len() > 1;
    send(inner, |replica| {
        let mut out = Vec::new();
        let mut emit = |out: &mut Vec<u8>, db: Option<usize>, argv: &[Bytes]| {
            if let Some(db) = db {
                if replica.db != Some(db) {
                    encode_command(
                        out,
                        &[Bytes::from_static(b"SELECT"), Bytes::from(db.to_string())],
                    );
                    replica.db = Some(db);
                }
            }
            encode_command(out, argv);
        };
        if wrap {
            emit(&mut out, Some(cmds[0].0), &[Bytes::from_static(b"MULTI")]);
        }
        for (db, argv) in &cmds {
            emit(&mut out, Some(*db), argv);
        }
        if wrap {
            emit(&mut out, None, &[Bytes::from_static(b"EXEC")]);
        }
        out
    });
}

/// Sends each replica its bytes (built per replica: the SELECTs depend on its
/// stream); drops replicas whose connection is gone, and stops recording writes for
/// them when the last one goes and the append log is off.
fn send(inner: &mut Inner, mut build: impl FnMut(&mut Replica) -> Vec<u8>) {
    let mut replicas = std::mem::take(&mut inner.repl.replicas);
    let mut produced = 0;
    replicas.retain_mut(|r| {
        let Some(c) = inner.clients.get(&r.id) else {
            return false;
        };
        let out = build(r);
        produced = produced.max(out.len());
        c.tx.send(ConnMsg::Raw(Bytes::from(out))).is_ok()
    });
    inner.repl.offset += produced as u64;
    if replicas.is_empty() {
        inner.store.log_enabled = inner.persist.as_ref().is_some_and(|p| p.log.is_some());
    }
    inner.repl.replicas = replicas;
}

/// Whether writes must leave log records for replicas (kept on when the append log
/// is turned off while replicas are attached).
pub(crate) fn needs_records(inner: &Inner) -> bool {
    !inner.repl.replicas.is_empty()
}

fn encode_command(out: &mut Vec<u8>, argv: &[Bytes]) {
    let _ = write!(Wrapper(out), "*{}\r\n", argv.len());
    for a in argv {
        let _ = write!(Wrapper(out), "${}\r\n", a.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// A log record as Redis 7.0 propagates the command: expiries relative to the
/// record's time become absolute (EXPIRE/PEXPIRE/EXPIREAT -> PEXPIREAT, SETEX/PSETEX
/// and SET EX/PX/EXAT -> SET key value PXAT, GETEX with a TTL -> PEXPIREAT, GETEX
/// PERSIST -> PERSIST), and a deadline already past deletes the key (DEL).
pub(crate) fn to_stream(r: &LogRecord) -> Vec<Bytes> {
    let a = &r.argv;
    let name = a[0].to_ascii_lowercase();
    let int = |b: &Bytes| redsnap_engine::num::parse_i64(b);
    let bulk = |s: String| Bytes::from(s);
    let abs = |unit_ms: i64, relative: bool, v: i64| -> i64 {
        let ms = v.saturating_mul(unit_ms);
        if relative {
            ms.saturating_add(r.time as i64)
        } else {
            ms
        }
    };
    let expire_to = |key: &Bytes, at: i64| -> Vec<Bytes> {
        if at <= r.time as i64 {
            vec![Bytes::from_static(b"DEL"), key.clone()]
        } else {
            vec![
                Bytes::from_static(b"PEXPIREAT"),
                key.clone(),
                bulk(at.to_string()),
            ]
        }
    };
    match name.as_slice() {
        b"expire" | b"pexpire" | b"expireat" | b"pexpireat" if a.len() >= 3 => {
            let Some(v) = int(&a[2]) else {
                return a.clone();
            };
            let unit = if name[0] == b'p' { 1 } else { 1000 };
            let relative = !name.ends_with(b"at");
            expire_to(&a[1], abs(unit, relative, v))
        }
        b"setex" | b"psetex" if a.len() == 4 => {
            let Some(v) = int(&a[2]) else {
                return a.clone();
            };
            let unit = if name[0] == b'p' { 1 } else { 1000 };
            vec![
                Bytes::from_static(b"SET"),
                a[1].clone(),
                a[3].clone(),
                Bytes::from_static(b"PXAT"),
                bulk(abs(unit, true, v).to_string()),
            ]
        }
        b"set" if a.len() >= 5 => {
            let mut at = None;
            let mut j = 3;
            while j < a.len() {
                let (unit, relative) = if is(&a[j], "ex") {
                    (1000, true)
                } else if is(&a[j], "px") {
                    (1, true)
                } else if is(&a[j], "exat") {
                    (1000, false)
                } else {
                    j += 1;
                    continue;
                };
                at = a.get(j + 1).and_then(int).map(|v| abs(unit, relative, v));
                j += 2;
            }
            match at {
                Some(at) => vec![
                    Bytes::from_static(b"SET"),
                    a[1].clone(),
                    a[2].clone(),
                    Bytes::from_static(b"PXAT"),
                    bulk(at.to_string()),
                ],
                None => a.clone(),
            }
        }
        b"getex" if a.len() >= 3 => {
            if is(&a[2], "persist") {
                return vec![Bytes::from_static(b"PERSIST"), a[1].clone()];
            }
            let (unit, relative) = match a[2].to_ascii_lowercase().as_slice() {
                b"ex" => (1000, true),
                b"px" => (1, true),
                b"exat" => (1000, false),
                b"pxat" => (1, false),
                _ => return a.clone(),
            };
            match a.get(3).and_then(int) {
                Some(v) => expire_to(&a[1], abs(unit, relative, v)),
                None => a.clone(),
            }
        }
        _ => a.clone(),
    }
}

/// The RDB file a replica starts from: the function libraries, then every database
/// (`redsnap_persist::rdbfile`, the writer backups use too).
fn replica_rdb(inner: &Inner) -> std::io::Result<Vec<u8>> {
    use redsnap_persist::rdbfile::{default_aux, RdbWriter};
    let aux = default_aux(crate::used_memory(inner));
    let mut w = RdbWriter::new(Vec::with_capacity(4096), &aux)?;
    for (_, code) in inner.store.libraries.iter() {
        w.write_function(code)?;
    }
    for (i, db) in inner.store.dbs.iter().enumerate() {
        if db.is_empty() {
            continue;
        }
        w.select_db(i as u64, Some((db.len() as u64, db.volatile_len() as u64)))?;
        for (k, e) in db.iter() {
            w.write_key(i as u64, k.as_bytes(), e.value(), e.expire_at())?;
        }
    }
    Ok(w.finish()?.0)
}

/// Attached replicas and the replication offset (`master_repl_offset`), for
/// `/metrics`.
pub(crate) fn replicas_and_offset(inner: &Inner) -> (usize, u64) {
    (inner.repl.replicas.len(), inner.repl.offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(args: &[&str]) -> LogRecord {
        LogRecord {
            db: 0,
            time: 1_000_000,
            argv: args
                .iter()
                .map(|a| Bytes::copy_from_slice(a.as_bytes()))
                .collect(),
        }
    }
    fn stream(args: &[&str]) -> Vec<String> {
        to_stream(&rec(args))
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }

    #[test]
    fn expiries_become_absolute() {
        assert_eq!(
            stream(&["expire", "k", "10"]),
            ["PEXPIREAT", "k", "1010000"]
        );
        assert_eq!(
            stream(&["PEXPIRE", "k", "10", "NX"]),
            ["PEXPIREAT", "k", "1000010"]
        );
        assert_eq!(
            stream(&["expireat", "k", "2000"]),
            ["PEXPIREAT", "k", "2000000"]
        );
        assert_eq!(
            stream(&["pexpireat", "k", "2000000"]),
            ["PEXPIREAT", "k", "2000000"]
        );
        assert_eq!(stream(&["expire", "k", "-1"]), ["DEL", "k"]);
        assert_eq!(stream(&["pexpireat", "k", "5"]), ["DEL", "k"]);
        assert_eq!(
            stream(&["setex", "k", "2", "v"]),
            ["SET", "k", "v", "PXAT", "1002000"]
        );
        assert_eq!(
            stream(&["psetex", "k", "2", "v"]),
            ["SET", "k", "v", "PXAT", "1000002"]
        );
        assert_eq!(
            stream(&["set", "k", "v", "NX", "EX", "1", "GET"]),
            ["SET", "k", "v", "PXAT", "1001000"]
        );
        assert_eq!(
            stream(&["set", "k", "v", "exat", "7"]),
            ["SET", "k", "v", "PXAT", "7000"]
        );
        assert_eq!(
            stream(&["set", "k", "v", "pxat", "7", "xx"]),
            ["set", "k", "v", "pxat", "7", "xx"]
        );
        assert_eq!(stream(&["set", "k", "v"]), ["set", "k", "v"]);
        assert_eq!(stream(&["getex", "k", "persist"]), ["PERSIST", "k"]);
        assert_eq!(
            stream(&["getex", "k", "px", "5"]),
            ["PEXPIREAT", "k", "1000005"]
        );
        assert_eq!(stream(&["getex", "k", "exat", "1"]), ["DEL", "k"]);
        assert_eq!(stream(&["rpush", "k", "a"]), ["rpush", "k", "a"]);
    }

    #[test]
    fn commands_encode_as_multibulk() {
        let mut out = Vec::new();
        encode_command(
            &mut out,
            &[Bytes::from_static(b"SELECT"), Bytes::from_static(b"9")],
        );
        assert_eq!(out, b"*2\r\n$6\r\nSELECT\r\n$1\r\n9\r\n");
    }
}
