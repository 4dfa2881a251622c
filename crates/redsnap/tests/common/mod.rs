//! Shared helpers for the integration tests.
#![allow(dead_code)]

pub mod agent;
pub mod proxy;

use std::time::Duration;

use redsnap::{RedisConfig, RedisStore, TlsConfig};
use redsnap_testsupport::{RedisCluster, RedisServer, TlsFiles};

/// Short timeouts so failures are fast.
pub fn quick(cfg: RedisConfig) -> RedisConfig {
    cfg.connection_timeout(Duration::from_secs(2))
        .response_timeout(Duration::from_secs(5))
        .max_reconnect_attempts(3)
        .operation_timeout(Duration::from_secs(20))
}

/// A store for outage tests: fails fast (one reconnect attempt) so that the fallback
/// takes over quickly while the test stops and restarts the server at `port`.
pub fn outage_store(port: u16) -> RedisStore {
    RedisStore::new(
        RedisConfig::new(&format!("redis://127.0.0.1:{port}"))
            .unwrap()
            .connection_timeout(Duration::from_millis(200))
            .response_timeout(Duration::from_secs(2))
            .max_reconnect_attempts(1)
            .operation_timeout(Duration::from_secs(3)),
    )
    .unwrap()
}

pub fn plain() -> (RedisServer, RedisStore) {
    let s = RedisServer::start().expect("redis-server");
    let store = RedisStore::new(quick(RedisConfig::new(&s.url()).unwrap())).unwrap();
    (s, store)
}

pub fn password() -> (RedisServer, RedisStore) {
    let s = RedisServer::builder()
        .password("pässw0rd-x")
        .start()
        .expect("redis-server");
    // The password comes from the config (REDIS_PASSWORD style), not the URL.
    let cfg = RedisConfig::new(&format!("redis://127.0.0.1:{}", s.port()))
        .unwrap()
        .password("pässw0rd-x");
    let store = RedisStore::new(quick(cfg)).unwrap();
    (s, store)
}

pub struct TlsSetup {
    pub server: RedisServer,
    pub store: RedisStore,
    pub files: TlsFiles,
    pub _dir: tempfile::TempDir,
}

pub fn tls() -> TlsSetup {
    let dir = tempfile::tempdir().unwrap();
    let files = TlsFiles::generate(dir.path()).unwrap();
    let server = RedisServer::builder()
        .tls(files.clone())
        .password("tlspw")
        .start()
        .expect("tls redis-server");
    let cfg = RedisConfig::new(&format!("rediss://127.0.0.1:{}", server.port()))
        .unwrap()
        .password("tlspw")
        .tls(TlsConfig::default().with_ca_pem(files.ca_pem().unwrap()));
    let store = RedisStore::new(quick(cfg)).unwrap();
    TlsSetup {
        server,
        store,
        files,
        _dir: dir,
    }
}

pub fn cluster() -> (RedisCluster, RedisStore) {
    let c = RedisCluster::start().expect("cluster");
    let store = RedisStore::new(quick(RedisConfig::cluster(c.urls()).unwrap())).unwrap();
    (c, store)
}

/// A unique namespace per test.
pub fn ns(label: &str) -> String {
    format!("{label}-{}", rand::random::<u32>())
}
