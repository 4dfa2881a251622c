//! One batch of a connection's commands: the part that runs under the server lock
//! (`Conn::run_batch`: every parsed command of the batch, one staged log frame for
//! all of them), and what the connection does after the lock when a command asked
//! for more than a reply (`Conn::after_batch`: wait for CLIENT PAUSE to end, sleep,
//! block, save, migrate, shut down).

use super::{ok, prefetch_batch, AsyncOp, Conn, Step};
use crate::state::{ConnMsg, Inner};
use bytes::{Bytes, BytesMut};
use redsnap_engine::Reply;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

/// The connection's buffers a batch reads and writes under the lock.
pub(super) struct BatchIo<'a> {
    pub rx: &'a mut mpsc::UnboundedReceiver<ConnMsg>,
    pub wbuf: &'a mut BytesMut,
    pub rbuf: &'a BytesMut,
    pub parser: &'a crate::resp::Parser,
}

impl Conn {
    /// Runs the parsed commands of `pending` under the lock, replies into `io.wbuf`,
    /// until one asks for more than a reply (that step is returned, the rest stays
    /// pending). `None`: close the connection without replying (CLIENT KILL arrived,
    /// SHUTDOWN NOSAVE stopped the server, the append log refused the batch).
    pub(super) fn run_batch(
        &mut self,
        inner: &mut Inner,
        pending: &mut VecDeque<Vec<Bytes>>,
        io: BatchIo<'_>,
    ) -> Option<Option<Step>> {
        if !self.deferred.is_empty() {
            self.sync_deferred(inner);
        }
        let mut last = None;
        // One clock read per batch (CLIENT LIST's idle= is in seconds).
        self.begin_batch();
        if pending.len() > 1 {
            prefetch_batch(inner, self.db, pending);
        }
        while let Some(argv) = pending.pop_front() {
            let step = self.dispatch(inner, argv);
            let pushes = self.subscribed() > 0 || inner.tracking.clients != 0;
            if pushes && self.take_pushes(io.rx, io.wbuf) {
                // CLIENT KILL arrived: close without replying.
                return None;
            }
            match step {
                Step::Reply(r) => {
                    self.emit(io.wbuf, &r);
                    self.command_done();
                }
                Step::Many(v) => {
                    for r in &v {
                        self.emit(io.wbuf, r);
                    }
                    self.command_done();
                }
                Step::Close(r) => {
                    // Gone for everyone before the last reply leaves (a
                    // client tracking into it sees it gone, as in Redis).
                    self.cleanup(inner);
                    last = Some(Step::Close(r));
                    break;
                }
                other => {
                    last = Some(other);
                    break;
                }
            }
            // Invalidations of keys this command changed or read, after
            // its reply (Redis's `trackingHandlePendingKeyInvalidations`).
            if inner.tracking.clients != 0 && inner.tracking.has_pending() {
                crate::tracking::flush_pending(inner);
                if self.take_pushes(io.rx, io.wbuf) {
                    return None;
                }
            }
        }
        if pending.is_empty()
            && self.qb.after_batch(
                io.rbuf,
                io.parser.pending_bytes(),
                self.multi.is_some(),
                (io.wbuf.capacity(), io.wbuf.len()),
                self.mem_overhead(inner),
            )
        {
            self.qb.commit();
            crate::clientmem::evict(inner, &self.shared.client_mem, false);
        }
        if self.shared.nosave_shutdown.load(Ordering::Acquire) {
            // SHUTDOWN NOSAVE stopped a busy script (perhaps this one):
            // nothing of this batch was acknowledged, and nothing of it is
            // logged; the server exits without a snapshot.
            inner.store.effects.log.clear();
            return None;
        }
        // One staged log frame for the whole batch, written before any reply
        // leaves (`Conn::write`): replay applies it whole or not at all.
        match crate::persist::append(inner) {
            Ok(Some(token)) => self.pending_token = token,
            Ok(None) => {}
            Err(e) => {
                // These replies were never durably logged: drop them and
                // close, so nothing unlogged is acknowledged.
                tracing::error!(
                    client = self.id,
                    "closing client after append log failure: {e:?}"
                );
                return None;
            }
        }
        Some(last)
    }

    /// What a batch's last step asks for after the lock is released. `Ok(false)`:
    /// the connection closes.
    pub(super) async fn after_batch<S>(
        &mut self,
        stream: &mut S,
        rx: &mut mpsc::UnboundedReceiver<ConnMsg>,
        rbuf: &mut BytesMut,
        wbuf: &mut BytesMut,
        pending: &mut VecDeque<Vec<Bytes>>,
        step: Option<Step>,
    ) -> std::io::Result<bool>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        match step {
            None => {}
            Some(Step::Reply(_)) | Some(Step::Many(_)) => {}
            Some(Step::Postpone(argv)) => {
                self.write(stream, wbuf).await?;
                wbuf.clear();
                pending.push_front(argv);
                let resumed = self.wait_unpaused(stream, rx).await?;
                let mut inner = self.shared.lock_async().await;
                crate::commands::client::set_postponed(&mut inner, self.id, false);
                if !resumed {
                    return Ok(false);
                }
            }
            Some(Step::Close(r)) => {
                if let Some(r) = r {
                    self.emit(wbuf, &r);
                }
                self.write(stream, wbuf).await?;
                return Ok(false);
            }
            Some(Step::Sleep(d, r)) => {
                self.write(stream, wbuf).await?;
                wbuf.clear();
                tokio::time::sleep(d).await;
                self.emit(wbuf, &r);
                self.command_done();
            }
            Some(Step::Block(timeout, timeout_reply)) => {
                self.write(stream, wbuf).await?;
                wbuf.clear();
                let r = self
                    .wait_unblocked(stream, rx, rbuf, timeout, timeout_reply)
                    .await?;
                match r {
                    Some(r) => self.emit(wbuf, &r),
                    None => return Ok(false),
                }
                self.command_done();
            }
            Some(Step::Async(AsyncOp::Save(job, reload))) => {
                self.write(stream, wbuf).await?;
                wbuf.clear();
                let r = match crate::persist::run_save(&self.shared, job).await {
                    Ok(()) if reload => crate::persist::reload(&self.shared),
                    Ok(()) => ok(),
                    Err(e) => {
                        tracing::error!("SAVE failed: {e}");
                        Reply::err("ERR")
                    }
                };
                self.emit(wbuf, &r);
                self.command_done();
            }
            Some(Step::Async(AsyncOp::Migrate(job))) => {
                self.write(stream, wbuf).await?;
                wbuf.clear();
                let r = crate::commands::migrate::run(self, job).await;
                self.emit(wbuf, &r);
                self.command_done();
            }
            Some(Step::Async(AsyncOp::Shutdown(req))) => {
                self.write(stream, wbuf).await?;
                wbuf.clear();
                match crate::shutdown(&self.shared, req).await {
                    Ok(()) => return Ok(false),
                    Err(e) => self.emit(
                        wbuf,
                        &Reply::error(format!("ERR Errors trying to SHUTDOWN. Check logs. ({e})")),
                    ),
                }
                self.command_done();
            }
        }
        Ok(true)
    }
}
