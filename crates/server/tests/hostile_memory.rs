//! Memory per connection under hostile clients (issue 19): a partly sent big bulk
//! costs what was sent, never the length announced, and `maxmemory-clients` bounds
//! what all clients hold together, closing the biggest first.

use redsnap_testsupport::{RawConn, RedsnapServer};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The header of `SET k <512 MB bulk>`: the bulk itself never fully arrives.
const HEADER: &[u8] = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870000\r\n";
const SENT: usize = 200 * 1024;

/// Room for the connections of a test (the server inherits the limit).
fn raise_fd_limit(need: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
    }
    assert!(
        lim.rlim_cur >= need,
        "this test needs {need} file descriptors (ulimit -n is {})",
        lim.rlim_cur
    );
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn info_field(c: &mut RawConn, section: &str, field: &str) -> u64 {
    let raw = c.command(&[b"INFO", section.as_bytes()]).expect("info");
    let text = String::from_utf8_lossy(&raw).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
}

/// CLIENT LIST as (id, field name -> value) rows.
fn client_list(c: &mut RawConn) -> Vec<(u64, Vec<(String, String)>)> {
    let raw = c.command(&[b"CLIENT", b"LIST"]).expect("client list");
    let text = String::from_utf8_lossy(&raw).into_owned();
    text.lines()
        .filter(|l| l.contains("qbuf="))
        .map(|l| {
            let fields: Vec<(String, String)> = l
                .split_whitespace()
                .filter_map(|f| f.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let id = fields
                .iter()
                .find(|(k, _)| k == "id")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            (id, fields)
        })
        .collect()
}

fn field(row: &[(String, String)], name: &str) -> usize {
    row.iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {row:?}"))
}

/// Waits until the clients whose `qbuf` is at least `min_qbuf` are `want` or more.
fn wait_for_qbufs(c: &mut RawConn, min_qbuf: usize, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = client_list(c)
            .iter()
            .filter(|(_, r)| field(r, "qbuf") >= min_qbuf)
            .count();
        if n >= want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {n} clients of {want} hold {min_qbuf} bytes"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Opens a connection that announces the big bulk and sends `n` bytes of it; None
/// when the server closed it meanwhile (eviction).
fn hostile(port: u16, n: usize) -> Option<TcpStream> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_write_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s.write_all(HEADER).expect("header");
    let chunk = vec![b'x'; 64 * 1024];
    let mut left = n;
    while left > 0 {
        let k = left.min(chunk.len());
        if s.write_all(&chunk[..k]).is_err() {
            return None;
        }
        left -= k;
    }
    Some(s)
}

/// Whether the server closed this connection (EOF or reset), without a reply.
fn closed_by_server(mut s: &TcpStream) -> bool {
    s.set_nonblocking(true).expect("nonblocking");
    let mut b = [0u8; 64];
    let r = match s.read(&mut b) {
        Ok(0) => true,
        Ok(n) => panic!("unexpected reply {:?}", String::from_utf8_lossy(&b[..n])),
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(_) => true,
    };
    s.set_nonblocking(false).expect("blocking");
    r
}

fn served(c: &mut RawConn, i: usize) {
    let key = format!("control{i}");
    assert_eq!(
        c.command(&[b"SET", key.as_bytes(), b"v"]).expect("set"),
        b"+OK\r\n"
    );
    assert_eq!(
        c.command(&[b"GET", key.as_bytes()]).expect("get"),
        b"$1\r\nv\r\n"
    );
}

#[test]
fn partly_sent_big_bulks_cost_what_was_sent() {
    const CONNS: usize = 500;
    raise_fd_limit(2 * CONNS as u64 + 200);
    let server = RedsnapServer::builder().start().expect("server");
    let port = server.port();
    let pid = server.pid().expect("pid");
    let mut control = RawConn::connect(port).expect("control");
    served(&mut control, 0);
    std::thread::sleep(Duration::from_millis(200));
    let base = rss_kb(pid);

    let mut conns = Vec::new();
    for i in 0..CONNS {
        conns.push(hostile(port, SENT).expect("no limit is hit here"));
        if i % 50 == 0 {
            served(&mut control, i);
        }
    }
    wait_for_qbufs(&mut control, SENT, CONNS);
    let grown = rss_kb(pid).saturating_sub(base) * 1024;
    let sent = (CONNS * SENT) as u64;
    eprintln!("{CONNS} connections, {sent} bytes sent: RSS grew by {grown} bytes");
    assert!(
        grown <= 2 * sent,
        "RSS grew by {grown} bytes for {sent} bytes sent"
    );
    // What CLIENT LIST and INFO say is what each connection holds: the bytes sent,
    // in a buffer at most twice that (never the 512 MB announced).
    let rows = client_list(&mut control);
    let big: Vec<_> = rows
        .iter()
        .filter(|(_, r)| field(r, "qbuf") >= SENT)
        .collect();
    assert_eq!(big.len(), CONNS);
    let mut total = 0;
    for (_, r) in &big {
        let (qbuf, free, tot) = (field(r, "qbuf"), field(r, "qbuf-free"), field(r, "tot-mem"));
        assert_eq!(qbuf, SENT, "{r:?}");
        assert!(qbuf + free <= 2 * SENT, "{r:?}");
        assert!(tot >= qbuf + free && tot < qbuf + free + 64 * 1024, "{r:?}");
        total += tot;
    }
    let normal = info_field(&mut control, "memory", "mem_clients_normal") as usize;
    assert!(
        normal >= total && normal < total + 64 * 1024 * 10,
        "mem_clients_normal {normal}, the clients' tot-mem sum {total}"
    );
    // No limit was hit: every connection is still open, without a reply.
    for s in &conns {
        assert!(!closed_by_server(s));
    }
    served(&mut control, 1);
    drop(conns);

    // Completed bulks of 1 MB are stored whole.
    let value = vec![b'v'; 1 << 20];
    for i in 0..10 {
        let key = format!("big{i}");
        let mut c = RawConn::connect(port).expect("connect");
        assert_eq!(
            c.command(&[b"SET", key.as_bytes(), &value]).expect("set"),
            b"+OK\r\n"
        );
        assert_eq!(
            c.command(&[b"STRLEN", key.as_bytes()]).expect("strlen"),
            b":1048576\r\n"
        );
    }
    // Limits: a bulk above proto-max-bulk-len gets Redis's protocol error; a
    // request beyond client-query-buffer-limit is closed (Redis writes nothing).
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870913\r\n")
        .expect("write");
    let mut reply = String::new();
    s.read_to_string(&mut reply).expect("read");
    assert_eq!(reply, "-ERR Protocol error: invalid bulk length\r\n");
    control
        .command_ok(&[b"CONFIG", b"SET", b"client-query-buffer-limit", b"1mb"])
        .expect("config set");
    let mut s = hostile(port, 2 << 20);
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Some(c) = s.as_mut() {
        if closed_by_server(c) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not closed at the query buffer limit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    served(&mut control, 2);
}

#[test]
fn maxmemory_clients_closes_the_biggest_first_and_spares_no_evict() {
    const CONNS: usize = 1000;
    const LIMIT: usize = 64 << 20;
    raise_fd_limit(2 * CONNS as u64 + 200);
    let server = RedsnapServer::builder()
        .extra_args(&["--maxmemory-clients", "64mb"])
        .start()
        .expect("server");
    let port = server.port();
    let mut control = RawConn::connect(port).expect("control");
    served(&mut control, 0);

    // A protected client and four others, each with 4 MB of a big bulk: the
    // biggest clients there are.
    let mut protected = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    protected
        .write_all(b"CLIENT NO-EVICT on\r\nCLIENT ID\r\n")
        .expect("write");
    let mut replies = Vec::new();
    let mut b = [0u8; 64];
    while replies.iter().filter(|&&c| c == b'\n').count() < 2 {
        let n = protected.read(&mut b).expect("read");
        assert!(n > 0, "closed");
        replies.extend_from_slice(&b[..n]);
    }
    let text = String::from_utf8_lossy(&replies).into_owned();
    let protected_id: u64 = text
        .strip_prefix("+OK\r\n:")
        .and_then(|r| r.trim_end().parse().ok())
        .unwrap_or_else(|| panic!("replies {text:?}"));
    protected.write_all(HEADER).expect("header");
    protected.write_all(&vec![b'x'; 4 << 20]).expect("data");
    let biggest: Vec<TcpStream> = (0..4)
        .map(|_| hostile(port, 4 << 20).expect("under the limit"))
        .collect();
    wait_for_qbufs(&mut control, 4 << 20, 5);
    let flags = client_list(&mut control)
        .into_iter()
        .find(|(id, _)| *id == protected_id)
        .map(|(_, r)| r.into_iter().find(|(k, _)| k == "flags"));
    assert_eq!(flags, Some(Some(("flags".to_string(), "e".to_string()))));

    let mut conns = Vec::new();
    let mut closed_while_sending = 0;
    let mut peak = 0;
    for i in 0..CONNS {
        match hostile(port, SENT) {
            Some(s) => conns.push(s),
            None => closed_while_sending += 1,
        }
        if i % 100 == 0 {
            served(&mut control, i);
            let normal = info_field(&mut control, "memory", "mem_clients_normal") as usize;
            peak = peak.max(normal);
        }
    }
    // The server reads what was sent and the evicted connections close: wait
    // until every client is either closed or holds all it sent.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (rows, evicted, closed) = loop {
        let rows = client_list(&mut control);
        let evicted = info_field(&mut control, "stats", "evicted_clients") as usize;
        let closed = closed_while_sending + conns.iter().filter(|s| closed_by_server(s)).count();
        let holding = rows
            .iter()
            .filter(|(_, r)| field(r, "qbuf") == SENT)
            .count();
        if evicted == closed + biggest.len() && holding == CONNS - closed {
            break (rows, evicted, closed);
        }
        assert!(
            Instant::now() < deadline,
            "evicted {evicted}, closed {closed}, holding what they sent {holding}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let total: usize = rows.iter().map(|(_, r)| field(r, "tot-mem")).sum();
    let normal = info_field(&mut control, "memory", "mem_clients_normal") as usize;
    peak = peak.max(normal);
    eprintln!("clients' memory peak {peak}, now {total}; evicted {evicted}, closed {closed}");
    assert!(total < LIMIT, "clients hold {total} bytes");
    assert!(peak < LIMIT, "mem_clients_normal reached {peak}");
    assert!(closed > 0, "1000 clients of 200 KB fit in 64 MB?");
    // The four biggest went first; the protected one, bigger still, survived.
    for s in &biggest {
        assert!(closed_by_server(s), "a 4 MB client survived");
    }
    assert!(rows.iter().any(|(id, _)| *id == protected_id));
    assert!(!closed_by_server(&protected));
    served(&mut control, 1);
    drop(server);
}

/// CONFIG SET acts at once, in both forms: a percentage of maxmemory, and 0 (off).
#[test]
fn maxmemory_clients_set_at_runtime_as_a_percentage() {
    let server = RedsnapServer::builder().start().expect("server");
    let port = server.port();
    let mut control = RawConn::connect(port).expect("control");
    let set = |c: &mut RawConn, name: &str, value: &str| {
        c.command_ok(&[b"CONFIG", b"SET", name.as_bytes(), value.as_bytes()])
            .expect("config set");
    };
    // Off: a 2 MB partial bulk stays.
    let kept = hostile(port, 2 << 20).expect("no limit");
    wait_for_qbufs(&mut control, 2 << 20, 1);
    // 1% of 100 MB: the client holding 2 MB goes as soon as the limit is lowered
    // (before the next command, as in Redis).
    set(&mut control, "maxmemory", "100mb");
    set(&mut control, "maxmemory-clients", "1%");
    assert_eq!(
        control
            .command(&[b"CONFIG", b"GET", b"maxmemory-clients"])
            .expect("get"),
        b"*2\r\n$17\r\nmaxmemory-clients\r\n$2\r\n1%\r\n"
    );
    let rows = client_list(&mut control);
    assert!(
        rows.iter().all(|(_, r)| field(r, "qbuf") < 2 << 20),
        "{rows:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !closed_by_server(&kept) {
        assert!(Instant::now() < deadline, "not evicted");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(info_field(&mut control, "stats", "evicted_clients"), 1);
    // Off again: nothing more is evicted.
    set(&mut control, "maxmemory-clients", "0");
    let kept = hostile(port, 2 << 20).expect("no limit");
    wait_for_qbufs(&mut control, 2 << 20, 1);
    assert!(!closed_by_server(&kept));
    assert_eq!(info_field(&mut control, "stats", "evicted_clients"), 1);
}
