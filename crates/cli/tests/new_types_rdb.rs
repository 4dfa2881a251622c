//! The types of issue 15 (testsupport's `new_types`: streams with groups and
//! pending entries, geo sets, bitmaps, HyperLogLogs) through RDB files in both
//! directions: redsnap's RDB writer (`redsnap backup`) makes a file that
//! `redis-check-rdb` accepts and redis-server loads to the same state, and a
//! redis-server 7.0 SAVE file comes back to the same state through
//! `redsnap restore` and `serve --import`.

use anyhow::{Context, Result};
use redsnap_testsupport::dataset::Client;
use redsnap_testsupport::new_types::{assert_same_state, fill_new_types, new_types_state};
use redsnap_testsupport::{redsnap_bin, RedisServer, RedsnapServer};
use std::process::{Command, Output};

fn redsnap(args: &[&str]) -> Result<Output> {
    Command::new(redsnap_bin()?)
        .args(args)
        .env_remove("REDSNAP_LOG")
        .output()
        .context("running redsnap")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn state(port: u16) -> Result<Vec<(String, redsnap_testsupport::dataset::Resp)>> {
    new_types_state(&mut Client::connect(port, None)?)
}

#[test]
fn redsnap_rdb_loads_into_redis_with_the_same_state() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let source = RedsnapServer::builder()
        .extra_args(&["--save", "", "--appendonly", "no"])
        .start()?;
    fill_new_types(&mut Client::connect(source.port(), None)?)?;
    let want = state(source.port())?;
    for method in ["sync", "scan"] {
        let f = tmp.path().join(format!("{method}.rdb"));
        let out = redsnap(&[
            "backup",
            "--from",
            &source.url(),
            "--to",
            f.to_str().unwrap_or(""),
            "--method",
            method,
        ])?;
        assert!(out.status.success(), "{method}: {}", text(&out));
        let check = Command::new("redis-check-rdb").arg(&f).output()?;
        assert!(check.status.success(), "{method}: {}", text(&check));
        let dir = tmp.path().join(format!("redis-{method}"));
        std::fs::create_dir(&dir)?;
        std::fs::copy(&f, dir.join("dump.rdb"))?;
        let loaded = RedisServer::builder().dir(&dir).start()?;
        assert_same_state(
            &format!("redsnap backup ({method}) loaded by redis-server"),
            &want,
            &state(loaded.port())?,
        );
    }
    Ok(())
}

#[test]
fn a_redis_rdb_restores_and_imports_into_redsnap_with_the_same_state() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let redis = RedisServer::start()?;
    let mut c = Client::connect(redis.port(), None)?;
    fill_new_types(&mut c)?;
    let want = state(redis.port())?;
    c.ok(&[b"SAVE"])?;
    let dump = tmp.path().join("dump.rdb");
    std::fs::copy(redis.dir().join("dump.rdb"), &dump)?;
    let dump_s = dump.to_str().unwrap_or("");

    // restore over TCP into a running redsnap.
    let target = RedsnapServer::builder()
        .extra_args(&["--save", "", "--appendonly", "no"])
        .start()?;
    let out = redsnap(&["restore", dump_s, "--to", &target.url()])?;
    assert!(out.status.success(), "{}", text(&out));
    assert_same_state("restore --to URL", &want, &state(target.port())?);

    // restore into a data directory, then serve it.
    let dir = tmp.path().join("data");
    let out = redsnap(&["restore", dump_s, "--to", dir.to_str().unwrap_or("")])?;
    assert!(out.status.success(), "{}", text(&out));
    {
        let served = RedsnapServer::builder().dir(&dir).start()?;
        assert_same_state("restore --to DIR", &want, &state(served.port())?);
    }

    // serve --import, and the data is still there after a restart without it.
    let dir2 = tmp.path().join("imported");
    let mut server = RedsnapServer::builder()
        .dir(&dir2)
        .extra_args(&["--import", dump_s])
        .start()?;
    assert_same_state("serve --import", &want, &state(server.port())?);
    server.stop();
    let again = RedsnapServer::builder().dir(&dir2).start()?;
    assert_same_state("after --import and a restart", &want, &state(again.port())?);
    Ok(())
}
