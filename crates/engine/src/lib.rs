//! The keyspace engine of redsnap: Redis's data types and commands, 16 databases and
//! expiry, with no I/O. The server feeds it parsed commands and a clock; it answers
//! with typed [`Reply`] values and leaves [`Effects`] (touched keys, dirty count, log
//! records) for the layers above.
//!
//! Data model: each database is a persistent hash trie (`trie::Trie`) ordered by
//! `(hash, key)` with values behind `Arc`s, so a snapshot is an O(1) clone and writes
//! copy only what they touch while a snapshot is being written. See ARCHITECTURE.md.

pub mod changes;
pub mod cmd;
pub mod cmdmeta;
pub mod db;
pub mod dict;
pub mod digest;
pub mod functions;
pub mod geo;
pub mod getkeys;
pub mod glob;
pub mod hash;
pub mod hll;
pub mod json;
pub mod key;
pub mod lazyfree;
pub mod ld;
pub mod list;
pub mod notify;
pub mod num;
pub mod rdb;
pub mod reply;
pub mod store;
pub mod stream;
pub mod table;
pub mod text;
pub mod trie;
pub mod unique;
pub mod value;
pub mod zset_tree;

#[cfg(test)]
mod test_alloc;
#[cfg(test)]
#[global_allocator]
static TEST_ALLOC: test_alloc::Tracking = test_alloc::Tracking;

pub use db::{Db, Entry};
pub use functions::Libraries;
pub use hash::{HashSeed, KeyHasher};
pub use reply::Reply;
pub use store::{CmdResult, Cx, Dataset, Effects, EngineConfig, ExpireMode, LogRecord, Store};
pub use table::{lookup, CommandSpec};
pub use value::{Kind, Value, ZSet};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
