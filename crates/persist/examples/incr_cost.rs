//! The cost of an incremental snapshot next to a full one: N string keys with
//! 100-byte random values, a full `SnapshotStore::write`, then PCT % of the keys
//! (random ones) get new 100-byte values and the next write is incremental.
//! Prints wall time and process CPU time (user + sys, all threads, including
//! fjall's background workers until they are idle) of each write.
//!
//! Run: `cargo run --profile profiling -p redsnap-persist --example incr_cost [N] [PCT] [ROUNDS]`
//! (under callgrind, compare the inclusive costs of `write_full` (+ its ingester
//! thread) and `write_incremental`).

use bytes::Bytes;
use redsnap_engine::{Store, Value};
use redsnap_persist::{DataDir, LoadOptions, SnapshotStore};
use std::time::{Duration, Instant};

fn rand_bytes(state: &mut u64, out: &mut [u8]) {
    for b in out.iter_mut() {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        *b = (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8;
    }
}

fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// Process CPU time (user + sys) so far.
fn cpu() -> Duration {
    // SAFETY: getrusage fills the struct we pass.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let pct: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let rounds: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3);
    let settle = Duration::from_millis(
        std::env::var("INCR_SETTLE_MS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(300),
    );
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut store = Store::default();
    let mut val = vec![0u8; 100];
    for i in 0..n {
        rand_bytes(&mut s, &mut val);
        store.dbs[0].insert(
            Bytes::from(format!("key:{i:012}")),
            Value::Str(Bytes::copy_from_slice(&val)),
            None,
        );
    }
    let dir = tempfile::tempdir()?;
    let dd = DataDir::open(dir.path().join("persist"))?;
    let snaps = SnapshotStore::open(&dd)?;
    snaps.set_incremental(true);
    let changed = ((n as f64) * pct / 100.0) as usize;
    let mut ratios = Vec::new();
    for round in 0..rounds {
        // A full snapshot: incremental mode off for one write.
        snaps.set_incremental(false);
        let _ = store.snapshot_point(true);
        snaps.set_incremental(true);
        let (c0, t0) = (cpu(), Instant::now());
        let info = snaps.write(store.snapshot_point(true), 1)?;
        let wall_full = t0.elapsed();
        std::thread::sleep(settle);
        let cpu_full = cpu() - c0;
        assert!(!info.incremental);
        for _ in 0..changed {
            let i = (next(&mut s) % n as u64) as usize;
            rand_bytes(&mut s, &mut val);
            store.dbs[0].insert(
                Bytes::from(format!("key:{i:012}")),
                Value::Str(Bytes::copy_from_slice(&val)),
                None,
            );
        }
        let (c0, t0) = (cpu(), Instant::now());
        let info2 = snaps.write(store.snapshot_point(true), 2)?;
        let wall_inc = t0.elapsed();
        std::thread::sleep(settle);
        let cpu_inc = cpu() - c0;
        assert!(info2.incremental, "the second write was not incremental");
        let idle = {
            let c0 = cpu();
            std::thread::sleep(settle);
            cpu() - c0
        };
        let full = cpu_full.saturating_sub(idle).as_secs_f64();
        let inc = cpu_inc.saturating_sub(idle).as_secs_f64();
        println!(
            "round {round}: full: wall {:.3}s cpu {:.3}s; incremental ({} entries): wall {:.3}s cpu {:.3}s; cpu ratio {:.1}% wall ratio {:.1}% (idle cpu per settle {:.3}s)",
            wall_full.as_secs_f64(),
            full,
            info2.changed,
            wall_inc.as_secs_f64(),
            inc,
            100.0 * inc / full,
            100.0 * wall_inc.as_secs_f64() / wall_full.as_secs_f64(),
            idle.as_secs_f64(),
        );
        ratios.push(100.0 * inc / full);
    }
    ratios.sort_by(f64::total_cmp);
    println!("median cpu ratio {:.1}%", ratios[ratios.len() / 2]);
    if std::env::var("INCR_LOAD").is_ok() {
        let mut fresh = Store::default();
        let (c0, t0) = (cpu(), Instant::now());
        let rep = snaps.load(&mut fresh, &LoadOptions::default())?;
        println!(
            "load: wall {:.3}s cpu {:.3}s ({} keys)",
            t0.elapsed().as_secs_f64(),
            (cpu() - c0).as_secs_f64(),
            rep.keys_loaded
        );
    }
    Ok(())
}
