//! Small helpers the replication tests share: commands given as `&str`, a reply as
//! text, INFO fields, DEBUG DIGEST, and a bounded poll.

use crate::dataset::{Client, Resp};
use std::time::{Duration, Instant};

/// A connection to the server on `port` (no password).
pub fn client(port: u16) -> Client {
    Client::connect(port, None).expect("connect")
}

/// A reply as text: a status, error or bulk string's bytes, an integer's digits,
/// anything else in its debug form.
pub fn text(r: &Resp) -> String {
    match r {
        Resp::Simple(b) | Resp::Error(b) | Resp::Bulk(Some(b)) => {
            String::from_utf8_lossy(b).into_owned()
        }
        Resp::Int(n) => n.to_string(),
        other => format!("{other:?}"),
    }
}

/// Runs a command; its reply, an error reply included.
pub fn call(c: &mut Client, args: &[&str]) -> Resp {
    let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
    c.call(&a).expect("command")
}

/// Runs a command that must not fail.
pub fn ok(c: &mut Client, args: &[&str]) -> Resp {
    let r = call(c, args);
    assert!(!matches!(r, Resp::Error(_)), "{args:?} -> {r:?}");
    r
}

/// DEBUG DIGEST of the server on `port`.
pub fn digest(port: u16) -> String {
    text(&ok(&mut client(port), &["DEBUG", "DIGEST"]))
}

/// An INFO section of the server on `port`.
pub fn info(port: u16, section: &str) -> String {
    text(&ok(&mut client(port), &["INFO", section]))
}

/// A field of an INFO text.
pub fn field(info: &str, name: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(|v| v.trim().to_string())
}

/// Polls `f` until it is true, for at most `secs` seconds (fails naming `what`).
pub fn wait_until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
