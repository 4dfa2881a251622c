//! Clear, bounded errors: wrong password, unreachable host, TLS mismatch;
//! lazy connect and recovery after an outage.

mod common;

use std::time::{Duration, Instant};

use redsnap::{ConnectionState, Error, Memory, RedisConfig, RedisStore, TlsConfig};
use redsnap_testsupport::{free_port, RedisServer, TlsFiles};

const BOUND: Duration = Duration::from_secs(15);

async fn ping(store: &RedisStore) -> redsnap::Result<String> {
    store.query(&redis::cmd("PING")).await
}

#[tokio::test]
async fn wrong_password_is_an_auth_error() {
    let s = RedisServer::builder().password("right").start().unwrap();
    for pw in [Some("wrong"), None] {
        let mut cfg = RedisConfig::new(&format!("redis://127.0.0.1:{}", s.port())).unwrap();
        if let Some(pw) = pw {
            cfg = cfg.password(pw);
        }
        let store = RedisStore::new(common::quick(cfg)).unwrap();
        let t = Instant::now();
        let err = if pw.is_some() {
            ping(&store).await.unwrap_err()
        } else {
            // Without a password the connection succeeds and commands get NOAUTH.
            Memory::new(store.clone())
                .get::<i32>("governance:t:x:1")
                .await
                .unwrap_err()
        };
        assert!(t.elapsed() < BOUND, "took {:?}", t.elapsed());
        assert!(matches!(err, Error::Auth { .. }), "{pw:?}: {err:?}");
        let msg = err.to_string();
        assert!(msg.contains("authentication"), "{msg}");
        assert!(!msg.contains("wrong"), "password leaked: {msg}");
        let h = store.health().await;
        assert!(!h.healthy);
    }
}

#[tokio::test]
async fn unreachable_host_fails_within_bound() {
    let port = free_port();
    let store = RedisStore::new(common::quick(
        RedisConfig::new(&format!("redis://127.0.0.1:{port}")).unwrap(),
    ))
    .unwrap();
    let t = Instant::now();
    let err = ping(&store).await.unwrap_err();
    eprintln!("error: {err}");
    assert!(t.elapsed() < BOUND, "took {:?}", t.elapsed());
    assert!(err.is_unavailable(), "{err:?}");
    assert!(err.to_string().contains(&port.to_string()), "{err}");
    let h = store.health().await;
    assert!(!h.healthy);
    assert_ne!(h.connection_state, ConnectionState::Connected);
    assert!(h.reconnect_attempts >= 1);
    let json = serde_json::to_value(&h).unwrap();
    assert_eq!(json["healthy"], false);

    // Non-routable address: the connection timeout bounds it (some sandboxes
    // answer such connections with a proxy: any error is fine, a hang is not).
    let store = RedisStore::new(
        RedisConfig::new("redis://10.255.255.1:6379")
            .unwrap()
            .connection_timeout(Duration::from_millis(300))
            .max_reconnect_attempts(1)
            .operation_timeout(Duration::from_secs(5)),
    )
    .unwrap();
    let t = Instant::now();
    let err = ping(&store).await.unwrap_err();
    eprintln!("error: {err}");
    assert!(
        t.elapsed() < Duration::from_secs(6),
        "took {:?}",
        t.elapsed()
    );
    assert!(!err.to_string().is_empty());
}

#[tokio::test]
async fn cluster_unreachable_fails_within_bound() {
    let store = RedisStore::new(common::quick(
        RedisConfig::cluster([
            format!("redis://127.0.0.1:{}", free_port()),
            format!("redis://127.0.0.1:{}", free_port()),
        ])
        .unwrap(),
    ))
    .unwrap();
    let t = Instant::now();
    let err = ping(&store).await.unwrap_err();
    eprintln!("error: {err}");
    assert!(t.elapsed() < BOUND, "took {:?}", t.elapsed());
    assert!(err.is_unavailable(), "{err:?}");
}

#[tokio::test]
async fn tls_with_the_wrong_ca_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let good = TlsFiles::generate(dir.path().join("good")).unwrap();
    let other = TlsFiles::generate(dir.path().join("other")).unwrap();
    let s = RedisServer::builder().tls(good).start().unwrap();
    let cfg = RedisConfig::new(&format!("rediss://127.0.0.1:{}", s.port()))
        .unwrap()
        .tls(TlsConfig::default().with_ca_pem(other.ca_pem().unwrap()));
    let store = RedisStore::new(common::quick(cfg)).unwrap();
    let t = Instant::now();
    let err = ping(&store).await.unwrap_err();
    eprintln!("error: {err}");
    assert!(t.elapsed() < BOUND, "took {:?}", t.elapsed());
    let msg = err.to_string();
    assert!(
        msg.to_lowercase().contains("certificate") || msg.to_lowercase().contains("unknownissuer"),
        "{msg}"
    );

    // Plain redis:// against the TLS port does not hang either.
    let store = RedisStore::new(common::quick(
        RedisConfig::new(&format!("redis://127.0.0.1:{}", s.port())).unwrap(),
    ))
    .unwrap();
    let t = Instant::now();
    assert!(ping(&store).await.is_err());
    assert!(
        t.elapsed() < Duration::from_secs(25),
        "took {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn mutual_tls_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let files = TlsFiles::generate(dir.path()).unwrap();
    let s = RedisServer::builder()
        .tls(files.clone())
        .extra_args(&["--tls-auth-clients", "yes"])
        .start()
        .unwrap();
    let tls = TlsConfig::default()
        .with_ca_pem(files.ca_pem().unwrap())
        .with_client_cert(
            files.client_cert_pem().unwrap(),
            files.client_key_pem().unwrap(),
        );
    let store = RedisStore::new(common::quick(
        RedisConfig::new(&format!("rediss://127.0.0.1:{}", s.port()))
            .unwrap()
            .tls(tls),
    ))
    .unwrap();
    assert_eq!(ping(&store).await.unwrap(), "PONG");

    // Without the client certificate the server refuses us, quickly.
    let store = RedisStore::new(common::quick(
        RedisConfig::new(&format!("rediss://127.0.0.1:{}", s.port()))
            .unwrap()
            .tls(TlsConfig::default().with_ca_pem(files.ca_pem().unwrap())),
    ))
    .unwrap();
    let t = Instant::now();
    assert!(ping(&store).await.is_err());
    assert!(t.elapsed() < BOUND, "took {:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boots_while_redis_is_down_and_recovers_from_an_outage() {
    let port = free_port();
    let store = RedisStore::new(common::quick(
        RedisConfig::new(&format!("redis://127.0.0.1:{port}")).unwrap(),
    ))
    .unwrap();
    // Creating the store did not connect; the first operation fails cleanly.
    assert_eq!(store.connection_state(), ConnectionState::Idle);
    assert!(ping(&store).await.is_err());

    let mut s = RedisServer::builder().port(port).start().unwrap();
    let deadline = Instant::now() + BOUND;
    loop {
        match ping(&store).await {
            Ok(p) => {
                assert_eq!(p, "PONG");
                break;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "never recovered: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let mem = Memory::new(store.clone());
    mem.set("governance:t:x:1", &1, None).await.unwrap();

    // Outage.
    s.stop();
    let t = Instant::now();
    assert!(mem.get::<i32>("governance:t:x:1").await.is_err());
    assert!(t.elapsed() < BOUND);
    let h = store.health().await;
    assert!(!h.healthy);
    assert!(h.reconnect_attempts >= 1);

    // Back (empty: the harness runs without persistence).
    s.restart().unwrap();
    let deadline = Instant::now() + BOUND;
    loop {
        match mem.set("governance:t:x:2", &2, None).await {
            Ok(()) => break,
            Err(e) => {
                assert!(Instant::now() < deadline, "never recovered: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert_eq!(mem.get::<i32>("governance:t:x:2").await.unwrap(), Some(2));
    let h = store.health().await;
    assert!(h.healthy);
    assert_eq!(h.reconnect_attempts, 0);
    assert_eq!(h.connection_state, ConnectionState::Connected);
}
