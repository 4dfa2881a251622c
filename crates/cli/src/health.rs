//! `redsnap health`: asks a server (redsnap or Redis) over RESP whether it is
//! healthy, and prints the document `/health` serves: `{healthy, connectionState,
//! reconnectAttempts, latencyMs}` (as the library reports a store's health), whether
//! writes are refused and why, and the state of persistence. Healthy means the
//! server answered PING and accepts writes. Exit code 0 when healthy, 1 when not
//! (unreachable, AUTH refused, MISCONF after a failed snapshot or log write).
//!
//! From redsnap, INFO persistence says whether writes are refused
//! (`writes_refused`, `writes_refused_reason`). From Redis, the refusal is worked
//! out as `writeCommandsDeniedByDiskError` does: a failed last snapshot with
//! `stop-writes-on-bgsave-error yes` and save points, or a failed append-only file
//! write or fsync (`aof_last_write_status:err`); when CONFIG GET is not allowed (a
//! managed service), Redis's defaults are assumed. Redis also answers PING with
//! that MISCONF error: the server answered, and writes are refused.

use crate::client::{Client, Reply, Target};
use anyhow::{bail, Context, Result};
use redsnap_server::{HealthReport, PersistenceHealth};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Redis's `shared.bgsaveerr` (the MISCONF reply after a failed snapshot).
const BGSAVE_ERR: &str = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";

/// `field:value` lines of an INFO reply.
fn parse_info(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim_end().to_string()))
        .collect()
}

fn bulk_text(r: Reply) -> Result<String> {
    match r {
        Reply::Bulk(Some(b)) => Ok(String::from_utf8_lossy(&b).into_owned()),
        Reply::Error(e) => bail!("{e}"),
        other => bail!("unexpected reply {other:?}"),
    }
}

/// A CONFIG GET value, or None when the server refuses CONFIG.
fn config_get(c: &mut Client, name: &str) -> Result<Option<String>> {
    match c.call(&[b"CONFIG", b"GET", name.as_bytes()])? {
        Reply::Array(Some(v)) => match v.get(1) {
            Some(Reply::Bulk(Some(b))) => Ok(Some(String::from_utf8_lossy(b).into_owned())),
            _ => Ok(None),
        },
        _ => Ok(None),
    }
}

fn status(v: Option<&String>) -> &'static str {
    match v.map(String::as_str) {
        Some("err") => "err",
        _ => "ok",
    }
}

/// What the server says, read over one connection.
fn ask(target: &Target, timeout: Duration) -> Result<HealthReport> {
    let mut c = Client::connect_timeout(target, timeout, timeout)?;
    let started = Instant::now();
    // Redis answers PING with MISCONF while disk errors refuse writes: the server
    // answered, and the error is the refusal.
    let ping_refusal = match c.call(&[b"PING"]).context("PING")? {
        Reply::Status(s) if s == b"PONG" => None,
        Reply::Error(e) if e.starts_with("MISCONF") => Some(e),
        Reply::Error(e) => bail!("PING answered {e}"),
        other => bail!("PING answered {other:?}"),
    };
    let latency = started.elapsed();
    let info = parse_info(&bulk_text(c.call(&[b"INFO", b"persistence"])?).context("INFO")?);
    let get = |k: &str| info.get(k);
    let aof = get("aof_enabled").is_some_and(|v| v == "1");
    let (refusal, enabled, age) = if let Some(refused) = get("writes_refused") {
        // redsnap: its own account.
        let refusal = (refused == "1").then(|| {
            get("writes_refused_reason")
                .cloned()
                .unwrap_or_else(|| "writes refused".into())
        });
        let age = get("rdb_last_good_snapshot_age_sec")
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|a| *a >= 0)
            .map(|a| a as u64);
        let enabled = get("persistence_enabled").is_none_or(|v| v == "1");
        (refusal, enabled, age)
    } else {
        // Redis: writeCommandsDeniedByDiskError, from INFO and CONFIG.
        let save_points = config_get(&mut c, "save")?.map(|s| !s.trim().is_empty());
        let stop_writes = config_get(&mut c, "stop-writes-on-bgsave-error")?;
        let rdb_refuses = status(get("rdb_last_bgsave_status")) == "err"
            && stop_writes.as_deref() != Some("no")
            && save_points != Some(false);
        let refusal = if rdb_refuses {
            Some(BGSAVE_ERR.to_string())
        } else if aof && status(get("aof_last_write_status")) == "err" {
            Some("MISCONF Errors writing to the AOF file (aof_last_write_status:err)".to_string())
        } else {
            None
        };
        let server = parse_info(&bulk_text(c.call(&[b"INFO", b"server"])?).context("INFO")?);
        let now = server
            .get("server_time_usec")
            .and_then(|v| v.parse::<u64>().ok())
            .map(|us| us / 1_000_000);
        let last = get("rdb_last_save_time").and_then(|v| v.parse::<u64>().ok());
        let age = now.zip(last).map(|(n, l)| n.saturating_sub(l));
        (refusal, aof || save_points != Some(false), age)
    };
    let persistence = PersistenceHealth {
        enabled,
        last_snapshot_age_sec: age,
        last_snapshot_status: status(get("rdb_last_bgsave_status")),
        snapshot_in_progress: get("rdb_bgsave_in_progress").is_some_and(|v| v == "1"),
        append_log: aof,
        append_log_write_status: aof.then(|| status(get("aof_last_write_status"))),
        append_log_fsync_status: get("aof_last_fsync_status")
            .filter(|_| aof)
            .map(|v| status(Some(v))),
    };
    Ok(HealthReport::answered(
        latency,
        ping_refusal.or(refusal),
        persistence,
    ))
}

/// Prints the report; returns whether the server is healthy.
pub fn run(url: &str, json: bool, timeout: Duration) -> Result<bool> {
    let target = Target::parse(url)?;
    let report = ask(&target, timeout)
        .unwrap_or_else(|e| HealthReport::unreachable(format!("{}: {e:#}", target.display())));
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_text(&report, &target);
    }
    Ok(report.healthy)
}

fn print_text(r: &HealthReport, target: &Target) {
    let verdict = if r.healthy { "healthy" } else { "UNHEALTHY" };
    match r.latency_ms {
        Some(ms) => println!("{}: {verdict} (PING {ms} ms)", target.display()),
        None => println!("{}: {verdict}", target.display()),
    }
    if let Some(e) = &r.error {
        println!("  error: {e}");
    }
    if let Some(reason) = &r.writes_refused_reason {
        println!("  writes refused: {reason}");
    }
    let Some(p) = &r.persistence else { return };
    if !p.enabled {
        println!("  persistence: off");
        return;
    }
    let age = p
        .last_snapshot_age_sec
        .map_or("none yet".to_string(), |a| format!("{a} s ago"));
    println!(
        "  last snapshot: {} ({age}){}",
        p.last_snapshot_status,
        if p.snapshot_in_progress {
            ", one in progress"
        } else {
            ""
        }
    );
    match (p.append_log_write_status, p.append_log_fsync_status) {
        _ if !p.append_log => println!("  append log: off"),
        (w, Some(f)) => println!("  append log: on, write {}, fsync {f}", w.unwrap_or("ok")),
        (w, None) => println!("  append log: on, write {}", w.unwrap_or("ok")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_lines_are_read() {
        let i = parse_info("# Persistence\r\nloading:0\r\nrdb_last_bgsave_status:err\r\n\r\n");
        assert_eq!(i.get("loading").map(String::as_str), Some("0"));
        assert_eq!(status(i.get("rdb_last_bgsave_status")), "err");
        assert_eq!(status(i.get("missing")), "ok");
        assert!(!i.contains_key("# Persistence"));
    }
}
