//! The store: 16 databases, the execution context handed to command handlers, and the
//! effects a command leaves for the layers above (WATCH, blocked clients, the log).

use crate::db::{own, Db, Entry};
use crate::functions::Libraries;
use crate::hash::KeyHasher;
use crate::notify::{self, KeyEvent};
use crate::reply::{self, Reply};
use crate::table::{self, CommandSpec};
use crate::value::{Kind, Value, ZSet};
use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// What handlers return: `Err` carries an error reply so `?` can be used.
pub type CmdResult = Result<Reply, Reply>;

/// Engine settings that commands consult.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub databases: usize,
    pub proto_max_bulk_len: u64,
    pub hash_max_listpack_entries: usize,
    pub hash_max_listpack_value: usize,
    pub set_max_intset_entries: usize,
    pub zset_max_listpack_entries: usize,
    pub zset_max_listpack_value: usize,
    pub list_max_listpack_size: i64,
    /// `stream-node-max-entries` / `stream-node-max-bytes`: where stream nodes split.
    pub stream_node_max_entries: u64,
    pub stream_node_max_bytes: u64,
    /// `hll-sparse-max-bytes`: a sparse HyperLogLog growing past it turns dense.
    pub hll_sparse_max_bytes: usize,
    /// `notify-keyspace-events` as Redis's flags word ([`crate::notify`]): 0 (the
    /// default) records no event, and each notify point costs one test of it.
    pub notify_keyspace_events: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            databases: 16,
            proto_max_bulk_len: 512 * 1024 * 1024,
            hash_max_listpack_entries: 128,
            hash_max_listpack_value: 64,
            set_max_intset_entries: 512,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
            list_max_listpack_size: -2,
            stream_node_max_entries: 100,
            stream_node_max_bytes: 4096,
            hll_sparse_max_bytes: 3000,
            notify_keyspace_events: 0,
        }
    }
}

/// Counters reported by INFO stats.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub expired_keys: u64,
    pub evicted_keys: u64,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
}

/// A record for the append log: the command as executed, with the database and the
/// time it ran at (replay runs it with the same clock, so relative expiries land on
/// the same deadlines).
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    pub db: usize,
    pub time: u64,
    pub argv: Vec<Bytes>,
}

/// What executed commands changed, drained by the server after each command or batch.
#[derive(Debug, Default)]
pub struct Effects {
    /// Keys whose value changed (WATCH invalidation, blocked-client wake-ups).
    pub touched: Vec<(usize, Bytes)>,
    /// Databases changed as a whole (FLUSHDB, FLUSHALL, SWAPDB).
    pub touched_dbs: Vec<usize>,
    /// Changes since the last snapshot (Redis's `server.dirty`).
    pub dirty: u64,
    /// Records for the append log.
    pub log: Vec<LogRecord>,
    /// Keyspace notifications, in the order Redis raises them; only the classes
    /// enabled in `notify-keyspace-events` are recorded. The server publishes and
    /// drains them after each command.
    pub events: Vec<KeyEvent>,
}

impl Effects {
    /// Forgets touched keys and databases (and events: what nothing will publish,
    /// e.g. while a dataset is replayed at startup).
    pub fn clear_touched(&mut self) {
        self.events.clear();
        self.touched.clear();
        self.touched_dbs.clear();
    }
}

/// What an access does to a key whose deadline has passed (Redis 7.0's
/// `expireIfNeeded`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExpireMode {
    /// Deleted, counted in `expired_keys`, logged as DEL and notified: a master's
    /// (or a standalone server's) lazy expiry.
    #[default]
    Delete,
    /// Reported as absent but kept: while CLIENT PAUSE holds writes (nothing may
    /// be written or propagated) and on a replica, which waits for its master's DEL.
    Hide,
    /// Seen as live: the master's own commands on a replica (the master decides
    /// when a key expires).
    Keep,
}

/// The whole keyspace.
#[derive(Debug)]
pub struct Store {
    pub dbs: Vec<Db>,
    pub config: EngineConfig,
    pub stats: Stats,
    pub effects: Effects,
    pub rng: SmallRng,
    /// Whether the background expiry cycle runs (DEBUG SET-ACTIVE-EXPIRE 0 turns it
    /// off; lazy expiry on access always applies, as in Redis).
    pub active_expire: bool,
    /// What an access does to an expired key (Redis's `expireIfNeeded`): delete it,
    /// hide it (during CLIENT PAUSE, and on a replica), or see it as live (the
    /// master's commands on a replica). Set by the server before each command.
    pub expire_mode: ExpireMode,
    /// Whether accesses update LFU counters (an LFU policy is set) instead of LRU clocks.
    pub lfu: bool,
    /// Whether commands leave log records (off when nothing consumes them: the
    /// server runs without an append log).
    pub log_enabled: bool,
    /// Eviction candidates kept across calls (Redis's eviction pool), so each
    /// eviction chooses among many more keys than one sample.
    evict_pool: Vec<(usize, Bytes)>,
    /// The function libraries' code (the server compiles and runs them; FLUSHALL
    /// leaves them, as in Redis).
    pub libraries: Libraries,
    /// Whether the command running was called by a script (Redis's CLIENT_SCRIPT:
    /// SORT then orders a set's elements even BY a constant, for determinism).
    pub in_script: bool,
    /// The last snapshot point taken with change tracking (0: none).
    change_point: u64,
}

/// A point-in-time copy of the dataset, as a snapshot stores it: the databases (O(1)
/// clones) and the code of the function libraries.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub dbs: Vec<Db>,
    pub libraries: Vec<Bytes>,
    /// What changed since the previous snapshot point, when the copy was taken at a
    /// point ([`Store::snapshot_point`]); an incremental snapshot is written from it.
    pub changes: Option<crate::changes::Changes>,
}

impl From<Vec<Db>> for Dataset {
    /// The databases alone (no function libraries).
    fn from(dbs: Vec<Db>) -> Dataset {
        Dataset {
            dbs,
            libraries: Vec::new(),
            changes: None,
        }
    }
}

impl Default for Store {
    fn default() -> Self {
        Store::new(EngineConfig::default())
    }
}

impl Store {
    /// An empty store with a random key-hash seed (a dataset loaded from a snapshot
    /// takes the snapshot's seed: [`Store::set_key_hasher`]).
    pub fn new(config: EngineConfig) -> Store {
        Store::with_hasher(config, KeyHasher::random())
    }

    /// An empty store whose databases order keys by `hasher`.
    pub fn with_hasher(config: EngineConfig, hasher: KeyHasher) -> Store {
        let dbs = (0..config.databases)
            .map(|_| Db::with_hasher(hasher))
            .collect();
        Store {
            dbs,
            config,
            stats: Stats::default(),
            effects: Effects::default(),
            rng: SmallRng::from_os_rng(),
            active_expire: true,
            expire_mode: ExpireMode::Delete,
            lfu: false,
            log_enabled: true,
            evict_pool: Vec::new(),
            libraries: Libraries::default(),
            in_script: false,
            change_point: 0,
        }
    }

    /// The key hash of the dataset (every database uses the same one).
    pub fn key_hasher(&self) -> KeyHasher {
        self.dbs
            .first()
            .map_or_else(KeyHasher::legacy, |d| d.hasher())
    }

    /// Orders every database by `hasher` (loading a snapshot takes its seed). Keys
    /// already present are rehashed (O(n); free on the empty store of a startup).
    pub fn set_key_hasher(&mut self, hasher: KeyHasher) {
        for d in &mut self.dbs {
            if d.hasher() != hasher {
                *d = d.rehashed(hasher);
            }
        }
    }

    /// An O(1) point-in-time copy of every database (structural sharing).
    pub fn snapshot(&self) -> Vec<Db> {
        self.dbs.clone()
    }

    /// [`Store::snapshot`] with the function libraries: what a snapshot stores.
    pub fn dataset(&self) -> Dataset {
        Dataset {
            dbs: self.dbs.clone(),
            libraries: self.libraries.codes(),
            changes: None,
        }
    }

    /// A snapshot point: [`Store::dataset`] plus the changes recorded since the
    /// previous point, and (with `track`) a new empty record in every database, so the
    /// next point knows what changed after this one. O(databases): the records are
    /// moved, not copied. Without `track` recording stops (a write then costs
    /// nothing extra) and the dataset carries no changes.
    pub fn snapshot_point(&mut self, track: bool) -> Dataset {
        let at = crate::changes::next_point();
        crate::changes::reset_copied();
        let since = std::mem::replace(&mut self.change_point, if track { at } else { 0 });
        let dbs: Vec<_> = self.dbs.iter_mut().map(|d| d.take_changes(track)).collect();
        let mut data = self.dataset();
        if track {
            data.changes = Some(crate::changes::Changes { since, at, dbs });
        }
        data
    }

    /// Bytes the databases' change records hold (see [`crate::changes`]).
    pub fn changes_bytes(&self) -> usize {
        self.dbs.iter().map(Db::changes_bytes).sum()
    }

    /// Runs one command whose spec has an engine handler. The caller has checked arity
    /// (see [`table::check_arity`]) and the database index.
    pub fn call(
        &mut self,
        spec: &CommandSpec,
        db: usize,
        now: u64,
        argv: &[Bytes],
        resp3: bool,
    ) -> Reply {
        let Some(handler) = spec.handler else {
            return Reply::error(format!(
                "ERR command '{}' is not handled by the engine",
                spec.name
            ));
        };
        let dirty_before = self.effects.dirty;
        let mut cx = Cx {
            store: self,
            db,
            now,
            resp3,
            custom_log: false,
        };
        let reply = match handler(&mut cx, argv) {
            Ok(r) => r,
            Err(e) => e,
        };
        let custom = cx.custom_log;
        if self.log_enabled
            && !custom
            && self.effects.dirty > dirty_before
            && (spec.is_write() || sub_is_write(spec, argv))
        {
            self.effects.log.push(LogRecord {
                db,
                time: now,
                argv: argv.to_vec(),
            });
        }
        reply
    }

    /// Convenience for tests and scripts: looks up, checks arity and runs.
    pub fn exec(&mut self, db: usize, now: u64, argv: &[Bytes]) -> Reply {
        let Some(spec) = argv.first().and_then(|n| table::lookup(n)) else {
            return table::unknown_command(argv);
        };
        if let Err(e) = table::check_arity(spec, argv) {
            return e;
        }
        if spec.name == "function" {
            // An append-log record of a library change (see `Libraries::replay`).
            return self.libraries.replay(argv);
        }
        self.call(spec, db, now, argv, false)
    }

    /// Deletes expired keys by sampling, as Redis's active expire cycle does. Visits at
    /// most `budget` keys in total. Returns how many were deleted.
    pub fn active_expire_cycle(&mut self, now: u64, budget: usize) -> usize {
        if !self.active_expire {
            return 0;
        }
        let mut deleted = 0;
        let mut visited = 0;
        for db in 0..self.dbs.len() {
            loop {
                if self.dbs[db].volatile_len() == 0 || visited >= budget {
                    break;
                }
                let start: u64 = self.rng.random();
                let sample: Vec<Bytes> = self.dbs[db]
                    .volatile_from(start)
                    .take(20)
                    .map(|k| k.key.to_bytes())
                    .collect();
                let mut expired = 0;
                for key in &sample {
                    visited += 1;
                    if self.dbs[db].get(key).is_some_and(|e| e.is_expired(now)) {
                        self.delete_expired(db, key, now);
                        expired += 1;
                    }
                }
                deleted += expired;
                // Redis repeats while more than 10% of the sample was expired.
                if sample.len() < 20 || expired * 10 <= sample.len() {
                    break;
                }
            }
        }
        deleted
    }

    fn delete_expired(&mut self, db: usize, key: &Bytes, now: u64) {
        self.dbs[db].remove(key);
        self.stats.expired_keys += 1;
        self.notify(db, notify::EXPIRED, "expired", key);
        self.effects.touched.push((db, key.clone()));
        self.effects.log.push(LogRecord {
            db,
            time: now,
            argv: vec![Bytes::from_static(b"DEL"), key.clone()],
        });
    }

    /// Whether `key` is expired, deleting it when [`Store::expire_mode`] says so:
    /// true means the key is to be treated as absent (deleted, or hidden); with
    /// [`ExpireMode::Keep`] an expired key counts as live (false).
    pub fn expire_if_needed(&mut self, db: usize, key: &Bytes, now: u64) -> bool {
        // No key of this database has a deadline: nothing to look up.
        if self.dbs[db].volatile_len() == 0 {
            return false;
        }
        if !self.dbs[db].get(key).is_some_and(|e| e.is_expired(now)) {
            return false;
        }
        match self.expire_mode {
            ExpireMode::Delete => {
                self.delete_expired(db, key, now);
                true
            }
            ExpireMode::Hide => true,
            ExpireMode::Keep => false,
        }
    }

    pub fn total_keys(&self) -> usize {
        self.dbs.iter().map(|d| d.len()).sum()
    }

    /// Records a keyspace event of `class` on `key` in database `db` (Redis's
    /// `notifyKeyspaceEvent`) if `notify-keyspace-events` enables the class. With
    /// notifications off this is one test of an integer: nothing is allocated.
    #[inline]
    pub fn notify(&mut self, db: usize, class: u32, event: &'static str, key: &Bytes) {
        if self.config.notify_keyspace_events & class != 0 {
            record_event(&self.config, &mut self.effects, db, event, key);
        }
    }
}

/// Appends an event whose class is enabled (the slow half of [`Store::notify`]).
#[cold]
#[inline(never)]
fn record_event(
    config: &EngineConfig,
    effects: &mut Effects,
    db: usize,
    event: &'static str,
    key: &Bytes,
) {
    // Classes without K or E publish nothing (Redis builds no channel either).
    if config.notify_keyspace_events & (notify::KEYSPACE | notify::KEYEVENT) != 0 {
        effects.events.push(KeyEvent {
            db,
            event,
            key: key.clone(),
        });
    }
}

/// Whether a container command's subcommand writes (XGROUP CREATE): the table row
/// of the container itself has no flags.
fn sub_is_write(spec: &CommandSpec, argv: &[Bytes]) -> bool {
    !spec.subs.is_empty()
        && argv.len() > 1
        && spec.subs.iter().any(|s| {
            s.is_write()
                && s.name
                    .rsplit('|')
                    .next()
                    .is_some_and(|n| n.as_bytes().eq_ignore_ascii_case(&argv[1]))
        })
}

/// The context a command handler runs in.
pub struct Cx<'a> {
    pub store: &'a mut Store,
    /// The selected database.
    pub db: usize,
    /// The command's clock, ms since the epoch (frozen for the whole command).
    pub now: u64,
    /// Whether the client speaks RESP3 (a few replies differ in shape).
    pub resp3: bool,
    custom_log: bool,
}

impl<'a> Cx<'a> {
    pub fn new(store: &'a mut Store, db: usize, now: u64, resp3: bool) -> Cx<'a> {
        Cx {
            store,
            db,
            now,
            resp3,
            custom_log: false,
        }
    }

    pub fn db(&mut self) -> &mut Db {
        &mut self.store.dbs[self.db]
    }

    pub fn db_at(&mut self, idx: usize) -> &mut Db {
        &mut self.store.dbs[idx]
    }

    pub fn rng(&mut self) -> &mut SmallRng {
        &mut self.store.rng
    }

    pub fn config(&self) -> &EngineConfig {
        &self.store.config
    }

    /// A live entry (expired keys are deleted first, or hidden: see
    /// [`Store::expire_if_needed`]). Does not count hits/misses.
    pub fn entry(&mut self, key: &Bytes) -> Option<&Entry> {
        if self.store.expire_if_needed(self.db, key, self.now) {
            return None;
        }
        self.store.dbs[self.db].get(key)
    }

    /// A live entry for a read command: counts a keyspace hit or miss.
    pub fn lookup_read(&mut self, key: &Bytes) -> Option<&Entry> {
        let gone = self.store.expire_if_needed(self.db, key, self.now);
        // One trie search: the entry, its access clock and the counters are
        // disjoint fields of the store.
        let (lfu, now) = (self.store.lfu, self.now);
        let store = &mut *self.store;
        let found = if gone {
            None
        } else {
            store.dbs[self.db].get(key)
        };
        match found {
            Some(e) => {
                store.stats.keyspace_hits += 1;
                Store::touch_obj(lfu, &e.obj, now, &mut store.rng);
                Some(e)
            }
            None => {
                store.stats.keyspace_misses += 1;
                // (Fields, not `Store::notify`: the database stays borrowed here.)
                if store.config.notify_keyspace_events & notify::KEY_MISS != 0 {
                    record_event(&store.config, &mut store.effects, self.db, "keymiss", key);
                }
                None
            }
        }
    }

    /// A live entry for a command that reads a key without using it (EXISTS, TYPE,
    /// TTL, OBJECT: Redis's LOOKUP_NOTOUCH): counts a keyspace hit or miss and
    /// leaves the access clock alone.
    pub fn lookup_notouch(&mut self, key: &Bytes) -> Option<&Entry> {
        let gone = self.store.expire_if_needed(self.db, key, self.now);
        let store = &mut *self.store;
        let found = if gone {
            None
        } else {
            store.dbs[self.db].get(key)
        };
        match found {
            Some(e) => {
                store.stats.keyspace_hits += 1;
                Some(e)
            }
            None => {
                store.stats.keyspace_misses += 1;
                None
            }
        }
    }

    pub fn exists(&mut self, key: &Bytes) -> bool {
        self.entry(key).is_some()
    }

    pub fn kind(&mut self, key: &Bytes) -> Option<Kind> {
        self.entry(key).map(|e| e.value().kind())
    }

    /// Ok(true) if the key exists with kind `k`, Ok(false) if absent, WRONGTYPE otherwise.
    pub fn check_kind(&mut self, key: &Bytes, k: Kind) -> Result<bool, Reply> {
        match self.kind(key) {
            None => Ok(false),
            Some(x) if x == k => Ok(true),
            Some(_) => Err(Reply::wrongtype()),
        }
    }

    /// Mutable value of a live key (copied first if a snapshot shares it).
    pub fn value_mut(&mut self, key: &Bytes) -> Option<&mut Value> {
        if self.store.expire_if_needed(self.db, key, self.now) {
            return None;
        }
        self.store.dbs[self.db].get_mut(key)
    }

    /// Stores a value (key and value bytes are copied out of the request buffer by
    /// the caller with [`own`] where they come from the request) and marks the key modified.
    pub fn set_value(&mut self, key: &Bytes, value: Value, expire_at: Option<u64>) {
        if self.store.config.notify_keyspace_events & notify::NEW != 0 {
            self.notify_if_new(key);
        }
        let (lfu, now) = (self.store.lfu, self.now);
        let store = &mut *self.store;
        let rng = &mut store.rng;
        store.dbs[self.db].set_value(key, value, expire_at, |obj| {
            Store::touch_obj(lfu, obj, now, rng)
        });
        self.modified(key);
    }

    /// Records the "new" event when `key` does not exist yet (Redis's dbAdd), before
    /// the key is created. Called only when the `n` class is on (it costs a lookup).
    #[cold]
    pub fn notify_if_new(&mut self, key: &Bytes) {
        let now = self.now;
        if self.store.dbs[self.db]
            .get(key)
            .is_none_or(|e| e.is_expired(now))
        {
            self.notify(notify::NEW, "new", key);
        }
    }

    /// Records a keyspace event of `class` on `key` in the current database: see
    /// [`Store::notify`] (one integer test when the class is off).
    #[inline]
    pub fn notify(&mut self, class: u32, event: &'static str, key: &Bytes) {
        self.store.notify(self.db, class, event, key);
    }

    /// Updates the key's access clock (LRU) or counter (LFU).
    pub fn touch(&mut self, key: &Bytes) {
        let (lfu, now) = (self.store.lfu, self.now);
        let store = &mut *self.store;
        if let Some(e) = store.dbs[self.db].get(key) {
            Store::touch_obj(lfu, &e.obj, now, &mut store.rng);
        }
    }

    /// Deletes a live key; marks it modified and raises the "del" event (every
    /// caller of Redis's dbDelete behind a command does). Returns whether it existed.
    pub fn delete(&mut self, key: &Bytes) -> bool {
        if self.store.expire_if_needed(self.db, key, self.now) {
            // Hidden (a writable replica): removed, but it did not count as there.
            self.store.dbs[self.db].remove(key);
            return false;
        }
        if self.store.dbs[self.db].remove(key).is_some() {
            self.modified(key);
            self.notify(notify::GENERIC, "del", key);
            true
        } else {
            false
        }
    }

    /// [`Cx::delete`], with the value freed on the lazyfree thread when freeing it
    /// takes more than [`crate::lazyfree::LAZYFREE_THRESHOLD`] allocations and no
    /// snapshot shares it (UNLINK; Redis's `dbAsyncDelete`).
    pub fn delete_lazy(&mut self, key: &Bytes) -> bool {
        if self.store.expire_if_needed(self.db, key, self.now) {
            self.store.dbs[self.db].remove(key);
            return false;
        }
        let Some(e) = self.store.dbs[self.db].remove(key) else {
            return false;
        };
        if std::sync::Arc::strong_count(&e.obj) == 1
            && crate::lazyfree::free_effort(&self.store.config, &e)
                > crate::lazyfree::LAZYFREE_THRESHOLD
        {
            crate::lazyfree::drop_later(e, 1);
        }
        self.modified(key);
        self.notify(notify::GENERIC, "del", key);
        true
    }

    /// Deletes the key if its container value became empty, raising the "del" event
    /// (callers raise their own event, e.g. "lpop", before this one, as Redis does).
    pub fn remove_if_empty(&mut self, key: &Bytes) {
        if self.store.dbs[self.db]
            .get(key)
            .is_some_and(|e| e.value().is_empty_container())
        {
            self.store.dbs[self.db].remove(key);
            self.notify(notify::GENERIC, "del", key);
        }
    }

    /// Records that `key` in the current db changed (one unit of dirty).
    pub fn modified(&mut self, key: &Bytes) {
        self.modified_n(key, 1);
    }

    /// Records that `key` changed with `n` units of dirty (Redis counts elements).
    pub fn modified_n(&mut self, key: &Bytes, n: u64) {
        self.store.effects.touched.push((self.db, key.clone()));
        self.store.effects.dirty += n;
    }

    pub fn modified_in(&mut self, db: usize, key: &Bytes) {
        self.store.effects.touched.push((db, key.clone()));
        self.store.effects.dirty += 1;
    }

    /// Adds dirty without touching a key.
    pub fn add_dirty(&mut self, n: u64) {
        self.store.effects.dirty += n;
    }

    pub fn touched_db(&mut self, db: usize) {
        self.store.effects.touched_dbs.push(db);
    }

    /// Whether records are kept (an append log or a replica takes them): a command
    /// that builds its own records can skip building them when not.
    #[inline]
    pub fn logging(&self) -> bool {
        self.store.log_enabled
    }

    /// The command logs nothing of its own (as [`Cx::propagate`] when not
    /// [`Cx::logging`]): it is not logged as sent either.
    #[inline]
    pub fn propagate_nothing(&mut self) {
        self.custom_log = true;
    }

    /// Logs `argv` in place of the command (e.g. SPOP becomes SREM). Once called, the
    /// command itself is not logged.
    pub fn propagate(&mut self, argv: Vec<Bytes>) {
        self.custom_log = true;
        if !self.store.log_enabled {
            // Nothing takes records (no append log, no replica): as `Store::call`.
            return;
        }
        self.store.effects.log.push(LogRecord {
            db: self.db,
            time: self.now,
            argv,
        });
    }

    /// Suppresses logging of the current command (it changed nothing durable).
    pub fn no_propagate(&mut self) {
        self.custom_log = true;
    }

    // ----- typed access -----

    /// The string value of a key (counting a hit or miss), WRONGTYPE for other types.
    /// Values of up to 64 bytes are copied rather than shared: sharing promotes the
    /// stored `Bytes` to a shared buffer (an allocation, and a cache miss when the
    /// value is later replaced); larger ones are shared (no copy).
    pub fn get_str(&mut self, key: &Bytes) -> Result<Option<Bytes>, Reply> {
        match self.lookup_read(key).map(|e| e.value()) {
            None => Ok(None),
            Some(Value::Str(s)) if s.len() <= 64 => Ok(Some(Bytes::copy_from_slice(s))),
            Some(Value::Str(s)) => Ok(Some(s.clone())),
            Some(_) => Err(Reply::wrongtype()),
        }
    }

    pub fn get_list(&mut self, key: &Bytes) -> Result<Option<&crate::list::List>, Reply> {
        match self.lookup_read(key).map(|e| e.value()) {
            None => Ok(None),
            Some(Value::List(l)) => Ok(Some(l)),
            Some(_) => Err(Reply::wrongtype()),
        }
    }

    pub fn get_hash(&mut self, key: &Bytes) -> Result<Option<&crate::value::Hash>, Reply> {
        match self.lookup_read(key).map(|e| e.value()) {
            None => Ok(None),
            Some(Value::Hash(h)) => Ok(Some(h)),
            Some(_) => Err(Reply::wrongtype()),
        }
    }

    pub fn get_set(&mut self, key: &Bytes) -> Result<Option<&crate::value::Set>, Reply> {
        match self.lookup_read(key).map(|e| e.value()) {
            None => Ok(None),
            Some(Value::Set(s)) => Ok(Some(s)),
            Some(_) => Err(Reply::wrongtype()),
        }
    }

    pub fn get_zset(&mut self, key: &Bytes) -> Result<Option<&ZSet>, Reply> {
        match self.lookup_read(key).map(|e| e.value()) {
            None => Ok(None),
            Some(Value::ZSet(z)) => Ok(Some(z)),
            Some(_) => Err(Reply::wrongtype()),
        }
    }

    /// Mutable list; with `create`, an absent key becomes an empty list (the caller
    /// must add to it or call [`Cx::remove_if_empty`]).
    pub fn list_mut(
        &mut self,
        key: &Bytes,
        create: bool,
    ) -> Result<Option<&mut crate::list::List>, Reply> {
        self.container_mut(key, create, Kind::List, || {
            Value::List(crate::list::List::new())
        })
        .map(|v| {
            v.map(|v| match v {
                Value::List(l) => l,
                _ => unreachable!("kind checked"),
            })
        })
    }

    pub fn hash_mut(
        &mut self,
        key: &Bytes,
        create: bool,
    ) -> Result<Option<&mut crate::value::Hash>, Reply> {
        self.container_mut(key, create, Kind::Hash, || Value::Hash(Box::default()))
            .map(|v| {
                v.map(|v| match v {
                    Value::Hash(h) => &mut **h,
                    _ => unreachable!("kind checked"),
                })
            })
    }

    pub fn set_mut(
        &mut self,
        key: &Bytes,
        create: bool,
    ) -> Result<Option<&mut crate::value::Set>, Reply> {
        self.container_mut(key, create, Kind::Set, || Value::Set(Box::default()))
            .map(|v| {
                v.map(|v| match v {
                    Value::Set(s) => &mut **s,
                    _ => unreachable!("kind checked"),
                })
            })
    }

    pub fn zset_mut(&mut self, key: &Bytes, create: bool) -> Result<Option<&mut ZSet>, Reply> {
        self.container_mut(key, create, Kind::ZSet, || {
            Value::ZSet(Box::new(ZSet::new()))
        })
        .map(|v| {
            v.map(|v| match v {
                Value::ZSet(z) => &mut **z,
                _ => unreachable!("kind checked"),
            })
        })
    }

    fn container_mut(
        &mut self,
        key: &Bytes,
        create: bool,
        kind: Kind,
        empty: impl FnOnce() -> Value,
    ) -> Result<Option<&mut Value>, Reply> {
        self.container_obj_mut(key, create, kind, empty)
            .map(|o| o.map(|o| &mut o.value))
    }

    fn container_obj_mut(
        &mut self,
        key: &Bytes,
        create: bool,
        kind: Kind,
        empty: impl FnOnce() -> Value,
    ) -> Result<Option<&mut crate::db::Obj>, Reply> {
        match self.kind(key) {
            Some(k) if k != kind => return Err(Reply::wrongtype()),
            None if !create => return Ok(None),
            None => {
                self.notify(notify::NEW, "new", key);
                self.store.dbs[self.db].insert(own(key), empty(), None)
            }
            Some(_) => {}
        }
        // The access clock is set on the object the write reaches (one trie walk
        // for both; `touch` would walk again).
        let (lfu, now) = (self.store.lfu, self.now);
        let store = &mut *self.store;
        let o = store.dbs[self.db].get_mut_obj(key);
        if let Some(o) = &o {
            Store::touch_obj(lfu, o, now, &mut store.rng);
        }
        Ok(o)
    }

    /// [`Cx::set_mut`], with the value's sticky encoding flag (`Obj::big_encoding`).
    pub fn set_mut_enc(
        &mut self,
        key: &Bytes,
        create: bool,
    ) -> Result<Option<(&mut crate::value::Set, &mut bool)>, Reply> {
        let o = self.container_obj_mut(key, create, Kind::Set, || Value::Set(Box::default()))?;
        Ok(o.map(|o| match &mut o.value {
            Value::Set(s) => (&mut **s, &mut o.big_encoding),
            _ => unreachable!("kind checked"),
        }))
    }

    /// [`Cx::hash_mut`], with the value's sticky encoding flag.
    pub fn hash_mut_enc(
        &mut self,
        key: &Bytes,
        create: bool,
    ) -> Result<Option<(&mut crate::value::Hash, &mut bool)>, Reply> {
        let o = self.container_obj_mut(key, create, Kind::Hash, || Value::Hash(Box::default()))?;
        Ok(o.map(|o| match &mut o.value {
            Value::Hash(h) => (&mut **h, &mut o.big_encoding),
            _ => unreachable!("kind checked"),
        }))
    }

    /// [`Cx::zset_mut`], with the value's sticky encoding flag.
    pub fn zset_mut_enc(
        &mut self,
        key: &Bytes,
        create: bool,
    ) -> Result<Option<(&mut ZSet, &mut bool)>, Reply> {
        let o = self.container_obj_mut(key, create, Kind::ZSet, || {
            Value::ZSet(Box::new(ZSet::new()))
        })?;
        Ok(o.map(|o| match &mut o.value {
            Value::ZSet(z) => (&mut **z, &mut o.big_encoding),
            _ => unreachable!("kind checked"),
        }))
    }

    /// The object of a live key, for in-place string edits that also set its sticky
    /// encoding flag (copied first if a snapshot shares it).
    pub fn obj_mut(&mut self, key: &Bytes) -> Option<&mut crate::db::Obj> {
        self.store.expire_if_needed(self.db, key, self.now);
        self.store.dbs[self.db].get_mut_obj(key)
    }

    // ----- argument parsing -----

    pub fn int_arg(&self, b: &Bytes) -> Result<i64, Reply> {
        crate::num::parse_i64(b).ok_or_else(|| Reply::err(reply::ERR_NOT_INT))
    }

    pub fn float_arg(&self, b: &Bytes) -> Result<f64, Reply> {
        crate::num::parse_f64(b).ok_or_else(|| Reply::err(reply::ERR_NOT_FLOAT))
    }
}

impl Store {
    /// The encoding Redis 7.0 would report for a stored value (OBJECT ENCODING, DEBUG
    /// OBJECT). redsnap's representation differs; this answers what clients and test
    /// suites expect.
    pub fn encoding_of(config: &EngineConfig, obj: &crate::db::Obj) -> &'static str {
        crate::cmd::keys::encoding(obj, config)
    }
}

/// Key eviction policies (`maxmemory-policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvictPolicy {
    NoEviction,
    AllKeysLru,
    VolatileLru,
    AllKeysLfu,
    VolatileLfu,
    AllKeysRandom,
    VolatileRandom,
    VolatileTtl,
}

impl EvictPolicy {
    pub fn parse(s: &str) -> Option<EvictPolicy> {
        Some(match s {
            "noeviction" => EvictPolicy::NoEviction,
            "allkeys-lru" => EvictPolicy::AllKeysLru,
            "volatile-lru" => EvictPolicy::VolatileLru,
            "allkeys-lfu" => EvictPolicy::AllKeysLfu,
            "volatile-lfu" => EvictPolicy::VolatileLfu,
            "allkeys-random" => EvictPolicy::AllKeysRandom,
            "volatile-random" => EvictPolicy::VolatileRandom,
            "volatile-ttl" => EvictPolicy::VolatileTtl,
            _ => return None,
        })
    }
    pub fn is_lfu(self) -> bool {
        matches!(self, EvictPolicy::AllKeysLfu | EvictPolicy::VolatileLfu)
    }
    fn volatile_only(self) -> bool {
        matches!(
            self,
            EvictPolicy::VolatileLru
                | EvictPolicy::VolatileLfu
                | EvictPolicy::VolatileRandom
                | EvictPolicy::VolatileTtl
        )
    }
}

/// Initial LFU counter of a new key (Redis's LFU_INIT_VAL).
const LFU_INIT: u32 = 5;

/// The LFU counter after decay (one point per minute idle, as lfu-decay-time 1).
fn lfu_decayed(access: u32, now_min: u32) -> u32 {
    if access == 0 {
        return LFU_INIT;
    }
    let ldt = access >> 8;
    let counter = access & 0xff;
    let elapsed = (now_min & 0xffffff).wrapping_sub(ldt) & 0xffffff;
    counter.saturating_sub(elapsed)
}

/// The access clock's minutes (Redis's `LFUGetTimeInMinutes`).
fn lfu_minutes(now: u64) -> u32 {
    ((now / 60_000) & 0xffffff) as u32
}

/// Seconds since the last access of an object under an LRU policy (OBJECT
/// IDLETIME): the clock is in milliseconds and wraps every ~49 days.
pub fn lru_idle_secs(access: u32, now: u64) -> u64 {
    if access == 0 {
        return 0;
    }
    lru_idle_ms(access, now) / 1000
}

/// Milliseconds since the access an LRU clock (`Obj::access` in LRU mode) records. A
/// clock ahead of `now` (another connection's later command) counts as just accessed.
pub fn lru_idle_ms(access: u32, now: u64) -> u64 {
    let idle = (now as u32).wrapping_sub(access);
    if idle > u32::MAX / 2 {
        0
    } else {
        idle as u64
    }
}

/// The LFU counter of an object after its decay (OBJECT FREQ, Redis's
/// `LFUDecrAndReturn`).
pub fn lfu_freq(access: u32, now: u64) -> u32 {
    lfu_decayed(access, lfu_minutes(now))
}

/// RESTORE ... IDLETIME / FREQ (Redis's `objectSetLRUOrLFU`): FREQ counts under an
/// LFU policy, IDLETIME under the others; the other one is ignored. An idle time
/// beyond half the clock's range is kept at half of it (the clock wraps).
pub fn set_restored_access(
    obj: &crate::db::Obj,
    lfu: bool,
    freq: Option<u8>,
    idle_secs: Option<u64>,
    now: u64,
) {
    use std::sync::atomic::Ordering::Relaxed;
    if lfu {
        if let Some(f) = freq {
            obj.access
                .store((lfu_minutes(now) << 8) | f as u32, Relaxed);
        }
    } else if let Some(idle) = idle_secs {
        let idle_ms = idle.saturating_mul(1000).min(u32::MAX as u64 / 2);
        obj.access
            .store((now as u32).wrapping_sub(idle_ms as u32).max(1), Relaxed);
    }
}

impl Store {
    /// Records an access for LRU/LFU eviction (through a shared reference: the value
    /// itself is not copied even if a snapshot shares it).
    pub fn touch_obj(lfu: bool, obj: &crate::db::Obj, now: u64, rng: &mut SmallRng) {
        use std::sync::atomic::Ordering::Relaxed;
        if lfu {
            let now_min = lfu_minutes(now);
            let mut counter = lfu_decayed(obj.access.load(Relaxed), now_min);
            if counter < 255 {
                // Redis's LFULogIncr with lfu-log-factor 10.
                let base = counter.saturating_sub(LFU_INIT) as f64;
                let p = 1.0 / (base * 10.0 + 1.0);
                if rng.random::<f64>() < p {
                    counter += 1;
                }
            }
            obj.access.store((now_min << 8) | counter, Relaxed);
        } else {
            // LRU clock in milliseconds (wrapping; idle times are computed with
            // wrapping subtraction, valid up to ~49 days), finer than Redis's 1 s.
            obj.access.store(now as u32, Relaxed);
        }
    }

    /// Evicts one key chosen by sampling `samples` candidates per database, as Redis's
    /// approximated LRU/LFU/TTL/random eviction does. Returns false when no key can be
    /// evicted under the policy.
    pub fn evict_one(&mut self, policy: EvictPolicy, samples: usize, now: u64) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        if policy == EvictPolicy::NoEviction {
            return false;
        }
        let samples = samples.max(1);
        let now_min = ((now / 60_000) & 0xffffff) as u32;
        let mut cands: Vec<(usize, Bytes)> = std::mem::take(&mut self.evict_pool);
        for db in 0..self.dbs.len() {
            let start: u64 = self.rng.random();
            if policy.volatile_only() {
                cands.extend(
                    self.dbs[db]
                        .volatile_from(start)
                        .take(samples)
                        .map(|k| (db, k.key.to_bytes())),
                );
            } else {
                let mut h = start;
                for _ in 0..samples {
                    let Some((k, _)) = self.dbs[db].key_at_or_after(h) else {
                        break;
                    };
                    cands.push((db, k.to_bytes()));
                    h = self.dbs[db].key_hash(k).wrapping_add(1);
                }
            }
        }
        // Score every candidate with its current access data (keys read since they
        // entered the pool count as recent); drop candidates that no longer exist.
        let mut scored: Vec<(u64, usize, Bytes)> = Vec::with_capacity(cands.len());
        for (db, key) in cands {
            let Some(e) = self.dbs[db].get(&key) else {
                continue;
            };
            if policy.volatile_only() && e.expire_at().is_none() {
                continue;
            }
            let access = e.obj.access.load(Relaxed);
            let score: u64 = match policy {
                EvictPolicy::AllKeysLru | EvictPolicy::VolatileLru => lru_idle_ms(access, now),
                EvictPolicy::AllKeysLfu | EvictPolicy::VolatileLfu => {
                    255 - lfu_decayed(access, now_min).min(255) as u64
                }
                EvictPolicy::VolatileTtl => u64::MAX - e.expire_at().unwrap_or(u64::MAX),
                _ => self.rng.random::<u32>() as u64,
            };
            if !scored.iter().any(|(_, d, k)| *d == db && *k == key) {
                scored.push((score, db, key));
            }
        }
        scored.sort_by_key(|c| std::cmp::Reverse(c.0));
        let mut rest = scored.into_iter();
        let best = rest.next();
        self.evict_pool = rest.take(16).map(|(_, db, k)| (db, k)).collect();
        let Some((_, db, key)) = best else {
            return false;
        };
        self.dbs[db].remove(&key);
        self.stats.evicted_keys += 1;
        self.notify(db, notify::EVICTED, "evicted", &key);
        self.effects.touched.push((db, key.clone()));
        self.effects.log.push(LogRecord {
            db,
            time: now,
            argv: vec![Bytes::from_static(b"DEL"), key],
        });
        true
    }
}
