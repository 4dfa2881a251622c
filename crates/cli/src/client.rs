//! A small blocking RESP2 client for the tools: `redis://` URLs, AUTH, pipelining.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// A parsed reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Status(Vec<u8>),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

/// Where to connect, from `redis://[[user]:password@]host[:port][/db]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
    pub db: Option<u32>,
}

fn percent_decode(s: &str) -> Result<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3).context("bad %-escape in URL")?;
            out.push(u8::from_str_radix(hex, 16).context("bad %-escape in URL")?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).context("URL credentials are not UTF-8")
}

impl Target {
    pub fn parse(url: &str) -> Result<Target> {
        let rest = if let Some(r) = url.strip_prefix("redis://") {
            r
        } else if url.starts_with("rediss://") {
            bail!("{url}: TLS (rediss://) is not supported by this command yet");
        } else {
            bail!("{url}: expected a URL of the form redis://[:password@]host:port");
        };
        let (auth, hostpart) = match rest.rsplit_once('@') {
            Some((a, h)) => (Some(a), h),
            None => (None, rest),
        };
        let (hostport, db) = match hostpart.split_once('/') {
            Some((h, "")) => (h, None),
            Some((h, d)) => (
                h,
                Some(
                    d.parse::<u32>()
                        .with_context(|| format!("{url}: bad database number {d:?}"))?,
                ),
            ),
            None => (hostpart, None),
        };
        let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
            // [v6]:port
            let (h, p) = h.split_once(']').context("unclosed [ in URL host")?;
            (h.to_string(), p.strip_prefix(':').unwrap_or(""))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p),
                None => (hostport.to_string(), ""),
            }
        };
        let port = if port.is_empty() {
            6379
        } else {
            port.parse()
                .with_context(|| format!("{url}: bad port {port:?}"))?
        };
        if host.is_empty() {
            bail!("{url}: no host");
        }
        let (user, password) = match auth {
            None => (None, None),
            Some(a) => match a.split_once(':') {
                Some((u, p)) => (
                    (!u.is_empty()).then(|| percent_decode(u)).transpose()?,
                    Some(percent_decode(p)?),
                ),
                None => (None, Some(percent_decode(a)?)),
            },
        };
        Ok(Target {
            host,
            port,
            user,
            password,
            db,
        })
    }

    /// `host:port` for messages (never the password).
    pub fn display(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The URL without the password: `redis://[user@]host:port[/db]` (manifests).
    pub fn url_without_password(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let user = self
            .user
            .as_ref()
            .map(|u| format!("{}@", percent_encode(u)))
            .unwrap_or_default();
        let db = self.db.map(|d| format!("/{d}")).unwrap_or_default();
        format!("redis://{user}{host}:{}{db}", self.port)
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A connection.
pub struct Client {
    r: BufReader<TcpStream>,
    w: BufWriter<TcpStream>,
    /// Commands sent whose replies are not read yet.
    pending: usize,
}

/// The largest bulk reply accepted (a reply, not a value restored).
const MAX_BULK: u64 = 512 << 20;

impl Client {
    pub fn connect(t: &Target) -> Result<Client> {
        Client::connect_timeout(t, Duration::from_secs(10), Duration::from_secs(120))
    }

    /// Connects within `connect` and waits at most `read` for each reply.
    pub fn connect_timeout(t: &Target, connect: Duration, read: Duration) -> Result<Client> {
        let addrs: Vec<_> = (t.host.as_str(), t.port)
            .to_socket_addrs()
            .with_context(|| format!("resolving {}", t.display()))?
            .collect();
        let mut last = None;
        let mut stream = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, connect) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let stream = match (stream, last) {
            (Some(s), _) => s,
            (None, Some(e)) => {
                return Err(e).with_context(|| format!("connecting to {}", t.display()))
            }
            (None, None) => bail!("{}: no address", t.display()),
        };
        stream.set_nodelay(true).ok();
        stream.set_read_timeout(Some(read))?;
        let mut c = Client {
            r: BufReader::with_capacity(64 * 1024, stream.try_clone()?),
            w: BufWriter::with_capacity(1 << 20, stream),
            pending: 0,
        };
        if let Some(pw) = &t.password {
            let reply = match &t.user {
                Some(u) => c.call(&[b"AUTH", u.as_bytes(), pw.as_bytes()])?,
                None => c.call(&[b"AUTH", pw.as_bytes()])?,
            };
            if let Reply::Error(e) = reply {
                bail!("{}: AUTH failed: {e}", t.display());
            }
        }
        if let Some(db) = t.db {
            c.ok(&[b"SELECT", db.to_string().as_bytes()])?;
        }
        Ok(c)
    }

    /// Queues a command (sent at the next [`Client::flush`] or when the buffer fills).
    pub fn send(&mut self, args: &[&[u8]]) -> Result<()> {
        write!(self.w, "*{}\r\n", args.len())?;
        for a in args {
            write!(self.w, "${}\r\n", a.len())?;
            self.w.write_all(a)?;
            self.w.write_all(b"\r\n")?;
        }
        self.pending += 1;
        Ok(())
    }

    pub fn flush(&mut self) -> Result<()> {
        self.w.flush().context("sending commands")
    }

    /// Commands sent whose replies were not read.
    pub fn pending(&self) -> usize {
        self.pending
    }

    fn line(&mut self) -> Result<Vec<u8>> {
        let mut line = Vec::new();
        (&mut self.r)
            .take(64 * 1024)
            .read_until(b'\n', &mut line)
            .context("reading a reply")?;
        if !line.ends_with(b"\r\n") {
            bail!("the server closed the connection (or sent a malformed reply)");
        }
        line.truncate(line.len() - 2);
        Ok(line)
    }

    fn parse(&mut self, depth: usize) -> Result<Reply> {
        if depth > 16 {
            bail!("reply nested too deep");
        }
        let line = self.line()?;
        let Some((&kind, rest)) = line.split_first() else {
            bail!("empty reply line");
        };
        let num = || -> Result<i64> {
            std::str::from_utf8(rest)
                .ok()
                .and_then(|s| s.parse().ok())
                .context("bad number in reply")
        };
        Ok(match kind {
            b'+' => Reply::Status(rest.to_vec()),
            b'-' => Reply::Error(String::from_utf8_lossy(rest).into_owned()),
            b':' => Reply::Int(num()?),
            b'$' => {
                let n = num()?;
                if n < 0 {
                    Reply::Bulk(None)
                } else {
                    if n as u64 > MAX_BULK {
                        bail!("reply of {n} bytes is too large");
                    }
                    let mut b = Vec::new();
                    (&mut self.r).take(n as u64 + 2).read_to_end(&mut b)?;
                    if b.len() as i64 != n + 2 {
                        bail!("the server closed the connection in a reply");
                    }
                    b.truncate(n as usize);
                    Reply::Bulk(Some(b))
                }
            }
            b'*' => {
                let n = num()?;
                if n < 0 {
                    Reply::Array(None)
                } else {
                    let mut v = Vec::new();
                    for _ in 0..n {
                        v.push(self.parse(depth + 1)?);
                    }
                    Reply::Array(Some(v))
                }
            }
            other => bail!("unexpected reply type {:?}", other as char),
        })
    }

    /// The first line of a SYNC reply, without its CRLF: skips the bare `\n`
    /// keepalives a server sends while it prepares the file (as `redis-cli --rdb`
    /// does). Call after [`Client::send`] and [`Client::flush`] of SYNC.
    pub fn sync_line(&mut self) -> Result<Vec<u8>> {
        loop {
            let mut line = Vec::new();
            (&mut self.r)
                .take(64 * 1024)
                .read_until(b'\n', &mut line)
                .context("reading the SYNC reply")?;
            if line == b"\n" {
                continue;
            }
            if !line.ends_with(b"\r\n") {
                bail!("the server closed the connection (or sent a malformed reply) during SYNC");
            }
            line.truncate(line.len() - 2);
            self.pending = self.pending.saturating_sub(1);
            return Ok(line);
        }
    }

    /// The connection's buffered reader, for a SYNC payload after [`Client::sync_line`].
    pub fn raw_reader(&mut self) -> &mut BufReader<TcpStream> {
        &mut self.r
    }

    /// Reads the reply of the oldest command sent.
    pub fn read_reply(&mut self) -> Result<Reply> {
        if self.pending == 0 {
            bail!("no reply pending");
        }
        self.flush()?;
        let r = self.parse(0)?;
        self.pending -= 1;
        Ok(r)
    }

    pub fn call(&mut self, args: &[&[u8]]) -> Result<Reply> {
        while self.pending > 0 {
            self.read_reply()?;
        }
        self.send(args)?;
        self.read_reply()
    }

    /// A command that must not answer an error.
    pub fn ok(&mut self, args: &[&[u8]]) -> Result<Reply> {
        match self.call(args)? {
            Reply::Error(e) => bail!("{} answered: {e}", String::from_utf8_lossy(args[0])),
            r => Ok(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("redis://:s3cr%40t@127.0.0.1:6380/2").unwrap();
        assert_eq!(
            t,
            Target {
                host: "127.0.0.1".into(),
                port: 6380,
                user: None,
                password: Some("s3cr@t".into()),
                db: Some(2)
            }
        );
        let t = Target::parse("redis://alice:pw@localhost").unwrap();
        assert_eq!((t.user.as_deref(), t.port), (Some("alice"), 6379));
        let t = Target::parse("redis://[::1]:7000").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 7000));
        assert!(Target::parse("http://x").is_err());
        assert!(Target::parse("rediss://x:1").is_err());
        assert!(Target::parse("redis://h:notaport").is_err());
        let t = Target::parse("redis://b%40ck:pw@[::1]:7000/2").unwrap();
        assert_eq!(t.url_without_password(), "redis://b%40ck@[::1]:7000/2");
        let t = Target::parse("redis://:pw@h:1").unwrap();
        assert_eq!(t.url_without_password(), "redis://h:1");
    }
}
