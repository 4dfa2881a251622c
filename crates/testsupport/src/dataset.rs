//! A server's whole dataset, read through commands, comparable between servers
//! (redis-server and redsnap): for each key in each database, its type, its value
//! (set, hash and sorted-set elements sorted) and its absolute deadline.

use crate::{encode_command, read_reply, RawConn};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::io::{BufReader, Write};

/// A parsed RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resp {
    Simple(Vec<u8>),
    Error(Vec<u8>),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Resp>>),
}

impl Resp {
    /// The elements of an array of bulk strings.
    pub fn strings(&self) -> Result<Vec<Vec<u8>>> {
        match self {
            Resp::Array(Some(items)) => items
                .iter()
                .map(|i| match i {
                    Resp::Bulk(Some(b)) | Resp::Simple(b) => Ok(b.clone()),
                    other => bail!("expected a string element, got {other:?}"),
                })
                .collect(),
            other => bail!("expected an array, got {other:?}"),
        }
    }
}

fn line(buf: &[u8], at: usize) -> Result<(&[u8], usize)> {
    let rest = buf.get(at..).context("reply cut short")?;
    let end = rest
        .windows(2)
        .position(|w| w == b"\r\n")
        .context("reply line without CRLF")?;
    Ok((&rest[..end], at + end + 2))
}

fn num(b: &[u8]) -> Result<i64> {
    std::str::from_utf8(b)?
        .parse()
        .with_context(|| format!("bad number {:?}", String::from_utf8_lossy(b)))
}

/// Parses one RESP2 reply starting at `at`; returns it and where it ends.
pub fn parse_resp(buf: &[u8], at: usize) -> Result<(Resp, usize)> {
    let (l, next) = line(buf, at)?;
    let (&kind, rest) = l.split_first().context("empty reply line")?;
    Ok(match kind {
        b'+' => (Resp::Simple(rest.to_vec()), next),
        b'-' => (Resp::Error(rest.to_vec()), next),
        b':' => (Resp::Int(num(rest)?), next),
        b'$' => {
            let n = num(rest)?;
            if n < 0 {
                (Resp::Bulk(None), next)
            } else {
                let end = next + n as usize;
                let b = buf.get(next..end).context("bulk cut short")?;
                (Resp::Bulk(Some(b.to_vec())), end + 2)
            }
        }
        b'*' => {
            let n = num(rest)?;
            if n < 0 {
                (Resp::Array(None), next)
            } else {
                let mut items = Vec::new();
                let mut at = next;
                for _ in 0..n {
                    let (r, a) = parse_resp(buf, at)?;
                    items.push(r);
                    at = a;
                }
                (Resp::Array(Some(items)), at)
            }
        }
        other => bail!("unsupported reply type {:?}", other as char),
    })
}

/// A connection that parses replies and pipelines.
pub struct Client {
    conn: BufReader<std::net::TcpStream>,
}

impl Client {
    /// Connects to 127.0.0.1:`port`, with AUTH when a password is given.
    pub fn connect(port: u16, password: Option<&str>) -> Result<Client> {
        let raw = RawConn::connect(port)?;
        let mut c = Client { conn: raw.reader };
        if let Some(pw) = password {
            c.ok(&[b"AUTH", pw.as_bytes()])?;
        }
        Ok(c)
    }

    /// Sends every command, then reads every reply.
    pub fn pipeline(&mut self, cmds: &[Vec<Vec<u8>>]) -> Result<Vec<Resp>> {
        let mut out = Vec::new();
        for c in cmds {
            let args: Vec<&[u8]> = c.iter().map(|a| a.as_slice()).collect();
            out.extend_from_slice(&encode_command(&args));
        }
        self.conn.get_mut().write_all(&out)?;
        let mut replies = Vec::with_capacity(cmds.len());
        for _ in cmds {
            let mut raw = Vec::new();
            read_reply(&mut self.conn, &mut raw)?;
            replies.push(parse_resp(&raw, 0)?.0);
        }
        Ok(replies)
    }

    pub fn call(&mut self, args: &[&[u8]]) -> Result<Resp> {
        let cmd: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
        let mut r = self.pipeline(&[cmd])?;
        r.pop().context("no reply")
    }

    /// A command that must not answer an error.
    pub fn ok(&mut self, args: &[&[u8]]) -> Result<Resp> {
        match self.call(args)? {
            Resp::Error(e) => bail!(
                "{:?} answered {}",
                String::from_utf8_lossy(args[0]),
                String::from_utf8_lossy(&e)
            ),
            r => Ok(r),
        }
    }

    /// Every key of database `db` (SCAN).
    pub fn keys(&mut self, db: u32) -> Result<Vec<Vec<u8>>> {
        self.ok(&[b"SELECT", db.to_string().as_bytes()])?;
        let mut cursor = b"0".to_vec();
        let mut keys = Vec::new();
        loop {
            let r = self.ok(&[b"SCAN", &cursor, b"COUNT", b"1000"])?;
            let Resp::Array(Some(parts)) = r else {
                bail!("SCAN reply {r:?}")
            };
            let (Some(Resp::Bulk(Some(c))), Some(list)) = (parts.first(), parts.get(1)) else {
                bail!("SCAN reply {parts:?}")
            };
            keys.extend(list.strings()?);
            cursor = c.clone();
            if cursor == b"0" {
                break;
            }
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }
}

/// One key: TYPE, the value (elements of unordered types sorted; a sorted set as
/// member/score pairs in rank order) and PEXPIRETIME (-1: none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyState {
    pub kind: String,
    pub value: Vec<Vec<u8>>,
    pub pexpiretime: i64,
}

/// `(db, key) -> state` for every key of databases `0..dbs`.
pub type Dataset = BTreeMap<(u32, Vec<u8>), KeyState>;

/// Reads every key of databases `0..dbs` from the server at 127.0.0.1:`port`.
pub fn fetch_dataset(port: u16, password: Option<&str>, dbs: u32) -> Result<Dataset> {
    let mut c = Client::connect(port, password)?;
    let mut out = Dataset::new();
    for db in 0..dbs {
        for key in c.keys(db)? {
            let kind = match c.ok(&[b"TYPE", &key])? {
                Resp::Simple(t) => String::from_utf8_lossy(&t).into_owned(),
                r => bail!("TYPE reply {r:?}"),
            };
            let mut value = match kind.as_str() {
                "string" => match c.ok(&[b"GET", &key])? {
                    Resp::Bulk(Some(v)) => vec![v],
                    r => bail!("GET reply {r:?}"),
                },
                "list" => c.ok(&[b"LRANGE", &key, b"0", b"-1"])?.strings()?,
                "set" => c.ok(&[b"SMEMBERS", &key])?.strings()?,
                "hash" => {
                    let flat = c.ok(&[b"HGETALL", &key])?.strings()?;
                    flat.chunks(2).map(|p| p.join(&b"\0"[..])).collect()
                }
                "zset" => {
                    let flat = c
                        .ok(&[b"ZRANGE", &key, b"0", b"-1", b"WITHSCORES"])?
                        .strings()?;
                    flat.chunks(2).map(|p| p.join(&b"\0"[..])).collect()
                }
                other => vec![format!("<{other}>").into_bytes()],
            };
            if matches!(kind.as_str(), "set" | "hash") {
                value.sort();
            }
            let pexpiretime = match c.ok(&[b"PEXPIRETIME", &key])? {
                Resp::Int(t) => t,
                r => bail!("PEXPIRETIME reply {r:?}"),
            };
            out.insert(
                (db, key),
                KeyState {
                    kind,
                    value,
                    pexpiretime,
                },
            );
        }
    }
    Ok(out)
}

/// A deadline far enough ahead for any test (ms since the epoch, year 2100).
pub const FAR_DEADLINE_MS: i64 = 4_102_444_800_000;

/// Fills a server with every type in every encoding Redis 7.0 picks, small and
/// large: strings (short, integer, LZF-compressible, incompressible, empty, binary
/// key), lists (one listpack node; thousands of elements in LZF-compressed nodes,
/// with `list-compress-depth 1` set; a plain node for an element over 8 KB), sets
/// (intset, intset past 512 members, hashtable), hashes (listpack, hashtable by
/// count and by value size), sorted sets (listpack, skiplist; infinite, negative and
/// fractional scores), deadlines on some keys, in databases 0, 1 and 9. Returns the
/// number of keys written.
pub fn fill_every_encoding(c: &mut Client) -> Result<usize> {
    fn s(v: &[&[u8]]) -> Vec<Vec<u8>> {
        v.iter().map(|a| a.to_vec()).collect()
    }
    let mut n = 0usize;
    // Redis only: compressed quicklist nodes (redsnap accepts and ignores it).
    let _ = c.call(&[b"CONFIG", b"SET", b"list-compress-depth", b"1"]);
    let mut cmds: Vec<Vec<Vec<u8>>> = vec![s(&[b"SELECT", b"0"])];
    let mut rand_bytes = Vec::with_capacity(300);
    let mut x: u32 = 0x1234_5678;
    for _ in 0..300 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        rand_bytes.push(x as u8);
    }
    let big_str = "x".repeat(100_000);
    for (k, v) in [
        (&b"s:short"[..], &b"hello"[..]),
        (b"s:int", b"12345"),
        (b"s:neg", b"-7"),
        (b"s:big", big_str.as_bytes()),
        (b"s:rand", &rand_bytes),
        (b"s:empty", b""),
        (b"bin\x00\xffkey", b"v"),
    ] {
        cmds.push(s(&[b"SET", k, v]));
        n += 1;
    }
    cmds.push(s(&[b"RPUSH", b"l:small", b"a", b"1", b"", b"-5", b"b"]));
    let mut big_list = s(&[b"RPUSH", b"l:big"]);
    for i in 0..5000 {
        big_list.push(format!("element-{}", i % 97).into_bytes());
    }
    cmds.push(big_list);
    let plain = "p".repeat(10_000);
    cmds.push(s(&[
        b"RPUSH",
        b"l:plain",
        b"small",
        plain.as_bytes(),
        b"tail",
    ]));
    cmds.push(s(&[
        b"SADD",
        b"set:int",
        b"1",
        b"-2",
        b"300",
        b"70000",
        b"5000000000",
    ]));
    let mut set_intbig = s(&[b"SADD", b"set:intbig"]);
    let mut set_big = s(&[b"SADD", b"set:big"]);
    for i in 0..1000 {
        set_intbig.push(i.to_string().into_bytes());
        set_big.push(format!("member:{i}").into_bytes());
    }
    cmds.push(set_intbig);
    cmds.push(set_big);
    cmds.push(s(&[b"SADD", b"set:str", b"a", b"b", b"c"]));
    cmds.push(s(&[
        b"HSET", b"h:small", b"f1", b"v1", b"f2", b"2", b"f3", b"",
    ]));
    let mut h_big = s(&[b"HSET", b"h:big"]);
    for i in 0..1000 {
        h_big.push(format!("field:{i}").into_bytes());
        h_big.push(format!("value:{}", i * 7).into_bytes());
    }
    cmds.push(h_big);
    let long_val = "v".repeat(200);
    cmds.push(s(&[b"HSET", b"h:longval", b"f", long_val.as_bytes()]));
    cmds.push(s(&[
        b"ZADD", b"z:small", b"1", b"one", b"-2.5", b"neg", b"inf", b"top", b"-inf", b"bottom",
        b"0.1", b"tenth",
    ]));
    let mut z_big = s(&[b"ZADD", b"z:big"]);
    for i in 0..1000 {
        z_big.push(format!("{}", i as f64 / 3.0).into_bytes());
        z_big.push(format!("m{i}").into_bytes());
    }
    cmds.push(z_big);
    n += 12;
    let far = FAR_DEADLINE_MS.to_string();
    for k in [&b"s:short"[..], b"l:big", b"set:int", b"h:big", b"z:small"] {
        cmds.push(s(&[b"PEXPIREAT", k, far.as_bytes()]));
    }
    cmds.push(s(&[
        b"PEXPIREAT",
        b"s:int",
        (FAR_DEADLINE_MS - 12_345).to_string().as_bytes(),
    ]));
    for db in [&b"1"[..], b"9"] {
        cmds.push(s(&[b"SELECT", db]));
        cmds.push(s(&[b"SET", b"s:short", db]));
        cmds.push(s(&[b"RPUSH", b"l:small", b"x", db]));
        cmds.push(s(&[b"HSET", b"h:small", b"db", db]));
        cmds.push(s(&[b"PEXPIREAT", b"h:small", far.as_bytes()]));
        n += 3;
    }
    cmds.push(s(&[b"SELECT", b"0"]));
    for (i, r) in c.pipeline(&cmds)?.into_iter().enumerate() {
        if let Resp::Error(e) = r {
            bail!(
                "filling: {:?} answered {}",
                String::from_utf8_lossy(&cmds[i][0]),
                String::from_utf8_lossy(&e)
            );
        }
    }
    Ok(n)
}
