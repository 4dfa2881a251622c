//! The types issue 15 added (streams with consumer groups and pending entries,
//! geo sets, bitmaps, HyperLogLogs), filled the same way on any server and read
//! back as a comparable state: for round trips through SHUTDOWN, `kill -9`,
//! DUMP/RESTORE and RDB files, between redsnap and redis-server.
//!
//! All stream IDs are explicit and nothing here reads the clock, so two fills
//! give the same data; delivery and seen times are absolute in the state (XINFO
//! STREAM FULL), so a copy that keeps them compares equal. The one field left
//! out is XINFO STREAM's `radix-tree-nodes`, which redsnap estimates
//! (`rax_nodes` in crates/engine/src/cmd/stream_info.rs).

use crate::dataset::{Client, Resp};
use anyhow::Result;

/// Every key [`fill_new_types`] writes.
pub const NEW_TYPE_KEYS: &[&str] = &[
    "nt:stream",
    "nt:stream:empty",
    "nt:stream:small",
    "nt:geo",
    "nt:geo:big",
    "nt:bits",
    "nt:hll:sparse",
    "nt:hll:dense",
    "nt:hll:merged",
];

fn run(c: &mut Client, args: &[String]) -> Result<Resp> {
    let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
    c.ok(&a)
}

macro_rules! cmd {
    ($c:expr, $($x:expr),+ $(,)?) => {
        run($c, &[$($x.to_string()),+])
    };
}

/// Fills the current database with the new types in their small and large
/// shapes: a stream of 400 entries over several nodes (deletions, an
/// approximate trim, two groups, three consumers with pending entries, a NOACK
/// read, claims, acks), an empty stream with a group, a small stream; a geo set
/// in listpack and one in skiplist encoding; a bitmap with BITFIELD values;
/// sparse, dense and merged HyperLogLogs (one count cached).
pub fn fill_new_types(c: &mut Client) -> Result<()> {
    let s = "nt:stream";
    let mut cmds: Vec<Vec<Vec<u8>>> = Vec::new();
    for i in 1..=400u32 {
        let id = format!("{}-{}", 1000 + i / 3, i % 3);
        let mut a = vec![b"XADD".to_vec(), s.into(), id.into_bytes()];
        a.push(b"n".to_vec());
        a.push(i.to_string().into_bytes());
        if i % 7 == 0 {
            a.push(b"payload".to_vec());
            a.push("x".repeat((i % 50) as usize).into_bytes());
        }
        cmds.push(a);
    }
    for r in c.pipeline(&cmds)? {
        if let Resp::Error(e) = r {
            anyhow::bail!("XADD: {}", String::from_utf8_lossy(&e));
        }
    }
    cmd!(c, "XDEL", s, "1001-0", "1010-2", "1100-1")?;
    cmd!(c, "XTRIM", s, "MAXLEN", "~", "350")?;
    cmd!(c, "XGROUP", "CREATE", s, "g1", "0")?;
    cmd!(
        c,
        "XGROUP",
        "CREATE",
        s,
        "g2",
        "1050-0",
        "ENTRIESREAD",
        "10"
    )?;
    cmd!(
        c,
        "XREADGROUP",
        "GROUP",
        "g1",
        "alice",
        "COUNT",
        "7",
        "STREAMS",
        s,
        ">"
    )?;
    cmd!(
        c,
        "XREADGROUP",
        "GROUP",
        "g1",
        "bob",
        "COUNT",
        "4",
        "STREAMS",
        s,
        ">"
    )?;
    cmd!(
        c,
        "XREADGROUP",
        "GROUP",
        "g1",
        "carol",
        "NOACK",
        "COUNT",
        "3",
        "STREAMS",
        s,
        ">"
    )?;
    cmd!(
        c,
        "XREADGROUP",
        "GROUP",
        "g2",
        "alice",
        "COUNT",
        "5",
        "STREAMS",
        s,
        ">"
    )?;
    cmd!(c, "XGROUP", "CREATECONSUMER", s, "g2", "dave")?;
    // Pending-entry times in the past, set explicitly (TIME), so they do not
    // depend on when the fill ran.
    let pending = match cmd!(c, "XPENDING", s, "g1", "-", "+", "100")? {
        Resp::Array(Some(v)) => v,
        _ => Vec::new(),
    };
    for (n, p) in pending.iter().enumerate() {
        if let Resp::Array(Some(f)) = p {
            if let Some(Resp::Bulk(Some(id))) = f.first() {
                let id = String::from_utf8_lossy(id).into_owned();
                let to = if n % 2 == 0 { "bob" } else { "alice" };
                let t = 1_700_000_000_000u64 + n as u64 * 1000;
                cmd!(
                    c,
                    "XCLAIM",
                    s,
                    "g1",
                    to,
                    "0",
                    id,
                    "TIME",
                    t,
                    "RETRYCOUNT",
                    n % 4 + 1,
                    "JUSTID"
                )?;
            }
        }
    }
    let pending2 = match cmd!(c, "XPENDING", s, "g2", "-", "+", "100")? {
        Resp::Array(Some(v)) => v,
        _ => Vec::new(),
    };
    for p in &pending2 {
        if let Resp::Array(Some(f)) = p {
            if let Some(Resp::Bulk(Some(id))) = f.first() {
                let id = String::from_utf8_lossy(id).into_owned();
                cmd!(
                    c,
                    "XCLAIM",
                    s,
                    "g2",
                    "alice",
                    "0",
                    id,
                    "TIME",
                    "1600000000000",
                    "JUSTID"
                )?;
            }
        }
    }
    cmd!(c, "XACK", s, "g1", "1001-1")?;
    cmd!(
        c,
        "XSETID",
        s,
        "2000-5",
        "ENTRIESADDED",
        "500",
        "MAXDELETEDID",
        "1100-1"
    )?;
    cmd!(
        c,
        "XGROUP",
        "CREATE",
        "nt:stream:empty",
        "lonely",
        "$",
        "MKSTREAM"
    )?;
    cmd!(c, "XADD", "nt:stream:small", "1-1", "a", "1", "b", "2")?;
    cmd!(c, "XADD", "nt:stream:small", "2-0", "a", "3")?;

    let mut geo = vec!["GEOADD".to_string(), "nt:geo".into()];
    for (lon, lat, m) in [
        ("13.361389", "38.115556", "Palermo"),
        ("15.087269", "37.502669", "Catania"),
        ("-122.4194", "37.7749", "SF"),
        ("179.999", "-85.05", "edge"),
        ("0", "0", "origin"),
    ] {
        geo.extend([lon.to_string(), lat.to_string(), m.to_string()]);
    }
    run(c, &geo)?;
    let mut big = vec!["GEOADD".to_string(), "nt:geo:big".into()];
    for i in 0..300 {
        let lon = -170.0 + (i as f64) * 1.13;
        let lat = -80.0 + (i as f64 * 0.53) % 160.0;
        big.extend([format!("{lon:.6}"), format!("{lat:.6}"), format!("p{i}")]);
    }
    run(c, &big)?;

    for off in [0u64, 7, 100, 1000, 77777] {
        cmd!(c, "SETBIT", "nt:bits", off, "1")?;
    }
    cmd!(c, "BITFIELD", "nt:bits", "SET", "i16", "#3", "-1234", "INCRBY", "u7", "200", "100")?;

    let mut sparse = vec!["PFADD".to_string(), "nt:hll:sparse".into()];
    sparse.extend((0..60).map(|i| format!("s{i}")));
    run(c, &sparse)?;
    let mut dense = vec!["PFADD".to_string(), "nt:hll:dense".into()];
    dense.extend((0..4000).map(|i| format!("d{i}")));
    run(c, &dense)?;
    cmd!(c, "PFCOUNT", "nt:hll:dense")?; // caches the count in the value
    cmd!(
        c,
        "PFMERGE",
        "nt:hll:merged",
        "nt:hll:sparse",
        "nt:hll:dense"
    )?;
    Ok(())
}

/// `radix-tree-nodes`' value replaced by 0, wherever it is.
fn mask_rax_nodes(r: Resp) -> Resp {
    match r {
        Resp::Array(Some(v)) => {
            let mut out = Vec::with_capacity(v.len());
            let mut mask_next = false;
            for item in v {
                let is_name = matches!(&item, Resp::Bulk(Some(b)) if b == b"radix-tree-nodes");
                out.push(if mask_next {
                    Resp::Int(0)
                } else {
                    mask_rax_nodes(item)
                });
                mask_next = is_name;
            }
            Resp::Array(Some(out))
        }
        other => other,
    }
}

/// `state` with every consumer group's `entries-read` and `lag` replaced by 0:
/// what replaying an append log cannot restore, in redsnap as in Redis 7.0
/// (XREADGROUP propagates XCLAIMs, which carry no read counter).
pub fn mask_group_counters(state: &[(String, Resp)]) -> Vec<(String, Resp)> {
    fn mask(r: &Resp) -> Resp {
        match r {
            Resp::Array(Some(v)) => {
                let mut out = Vec::with_capacity(v.len());
                let mut mask_next = false;
                for item in v {
                    let is_name =
                        matches!(item, Resp::Bulk(Some(b)) if b == b"entries-read" || b == b"lag");
                    out.push(if mask_next { Resp::Int(0) } else { mask(item) });
                    mask_next = is_name;
                }
                Resp::Array(Some(out))
            }
            other => other.clone(),
        }
    }
    state.iter().map(|(k, r)| (k.clone(), mask(r))).collect()
}

/// XPENDING's extended form with the idle times (which grow) replaced by 0.
fn mask_idle(r: Resp) -> Resp {
    match r {
        Resp::Array(Some(v)) => Resp::Array(Some(
            v.into_iter()
                .map(|e| match e {
                    Resp::Array(Some(mut f)) if f.len() == 4 => {
                        f[2] = Resp::Int(0);
                        Resp::Array(Some(f))
                    }
                    other => other,
                })
                .collect(),
        )),
        other => other,
    }
}

/// The state of every key [`fill_new_types`] writes, as `(command, reply)`
/// pairs read from the current database (RESP2), XPENDING's idle times masked.
pub fn new_types_state(c: &mut Client) -> Result<Vec<(String, Resp)>> {
    let mut reads: Vec<Vec<&str>> = Vec::new();
    for k in NEW_TYPE_KEYS {
        reads.push(vec!["TYPE", k]);
    }
    for s in ["nt:stream", "nt:stream:empty", "nt:stream:small"] {
        reads.push(vec!["XRANGE", s, "-", "+"]);
        reads.push(vec!["XLEN", s]);
        reads.push(vec!["XINFO", "STREAM", s, "FULL", "COUNT", "0"]);
        reads.push(vec!["XINFO", "GROUPS", s]);
    }
    for g in ["g1", "g2"] {
        reads.push(vec!["XPENDING", "nt:stream", g]);
        reads.push(vec![
            "XPENDING",
            "nt:stream",
            g,
            "IDLE",
            "0",
            "-",
            "+",
            "1000",
        ]);
    }
    for z in ["nt:geo", "nt:geo:big"] {
        reads.push(vec!["ZRANGE", z, "0", "-1", "WITHSCORES"]);
        reads.push(vec![
            "GEOSEARCH",
            z,
            "FROMLONLAT",
            "15",
            "37",
            "BYRADIUS",
            "3000",
            "km",
            "ASC",
            "WITHCOORD",
            "WITHDIST",
            "WITHHASH",
        ]);
    }
    reads.push(vec!["GEOPOS", "nt:geo", "Palermo", "edge", "missing"]);
    reads.push(vec!["GEOHASH", "nt:geo:big", "p0", "p150", "p299"]);
    reads.push(vec!["GEODIST", "nt:geo", "Palermo", "Catania", "km"]);
    reads.push(vec!["GET", "nt:bits"]);
    reads.push(vec!["BITCOUNT", "nt:bits"]);
    reads.push(vec!["BITPOS", "nt:bits", "1", "2"]);
    reads.push(vec![
        "BITFIELD_RO",
        "nt:bits",
        "GET",
        "i16",
        "#3",
        "GET",
        "u7",
        "200",
    ]);
    // PFCOUNT first: it caches the count in the value (and the cached bytes are
    // what persists), so reading the state twice gives the same bytes.
    for h in ["nt:hll:sparse", "nt:hll:dense", "nt:hll:merged"] {
        reads.push(vec!["PFCOUNT", h]);
        reads.push(vec!["GET", h]);
    }
    let mut out = Vec::with_capacity(reads.len());
    for r in reads {
        let a: Vec<&[u8]> = r.iter().map(|s| s.as_bytes()).collect();
        let mut reply = mask_rax_nodes(c.call(&a)?);
        if r[0] == "XPENDING" && r.len() > 3 {
            reply = mask_idle(reply);
        }
        out.push((r.join(" "), reply));
    }
    Ok(out)
}

/// A reply as readable text (bulk strings as quoted text).
pub fn show(r: &Resp) -> String {
    match r {
        Resp::Simple(s) => format!("+{}", String::from_utf8_lossy(s)),
        Resp::Error(e) => format!("-{}", String::from_utf8_lossy(e)),
        Resp::Int(i) => i.to_string(),
        Resp::Bulk(Some(b)) => format!("{:?}", String::from_utf8_lossy(b)),
        Resp::Bulk(None) => "nil".into(),
        Resp::Array(None) => "nil-array".into(),
        Resp::Array(Some(v)) => format!("[{}]", v.iter().map(show).collect::<Vec<_>>().join(", ")),
    }
}

/// The two texts from the first character where they differ (with a little
/// context before it).
fn from_first_difference(a: &str, b: &str) -> (String, String) {
    let at = a
        .char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map(|((i, _), _)| i)
        .unwrap_or(a.len().min(b.len()));
    let start = a[..at]
        .char_indices()
        .rev()
        .nth(80)
        .map(|(i, _)| i)
        .unwrap_or(0);
    let cut = |s: &str| s.get(start..).unwrap_or(s).chars().take(400).collect();
    (cut(a), cut(b))
}

/// Panics naming the first reads that differ between two states.
pub fn assert_same_state(what: &str, want: &[(String, Resp)], got: &[(String, Resp)]) {
    let diffs: Vec<String> = want
        .iter()
        .zip(got)
        .filter(|(a, b)| a != b)
        .take(5)
        .map(|(a, b)| {
            let (x, y) = from_first_difference(&show(&a.1), &show(&b.1));
            format!("  {}\n    want: ...{x}\n    got:  ...{y}", a.0)
        })
        .collect();
    assert!(
        diffs.is_empty() && want.len() == got.len(),
        "{what}: the new types differ\n{}",
        diffs.join("\n")
    );
}
