//! DUMP and RESTORE with Redis's payload format (see [`crate::rdb`]).

use super::is;
use crate::notify;
use crate::rdb::{self, RdbError};
use crate::reply::{self, Reply};
use crate::store::{CmdResult, Cx};
use crate::table::{cmd, flags::*, CommandSpec};
use bytes::Bytes;

pub const COMMANDS: &[CommandSpec] = &[
    cmd("dump", 2, READONLY, 1, 1, 1, "generic", Some(dump)),
    cmd(
        "restore",
        -4,
        WRITE | DENYOOM,
        1,
        1,
        1,
        "generic",
        Some(restore),
    ),
];

fn dump(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    Ok(match cx.lookup_read(&argv[1]) {
        Some(e) => Reply::Bulk(Bytes::from(rdb::dump_payload(e.value()))),
        None => Reply::Nil,
    })
}

/// The most memory one RESTORE may build: four times the largest payload a client
/// can send (`proto-max-bulk-len`, 2 GiB by default), at least 64 MiB. A payload
/// expands (LZF up to 264 times, each listpack entry into an element), so without a
/// bound one request could allocate far beyond `maxmemory` before any check; Redis
/// keeps listpacks compact and only fails a too large LZF allocation. Refused payloads
/// get "Bad data format".
fn restore_budget(cx: &Cx) -> rdb::Budget {
    rdb::Budget::new(
        cx.config()
            .proto_max_bulk_len
            .saturating_mul(4)
            .max(64 << 20),
    )
}

/// RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]
fn restore(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let (mut replace, mut absttl) = (false, false);
    let (mut idle, mut freq): (Option<i64>, Option<i64>) = (None, None);
    let mut j = 4;
    while j < argv.len() {
        let more = argv.len() - j - 1;
        let a = &argv[j];
        if is(a, "replace") {
            replace = true;
        } else if is(a, "absttl") {
            absttl = true;
        } else if is(a, "idletime") && more >= 1 && freq.is_none() {
            let v = super::int(&argv[j + 1])?;
            if v < 0 {
                return Err(Reply::err("ERR Invalid IDLETIME value, must be >= 0"));
            }
            idle = Some(v);
            j += 1;
        } else if is(a, "freq") && more >= 1 && idle.is_none() {
            let v = super::int(&argv[j + 1])?;
            if !(0..=255).contains(&v) {
                return Err(Reply::err(
                    "ERR Invalid FREQ value, must be >= 0 and <= 255",
                ));
            }
            freq = Some(v);
            j += 1;
        } else {
            return Err(Reply::err(reply::ERR_SYNTAX));
        }
        j += 1;
    }
    let exists = cx.exists(key);
    if !replace && exists {
        return Err(Reply::err("BUSYKEY Target key name already exists."));
    }
    let ttl = super::int(&argv[2])?;
    if ttl < 0 {
        return Err(Reply::err("ERR Invalid TTL value, must be >= 0"));
    }
    let value = match rdb::parse_payload_within(&argv[3], restore_budget(cx)) {
        Ok(v) => v,
        Err(RdbError::BadFooter) => {
            return Err(Reply::err("ERR DUMP payload version or checksum are wrong"))
        }
        Err(_) => return Err(Reply::err("ERR Bad data format")),
    };
    let deadline = match ttl {
        0 => None,
        t if absttl => Some(t as u64),
        t => Some((t as u64).saturating_add(cx.now)),
    };
    if deadline.is_some_and(|d| d <= cx.now) {
        // Already expired: the value is dropped (and a replaced key deleted).
        if replace && exists {
            cx.delete(key);
            cx.propagate(vec![Bytes::from_static(b"DEL"), key.clone()]);
        }
        return Ok(Reply::ok());
    }
    if exists {
        // Removed without counting: the restore itself is the one change.
        cx.db().remove(key);
    }
    cx.set_value(key, value, deadline);
    cx.notify(notify::GENERIC, "restore", key);
    let (lfu, now) = (cx.store.lfu, cx.now);
    if let Some(e) = cx.db().get(key) {
        let freq = freq.map(|f| f.clamp(0, 255) as u8);
        let idle = idle.map(|i| i.max(0) as u64);
        crate::store::set_restored_access(&e.obj, lfu, freq, idle, now);
    }
    Ok(Reply::ok())
}

#[cfg(test)]
mod tests {
    use crate::reply::Reply;
    use crate::store::Store;
    use crate::value::Value;
    use bytes::Bytes;

    fn run(s: &mut Store, args: &[&[u8]]) -> Reply {
        let argv: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a)).collect();
        s.exec(0, 1_000_000, &argv)
    }
    fn err(r: Reply) -> String {
        match r {
            Reply::Error(e) => String::from_utf8_lossy(&e).into_owned(),
            r => panic!("expected an error, got {r:?}"),
        }
    }
    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn dump_restore_round_trip() {
        let mut s = Store::default();
        run(&mut s, &[b"ZADD", b"z", b"1", b"a", b"2.5", b"b"]);
        let Reply::Bulk(p) = run(&mut s, &[b"DUMP", b"z"]) else {
            panic!()
        };
        assert_eq!(run(&mut s, &[b"DUMP", b"nokey"]), Reply::Nil);
        assert_eq!(
            err(run(&mut s, &[b"RESTORE", b"z", b"0", &p])),
            "BUSYKEY Target key name already exists."
        );
        assert_eq!(run(&mut s, &[b"RESTORE", b"z2", b"0", &p]), Reply::ok());
        assert_eq!(
            s.dbs[0].get(&Bytes::from("z2")).map(|e| e.value().clone()),
            s.dbs[0].get(&Bytes::from("z")).map(|e| e.value().clone())
        );
        let d = s.effects.dirty;
        assert_eq!(
            run(&mut s, &[b"RESTORE", b"z", b"5000", &p, b"REPLACE"]),
            Reply::ok()
        );
        assert_eq!(s.effects.dirty, d + 1);
        assert_eq!(
            s.dbs[0].get(&Bytes::from("z")).and_then(|e| e.expire_at()),
            Some(1_005_000)
        );
        assert_eq!(
            run(
                &mut s,
                &[
                    b"RESTORE",
                    b"abs",
                    b"2000000",
                    &p,
                    b"ABSTTL",
                    b"IDLETIME",
                    b"10"
                ]
            ),
            Reply::ok()
        );
        assert_eq!(
            s.dbs[0]
                .get(&Bytes::from("abs"))
                .and_then(|e| e.expire_at()),
            Some(2_000_000)
        );
        // An absolute deadline in the past: OK, nothing stored; with REPLACE the old key goes.
        assert_eq!(
            run(&mut s, &[b"RESTORE", b"gone", b"5", &p, b"ABSTTL"]),
            Reply::ok()
        );
        assert_eq!(run(&mut s, &[b"EXISTS", b"gone"]), Reply::Int(0));
        assert_eq!(
            run(&mut s, &[b"RESTORE", b"z", b"5", &p, b"ABSTTL", b"REPLACE"]),
            Reply::ok()
        );
        assert_eq!(run(&mut s, &[b"EXISTS", b"z"]), Reply::Int(0));
        assert_eq!(
            s.effects.log.last().map(|r| r.argv.clone()),
            Some(vec![Bytes::from("DEL"), Bytes::from("z")])
        );
    }

    #[test]
    fn restore_errors() {
        let mut s = Store::default();
        run(&mut s, &[b"SET", b"k", b"v"]);
        let Reply::Bulk(p) = run(&mut s, &[b"DUMP", b"k"]) else {
            panic!()
        };
        assert_eq!(
            err(run(&mut s, &[b"RESTORE", b"k", b"0", b"x"])),
            "BUSYKEY Target key name already exists."
        );
        assert_eq!(
            err(run(&mut s, &[b"RESTORE", b"n", b"-1", &p])),
            "ERR Invalid TTL value, must be >= 0"
        );
        assert_eq!(
            err(run(&mut s, &[b"RESTORE", b"n", b"x", &p])),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err(run(
                &mut s,
                &[b"RESTORE", b"n", b"0", &p, b"IDLETIME", b"-1"]
            )),
            "ERR Invalid IDLETIME value, must be >= 0"
        );
        assert_eq!(
            err(run(&mut s, &[b"RESTORE", b"n", b"0", &p, b"FREQ", b"256"])),
            "ERR Invalid FREQ value, must be >= 0 and <= 255"
        );
        assert_eq!(
            err(run(
                &mut s,
                &[b"RESTORE", b"n", b"0", &p, b"IDLETIME", b"1", b"FREQ", b"1"]
            )),
            "ERR syntax error"
        );
        assert_eq!(
            err(run(&mut s, &[b"RESTORE", b"n", b"0", &p, b"BOGUS"])),
            "ERR syntax error"
        );
        assert_eq!(
            err(run(&mut s, &[b"RESTORE", b"n", b"0", b"abc"])),
            "ERR DUMP payload version or checksum are wrong"
        );
        let mut bad = p.to_vec();
        bad[1] ^= 0x40;
        assert_eq!(
            err(run(&mut s, &[b"RESTORE", b"n", b"0", &bad])),
            "ERR DUMP payload version or checksum are wrong"
        );
        // Version 11 is too new for Redis 7.0.
        let mut v11 = p.to_vec();
        let n = v11.len();
        v11[n - 10] = 11;
        let crc = crate::rdb::crc64(&v11[..n - 8]);
        v11[n - 8..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            err(run(&mut s, &[b"RESTORE", b"n", b"0", &v11])),
            "ERR DUMP payload version or checksum are wrong"
        );
        // Valid footer, bad body: an empty set, then a stream.
        for body in ["0200", "0f00"] {
            let mut q = unhex(body);
            q.extend_from_slice(&10u16.to_le_bytes());
            let crc = crate::rdb::crc64(&q);
            q.extend_from_slice(&crc.to_le_bytes());
            assert_eq!(
                err(run(&mut s, &[b"RESTORE", b"n", b"0", &q])),
                "ERR Bad data format"
            );
        }
        assert_eq!(run(&mut s, &[b"EXISTS", b"n"]), Reply::Int(0));
    }

    #[test]
    fn restores_real_redis_list_payload() {
        // `RPUSH l1 a b 1 2; DUMP l1` on redis-server 7.0.15 (quicklist 2, listpack node).
        let p = unhex("1201021111000000040081610281620201010201ff0a006d72713e9b43482b");
        let mut s = Store::default();
        assert_eq!(run(&mut s, &[b"RESTORE", b"l", b"0", &p]), Reply::ok());
        let v = s.dbs[0].get(&Bytes::from("l")).map(|e| e.value().clone());
        let want: std::collections::VecDeque<Bytes> = ["a", "b", "1", "2"]
            .iter()
            .map(|x| Bytes::from(*x))
            .collect();
        assert_eq!(v, Some(Value::List(want.into())));
    }

    /// A payload of about 90 KB that would decode into 4M list elements (over 200 MB)
    /// is refused within RESTORE's budget (64 MiB at the smallest), not built.
    #[test]
    fn restore_refuses_a_payload_that_expands_beyond_its_budget() {
        let mut s = Store::new(crate::store::EngineConfig {
            proto_max_bulk_len: 1 << 20,
            ..Default::default()
        });
        let bomb = crate::rdb::tests::quicklist_bomb(200, 20_000);
        let (r, _, peak) =
            crate::test_alloc::measure(|| run(&mut s, &[b"RESTORE", b"k", b"0", &bomb]));
        assert_eq!(err(r), "ERR Bad data format");
        assert!(peak < 128 << 20, "held {peak} bytes");
        assert!(s.dbs[0].get(b"k").is_none());
        // A small one of the same shape is restored.
        let ok = crate::rdb::tests::quicklist_bomb(2, 1000);
        assert_eq!(run(&mut s, &[b"RESTORE", b"k", b"0", &ok]), Reply::ok());
        assert!(matches!(
            s.dbs[0].get(b"k").map(|e| e.value().clone()),
            Some(Value::List(l)) if l.len() == 2000
        ));
    }
}
