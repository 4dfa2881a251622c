//! `redsnap serve`: the standalone server, and `--import dump.rdb` for its first start.

use crate::restore;
use anyhow::{bail, Context, Result};
use redsnap_persist::{DataDir, SnapshotStore};
use redsnap_server::{Config, Server};
use std::path::PathBuf;

/// Splits `--name v1 v2 --other v` into directives (values run to the next `--name`).
pub fn parse_directives(args: &[String]) -> Result<Vec<(String, Vec<String>)>> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for a in args {
        if let Some(name) = a.strip_prefix("--").filter(|n| {
            !n.is_empty()
                && !n.starts_with('-')
                && n.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        }) {
            out.push((name.to_string(), Vec::new()));
        } else if let Some(last) = out.last_mut() {
            last.1.push(a.clone());
        } else {
            bail!("unexpected argument '{a}': directives are given as --name value (e.g. --port 6380)");
        }
    }
    Ok(out)
}

pub fn build_config(file: Option<PathBuf>, directives: &[String]) -> Result<Config> {
    let mut config = Config::default();
    let mut rest = directives.to_vec();
    let mut file = file;
    // `redsnap serve --port 1` puts --port into `file` position when no file is given.
    if let Some(f) = &file {
        if f.to_string_lossy().starts_with("--") {
            rest.insert(0, f.to_string_lossy().into_owned());
            file = None;
        }
    }
    if let Some(f) = &file {
        config.load_file(f)?;
    }
    for (name, values) in parse_directives(&rest)? {
        let values = if values.is_empty() {
            vec![String::new()]
        } else {
            values
        };
        config
            .set(&name, &values)
            .map_err(|e| anyhow::anyhow!("--{name}: {e}"))?;
    }
    Ok(config)
}

/// Takes `--import FILE` out of the serve arguments.
pub fn take_import(args: &mut Vec<String>) -> Result<Option<PathBuf>> {
    let Some(i) = args.iter().position(|a| a == "--import") else {
        return Ok(None);
    };
    let Some(file) = args.get(i + 1).filter(|f| !f.starts_with("--")) else {
        bail!("--import needs a file: redsnap serve --import dump.rdb");
    };
    let file = PathBuf::from(file);
    args.drain(i..i + 2);
    Ok(Some(file))
}

/// Whether the configuration persists anything (the server opens `dir` only then).
fn persistence_enabled(c: &Config) -> bool {
    c.bool("appendonly") || !c.save_points().is_empty() || c.u64("snapshot-interval") > 0
}

/// `serve --import FILE`: marks the (empty) data directory as importing FILE. The
/// server's recovery then loads the file straight into memory and the server takes
/// its first snapshot in the background; until that snapshot is durable, every start
/// loads the file again before replaying the log (`redsnap_persist::import`).
fn import(config: &Config, file: &std::path::Path) -> Result<()> {
    if !persistence_enabled(config) {
        bail!("--import fills the data directory, but this configuration persists nothing (--save \"\" and --appendonly no): enable save points or the append log");
    }
    if !config.bool("restore-on-startup") {
        bail!("--import with restore-on-startup no would load nothing");
    }
    let dir = PathBuf::from(config.str("dir"));
    let contents = restore::dir_contents(&dir)?;
    if let Some(f) = contents.foreign.first() {
        bail!(
            "--import: {} is not a redsnap data directory (it holds {}): import into an empty directory",
            dir.display(),
            f.display()
        );
    }
    let datadir = DataDir::open(&dir).with_context(|| dir.display().to_string())?;
    if let Some(m) = redsnap_persist::import::pending(&dir)? {
        let same = std::fs::canonicalize(file).is_ok_and(|f| f == m.file);
        if !same {
            bail!(
                "--import: {} is still importing {} (its first snapshot was never written); start without --import to finish that import",
                dir.display(),
                m.file.display()
            );
        }
        tracing::info!(file = %m.file.display(), "the import of this file is pending already: finishing it");
        return Ok(());
    }
    let snaps = SnapshotStore::open(&datadir)?;
    let holds = snaps.current()?.is_some_and(|m| m.keys > 0) || !contents.log_files.is_empty();
    if holds {
        bail!(
            "--import: the data directory {} already holds data; refusing to import over it (use `redsnap restore FILE --to {} --replace` to replace it)",
            dir.display(),
            dir.display()
        );
    }
    drop(snaps);
    redsnap_persist::import::begin(&datadir, file)
        .with_context(|| format!("--import {}", file.display()))?;
    tracing::info!(file = %file.display(), dir = %dir.display(), "importing: the file is loaded at start, then written as the first snapshot");
    Ok(())
}

pub fn run(args: Vec<String>) -> Result<()> {
    let mut args = args;
    let import_file = take_import(&mut args)?;
    let (file, directives) = match args.split_first() {
        Some((f, rest)) if !f.starts_with("--") => (Some(PathBuf::from(f)), rest.to_vec()),
        _ => (None, args.clone()),
    };
    let config = build_config(file, &directives)?;
    crate::logging::init(
        &crate::logging::LogSetup {
            level: crate::logging::level_directive(&config.str("loglevel"))
                .map_err(anyhow::Error::msg)?
                .into(),
            file: config.str("logfile"),
            json: config.str("log-format") == "json",
        },
        true,
    )?;
    if let Some(f) = &import_file {
        import(&config, f)?;
    }
    // `io-threads` runtime workers run connections (parsing, replies, socket
    // I/O); commands themselves run one at a time under the server lock.
    let workers = config.u64("io-threads").clamp(1, 128) as usize;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // Commands of different connections run in the order their bytes arrived, as
    // Redis's one thread runs them: when one poll of the socket driver finds several
    // connections readable, tokio's LIFO slot would run the last one woken first, so
    // a command sent just after another on a second connection overtook it (Redis's
    // suite sends XREADGROUP BLOCK on one connection and DEL on another without
    // waiting, and expects the reader to be blocked first). Without the slot, woken
    // connections queue in the order epoll reports them. `tokio_unstable` is set in
    // .cargo/config.toml; a build without it keeps the slot (and the old ordering).
    #[cfg(tokio_unstable)]
    builder.disable_lifo_slot();
    let rt = builder
        .worker_threads(workers)
        // An idle worker gives its free pages back when a bulk release asked for it
        // (FLUSHALL, a big DEL, a snapshot's copy dropped): one atomic load otherwise.
        .on_thread_park(redsnap_server::collect_if_requested)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let server = Server::bind(config).await?;
        for a in server.local_addrs() {
            tracing::info!("Ready to accept connections on {a}");
        }
        server.run().await?;
        Ok::<(), anyhow::Error>(())
    })?;
    // Connection tasks may still be running; leave without waiting for them.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_split() {
        let args: Vec<String> = ["--port", "7000", "--save", "900", "1", "--requirepass", "x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let d = parse_directives(&args).unwrap();
        assert_eq!(
            d[1],
            ("save".to_string(), vec!["900".to_string(), "1".to_string()])
        );
        let c = build_config(None, &args).unwrap();
        assert_eq!(c.int("port"), 7000);
        assert_eq!(c.save_points(), vec![(900, 1)]);
        assert!(build_config(None, &["--nonsense".to_string(), "1".to_string()]).is_err());
        assert!(parse_directives(&["x".to_string()]).is_err());
    }

    #[test]
    fn import_is_taken_out() {
        let mut args: Vec<String> = ["--port", "1", "--import", "d.rdb", "--dir", "x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            take_import(&mut args).unwrap(),
            Some(PathBuf::from("d.rdb"))
        );
        assert_eq!(args, ["--port", "1", "--dir", "x"]);
        let mut bad = vec!["--import".to_string()];
        assert!(take_import(&mut bad).is_err());
    }
}
