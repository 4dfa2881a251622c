//! The append log's file work: writing staged frames, closing a generation and
//! starting the next (in log order), fsyncs with their test faults, the durable
//! accounting, and the syncer thread. Called with the locks named in `Inner`'s docs.

use super::{
    encode_header, log_file_name, FileState, FsyncFault, FsyncPolicy, Inner, Segment, LOG_HEADER,
    PENDING_SUFFIX,
};
use crate::datadir::sync_dir;
use crate::error::{PersistError, Result};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) fn create_generation(dir: &Path, gen: u64, pending: bool) -> Result<(File, PathBuf)> {
    let mut name = log_file_name(gen);
    if pending {
        name.push_str(PENDING_SUFFIX);
    }
    let path = dir.join(name);
    let mut f = OpenOptions::new()
        .create_new(true)
        .append(true)
        .read(true)
        .open(&path)
        .map_err(|e| PersistError::io("create append log", &path, e))?;
    f.write_all(&encode_header(gen))
        .and_then(|_| f.sync_all())
        .map_err(|e| {
            let _ = std::fs::remove_file(&path);
            PersistError::io("write append log header to", &path, e)
        })?;
    sync_dir(dir)?;
    Ok((f, path))
}

/// Wakes the syncer (taking its mutex, so the wakeup cannot fall between its check
/// and its wait).
pub(super) fn kick(inner: &Inner) {
    let _s = inner.sync.lock();
    inner.kick.notify_all();
}

/// Puts segments that could not be written back in front of those staged since.
pub(super) fn restage(inner: &Inner, mut segs: VecDeque<Segment>) {
    let mut s = inner.stage.lock();
    segs.extend(std::mem::take(&mut s.segments));
    s.segments = segs;
}

/// Writes the staged segments in order, closing and creating generations on the way.
pub(super) fn write_staged_locked(inner: &Inner, f: &mut FileState) -> Result<u64> {
    let mut segs = std::mem::take(&mut inner.stage.lock().segments);
    if segs.is_empty() {
        return Ok(f.written_token);
    }
    while let Some(seg) = segs.pop_front() {
        if seg.gen > f.gen {
            if let Err(e) = advance(inner, f, seg.gen) {
                segs.push_front(seg);
                restage(inner, segs);
                return Err(e);
            }
        }
        let res = if inner.inject_write_error.load(Ordering::SeqCst) {
            let half = seg.bytes.len() / 2;
            (&*f.file).write_all(&seg.bytes[..half]).and_then(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    "No space left on device (injected)",
                ))
            })
        } else {
            (&*f.file).write_all(&seg.bytes)
        };
        if let Err(e) = res {
            {
                let mut m = inner.meta.lock();
                m.last_write_ok = false;
                m.last_write_error = Some(e.to_string());
                m.write_errors += 1;
            }
            tracing::error!(file = %f.path.display(), error = %e, "append log write failed");
            // Undo a short write so the file never holds a partial frame mid-log.
            if let Err(te) = f.file.set_len(f.file_len) {
                let detail = format!(
                    "write failed ({e}) and truncating back to {} failed ({te})",
                    f.file_len
                );
                tracing::error!(file = %f.path.display(), "{detail}; refusing further appends");
                mark_broken(inner, detail);
            }
            segs.push_front(seg);
            restage(inner, segs);
            return Err(PersistError::io("append to", f.path.clone(), e));
        }
        let n = seg.bytes.len() as u64;
        f.file_len += n;
        f.written_token = seg.last_token;
        {
            let mut m = inner.meta.lock();
            m.file_len = f.file_len;
            *m.gens.entry(f.gen).or_insert(0) += n;
            m.last_write_ok = true;
            m.last_write_error = None;
            m.written = seg.last_token;
            // One clock read per fsync interval, not per write.
            if m.unsynced_since_ms.is_none() {
                m.unsynced_since_ms = Some(epoch_ms());
            }
        }
        inner.written_token.store(seg.last_token, Ordering::SeqCst);
    }
    if FsyncPolicy::from_u8(inner.policy.load(Ordering::SeqCst)) == FsyncPolicy::Always {
        kick(inner);
    }
    Ok(f.written_token)
}

/// If a rotation is pending with nothing staged for the new generation, does its
/// file work now (call after `write_staged_locked`).
pub(super) fn catch_up_rotation(inner: &Inner, f: &mut FileState) -> Result<()> {
    let target = inner.stage.lock().gen;
    if target > f.gen {
        write_staged_locked(inner, f)?;
        advance(inner, f, target)?;
    }
    Ok(())
}

/// Closes the file being written and starts the generations up to `target`, in log
/// order: fsync the closed file (its records become durable), then create the next.
pub(super) fn advance(inner: &Inner, f: &mut FileState, target: u64) -> Result<()> {
    while f.gen < target {
        if f.pending {
            return Err(PersistError::LogBroken {
                path: f.path.clone(),
                detail: "cannot rotate a log that is not started yet".into(),
            });
        }
        if let Err(e) = fsync_file(inner, &f.file, f.gen) {
            let msg = e.to_string();
            complete_sync(inner, f.written_token, Err(msg.clone()));
            return Err(PersistError::LogBroken {
                path: f.path.clone(),
                detail: format!("fsync failed: {msg}"),
            });
        }
        complete_sync(inner, f.written_token, Ok(()));
        let (file, path) = create_generation(&inner.dir, f.gen + 1, false)?;
        f.file = Arc::new(file);
        f.gen += 1;
        f.path = path;
        f.file_len = LOG_HEADER as u64;
        let g = f.gen;
        {
            let mut m = inner.meta.lock();
            m.gen = g;
            m.file_len = LOG_HEADER as u64;
            m.gens.insert(g, LOG_HEADER as u64);
        }
        inner.file_gen.store(g, Ordering::SeqCst);
        tracing::debug!(generation = g, "append log generation started");
    }
    Ok(())
}

fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// fsyncs a file of generation `gen`, honouring an injected fault.
pub(super) fn fsync_file(inner: &Inner, file: &File, gen: u64) -> std::io::Result<()> {
    let started = std::time::Instant::now();
    {
        let mut fault = inner.fault.lock();
        loop {
            match *fault {
                Some((g, FsyncFault::Fail)) if g == gen => {
                    return Err(std::io::Error::other("Input/output error (injected)"));
                }
                Some((g, FsyncFault::Stall)) if g == gen && !inner.stop.load(Ordering::SeqCst) => {
                    inner
                        .fault_cleared
                        .wait_for(&mut fault, Duration::from_millis(50));
                }
                _ => break,
            }
        }
    }
    let res = file.sync_data();
    let ms = started.elapsed().as_millis() as u64;
    inner.slowest_fsync_ms.fetch_max(ms, Ordering::Relaxed);
    res
}

pub(super) fn mark_broken(inner: &Inner, detail: String) {
    let mut s = inner.sync.lock();
    if s.broken.is_none() {
        s.broken = Some(detail.clone());
        inner.broken.store(true, Ordering::SeqCst);
        for (_, tx) in std::mem::take(&mut s.waiters) {
            let _ = tx.send(Err(detail.clone()));
        }
    }
    inner.synced.notify_all();
}

/// Records the outcome of an fsync that covered every token `<= token`.
pub(super) fn complete_sync(inner: &Inner, token: u64, res: std::result::Result<(), String>) {
    match res {
        Ok(()) => {
            let mut s = inner.sync.lock();
            // After a failed fsync nothing more is reported durable: the kernel may
            // have dropped pages of the file that failed.
            if s.broken.is_some() {
                return;
            }
            s.fsyncs += 1;
            if token > s.durable {
                s.durable = token;
                inner.durable_token.store(token, Ordering::SeqCst);
            }
            let durable = s.durable;
            let waiters = std::mem::take(&mut s.waiters);
            for (w, tx) in waiters {
                if w <= durable {
                    let _ = tx.send(Ok(()));
                } else {
                    s.waiters.push((w, tx));
                }
            }
            inner.synced.notify_all();
            drop(s);
            // Everything written up to `token` is durable (meta after sync: lock order).
            let mut m = inner.meta.lock();
            if m.written <= token {
                m.unsynced_since_ms = None;
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "append log fsync failed; refusing further appends");
            mark_broken(inner, format!("fsync failed: {e}"));
        }
    }
}

/// The syncer thread: finishes rotations (off the server lock) and fsyncs per policy.
pub(super) fn syncer_loop(inner: &Inner) {
    let mut last_sync = Instant::now();
    loop {
        let (rotate, sync) = {
            let mut s = inner.sync.lock();
            loop {
                if inner.stop.load(Ordering::SeqCst) {
                    return;
                }
                if s.broken.is_some() {
                    inner.kick.wait(&mut s);
                    continue;
                }
                let rotate =
                    inner.stage_gen.load(Ordering::SeqCst) > inner.file_gen.load(Ordering::SeqCst);
                let unsynced = inner.written_token.load(Ordering::SeqCst) > s.durable;
                let paused = inner.paused.load(Ordering::SeqCst);
                let policy = FsyncPolicy::from_u8(inner.policy.load(Ordering::SeqCst));
                let sync = unsynced
                    && !paused
                    && match policy {
                        FsyncPolicy::Always => true,
                        // Waiters left from an `always` period still get their fsync.
                        _ if !s.waiters.is_empty() => true,
                        FsyncPolicy::EverySec => last_sync.elapsed() >= Duration::from_secs(1),
                        FsyncPolicy::No => false,
                    };
                if rotate || sync {
                    break (rotate, sync);
                }
                let wait = match policy {
                    FsyncPolicy::EverySec => {
                        Duration::from_secs(1).saturating_sub(last_sync.elapsed())
                    }
                    _ => Duration::from_secs(1),
                };
                if inner.kick.wait_for(&mut s, wait).timed_out() && policy == FsyncPolicy::EverySec
                {
                    // A quiet second: nothing to sync, restart the interval.
                    if !unsynced {
                        last_sync = Instant::now();
                    }
                }
            }
        };
        if rotate {
            let mut f = inner.file.lock();
            if let Err(e) =
                write_staged_locked(inner, &mut f).and_then(|_| catch_up_rotation(inner, &mut f))
            {
                tracing::error!(error = %e, "append log rotation failed (retried on the next write)");
                drop(f);
                // Do not spin on a persistent failure.
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        if sync {
            let (file, gen, token) = {
                let f = inner.file.lock();
                (f.file.clone(), f.gen, f.written_token)
            };
            last_sync = Instant::now();
            let started_ms = epoch_ms();
            let res = fsync_file(inner, &file, gen);
            let ok = res.is_ok();
            complete_sync(inner, token, res.map_err(|e| e.to_string()));
            if ok {
                // Writes after `token` (if any) came after the fsync started.
                let mut m = inner.meta.lock();
                if m.written > token {
                    m.unsynced_since_ms = Some(started_ms);
                }
            }
        }
    }
}
