//! Lock and pub/sub beyond the conformance suite (`conformance.rs`): a watch
//! across a server restart, the lock's property test, auto-extension.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redsnap::{Lock, RedisStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_survives_a_server_restart() {
    let (mut s, store) = common::plain();
    let mut w = store.watch("chan").await.unwrap();
    s.stop();
    s.restart().unwrap();
    // Publish until the resubscribed watcher sees a message.
    let got = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let _ = store.publish("chan", b"hello").await;
            if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(200), w.recv()).await {
                return m;
            }
        }
    })
    .await
    .expect("watch resubscribed");
    assert_eq!(got, b"hello");
}

/// A write to `log` allowed only while `lock` still holds our token (what a
/// fenced resource would do): returns 1 if appended, 0 if we lost the lock.
const GUARDED_APPEND: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('RPUSH', KEYS[2], ARGV[2])
  return 1
end
return 0
"#;

#[derive(Debug, Clone)]
struct Plan {
    ttl_ms: u64,
    /// Per holder, per acquisition: pauses (ms) between guarded writes.
    pauses: Vec<Vec<Vec<u64>>>,
}

fn plan() -> impl proptest::strategy::Strategy<Value = Plan> {
    use proptest::prelude::*;
    (40u64..120).prop_flat_map(|ttl| {
        // Pauses up to 1.6x the TTL: some holders expire mid-section.
        let pause = prop_oneof![3 => 0u64..20, 1 => (ttl / 2)..(ttl * 8 / 5)];
        let acq = proptest::collection::vec(pause, 1..4);
        let holder = proptest::collection::vec(acq, 1..3);
        proptest::collection::vec(holder, 2..4).prop_map(move |pauses| Plan {
            ttl_ms: ttl,
            pauses,
        })
    })
}

/// Property over many rounds: two holders never overlap. Each acquisition
/// writes entries through a token-checked script; in the server's log the
/// entries of one acquisition are never interleaved with another's, the
/// fencing tokens only grow, and a holder whose lock expired can neither
/// write, extend nor release (so it cannot free the new holder's lock).
#[test]
fn lock_holders_never_overlap_property() {
    use proptest::test_runner::{Config, TestRunner};
    let server = redsnap_testsupport::RedisServer::start().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let store = rt.block_on(async {
        RedisStore::new(common::quick(
            redsnap::RedisConfig::new(&server.url()).unwrap(),
        ))
        .unwrap()
    });
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    let started = std::time::Instant::now();
    let round = AtomicUsize::new(0);
    runner
        .run(&plan(), |plan| {
            let r = round.fetch_add(1, Ordering::SeqCst);
            rt.block_on(run_round(&store, r, plan));
            Ok(())
        })
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    // The plans made some holders outlive their TTL, and they were refused.
    assert!(LOST.load(Ordering::SeqCst) > 0, "no expiry exercised");
}

static LOST: AtomicUsize = AtomicUsize::new(0);

async fn run_round(store: &RedisStore, round: usize, plan: Plan) {
    let name = format!("prop-{round}-{}", rand::random::<u32>());
    let log = format!("{}:log", Lock::key_for(&name));
    let ttl = Duration::from_millis(plan.ttl_ms);
    let mut tasks = Vec::new();
    for (h, acquisitions) in plan.pauses.iter().cloned().enumerate() {
        let store = store.clone();
        let name = name.clone();
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let script = redis::Script::new(GUARDED_APPEND);
            for (a, pauses) in acquisitions.into_iter().enumerate() {
                let lock = Lock::acquire(&store, &name, ttl, Duration::from_secs(10))
                    .await
                    .unwrap()
                    .expect("acquired within 10 s");
                let fence = lock.fencing_token();
                let mut held = true;
                for (step, pause) in pauses.iter().enumerate() {
                    let entry = format!("{fence}:{h}:{a}:{step}");
                    let mut inv = script.prepare_invoke();
                    inv.key(lock.key()).key(&log).arg(lock.token()).arg(entry);
                    let ok: i64 = store.invoke(&inv).await.unwrap();
                    if !held {
                        assert_eq!(ok, 0, "wrote again after losing the lock");
                    }
                    held = ok == 1;
                    tokio::time::sleep(Duration::from_millis(*pause)).await;
                }
                if !held {
                    LOST.fetch_add(1, Ordering::SeqCst);
                    // Expired: extend and release are refused and the current
                    // value (someone else's token, or nothing) is untouched.
                    let before: Option<String> = store
                        .query(redis::cmd("GET").arg(lock.key()))
                        .await
                        .unwrap();
                    assert_ne!(before.as_deref(), Some(lock.token()));
                    assert!(!lock.extend(ttl).await.unwrap());
                    // (The release script deletes only our own token.)
                    assert!(!lock.release().await.unwrap());
                } else {
                    let _ = lock.release().await.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let entries: Vec<String> = store
        .query(redis::cmd("LRANGE").arg(&log).arg(0).arg(-1))
        .await
        .unwrap();
    // Group by acquisition (fence): contiguous runs, increasing fences.
    let mut seen = std::collections::HashSet::new();
    let mut last: Option<u64> = None;
    for e in &entries {
        let fence: u64 = e.split(':').next().unwrap().parse().unwrap();
        if last != Some(fence) {
            assert!(
                last.is_none_or(|l| fence > l),
                "fencing token went backwards: {entries:?}"
            );
            assert!(seen.insert(fence), "acquisitions interleaved: {entries:?}");
            last = Some(fence);
        }
    }
    let _: i64 = store.query(redis::cmd("DEL").arg(&log)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_extend_keeps_the_lock_until_dropped() {
    let (_server, store) = common::plain();
    let name = common::ns("auto-extend");
    let ttl = Duration::from_millis(300);
    let lock = Lock::try_acquire(&store, &name, ttl)
        .await
        .unwrap()
        .expect("free lock");
    let keeper = lock.auto_extend(ttl);
    // Well past the TTL, the lock is still ours.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(!keeper.is_lost());
    assert!(
        Lock::try_acquire(&store, &name, ttl)
            .await
            .unwrap()
            .is_none(),
        "extended lock must still be held"
    );
    // Stop extending: it expires by itself and another holder gets it.
    drop(keeper);
    tokio::time::sleep(Duration::from_millis(450)).await;
    let next = Lock::try_acquire(&store, &name, ttl)
        .await
        .unwrap()
        .expect("lock expired after the keeper stopped");
    assert!(next.fencing_token() > lock.fencing_token());
    // The old holder's keeper notices the loss.
    let stale = lock.auto_extend(ttl);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(stale.is_lost());
    assert!(
        !lock.release().await.unwrap(),
        "an expired holder cannot release the new holder's lock"
    );
}
