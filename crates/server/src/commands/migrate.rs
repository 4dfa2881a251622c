//! MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE] [AUTH password]
//! [AUTH2 username password] [KEYS key ...] (Redis's `migrateCommand`): sends the
//! keys to another server as pipelined RESTOREs and, without COPY, deletes the ones
//! the target accepted.
//!
//! Redis blocks its one thread for the whole transfer. redsnap takes the keys' DUMP
//! payloads under the server lock, releases it for the network round trip (run on a
//! blocking-pool thread: other clients keep running, and a MIGRATE to this same
//! server works), then takes the lock again to delete what the target accepted.
//! Inside MULTI/EXEC or a script, which hold the lock to their end, the transfer
//! runs under it, blocking every client as Redis's does (bounded by the timeout). A key written by another client in
//! between is not deleted: the target holds the version sent, this server the newer
//! one (Redis could not see that case; deleting would lose the write). The deletion
//! is logged and replicated as a DEL of those keys, as Redis propagates MIGRATE.
//! No connection is cached between calls (`migrate_cached_sockets:0` in INFO): each
//! MIGRATE connects, and sends SELECT every time.

use super::Handler;
use crate::conn::{AsyncOp, Conn, Step};
use crate::state::{Inner, Shared};
use bytes::{BufMut, Bytes, BytesMut};
use redsnap_engine::cmd::is;
use redsnap_engine::table::CommandSpec;
use redsnap_engine::Entry;
use redsnap_engine::Reply;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

pub(crate) const HANDLERS: &[(&str, Handler)] = &[("migrate", migrate)];

/// What the transfer needs once the lock is released.
pub(crate) struct MigrateJob {
    host: String,
    port: u16,
    db: i64,
    timeout: Duration,
    copy: bool,
    replace: bool,
    /// AUTH's arguments (password, or username and password).
    auth: Vec<Bytes>,
    /// The source database.
    src_db: usize,
    /// Each key with its entry as sent (to tell whether it changed meanwhile), its
    /// remaining time to live (0: none) and its DUMP payload.
    keys: Vec<(Bytes, Entry, i64, Vec<u8>)>,
}

fn migrate(
    conn: &mut Conn,
    inner: &mut Inner,
    _spec: &'static CommandSpec,
    argv: &[Bytes],
) -> Step {
    let (mut copy, mut replace) = (false, false);
    let mut auth: Vec<Bytes> = Vec::new();
    let mut first_key = 3;
    let mut num_keys = 1;
    let mut j = 6;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        let a = &argv[j];
        if is(a, "copy") {
            copy = true;
        } else if is(a, "replace") {
            replace = true;
        } else if is(a, "auth") {
            if more < 1 {
                return Reply::err(redsnap_engine::reply::ERR_SYNTAX).into();
            }
            auth = vec![argv[j + 1].clone()];
            j += 1;
        } else if is(a, "auth2") {
            if more < 2 {
                return Reply::err(redsnap_engine::reply::ERR_SYNTAX).into();
            }
            auth = vec![argv[j + 1].clone(), argv[j + 2].clone()];
            j += 2;
        } else if is(a, "keys") {
            if !argv[3].is_empty() {
                return Reply::err(
                    "ERR When using MIGRATE KEYS option, the key argument must be set to the empty string",
                )
                .into();
            }
            first_key = j + 1;
            num_keys = argv.len() - j - 1;
            break;
        } else {
            return Reply::err(redsnap_engine::reply::ERR_SYNTAX).into();
        }
        j += 1;
    }
    let (Some(timeout), Some(db)) = (
        redsnap_engine::num::parse_i64(&argv[5]),
        redsnap_engine::num::parse_i64(&argv[4]),
    ) else {
        return Reply::err("ERR value is not an integer or out of range").into();
    };
    let timeout = if timeout <= 0 { 1000 } else { timeout };
    let Ok(port) = std::str::from_utf8(&argv[2]).unwrap_or("").parse::<u16>() else {
        return Reply::err("IOERR error or timeout connecting to the client").into();
    };
    let now = conn.command_ms();
    let src_db = conn.db;
    let mut keys = Vec::new();
    for key in &argv[first_key..first_key + num_keys] {
        inner.store.expire_if_needed(src_db, key, now);
        let Some(e) = inner.store.dbs[src_db].get(key) else {
            continue;
        };
        let ttl = match e.expire_at() {
            None => 0,
            Some(at) if at < now => continue,
            Some(at) => (at - now).max(1) as i64,
        };
        let payload = redsnap_engine::rdb::dump_payload(e.value());
        keys.push((key.clone(), e.clone(), ttl, payload));
    }
    if keys.is_empty() {
        return Reply::Simple(Bytes::from_static(b"NOKEY")).into();
    }
    let job = MigrateJob {
        host: String::from_utf8_lossy(&argv[1]).into_owned(),
        port,
        db,
        timeout: Duration::from_millis(timeout as u64),
        copy,
        replace,
        auth,
        src_db,
        keys,
    };
    if conn.in_exec || conn.script_now.is_some() {
        // EXEC and scripts hold the server lock to the end: the transfer runs here,
        // blocking, as Redis's always does (bounded by the timeout; a MIGRATE to this
        // same server times out, as on Redis).
        let result = transfer(&job);
        return settle(conn, inner, &job, result).into();
    }
    Step::Async(AsyncOp::Migrate(Box::new(job)))
}

fn bulk(out: &mut BytesMut, b: &[u8]) {
    out.put_slice(format!("${}\r\n", b.len()).as_bytes());
    out.put_slice(b);
    out.put_slice(b"\r\n");
}

fn command(out: &mut BytesMut, args: &[&[u8]]) {
    out.put_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        bulk(out, a);
    }
}

/// Why the transfer stopped.
enum IoErr {
    Connect,
    Write,
    Read,
}

/// One reply line (`+OK`, `-ERR ...`), at most 64 KiB.
fn read_line(s: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Vec<u8>, IoErr> {
    loop {
        if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
            let line = buf[..i].to_vec();
            buf.drain(..i + 2);
            return Ok(line);
        }
        if buf.len() > 64 << 10 {
            return Err(IoErr::Read);
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk) {
            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return Err(IoErr::Read),
        }
    }
}

/// The network part, blocking as Redis's (each connect, write and read bounded by
/// the timeout): connects, sends AUTH, SELECT and the RESTOREs, and reads the
/// replies. Returns the first error the target replied (if any) and, per key, whether
/// its RESTORE was accepted (as far as replies were read).
fn transfer(job: &MigrateJob) -> Result<(Option<Vec<u8>>, Vec<bool>), IoErr> {
    let addrs = (job.host.as_str(), job.port)
        .to_socket_addrs()
        .map_err(|_| IoErr::Connect)?;
    let mut s = addrs
        .into_iter()
        .find_map(|a| TcpStream::connect_timeout(&a, job.timeout).ok())
        .ok_or(IoErr::Connect)?;
    let _ = s.set_nodelay(true);
    s.set_read_timeout(Some(job.timeout))
        .and_then(|()| s.set_write_timeout(Some(job.timeout)))
        .map_err(|_| IoErr::Connect)?;
    let mut out = BytesMut::new();
    if !job.auth.is_empty() {
        let mut a: Vec<&[u8]> = vec![b"AUTH"];
        a.extend(job.auth.iter().map(|x| x.as_ref()));
        command(&mut out, &a);
    }
    command(&mut out, &[b"SELECT", job.db.to_string().as_bytes()]);
    for (key, _, ttl, payload) in &job.keys {
        let ttl = ttl.to_string();
        let mut a: Vec<&[u8]> = vec![b"RESTORE", key, ttl.as_bytes(), payload];
        if job.replace {
            a.push(b"REPLACE");
        }
        command(&mut out, &a);
    }
    for chunk in out.chunks(64 << 10) {
        s.write_all(chunk).map_err(|_| IoErr::Write)?;
    }
    let mut buf = Vec::new();
    let auth_reply = if job.auth.is_empty() {
        None
    } else {
        Some(read_line(&mut s, &mut buf)?)
    };
    let select_reply = read_line(&mut s, &mut buf)?;
    let mut first_error: Option<Vec<u8>> = None;
    let mut accepted = Vec::with_capacity(job.keys.len());
    for i in 0..job.keys.len() {
        let line = match read_line(&mut s, &mut buf) {
            Ok(l) => l,
            // Keys whose reply arrived are settled; without any, report the I/O error.
            Err(e) if i == 0 && first_error.is_none() => return Err(e),
            Err(_) => break,
        };
        // As Redis: a failed AUTH or SELECT fails every key.
        let failed = [auth_reply.as_ref(), Some(&select_reply), Some(&line)]
            .into_iter()
            .flatten()
            .find(|r| r.starts_with(b"-"));
        match failed {
            Some(err) => {
                if first_error.is_none() {
                    first_error = Some(err[1..].to_vec());
                }
                accepted.push(false);
            }
            None => accepted.push(true),
        }
    }
    Ok((first_error, accepted))
}

/// Runs a MIGRATE's transfer outside the lock (on a blocking-pool thread), then
/// settles it under the lock.
pub(crate) async fn run(conn: &mut Conn, job: Box<MigrateJob>) -> Reply {
    let outcome = tokio::task::spawn_blocking(move || {
        let r = transfer(&job);
        (job, r)
    })
    .await;
    let Ok((job, result)) = outcome else {
        return Reply::err("IOERR error or timeout connecting to the client");
    };
    let shared: std::sync::Arc<Shared> = conn.shared.clone();
    let mut inner = shared.lock_async().await;
    settle(conn, &mut inner, &job, result)
}

/// The reply, and (without COPY) the deletion of the keys the target accepted that
/// nobody changed meanwhile (logged and replicated as DEL, staged before the reply
/// leaves as any write is).
fn settle(
    conn: &mut Conn,
    inner: &mut Inner,
    job: &MigrateJob,
    result: Result<(Option<Vec<u8>>, Vec<bool>), IoErr>,
) -> Reply {
    let (first_error, accepted) = match result {
        Ok(r) => r,
        Err(IoErr::Connect) => {
            return Reply::err("IOERR error or timeout connecting to the client")
        }
        Err(IoErr::Write) => {
            return Reply::err("IOERR error or timeout writing to target instance")
        }
        Err(IoErr::Read) => return Reply::err("IOERR error or timeout reading to target instance"),
    };
    if !job.copy && accepted.iter().any(|&a| a) {
        let mut del: Vec<Bytes> = vec![Bytes::from_static(b"DEL")];
        for ((key, sent, _, _), ok) in job.keys.iter().zip(&accepted) {
            if *ok && inner.store.dbs[job.src_db].get(key) == Some(sent) {
                del.push(key.clone());
            }
        }
        if del.len() > 1 {
            if let Some(spec) = redsnap_engine::table::lookup(b"del") {
                let now = conn.command_ms();
                inner.store.call(spec, job.src_db, now, &del, false);
                if !conn.in_exec && conn.script_now.is_none() {
                    // EXEC and scripts stage their writes when they end.
                    conn.after_command(inner);
                    match crate::persist::append(inner) {
                        Ok(Some(token)) => conn.pending_token = token,
                        Ok(None) => {}
                        Err(e) => return e,
                    }
                }
            }
        }
    }
    match first_error {
        Some(e) => Reply::error(format!(
            "ERR Target instance replied with error: {}",
            String::from_utf8_lossy(&e)
        )),
        None => Reply::ok(),
    }
}
