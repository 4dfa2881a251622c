//! The latency monitor (Redis's `latency.c`): LATENCY LATEST, HISTORY, RESET, DOCTOR,
//! GRAPH, HISTOGRAM and HELP. Events at or above `latency-monitor-threshold`
//! milliseconds are kept per event name, one sample per second (the highest), the
//! last 160 of them. Events recorded: `command` and `fast-command` (every call,
//! `calls.rs`), `expire-cycle` (the cron's active expiry), `eviction-cycle` and
//! `eviction-del` (maxmemory eviction before a command), `aof-fsync-always` (the
//! slowest append-log fsync between two cron ticks under `appendfsync always`).
//! HISTOGRAM reads the per-command latency histograms of `latency-tracking`.

use super::Handler;
use crate::conn::{Conn, Step};
use crate::state::Inner;
use bytes::Bytes;
use redsnap_engine::cmd::is;
use redsnap_engine::table::{self, CommandSpec};
use redsnap_engine::Reply;
use std::fmt::Write;

/// Redis's `LATENCY_TS_LEN`.
const TS_LEN: usize = 160;

pub(crate) const HANDLERS: &[(&str, Handler)] = &[("latency", latency)];

#[derive(Clone, Copy, Default)]
struct Sample {
    time: u64,
    ms: u64,
}

/// One event's samples (a ring) and its all-time maximum.
struct TimeSeries {
    idx: usize,
    max: u64,
    samples: [Sample; TS_LEN],
}

/// Every event seen since the last LATENCY RESET, in the order first seen.
#[derive(Default)]
pub(crate) struct Events {
    series: Vec<(&'static str, Box<TimeSeries>)>,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Events {
    /// Redis's `latencyAddSample` (the caller checked the threshold).
    pub fn add(&mut self, event: &'static str, ms: u64) {
        let now = unix_now();
        let ts = match self.series.iter_mut().find(|(e, _)| *e == event) {
            Some((_, ts)) => ts,
            None => {
                self.series.push((
                    event,
                    Box::new(TimeSeries {
                        idx: 0,
                        max: 0,
                        samples: [Sample::default(); TS_LEN],
                    }),
                ));
                match self.series.last_mut() {
                    Some((_, ts)) => ts,
                    None => return,
                }
            }
        };
        ts.max = ts.max.max(ms);
        // One sample per second: the highest.
        let prev = (ts.idx + TS_LEN - 1) % TS_LEN;
        if ts.samples[prev].time == now {
            ts.samples[prev].ms = ts.samples[prev].ms.max(ms);
            return;
        }
        ts.samples[ts.idx] = Sample { time: now, ms };
        ts.idx = (ts.idx + 1) % TS_LEN;
    }

    fn get(&self, event: &[u8]) -> Option<(&'static str, &TimeSeries)> {
        self.series
            .iter()
            .find(|(e, _)| e.as_bytes() == event)
            .map(|(e, ts)| (*e, &**ts))
    }

    /// The samples oldest first.
    fn samples(ts: &TimeSeries) -> impl Iterator<Item = Sample> + '_ {
        (0..TS_LEN)
            .map(move |j| ts.samples[(ts.idx + j) % TS_LEN])
            .filter(|s| s.time != 0)
    }
}

/// Records `ms` for `event` if it reaches `latency-monitor-threshold`.
pub(crate) fn add_if_needed(inner: &mut Inner, event: &'static str, ms: u64) {
    let threshold = inner.tun.latency_threshold_ms;
    if threshold > 0 && ms >= threshold {
        inner.latency.add(event, ms);
    }
}

fn latency(conn: &mut Conn, inner: &mut Inner, _: &'static CommandSpec, argv: &[Bytes]) -> Step {
    let sub = &argv[1];
    let text = |s: String| {
        if conn.resp3 {
            Reply::Verbatim("txt", Bytes::from(s))
        } else {
            Reply::Bulk(Bytes::from(s))
        }
    };
    let r = if is(sub, "history") && argv.len() == 3 {
        match inner.latency.get(&argv[2]) {
            None => Reply::Array(vec![]),
            Some((_, ts)) => Reply::Array(
                Events::samples(ts)
                    .map(|s| Reply::Array(vec![Reply::Int(s.time as i64), Reply::Int(s.ms as i64)]))
                    .collect(),
            ),
        }
    } else if is(sub, "graph") && argv.len() == 3 {
        match inner.latency.get(&argv[2]) {
            None => Reply::error(format!(
                "ERR No samples available for event '{}'",
                String::from_utf8_lossy(&argv[2])
            )),
            Some((event, ts)) => text(graph(event, ts)),
        }
    } else if is(sub, "latest") && argv.len() == 2 {
        Reply::Array(
            inner
                .latency
                .series
                .iter()
                .map(|(event, ts)| {
                    let last = ts.samples[(ts.idx + TS_LEN - 1) % TS_LEN];
                    Reply::Array(vec![
                        Reply::bulk_str(event),
                        Reply::Int(last.time as i64),
                        Reply::Int(last.ms as i64),
                        Reply::Int(ts.max as i64),
                    ])
                })
                .collect(),
        )
    } else if is(sub, "doctor") && argv.len() == 2 {
        text(doctor(inner))
    } else if is(sub, "reset") {
        let series = &mut inner.latency.series;
        let before = series.len();
        if argv.len() == 2 {
            series.clear();
            Reply::Int(before as i64)
        } else {
            let mut resets = 0;
            for e in &argv[2..] {
                let n = series.len();
                series.retain(|(name, _)| !name.as_bytes().eq_ignore_ascii_case(e));
                resets += n - series.len();
            }
            Reply::Int(resets as i64)
        }
    } else if is(sub, "histogram") {
        histogram(inner, &argv[2..])
    } else if is(sub, "help") && argv.len() == 2 {
        super::help(
            "LATENCY",
            &[
                "DOCTOR",
                "    Return a human readable latency analysis report.",
                "GRAPH <event>",
                "    Return an ASCII latency graph for the <event> class.",
                "HISTORY <event>",
                "    Return time-latency samples for the <event> class.",
                "LATEST",
                "    Return the latest latency samples for all events.",
                "RESET [<event> ...]",
                "    Reset latency data of one or more <event> classes.",
                "    (default: reset all data for all event classes)",
                "HISTOGRAM [COMMAND ...]",
                "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
                "    If no commands are specified then all histograms are replied.",
            ],
        )
    } else {
        super::subcommand_syntax_error("LATENCY", sub)
    };
    r.into()
}

/// LATENCY HISTOGRAM [command ...]: per command with data, its calls and the
/// cumulative distribution of its latencies in microseconds, one bucket per power of
/// two from 1 µs (Redis's `fillCommandCDF`).
fn histogram(inner: &Inner, names: &[Bytes]) -> Reply {
    let entry = |spec: &CommandSpec| -> Option<(Reply, Reply)> {
        let h = inner.calls.cmds[table::number_of(spec)?].hist.as_ref()?;
        let mut buckets = Vec::new();
        let mut previous = 0;
        for (highest, cumulative) in h.log_steps(1024, 2) {
            if cumulative > previous {
                buckets.push((Reply::Int(highest / 1000), Reply::Int(cumulative)));
            }
            previous = cumulative;
        }
        Some((
            Reply::bulk_str(spec.name),
            Reply::Map(vec![
                (Reply::bulk_str("calls"), Reply::Int(h.total_count)),
                (Reply::bulk_str("histogram_usec"), Reply::Map(buckets)),
            ]),
        ))
    };
    let mut out = Vec::new();
    if names.is_empty() {
        out.extend(table::numbered().iter().filter_map(|s| entry(s)));
    } else {
        for n in names {
            let Some(spec) = table::lookup_full(n) else {
                continue;
            };
            out.extend(entry(spec));
            out.extend(spec.subs.iter().filter_map(entry));
        }
    }
    Reply::Map(out)
}

/// LATENCY GRAPH: the event's samples as an ASCII sparkline (Redis's
/// `latencyCommandGenSparkeline` and `sparkline.c`), labelled with how long ago
/// each sample was taken.
fn graph(event: &str, ts: &TimeSeries) -> String {
    let now = unix_now();
    let samples: Vec<(f64, String)> = Events::samples(ts)
        .map(|s| {
            let elapsed = now.saturating_sub(s.time);
            let label = if elapsed < 60 {
                format!("{elapsed}s")
            } else if elapsed < 3600 {
                format!("{}m", elapsed / 60)
            } else if elapsed < 86400 {
                format!("{}h", elapsed / 3600)
            } else {
                format!("{}d", elapsed / 86400)
            };
            (s.ms as f64, label)
        })
        .collect();
    let lo = samples.iter().map(|s| s.0 as u64).min().unwrap_or(0);
    let hi = samples.iter().map(|s| s.0 as u64).max().unwrap_or(0);
    let mut out = format!(
        "{event} - high {hi} ms, low {lo} ms (all time high {} ms)\n{}\n",
        ts.max,
        "-".repeat(80)
    );
    sparkline(&mut out, &samples, 80, 4);
    out
}

/// `sparklineRender` with `SPARKLINE_FILL`.
fn sparkline(out: &mut String, samples: &[(f64, String)], columns: usize, rows: usize) {
    const FILL: &[u8] = b"_o#";
    let min = samples.iter().map(|s| s.0).fold(f64::INFINITY, f64::min);
    let max = samples
        .iter()
        .map(|s| s.0)
        .fold(f64::NEG_INFINITY, f64::max);
    let relmax = if max - min == 0.0 { 1.0 } else { max - min };
    let steps = (FILL.len() * rows) as i64;
    for (chunk_no, chunk) in samples.chunks(columns).enumerate() {
        if chunk_no > 0 {
            out.push('\n');
        }
        let mut row = 0;
        loop {
            let mut line = vec![b' '; chunk.len()];
            let mut more = false;
            for (j, (value, label)) in chunk.iter().enumerate() {
                let relval = value - min;
                let step = (((relval * steps as f64) as i64) as f64 / relmax) as i64;
                let step = step.clamp(0, steps - 1);
                if row < rows {
                    more = true;
                    let charidx = step - ((rows - row - 1) * FILL.len()) as i64;
                    if (0..FILL.len() as i64).contains(&charidx) {
                        line[j] = FILL[charidx as usize];
                    } else if charidx >= FILL.len() as i64 {
                        line[j] = b'|';
                    }
                } else {
                    // One blank row between the graph and the labels.
                    if row - rows < 1 {
                        more = true;
                        break;
                    }
                    let label_char = row - rows - 1;
                    if let Some(&c) = label.as_bytes().get(label_char) {
                        more = true;
                        line[j] = c;
                    }
                }
            }
            if !more {
                break;
            }
            row += 1;
            out.push_str(&String::from_utf8_lossy(&line));
            out.push('\n');
        }
    }
}

/// Redis's `analyzeLatencyForEvent`: samples, average, mean deviation, period.
struct Analysis {
    samples: u64,
    avg: u64,
    mad: u64,
    period: u64,
}

fn analyze(ts: &TimeSeries) -> Analysis {
    let samples: Vec<Sample> = Events::samples(ts).collect();
    let n = samples.len() as u64;
    if n == 0 {
        return Analysis {
            samples: 0,
            avg: 0,
            mad: 0,
            period: 0,
        };
    }
    let avg = samples.iter().map(|s| s.ms).sum::<u64>() / n;
    let oldest = samples.iter().map(|s| s.time).min().unwrap_or(0);
    let period = unix_now().saturating_sub(oldest).max(1);
    let mad = samples.iter().map(|s| s.ms.abs_diff(avg)).sum::<u64>() / n;
    Analysis {
        samples: n,
        avg,
        mad,
        period,
    }
}

/// Whether the process has anonymous huge pages (Redis's `THPGetAnonHugePagesSize`).
fn anon_huge_pages() -> bool {
    std::fs::read_to_string("/proc/self/smaps").is_ok_and(|s| {
        s.lines()
            .filter_map(|l| l.strip_prefix("AnonHugePages:"))
            .any(|v| v.split_whitespace().next().is_some_and(|n| n != "0"))
    })
}

/// LATENCY DOCTOR: Redis's `createLatencyReport`, for the events redsnap records.
fn doctor(inner: &Inner) -> String {
    let threshold = inner.tun.latency_threshold_ms;
    if inner.latency.series.is_empty() && threshold == 0 {
        return "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n".into();
    }
    let slower_than = inner.tun.slowlog_slower_than;
    let mut out = String::new();
    let mut advices = 0;
    let (mut slowlog_enable, mut slowlog_tune, mut slowlog_inspect) = (false, false, false);
    let (mut scheduler, mut hz, mut large_objects, mut mass_eviction) =
        (false, false, false, false);
    let mut relax_fsync = false;
    for (i, (event, ts)) in inner.latency.series.iter().enumerate() {
        if i == 0 {
            out.push_str("Dave, I have observed latency spikes in this Redis instance. You don't mind talking about it, do you Dave?\n\n");
        }
        let a = analyze(ts);
        let _ = write!(
            out,
            "{}. {event}: {} latency spikes (average {}ms, mean deviation {}ms, period {:.2} sec). Worst all time event {}ms.",
            i + 1,
            a.samples,
            a.avg,
            a.mad,
            a.period as f64 / a.samples.max(1) as f64,
            ts.max
        );
        match *event {
            "command" => {
                if slower_than < 0 {
                    slowlog_enable = true;
                    advices += 1;
                } else if slower_than as u64 / 1000 > threshold {
                    slowlog_tune = true;
                    advices += 1;
                }
                slowlog_inspect = true;
                large_objects = true;
                advices += 2;
            }
            "fast-command" => {
                scheduler = true;
                advices += 1;
            }
            "aof-fsync-always" => {
                relax_fsync = true;
                advices += 1;
            }
            "expire-cycle" => {
                hz = true;
                large_objects = true;
                advices += 2;
            }
            "eviction-del" => {
                large_objects = true;
                advices += 1;
            }
            "eviction-cycle" => {
                mass_eviction = true;
                advices += 1;
            }
            _ => {}
        }
        out.push('\n');
    }
    let thp = anon_huge_pages();
    if thp {
        advices += 1;
    }
    let events = inner.latency.series.len();
    if events == 0 && advices == 0 {
        out.push_str("Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. I honestly think you ought to sit down calmly, take a stress pill, and think things over.\n");
        return out;
    }
    if events > 0 && advices == 0 {
        out.push_str("\nWhile there are latency events logged, I'm not able to suggest any easy fix. Please use the Redis community to get some help, providing this report in your help request.\n");
        return out;
    }
    out.push_str("\nI have a few advices for you:\n\n");
    if slowlog_enable {
        let _ = writeln!(out, "- There are latency issues with potentially slow commands you are using. Try to enable the Slow Log Redis feature using the command 'CONFIG SET slowlog-log-slower-than {}'. If the Slow log is disabled Redis is not able to log slow commands execution for you.", threshold * 1000);
    }
    if slowlog_tune {
        let _ = writeln!(out, "- Your current Slow Log configuration only logs events that are slower than your configured latency monitor threshold. Please use 'CONFIG SET slowlog-log-slower-than {}'.", threshold * 1000);
    }
    if slowlog_inspect {
        out.push_str("- Check your Slow Log to understand what are the commands you are running which are too slow to execute. Please check https://redis.io/commands/slowlog for more information.\n");
    }
    if scheduler {
        out.push_str("- The system is slow to execute Redis code paths not containing system calls. This usually means the system does not provide Redis CPU time to run for long periods. You should try to:\n  1) Lower the system load.\n  2) Use a computer / VM just for Redis if you are running other software in the same system.\n  3) Check if you have a \"noisy neighbour\" problem.\n  4) Check with 'redis-cli --intrinsic-latency 100' what is the intrinsic latency in your system.\n  5) Check if the problem is allocator-related by recompiling Redis with MALLOC=libc, if you are using Jemalloc. However this may create fragmentation problems.\n");
    }
    if relax_fsync && inner.config.str("appendfsync") == "always" {
        out.push_str("- Your fsync policy is set to 'always'. It is very hard to get good performances with such a setup, if possible try to relax the fsync policy to 'onesec'.\n");
    }
    if hz && inner.config.int("hz") < 100 {
        out.push_str("- In order to make the Redis keys expiring process more incremental, try to set the 'hz' configuration parameter to 100 using 'CONFIG SET hz 100'.\n");
    }
    if large_objects {
        out.push_str("- Deleting, expiring or evicting (because of maxmemory policy) large objects is a blocking operation. If you have very large objects that are often deleted, expired, or evicted, try to fragment those objects into multiple smaller objects.\n");
    }
    if mass_eviction {
        out.push_str("- Sudden changes to the 'maxmemory' setting via 'CONFIG SET', or allocation of large objects via sets or sorted sets intersections, STORE option of SORT, Redis Cluster large keys migrations (RESTORE command), may create sudden memory pressure forcing the server to block trying to evict keys. \n");
    }
    if thp {
        out.push_str("- I detected a non zero amount of anonymous huge pages used by your process. This creates very serious latency events in different conditions, especially when Redis is persisting on disk. To disable THP support use the command 'echo never > /sys/kernel/mm/transparent_hugepage/enabled', make sure to also add it into /etc/rc.local so that the command will be executed again after a reboot. Note that even if you have already disabled THP, you still need to restart the Redis process to get rid of the huge pages already created.\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sample_per_second_keeps_the_highest() {
        let mut e = Events::default();
        e.add("command", 300);
        e.add("command", 500);
        e.add("command", 400);
        e.add("expire-cycle", 30);
        let (_, ts) = e.get(b"command").unwrap();
        let s: Vec<u64> = Events::samples(ts).map(|s| s.ms).collect();
        assert_eq!(s, vec![500]);
        assert_eq!(ts.max, 500);
        assert!(e.get(b"COMMAND").is_none());
        assert_eq!(e.series.len(), 2);
    }

    #[test]
    fn sparkline_is_redis_s() {
        // Redis 7.0, LATENCY GRAPH after samples 300, 400, 500 ms (labels fixed).
        let samples: Vec<(f64, String)> = [(300.0, "3s"), (400.0, "2s"), (500.0, "1s")]
            .iter()
            .map(|(v, l)| (*v, l.to_string()))
            .collect();
        let mut out = String::new();
        sparkline(&mut out, &samples, 80, 4);
        assert_eq!(out, "  #\n _|\n ||\n_||\n   \n321\nsss\n");
    }
}
