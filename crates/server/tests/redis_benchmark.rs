//! `redis-benchmark` (the real tool) must run against redsnap without errors,
//! without pipelining and with 16 commands in flight per connection.
//!
//! redis-benchmark exits non-zero on an error reply ("Error from server: ...");
//! the test also fails on any "Error"/"ERR" in its output and on a run that
//! takes longer than the timeout (a lost reply makes it wait forever).

use std::fs::{self, File};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use redsnap_testsupport::RedsnapServer;

const TESTS: &str = "set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,lrange_100";
const REQUESTS: &str = "2000";
const TIMEOUT: Duration = Duration::from_secs(180);

fn have_redis_benchmark() -> bool {
    Command::new("redis-benchmark")
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Run redis-benchmark with `-P pipeline`; returns (success, combined output).
fn run_benchmark(port: u16, pipeline: u32) -> (bool, String) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out_path = tmp.path().join("out");
    let out = File::create(&out_path).expect("output file");
    let err = out.try_clone().expect("clone output file");
    let args = [
        "-h".to_string(),
        "127.0.0.1".to_string(),
        "-p".to_string(),
        port.to_string(),
        "-t".to_string(),
        TESTS.to_string(),
        "-n".to_string(),
        REQUESTS.to_string(),
        "-P".to_string(),
        pipeline.to_string(),
        "-q".to_string(),
    ];
    let mut child = Command::new("redis-benchmark")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn redis-benchmark");
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for redis-benchmark") {
            break Some(s);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // -q prints progress lines ending in \r; keep only the final results.
    let raw = fs::read_to_string(&out_path).unwrap_or_default();
    let text: String = raw
        .split('\n')
        .map(|l| l.rsplit('\r').next().unwrap_or(l).trim())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    match status {
        None => (
            false,
            format!("timed out after {TIMEOUT:?}; output so far:\n{text}"),
        ),
        Some(s) => {
            let bad = text.contains("Error") || text.contains("ERR");
            (s.success() && !bad, format!("exit status {s}\n{text}"))
        }
    }
}

fn check(pipeline: u32) {
    assert!(
        have_redis_benchmark(),
        "redis-benchmark is not installed (Debian package redis-tools; scripts/test.sh installs it)"
    );
    let server = RedsnapServer::builder()
        .extra_args(&["--appendonly", "no", "--save", ""])
        .start()
        .expect("start redsnap");
    let (ok, output) = run_benchmark(server.port(), pipeline);
    eprintln!("redis-benchmark -P {pipeline}:\n{output}");
    assert!(
        ok,
        "redis-benchmark -t {TESTS} -n {REQUESTS} -P {pipeline} failed against redsnap:\n{output}\n\
         redsnap log tail:\n{}",
        server
            .log()
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Every test must have reported a result line.
    for t in TESTS.split(',') {
        let name = if t == "lrange_100" {
            "LRANGE_100".to_string()
        } else {
            t.to_ascii_uppercase()
        };
        assert!(
            output
                .lines()
                .any(|l| l.starts_with(&name) && l.contains("requests per second")),
            "redis-benchmark -P {pipeline}: no result for {name}:\n{output}"
        );
    }
    // The server must still answer afterwards.
    let pong = server
        .command(&[b"PING"])
        .expect("PING after the benchmark");
    assert_eq!(pong, b"+PONG\r\n");
}

#[test]
fn redis_benchmark_no_pipeline() {
    check(1);
}

#[test]
fn redis_benchmark_pipeline_16() {
    check(16);
}
