//! A client that reads replies straight off the wire, for tests that compare what
//! two servers send byte for byte (replies, RESP3 pushes, pub/sub messages).

use crate::encode_command;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One reply as read off the wire: its raw bytes and its strings (those of
/// aggregates flattened in order), enough to recognise a message.
pub struct WireReply {
    pub raw: Vec<u8>,
    pub parts: Vec<Vec<u8>>,
}

/// A connection with a 10 s read timeout.
pub struct WireClient {
    pub rd: BufReader<TcpStream>,
}

impl WireClient {
    pub fn connect(port: u16) -> WireClient {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s.set_nodelay(true).expect("nodelay");
        WireClient {
            rd: BufReader::new(s),
        }
    }

    pub fn send(&mut self, args: &[&[u8]]) {
        self.rd
            .get_mut()
            .write_all(&encode_command(args))
            .expect("write");
    }

    pub fn send_str(&mut self, args: &[&str]) {
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        self.send(&a);
    }

    fn read_into(&mut self, out: &mut WireReply) {
        let mut l = Vec::new();
        self.rd.read_until(b'\n', &mut l).expect("read line");
        assert!(l.ends_with(b"\r\n"), "truncated line {l:?}");
        out.raw.extend_from_slice(&l);
        let body = l[1..l.len() - 2].to_vec();
        let n = || -> i64 {
            std::str::from_utf8(&body)
                .ok()
                .and_then(|s| s.parse().ok())
                .expect("length")
        };
        match l[0] {
            b'$' | b'=' | b'!' => {
                let len = n();
                if len >= 0 {
                    let mut buf = vec![0; len as usize + 2];
                    self.rd.read_exact(&mut buf).expect("bulk");
                    out.raw.extend_from_slice(&buf);
                    buf.truncate(len as usize);
                    out.parts.push(buf);
                }
            }
            b'*' | b'>' | b'~' => {
                for _ in 0..n().max(0) {
                    self.read_into(out);
                }
            }
            b'%' => {
                for _ in 0..n().max(0) * 2 {
                    self.read_into(out);
                }
            }
            _ => out.parts.push(body),
        }
    }

    /// The next reply (or push).
    pub fn read(&mut self) -> WireReply {
        let mut r = WireReply {
            raw: Vec::new(),
            parts: Vec::new(),
        };
        self.read_into(&mut r);
        r
    }
}
