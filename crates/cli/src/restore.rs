//! `redsnap restore FILE --to URL|DIR` and the import behind `redsnap serve --import`.
//!
//! Nothing is written from a damaged file: into a server, the whole file is read
//! (every value decoded, the CRC-64 compared) before the first RESTORE; into a data
//! directory, the snapshot is written only after the whole file was read.

use crate::client::{Client, Reply, Target};
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use redsnap_engine::{EngineConfig, Store};
use redsnap_persist::rdbfile::{
    load_into, show_key, Item, KeyRecord, LoadRdbOptions, RdbReader, ReadOptions,
};
use redsnap_persist::{DataDir, SnapshotStore};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Options of `restore`.
#[derive(Debug, Clone)]
pub struct RestoreOpts {
    pub replace: bool,
    /// Only this database of the file.
    pub db: Option<u64>,
    pub skip_unsupported: bool,
}

/// What a restore did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct RestoreReport {
    pub keys_restored: u64,
    pub expired_skipped: u64,
    pub other_db_skipped: u64,
    pub unsupported_skipped: u64,
    pub empty_skipped: u64,
    pub functions_loaded: u64,
    pub functions_skipped: u64,
    /// Keys replaced (`--replace`) or found existing.
    pub existing: u64,
}

/// A byte-progress bar on stderr when it is a terminal, hidden otherwise.
pub fn progress(len: u64, what: &str) -> ProgressBar {
    let pb = if std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta}) {prefix}",
    ) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_string());
    pb
}

fn open_rdb(file: &Path, skip_unsupported: bool) -> Result<(RdbReader<std::fs::File>, u64)> {
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let opts = ReadOptions {
        skip_unsupported,
        ..Default::default()
    };
    let r = RdbReader::new(f, opts).with_context(|| file.display().to_string())?;
    Ok((r, len))
}

/// Reads every item of `file`, with the file named in errors and a progress bar.
fn each_item(
    file: &Path,
    skip_unsupported: bool,
    what: &str,
    mut f: impl FnMut(Item) -> Result<()>,
) -> Result<redsnap_persist::rdbfile::ReadSummary> {
    let (mut r, len) = open_rdb(file, skip_unsupported)?;
    let pb = progress(len, what);
    let mut n = 0u64;
    loop {
        let item = r.next_item().with_context(|| file.display().to_string())?;
        let Some(item) = item else { break };
        f(item)?;
        n += 1;
        if n.is_multiple_of(1024) {
            pb.set_position(r.offset());
        }
    }
    pb.finish_and_clear();
    Ok(r.summary().clone())
}

/// Whether a key record is restored, and why not.
enum Verdict {
    Restore,
    OtherDb,
    Expired,
}

fn verdict(k: &KeyRecord, opts: &RestoreOpts, now: u64) -> Verdict {
    if opts.db.is_some_and(|d| d != k.db) {
        Verdict::OtherDb
    } else if k.expire_ms.is_some_and(|t| t < now) {
        // Redis's keyIsExpired: expired once now > deadline.
        Verdict::Expired
    } else {
        Verdict::Restore
    }
}

const BATCH: usize = 512;

/// Reads the replies of everything pending, calling `f` with each (in order).
fn drain(c: &mut Client, mut f: impl FnMut(Reply) -> Result<()>) -> Result<()> {
    while c.pending() > 0 {
        let r = c.read_reply()?;
        f(r)?;
    }
    Ok(())
}

/// Restores into a running server by pipelined RESTORE ... ABSTTL. Each key goes
/// into its database of the file, or into the URL's database when it names one
/// (`redis://host:port/3`; with `--db`, one database of the file moves there).
pub fn to_server(file: &Path, url: &str, opts: &RestoreOpts) -> Result<RestoreReport> {
    let target = Target::parse(url)?;
    let into_db = target.db.map(u64::from);
    let mut c = Client::connect(&target)?;
    let mut report = RestoreReport::default();
    let now = redsnap_engine::now_ms();

    // Pass 1: verify the whole file, and find keys that exist in the target.
    let mut libs: Vec<bytes::Bytes> = Vec::new();
    let mut conn_db: Option<u64> = None;
    let mut probed: Vec<(u64, bytes::Bytes)> = Vec::new();
    let mut first_existing: Option<String> = None;
    let mut existing = 0u64;
    let summary = each_item(file, opts.skip_unsupported, "verifying", |item| {
        match item {
            Item::Function { code } => libs.push(code),
            Item::Key(k) if !opts.replace => {
                if let Verdict::Restore = verdict(&k, opts, now) {
                    let db = into_db.unwrap_or(k.db);
                    if conn_db != Some(db) {
                        c.send(&[b"SELECT", db.to_string().as_bytes()])?;
                        probed.push((u64::MAX, bytes::Bytes::new()));
                        conn_db = Some(db);
                    }
                    c.send(&[b"EXISTS", &k.key])?;
                    probed.push((db, k.key));
                    if c.pending() >= BATCH {
                        check_exists(&mut c, &mut probed, &mut existing, &mut first_existing)?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    check_exists(&mut c, &mut probed, &mut existing, &mut first_existing)?;
    if existing > 0 {
        bail!(
            "{existing} key(s) of {} already exist in {} (first: {}); nothing was written (use --replace to overwrite them)",
            file.display(),
            target.display(),
            first_existing.unwrap_or_default()
        );
    }
    report.unsupported_skipped = summary.skipped_unsupported;
    report.empty_skipped = summary.skipped_empty;

    // Function libraries first: a target that cannot take them stops the restore
    // before any key is written.
    for code in &libs {
        let mut args: Vec<&[u8]> = vec![b"FUNCTION", b"LOAD"];
        if opts.replace {
            args.push(b"REPLACE");
        }
        args.push(code);
        match c.call(&args)? {
            Reply::Error(e) if opts.skip_unsupported => {
                eprintln!("warning: function library not loaded ({e}); skipped");
                report.functions_skipped += 1;
            }
            Reply::Error(e) => bail!(
                "{} refused a function library of {} ({e}); nothing else was written (--skip-unsupported skips libraries)",
                target.display(),
                file.display()
            ),
            _ => report.functions_loaded += 1,
        }
    }

    // Pass 2: RESTORE.
    let now = redsnap_engine::now_ms();
    let mut conn_db: Option<u64> = None;
    let mut sent: Vec<Option<(u64, bytes::Bytes)>> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let mut busy = 0u64;
    let mut restored = 0u64;
    let mut handle = |c: &mut Client, sent: &mut Vec<Option<(u64, bytes::Bytes)>>| -> Result<()> {
        let mut it = sent.drain(..);
        drain(c, |r| {
            let what = it.next().flatten();
            match (r, what) {
                (Reply::Error(e), Some((db, key))) => {
                    if e.starts_with("BUSYKEY") {
                        busy += 1;
                    }
                    if errors.len() < 10 {
                        errors.push(format!("db {db} key {}: {e}", show_key(&key)));
                    }
                }
                (Reply::Error(e), None) => bail!("{}: {e}", target.display()),
                (_, Some(_)) => restored += 1,
                (_, None) => {}
            }
            Ok(())
        })
    };
    each_item(file, opts.skip_unsupported, "restoring", |item| {
        let Item::Key(k) = item else { return Ok(()) };
        match verdict(&k, opts, now) {
            Verdict::OtherDb => report.other_db_skipped += 1,
            Verdict::Expired => report.expired_skipped += 1,
            Verdict::Restore => {
                let db = into_db.unwrap_or(k.db);
                if conn_db != Some(db) {
                    c.send(&[b"SELECT", db.to_string().as_bytes()])?;
                    sent.push(None);
                    conn_db = Some(db);
                }
                let payload = redsnap_engine::rdb::dump_payload(&k.value);
                let ttl = k.expire_ms.unwrap_or(0).to_string();
                let mut args: Vec<&[u8]> = vec![b"RESTORE", &k.key, ttl.as_bytes(), &payload];
                if opts.replace {
                    args.push(b"REPLACE");
                }
                args.push(b"ABSTTL");
                let idle = k.idle.map(|i| i.to_string());
                let freq = k.freq.map(|f| f.to_string());
                if let Some(i) = &idle {
                    args.extend([&b"IDLETIME"[..], i.as_bytes()]);
                } else if let Some(f) = &freq {
                    args.extend([&b"FREQ"[..], f.as_bytes()]);
                }
                c.send(&args)?;
                sent.push(Some((db, k.key)));
                if c.pending() >= BATCH {
                    handle(&mut c, &mut sent)?;
                }
            }
        }
        Ok(())
    })?;
    handle(&mut c, &mut sent)?;
    report.keys_restored = restored;
    report.existing = if opts.replace { 0 } else { busy };
    if !errors.is_empty() {
        bail!(
            "{} restored, {} refused by {} ({} created meanwhile: BUSYKEY); first errors:\n  {}",
            restored,
            errors.len(),
            target.display(),
            busy,
            errors.join("\n  ")
        );
    }
    Ok(report)
}

/// Reads the EXISTS replies pending.
fn check_exists(
    c: &mut Client,
    probed: &mut Vec<(u64, bytes::Bytes)>,
    existing: &mut u64,
    first: &mut Option<String>,
) -> Result<()> {
    let mut it = probed.drain(..);
    drain(c, |r| {
        let (db, key) = it.next().unwrap_or((u64::MAX, bytes::Bytes::new()));
        match r {
            Reply::Error(e) => bail!("checking for existing keys: {e}"),
            Reply::Int(n) if n > 0 && db != u64::MAX => {
                *existing += 1;
                if first.is_none() {
                    *first = Some(format!("db {db} key {}", show_key(&key)));
                }
            }
            _ => {}
        }
        Ok(())
    })
}

/// What a data directory holds (redsnap's own files), without opening it.
pub struct DirContents {
    pub has_snapshot_dir: bool,
    pub log_files: Vec<PathBuf>,
    /// Entries that are not redsnap's.
    pub foreign: Vec<PathBuf>,
}

pub fn dir_contents(dir: &Path) -> Result<DirContents> {
    let mut c = DirContents {
        has_snapshot_dir: false,
        log_files: Vec::new(),
        foreign: Vec::new(),
    };
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(c),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    for e in rd {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "snapshot" {
            c.has_snapshot_dir = true;
        } else if name.starts_with("appendonly.") {
            c.log_files.push(e.path());
        } else if name != redsnap_persist::datadir::LOCK_FILE
            && name != redsnap_persist::import::MARKER
        {
            c.foreign.push(e.path());
        }
    }
    Ok(c)
}

/// Where an import into a data directory goes.
pub struct DirImport<'a> {
    pub dir: &'a Path,
    pub databases: usize,
    pub replace: bool,
}

/// Reads `file` whole into memory, then writes it as the data directory's snapshot.
/// Refuses a directory holding data unless `replace`.
pub fn to_dir(file: &Path, to: &DirImport, opts: &RestoreOpts) -> Result<RestoreReport> {
    let contents = dir_contents(to.dir)?;
    if let Some(f) = contents.foreign.first() {
        bail!(
            "{} is not a redsnap data directory (it holds {}): restore into an empty directory or a redsnap data directory",
            to.dir.display(),
            f.display()
        );
    }
    let dir = DataDir::open(to.dir).with_context(|| to.dir.display().to_string())?;
    let snaps = SnapshotStore::open(&dir)?;
    let current = snaps.current()?;
    let gens = redsnap_persist::aof::list_generations(dir.path())?;
    if (current.as_ref().is_some_and(|m| m.keys > 0) || !gens.is_empty()) && !to.replace {
        let what = match &current {
            Some(m) => format!("a snapshot of {} keys", m.keys),
            None => "no snapshot".to_string(),
        };
        bail!(
            "the data directory {} already holds data ({what}, {} append log file(s)); refusing to overwrite it (restore --replace replaces it)",
            to.dir.display(),
            gens.len()
        );
    }
    let mut store = Store::new(EngineConfig {
        databases: to.databases,
        ..EngineConfig::default()
    });
    let (reader, len) = open_rdb(file, opts.skip_unsupported)?;
    let pb = progress(len, "reading");
    let loaded = load_into(
        reader,
        &mut store,
        &LoadRdbOptions {
            db: opts.db,
            skip_functions: opts.skip_unsupported,
            now_ms: redsnap_engine::now_ms(),
        },
        |offset| pb.set_position(offset),
    )
    .with_context(|| file.display().to_string())?;
    pb.finish_and_clear();
    let report = RestoreReport {
        keys_restored: loaded.keys,
        expired_skipped: loaded.expired_skipped,
        other_db_skipped: loaded.other_db_skipped,
        unsupported_skipped: loaded.unsupported_skipped,
        empty_skipped: loaded.empty_skipped,
        functions_loaded: loaded.functions,
        functions_skipped: loaded.functions_skipped,
        existing: 0,
    };
    // The snapshot covers every log generation on disk: the next start replays none
    // of them (and deletes them).
    let covered = gens
        .last()
        .map_or(0, |(g, _)| *g)
        .max(current.map_or(0, |m| m.log_gen));
    snaps
        .write(store.dataset(), covered)
        .with_context(|| format!("writing the snapshot in {}", to.dir.display()))?;
    Ok(report)
}

/// Prints a report for people.
pub fn print_report(r: &RestoreReport, dest: &str) {
    println!("restored {} keys into {dest}", r.keys_restored);
    let mut skipped = Vec::new();
    for (n, what) in [
        (r.expired_skipped, "already expired"),
        (r.other_db_skipped, "in other databases"),
        (r.unsupported_skipped, "of unsupported types"),
        (r.empty_skipped, "empty collections"),
    ] {
        if n > 0 {
            skipped.push(format!("{n} {what}"));
        }
    }
    if !skipped.is_empty() {
        println!("skipped: {}", skipped.join(", "));
    }
    if r.functions_loaded + r.functions_skipped > 0 {
        println!(
            "function libraries: {} loaded, {} skipped",
            r.functions_loaded, r.functions_skipped
        );
    }
}
