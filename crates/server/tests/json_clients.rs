//! Real clients against redsnap's built-in JSON type (issue 18): redis-py's
//! `r.json()` (RESP2 and RESP3) and ioredis's `call('JSON.SET', ...)`. The scripts
//! (`tests/clients/json_py.py`, `json_ioredis.js`) check every reply themselves
//! and print "ok"; there is no redis-server to compare with (it has no JSON
//! module). Setup as for `clients.rs` (`pip install -r requirements.txt && npm
//! install` in tests/clients); skipped only when python3 or node is absent.

use redsnap_testsupport::external::{self, have};
use redsnap_testsupport::RedsnapServer;
use std::path::PathBuf;
use std::time::Duration;

fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/clients")
}

/// Runs the script to completion (at most 120 s); its stdout, or why it failed.
fn run(program: &str, args: &[String]) -> Result<String, String> {
    external::run(program, args, &clients_dir(), Duration::from_secs(120))
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
