//! Freeing large values and whole databases on a background thread (Redis's
//! lazyfree.c): UNLINK of a value whose freeing takes more than
//! [`LAZYFREE_THRESHOLD`] allocations, FLUSHDB/FLUSHALL ASYNC. The command only moves
//! the value out of the keyspace; a `redsnap-lazyfree` thread drops it. INFO's
//! `lazyfree_pending_objects` and `lazyfreed_objects` count them as Redis does.

use crate::db::Entry;
use crate::store::{EngineConfig, Store};
use crate::value::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Mutex, OnceLock};

/// Redis's LAZYFREE_THRESHOLD: values cheaper to free than this are freed at once.
pub const LAZYFREE_THRESHOLD: usize = 64;

static PENDING: AtomicU64 = AtomicU64::new(0);
static FREED: AtomicU64 = AtomicU64::new(0);

type Job = (Box<dyn Send>, u64);

fn worker() -> Option<&'static Mutex<Sender<Job>>> {
    static TX: OnceLock<Option<Mutex<Sender<Job>>>> = OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = channel::<Job>();
        std::thread::Builder::new()
            .name("redsnap-lazyfree".into())
            .spawn(move || {
                for (job, objects) in rx {
                    drop(job);
                    PENDING.fetch_sub(objects, Ordering::Relaxed);
                    FREED.fetch_add(objects, Ordering::Relaxed);
                }
            })
            .ok()
            .map(|_| Mutex::new(tx))
    })
    .as_ref()
}

/// Drops `value` (standing for `objects` of Redis's objects) on the lazyfree thread;
/// here if that thread could not be started.
pub fn drop_later<T: Send + 'static>(value: T, objects: u64) {
    let Some(tx) = worker() else {
        drop(value);
        return;
    };
    PENDING.fetch_add(objects, Ordering::Relaxed);
    let job: Job = (Box::new(value), objects);
    let sent = match tx.lock() {
        Ok(tx) => tx.send(job).map_err(|e| e.0),
        Err(_) => Err(job),
    };
    if let Err((job, objects)) = sent {
        PENDING.fetch_sub(objects, Ordering::Relaxed);
        drop(job);
    }
}

/// Objects waiting to be freed (`lazyfree_pending_objects`).
pub fn pending() -> u64 {
    PENDING.load(Ordering::Relaxed)
}

/// Objects freed in the background (`lazyfreed_objects`).
pub fn freed() -> u64 {
    FREED.load(Ordering::Relaxed)
}

/// CONFIG RESETSTAT.
pub fn reset_stats() {
    FREED.store(0, Ordering::Relaxed);
}

/// How many allocations freeing the value takes, as Redis's `lazyfreeGetFreeEffort`
/// estimates it: 1 for compact encodings, the element count for hash tables and
/// skip lists, the quicklist's node count for lists, macro nodes plus consumer
/// groups' PEL entries for streams.
pub fn free_effort(config: &EngineConfig, entry: &Entry) -> usize {
    let obj = &entry.obj;
    match &obj.value {
        // RedisJSON registers no free_effort callback, so Redis counts a document
        // as 1 (freed at once).
        Value::Str(_) | Value::Json(_) => 1,
        Value::List(l) => l.len() / 128 + 1,
        Value::Hash(_) | Value::Set(_) | Value::ZSet(_) => {
            let len = match &obj.value {
                Value::Hash(h) => h.len(),
                Value::Set(s) => s.len(),
                Value::ZSet(z) => z.len(),
                _ => 1,
            };
            match Store::encoding_of(config, obj) {
                "hashtable" | "skiplist" => len,
                _ => 1,
            }
        }
        Value::Stream(s) => {
            let mut effort = s.nodes.len();
            if let Some(g) = s.groups.values().next() {
                effort += s.groups.len() * (1 + g.pel.len());
            }
            effort
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn run(s: &mut Store, args: &[&str]) -> crate::Reply {
        let argv: Vec<Bytes> = args
            .iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect();
        s.exec(0, crate::now_ms(), &argv)
    }

    fn wait_freed(at_least: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while freed() < at_least {
            assert!(
                std::time::Instant::now() < deadline,
                "not freed: {}",
                freed()
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn unlink_and_flush_async_free_in_the_background() {
        let mut s = Store::default();
        let mut sadd = vec!["SADD".to_string(), "big".to_string()];
        sadd.extend((0..1000).map(|i| format!("m{i}")));
        let sadd: Vec<&str> = sadd.iter().map(String::as_str).collect();
        run(&mut s, &sadd);
        run(&mut s, &["SET", "small", "v"]);
        let e = s.dbs[0].get(b"big").expect("big").clone();
        assert!(free_effort(&s.config, &e) > LAZYFREE_THRESHOLD);
        drop(e);
        let small = s.dbs[0].get(b"small").expect("small").clone();
        assert_eq!(free_effort(&s.config, &small), 1);
        drop(small);
        let before = freed();
        assert_eq!(
            run(&mut s, &["UNLINK", "big", "small", "none"]),
            crate::Reply::Int(2)
        );
        assert!(s.dbs[0].is_empty());
        wait_freed(before + 1);
        // FLUSHALL ASYNC: the keys leave at once, their memory goes in the background.
        for i in 0..100 {
            run(&mut s, &["SET", &format!("k{i}"), "v"]);
        }
        let before = freed();
        assert_eq!(run(&mut s, &["FLUSHALL", "ASYNC"]), crate::Reply::ok());
        assert_eq!(s.total_keys(), 0);
        wait_freed(before + 100);
    }
}
