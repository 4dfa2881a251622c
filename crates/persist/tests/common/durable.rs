//! Driving a `Durable` as its users do: run a command, stage its records, write
//! them and wait until they are durable.

use bytes::Bytes;
use redsnap_engine::Store;
use redsnap_persist::Durable;

pub fn argv(parts: &[&str]) -> Vec<Bytes> {
    parts
        .iter()
        .map(|p| Bytes::copy_from_slice(p.as_bytes()))
        .collect()
}

/// Runs a command and stages its records, then writes them, as the backend does.
pub fn run(store: &mut Store, d: &mut Durable, parts: &[&str]) {
    let r = store.exec(0, redsnap_engine::now_ms(), &argv(parts));
    assert!(!r.is_error(), "{r:?}");
    d.stage(store).unwrap();
    if let Some(log) = d.log() {
        log.write_staged().unwrap();
        log.wait_durable(log.written_token()).unwrap();
    }
}

pub fn get(store: &mut Store, key: &str) -> Option<Bytes> {
    match store.exec(0, redsnap_engine::now_ms(), &argv(&["GET", key])) {
        redsnap_engine::Reply::Bulk(b) => Some(b),
        _ => None,
    }
}
