//! Codec and round-trip benchmarks of the redsnap library (issue 3).
//!
//! ```text
//! cargo run --release -p redsnap --example bench_codec            # markdown to stdout
//! BENCH_QUICK=1 cargo run --release -p redsnap --example bench_codec
//! ```
//!
//! * encode (+compress) and decode throughput for 1 KB, 100 KB and 10 MB
//!   JSON-like states, for every codec and for plain `serde_json`;
//! * save and load-latest latency (p50/p99) against a local `redis-server`
//!   (started on a free loopback port) for `Snapshots` vs `serde_json` + a bare
//!   `SET`/`GET` through the same connection;
//! * bytes stored.
//!
//! Throughput is "MB of state per second", where the size of a state is the
//! size of its compact JSON (the same unit for every codec, so ratios of
//! MB/s are ratios of time).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use redsnap::codec::{decode, Codec};
use redsnap::{Format, RedisConfig, RedisStore, Snapshots};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Event {
    ts: u64,
    kind: String,
    detail: String,
    value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Agent {
    id: u64,
    name: String,
    role: String,
    score: f64,
    active: bool,
    tags: Vec<String>,
    counters: BTreeMap<String, i64>,
    history: Vec<Event>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct State {
    version: u64,
    service: String,
    meta: BTreeMap<String, String>,
    agents: Vec<Agent>,
}

const WORDS: &[&str] = &[
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "planner",
    "executor",
    "critic",
    "memory",
    "tool",
    "search",
    "retrieve",
    "summarize",
    "customer",
    "order",
    "invoice",
    "pending",
    "complete",
    "failed",
    "retry",
    "timeout",
    "tokens",
    "latency",
    "budget",
    "region",
    "europe",
    "west",
    "gpt",
    "claude",
    "session",
    "thread",
    "checkpoint",
    "user",
    "assistant",
];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64: deterministic, fast.
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn word(&mut self) -> &'static str {
        WORDS[(self.next() % WORDS.len() as u64) as usize]
    }
    fn sentence(&mut self, n: usize) -> String {
        let mut s = String::new();
        for i in 0..n {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(self.word());
        }
        s
    }
}

fn agent(r: &mut Rng, id: u64) -> Agent {
    let tags = (0..3).map(|_| r.word().to_string()).collect();
    let counters = (0..4)
        .map(|_| (r.word().to_string(), (r.next() % 100_000) as i64))
        .collect();
    let history = (0..4)
        .map(|_| Event {
            ts: 1_700_000_000_000 + r.next() % 10_000_000,
            kind: r.word().to_string(),
            detail: format!("{} #{}", r.sentence(4), r.next() % 1000),
            value: (r.next() % 1_000_000) as f64 / 100.0,
        })
        .collect();
    Agent {
        id,
        name: format!("{}-{}", r.word(), id),
        role: r.word().to_string(),
        score: (r.next() % 10_000) as f64 / 7.0,
        active: r.next().is_multiple_of(2),
        tags,
        counters,
        history,
    }
}

/// A state whose compact JSON is about `target` bytes.
fn make_state(target: usize) -> State {
    let mut r = Rng(42);
    let meta = (0..4)
        .map(|i| (format!("k{i}"), r.sentence(3)))
        .collect::<BTreeMap<_, _>>();
    let mut s = State {
        version: 1,
        service: "bench".into(),
        meta,
        agents: Vec::new(),
    };
    let per = serde_json::to_vec(&agent(&mut Rng(7), 0)).unwrap().len();
    let n = (target.saturating_sub(120) / (per + 1)).max(1);
    s.agents = (0..n as u64).map(|i| agent(&mut r, i)).collect();
    s
}

fn bench_for<F: FnMut()>(min_time: Duration, min_iters: usize, mut f: F) -> Duration {
    f(); // warm-up
    let mut iters = 0;
    let t = Instant::now();
    while iters < min_iters || t.elapsed() < min_time {
        f();
        iters += 1;
    }
    t.elapsed() / iters as u32
}

fn mbps(bytes: usize, per_iter: Duration) -> f64 {
    bytes as f64 / 1e6 / per_iter.as_secs_f64()
}

fn pct(mut v: Vec<Duration>, p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

fn label(size: usize) -> &'static str {
    match size {
        s if s < 10_000 => "1 KB",
        s if s < 1_000_000 => "100 KB",
        _ => "10 MB",
    }
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::var("BENCH_QUICK").is_ok();
    let min_time = if quick {
        Duration::from_millis(150)
    } else {
        Duration::from_millis(700)
    };
    let sizes = [1_000usize, 100_000, 10_000_000];
    let codecs: [(&str, Option<Codec>); 5] = [
        ("serde_json (baseline)", None),
        ("redsnap JSON", Some(Codec::JSON)),
        (
            "redsnap JSON+LZ4",
            Some(Codec {
                format: Format::Json,
                compress: true,
            }),
        ),
        (
            "redsnap msgpack",
            Some(Codec {
                format: Format::Msgpack,
                compress: false,
            }),
        ),
        ("redsnap msgpack+LZ4 (default)", Some(Codec::MSGPACK_LZ4)),
    ];
    let mut out = String::new();
    let w = &mut out;
    use std::fmt::Write as _;

    writeln!(w, "### Codec throughput\n")?;
    writeln!(
        w,
        "MB of state (its compact JSON size) per second, single thread; `stored` is the encoded size.\n"
    )?;
    writeln!(
        w,
        "| state | codec | encode MB/s | decode MB/s | stored bytes | vs JSON size |"
    )?;
    writeln!(w, "|---|---|---:|---:|---:|---:|")?;
    for &size in &sizes {
        let state = make_state(size);
        let json_len = serde_json::to_vec(&state)?.len();
        for (name, codec) in &codecs {
            let (enc, dec, stored) = match codec {
                None => {
                    let bytes = serde_json::to_vec(&state)?;
                    let e = bench_for(min_time, 3, || {
                        std::hint::black_box(serde_json::to_vec(&state).unwrap());
                    });
                    let d = bench_for(min_time, 3, || {
                        std::hint::black_box(serde_json::from_slice::<State>(&bytes).unwrap());
                    });
                    (e, d, bytes.len())
                }
                Some(c) => {
                    let bytes = c.encode(&state)?;
                    // (JSON may round the last bit of a float: compare the shape.)
                    let back = decode::<State>(&bytes)?;
                    assert_eq!(back.agents.len(), state.agents.len());
                    assert_eq!(
                        back.agents.last().map(|a| &a.name),
                        state.agents.last().map(|a| &a.name)
                    );
                    let e = bench_for(min_time, 3, || {
                        std::hint::black_box(c.encode(&state).unwrap());
                    });
                    let d = bench_for(min_time, 3, || {
                        std::hint::black_box(decode::<State>(&bytes).unwrap());
                    });
                    (e, d, bytes.len())
                }
            };
            writeln!(
                w,
                "| {} ({} B) | {} | {:.0} | {:.0} | {} | {:.2}x |",
                label(size),
                json_len,
                name,
                mbps(json_len, enc),
                mbps(json_len, dec),
                stored,
                json_len as f64 / stored as f64
            )?;
            eprintln!("codec {} {} done", label(size), name);
        }
    }

    // Encoder variants at 10 MB (what the codec tuning was based on).
    {
        let state = make_state(10_000_000);
        let json_len = serde_json::to_vec(&state)?.len();
        writeln!(
            w,
            "\n### msgpack+LZ4 encoder variants at 10 MB\n\n| variant | encode MB/s | stored bytes |\n|---|---:|---:|"
        )?;
        type Variant = (&'static str, Box<dyn Fn(&State) -> Vec<u8>>);
        fn frame(
            bs: lz4_flex::frame::BlockSize,
            prealloc: bool,
            checksum: bool,
            raw: &[u8],
        ) -> Vec<u8> {
            let mut info = lz4_flex::frame::FrameInfo::new();
            info.content_checksum = checksum;
            info.content_size = Some(raw.len() as u64);
            info.block_size = bs;
            let out = if prealloc {
                Vec::with_capacity(raw.len() / 2 + 64)
            } else {
                Vec::new()
            };
            let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, out);
            enc.write_all(raw).unwrap();
            enc.finish().unwrap()
        }
        use lz4_flex::frame::BlockSize;
        let variants: Vec<Variant> = vec![
            (
                "first pipeline: to_vec_named + frame into Vec::new(), 64 KB blocks",
                Box::new(|s: &State| {
                    frame(
                        BlockSize::Max64KB,
                        false,
                        true,
                        &rmp_serde::to_vec_named(s).unwrap(),
                    )
                }),
            ),
            (
                "msgpack only (to_vec_named)",
                Box::new(|s: &State| rmp_serde::to_vec_named(s).unwrap()),
            ),
            (
                "LZ4 frame only (64 KB blocks, preallocated), on msgpack bytes",
                Box::new(|s: &State| {
                    thread_local!(static RAW: std::cell::RefCell<Option<Vec<u8>>> = const { std::cell::RefCell::new(None) });
                    let raw = RAW.with(|r| {
                        r.borrow_mut()
                            .get_or_insert_with(|| rmp_serde::to_vec_named(s).unwrap())
                            .clone()
                    });
                    frame(lz4_flex::frame::BlockSize::Max64KB, true, true, &raw)
                }),
            ),
            (
                "LZ4 block (no frame) on msgpack bytes",
                Box::new(|s: &State| {
                    thread_local!(static RAW: std::cell::RefCell<Option<Vec<u8>>> = const { std::cell::RefCell::new(None) });
                    let raw = RAW.with(|r| {
                        r.borrow_mut()
                            .get_or_insert_with(|| rmp_serde::to_vec_named(s).unwrap())
                            .clone()
                    });
                    lz4_flex::block::compress(&raw)
                }),
            ),
            (
                "write_named into a presized Vec + frame 64 KB, preallocated",
                Box::new(|s: &State| {
                    let mut raw = Vec::with_capacity(7 << 20);
                    rmp_serde::encode::write_named(&mut raw, s).unwrap();
                    frame(BlockSize::Max64KB, true, true, &raw)
                }),
            ),
            (
                "same, 256 KB blocks",
                Box::new(|s: &State| {
                    let mut raw = Vec::with_capacity(7 << 20);
                    rmp_serde::encode::write_named(&mut raw, s).unwrap();
                    frame(BlockSize::Max256KB, true, true, &raw)
                }),
            ),
            (
                "same, 4 MB blocks",
                Box::new(|s: &State| {
                    let mut raw = Vec::with_capacity(7 << 20);
                    rmp_serde::encode::write_named(&mut raw, s).unwrap();
                    frame(BlockSize::Max4MB, true, true, &raw)
                }),
            ),
            (
                "same, 64 KB blocks, no content checksum",
                Box::new(|s: &State| {
                    let mut raw = Vec::with_capacity(7 << 20);
                    rmp_serde::encode::write_named(&mut raw, s).unwrap();
                    frame(BlockSize::Max64KB, true, false, &raw)
                }),
            ),
            (
                "redsnap Codec::MSGPACK_LZ4 (as shipped)",
                Box::new(|s: &State| Codec::MSGPACK_LZ4.encode(s).unwrap()),
            ),
        ];
        for (name, f) in &variants {
            let len = f(&state).len();
            let t = bench_for(min_time, 3, || {
                std::hint::black_box(f(&state));
            });
            writeln!(w, "| {name} | {:.0} | {len} |", mbps(json_len, t))?;
            eprintln!("variant {name} done");
        }
    }

    // Redis round trips.
    let server = redsnap_testsupport::RedisServer::start()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    writeln!(
        w,
        "\n### Save and load-latest against a local redis-server\n"
    )?;
    writeln!(
        w,
        "redis-server {} on loopback, one client connection (redis-rs `ConnectionManager`), sequential operations; latency in ms. `Snapshots::save` encodes (msgpack+LZ4) and writes snapshot + latest + index in one MULTI/EXEC; `latest()` is one MGET + decode. The baseline is `serde_json::to_vec` + `SET` and `GET` + `serde_json::from_slice` on the same connection.\n",
        server_version()
    )?;
    writeln!(
        w,
        "| state | operation | redsnap p50 | redsnap p99 | JSON+SET/GET p50 | JSON+SET/GET p99 | p50 ratio |"
    )?;
    writeln!(w, "|---|---|---:|---:|---:|---:|---:|")?;
    let mut stored_rows = Vec::new();
    rt.block_on(async {
        let store = RedisStore::new(
            RedisConfig::new(&server.url())?
                .response_timeout(Duration::from_secs(30))
                .operation_timeout(Duration::from_secs(60)),
        )?;
        for &size in &sizes {
            let mut state = make_state(size);
            let n = match size {
                s if s < 10_000 => {
                    if quick {
                        300
                    } else {
                        2000
                    }
                }
                s if s < 1_000_000 => {
                    if quick {
                        50
                    } else {
                        300
                    }
                }
                _ => {
                    if quick {
                        5
                    } else {
                        25
                    }
                }
            };
            let snaps = Snapshots::<State>::new(store.clone(), &format!("bench{size}"));
            let base = redsnap::keys::now_secs();
            let (mut ss, mut sl, mut bs, mut bl) = (vec![], vec![], vec![], vec![]);
            let key = format!("bench:plain:{size}");
            for i in 0..n + 2 {
                state.version = i as u64 + 2; // a changed state: never skipped
                let t = Instant::now();
                snaps.save_at(&state, base + (i % 4) as u64).await?;
                let a = t.elapsed();
                let t = Instant::now();
                let got = snaps.latest().await?.expect("latest");
                let b = t.elapsed();
                assert_eq!(got.state.version, state.version);
                let t = Instant::now();
                let bytes = serde_json::to_vec(&state)?;
                store
                    .query::<()>(redis::cmd("SET").arg(&key).arg(bytes))
                    .await?;
                let c = t.elapsed();
                let t = Instant::now();
                let raw: Vec<u8> = store.query(redis::cmd("GET").arg(&key)).await?;
                let back: State = serde_json::from_slice(&raw)?;
                let d = t.elapsed();
                assert_eq!(back.version, state.version);
                if i >= 2 {
                    ss.push(a);
                    sl.push(b);
                    bs.push(c);
                    bl.push(d);
                }
            }
            for (op, ours, theirs) in [("save", &ss, &bs), ("load latest", &sl, &bl)] {
                let (p50, p99) = (pct(ours.clone(), 0.5), pct(ours.clone(), 0.99));
                let (b50, b99) = (pct(theirs.clone(), 0.5), pct(theirs.clone(), 0.99));
                writeln!(
                    w,
                    "| {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.2}x |",
                    label(size),
                    op,
                    p50,
                    p99,
                    b50,
                    b99,
                    p50 / b50
                )?;
            }
            let ours: i64 = store
                .query(redis::cmd("STRLEN").arg(snaps.latest_key()))
                .await?;
            let theirs: i64 = store.query(redis::cmd("STRLEN").arg(&key)).await?;
            stored_rows.push((size, ours, theirs));
            eprintln!("redis {} done ({n} rounds)", label(size));
        }
        anyhow::Ok(())
    })?;
    writeln!(w, "\n### Bytes stored in Redis (one state)\n")?;
    writeln!(
        w,
        "| state | redsnap `latest` (msgpack+LZ4 envelope) | serde_json value | ratio |"
    )?;
    writeln!(w, "|---|---:|---:|---:|")?;
    for (size, ours, theirs) in stored_rows {
        writeln!(
            w,
            "| {} | {} | {} | {:.2}x smaller |",
            label(size),
            ours,
            theirs,
            theirs as f64 / ours as f64
        )?;
    }
    std::io::stdout().write_all(out.as_bytes())?;
    Ok(())
}

fn server_version() -> String {
    std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| {
            s.split_whitespace()
                .find(|p| p.starts_with("v="))
                .map(|p| p[2..].to_string())
        })
        .unwrap_or_else(|| "?".into())
}
