//! A redsnap server in this process (so libFuzzer sees its coverage and any crash),
//! reached over loopback: each input becomes the arguments of a script that calls
//! one library function in the real sandbox. The scripting module is private to the
//! server crate, so the public server is the entry point; a hang or a crash of the
//! server is a crash of this process.

use redsnap_server::{Config, Server};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

struct Client {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

static CLIENT: OnceLock<Mutex<Client>> = OnceLock::new();

fn start() -> Client {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let dir = std::env::temp_dir().join(format!("redsnap-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("fuzz data dir");
    let mut config = Config::default();
    for (k, v) in [
        ("port", port.to_string()),
        ("bind", "127.0.0.1".to_string()),
        ("dir", dir.display().to_string()),
        ("appendonly", "no".to_string()),
        ("save", String::new()),
    ] {
        config.set(k, &[v]).expect("fuzz config");
    }
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let server = Server::bind(config).await.expect("bind");
            server.run().await.expect("run");
        });
    });
    for _ in 0..500 {
        if let Ok(w) = TcpStream::connect(("127.0.0.1", port)) {
            w.set_nodelay(true).ok();
            // Generous: a hang is reported by libFuzzer's -timeout first.
            w.set_read_timeout(Some(Duration::from_secs(60))).ok();
            let r = BufReader::new(w.try_clone().expect("clone"));
            return Client { w, r };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the in-process server did not start");
}

fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn line(r: &mut BufReader<TcpStream>) -> Vec<u8> {
    let mut l = Vec::new();
    r.read_until(b'\n', &mut l).expect("reply line");
    assert!(l.ends_with(b"\r\n"), "truncated reply: {l:?}");
    l.truncate(l.len() - 2);
    l
}

fn num(b: &[u8]) -> i64 {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad length {b:?}"))
}

/// Reads one RESP2 reply whole; panics on anything malformed.
fn read_reply(r: &mut BufReader<TcpStream>, out: &mut Vec<u8>) {
    let l = line(r);
    out.extend_from_slice(&l);
    out.push(b'\n');
    match l.first() {
        Some(b'+') | Some(b'-') | Some(b':') => {}
        Some(b'$') => {
            let n = num(&l[1..]);
            if n >= 0 {
                let mut b = vec![0u8; n as usize + 2];
                r.read_exact(&mut b).expect("bulk");
                out.extend_from_slice(&b);
            }
        }
        Some(b'*') => {
            for _ in 0..num(&l[1..]).max(0) {
                read_reply(r, out);
            }
        }
        other => panic!("unexpected reply type {other:?}"),
    }
}

/// Runs `EVAL script 0 args...` and returns the raw reply; then checks that the
/// server still answers PING.
pub fn eval(script: &str, args: &[&[u8]]) -> Vec<u8> {
    let mut c = CLIENT
        .get_or_init(|| Mutex::new(start()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let Client { w, r } = &mut *c;
    let mut argv: Vec<&[u8]> = vec![b"EVAL", script.as_bytes(), b"0"];
    argv.extend_from_slice(args);
    let mut req = encode(&argv);
    req.extend_from_slice(&encode(&[b"PING"]));
    w.write_all(&req).expect("send");
    let mut out = Vec::new();
    read_reply(r, &mut out);
    let mut pong = Vec::new();
    read_reply(r, &mut pong);
    assert_eq!(pong, b"+PONG\n", "the server stopped answering");
    out
}
