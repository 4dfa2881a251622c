//! Real frameworks against redsnap, side by side with a real redis-server:
//! BullMQ (a queue with two workers, a retried job, a job that runs out of
//! attempts, a delayed job and a repeatable job), RQ (enqueue, run with an
//! in-process burst worker, read statuses, return values and the per-job
//! results stream), django-redis (Django's cache: plain operations and
//! hashes read back in insertion order), Celery (kombu's Redis transport and
//! the Redis result backend with an in-process worker: results, failures,
//! retries, countdowns, chains, groups, chords, revocation; kombu's simple
//! queues, priorities and fanout exchange) and Sidekiq's command set (replayed
//! from Sidekiq 7's source with redis-py over RESP3, since Ruby gems cannot be
//! installed where the tests run).
//!
//! The scripts live in `tests/frameworks/` (`bullmq_queue.js`, `rq_jobs.py`,
//! `django_cache.py`, `celery_tasks.py`, `sidekiq_commands.py`); each prints one JSON summary that does not depend on
//! timing, and the summary printed against redsnap must equal the one printed
//! against redis-server. Setup: `cd tests/frameworks && pip install -r
//! requirements.txt && npm install` (scripts/test.sh does it). The tests skip
//! (with a printed reason) only when `python3` or `node` is not installed at
//! all; a missing framework package is a failure that says how to install it.

use std::path::PathBuf;
use std::time::Duration;

use redsnap_testsupport::external::{self, have, missing_python_modules, tail};
use redsnap_testsupport::{RedisServer, RedsnapServer};

/// Upper bound for one script run (the scripts give up by themselves after 60 s).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

fn frameworks_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("..")
        .join("tests")
        .join("frameworks")
}

/// Fails (with how to install them) when Python modules are missing.
fn require_python_modules(modules: &[&str]) {
    let missing = missing_python_modules(modules);
    assert!(
        missing.is_empty(),
        "Python module(s) {missing:?} not installed: run `python3 -m pip install -r \
         tests/frameworks/requirements.txt` (scripts/test.sh does it)"
    );
}

/// Run `program script host port` in tests/frameworks with a timeout; Ok(the
/// last line of stdout, the JSON summary) if it exits 0.
fn run_script(program: &str, script: &str, port: u16) -> Result<String, String> {
    let args = [
        frameworks_dir().join(script).display().to_string(),
        "127.0.0.1".to_string(),
        port.to_string(),
    ];
    let out = external::run(program, &args, &frameworks_dir(), SCRIPT_TIMEOUT)?;
    match out.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(line) if line.trim_start().starts_with('{') => Ok(line.trim().to_string()),
        _ => Err(format!(
            "{program} {args:?} printed no JSON summary; stdout:\n{out}"
        )),
    }
}

/// Split a one-line JSON object into its top-level `"key": value` members, so a
/// failure names the members that differ.
fn members(json: &str) -> Vec<String> {
    let inner = json
        .trim()
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or(json);
    let mut out = Vec::new();
    let (mut depth, mut in_str, mut escaped, mut start) = (0i32, false, false, 0usize);
    for (i, c) in inner.char_indices() {
        if in_str {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            ',' if depth == 0 => {
                out.push(inner[start..i].trim().to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
    if !inner[start..].trim().is_empty() {
        out.push(inner[start..].trim().to_string());
    }
    out
}

/// Run one framework script against a fresh redis-server and a fresh redsnap
/// and require the same summary.
fn framework_test(label: &str, program: &str, script: &str) {
    let redis = RedisServer::start().expect("start redis-server");
    let redsnap = RedsnapServer::builder()
        .extra_args(&["--appendonly", "no", "--save", ""])
        .start()
        .expect("start redsnap");
    let expected = run_script(program, script, redis.port()).unwrap_or_else(|e| {
        panic!(
            "{label}: the script failed against the real redis-server (a bug in the script or \
             its setup, not in redsnap):\n{e}"
        )
    });
    let actual = run_script(program, script, redsnap.port()).unwrap_or_else(|e| {
        panic!(
            "{label}: the script failed against redsnap:\n{e}\nredsnap log tail:\n{}",
            tail(&redsnap.log(), 30)
        )
    });
    if expected == actual {
        eprintln!("{label}: same summary from redis-server and redsnap: {actual}");
        return;
    }
    let (a, b) = (members(&expected), members(&actual));
    let mut msg = format!("{label}: the summaries differ between redis-server and redsnap");
    for m in &a {
        if !b.contains(m) {
            msg.push_str(&format!("\n  redis-server: {m}"));
        }
    }
    for m in &b {
        if !a.contains(m) {
            msg.push_str(&format!("\n  redsnap:      {m}"));
        }
    }
    msg.push_str(&format!(
        "\n  whole summaries:\n  redis-server: {expected}\n  redsnap:      {actual}"
    ));
    panic!("{msg}");
}

#[test]
fn bullmq_queue_workers_retries_delayed_repeatable() {
    if !have("node") {
        eprintln!("SKIPPED BullMQ test: node is not installed");
        return;
    }
    for package in ["bullmq", "ioredis"] {
        assert!(
            frameworks_dir().join("node_modules").join(package).is_dir(),
            "{package} is not installed: run `cd tests/frameworks && npm install` \
             (scripts/test.sh does it)"
        );
    }
    framework_test("BullMQ", "node", "bullmq_queue.js");
}

#[test]
fn rq_enqueue_work_and_read_results() {
    if !have("python3") {
        eprintln!("SKIPPED RQ test: python3 is not installed");
        return;
    }
    require_python_modules(&["redis", "rq"]);
    framework_test("RQ", "python3", "rq_jobs.py");
}

#[test]
fn django_redis_cache_and_hash_order() {
    if !have("python3") {
        eprintln!("SKIPPED django-redis test: python3 is not installed");
        return;
    }
    require_python_modules(&["redis", "django", "django_redis"]);
    framework_test("django-redis", "python3", "django_cache.py");
}

#[test]
fn celery_kombu_worker_results_chords_priorities_fanout() {
    if !have("python3") {
        eprintln!("SKIPPED Celery test: python3 is not installed");
        return;
    }
    require_python_modules(&["redis", "celery", "kombu"]);
    framework_test("Celery", "python3", "celery_tasks.py");
}

#[test]
fn sidekiq_command_set_push_fetch_schedule_heartbeat_metrics() {
    if !have("python3") {
        eprintln!("SKIPPED Sidekiq test: python3 is not installed");
        return;
    }
    require_python_modules(&["redis"]);
    framework_test("Sidekiq", "python3", "sidekiq_commands.py");
}

#[test]
fn summary_members_split_at_top_level_only() {
    let m = members(r#"{"a": [1, {"b": 2}], "c": "x,\"y}", "d": null}"#);
    assert_eq!(
        m,
        vec![r#""a": [1, {"b": 2}]"#, r#""c": "x,\"y}""#, r#""d": null"#]
    );
}
