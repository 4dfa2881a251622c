//! `kill -9` of a process that appends: every append acknowledged before the kill is
//! recovered, under `everysec` (bytes reach the kernel before `append` returns) and
//! `always`. The test re-runs its own binary as the writer child.

mod common;

use common::*;
use redsnap_engine::LogRecord;
use redsnap_persist::{FsyncPolicy, LoadOptions};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DIR_ENV: &str = "REDSNAP_PERSIST_CRASH_CHILD_DIR";

/// The child: appends SETs forever, printing "ack <i>" after each append returns
/// (and, under `always`, after it is durable). Does nothing when run normally.
#[test]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return;
    };
    let policy =
        FsyncPolicy::parse(&std::env::var("REDSNAP_PERSIST_CRASH_POLICY").unwrap_or_default())
            .unwrap_or(FsyncPolicy::EverySec);
    let start: u64 = std::env::var("REDSNAP_PERSIST_CRASH_START")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let o = reopen(std::path::Path::new(&dir), &LoadOptions::new()).expect("child recover");
    let log = open_log(&o, policy);
    let mut out = std::io::stdout().lock();
    for i in start.. {
        let rec = LogRecord {
            db: (i % 16) as usize,
            time: now(),
            argv: vec![b("SET"), b(&format!("k{i}")), b(&"v".repeat(50))],
        };
        let seq = log.append(&[rec]).expect("append");
        log.wait_durable(seq).expect("durable");
        writeln!(out, "ack {i}").expect("stdout");
        out.flush().expect("flush");
    }
}

fn run_cycles(policy: &str) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("current_exe");
    let mut acked: Vec<u64> = Vec::new();
    let mut next = 0u64;
    let deadline = Instant::now() + Duration::from_secs(20);
    for cycle in 0..4 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DIR_ENV, tmp.path())
            .env("REDSNAP_PERSIST_CRASH_POLICY", policy)
            .env("REDSNAP_PERSIST_CRASH_START", next.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let want = 300 + 200 * cycle as u64;
        let mut got = 0;
        while got < want && Instant::now() < deadline {
            let Some(Ok(line)) = lines.next() else { break };
            if let Some(i) = line
                .strip_prefix("ack ")
                .and_then(|s| s.parse::<u64>().ok())
            {
                acked.push(i);
                next = i + 1;
                got += 1;
            }
        }
        // SIGKILL mid-stream.
        child.kill().expect("kill");
        // Acks the child printed before it died still count.
        for line in lines.map_while(Result::ok) {
            if let Some(i) = line
                .strip_prefix("ack ")
                .and_then(|s| s.parse::<u64>().ok())
            {
                acked.push(i);
                next = i + 1;
            }
        }
        let _ = child.wait();
        assert!(got > 0, "child wrote nothing in cycle {cycle}");
        let o = reopen(tmp.path(), &LoadOptions::new()).expect("recover after kill -9");
        for &i in &acked {
            let key = b(&format!("k{i}"));
            assert!(
                o.store.dbs[(i % 16) as usize].get(&key).is_some(),
                "acknowledged k{i} lost after kill -9 (cycle {cycle}, {policy})"
            );
        }
        // Start the next child after everything seen so far (a write may have landed
        // without its ack being read).
        next = next.max(o.store.total_keys() as u64);
    }
    assert!(acked.len() >= 1000, "only {} acks", acked.len());
}

#[test]
fn kill9_everysec_loses_nothing_acknowledged() {
    if std::env::var(DIR_ENV).is_ok() {
        return;
    }
    run_cycles("everysec");
}

#[test]
fn kill9_always_loses_nothing_acknowledged() {
    if std::env::var(DIR_ENV).is_ok() {
        return;
    }
    run_cycles("always");
}
