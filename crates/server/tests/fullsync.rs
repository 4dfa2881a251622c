//! A full synchronization's transfer when the replica's socket is lent to the
//! transfer thread (`repl/handoff.rs`): a `$<len>` file larger than the socket
//! buffers (spooled, then sent with sendfile) arrives byte for byte, the stream
//! written meanwhile follows it in order, the connection is the connection task's
//! again afterwards, and a replica killed in the middle of its transfer ends it.

use redsnap_testsupport::dataset::Resp;
use redsnap_testsupport::probe::{client, field, info, ok, text, wait_until};
use redsnap_testsupport::{RedisServer, RedsnapServer};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn cmd_bytes(args: &[&str]) -> Vec<u8> {
    let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
    redsnap_testsupport::encode_command(&a)
}

/// A master without persistence (its spool file goes to the temporary directory)
/// or with a data directory (`persist`: the file is spooled there).
fn master(persist: bool) -> RedsnapServer {
    let args: &[&str] = if persist {
        &["--appendonly", "yes", "--save", ""]
    } else {
        &["--appendonly", "no", "--save", ""]
    };
    RedsnapServer::builder()
        .extra_args(args)
        .start()
        .expect("start redsnap")
}

/// A raw replica connection with a small receive buffer, so that the file fills
/// the socket and the transfer waits for room.
struct Raw(BufReader<TcpStream>);

impl Raw {
    fn connect(port: u16) -> Raw {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        socket2::SockRef::from(&s)
            .set_recv_buffer_size(64 << 10)
            .expect("SO_RCVBUF");
        Raw(BufReader::new(s))
    }
    fn send(&mut self, args: &[&str]) {
        self.0.get_mut().write_all(&cmd_bytes(args)).expect("send");
    }
    fn line(&mut self) -> String {
        let mut l = String::new();
        self.0.read_line(&mut l).expect("line");
        l
    }
    fn exact(&mut self, n: usize) -> Vec<u8> {
        let mut b = vec![0u8; n];
        self.0.read_exact(&mut b).expect("bytes");
        b
    }
    /// The `$<len>` payload, past the keepalive newlines.
    fn payload(&mut self) -> Vec<u8> {
        let mut len = self.line();
        while len == "\n" {
            len = self.line();
        }
        assert!(len.starts_with('$') && !len.starts_with("$EOF"), "{len:?}");
        let n: usize = len[1..].trim().parse().expect("payload length");
        self.exact(n)
    }
}

/// Loads `rdb` into a real redis-server and returns its DEBUG DIGEST.
fn digest_of_file(rdb: &[u8]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("dump.rdb"), rdb).expect("write rdb");
    let r = RedisServer::builder()
        .dir(dir.path())
        .extra_args(&["--dbfilename", "dump.rdb", "--enable-debug-command", "yes"])
        .start()
        .expect("redis-server loads the file");
    text(&ok(&mut client(r.port()), &["DEBUG", "DIGEST"]))
}

fn len_form_transfer(persist: bool) {
    let m = master(persist);
    let port = m.port();
    let mut c = client(port);
    ok(
        &mut c,
        &["CONFIG", "SET", "repl-ping-replica-period", "3600"],
    );
    // About 13 MB of RDB: far more than the socket buffers hold.
    ok(&mut c, &["DEBUG", "POPULATE", "100000", "key", "120"]);
    ok(&mut c, &["HSET", "h", "f", "v"]);
    let before = text(&ok(&mut c, &["DEBUG", "DIGEST"]));
    let mut r = Raw::connect(port);
    r.send(&["REPLCONF", "capa", "psync2"]);
    assert_eq!(r.line(), "+OK\r\n");
    r.send(&["PSYNC", "?", "-1"]);
    let head = r.line();
    assert!(head.starts_with("+FULLRESYNC "), "{head}");
    // Written while the file is produced and sent (the replica reads nothing
    // yet): buffered, and sent after the file.
    let mut expected = cmd_bytes(&["SELECT", "0"]);
    for i in 0..200 {
        let (k, v) = (format!("after:{i}"), i.to_string());
        ok(&mut c, &["SET", &k, &v]);
        expected.extend(cmd_bytes(&["SET", &k, &v]));
    }
    let rdb = r.payload();
    assert!(rdb.len() > 10 << 20, "{} bytes", rdb.len());
    assert!(rdb.starts_with(b"REDIS0010"));
    assert_eq!(
        r.exact(expected.len()),
        expected,
        "the stream after the file"
    );
    assert_eq!(digest_of_file(&rdb), before);
    // The connection is its task's again: it reads the ACK.
    let start: u64 = head.split_whitespace().nth(2).unwrap().parse().unwrap();
    let ack = (start + expected.len() as u64).to_string();
    r.send(&["REPLCONF", "ACK", &ack]);
    wait_until(10, "the ACK", || {
        info(port, "replication").contains(&format!(",state=online,offset={ack},"))
    });
    // And the stream keeps flowing.
    ok(&mut c, &["DEL", "h"]);
    let del = cmd_bytes(&["DEL", "h"]);
    assert_eq!(r.exact(del.len()), del);
    assert!(m.log().contains("full resynchronization"), "{}", m.log());
}

#[test]
fn a_len_form_file_larger_than_the_socket_buffers_arrives_identical_then_the_stream_in_order() {
    len_form_transfer(false);
}

#[test]
fn a_len_form_file_spooled_in_the_data_directory_arrives_identical() {
    len_form_transfer(true);
}

#[test]
fn an_eof_form_transfer_to_a_slow_reader_arrives_identical() {
    let m = master(false);
    let port = m.port();
    let mut c = client(port);
    ok(&mut c, &["DEBUG", "POPULATE", "100000", "key", "100"]);
    let before = text(&ok(&mut c, &["DEBUG", "DIGEST"]));
    let mut r = Raw::connect(port);
    r.send(&["REPLCONF", "capa", "eof", "capa", "psync2"]);
    assert_eq!(r.line(), "+OK\r\n");
    r.send(&["PSYNC", "?", "-1"]);
    assert!(r.line().starts_with("+FULLRESYNC "));
    ok(&mut c, &["SET", "later", "1"]);
    let head = r.line();
    let mark = head
        .strip_prefix("$EOF:")
        .map(|m| m.trim_end().as_bytes().to_vec())
        .unwrap_or_else(|| panic!("{head:?}"));
    // Read slowly at first: the thread waits for room in the socket.
    let mut rdb = Vec::new();
    let mut buf = vec![0u8; 16 << 10];
    let mut reads = 0;
    while !rdb.ends_with(&mark) {
        let n = r.0.read(&mut buf).expect("read");
        assert!(n > 0, "the connection closed inside the file");
        rdb.extend_from_slice(&buf[..n]);
        reads += 1;
        if reads < 20 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    rdb.truncate(rdb.len() - mark.len());
    assert_eq!(digest_of_file(&rdb), before);
    // The stream starts at the replica's first ACK.
    r.send(&["REPLCONF", "ACK", "0"]);
    let expected = [
        cmd_bytes(&["SELECT", "0"]),
        cmd_bytes(&["SET", "later", "1"]),
    ]
    .concat();
    assert_eq!(r.exact(expected.len()), expected);
}

/// The full synchronization threads of process `pid` running now.
fn transfer_threads(pid: u32) -> usize {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|c| c.trim() == "redsnap-repl-sy")
        .count()
}

#[test]
fn a_replica_killed_during_its_transfer_ends_it_and_its_socket_closes() {
    let m = master(false);
    let port = m.port();
    let mut c = client(port);
    ok(&mut c, &["DEBUG", "POPULATE", "100000", "key", "120"]);
    let mut r = Raw::connect(port);
    r.send(&["SYNC"]);
    // The replica reads nothing: the transfer thread waits for room.
    let pid = m.pid().expect("pid");
    wait_until(20, "the transfer to start", || transfer_threads(pid) == 1);
    let killed = ok(&mut c, &["CLIENT", "KILL", "TYPE", "replica"]);
    assert_eq!(killed, Resp::Int(1));
    // Its thread ends (the connection is gone; the replica's record with it).
    wait_until(30, "the transfer thread to end", || {
        transfer_threads(pid) == 0
    });
    // The socket is closed (the thread's duplicate too): reading ends.
    let mut sink = vec![0u8; 1 << 20];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match r.0.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => assert!(Instant::now() < deadline, "the socket stays open"),
        }
    }
    assert_eq!(
        field(&info(port, "replication"), "connected_slaves").as_deref(),
        Some("0")
    );
    assert_eq!(ok(&mut c, &["PING"]), Resp::Simple(b"PONG".to_vec()));
}

#[test]
fn a_tls_replica_gets_its_file_through_the_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = redsnap_testsupport::TlsFiles::generate(dir.path()).expect("tls material");
    let tls_port = redsnap_testsupport::free_port().to_string();
    let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let (cert, key, ca) = (
        path(&files.server_cert),
        path(&files.server_key),
        path(&files.ca_cert),
    );
    let m = RedsnapServer::builder()
        .extra_args(&[
            "--appendonly",
            "no",
            "--save",
            "",
            "--tls-port",
            &tls_port,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
        ])
        .start()
        .expect("redsnap with TLS");
    let mut c = client(m.port());
    ok(&mut c, &["DEBUG", "POPULATE", "50000", "key", "100"]);
    let before = text(&ok(&mut c, &["DEBUG", "DIGEST"]));
    let file = dir.path().join("tls.rdb");
    let out = std::process::Command::new("redis-cli")
        .args([
            "--tls",
            "--cacert",
            &ca,
            "-h",
            "127.0.0.1",
            "-p",
            &tls_port,
            "--rdb",
        ])
        .arg(&file)
        .output()
        .expect("redis-cli");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let rdb = std::fs::read(&file).expect("rdb");
    assert_eq!(digest_of_file(&rdb), before);
}
