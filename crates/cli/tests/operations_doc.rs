//! Runs the `sh` blocks of docs/operations.md, so the guide stays true: in a
//! directory holding a `dump.rdb` from a real redis-server 7.0, with `REDSNAP_URL`
//! at a running `redsnap serve`, `REDSNAP_HTTP` at its `http-port`
//! (`http://127.0.0.1:P`), `REDSNAP_PORT` its port, `REDIS_URL` at that redis-server,
//! `STANDBY_PORT` at a second redis-server (made a replica of the redsnap) and
//! `DATA_DIR` an empty directory's path. A line ending in `# exits 1` must fail; every other line must
//! succeed.

use anyhow::{Context, Result};
use redsnap_testsupport::dataset::{fill_every_encoding, Client};
use redsnap_testsupport::{redsnap_bin, RedisServer, RedsnapServer};
use std::path::Path;
use std::process::Command;

/// The commands of every ```sh block, with whether each must fail.
fn commands(doc: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut in_sh = false;
    for line in doc.lines() {
        let t = line.trim();
        if t.starts_with("```") {
            in_sh = !in_sh && t == "```sh";
            continue;
        }
        if in_sh && !t.is_empty() {
            match t.strip_suffix("# exits 1") {
                Some(cmd) => out.push((cmd.trim().to_string(), true)),
                None => out.push((t.to_string(), false)),
            }
        }
    }
    out
}

#[test]
fn the_operations_guide_runs() -> Result<()> {
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/operations.md");
    let doc = std::fs::read_to_string(&doc_path).context("docs/operations.md")?;
    let cmds = commands(&doc);
    assert!(cmds.len() >= 10, "{cmds:?}");
    assert!(cmds.iter().any(|(_, fail)| *fail));

    let work = tempfile::tempdir()?;
    // No wait before a diskless transfer (`redsnap backup` from it).
    let redis = RedisServer::builder()
        .extra_args(&["--repl-diskless-sync-delay", "0"])
        .start()?;
    let mut c = Client::connect(redis.port(), None)?;
    fill_every_encoding(&mut c)?;
    c.ok(&[b"SAVE"])?;
    std::fs::copy(redis.dir().join("dump.rdb"), work.path().join("dump.rdb"))?;
    let http = redsnap_testsupport::free_port();
    let http_port = http.to_string();
    let server = RedsnapServer::builder()
        .extra_args(&[
            "--save",
            "",
            "--appendonly",
            "no",
            "--http-port",
            &http_port,
        ])
        .start()?;
    // A redis-server the hot-standby section makes a replica of the redsnap.
    let standby = RedisServer::start()?;
    let bin = work.path().join("bin");
    std::fs::create_dir(&bin)?;
    std::os::unix::fs::symlink(redsnap_bin()?, bin.join("redsnap"))?;
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for (cmd, must_fail) in cmds {
        let out = Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .current_dir(work.path())
            .env("PATH", &path)
            .env("REDSNAP_URL", server.url())
            .env("REDIS_URL", redis.url())
            .env("REDSNAP_PORT", server.port().to_string())
            .env("STANDBY_PORT", standby.port().to_string())
            .env("REDSNAP_HTTP", format!("http://127.0.0.1:{http}"))
            .env("DATA_DIR", work.path().join("data"))
            .env_remove("REDSNAP_LOG")
            .output()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            out.status.success(),
            !must_fail,
            "`{cmd}` {}: {text}",
            if must_fail { "succeeded" } else { "failed" }
        );
    }
    Ok(())
}
