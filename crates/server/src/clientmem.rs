//! Client memory accounting and `maxmemory-clients` (Redis 7.0's client eviction,
//! `evictClients` in networking.c).
//!
//! Each connection publishes the memory it holds (its query buffer's allocation,
//! the arguments of a request still arriving, its reply buffer) in its
//! [`querybuf::Stats`](crate::querybuf::Stats) and adds the change to [`ClientMem`]'s
//! running total, only when the figure changes (a connection serving GET/SET with
//! a steady buffer never touches the total). When the total reaches the limit, the
//! biggest evictable clients are closed first until it is under the limit again:
//! from the read path before a query buffer grows (so a hostile client is stopped
//! before its memory is used), before each command (as Redis's `processCommand`
//! does, so INFO never shows a total over the limit) and from the cron, which also
//! counts output buffers (`omem`).

use crate::state::{ClientInfo, Inner};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Redis's floor for the limit (`getClientEvictionLimit`): a smaller setting would
/// leave no room to talk to the server at all.
const MIN_LIMIT: usize = 128 * 1024;

/// The server-wide figures, in `Shared`.
#[derive(Debug, Default)]
pub struct ClientMem {
    /// Sum of the figures connections published (see module docs).
    total: AtomicUsize,
    /// Part of `total` held by clients already evicted and not yet gone.
    evicting: AtomicUsize,
    /// The limit in bytes (0: none), from `maxmemory-clients` and `maxmemory`.
    limit: AtomicUsize,
    /// INFO `evicted_clients`.
    evicted: AtomicU64,
}

impl ClientMem {
    /// Adds a connection's change of figure, unless it would take the total to the
    /// limit: then nothing is added and the caller adds it under the server lock
    /// ([`ClientMem::force`]) and runs [`evict`] (true). So the total seen under the
    /// lock (INFO, CLIENT LIST) stays under the limit.
    #[inline]
    pub(crate) fn change(&self, old: usize, new: usize) -> bool {
        if new <= old {
            self.total.fetch_sub(old - new, Relaxed);
            return false;
        }
        let d = new - old;
        let limit = self.limit.load(Relaxed);
        if limit == 0 {
            self.total.fetch_add(d, Relaxed);
            return false;
        }
        let evicting = self.evicting.load(Relaxed);
        self.total
            .fetch_update(Relaxed, Relaxed, |t| {
                ((t + d).saturating_sub(evicting) < limit).then_some(t + d)
            })
            .is_err()
    }

    /// Adds a change of figure as it is (under the server lock, before [`evict`]).
    pub(crate) fn force(&self, old: usize, new: usize) {
        if new >= old {
            self.total.fetch_add(new - old, Relaxed);
        } else {
            self.total.fetch_sub(old - new, Relaxed);
        }
    }

    /// Whether the published total (less what evicted clients still hold) is at or
    /// over the limit. One relaxed load when there is no limit.
    #[inline]
    pub(crate) fn over(&self) -> bool {
        let limit = self.limit.load(Relaxed);
        limit > 0
            && self
                .total
                .load(Relaxed)
                .saturating_sub(self.evicting.load(Relaxed))
                >= limit
    }

    /// A connection closed: its figure leaves the total (and the evicting part,
    /// when it was evicted with `evicted_mem`).
    pub(crate) fn gone(&self, figure: usize, evicted_mem: usize) {
        // The evicting part first: in between, the clients seem to hold more, never
        // less, than they do.
        if evicted_mem > 0 {
            self.evicting.fetch_sub(evicted_mem, Relaxed);
        }
        self.total.fetch_sub(figure, Relaxed);
    }

    pub(crate) fn evicted_clients(&self) -> u64 {
        self.evicted.load(Relaxed)
    }

    /// Redis's `getClientEvictionLimit`: `maxmemory-clients` in bytes, or as a
    /// percentage of `maxmemory` (stored negative); 0 when off.
    pub(crate) fn set_limit(&self, maxmemory_clients: i64, maxmemory: u64) {
        let limit = if maxmemory_clients < 0 && maxmemory > 0 {
            (maxmemory as f64 * (-maxmemory_clients) as f64 / 100.0) as usize
        } else if maxmemory_clients > 0 {
            maxmemory_clients as usize
        } else {
            0
        };
        let limit = if limit > 0 { limit.max(MIN_LIMIT) } else { 0 };
        self.limit.store(limit, Relaxed);
    }

    #[inline]
    pub(crate) fn limit(&self) -> usize {
        self.limit.load(Relaxed)
    }
}

/// Redis's `pubsubMemOverhead` and the watched keys of `multiStateMemOverhead`:
/// a dict entry and slot per channel, a list node per pattern, a list node and a
/// `watchedKey` per watched key (the names themselves are shared, not counted).
pub(crate) fn overhead(channels: usize, patterns: usize, watched: usize) -> usize {
    channels * 32 + patterns * 24 + watched * 56
}

/// What a client holds as CLIENT LIST's `tot-mem` counts it: the published figure
/// plus its output buffer beyond the reply buffer.
pub(crate) fn client_total(c: &ClientInfo) -> usize {
    c.qb.mem() + c.pending_out.load(Relaxed) as usize
}

/// Redis's `clientEvictionAllowed`: not replicas, not `CLIENT NO-EVICT on`.
fn evictable(inner: &Inner, c: &ClientInfo) -> bool {
    !c.no_evict && !c.qb.evicted() && !inner.repl.is_replica(c.id)
}

/// Redis's `evictClients`: while the clients' memory is at or over the limit, close
/// the biggest evictable clients first. `full`: count output buffers too (the
/// cron), else the published figures only (cheap: the atomic total).
pub(crate) fn evict(inner: &mut Inner, cm: &ClientMem, full: bool) {
    let limit = cm.limit();
    if limit == 0 {
        return;
    }
    let extra: usize = if full {
        inner
            .clients
            .values()
            .filter(|c| !c.qb.evicted())
            .map(|c| c.pending_out.load(Relaxed) as usize)
            .sum()
    } else {
        0
    };
    let held = |cm: &ClientMem| {
        cm.total
            .load(Relaxed)
            .saturating_sub(cm.evicting.load(Relaxed))
            + extra
    };
    if held(cm) < limit {
        return;
    }
    let mut candidates: Vec<(usize, u64)> = inner
        .clients
        .values()
        .filter(|c| evictable(inner, c))
        .map(|c| (client_total(c), c.id))
        .collect();
    // Biggest first; among equals, the oldest connection first.
    candidates.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut extra_freed = 0usize;
    for (_, id) in candidates {
        if held(cm).saturating_sub(extra_freed) < limit {
            return;
        }
        let Some(c) = inner.clients.get(&id) else {
            continue;
        };
        let figure = c.qb.mark_evicted();
        cm.evicting.fetch_add(figure, Relaxed);
        extra_freed += c.pending_out.load(Relaxed) as usize;
        cm.evicted.fetch_add(1, Relaxed);
        tracing::info!(
            client = id,
            addr = %c.addr,
            "Evicting client: tot-mem={} (maxmemory-clients {limit})",
            client_total(c)
        );
        c.kill();
        // Gone at once, as Redis's freeClient: CLIENT LIST and INFO no longer show
        // it (its connection task does the rest of the cleanup when it ends).
        inner.clients.remove(&id);
    }
    if held(cm).saturating_sub(extra_freed) >= limit {
        tracing::warn!("Over client maxmemory after evicting all evictable clients");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_forms() {
        let cm = ClientMem::default();
        cm.set_limit(64 << 20, 0);
        assert_eq!(cm.limit(), 64 << 20);
        // Percentage of maxmemory (stored negative); none without maxmemory.
        cm.set_limit(-10, 100 << 20);
        assert_eq!(cm.limit(), 10 << 20);
        cm.set_limit(-10, 0);
        assert_eq!(cm.limit(), 0);
        // Redis's floor.
        cm.set_limit(1000, 0);
        assert_eq!(cm.limit(), MIN_LIMIT);
    }

    #[test]
    fn total_follows_changes() {
        let cm = ClientMem::default();
        cm.set_limit(MIN_LIMIT as i64, 0);
        assert!(!cm.change(0, 1000));
        // Reaching the limit is left to the caller, under the lock.
        assert!(cm.change(1000, MIN_LIMIT));
        assert!(!cm.over());
        cm.force(1000, MIN_LIMIT);
        assert!(cm.over());
        assert!(!cm.change(MIN_LIMIT, 10));
        assert!(!cm.over());
        cm.gone(10, 0);
        assert_eq!(cm.total.load(Relaxed), 0);
    }
}
