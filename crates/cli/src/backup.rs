//! `redsnap backup --from URL --to FILE|DIR [--keep N] [--method auto|sync|scan]`.
//!
//! * `sync`: the replication handshake (`REPLCONF capa eof`, `REPLCONF rdb-only 1`,
//!   `SYNC`), as `redis-cli --rdb` does: the source sends one RDB file of one point
//!   in time, as `$<length>` or as the diskless `$EOF:<mark>` form, and the
//!   connection is closed right after it.
//! * `scan`: for a source that refuses SYNC (managed services: no `+sync`/`+psync`
//!   permission, or the commands renamed away): per database, SCAN, then pipelined
//!   DUMP and PTTL per batch, written as an RDB file of version 10; FUNCTION DUMP
//!   for the libraries. Keys are read a batch at a time while the source keeps
//!   running, so the file is not one point in time (the manifest says so).
//! * `auto` (the default) tries `sync` and falls back to `scan` when the source
//!   refuses SYNC with an error reply.
//!
//! The file is written to a temporary name in the target directory while it is
//! hashed (SHA-256), fsynced, then read back whole (every value decoded, the CRC-64
//! compared, keys counted) and only then renamed into place beside its manifest
//! (the directory fsynced). Into a directory, older backups beyond `--keep` are
//! deleted once the new one is in place.

use crate::client::{Client, Reply, Target};
use crate::manifest::{self, Hashing, Manifest, MANIFEST_SUFFIX};
use anyhow::{anyhow, bail, Context, Result};
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use redsnap_persist::rdbfile::{
    default_aux, function_dump_libraries, show_key, DumpPayload, RdbWriter, ReadOptions,
    WRITE_VERSION,
};
use std::collections::HashSet;
use std::fs::File;
use std::hash::{BuildHasher, RandomState};
use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

/// How the backup is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// SYNC, falling back to SCAN when the source refuses it.
    Auto,
    /// The replication handshake: one point in time.
    Sync,
    /// SCAN + DUMP + PTTL: not one point in time.
    Scan,
}

/// The backup's file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Redis's RDB file, which any Redis, redsnap and `redis-check-rdb` read.
    Rdb,
}

pub struct BackupOpts {
    pub from: String,
    pub to: PathBuf,
    pub keep: Option<usize>,
    pub method: Method,
}

/// What a backup did.
pub struct Outcome {
    pub path: PathBuf,
    pub manifest_path: PathBuf,
    pub manifest: Manifest,
    /// Older backup files deleted by `--keep`.
    pub removed: Vec<PathBuf>,
}

/// The source answered SYNC with an error (its text).
#[derive(Debug)]
struct SyncRefused(String);

impl std::fmt::Display for SyncRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the source refused SYNC: {}", self.0)
    }
}

impl std::error::Error for SyncRefused {}

/// A file written and fsynced, with what was written.
struct Written {
    method: &'static str,
    point_in_time: bool,
    sha256: String,
    notes: Vec<String>,
    /// What the file holds, when it was read as it was received (sync); otherwise
    /// the file is read back before it is kept.
    contents: Option<manifest::RdbContents>,
}

/// Reads chunks sent over a channel (the bytes a [`Tee`] passes on); the end of the
/// channel is the end of the stream.
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.recv() {
                Ok(b) => {
                    self.buf = b;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Writes to the file and passes a copy to the checking thread (which may have
/// stopped at damage: then only the file is written, and the check's error wins).
struct Tee<'a, W: Write> {
    file: &'a mut W,
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
}

impl<W: Write> Write for Tee<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write_all(buf)?;
        if let Some(tx) = &self.tx {
            if tx.send(buf.to_vec()).is_err() {
                self.tx = None;
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// The mark of the diskless form (`$EOF:<40 bytes>`), Redis's `RDB_EOF_MARK_SIZE`.
const EOF_MARK_SIZE: usize = 40;
/// Keys asked per SCAN call.
const SCAN_COUNT: &[u8] = b"1000";

/// A progress bar on stderr when it is a terminal (keys and bytes), else nothing.
struct Progress(ProgressBar);

impl Progress {
    fn new() -> Progress {
        Progress(ProgressBar::hidden())
    }

    /// Sets the template; the bar is drawn (on a terminal) from the first phase on.
    fn style(&self, template: &str) {
        if let Ok(s) = ProgressStyle::with_template(template) {
            self.0.set_style(s.progress_chars("=> "));
        }
        if self.0.is_hidden() && std::io::stderr().is_terminal() {
            self.0.set_draw_target(ProgressDrawTarget::stderr());
        }
    }

    /// Bytes received, of `total` when known.
    fn bytes_phase(&self, msg: &str, total: Option<u64>) {
        self.0.set_message(msg.to_string());
        self.0.set_prefix("");
        self.0.set_length(total.unwrap_or(0));
        self.0.set_position(0);
        self.style(match total {
            Some(_) => "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            None => "{spinner} {msg} {bytes} ({bytes_per_sec})",
        });
    }

    /// Keys (of `total` when known) and bytes.
    fn keys_phase(&self, msg: &str, total: Option<u64>) {
        self.0.set_message(msg.to_string());
        self.0.set_prefix("");
        self.0.set_length(total.unwrap_or(0));
        self.0.set_position(0);
        self.style(match total {
            Some(_) => "{msg} [{bar:30}] {pos}/{len} keys, {prefix} ({eta})",
            None => "{spinner} {msg} {pos} keys, {prefix}",
        });
    }

    fn keys_bytes(&self, keys: u64, bytes: u64) {
        self.0.set_position(keys);
        self.0.set_prefix(HumanBytes(bytes).to_string());
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// Files removed on drop unless the backup completed.
struct TempFiles(Vec<PathBuf>);

impl Drop for TempFiles {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing the directory {}", dir.display()))
}

/// Where the backup goes: a directory (named by time, rotated) or a file.
enum Dest {
    Dir(PathBuf),
    File(PathBuf),
}

fn destination(to: &Path, keep: Option<usize>) -> Result<Dest> {
    let dir_like = to.is_dir() || to.as_os_str().to_string_lossy().ends_with('/');
    if keep == Some(0) {
        bail!("--keep must be at least 1");
    }
    if dir_like || keep.is_some() {
        if to.exists() && !to.is_dir() {
            bail!(
                "{} is a file: --keep rotates backups in a directory",
                to.display()
            );
        }
        std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
        return Ok(Dest::Dir(to.to_path_buf()));
    }
    let parent = match to.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        bail!(
            "{}: the directory {} does not exist",
            to.display(),
            parent.display()
        );
    }
    Ok(Dest::File(to.to_path_buf()))
}

/// A name for a backup starting now that no file in `dir` has. Names have a
/// resolution of one second: a second backup within the same second waits for the
/// next one.
fn fresh_name(dir: &Path) -> (String, u64) {
    loop {
        let now = redsnap_engine::now_ms();
        let name = manifest::backup_name(now);
        let path = dir.join(&name);
        if !path.exists() && !manifest::manifest_path(&path).exists() {
            return (name, now);
        }
        std::thread::sleep(std::time::Duration::from_millis(1001 - now % 1000));
    }
}

pub fn run(opts: &BackupOpts) -> Result<Outcome> {
    let target = Target::parse(&opts.from)?;
    let source = target.url_without_password();
    let dest = destination(&opts.to, opts.keep)?;
    let (dir, name, started) = match &dest {
        Dest::Dir(d) => {
            let (name, started) = fresh_name(d);
            (d.clone(), name, started)
        }
        Dest::File(f) => {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .context("the backup file needs a name")?;
            let dir = match f.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            (dir, name, redsnap_engine::now_ms())
        }
    };
    let path = dir.join(&name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let mtmp = dir.join(format!(".{name}{MANIFEST_SUFFIX}.tmp"));
    let mut temps = TempFiles(vec![tmp.clone(), mtmp.clone()]);
    let progress = Progress::new();

    let written = match opts.method {
        Method::Sync => sync_method(&target, &tmp, &progress)?,
        Method::Scan => scan_method(&target, &tmp, &progress)?,
        Method::Auto => match sync_method(&target, &tmp, &progress) {
            Ok(w) => w,
            Err(e) => match e.downcast_ref::<SyncRefused>() {
                Some(SyncRefused(why)) => {
                    eprintln!(
                        "{} refused SYNC ({why}); falling back to --method scan (SCAN + DUMP + PTTL: not one point in time)",
                        target.display()
                    );
                    scan_method(&target, &tmp, &progress)?
                }
                None => return Err(e),
            },
        },
    };

    // Checked whole before it is kept: as it arrived (sync), or read back.
    let contents = match written.contents {
        Some(c) => c,
        None => {
            progress.keys_phase("checking", None);
            manifest::read_rdb(&tmp, |k, b| progress.keys_bytes(k, b)).with_context(|| {
                format!("the backup received from {source} is damaged; nothing was kept")
            })?
        }
    };
    if contents.sha256 != written.sha256 {
        bail!(
            "{}: the file read back (SHA-256 {}) is not what was written ({}); nothing was kept",
            tmp.display(),
            contents.sha256,
            written.sha256
        );
    }
    if contents.trailing_bytes > 0 {
        bail!(
            "the backup received from {source} has {} bytes after the RDB's end; nothing was kept",
            contents.trailing_bytes
        );
    }
    let mut notes = written.notes;
    if contents.skipped_empty > 0 {
        notes.push(format!(
            "{} empty collections in the file (Redis skips them when loading)",
            contents.skipped_empty
        ));
    }
    let m = Manifest {
        manifest_format: manifest::MANIFEST_FORMAT,
        redsnap_version: env!("CARGO_PKG_VERSION").to_string(),
        source,
        method: written.method.to_string(),
        point_in_time: written.point_in_time,
        started: manifest::rfc3339_ms(started),
        finished: manifest::rfc3339_ms(redsnap_engine::now_ms()),
        file: name,
        bytes: contents.bytes,
        sha256: contents.sha256,
        rdb_version: contents.version,
        keys: contents.keys,
        expiring_keys: contents.expiring_keys,
        functions: contents.functions,
        types: contents.types,
        databases: contents.databases,
        notes,
    };
    {
        let mut f = File::create(&mtmp).with_context(|| format!("creating {}", mtmp.display()))?;
        serde_json::to_writer_pretty(&mut f, &m)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
    }
    let mpath = manifest::manifest_path(&path);
    if let Dest::File(_) = dest {
        // The old manifest goes first: a new file beside the old manifest would read
        // as damaged.
        match std::fs::remove_file(&mpath) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", mpath.display())),
        }
    }
    std::fs::rename(&tmp, &path).with_context(|| format!("renaming to {}", path.display()))?;
    std::fs::rename(&mtmp, &mpath).with_context(|| format!("renaming to {}", mpath.display()))?;
    temps.0.clear();
    fsync_dir(&dir)?;
    let removed = match opts.keep {
        Some(keep) => rotate(&dir, keep)?,
        None => Vec::new(),
    };
    Ok(Outcome {
        path,
        manifest_path: mpath,
        manifest: m,
        removed,
    })
}

/// Deletes the backups (and stray manifests) older than the newest `keep` complete
/// ones (with a manifest).
fn rotate(dir: &Path, keep: usize) -> Result<Vec<PathBuf>> {
    let (entries, orphans) = manifest::list_backups(dir)?;
    let complete: Vec<&manifest::BackupEntry> =
        entries.iter().filter(|e| e.manifest.is_some()).collect();
    if complete.len() <= keep {
        return Ok(Vec::new());
    }
    let oldest_kept = complete[complete.len() - keep].rdb.clone();
    let mut doomed: Vec<PathBuf> = Vec::new();
    for e in &entries {
        if e.rdb < oldest_kept {
            doomed.push(e.rdb.clone());
            doomed.extend(e.manifest.clone());
        }
    }
    let oldest_manifest = manifest::manifest_path(&oldest_kept);
    doomed.extend(orphans.into_iter().filter(|o| *o < oldest_manifest));
    for p in &doomed {
        std::fs::remove_file(p).with_context(|| format!("removing {}", p.display()))?;
    }
    fsync_dir(dir)?;
    Ok(doomed)
}

fn create(tmp: &Path) -> Result<Hashing<File>> {
    let f = File::create(tmp).with_context(|| format!("creating {}", tmp.display()))?;
    Ok(Hashing::new(f))
}

fn finish_file(mut out: Hashing<File>, tmp: &Path) -> Result<String> {
    out.flush()?;
    out.inner
        .sync_all()
        .with_context(|| format!("syncing {}", tmp.display()))?;
    Ok(out.hex())
}

/// The replication handshake: the source's RDB file into `tmp`.
fn sync_method(t: &Target, tmp: &Path, p: &Progress) -> Result<Written> {
    let mut c = Client::connect(t)?;
    // Both are optional: a server that does not know them still sends the file.
    // `capa eof` lets Redis send it without writing it to its disk first;
    // `rdb-only` tells it no command stream will be read after the file.
    for args in [
        [&b"REPLCONF"[..], b"capa", b"eof"],
        [&b"REPLCONF"[..], b"rdb-only", b"1"],
    ] {
        let _ = c.call(&args)?;
    }
    c.send(&[b"SYNC"])?;
    c.flush()?;
    let mut line = c.sync_line()?;
    while line.starts_with(b"+FULLRESYNC") {
        line = c.sync_line()?;
    }
    if let Some(err) = line.strip_prefix(b"-") {
        return Err(SyncRefused(String::from_utf8_lossy(err).into_owned()).into());
    }
    let Some(rest) = line.strip_prefix(b"$") else {
        bail!(
            "{}: unexpected reply to SYNC: {:?}",
            t.display(),
            String::from_utf8_lossy(&line)
        );
    };
    let mut out = create(tmp)?;
    // The file is checked (decoded, CRC-64, SHA-256) by a second thread as it
    // arrives, rather than read back afterwards: one pass instead of two.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(64);
    let checker = std::thread::spawn({
        let tmp = tmp.to_path_buf();
        move || {
            let r = ChannelReader {
                rx,
                buf: Vec::new(),
                pos: 0,
            };
            manifest::read_rdb_from(r, &tmp, |_, _| {})
        }
    });
    let mut tee = Tee {
        file: &mut out,
        tx: Some(tx),
    };
    let received = receive(&mut c, t, rest, &line, &mut tee, p);
    drop(tee);
    let checked = checker
        .join()
        .map_err(|_| anyhow!("the thread checking the backup panicked"))?;
    received?;
    let contents = checked.with_context(|| {
        format!(
            "the backup received from {} is damaged; nothing was kept",
            t.url_without_password()
        )
    })?;
    // Close right after the payload: the command stream that follows is not read.
    drop(c);
    Ok(Written {
        method: "sync",
        point_in_time: true,
        sha256: finish_file(out, tmp)?,
        notes: Vec::new(),
        contents: Some(contents),
    })
}

/// The payload of SYNC's reply (`rest` is the reply line after `$`) into `out`.
fn receive(
    c: &mut Client,
    t: &Target,
    rest: &[u8],
    line: &[u8],
    out: &mut impl Write,
    p: &Progress,
) -> Result<()> {
    if let Some(mark) = rest.strip_prefix(b"EOF:") {
        let Some(mark) = mark.get(..EOF_MARK_SIZE) else {
            bail!("{}: SYNC's end mark is too short", t.display());
        };
        p.bytes_phase("receiving", None);
        copy_until_mark(c.raw_reader(), out, mark, p)
            .with_context(|| format!("receiving the RDB file from {}", t.display()))?;
    } else {
        let len: u64 = std::str::from_utf8(rest)
            .ok()
            .and_then(|s| s.parse().ok())
            .with_context(|| {
                format!(
                    "{}: bad length in the reply to SYNC: {:?}",
                    t.display(),
                    String::from_utf8_lossy(line)
                )
            })?;
        p.bytes_phase("receiving", Some(len));
        copy_exact(c.raw_reader(), out, len, p)
            .with_context(|| format!("receiving the RDB file from {}", t.display()))?;
    }
    Ok(())
}

fn copy_exact(r: &mut impl Read, out: &mut impl Write, len: u64, p: &Progress) -> Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = r.read(&mut buf[..want])?;
        if n == 0 {
            bail!("the connection closed after {} of {len} bytes", len - left);
        }
        out.write_all(&buf[..n])?;
        left -= n as u64;
        p.0.set_position(len - left);
    }
    Ok(())
}

/// The diskless form: everything up to the 40-byte mark that ends it. The last
/// bytes received are held back until more arrive, since the mark may be split
/// across reads.
fn copy_until_mark(
    r: &mut impl BufRead,
    out: &mut impl Write,
    mark: &[u8],
    p: &Progress,
) -> Result<()> {
    let mut pending: Vec<u8> = Vec::with_capacity(128 * 1024);
    let mut total = 0u64;
    loop {
        let chunk = r.fill_buf()?;
        if chunk.is_empty() {
            bail!("the connection closed before the end mark, after {total} bytes");
        }
        let n = chunk.len();
        pending.extend_from_slice(chunk);
        r.consume(n);
        if let Some(at) = pending.windows(mark.len()).position(|w| w == mark) {
            out.write_all(&pending[..at])?;
            p.0.set_position(total + at as u64);
            return Ok(());
        }
        let flush = pending.len().saturating_sub(mark.len() - 1);
        out.write_all(&pending[..flush])?;
        pending.drain(..flush);
        total += flush as u64;
        p.0.set_position(total);
    }
}

/// The source's databases: `CONFIG GET databases`, else those `INFO keyspace`
/// lists, else database 0.
fn databases(c: &mut Client) -> Result<Vec<u64>> {
    if let Reply::Array(Some(v)) = c.call(&[b"CONFIG", b"GET", b"databases"])? {
        if let Some(Reply::Bulk(Some(n))) = v.get(1) {
            if let Some(n) = std::str::from_utf8(n)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
            {
                return Ok((0..n.min(1 << 20)).collect());
            }
        }
    }
    if let Reply::Bulk(Some(info)) = c.call(&[b"INFO", b"keyspace"])? {
        let text = String::from_utf8_lossy(&info);
        return Ok(text
            .lines()
            .filter_map(|l| l.strip_prefix("db")?.split(':').next()?.parse().ok())
            .collect());
    }
    Ok(vec![0])
}

#[derive(Default)]
struct ScanStats {
    vanished: u64,
    converted: u64,
}

/// SCAN + DUMP + PTTL into an RDB file of version 10.
fn scan_method(t: &Target, tmp: &Path, p: &Progress) -> Result<Written> {
    let mut c = Client::connect(t)?;
    let mut notes = vec![
        "not one point in time: keys were read by SCAN, then DUMP and PTTL, a batch at a time while the source kept running".to_string(),
    ];
    let aux: Vec<(String, String)> = default_aux(0)
        .into_iter()
        .filter(|(k, _)| k != "used-mem")
        .collect();
    let mut w = RdbWriter::new(create(tmp)?, &aux)?;
    // Function libraries first, where Redis writes them.
    match c.call(&[b"FUNCTION", b"DUMP"])? {
        Reply::Bulk(Some(payload)) => {
            let libs = function_dump_libraries(&payload)
                .map_err(|e| anyhow!("{}: FUNCTION DUMP: {e}", t.display()))?;
            for code in libs {
                w.write_function(&code)?;
            }
        }
        Reply::Error(e) => {
            let note = format!("function libraries were not backed up: FUNCTION DUMP answered {e}");
            eprintln!("note: {note}");
            notes.push(note);
        }
        other => bail!(
            "{}: unexpected reply to FUNCTION DUMP: {other:?}",
            t.display()
        ),
    }
    let mut nonempty = Vec::new();
    let mut total = 0u64;
    for db in databases(&mut c)? {
        c.ok(&[b"SELECT", db.to_string().as_bytes()])?;
        if let Reply::Int(n) = c.ok(&[b"DBSIZE"])? {
            if n > 0 {
                nonempty.push(db);
                total += n as u64;
            }
        }
    }
    p.keys_phase("backing up", Some(total));
    let mut stats = ScanStats::default();
    for db in nonempty {
        c.ok(&[b"SELECT", db.to_string().as_bytes()])?;
        scan_db(&mut c, &mut w, db, &mut stats, p)
            .with_context(|| format!("{}: backing up db {db}", t.display()))?;
    }
    if stats.vanished > 0 {
        notes.push(format!(
            "{} keys were deleted or expired between SCAN and DUMP (not in the file)",
            stats.vanished
        ));
    }
    if stats.converted > 0 {
        notes.push(format!(
            "{} values came in a newer RDB version than {WRITE_VERSION} and were re-encoded",
            stats.converted
        ));
    }
    let (out, _) = w.finish()?;
    Ok(Written {
        method: "scan",
        point_in_time: false,
        sha256: finish_file(out, tmp)?,
        notes,
        contents: None,
    })
}

/// One SCAN reply: the next cursor and the keys.
fn scan_reply(r: Reply) -> Result<(Vec<u8>, Vec<Vec<u8>>)> {
    if let Reply::Array(Some(mut parts)) = r {
        if parts.len() == 2 {
            if let (Reply::Array(Some(keys)), Reply::Bulk(Some(cursor))) =
                (parts.remove(1), parts.remove(0))
            {
                let keys = keys
                    .into_iter()
                    .map(|k| match k {
                        Reply::Bulk(Some(k)) => Ok(k),
                        other => Err(anyhow!("SCAN returned a key {other:?}")),
                    })
                    .collect::<Result<_>>()?;
                return Ok((cursor, keys));
            }
        }
    }
    bail!("unexpected reply to SCAN")
}

fn scan_db(
    c: &mut Client,
    w: &mut RdbWriter<Hashing<File>>,
    db: u64,
    stats: &mut ScanStats,
    p: &Progress,
) -> Result<()> {
    // SCAN may return a key more than once; an RDB file must not hold it twice.
    // Keys seen are kept as 128-bit keyed hashes (16 bytes each, not the key): two
    // keys of one database colliding is out of reach (about n^2 / 2^129).
    let hashers = (RandomState::new(), RandomState::new());
    let mut seen: HashSet<u128> = HashSet::new();
    let mut cursor = b"0".to_vec();
    loop {
        let (next, keys) = scan_reply(c.ok(&[b"SCAN", &cursor, b"COUNT", SCAN_COUNT])?)?;
        let keys: Vec<Vec<u8>> = keys
            .into_iter()
            .filter(|k| {
                let h =
                    (u128::from(hashers.0.hash_one(k)) << 64) | u128::from(hashers.1.hash_one(k));
                seen.insert(h)
            })
            .collect();
        // PTTL is relative: the deadline counts from before it was sent.
        let sent_at = redsnap_engine::now_ms();
        for k in &keys {
            c.send(&[b"DUMP", k])?;
            c.send(&[b"PTTL", k])?;
        }
        for k in keys {
            let dump = c.read_reply()?;
            let ttl = c.read_reply()?;
            match (dump, ttl) {
                (Reply::Error(e), _) => bail!("DUMP {} answered {e}", show_key(&k)),
                (_, Reply::Error(e)) => bail!("PTTL {} answered {e}", show_key(&k)),
                (Reply::Bulk(None), _) | (_, Reply::Int(-2)) => stats.vanished += 1,
                (Reply::Bulk(Some(payload)), Reply::Int(ttl)) => {
                    let expire = u64::try_from(ttl).ok().map(|t| sent_at + t);
                    write_payload(w, db, &k, &payload, expire, stats)?;
                }
                (d, t) => bail!(
                    "unexpected replies to DUMP and PTTL {}: {d:?}, {t:?}",
                    show_key(&k)
                ),
            }
        }
        p.keys_bytes(w.keys(), w.bytes());
        if next == b"0" {
            return Ok(());
        }
        cursor = next;
    }
}

/// A DUMP payload into the file: as it is when its RDB version is the writer's or
/// older, else decoded and written again in the writer's encodings.
fn write_payload(
    w: &mut RdbWriter<Hashing<File>>,
    db: u64,
    key: &[u8],
    payload: &[u8],
    expire: Option<u64>,
    stats: &mut ScanStats,
) -> Result<()> {
    let dp = DumpPayload::parse(payload)
        .map_err(|e| anyhow!("the DUMP payload of key {} is damaged: {e}", show_key(key)))?;
    if u32::from(dp.version) <= WRITE_VERSION {
        w.write_encoded_key(db, key, dp.rdb_type, dp.body, expire)?;
    } else {
        let v = dp.decode(ReadOptions::default().value_limit).map_err(|e| {
            anyhow!(
                "key {}: its DUMP payload is of RDB version {}, newer than the {WRITE_VERSION} a backup is written in, and cannot be converted: {e}",
                show_key(key),
                dp.version
            )
        })?;
        w.write_key(db, key, &v, expire)?;
        stats.converted += 1;
    }
    Ok(())
}

/// Prints what a backup did, for people.
pub fn print_outcome(o: &Outcome) {
    let m = &o.manifest;
    println!(
        "backed up {} keys in {} databases ({} function libraries) from {} to {}",
        m.keys,
        m.databases.len(),
        m.functions,
        m.source,
        o.path.display()
    );
    println!(
        "  {} bytes, RDB version {}, SHA-256 {}",
        m.bytes, m.rdb_version, m.sha256
    );
    println!(
        "  method {} ({}), manifest {}",
        m.method,
        if m.point_in_time {
            "one point in time"
        } else {
            "not one point in time"
        },
        o.manifest_path.display()
    );
    for n in &m.notes {
        println!("  note: {n}");
    }
    for r in &o.removed {
        println!("removed {} (--keep)", r.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_mark_is_found_across_reads() {
        let mark = b"0123456789abcdef0123456789abcdef01234567";
        let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for chunk in [1usize, 7, 39, 40, 41, 4096] {
            let mut stream = payload.clone();
            stream.extend_from_slice(mark);
            stream.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
            let mut r = std::io::BufReader::with_capacity(chunk, &stream[..]);
            let mut out = Vec::new();
            copy_until_mark(&mut r, &mut out, mark, &Progress(ProgressBar::hidden())).unwrap();
            assert_eq!(out, payload, "chunk {chunk}");
        }
        let mut r = std::io::BufReader::new(&payload[..]);
        let err = copy_until_mark(
            &mut r,
            &mut Vec::new(),
            mark,
            &Progress(ProgressBar::hidden()),
        );
        assert!(err.is_err());
    }

    fn payload(ty: u8, body: &[u8], version: u16) -> Vec<u8> {
        let mut p = vec![ty];
        p.extend_from_slice(body);
        p.extend_from_slice(&version.to_le_bytes());
        let crc = redsnap_persist::rdbfile::crc64::crc64(&p);
        p.extend_from_slice(&crc.to_le_bytes());
        p
    }

    /// Payloads of the writer's version are copied; newer ones (Redis 7.2's set
    /// listpack, RDB 11) are re-encoded; the file reads back as version 10.
    #[test]
    fn newer_payloads_are_re_encoded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.rdb");
        let mut w = RdbWriter::new(create(&path).unwrap(), &[]).unwrap();
        let mut stats = ScanStats::default();
        // listpack: total, count, entries "a" and 7, end.
        let mut lp = vec![0x81, b'a', 0x02, 0x07, 0x01, 0xff];
        let mut blob = ((6 + lp.len()) as u32).to_le_bytes().to_vec();
        blob.extend_from_slice(&2u16.to_le_bytes());
        blob.append(&mut lp);
        let mut body = Vec::new();
        redsnap_engine::rdb::write_len(&mut body, blob.len() as u64);
        body.extend_from_slice(&blob);
        write_payload(&mut w, 0, b"s", &payload(20, &body, 11), None, &mut stats).unwrap();
        let str_body = redsnap_engine::rdb::encode_value(&redsnap_engine::Value::Str(
            bytes::Bytes::from_static(b"v"),
        ));
        write_payload(
            &mut w,
            1,
            b"k",
            &payload(0, &str_body, 9),
            Some(4_000_000_000_000),
            &mut stats,
        )
        .unwrap();
        assert_eq!(stats.converted, 1);
        // A damaged payload, and a type that cannot be converted.
        let mut bad = payload(0, &str_body, 9);
        bad[1] ^= 1;
        assert!(write_payload(&mut w, 1, b"x", &bad, None, &mut stats).is_err());
        let e = write_payload(&mut w, 1, b"x", &payload(21, b"\x00", 11), None, &mut stats);
        assert!(format!("{:#}", e.unwrap_err()).contains("RDB version 11"));
        let (out, _) = w.finish().unwrap();
        finish_file(out, &path).unwrap();
        let c = manifest::read_rdb(&path, |_, _| {}).unwrap();
        assert_eq!((c.version, c.keys, c.expiring_keys), (10, 2, 1));
        assert_eq!(c.types["set"], 1);
        assert_eq!(c.databases[&1].types["string"], 1);
    }

    #[test]
    fn exact_copies_stop_at_the_length() {
        let data = vec![7u8; 1000];
        let mut out = Vec::new();
        copy_exact(
            &mut &data[..],
            &mut out,
            600,
            &Progress(ProgressBar::hidden()),
        )
        .unwrap();
        assert_eq!(out.len(), 600);
        assert!(copy_exact(
            &mut &data[..],
            &mut Vec::new(),
            2000,
            &Progress(ProgressBar::hidden())
        )
        .is_err());
    }
}
