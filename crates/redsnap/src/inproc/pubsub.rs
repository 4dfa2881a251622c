//! Pub/sub within the process: PUBLISH (a command, a pipeline's or a script's)
//! reaches the [`crate::Watch`]es of this store.
//!
//! Messages are queued under the engine lock (so they leave in the order the
//! commands ran) with the append-log token of the batch that published them, and
//! delivered once that batch is in the kernel, or fsynced under `appendfsync
//! always`: a watcher never learns of a change that a crash could still undo, as
//! `redsnap serve` holds a pub/sub message until its batch is durable. A batch
//! delivers what is ready when it completes; the cron delivers leftovers.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use parking_lot::Mutex;
use redsnap_persist::AppendLog;
use tokio::sync::mpsc;

/// Capacity of a watcher's queue. A watcher that falls this far behind loses
/// messages (logged), as Redis disconnects a subscriber past its output buffer
/// limit: pub/sub is fire-and-forget.
const QUEUE: usize = 1024;

#[derive(Default)]
pub(crate) struct PubSub {
    subscribers: Mutex<HashMap<Bytes, Vec<mpsc::Sender<Vec<u8>>>>>,
    /// `(token, channel, payload)` in publishing order.
    outbox: Mutex<VecDeque<(u64, Bytes, Bytes)>>,
}

impl PubSub {
    /// A new subscription to `channel`.
    pub(crate) fn subscribe(&self, channel: &[u8]) -> mpsc::Receiver<Vec<u8>> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let mut subs = self.subscribers.lock();
        // Forget the watches dropped since (on any channel): subscribing is rare.
        subs.retain(|_, l| {
            l.retain(|s| !s.is_closed());
            !l.is_empty()
        });
        subs.entry(Bytes::copy_from_slice(channel))
            .or_default()
            .push(tx);
        rx
    }

    /// How many live subscriptions `channel` has (PUBLISH's reply).
    pub(crate) fn receivers(&self, channel: &[u8]) -> i64 {
        self.subscribers
            .lock()
            .get(channel)
            .map_or(0, |l| l.iter().filter(|s| !s.is_closed()).count() as i64)
    }

    /// Queues messages published by a batch whose log token is `token` (0: the
    /// batch logged nothing). Called under the engine lock.
    pub(crate) fn queue(&self, token: u64, messages: Vec<(Bytes, Bytes)>) {
        if messages.is_empty() {
            return;
        }
        let mut out = self.outbox.lock();
        out.extend(messages.into_iter().map(|(c, p)| (token, c, p)));
    }

    /// Delivers the queued messages whose batch is written (durable under
    /// `always`), in order, stopping at the first that is not.
    pub(crate) fn deliver(&self, log: Option<&AppendLog>) {
        let ready = match log {
            None => u64::MAX,
            Some(l) if l.waits_for_fsync() => l.durable_token(),
            Some(l) => l.written_token(),
        };
        let mut out = self.outbox.lock();
        if out.front().is_none_or(|(t, _, _)| *t > ready) {
            return;
        }
        let mut subs = self.subscribers.lock();
        while out.front().is_some_and(|(t, _, _)| *t <= ready) {
            let Some((_, channel, payload)) = out.pop_front() else {
                break;
            };
            let Some(list) = subs.get_mut(&channel) else {
                continue;
            };
            list.retain(|s| match s.try_send(payload.to_vec()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(target: "redsnap", channel = %String::from_utf8_lossy(&channel), "in-process watcher {QUEUE} messages behind: message dropped");
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
            if list.is_empty() {
                subs.remove(&channel);
            }
        }
    }

    /// Whether messages wait for their batch's durability.
    pub(crate) fn has_pending(&self) -> bool {
        !self.outbox.lock().is_empty()
    }
}
