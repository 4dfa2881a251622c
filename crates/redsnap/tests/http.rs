//! `redsnap::http::router`: `/metrics` parses as Prometheus/OpenMetrics text
//! and `/health` (and `/health/memory`) return the health JSON, 503 while
//! Redis is down. Served on 127.0.0.1:0 and queried with raw HTTP/1.1.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use redsnap::{SaveOutcome, Snapshots};
use redsnap_testsupport::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// GET `path`; returns (status, content-type, body).
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        buf
    };
    let buf = tokio::time::timeout(Duration::from_secs(15), fut)
        .await
        .expect("HTTP response within 15 s");
    let text = String::from_utf8(buf).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("header end");
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let ctype = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, ctype, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    loop {
        let (len, rest) = s.split_once("\r\n").unwrap();
        let n = usize::from_str_radix(len.trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
}

#[derive(Debug, Default)]
struct Family {
    kind: String,
    help: bool,
}

/// A small Prometheus / OpenMetrics text parser: every line is a comment
/// (`# HELP name text`, `# TYPE name type`, `# UNIT`, `# EOF`) or a sample
/// `name{label="value",...} number`; samples belong to a declared family.
/// Returns (families, samples keyed by `name{labels}`).
fn parse_exposition(text: &str) -> (BTreeMap<String, Family>, BTreeMap<String, f64>) {
    let mut fams: BTreeMap<String, Family> = BTreeMap::new();
    let mut samples = BTreeMap::new();
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "OpenMetrics ends with # EOF");
    for line in &lines[..lines.len() - 1] {
        assert!(!line.is_empty(), "empty line");
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kw = parts.next().unwrap();
            let name = parts
                .next()
                .unwrap_or_else(|| panic!("bad comment {line:?}"));
            assert!(valid_name(name), "bad family name in {line:?}");
            let arg = parts
                .next()
                .unwrap_or_else(|| panic!("no text in {line:?}"));
            let f = fams.entry(name.to_string()).or_default();
            match kw {
                "HELP" => {
                    assert!(!f.help, "two HELP for {name}");
                    assert!(!arg.trim().is_empty());
                    f.help = true;
                }
                "TYPE" => {
                    assert!(f.kind.is_empty(), "two TYPE for {name}");
                    assert!(
                        [
                            "counter",
                            "gauge",
                            "histogram",
                            "summary",
                            "unknown",
                            "info",
                            "stateset",
                            "gaugehistogram"
                        ]
                        .contains(&arg),
                        "bad type in {line:?}"
                    );
                    f.kind = arg.to_string();
                }
                "UNIT" => {}
                other => panic!("unknown comment keyword {other} in {line:?}"),
            }
            continue;
        }
        assert!(!line.starts_with('#'), "bad comment {line:?}");
        // name{labels} value [timestamp]
        let (series, value) = match line.find('}') {
            Some(close) => {
                let (s, v) = line.split_at(close + 1);
                (s, v.trim())
            }
            None => line.split_once(' ').expect("name value"),
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, Some(l.strip_suffix('}').expect("closing brace"))),
            None => (series, None),
        };
        assert!(valid_name(name), "bad metric name {name:?} in {line:?}");
        if let Some(labels) = labels {
            // label="value" pairs, comma separated, values quoted/escaped.
            let mut rest = labels;
            while !rest.is_empty() {
                let (k, after) = rest.split_once("=\"").expect("label=\"value\"");
                assert!(valid_name(k) && !k.contains(':'), "bad label name {k:?}");
                let mut end = None;
                let mut esc = false;
                for (i, c) in after.char_indices() {
                    match (esc, c) {
                        (true, _) => esc = false,
                        (false, '\\') => esc = true,
                        (false, '"') => {
                            end = Some(i);
                            break;
                        }
                        _ => {}
                    }
                }
                let end = end.expect("closing quote");
                rest = after[end + 1..]
                    .strip_prefix(',')
                    .unwrap_or(&after[end + 1..]);
            }
        }
        let num = value.split_whitespace().next().expect("value");
        let v: f64 = match num {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            n => n
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        // The sample belongs to a declared family (suffixes per type).
        let fam = fams
            .iter()
            .filter(|(f, _)| {
                name == f.as_str()
                    || ["_total", "_bucket", "_sum", "_count", "_created", "_info"]
                        .iter()
                        .any(|s| name.strip_suffix(s) == Some(f.as_str()))
            })
            .max_by_key(|(f, _)| f.len())
            .unwrap_or_else(|| panic!("sample {name} without a TYPE"));
        assert!(!fam.1.kind.is_empty() && fam.1.help, "{name}: {:?}", fam.1);
        if fam.1.kind == "counter" {
            assert!(
                name.ends_with("_total") || name.ends_with("_created"),
                "{name}"
            );
            assert!(v >= 0.0, "negative counter {line:?}");
        }
        assert!(
            samples.insert(series.to_string(), v).is_none(),
            "duplicate series {series}"
        );
    }
    (fams, samples)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_over_http() {
    let fb = tempfile::tempdir().unwrap();
    let mut server = RedisServer::start().unwrap();
    let store = common::outage_store(server.port());
    let ns = common::ns("http");
    let snaps = Snapshots::<Vec<String>>::new(store.clone(), &ns)
        .with_fallback(fb.path())
        .unwrap()
        .with_breaker(1, Duration::from_secs(60));
    let state: Vec<String> = (0..1000).map(|i| format!("item number {i}")).collect();
    assert!(matches!(
        snaps.save(&state).await.unwrap(),
        SaveOutcome::Saved { .. }
    ));
    assert_eq!(snaps.save(&state).await.unwrap(), SaveOutcome::Unchanged);
    assert_eq!(snaps.latest().await.unwrap().unwrap().state, state);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = redsnap::http::router(store.clone());
    let srv = tokio::spawn(async move { axum::serve(listener, app).await });

    let (code, ctype, body) = get(addr, "/metrics").await;
    assert_eq!(code, 200);
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    let (fams, samples) = parse_exposition(&body);
    for (name, kind) in [
        ("redsnap_snapshot_saves", "counter"),
        ("redsnap_snapshot_loads", "counter"),
        ("redsnap_snapshot_failures", "counter"),
        ("redsnap_snapshot_save_duration_seconds", "histogram"),
        ("redsnap_snapshot_load_duration_seconds", "histogram"),
        ("redsnap_snapshot_raw_bytes", "counter"),
        ("redsnap_snapshot_stored_bytes", "counter"),
        ("redsnap_latest_snapshot_age_seconds", "gauge"),
        ("redsnap_breaker_state", "gauge"),
        ("redsnap_fallback_journal_depth", "gauge"),
        ("redsnap_reconnect_attempts", "counter"),
        ("redsnap_reconnects", "counter"),
        ("redsnap_connection_up", "gauge"),
    ] {
        assert_eq!(
            fams.get(name).map(|f| f.kind.as_str()),
            Some(kind),
            "{name}"
        );
    }
    let l = format!("namespace=\"{ns}\"");
    let val = |series: &str| -> f64 {
        *samples
            .get(series)
            .unwrap_or_else(|| panic!("{series} missing:\n{body}"))
    };
    assert_eq!(
        val(&format!(
            "redsnap_snapshot_saves_total{{{l},outcome=\"saved\"}}"
        )),
        1.0
    );
    assert_eq!(
        val(&format!(
            "redsnap_snapshot_saves_total{{{l},outcome=\"unchanged\"}}"
        )),
        1.0
    );
    assert_eq!(val(&format!("redsnap_snapshot_loads_total{{{l}}}")), 1.0);
    assert_eq!(
        val(&format!(
            "redsnap_snapshot_save_duration_seconds_count{{{l}}}"
        )),
        2.0
    );
    let sum = val(&format!(
        "redsnap_snapshot_save_duration_seconds_sum{{{l}}}"
    ));
    assert!(sum > 0.0 && sum < 10.0, "{sum}");
    let inf_bucket = samples
        .iter()
        .find(|(k, _)| {
            k.starts_with("redsnap_snapshot_save_duration_seconds_bucket{")
                && k.contains(&l)
                && k.contains("le=\"+Inf\"")
        })
        .map(|(_, v)| *v);
    assert_eq!(inf_bucket, Some(2.0), "{body}");
    let raw = val(&format!("redsnap_snapshot_raw_bytes_total{{{l}}}"));
    let stored = val(&format!("redsnap_snapshot_stored_bytes_total{{{l}}}"));
    assert!(
        raw > 2000.0 && stored < raw / 2.0,
        "raw {raw} stored {stored}"
    );
    let age = val(&format!("redsnap_latest_snapshot_age_seconds{{{l}}}"));
    assert!((0.0..30.0).contains(&age), "{age}");
    assert_eq!(val(&format!("redsnap_breaker_state{{{l}}}")), 0.0);
    assert_eq!(val(&format!("redsnap_fallback_journal_depth{{{l}}}")), 0.0);
    assert_eq!(val("redsnap_connection_up"), 1.0);

    for path in ["/health", "/health/memory"] {
        let (code, ctype, body) = get(addr, path).await;
        assert_eq!(code, 200, "{body}");
        assert!(ctype.starts_with("application/json"), "{ctype}");
        let j: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(j["healthy"], true);
        assert_eq!(j["connectionState"], "connected");
        assert_eq!(j["reconnectAttempts"], 0);
        assert!(j["latencyMs"].as_u64().is_some());
        assert_eq!(j["breaker"], "closed");
        assert_eq!(j["fallbackDepth"], 0);
        let keys: BTreeSet<&str> = j.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        for k in [
            "healthy",
            "connectionState",
            "reconnectAttempts",
            "latencyMs",
            "breaker",
            "fallbackDepth",
            "namespaces",
        ] {
            assert!(keys.contains(k), "{k} missing in {body}");
        }
    }

    // Outage: 503, the save is deferred, the breaker (threshold 1) opens.
    server.stop();
    let (code, _, body) = get(addr, "/health").await;
    assert_eq!(code, 503, "{body}");
    let j: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(j["healthy"], false);
    assert!(j["reconnectAttempts"].as_u64().unwrap() >= 1, "{body}");
    assert!(j["latencyMs"].is_null());
    let mut changed = state.clone();
    changed.push("one more".into());
    assert!(matches!(
        snaps.save(&changed).await.unwrap(),
        SaveOutcome::Deferred { .. }
    ));
    // Once Redis is known to be down, failures are counted by a background probe
    // (saves no longer wait on Redis): the breaker opens within a probe's time.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let j = loop {
        let (_, _, body) = get(addr, "/health/memory").await;
        let j: serde_json::Value = serde_json::from_str(&body).unwrap();
        if j["breaker"] == "open" || std::time::Instant::now() > deadline {
            break j;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(j["breaker"], "open", "{j}");
    assert_eq!(j["fallbackDepth"], 1, "{j}");
    let (_, _, body) = get(addr, "/metrics").await;
    let (_, samples) = parse_exposition(&body);
    assert_eq!(samples[&format!("redsnap_breaker_state{{{l}}}")], 2.0);
    assert_eq!(
        samples[&format!("redsnap_fallback_journal_depth{{{l}}}")],
        1.0
    );
    assert_eq!(
        samples[&format!("redsnap_snapshot_saves_total{{{l},outcome=\"deferred\"}}")],
        1.0
    );
    assert!(samples["redsnap_reconnect_attempts_total"] >= 1.0);
    assert_eq!(samples["redsnap_connection_up"], 0.0);

    // Back: healthy again.
    server.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, _, body) = get(addr, "/health").await;
        if code == 200 {
            let j: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(j["reconnectAttempts"], 0);
            break;
        }
        assert!(Instant::now() < deadline, "still unhealthy: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, _, _) = get(addr, "/nope").await;
    assert_eq!(code, 404);
    srv.abort();
}
