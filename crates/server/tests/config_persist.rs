//! Persistence parameters set with CONFIG SET take effect at once (issue 11, item 3),
//! each observed by its effect, not its echo; and under `appendfsync always` no reply
//! or pub/sub message that can show a write leaves before that write is fsynced, and a
//! failed fsync turns writes away with MISCONF (item 4), with faults injected into the
//! log of an in-process server.
//!
//! Every wait is bounded; servers started as processes are killed on drop.

use redsnap_persist::aof::FsyncFault;
use redsnap_server::{Config, Server};
use redsnap_testsupport::{encode_command, free_port, RedsnapServer};
use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// Generous bound for things that must happen (never a performance assertion).
const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// A minimal RESP client: replies as raw text lines are enough here.
// ---------------------------------------------------------------------------

struct Client {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Client {
    fn connect(port: u16) -> Client {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        let _ = s.set_nodelay(true);
        Client {
            r: BufReader::new(s.try_clone().expect("clone")),
            w: s,
        }
    }

    fn send(&mut self, args: &[&str]) {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.w.write_all(&encode_command(&args)).expect("send");
    }

    /// Reads one reply; bulk strings and arrays are flattened into text.
    fn read(&mut self) -> io::Result<String> {
        let mut line = String::new();
        if self.r.read_line(&mut line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
        }
        let line = line.trim_end().to_string();
        match line.as_bytes().first() {
            Some(b'$') => {
                let n: i64 = line[1..].parse().expect("len");
                if n < 0 {
                    return Ok("(nil)".into());
                }
                let mut buf = vec![0u8; n as usize + 2];
                self.r.read_exact(&mut buf)?;
                Ok(String::from_utf8_lossy(&buf[..n as usize]).into_owned())
            }
            Some(b'*') | Some(b'>') => {
                let n: i64 = line[1..].parse().expect("len");
                let mut parts = Vec::new();
                for _ in 0..n.max(0) {
                    parts.push(self.read()?);
                }
                Ok(parts.join(" "))
            }
            _ => Ok(line),
        }
    }

    fn call(&mut self, args: &[&str]) -> String {
        self.send(args);
        self.read().expect("reply")
    }

    /// Whether a reply arrives within `d` (then it is consumed and returned).
    fn poll(&mut self, d: Duration) -> Option<String> {
        self.w.set_read_timeout(Some(d)).expect("timeout");
        let mut probe = [0u8; 1];
        let ready = match self.r.get_ref().peek(&mut probe) {
            Ok(n) => n > 0 || !self.r.buffer().is_empty(),
            Err(_) => !self.r.buffer().is_empty(),
        };
        self.w.set_read_timeout(Some(WAIT)).expect("timeout");
        ready.then(|| self.read().expect("reply"))
    }
}

fn info(port: u16) -> BTreeMap<String, String> {
    let raw = Client::connect(port).call(&["INFO", "persistence"]);
    raw.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

fn info_field(port: u16, f: &str) -> String {
    info(port)
        .get(f)
        .cloned()
        .unwrap_or_else(|| panic!("no {f} in INFO persistence"))
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wait_bgsave(port: u16) {
    wait_until("the snapshot to finish", || {
        let i = info(port);
        i.get("rdb_bgsave_in_progress").map(String::as_str) == Some("0")
            && i.get("aof_rewrite_scheduled").map(String::as_str) != Some("1")
    });
}

fn start(dir: &Path, args: &[&str]) -> RedsnapServer {
    RedsnapServer::builder()
        .dir(dir)
        .extra_args(args)
        .start()
        .unwrap_or_else(|e| panic!("redsnap failed to start: {e:#}"))
}

const QUIET: &[&str] = &["--save", "", "--snapshot-interval", "0"];

fn args(extra: &[&str]) -> Vec<String> {
    QUIET.iter().chain(extra).map(|s| s.to_string()).collect()
}

fn start_with(dir: &Path, extra: &[&str]) -> RedsnapServer {
    let a = args(extra);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    start(dir, &a)
}

// ---------------------------------------------------------------------------
// In-process server with fault injection
// ---------------------------------------------------------------------------

struct InProcess {
    port: u16,
    log: redsnap_persist::AppendLog,
    _rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

fn in_process(policy: &str) -> InProcess {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut c = Config::default();
    let s = |v: &str| vec![v.to_string()];
    c.set("port", &s(&port.to_string())).expect("port");
    c.set("bind", &s("127.0.0.1")).expect("bind");
    c.set("dir", &s(&dir.path().display().to_string()))
        .expect("dir");
    c.set("appendonly", &s("yes")).expect("appendonly");
    c.set("appendfsync", &s(policy)).expect("appendfsync");
    c.set("save", &s("")).expect("save");
    c.set("snapshot-interval", &s("0")).expect("interval");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let server = rt.block_on(Server::bind(c)).expect("bind");
    let log = server.append_log().expect("append log");
    rt.spawn(server.run());
    InProcess {
        port,
        log,
        _rt: rt,
        _dir: dir,
    }
}

/// While the fsync of the log generation stalls under `appendfsync always`: the write's
/// reply, a read of the written key by another client, and a subscriber's message
/// published by a script that also wrote are all held back; a read of data that was
/// already durable is answered. When the fsync completes, they all arrive.
#[test]
fn always_holds_every_reply_and_message_that_can_show_an_unsynced_write() {
    let s = in_process("always");
    let mut a = Client::connect(s.port);
    assert_eq!(a.call(&["SET", "old", "1"]), "+OK");
    let mut sub = Client::connect(s.port);
    assert_eq!(sub.call(&["SUBSCRIBE", "ch"]), "subscribe ch :1");
    let gen = s.log.generation();
    s.log.inject_fsync_fault(Some((gen, FsyncFault::Stall)));
    a.send(&["SET", "k", "v"]);
    // Another client reads the key the unsynced SET wrote.
    let mut b = Client::connect(s.port);
    b.send(&["GET", "k"]);
    // A script writes and publishes.
    let mut p = Client::connect(s.port);
    p.send(&[
        "EVAL",
        "redis.call('set','k2','x'); return redis.call('publish','ch','hello')",
        "0",
    ]);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        a.poll(Duration::from_millis(50)),
        None,
        "write acknowledged before its fsync"
    );
    assert_eq!(
        b.poll(Duration::from_millis(50)),
        None,
        "a read showed an unsynced write"
    );
    assert_eq!(
        sub.poll(Duration::from_millis(50)),
        None,
        "a message showed an unsynced write"
    );
    assert_eq!(p.poll(Duration::from_millis(50)), None);
    s.log.inject_fsync_fault(None);
    assert_eq!(a.read().expect("reply"), "+OK");
    assert_eq!(b.read().expect("reply"), "v");
    assert_eq!(sub.read().expect("message"), "message ch hello");
    assert_eq!(p.read().expect("reply"), ":1");
    assert!(s.log.stats().durable_seq >= s.log.stats().seq);
}

/// An fsync that fails: the write is never acknowledged (its client is disconnected),
/// and later writes get MISCONF while reads still work.
#[test]
fn failed_fsync_is_never_acknowledged_and_writes_get_misconf() {
    let s = in_process("always");
    let mut a = Client::connect(s.port);
    assert_eq!(a.call(&["SET", "old", "1"]), "+OK");
    s.log
        .inject_fsync_fault(Some((s.log.generation(), FsyncFault::Fail)));
    a.send(&["SET", "k", "v"]);
    assert!(
        a.read().is_err(),
        "a write whose fsync failed was acknowledged"
    );
    let mut b = Client::connect(s.port);
    let r = b.call(&["SET", "k2", "v"]);
    assert!(r.starts_with("-MISCONF"), "{r}");
    assert!(r.contains("fsync failed"), "{r}");
    assert_eq!(b.call(&["GET", "old"]), "1");
    assert_eq!(info_field(s.port, "aof_last_fsync_status"), "err");
}

/// Under `everysec` nothing waits for an fsync, even a stalled one (the setting's
/// promise is about process crashes; see docs/persistence.md).
#[test]
fn everysec_replies_do_not_wait_for_fsyncs() {
    let s = in_process("everysec");
    s.log
        .inject_fsync_fault(Some((s.log.generation(), FsyncFault::Stall)));
    let mut a = Client::connect(s.port);
    assert_eq!(a.call(&["SET", "k", "v"]), "+OK");
    assert_eq!(a.call(&["GET", "k"]), "v");
    s.log.inject_fsync_fault(None);
}

/// CONFIG SET appendfsync always on a running everysec server: INFO shows it and each
/// of N sequential acknowledged writes had its own fsync (before the fix the log kept
/// fsyncing once a second while CONFIG GET said `always`).
#[test]
fn config_set_appendfsync_always_acts_on_the_live_log() {
    let s = in_process("everysec");
    let mut c = Client::connect(s.port);
    assert_eq!(info_field(s.port, "aof_fsync_policy"), "everysec");
    assert_eq!(c.call(&["CONFIG", "SET", "appendfsync", "always"]), "+OK");
    assert_eq!(info_field(s.port, "aof_fsync_policy"), "always");
    // A stalled fsync now holds the reply: the policy acts, not only its echo.
    s.log
        .inject_fsync_fault(Some((s.log.generation(), FsyncFault::Stall)));
    c.send(&["SET", "k", "v"]);
    assert_eq!(c.poll(Duration::from_millis(300)), None);
    s.log.inject_fsync_fault(None);
    assert_eq!(c.read().expect("reply"), "+OK");
    let before: u64 = info_field(s.port, "aof_fsyncs").parse().expect("fsyncs");
    for i in 0..50 {
        assert_eq!(c.call(&["SET", &format!("k{i}"), "v"]), "+OK");
    }
    let after: u64 = info_field(s.port, "aof_fsyncs").parse().expect("fsyncs");
    assert!(
        after - before >= 50,
        "{} fsyncs for 50 writes",
        after - before
    );
    // And back.
    assert_eq!(c.call(&["CONFIG", "SET", "appendfsync", "everysec"]), "+OK");
    assert_eq!(info_field(s.port, "aof_fsync_policy"), "everysec");
}

// ---------------------------------------------------------------------------
// CONFIG SET against the binary
// ---------------------------------------------------------------------------

/// `appendonly no` at runtime stops logging: a write after it is not in the log, so a
/// kill -9 without a snapshot loses it while the one before survives.
#[test]
fn config_set_appendonly_no_stops_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = start_with(
        dir.path(),
        &["--appendonly", "yes", "--snapshot-on-shutdown", "no"],
    );
    let mut c = Client::connect(server.port());
    assert_eq!(c.call(&["SET", "before", "1"]), "+OK");
    assert_eq!(c.call(&["CONFIG", "SET", "appendonly", "no"]), "+OK");
    assert_eq!(info_field(server.port(), "aof_enabled"), "0");
    assert_eq!(c.call(&["SET", "after", "1"]), "+OK");
    // The closed log was fsynced and closed off the lock; give it a moment, bounded.
    std::thread::sleep(Duration::from_millis(200));
    server.kill_9();
    server.restart().expect("restart");
    let mut c = Client::connect(server.port());
    assert_eq!(c.call(&["GET", "before"]), "1");
    assert_eq!(
        c.call(&["GET", "after"]),
        "(nil)",
        "a write after appendonly no was logged"
    );
}

/// `appendonly yes` at runtime starts the log from a snapshot (as BGREWRITEAOF does):
/// INFO shows it enabled, and a write after it survives kill -9.
#[test]
fn config_set_appendonly_yes_starts_the_log_from_a_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Snapshots configured (so restarts load the data dir), the log off.
    let mut server = start(
        dir.path(),
        &[
            "--appendonly",
            "no",
            "--save",
            "3600 1",
            "--snapshot-interval",
            "0",
        ],
    );
    let port = server.port();
    let mut c = Client::connect(port);
    assert_eq!(c.call(&["SET", "before", "1"]), "+OK");
    assert_eq!(c.call(&["CONFIG", "SET", "appendonly", "yes"]), "+OK");
    assert_eq!(info_field(port, "aof_enabled"), "1");
    wait_bgsave(port);
    assert_eq!(info_field(port, "rdb_last_bgsave_status"), "ok");
    assert_eq!(c.call(&["SET", "after", "2"]), "+OK");
    server.kill_9();
    server.restart().expect("restart");
    let mut c = Client::connect(server.port());
    assert_eq!(c.call(&["GET", "before"]), "1");
    assert_eq!(
        c.call(&["GET", "after"]),
        "2",
        "a write after appendonly yes was lost"
    );
}

/// Everything off at startup: `appendonly yes` opens the data directory too, and the
/// log is there after a kill -9 (restarted with the log on).
#[test]
fn config_set_appendonly_yes_with_persistence_off_at_startup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = start_with(dir.path(), &["--appendonly", "no"]);
    let port = server.port();
    let mut c = Client::connect(port);
    assert_eq!(info_field(port, "persistence_enabled"), "0");
    assert_eq!(c.call(&["SET", "a", "1"]), "+OK");
    assert_eq!(c.call(&["CONFIG", "SET", "appendonly", "yes"]), "+OK");
    assert_eq!(info_field(port, "aof_enabled"), "1");
    wait_bgsave(port);
    assert_eq!(c.call(&["SET", "b", "2"]), "+OK");
    server.kill_9();
    let server = start_with(dir.path(), &["--appendonly", "yes"]);
    let mut c = Client::connect(server.port());
    assert_eq!(c.call(&["GET", "a"]), "1");
    assert_eq!(c.call(&["GET", "b"]), "2");
}

/// `snapshot-incremental no` at runtime: the next snapshot is a full one (INFO
/// `rdb_last_snapshot_incremental` and the number of entries written).
#[test]
fn config_set_snapshot_incremental_acts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_with(
        dir.path(),
        &["--appendonly", "yes", "--snapshot-incremental", "yes"],
    );
    let port = server.port();
    let mut c = Client::connect(port);
    for i in 0..50 {
        assert_eq!(c.call(&["SET", &format!("k{i}"), "v"]), "+OK");
    }
    let bgsave = |c: &mut Client| {
        assert!(c.call(&["BGSAVE"]).starts_with('+'));
        wait_bgsave(port);
    };
    bgsave(&mut c); // the first one is always full
    assert_eq!(c.call(&["SET", "k0", "changed"]), "+OK");
    bgsave(&mut c);
    assert_eq!(info_field(port, "rdb_last_snapshot_incremental"), "1");
    assert_eq!(info_field(port, "rdb_last_snapshot_changed"), "1");
    assert_eq!(
        c.call(&["CONFIG", "SET", "snapshot-incremental", "no"]),
        "+OK"
    );
    assert_eq!(c.call(&["SET", "k1", "changed"]), "+OK");
    bgsave(&mut c);
    assert_eq!(info_field(port, "rdb_last_snapshot_incremental"), "0");
    assert_eq!(info_field(port, "rdb_last_snapshot_changed"), "50");
}

/// Save points and `snapshot-interval` set at runtime on a server started with all
/// persistence off: the data directory is opened and snapshots happen.
#[test]
fn config_set_save_and_snapshot_interval_act() {
    for (name, value) in [("save", "1 1"), ("snapshot-interval", "1")] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = start_with(dir.path(), &["--appendonly", "no"]);
        let port = server.port();
        let mut c = Client::connect(port);
        assert_eq!(c.call(&["SET", "k", "v"]), "+OK");
        assert_eq!(c.call(&["CONFIG", "SET", name, value]), "+OK");
        wait_until(&format!("a snapshot after {name} {value}"), || {
            info(port).get("rdb_saves").is_some_and(|v| v != "0")
        });
        wait_bgsave(port);
        server.kill_9();
        let a = args(&["--appendonly", "no", "--save", "3600 1"]);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let server = start(dir.path(), &a);
        assert_eq!(
            Client::connect(server.port()).call(&["GET", "k"]),
            "v",
            "{name}"
        );
    }
}

/// `snapshot-on-shutdown no` at runtime: SHUTDOWN no longer saves.
#[test]
fn config_set_snapshot_on_shutdown_acts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = start(
        dir.path(),
        &[
            "--appendonly",
            "no",
            "--save",
            "3600 1000",
            "--snapshot-interval",
            "0",
        ],
    );
    let mut c = Client::connect(server.port());
    assert_eq!(c.call(&["SET", "k", "v"]), "+OK");
    assert_eq!(
        c.call(&["CONFIG", "SET", "snapshot-on-shutdown", "no"]),
        "+OK"
    );
    c.send(&["SHUTDOWN"]);
    let _ = c.read();
    assert!(server.wait_exit(WAIT).is_some(), "server did not exit");
    server.restart().expect("restart");
    assert_eq!(Client::connect(server.port()).call(&["GET", "k"]), "(nil)");
}

/// `auto-aof-rewrite-*` at runtime: a low threshold makes the log's growth trigger a
/// snapshot (which compacts the log).
#[test]
fn config_set_auto_aof_rewrite_acts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_with(dir.path(), &["--appendonly", "yes"]);
    let port = server.port();
    let mut c = Client::connect(port);
    assert_eq!(info_field(port, "rdb_saves"), "0");
    assert_eq!(
        c.call(&["CONFIG", "SET", "auto-aof-rewrite-min-size", "1024"]),
        "+OK"
    );
    assert_eq!(
        c.call(&["CONFIG", "SET", "auto-aof-rewrite-percentage", "1"]),
        "+OK"
    );
    for i in 0..100 {
        assert_eq!(c.call(&["SET", &format!("k{i}"), &"v".repeat(100)]), "+OK");
    }
    wait_until("a snapshot triggered by the log's growth", || {
        info(port).get("rdb_saves").is_some_and(|v| v != "0")
    });
}

/// `no-appendfsync-on-rewrite yes`: while a snapshot runs the log's fsyncs are paused
/// (Redis's trade-off), and resume after it.
#[test]
fn config_set_no_appendfsync_on_rewrite_acts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_with(
        dir.path(),
        &["--appendonly", "yes", "--appendfsync", "always"],
    );
    let port = server.port();
    let mut c = Client::connect(port);
    assert_eq!(
        c.call(&["CONFIG", "SET", "no-appendfsync-on-rewrite", "yes"]),
        "+OK"
    );
    // A dataset large enough that the snapshot takes a while to write.
    let value = "v".repeat(100);
    for chunk in 0..100 {
        let mut a = vec!["MSET".to_string()];
        for i in 0..2000 {
            a.push(format!("key:{chunk}:{i}"));
            a.push(value.clone());
        }
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        c.send(&a);
    }
    for _ in 0..100 {
        assert_eq!(c.read().expect("MSET"), "+OK");
    }
    assert!(c.call(&["BGSAVE"]).starts_with('+'));
    // Sampled until the snapshot ends: while it runs, fsyncs are paused.
    let mut seen_running = false;
    loop {
        let i = info(port);
        let running = i["rdb_bgsave_in_progress"] == "1";
        if !running {
            break;
        }
        seen_running = true;
        assert_eq!(
            i["aof_fsync_paused"], "1",
            "snapshot running, fsyncs not paused"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(seen_running, "the snapshot ended before INFO could see it");
    wait_bgsave(port);
    assert_eq!(info_field(port, "aof_fsync_paused"), "0");
    // Without the flag, a snapshot does not pause them.
    assert_eq!(
        c.call(&["CONFIG", "SET", "no-appendfsync-on-rewrite", "no"]),
        "+OK"
    );
    assert!(c.call(&["BGSAVE"]).starts_with('+'));
    assert_eq!(info_field(port, "aof_fsync_paused"), "0");
    wait_bgsave(port);
}

/// Parameters that cannot act at runtime are refused with Redis's error.
#[test]
fn persistence_parameters_that_cannot_act_are_immutable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_with(dir.path(), &["--appendonly", "yes"]);
    let mut c = Client::connect(server.port());
    for (name, value) in [
        ("dbfilename", "x.rdb"),
        ("rdbcompression", "no"),
        ("restore-on-startup", "no"),
        ("dir", "/tmp"),
        ("appendfilename", "x.aof"),
        ("load-corrupt", "yes"),
    ] {
        let r = c.call(&["CONFIG", "SET", name, value]);
        assert_eq!(
            r,
            format!("-ERR CONFIG SET failed (possibly related to argument '{name}') - can't set immutable config"),
        );
    }
}
