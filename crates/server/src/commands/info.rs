//! INFO, as Redis 7.0's `genRedisInfoString`: any number of section names (case
//! insensitive), `default` (server, clients, memory, persistence, stats, replication,
//! cpu, modules, errorstats, cluster, keyspace), `all` (every section) and
//! `everything` (all, and module sections: none here). commandstats and latencystats
//! appear only with `all`, `everything` or when named. Sections come in Redis's order,
//! separated by an empty line. Also CONFIG RESETSTAT's reset of the counters, and the
//! sampler behind `instantaneous_ops_per_sec`.

use super::Handler;
use crate::conn::{Conn, Step};
use crate::state::Inner;
use bytes::Bytes;
use redsnap_engine::now_ms;
use redsnap_engine::table::{self, CommandSpec};
use redsnap_engine::Reply;
use std::fmt::Write;
use std::sync::atomic::Ordering;

pub(crate) const HANDLERS: &[(&str, Handler)] = &[("info", info_cmd)];

const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "module_list",
    "errorstats",
    "cluster",
    "keyspace",
];

fn info_cmd(conn: &mut Conn, inner: &mut Inner, _: &'static CommandSpec, argv: &[Bytes]) -> Step {
    let s = info(conn, inner, &argv[1..]);
    if conn.resp3 {
        Reply::Verbatim("txt", Bytes::from(s)).into()
    } else {
        Reply::Bulk(Bytes::from(s)).into()
    }
}

/// The sections asked for (Redis's `genInfoSectionDict`).
struct Wanted {
    names: Vec<String>,
    all: bool,
}

impl Wanted {
    fn parse(args: &[Bytes]) -> Wanted {
        let mut names: Vec<String> = Vec::new();
        let mut all = false;
        if args.is_empty() {
            names.extend(DEFAULT_SECTIONS.iter().map(|s| s.to_string()));
        }
        for a in args {
            let a = String::from_utf8_lossy(a).to_ascii_lowercase();
            match a.as_str() {
                "default" => names.extend(DEFAULT_SECTIONS.iter().map(|s| s.to_string())),
                "all" | "everything" => all = true,
                _ => names.push(a),
            }
        }
        Wanted { names, all }
    }

    fn has(&self, section: &str) -> bool {
        self.all || self.names.iter().any(|n| n == section)
    }
}

/// The INFO text for `args` (section names).
pub(crate) fn info(conn: &Conn, inner: &Inner, args: &[Bytes]) -> String {
    let want = Wanted::parse(args);
    let mut sections: Vec<String> = Vec::new();
    let mut add = |name: &str, f: &dyn Fn() -> String| {
        if want.has(name) {
            sections.push(f());
        }
    };
    add("server", &|| server(conn, inner));
    add("clients", &|| clients(inner));
    add("memory", &|| memory(inner));
    add("persistence", &|| {
        let mut s = crate::persistence_info(inner);
        while s.ends_with("\r\n\r\n") {
            s.truncate(s.len() - 2);
        }
        s
    });
    add("stats", &|| stats(conn, inner));
    add("replication", &|| crate::repl::info_section(inner));
    add("cpu", &cpu);
    if want.has("module_list") || want.names.iter().any(|n| n == "modules") {
        sections.push("# Modules\r\n".into());
    }
    let mut add = |name: &str, f: &dyn Fn() -> String| {
        if want.has(name) {
            sections.push(f());
        }
    };
    add("commandstats", &|| commandstats(inner));
    add("errorstats", &|| errorstats(inner));
    add("latencystats", &|| latencystats(inner));
    add("cluster", &|| "# Cluster\r\ncluster_enabled:0\r\n".into());
    add("keyspace", &|| keyspace(inner));
    sections.join("\r\n")
}

fn server(conn: &Conn, inner: &Inner) -> String {
    let uptime = conn.shared.started.elapsed().as_secs();
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let os = match std::env::consts::OS {
        "linux" => "Linux",
        other => other,
    };
    let executable = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let hz = conn.shared.live.hz.load(Ordering::Relaxed);
    format!(
        "# Server\r\nredis_version:{}\r\nredsnap_version:{}\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_mode:standalone\r\nos:{os} {} {}\r\narch_bits:{}\r\nmonotonic_clock:POSIX clock_gettime\r\nmultiplexing_api:epoll\r\nprocess_id:{}\r\nprocess_supervised:no\r\nrun_id:{}\r\ntcp_port:{}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\nhz:{hz}\r\nconfigured_hz:{}\r\nexecutable:{executable}\r\nconfig_file:\r\nio_threads_active:0\r\n",
        crate::REDIS_VERSION,
        crate::REDSNAP_VERSION,
        release.trim(),
        std::env::consts::ARCH,
        usize::BITS,
        std::process::id(),
        conn.shared.run_id,
        inner.config.int("port"),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros()),
        uptime / 86400,
        inner.config.int("hz"),
    )
}

fn clients(inner: &Inner) -> String {
    format!(
        "# Clients\r\nconnected_clients:{}\r\ncluster_connections:0\r\nmaxclients:{}\r\nblocked_clients:{}\r\ntracking_clients:{}\r\npubsub_clients:{}\r\n",
        // Replicas are not counted (Redis: clients minus slaves).
        inner.clients.len() - crate::repl::replicas_and_offset(inner).0.min(inner.clients.len()),
        inner.config.int("maxclients"),
        super::client::blocked_count(inner),
        inner.tracking.clients,
        inner.clients.values().filter(|c| c.sub + c.psub + c.ssub > 0).count(),
    )
}

fn memory(inner: &Inner) -> String {
    super::memory::info(inner)
}

/// Redis's `bytesToHuman`.
pub(crate) fn human(n: u64) -> String {
    let f = n as f64;
    let units = [
        (1u64 << 10, "K"),
        (1 << 20, "M"),
        (1 << 30, "G"),
        (1 << 40, "T"),
        (1 << 50, "P"),
    ];
    if n < 1024 {
        return format!("{n}B");
    }
    for (i, (size, unit)) in units.iter().enumerate() {
        if units.get(i + 1).is_none_or(|(next, _)| n < *next) {
            return format!("{:.2}{unit}", f / *size as f64);
        }
    }
    format!("{n}B")
}

fn stats(conn: &Conn, inner: &Inner) -> String {
    let st = &inner.stats;
    let es = &inner.store.stats;
    format!(
        "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:{}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\nrejected_connections:{}\r\nsync_full:{}\r\nsync_partial_ok:{}\r\nsync_partial_err:{}\r\nexpired_keys:{}\r\nevicted_keys:{}\r\nevicted_clients:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\npubsub_channels:{}\r\npubsub_patterns:{}\r\npubsubshard_channels:{}\r\nmigrate_cached_sockets:0\r\nlatest_fork_usec:0\r\ntotal_forks:0\r\ntracking_total_keys:{}\r\ntracking_total_items:{}\r\ntracking_total_prefixes:{}\r\nunexpected_error_replies:0\r\ntotal_error_replies:{}\r\nreply_buffer_shrinks:{}\r\nreply_buffer_expands:{}\r\n",
        st.total_connections,
        st.total_commands,
        st.ops.per_sec(),
        st.net_input_bytes,
        st.net_output_bytes,
        conn.shared.live.rejected_connections.load(Ordering::Relaxed),
        inner.repl.sync_full,
        inner.repl.sync_partial_ok,
        inner.repl.sync_partial_err,
        es.expired_keys,
        es.evicted_keys,
        conn.shared.client_mem.evicted_clients(),
        es.keyspace_hits,
        es.keyspace_misses,
        inner.channels.len(),
        inner.patterns.len(),
        inner.shard_channels.len(),
        inner.tracking.total_keys(),
        inner.tracking.total_items(),
        inner.tracking.total_prefixes(),
        inner.calls.total_error_replies,
        crate::querybuf::REPLY_SHRINKS.load(Ordering::Relaxed),
        crate::querybuf::REPLY_EXPANDS.load(Ordering::Relaxed),
    )
}

/// CPU time of the process (and of its children) from /proc/self/stat, in seconds.
fn cpu() -> String {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces), from field 3 on.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|w| w.parse().unwrap_or(0))
        .collect();
    // utime, stime, cutime, cstime are fields 14-17 (11-14 after the name), in
    // clock ticks of 1/100 s (USER_HZ on Linux).
    let secs = |i: usize| {
        let t = f.get(i).copied().unwrap_or(0);
        format!("{}.{:06}", t / 100, (t % 100) * 10_000)
    };
    format!(
        "# CPU\r\nused_cpu_sys:{}\r\nused_cpu_user:{}\r\nused_cpu_sys_children:{}\r\nused_cpu_user_children:{}\r\n",
        secs(12),
        secs(11),
        secs(14),
        secs(13)
    )
}

/// Redis's `getSafeInfoString`: `#`, `:`, CR and LF become `_`.
fn safe(name: &[u8]) -> String {
    String::from_utf8_lossy(name).replace(['#', ':', '\r', '\n'], "_")
}

fn commandstats(inner: &Inner) -> String {
    let mut out = String::from("# Commandstats\r\n");
    for (spec, c) in table::numbered().iter().zip(inner.calls.cmds.iter()) {
        if c.calls == 0 && c.failed == 0 && c.rejected == 0 {
            continue;
        }
        // Redis divides as float.
        let per_call = if c.calls == 0 {
            0.0
        } else {
            (c.usec as f32 / c.calls as f32) as f64
        };
        let _ = write!(
            out,
            "cmdstat_{}:calls={},usec={},usec_per_call={per_call:.2},rejected_calls={},failed_calls={}\r\n",
            safe(spec.name.as_bytes()),
            c.calls,
            c.usec,
            c.rejected,
            c.failed
        );
    }
    out
}

fn errorstats(inner: &Inner) -> String {
    let mut out = String::from("# Errorstats\r\n");
    for (code, n) in &inner.calls.errors {
        let _ = write!(out, "errorstat_{}:count={n}\r\n", safe(code));
    }
    out
}

/// A percentile as Redis prints it (`%f`, trailing zeros and point removed).
pub(crate) fn percentile_text(p: f64) -> String {
    let s = format!("{p:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn latencystats(inner: &Inner) -> String {
    let mut out = String::from("# Latencystats\r\n");
    if !inner.tun.latency_tracking {
        return out;
    }
    for (spec, c) in table::numbered().iter().zip(inner.calls.cmds.iter()) {
        let Some(h) = &c.hist else {
            continue;
        };
        let values: Vec<String> = inner
            .tun
            .latency_percentiles
            .iter()
            .map(|&p| {
                format!(
                    "p{}={:.3}",
                    percentile_text(p),
                    h.value_at_percentile(p) as f64 / 1000.0
                )
            })
            .collect();
        let _ = write!(
            out,
            "latency_percentiles_usec_{}:{}\r\n",
            safe(spec.name.as_bytes()),
            values.join(",")
        );
    }
    out
}

fn keyspace(inner: &Inner) -> String {
    let mut out = String::from("# Keyspace\r\n");
    for (i, db) in inner.store.dbs.iter().enumerate() {
        if !db.is_empty() {
            let _ = write!(
                out,
                "db{i}:keys={},expires={},avg_ttl=0\r\n",
                db.len(),
                db.volatile_len()
            );
        }
    }
    out
}

/// `instantaneous_ops_per_sec`: commands per second over the last 16 samples, one
/// taken every 100 ms by the cron (Redis's `trackInstantaneousMetric`).
#[derive(Debug, Default)]
pub(crate) struct OpsMeter {
    last_ms: u64,
    last_count: u64,
    samples: [u64; 16],
    idx: usize,
}

impl OpsMeter {
    fn per_sec(&self) -> u64 {
        self.samples.iter().sum::<u64>() / self.samples.len() as u64
    }
}

/// The cron's sample of the command counter (every 100 ms at most).
pub(crate) fn sample(inner: &mut Inner) {
    let now = now_ms();
    let count = inner.stats.total_commands;
    let m = &mut inner.stats.ops;
    let elapsed = now.saturating_sub(m.last_ms);
    if elapsed < 100 {
        return;
    }
    if m.last_ms > 0 {
        let ops = count.saturating_sub(m.last_count);
        m.samples[m.idx] = ops * 1000 / elapsed;
        m.idx = (m.idx + 1) % m.samples.len();
    }
    m.last_ms = now;
    m.last_count = count;
}

/// CONFIG RESETSTAT: the counters INFO shows (Redis's `resetServerStats`,
/// `resetCommandTableStats`, `resetErrorTableStats`).
pub(crate) fn reset_stats(conn: &Conn, inner: &mut Inner) {
    inner.stats = Default::default();
    inner.store.stats = Default::default();
    redsnap_engine::lazyfree::reset_stats();
    inner.calls.reset();
    conn.shared
        .live
        .rejected_connections
        .store(0, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<Bytes> {
        s.iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    #[test]
    fn sections_are_chosen_as_redis_does() {
        let w = Wanted::parse(&[]);
        assert!(w.has("server") && w.has("errorstats") && w.has("module_list"));
        assert!(!w.has("commandstats") && !w.has("latencystats"));
        let w = Wanted::parse(&args(&["CommandStats"]));
        assert!(w.has("commandstats") && !w.has("server"));
        let w = Wanted::parse(&args(&["cpu", "DEFAULT"]));
        assert!(w.has("cpu") && w.has("keyspace") && !w.has("commandstats"));
        for a in ["all", "EVERYTHING"] {
            let w = Wanted::parse(&args(&[a]));
            assert!(w.has("commandstats") && w.has("latencystats") && w.has("server"));
        }
    }

    #[test]
    fn numbers_print_as_redis_prints_them() {
        assert_eq!(percentile_text(50.0), "50");
        assert_eq!(percentile_text(99.9), "99.9");
        assert_eq!(percentile_text(0.0), "0");
        assert_eq!(percentile_text(12.345678), "12.345678");
        assert_eq!(human(512), "512B");
        assert_eq!(human(1536), "1.50K");
        assert_eq!(human(3 << 30), "3.00G");
        assert_eq!(safe(b"a:b#c\r\nd"), "a_b_c__d");
    }
}
