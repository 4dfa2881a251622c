//! Memory accounting: INFO memory, MEMORY STATS / DOCTOR / MALLOC-STATS / PURGE
//! (Redis 7.0's `getMemoryOverheadData`, `getMemoryDoctorReport`), the peak, and
//! giving free pages back to the system after bulk releases.
//!
//! `used_memory` is the counting allocator's figure (bytes the process has
//! allocated, everything included); the overhead is what redsnap can attribute to
//! something other than the keys and values (startup, clients, replication backlog,
//! scripting, the keyspace's own structures, and a snapshot's share: the change
//! record and the copies-on-write a snapshot in progress keeps alive); the dataset
//! is the rest, as Redis computes it.

use crate::state::Inner;
use redsnap_engine::Reply;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Highest `used_memory` seen (Redis's `stat_peak_memory`, sampled by the cron and
/// by every report).
static PEAK: AtomicU64 = AtomicU64::new(0);
/// `used_memory` once the server was set up, before loading data.
static STARTUP: AtomicU64 = AtomicU64::new(0);
/// `used_memory` at the last cron tick (to notice bulk releases).
static LAST_USED: AtomicU64 = AtomicU64::new(0);

/// Records the startup allocation (call before the dataset is loaded).
pub(crate) fn record_startup() {
    let used = crate::alloc::allocated().unwrap_or(0);
    STARTUP.store(used, Ordering::Relaxed);
    PEAK.fetch_max(used, Ordering::Relaxed);
}

fn note_peak(used: u64) -> u64 {
    PEAK.fetch_max(used, Ordering::Relaxed).max(used)
}

/// Bytes released in one cron interval (and at least 1/32 of what was in use) that
/// make the allocator give pages back.
const RELEASE_MIN: u64 = 8 << 20;

/// Each cron tick: the peak, and when much memory was freed since the last tick
/// (FLUSHALL, a big DEL, a snapshot's copy dropped), a request to the allocator to
/// return the free pages, so RSS follows `used_memory` down within a tick or two.
pub(crate) fn cron(inner: &Inner) {
    let used = crate::used_memory(inner);
    note_peak(used);
    let last = LAST_USED.swap(used, Ordering::Relaxed);
    if last > used && last - used >= RELEASE_MIN.max(last / 32) {
        crate::alloc::request_collect();
    }
}

/// MEMORY PURGE: every thread's free pages back to the system.
pub(crate) fn purge() -> Reply {
    crate::alloc::request_collect();
    Reply::ok()
}

/// What `getMemoryOverheadData` computes.
pub(crate) struct Overhead {
    pub used: u64,
    pub peak: u64,
    pub startup: u64,
    pub rss: u64,
    pub backlog: u64,
    pub clients_slaves: u64,
    pub clients_normal: u64,
    pub aof_buffer: u64,
    pub lua_caches: u64,
    pub functions_caches: u64,
    /// Per non-empty database: (index, keyspace overhead, expires overhead).
    pub dbs: Vec<(usize, u64, u64)>,
    /// The record of keys changed since the last snapshot point.
    pub snapshot_changes: u64,
    /// Copies-on-write a snapshot in progress keeps alive (0 when none runs).
    pub snapshot_copy: u64,
    pub total: u64,
    pub keys: u64,
    pub dataset: u64,
    pub allocator_active: u64,
    pub allocator_resident: u64,
}

impl Overhead {
    pub fn peak_perc(&self) -> f64 {
        self.used as f64 * 100.0 / self.peak.max(1) as f64
    }
    fn net(&self) -> u64 {
        if self.used > self.startup {
            self.used - self.startup
        } else {
            1
        }
    }
    pub fn dataset_perc(&self) -> f64 {
        self.dataset as f64 * 100.0 / self.net() as f64
    }
    pub fn bytes_per_key(&self) -> u64 {
        self.net().checked_div(self.keys).unwrap_or(0)
    }
    /// (ratio, bytes) pairs as Redis computes them.
    pub fn allocator_frag(&self) -> (f64, i64) {
        ratio(self.allocator_active, self.used)
    }
    pub fn allocator_rss(&self) -> (f64, i64) {
        ratio(self.allocator_resident, self.allocator_active)
    }
    pub fn rss_extra(&self) -> (f64, i64) {
        ratio(self.rss, self.allocator_resident)
    }
    pub fn total_frag(&self) -> (f64, i64) {
        ratio(self.rss, self.used)
    }
}

fn ratio(a: u64, b: u64) -> (f64, i64) {
    (a as f64 / b.max(1) as f64, a as i64 - b as i64)
}

pub(crate) fn overhead(inner: &Inner) -> Overhead {
    let used = crate::used_memory(inner);
    let peak = note_peak(used);
    let startup = STARTUP.load(Ordering::Relaxed);
    let rss = super::introspection::rss_bytes();
    let (_, _, commit, _) = crate::alloc::process_info();
    let backlog = crate::repl::backlog_bytes(inner);
    let mut clients_slaves = 0u64;
    let mut clients_normal = 0u64;
    for c in inner.clients.values() {
        if inner.repl.is_replica(c.id) {
            clients_slaves += c.pending_out.load(Ordering::Relaxed);
        } else {
            // As CLIENT LIST's tot-mem and INFO mem_clients_normal.
            clients_normal += crate::clientmem::client_total(c) as u64;
        }
    }
    let lua_caches = inner.scripts.memory() as u64;
    let functions_caches = inner.functions.memory() as u64;
    let mut keys = 0u64;
    let mut dbs = Vec::new();
    let mut total =
        startup + backlog + clients_slaves + clients_normal + lua_caches + functions_caches;
    for (i, d) in inner.store.dbs.iter().enumerate() {
        if d.is_empty() {
            continue;
        }
        keys += d.len() as u64;
        let (main, expires) = d.overhead_bytes();
        total += (main + expires) as u64;
        dbs.push((i, main as u64, expires as u64));
    }
    let snapshot_changes = inner.store.changes_bytes() as u64;
    let snapshot_copy = if crate::persist::snapshot_in_progress(inner) {
        redsnap_engine::changes::copied_since_point()
    } else {
        0
    };
    total += snapshot_changes + snapshot_copy;
    Overhead {
        used,
        peak,
        startup,
        rss,
        backlog,
        clients_slaves,
        clients_normal,
        aof_buffer: 0,
        lua_caches,
        functions_caches,
        dbs,
        snapshot_changes,
        snapshot_copy,
        total,
        keys,
        dataset: used.saturating_sub(total),
        allocator_active: commit.max(used),
        allocator_resident: rss,
    }
}

/// Total memory of the machine (`total_system_memory`).
fn total_system_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The `# Memory` section of INFO, with Redis 7.0.15's fields in its order, plus
/// redsnap's snapshot figures at the end.
pub(crate) fn info(inner: &Inner) -> String {
    let h = super::info::human;
    let m = overhead(inner);
    let max = inner.config.u64("maxmemory");
    let eval = m.lua_caches;
    let functions = m.functions_caches;
    let (libraries, fcount) = inner.functions.counts();
    let sys = total_system_memory();
    let (afr, afb) = m.allocator_frag();
    let (arr, arb) = m.allocator_rss();
    let (rer, reb) = m.rss_extra();
    let (tfr, tfb) = m.total_frag();
    let mut s = String::with_capacity(2048);
    let _ = write!(
        s,
        "# Memory\r\nused_memory:{}\r\nused_memory_human:{}\r\nused_memory_rss:{}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{}\r\nused_memory_peak_human:{}\r\nused_memory_peak_perc:{:.2}%\r\nused_memory_overhead:{}\r\nused_memory_startup:{}\r\nused_memory_dataset:{}\r\nused_memory_dataset_perc:{:.2}%\r\nallocator_allocated:{}\r\nallocator_active:{}\r\nallocator_resident:{}\r\ntotal_system_memory:{sys}\r\ntotal_system_memory_human:{}\r\n",
        m.used,
        h(m.used),
        m.rss,
        h(m.rss),
        m.peak,
        h(m.peak),
        m.peak_perc(),
        m.total,
        m.startup,
        m.dataset,
        m.dataset_perc(),
        m.used,
        m.allocator_active,
        m.allocator_resident,
        h(sys),
    );
    let _ = write!(
        s,
        "used_memory_lua:{eval}\r\nused_memory_vm_eval:{eval}\r\nused_memory_lua_human:{}\r\nused_memory_scripts_eval:{eval}\r\nnumber_of_cached_scripts:{}\r\nnumber_of_functions:{fcount}\r\nnumber_of_libraries:{libraries}\r\nused_memory_vm_functions:{functions}\r\nused_memory_vm_total:{}\r\nused_memory_vm_total_human:{}\r\nused_memory_functions:{functions}\r\nused_memory_scripts:{}\r\nused_memory_scripts_human:{}\r\nmaxmemory:{max}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{}\r\n",
        h(eval),
        inner.scripts.cached_count(),
        eval + functions,
        h(eval + functions),
        eval + functions,
        h(eval + functions),
        h(max),
        inner.config.str("maxmemory-policy"),
    );
    let _ = write!(
        s,
        "allocator_frag_ratio:{afr:.2}\r\nallocator_frag_bytes:{afb}\r\nallocator_rss_ratio:{arr:.2}\r\nallocator_rss_bytes:{arb}\r\nrss_overhead_ratio:{rer:.2}\r\nrss_overhead_bytes:{reb}\r\nmem_fragmentation_ratio:{tfr:.2}\r\nmem_fragmentation_bytes:{tfb}\r\nmem_not_counted_for_evict:0\r\nmem_replication_backlog:{}\r\nmem_total_replication_buffers:{}\r\nmem_clients_slaves:{}\r\nmem_clients_normal:{}\r\nmem_cluster_links:0\r\nmem_aof_buffer:{}\r\nmem_allocator:mimalloc-{}\r\nactive_defrag_running:0\r\nlazyfree_pending_objects:{}\r\nlazyfreed_objects:{}\r\nmem_snapshot_changes:{}\r\nmem_snapshot_copy:{}\r\n",
        m.backlog,
        m.backlog + m.clients_slaves,
        m.clients_slaves,
        m.clients_normal,
        m.aof_buffer,
        crate::alloc::version(),
        redsnap_engine::lazyfree::pending(),
        redsnap_engine::lazyfree::freed(),
        m.snapshot_changes,
        m.snapshot_copy,
    );
    s
}

/// MEMORY STATS: Redis's fields in its order, `db.N` maps for non-empty databases,
/// and redsnap's `snapshot.changes` / `snapshot.copy` (part of `overhead.total`).
pub(crate) fn stats(inner: &Inner) -> Reply {
    let m = overhead(inner);
    let int = |n: u64| Reply::Int(i64::try_from(n).unwrap_or(i64::MAX));
    let key = Reply::bulk_str;
    let mut out = vec![
        (key("peak.allocated"), int(m.peak)),
        (key("total.allocated"), int(m.used)),
        (key("startup.allocated"), int(m.startup)),
        (key("replication.backlog"), int(m.backlog)),
        (key("clients.slaves"), int(m.clients_slaves)),
        (key("clients.normal"), int(m.clients_normal)),
        (key("cluster.links"), int(0)),
        (key("aof.buffer"), int(m.aof_buffer)),
        (key("lua.caches"), int(m.lua_caches)),
        (key("functions.caches"), int(m.functions_caches)),
    ];
    for &(i, main, expires) in &m.dbs {
        out.push((
            key(&format!("db.{i}")),
            Reply::Map(vec![
                (key("overhead.hashtable.main"), int(main)),
                (key("overhead.hashtable.expires"), int(expires)),
                (key("overhead.hashtable.slot-to-keys"), int(0)),
            ]),
        ));
    }
    let (afr, afb) = m.allocator_frag();
    let (arr, arb) = m.allocator_rss();
    let (rer, reb) = m.rss_extra();
    let (tfr, tfb) = m.total_frag();
    out.extend([
        (key("snapshot.changes"), int(m.snapshot_changes)),
        (key("snapshot.copy"), int(m.snapshot_copy)),
        (key("overhead.total"), int(m.total)),
        (key("keys.count"), int(m.keys)),
        (key("keys.bytes-per-key"), int(m.bytes_per_key())),
        (key("dataset.bytes"), int(m.dataset)),
        (key("dataset.percentage"), Reply::Double(m.dataset_perc())),
        (key("peak.percentage"), Reply::Double(m.peak_perc())),
        (key("allocator.allocated"), int(m.used)),
        (key("allocator.active"), int(m.allocator_active)),
        (key("allocator.resident"), int(m.allocator_resident)),
        (key("allocator-fragmentation.ratio"), Reply::Double(afr)),
        (key("allocator-fragmentation.bytes"), Reply::Int(afb)),
        (key("allocator-rss.ratio"), Reply::Double(arr)),
        (key("allocator-rss.bytes"), Reply::Int(arb)),
        (key("rss-overhead.ratio"), Reply::Double(rer)),
        (key("rss-overhead.bytes"), Reply::Int(reb)),
        (key("fragmentation"), Reply::Double(tfr)),
        (key("fragmentation.bytes"), Reply::Int(tfb)),
    ]);
    Reply::Map(out)
}

/// MEMORY MALLOC-STATS: mimalloc's statistics report.
pub(crate) fn malloc_stats() -> Reply {
    Reply::Verbatim("txt", bytes::Bytes::from(crate::alloc::stats_text()))
}

const DOCTOR_OK: &str = "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n";
const DOCTOR_EMPTY: &str = "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting.\n";

/// MEMORY DOCTOR: Redis's report, on the same thresholds.
pub(crate) fn doctor(inner: &Inner) -> Reply {
    let m = overhead(inner);
    let mut issues: Vec<String> = Vec::new();
    let mut empty = false;
    if m.used < 5 << 20 {
        empty = true;
    } else {
        if m.peak as f64 / m.used as f64 > 1.5 {
            issues.push(" * Peak memory: In the past this instance used more than 150% the memory that is currently using. The allocator is normally not able to release memory after a peak, so you can expect to see a big fragmentation ratio, however this is actually harmless and is only due to the memory peak, and if the Redis instance Resident Set Size (RSS) is currently bigger than expected, the memory will be used as soon as you fill the Redis instance with more data. If the memory peak was only occasional and you want to try to reclaim memory, please try the MEMORY PURGE command, otherwise the only other option is to shutdown and restart the instance.\n\n".into());
        }
        let (tfr, tfb) = m.total_frag();
        if tfr > 1.4 && tfb > 10 << 20 {
            issues.push(format!(" * High total RSS: This instance has a memory fragmentation and RSS overhead greater than 1.4 (this means that the Resident Set Size of the Redis process is much larger than the sum of the logical allocations Redis performed). This problem is usually due either to a large peak memory (check if there is a peak memory entry above in the report) or may result from a workload that causes the allocator to fragment memory a lot. If the problem is a large peak memory, then there is no issue. Otherwise, make sure you are using the Jemalloc allocator and not the default libc malloc. Note: The currently used allocator is \"mimalloc-{}\".\n\n", crate::alloc::version()));
        }
        let (afr, afb) = m.allocator_frag();
        if afr > 1.1 && afb > 10 << 20 {
            issues.push(" * High allocator fragmentation: This instance has an allocator external fragmentation greater than 1.1. This problem is usually due either to a large peak memory (check if there is a peak memory entry above in the report) or may result from a workload that causes the allocator to fragment memory a lot. You can try enabling 'activedefrag' config option.\n\n".into());
        }
        let (arr, arb) = m.allocator_rss();
        if arr > 1.1 && arb > 10 << 20 {
            issues.push(" * High allocator RSS overhead: This instance has an RSS memory overhead is greater than 1.1 (this means that the Resident Set Size of the allocator is much larger than the sum what the allocator actually holds). This problem is usually due to a large peak memory (check if there is a peak memory entry above in the report), you can try the MEMORY PURGE command to reclaim it.\n\n".into());
        }
        let (rer, reb) = m.rss_extra();
        if rer > 1.1 && reb > 10 << 20 {
            issues.push(" * High process RSS overhead: This instance has non-allocator RSS memory overhead is greater than 1.1 (this means that the Resident Set Size of the Redis process is much larger than the RSS the allocator holds). This problem may be due to Lua scripts or Modules.\n\n".into());
        }
        let replicas = crate::repl::replicas_and_offset(inner).0 as u64;
        let normal = (inner.clients.len() as u64).saturating_sub(replicas);
        let big_slave = replicas > 0 && m.clients_slaves > 10 << 20;
        let big_client = m.clients_normal.checked_div(normal).unwrap_or(0) > 200 * 1024;
        if big_slave {
            issues.push(" * Big replica buffers: The replica output buffers in this instance are greater than 10MB for each replica (on average). This likely means that there is some replica instance that is struggling receiving data, either because it is too slow or because of networking issues. As a result, data piles on the master output buffers. Please try to identify what replica is not receiving data correctly and why. You can use the INFO output in order to check the replicas delays and the CLIENT LIST command to check the output buffers of each replica.\n\n".into());
        }
        if big_client {
            issues.push(" * Big client buffers: The clients output buffers in this instance are greater than 200K per client (on average). This may result from different causes, like Pub/Sub clients subscribed to channels bot not receiving data fast enough, so that data piles on the Redis instance output buffer, or clients sending commands with large replies or very large sequences of commands in the same pipeline. Please use the CLIENT LIST command in order to investigate the issue if it causes problems in your instance, or to understand better why certain clients are using a big amount of memory.\n\n".into());
        }
        if inner.scripts.cached_count() > 1000 {
            issues.push(" * Many scripts: There seem to be many cached scripts in this instance (more than 1000). This may be because scripts are generated and `EVAL`ed, instead of being parameterized (with KEYS and ARGV), `SCRIPT LOAD`ed and `EVALSHA`ed. Unless `SCRIPT FLUSH` is called periodically, the scripts' caches may end up consuming most of your memory.\n\n".into());
        }
    }
    let text = if empty {
        DOCTOR_EMPTY.to_string()
    } else if issues.is_empty() {
        DOCTOR_OK.to_string()
    } else {
        let mut s = String::from(
            "Sam, I detected a few issues in this Redis instance memory implants:\n\n",
        );
        for i in issues {
            s.push_str(&i);
        }
        s.push_str("I'm here to keep you safe, Sam. I want to help you.\n");
        s
    };
    Reply::Verbatim("txt", bytes::Bytes::from(text))
}
