//! Real clients against redsnap's built-in JSON type (issue 18): redis-py's
//! `r.json()` (RESP2 and RESP3) and ioredis's `call('JSON.SET', ...)`. The scripts
//! (`tests/clients/json_py.py`, `json_ioredis.js`) check every reply themselves
//! and print "ok"; there is no redis-server to compare with (it has no JSON
//! module). Setup as for `clients.rs` (`pip install -r requirements.txt && npm
//! install` in tests/clients); skipped only when python3 or node is absent.

use redsnap_testsupport::RedsnapServer;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/clients")
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs the script to completion (at most 120 s); its stdout, or why it failed.
fn run(program: &str, args: &[String]) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new(program)
        .args(args)
        .current_dir(clients_dir())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).map_err(|e| e.to_string())?)
        .stderr(std::fs::File::create(&err).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("spawning {program}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program} {args:?} timed out"));
            }
        }
    };
    let stdout = std::fs::read_to_string(&out).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    if status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{program} {args:?} failed ({status}):\n{stdout}\n{stderr}"
        ))
    }
}

fn server() -> RedsnapServer {
    RedsnapServer::builder()
        .extra_args(&["--appendonly", "no", "--save", ""])
        .start()
        .expect("start redsnap")
}

#[test]
fn redis_py_json_client() {
    if !have("python3") {
        eprintln!("skipped: python3 is not installed");
        return;
    }
    let s = server();
    for proto in ["2", "3"] {
        let args = vec![
            "json_py.py".to_string(),
            "127.0.0.1".to_string(),
            s.port().to_string(),
            proto.to_string(),
        ];
        let out = run("python3", &args).unwrap_or_else(|e| {
            panic!("{e}\n(redis-py missing? cd tests/clients && pip install -r requirements.txt)")
        });
        assert_eq!(out.trim(), "ok", "RESP{proto}");
    }
}

#[test]
fn ioredis_json_calls() {
    if !have("node") {
        eprintln!("skipped: node is not installed");
        return;
    }
    let s = server();
    let args = vec![
        "json_ioredis.js".to_string(),
        "127.0.0.1".to_string(),
        s.port().to_string(),
    ];
    let out = run("node", &args)
        .unwrap_or_else(|e| panic!("{e}\n(ioredis missing? cd tests/clients && npm install)"));
    assert_eq!(out.trim(), "ok");
}
