//! The server over HTTP (`http-port`) and its logs: `/metrics` is well-formed
//! OpenMetrics text (checked by a strict parser below) whose counters follow the
//! commands run; `/health` answers 200, turns 503 while writes are refused after a
//! failed snapshot, and 200 again once a snapshot succeeds; the log lines say so;
//! `--log-format json` writes one JSON object per line; a log file (`logfile`, or
//! stderr captured to a file) holds no terminal escape codes.
//!
//! A snapshot is made to fail by replacing the snapshot store's directory with a
//! file (a full snapshot then cannot create its keyspace: ENOTDIR, even as root),
//! and to succeed again by putting the directory back.

use redsnap_testsupport::{bulk_payload, free_port, raw_command, RedsnapServer};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// Generous bound for what must happen (never a performance assertion).
const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

struct HttpReply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl HttpReply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path` over HTTP/1.1 with `Connection: close`; the body by content-length.
fn http_get(port: u16, path: &str) -> HttpReply {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, WAIT).expect("connect to http-port");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8(raw).expect("utf-8 reply");
    let (head, body) = text.split_once("\r\n\r\n").expect("end of headers");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').expect("header");
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let reply = HttpReply {
        status,
        headers,
        body: body.to_string(),
    };
    let len: usize = reply
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .expect("content-length");
    assert_eq!(reply.body.len(), len, "body length");
    reply
}

fn health(port: u16) -> (u16, serde_json::Value) {
    let r = http_get(port, "/health");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("health JSON");
    (r.status, v)
}

// ---------------------------------------------------------------------------
// A strict OpenMetrics text parser (the subset prometheus-client writes, checked
// against the format's rules).
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
struct Family {
    kind: String,
    help: bool,
    unit: Option<String>,
}

/// Label pairs, sorted.
type Labels = Vec<(String, String)>;

/// A series: its sample name and its labels (sorted).
type Series = (String, Labels);

#[derive(Debug, Default)]
struct Exposition {
    families: BTreeMap<String, Family>,
    samples: BTreeMap<Series, f64>,
}

impl Exposition {
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut l: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        l.sort();
        self.samples.get(&(name.to_string(), l)).copied()
    }
}

fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
}

fn valid_label_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

/// `{a="x",b="y\"z"}` -> labels; the rest of the line after `}`.
fn parse_labels(s: &str) -> Result<(Labels, &str), String> {
    let mut out = Vec::new();
    let mut rest = s.strip_prefix('{').ok_or("expected {")?;
    if let Some(r) = rest.strip_prefix('}') {
        return Ok((out, r));
    }
    loop {
        let eq = rest.find('=').ok_or("label without =")?;
        let name = &rest[..eq];
        if !valid_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value must be quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, '\\')) => value.push('\\'),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((_, '\n')) => return Err("newline in a label value".into()),
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        };
        out.push((name.to_string(), value));
        rest = &rest[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if let Some(r) = rest.strip_prefix('}') {
            return Ok((out, r));
        } else {
            return Err("expected , or }".into());
        }
    }
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => v.parse::<f64>().map_err(|_| format!("bad value {v:?}")),
    }
}

/// The family a sample belongs to, given its name and the declared families.
fn family_of<'a>(sample: &str, families: &'a BTreeMap<String, Family>) -> Option<&'a str> {
    if let Some((name, f)) = families.get_key_value(sample) {
        if matches!(f.kind.as_str(), "gauge" | "unknown") {
            return Some(name);
        }
    }
    for (suffix, kinds) in [
        ("_total", &["counter"][..]),
        ("_created", &["counter", "histogram", "summary"][..]),
        ("_bucket", &["histogram"][..]),
        ("_sum", &["histogram", "summary"][..]),
        ("_count", &["histogram", "summary"][..]),
        ("_info", &["info"][..]),
    ] {
        if let Some(base) = sample.strip_suffix(suffix) {
            if let Some((name, f)) = families.get_key_value(base) {
                if kinds.contains(&f.kind.as_str()) {
                    return Some(name);
                }
            }
        }
    }
    None
}

/// Parses and checks an exposition: descriptors before samples, known types,
/// units that suffix the name, every sample in a declared family, well-formed
/// labels and values, no duplicate series, histograms with cumulative buckets
/// ending in `+Inf` equal to `_count`, counters non-negative, `# EOF` last.
fn parse_openmetrics(text: &str) -> Result<Exposition, String> {
    let mut e = Exposition::default();
    let lines: Vec<&str> = text.split('\n').collect();
    if lines.last() != Some(&"") {
        return Err("the text must end with a newline".into());
    }
    let lines = &lines[..lines.len() - 1];
    if lines.last() != Some(&"# EOF") {
        return Err("the last line must be # EOF".into());
    }
    let mut current: Option<String> = None;
    let mut seen_families = Vec::new();
    for (n, line) in lines[..lines.len() - 1].iter().enumerate() {
        let at = |m: String| format!("line {}: {m}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kw, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let arg = parts.next();
            if !valid_name(name) {
                return Err(at("bad metric name".into()));
            }
            if current.as_deref() != Some(name) {
                if seen_families.contains(&name.to_string()) {
                    return Err(at("family declared twice (interleaved)".into()));
                }
                seen_families.push(name.to_string());
                current = Some(name.to_string());
            }
            let f = e.families.entry(name.to_string()).or_insert(Family {
                kind: "unknown".into(),
                help: false,
                unit: None,
            });
            match (kw, arg) {
                ("TYPE", Some(t)) => {
                    if !matches!(
                        t,
                        "counter"
                            | "gauge"
                            | "histogram"
                            | "info"
                            | "summary"
                            | "stateset"
                            | "gaugehistogram"
                            | "unknown"
                    ) {
                        return Err(at(format!("unknown type {t}")));
                    }
                    f.kind = t.to_string();
                }
                ("HELP", Some(_)) => f.help = true,
                ("UNIT", Some(u)) => {
                    if !name.ends_with(&format!("_{u}")) {
                        return Err(at("the unit must suffix the name".into()));
                    }
                    f.unit = Some(u.to_string());
                }
                _ => return Err(at("bad descriptor".into())),
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            return Err(at("empty line or stray comment".into()));
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
        let name = &line[..name_end];
        if !valid_name(name) {
            return Err(at("bad sample name".into()));
        }
        let (mut labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(at)?
        } else {
            (Vec::new(), &line[name_end..])
        };
        let value = rest
            .strip_prefix(' ')
            .ok_or_else(|| at("expected a space before the value".into()))?;
        // No timestamps or exemplars are written here.
        let value = parse_value(value).map_err(at)?;
        let fam = family_of(name, &e.families).ok_or_else(|| at("undeclared family".into()))?;
        if current.as_deref() != Some(fam) {
            return Err(at("sample outside its family's block".into()));
        }
        let kind = e.families[fam].kind.clone();
        if kind == "counter" && (value.is_nan() || value < 0.0) {
            return Err(at("negative counter".into()));
        }
        let mut names: Vec<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
        names.sort();
        names.dedup();
        if names.len() != labels.len() {
            return Err(at("duplicate label".into()));
        }
        labels.sort();
        if e.samples
            .insert((name.to_string(), labels), value)
            .is_some()
        {
            return Err(at("duplicate series".into()));
        }
    }
    check_histograms(&e)?;
    Ok(e)
}

fn check_histograms(e: &Exposition) -> Result<(), String> {
    for (fam, f) in &e.families {
        if f.kind != "histogram" {
            continue;
        }
        // Group buckets by their labels without `le`.
        let mut groups: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
        for ((name, labels), v) in &e.samples {
            if *name != format!("{fam}_bucket") {
                continue;
            }
            let le = labels
                .iter()
                .find(|(k, _)| k == "le")
                .ok_or(format!("{fam}: bucket without le"))?;
            let bound = parse_value(&le.1)?;
            let rest: Vec<(String, String)> =
                labels.iter().filter(|(k, _)| k != "le").cloned().collect();
            groups.entry(rest).or_default().push((bound, *v));
        }
        for (labels, mut buckets) in groups {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            if buckets.last().map(|b| b.0) != Some(f64::INFINITY) {
                return Err(format!("{fam}{labels:?}: no +Inf bucket"));
            }
            if buckets.windows(2).any(|w| w[1].1 < w[0].1) {
                return Err(format!("{fam}{labels:?}: buckets not cumulative"));
            }
            let count = e
                .samples
                .get(&(format!("{fam}_count"), labels.clone()))
                .ok_or(format!("{fam}{labels:?}: no _count"))?;
            if buckets.last().map(|b| b.1) != Some(*count) {
                return Err(format!("{fam}{labels:?}: +Inf bucket != _count"));
            }
            if !e
                .samples
                .contains_key(&(format!("{fam}_sum"), labels.clone()))
            {
                return Err(format!("{fam}{labels:?}: no _sum"));
            }
        }
    }
    Ok(())
}

#[test]
fn the_parser_is_strict() {
    let good = "# TYPE a counter\n# HELP a x\na_total{k=\"v\\\"\"} 1\n# TYPE h histogram\nh_sum 1.5\nh_count 2\nh_bucket{le=\"1.0\"} 1\nh_bucket{le=\"+Inf\"} 2\n# EOF\n";
    let e = parse_openmetrics(good).expect("good exposition");
    assert_eq!(e.get("a_total", &[("k", "v\"")]), Some(1.0));
    for bad in [
        "# TYPE a counter\na_total 1\n",                            // no EOF
        "a 1\n# EOF\n",                                             // undeclared
        "# TYPE a counter\na 1\n# EOF\n",                           // counter without _total
        "# TYPE a gauge\na{k=v} 1\n# EOF\n",                        // unquoted label
        "# TYPE a gauge\na 1\na 2\n# EOF\n",                        // duplicate
        "# TYPE a gauge\n# UNIT a bytes\na 1\n# EOF\n",             // unit not a suffix
        "# TYPE h histogram\nh_sum 1\nh_count 2\nh_bucket{le=\"+Inf\"} 1\n# EOF\n", // count mismatch
        "# TYPE h histogram\nh_sum 1\nh_count 1\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n# EOF\n",
        "# TYPE a gauge\na x\n# EOF\n",                             // bad value
        "# TYPE a counter\na_total -1\n# EOF\n",                    // negative counter
    ] {
        assert!(parse_openmetrics(bad).is_err(), "accepted {bad:?}");
    }
}

// ---------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------

fn start(extra: &[&str]) -> (RedsnapServer, u16) {
    let http = free_port();
    let port = http.to_string();
    let mut args = vec!["--http-port", port.as_str()];
    args.extend_from_slice(extra);
    let s = RedsnapServer::builder()
        .extra_args(&args)
        .start()
        .expect("redsnap");
    (s, http)
}

fn cmd(s: &RedsnapServer, args: &[&str]) -> String {
    let a: Vec<&[u8]> = args.iter().map(|x| x.as_bytes()).collect();
    let r = raw_command(s.port(), &a).expect("command");
    match bulk_payload(&r) {
        Some(b) => String::from_utf8_lossy(&b).into_owned(),
        None => String::from_utf8_lossy(&r).trim_end().to_string(),
    }
}

fn info_field(s: &RedsnapServer, field: &str) -> String {
    cmd(s, &["INFO", "persistence"])
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(str::to_string))
        .unwrap_or_default()
}

/// BGSAVE, then waits for its outcome (`ok` / `err`).
fn bgsave(s: &RedsnapServer) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = cmd(s, &["BGSAVE"]);
        if r.contains("Background saving started") {
            break;
        }
        assert!(Instant::now() < deadline, "BGSAVE never started: {r}");
        std::thread::sleep(Duration::from_millis(20));
    }
    loop {
        if info_field(s, "rdb_bgsave_in_progress") == "0" {
            return info_field(s, "rdb_last_bgsave_status");
        }
        assert!(Instant::now() < deadline, "BGSAVE never finished");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `f` holds.
fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Replaces the snapshot store's directory with a file (full snapshots fail).
fn break_snapshots(dir: &Path) {
    std::fs::rename(dir.join("snapshot"), dir.join("snapshot.away")).expect("move the store");
    std::fs::write(dir.join("snapshot"), b"not a directory").expect("file in its place");
}

fn mend_snapshots(dir: &Path) {
    std::fs::remove_file(dir.join("snapshot")).expect("remove the file");
    std::fs::rename(dir.join("snapshot.away"), dir.join("snapshot")).expect("move the store back");
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// Families every scrape of a server with snapshots and the append log has.
const EXPECTED: &[(&str, &str)] = &[
    ("redsnap_command_calls", "counter"),
    ("redsnap_command_failed_calls", "counter"),
    ("redsnap_command_rejected_calls", "counter"),
    ("redsnap_command_duration_seconds", "counter"),
    ("redsnap_command_latency_seconds", "histogram"),
    ("redsnap_commands_processed", "counter"),
    ("redsnap_error_replies", "counter"),
    ("redsnap_connections_received", "counter"),
    ("redsnap_connected_clients", "gauge"),
    ("redsnap_blocked_clients", "gauge"),
    ("redsnap_memory_used_bytes", "gauge"),
    ("redsnap_memory_rss_bytes", "gauge"),
    ("redsnap_db_keys", "gauge"),
    ("redsnap_db_keys_expiring", "gauge"),
    ("redsnap_expired_keys", "counter"),
    ("redsnap_evicted_keys", "counter"),
    ("redsnap_snapshots", "counter"),
    ("redsnap_snapshot_failures", "counter"),
    ("redsnap_snapshot_duration_seconds", "histogram"),
    ("redsnap_snapshot_last_size_bytes", "gauge"),
    ("redsnap_snapshot_age_seconds", "gauge"),
    ("redsnap_aof_enabled", "gauge"),
    ("redsnap_aof_size_bytes", "gauge"),
    ("redsnap_aof_fsync_lag_seconds", "gauge"),
    ("redsnap_writes_refused", "gauge"),
    ("redsnap_repl_offset_bytes", "gauge"),
    ("redsnap_connected_replicas", "gauge"),
    ("redsnap_build", "info"),
];

fn scrape(http: u16) -> Exposition {
    let r = http_get(http, "/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    parse_openmetrics(&r.body).unwrap_or_else(|e| panic!("{e}\n{}", r.body))
}

#[test]
fn metrics_parse_as_openmetrics_and_follow_the_commands() {
    let (s, http) = start(&["--appendonly", "yes", "--save", "3600 1"]);
    assert_eq!(cmd(&s, &["SAVE"]), "+OK");
    let before = scrape(http);
    for (name, kind) in EXPECTED {
        let f = before
            .families
            .get(*name)
            .unwrap_or_else(|| panic!("no family {name}"));
        assert_eq!(f.kind, *kind, "{name}");
        assert!(f.help, "{name} has no HELP");
    }
    let calls = |e: &Exposition, c: &str| {
        e.get("redsnap_command_calls_total", &[("command", c)])
            .unwrap_or(0.0)
    };
    let processed = |e: &Exposition| {
        e.get("redsnap_commands_processed_total", &[])
            .unwrap_or(0.0)
    };
    let keys = |e: &Exposition| e.get("redsnap_db_keys", &[("db", "0")]).unwrap_or(-1.0);

    for i in 0..3 {
        assert_eq!(cmd(&s, &["SET", &format!("k{i}"), "v"]), "+OK");
    }
    assert_eq!(cmd(&s, &["SET", "ttl", "v", "EX", "100"]), "+OK");
    assert!(cmd(&s, &["INCR", "k0"]).starts_with("-ERR"));
    let after = scrape(http);
    assert_eq!(calls(&after, "set"), calls(&before, "set") + 4.0);
    // SAVE, 4 SETs, the INCR and the INFO calls in between, at least.
    assert!(processed(&after) >= processed(&before) + 5.0);
    assert_eq!(keys(&before), 0.0);
    assert_eq!(keys(&after), 4.0);
    assert_eq!(
        after.get("redsnap_db_keys_expiring", &[("db", "0")]),
        Some(1.0)
    );
    assert_eq!(
        after.get("redsnap_command_failed_calls_total", &[("command", "incr")]),
        Some(1.0)
    );
    assert_eq!(
        after.get("redsnap_error_replies_total", &[("code", "ERR")]),
        Some(1.0)
    );
    // The latency histogram holds every SET.
    assert_eq!(
        after.get(
            "redsnap_command_latency_seconds_count",
            &[("command", "set")]
        ),
        Some(calls(&after, "set"))
    );
    assert_eq!(
        after.get(
            "redsnap_command_latency_seconds_bucket",
            &[("command", "set"), ("le", "+Inf")]
        ),
        Some(calls(&after, "set"))
    );
    // Snapshots: SAVE counted, one more after BGSAVE, with its duration observed.
    let snaps = |e: &Exposition| e.get("redsnap_snapshots_total", &[]).unwrap_or(-1.0);
    assert!(snaps(&before) >= 1.0);
    assert_eq!(bgsave(&s), "ok");
    let later = scrape(http);
    assert_eq!(snaps(&later), snaps(&after) + 1.0);
    assert_eq!(
        later.get("redsnap_snapshot_duration_seconds_count", &[]),
        Some(snaps(&later))
    );
    assert_eq!(later.get("redsnap_snapshot_last_keys", &[]), Some(4.0));
    assert_eq!(later.get("redsnap_aof_enabled", &[]), Some(1.0));
    assert_eq!(later.get("redsnap_writes_refused", &[]), Some(0.0));
    // Unknown paths are 404; the port is shown by CONFIG GET and fixed at startup.
    assert_eq!(http_get(http, "/nope").status, 404);
    assert!(cmd(&s, &["CONFIG", "GET", "http-port"]).contains(&http.to_string()));
    assert!(cmd(&s, &["CONFIG", "SET", "http-port", "1"]).contains("immutable"));
}

#[test]
fn health_turns_503_while_writes_are_refused_and_200_after() {
    let (s, http) = start(&[
        "--appendonly",
        "no",
        "--save",
        "3600 1",
        "--snapshot-incremental",
        "no",
        "--stop-writes-on-bgsave-error",
        "yes",
    ]);
    assert_eq!(cmd(&s, &["SET", "k", "v"]), "+OK");
    assert_eq!(bgsave(&s), "ok");
    let (code, h) = health(http);
    assert_eq!(code, 200, "{h}");
    assert_eq!(h["healthy"], true);
    assert_eq!(h["connectionState"], "connected");
    assert_eq!(h["reconnectAttempts"], 0);
    assert!(h["latencyMs"].is_u64(), "{h}");
    assert_eq!(h["writesRefused"], false);
    assert_eq!(h["persistence"]["lastSnapshotStatus"], "ok");
    assert_eq!(h["persistence"]["appendLog"], false);
    assert!(h["persistence"]["lastSnapshotAgeSec"].is_u64(), "{h}");

    break_snapshots(s.dir());
    assert_eq!(bgsave(&s), "err");
    assert!(cmd(&s, &["SET", "k", "w"]).starts_with("-MISCONF"));
    let (code, h) = health(http);
    assert_eq!(code, 503, "{h}");
    assert_eq!(h["healthy"], false);
    assert_eq!(h["writesRefused"], true);
    assert!(
        h["writesRefusedReason"]
            .as_str()
            .is_some_and(|r| r.starts_with("MISCONF")),
        "{h}"
    );
    assert_eq!(h["persistence"]["lastSnapshotStatus"], "err");
    assert_eq!(scrape(http).get("redsnap_writes_refused", &[]), Some(1.0));
    wait_for("the refusal's log line", || {
        s.log().contains("refusing writes")
    });

    mend_snapshots(s.dir());
    assert_eq!(bgsave(&s), "ok");
    let (code, h) = health(http);
    assert_eq!(code, 200, "{h}");
    assert_eq!(h["writesRefused"], false);
    assert_eq!(cmd(&s, &["SET", "k", "w"]), "+OK");
    wait_for("the end of the refusal's log line", || {
        s.log().contains("accepting writes again")
    });
    // One line when it starts, one when it ends: not one per refused command.
    assert_eq!(s.log().matches("refusing writes").count(), 1, "{}", s.log());
}

#[test]
fn json_logs_are_one_object_per_line_with_the_figures() {
    let (s, _) = start(&[
        "--log-format",
        "json",
        "--appendonly",
        "no",
        "--save",
        "3600 1",
    ]);
    assert_eq!(cmd(&s, &["SET", "a", "1"]), "+OK");
    assert_eq!(cmd(&s, &["SET", "b", "2"]), "+OK");
    assert_eq!(cmd(&s, &["SAVE"]), "+OK");
    let log = s.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert!(!lines.is_empty());
    for l in &lines {
        assert!(
            l["timestamp"].is_string() && l["level"].is_string() && l["message"].is_string(),
            "{l}"
        );
    }
    let find = |m: &str| {
        lines
            .iter()
            .find(|l| l["message"] == m)
            .unwrap_or_else(|| panic!("no {m:?} line in {log}"))
    };
    let loaded = find("dataset loaded");
    assert_eq!(loaded["keys"], 0);
    assert_eq!(loaded["source"], "empty");
    assert!(loaded["ms"].is_u64());
    let saved = find("snapshot saved");
    assert_eq!(saved["keys"], 2);
    assert_eq!(saved["kind"], "full");
    assert!(saved["bytes"].as_u64().is_some_and(|b| b > 0), "{saved}");
    assert!(saved["ms"].is_u64());
    assert!(!log.contains('\u{1b}'));
}

#[test]
fn log_files_hold_no_escape_codes() {
    let logdir = tempfile::tempdir().expect("tempdir");
    let file = logdir.path().join("redsnap.log");
    let file_arg = file.display().to_string();
    // stderr captured to a file (not a terminal): plain text.
    let (s, _) = start(&["--appendonly", "no", "--save", "3600 1"]);
    assert_eq!(cmd(&s, &["SAVE"]), "+OK");
    let captured = s.log();
    assert!(captured.contains("snapshot saved"), "{captured}");
    assert!(!captured.contains('\u{1b}'), "escape codes in {captured:?}");
    // `logfile`: the lines go to the file, appended, plain text; stderr stays quiet.
    let (mut s, _) = start(&[
        "--appendonly",
        "no",
        "--save",
        "3600 1",
        "--logfile",
        &file_arg,
    ]);
    assert_eq!(cmd(&s, &["SAVE"]), "+OK");
    s.stop();
    let text = std::fs::read_to_string(&file).expect("log file");
    assert!(
        text.contains("dataset loaded") && text.contains("snapshot saved"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "escape codes in {text:?}");
    assert!(!s.log().contains("snapshot saved"), "{}", s.log());
}

/// An in-process server with the append log (`everysec`) and `http-port`, for
/// faults injected into its log.
struct InProcess {
    port: u16,
    http: u16,
    log: redsnap_persist::AppendLog,
    _rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

fn in_process() -> InProcess {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut c = redsnap_server::Config::default();
    let s = |v: &str| vec![v.to_string()];
    for (k, v) in [
        ("port", port.to_string()),
        ("bind", "127.0.0.1".into()),
        ("dir", dir.path().display().to_string()),
        ("appendonly", "yes".into()),
        ("appendfsync", "everysec".into()),
        ("save", "".into()),
        ("snapshot-interval", "0".into()),
    ] {
        c.set(k, &s(&v)).expect(k);
    }
    let http = free_port();
    c.set("http-port", &s(&http.to_string()))
        .expect("http-port");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let server = rt.block_on(redsnap_server::Server::bind(c)).expect("bind");
    assert_eq!(
        server.http_addrs(),
        vec![SocketAddr::from((Ipv4Addr::LOCALHOST, http))]
    );
    let log = server.append_log().expect("append log");
    rt.spawn(server.run());
    InProcess {
        port,
        http,
        log,
        _rt: rt,
        _dir: dir,
    }
}

fn set(port: u16, key: &str) -> String {
    let r = raw_command(port, &[b"SET", key.as_bytes(), b"v"]).expect("SET");
    String::from_utf8_lossy(&r).trim_end().to_string()
}

/// A stalled fsync shows as a growing fsync lag, back to 0 once it completes; a
/// failed one refuses writes: `/health` 503 with the MISCONF reason, and the
/// metrics say so.
#[test]
fn append_log_faults_show_in_metrics_and_health() {
    use redsnap_persist::aof::FsyncFault;
    let s = in_process();
    let lag = |e: &Exposition| e.get("redsnap_aof_fsync_lag_seconds", &[]);
    assert_eq!(set(s.port, "a"), "+OK");
    wait_for("the first write to be fsynced", || {
        lag(&scrape(s.http)) == Some(0.0)
    });

    s.log
        .inject_fsync_fault(Some((s.log.generation(), FsyncFault::Stall)));
    assert_eq!(set(s.port, "b"), "+OK");
    let first = {
        let mut seen = 0.0;
        wait_for("a lag while the fsync stalls", || {
            seen = lag(&scrape(s.http)).unwrap_or(0.0);
            seen > 0.0
        });
        seen
    };
    wait_for("the lag to grow", || {
        lag(&scrape(s.http)).is_some_and(|l| l > first)
    });
    s.log.inject_fsync_fault(None);
    wait_for("the lag to return to 0", || {
        lag(&scrape(s.http)) == Some(0.0)
    });
    let (code, h) = health(s.http);
    assert_eq!(code, 200, "{h}");
    assert_eq!(h["persistence"]["appendLogFsyncStatus"], "ok");

    s.log
        .inject_fsync_fault(Some((s.log.generation(), FsyncFault::Fail)));
    assert_eq!(set(s.port, "c"), "+OK");
    wait_for("the failed fsync to refuse writes", || {
        health(s.http).0 == 503
    });
    let (_, h) = health(s.http);
    assert_eq!(h["healthy"], false);
    assert_eq!(h["writesRefused"], true);
    assert_eq!(h["persistence"]["appendLogFsyncStatus"], "err");
    assert!(
        h["writesRefusedReason"]
            .as_str()
            .is_some_and(|r| r.starts_with("MISCONF Errors writing to the AOF file")),
        "{h}"
    );
    assert!(set(s.port, "d").starts_with("-MISCONF"));
    let m = scrape(s.http);
    assert_eq!(m.get("redsnap_aof_fsync_ok", &[]), Some(0.0));
    assert_eq!(m.get("redsnap_writes_refused", &[]), Some(1.0));
}
