//! The form of each write in the replication stream: a log record (`Effects::log`,
//! what the append log stores, with relative expiries and the command as the client
//! sent it) rewritten as Redis 7.0 propagates the command (`rewriteClientCommandVector`
//! and friends in t_string.c, expire.c, cluster.c), and the RESP encoding.

use bytes::Bytes;
use redsnap_engine::cmd::is;
use redsnap_engine::LogRecord;

/// Settings that change what a command is propagated as.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Rules {
    /// `lazyfree-lazy-user-del`: GETDEL is propagated as UNLINK instead of DEL.
    pub lazy_user_del: bool,
}

/// Appends `argv` as a RESP multibulk (what Redis's `replicationFeedSlaves` writes).
pub(crate) fn encode_command(out: &mut Vec<u8>, argv: &[Bytes]) {
    let mut n = itoa::Buffer::new();
    out.push(b'*');
    out.extend_from_slice(n.format(argv.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in argv {
        out.push(b'$');
        out.extend_from_slice(n.format(a.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

fn num(v: i64) -> Bytes {
    Bytes::from(v.to_string())
}

/// A log record as Redis 7.0 propagates the command:
/// * EXPIRE / PEXPIRE / EXPIREAT -> PEXPIREAT with the absolute deadline (PEXPIREAT as
///   sent), options kept; a deadline not in the future -> DEL;
/// * SETEX / PSETEX and SET with EX / PX / EXAT / PXAT -> `SET key value PXAT ms`; SET
///   ... GET without an expiry loses its GET;
/// * GETEX with an expiry -> PEXPIREAT (DEL when an absolute one is past), GETEX
///   PERSIST -> PERSIST; GETDEL -> DEL (UNLINK under `lazyfree-lazy-user-del`);
///   GETSET -> SET;
/// * RESTORE with a relative TTL -> the absolute one and ABSTTL.
///
/// Everything else goes as recorded (the engine already records SPOP as SREM,
/// INCRBYFLOAT as SET ... KEEPTTL, LMPOP as LPOP/RPOP with the count, ...).
pub(crate) fn to_stream(r: &LogRecord, rules: Rules) -> Vec<Bytes> {
    let a = &r.argv;
    let name = a[0].to_ascii_lowercase();
    let now = r.time as i64;
    let int = |x: &Bytes| redsnap_engine::num::parse_i64(x);
    let abs = |unit_ms: i64, relative: bool, v: i64| -> i64 {
        let ms = v.saturating_mul(unit_ms);
        if relative {
            ms.saturating_add(now)
        } else {
            ms
        }
    };
    match name.as_slice() {
        b"expire" | b"pexpire" | b"expireat" | b"pexpireat" if a.len() >= 3 => {
            let Some(v) = int(&a[2]) else {
                return a.clone();
            };
            let unit = if name[0] == b'p' { 1 } else { 1000 };
            let relative = !name.ends_with(b"at");
            let when = abs(unit, relative, v);
            if when <= now {
                return vec![b("DEL"), a[1].clone()];
            }
            let mut out = a.clone();
            if name.as_slice() != b"pexpireat" {
                out[0] = b("PEXPIREAT");
                out[2] = num(when);
            }
            out
        }
        b"setex" | b"psetex" if a.len() == 4 => {
            let Some(v) = int(&a[2]) else {
                return a.clone();
            };
            let unit = if name[0] == b'p' { 1 } else { 1000 };
            set_pxat(&a[1], &a[3], abs(unit, true, v))
        }
        b"set" if a.len() >= 4 => {
            let mut at = None;
            let mut get = false;
            let mut j = 3;
            while j < a.len() {
                let unit = match a[j].to_ascii_lowercase().as_slice() {
                    b"ex" => (1000, true),
                    b"px" => (1, true),
                    b"exat" => (1000, false),
                    b"pxat" => (1, false),
                    b"get" => {
                        get = true;
                        j += 1;
                        continue;
                    }
                    _ => {
                        j += 1;
                        continue;
                    }
                };
                at = a.get(j + 1).and_then(int).map(|v| abs(unit.0, unit.1, v));
                j += 2;
            }
            match at {
                Some(at) => set_pxat(&a[1], &a[2], at),
                // Redis drops GET (repeated or not) from the propagated SET.
                None if get => a
                    .iter()
                    .enumerate()
                    .filter(|(j, x)| *j < 3 || !is(x, "get"))
                    .map(|(_, x)| x.clone())
                    .collect(),
                None => a.clone(),
            }
        }
        b"getex" if a.len() >= 3 => {
            if is(&a[2], "persist") {
                return vec![b("PERSIST"), a[1].clone()];
            }
            let (unit, relative) = match a[2].to_ascii_lowercase().as_slice() {
                b"ex" => (1000, true),
                b"px" => (1, true),
                b"exat" => (1000, false),
                b"pxat" => (1, false),
                _ => return a.clone(),
            };
            match a.get(3).and_then(int) {
                Some(v) => {
                    let when = abs(unit, relative, v);
                    if !relative && when <= now {
                        vec![b("DEL"), a[1].clone()]
                    } else {
                        vec![b("PEXPIREAT"), a[1].clone(), num(when)]
                    }
                }
                None => a.clone(),
            }
        }
        b"getdel" if a.len() == 2 => {
            let del = if rules.lazy_user_del { "UNLINK" } else { "DEL" };
            vec![b(del), a[1].clone()]
        }
        b"getset" if a.len() == 3 => vec![b("SET"), a[1].clone(), a[2].clone()],
        b"restore" if a.len() >= 4 => {
            let absttl = a[4..].iter().any(|x| is(x, "absttl"));
            match int(&a[2]) {
                Some(ttl) if ttl > 0 && !absttl => {
                    let mut out = a.clone();
                    out[2] = num(ttl.saturating_add(now));
                    out.push(b("ABSTTL"));
                    out
                }
                _ => a.clone(),
            }
        }
        _ => a.clone(),
    }
}

fn set_pxat(key: &Bytes, value: &Bytes, at: i64) -> Vec<Bytes> {
    vec![b("SET"), key.clone(), value.clone(), b("PXAT"), num(at)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_with(rules: Rules, args: &[&str]) -> Vec<String> {
        let r = LogRecord {
            db: 0,
            time: 1_000_000,
            argv: args
                .iter()
                .map(|a| Bytes::copy_from_slice(a.as_bytes()))
                .collect(),
        };
        to_stream(&r, rules)
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }

    fn stream(args: &[&str]) -> Vec<String> {
        stream_with(Rules::default(), args)
    }

    #[test]
    fn expiries_become_absolute() {
        assert_eq!(
            stream(&["expire", "k", "10"]),
            ["PEXPIREAT", "k", "1010000"]
        );
        assert_eq!(
            stream(&["PEXPIRE", "k", "10", "NX"]),
            ["PEXPIREAT", "k", "1000010", "NX"]
        );
        assert_eq!(
            stream(&["expireat", "k", "2000", "gt"]),
            ["PEXPIREAT", "k", "2000000", "gt"]
        );
        assert_eq!(
            stream(&["pexpireat", "k", "2000000"]),
            ["pexpireat", "k", "2000000"]
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
            ["SET", "k", "v", "PXAT", "7"]
        );
        assert_eq!(stream(&["set", "k", "v"]), ["set", "k", "v"]);
        assert_eq!(
            stream(&["set", "k", "v", "get", "KEEPTTL", "GET"]),
            ["set", "k", "v", "KEEPTTL"]
        );
        assert_eq!(stream(&["getex", "k", "persist"]), ["PERSIST", "k"]);
        assert_eq!(
            stream(&["getex", "k", "px", "5"]),
            ["PEXPIREAT", "k", "1000005"]
        );
        assert_eq!(stream(&["getex", "k", "exat", "1"]), ["DEL", "k"]);
        assert_eq!(stream(&["rpush", "k", "a"]), ["rpush", "k", "a"]);
    }

    #[test]
    fn rewritten_commands() {
        assert_eq!(stream(&["getdel", "k"]), ["DEL", "k"]);
        let lazy = Rules {
            lazy_user_del: true,
        };
        assert_eq!(stream_with(lazy, &["GETDEL", "k"]), ["UNLINK", "k"]);
        assert_eq!(stream(&["getset", "k", "v"]), ["SET", "k", "v"]);
        assert_eq!(
            stream(&["restore", "k", "100", "payload", "REPLACE"]),
            ["restore", "k", "1000100", "payload", "REPLACE", "ABSTTL"]
        );
        assert_eq!(
            stream(&["restore", "k", "2000000", "payload", "absttl"]),
            ["restore", "k", "2000000", "payload", "absttl"]
        );
        assert_eq!(
            stream(&["restore", "k", "0", "payload"]),
            ["restore", "k", "0", "payload"]
        );
    }

    #[test]
    fn commands_encode_as_multibulk() {
        let mut out = Vec::new();
        encode_command(&mut out, &[b("SELECT"), b("9")]);
        assert_eq!(out, b"*2\r\n$6\r\nSELECT\r\n$1\r\n9\r\n");
    }
}
