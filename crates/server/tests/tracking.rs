//! Client-side caching (CLIENT TRACKING), sharded pub/sub and INFO sections, against
//! a real redis-server 7.0: the same scenario runs on both servers, and what each
//! client receives (replies, RESP3 invalidation pushes, RESP2 messages on
//! `__redis__:invalidate`, shard messages) is compared byte for byte.

use redsnap_testsupport::wire::WireClient as Client;
use redsnap_testsupport::{RedisServer, RedsnapServer};

/// What these tests add to the wire client.
trait Script {
    fn cmd(&mut self, args: &[&str]) -> String;
    fn drain(&mut self) -> Vec<String>;
}

impl Script for Client {
    /// Sends a command and returns its reply as text.
    fn cmd(&mut self, args: &[&str]) -> String {
        self.send_str(args);
        String::from_utf8_lossy(&self.read().raw).into_owned()
    }

    /// Everything the client received before the reply to a PING sent now (pushes
    /// and messages queued for it), as text, one entry per reply.
    fn drain(&mut self) -> Vec<String> {
        self.send_str(&["PING", "sentinel"]);
        let mut out = Vec::new();
        loop {
            let r = self.read();
            if r.parts.iter().any(|p| p == b"sentinel") {
                return out;
            }
            out.push(String::from_utf8_lossy(&r.raw).into_owned());
        }
    }
}

/// Runs `scenario` on a real redis-server and on redsnap and compares the
/// transcripts.
fn compare(name: &str, scenario: fn(u16) -> Vec<String>) {
    let redis = RedisServer::builder()
        .extra_args(&["--enable-debug-command", "local"])
        .start()
        .expect("start redis-server");
    let redsnap = RedsnapServer::builder()
        .extra_args(&["--appendonly", "no", "--save", ""])
        .start()
        .expect("start redsnap");
    let want = scenario(redis.port());
    let got = scenario(redsnap.port());
    assert!(!want.is_empty());
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        assert_eq!(
            w, g,
            "{name}: step {i} differs\nredis:   {want:?}\nredsnap: {got:?}"
        );
    }
    assert_eq!(want.len(), got.len(), "{name}: {want:?}\nvs {got:?}");
}

fn line(label: &str, v: impl std::fmt::Debug) -> String {
    format!("{label}: {v:?}")
}

fn client_id(c: &mut Client) -> String {
    let r = c.cmd(&["CLIENT", "ID"]);
    r.trim_start_matches(':').trim().to_string()
}

/// RESP3: a tracked key changed by another client arrives as an `invalidate`
/// push, once; keys not read are not sent; NOLOOP hides the client's own writes.
fn resp3_push(port: u16) -> Vec<String> {
    let mut out = Vec::new();
    let mut a = Client::connect(port);
    let mut b = Client::connect(port);
    a.cmd(&["HELLO", "3"]);
    out.push(line("on", a.cmd(&["CLIENT", "TRACKING", "ON"])));
    b.cmd(&["MSET", "k1", "1", "k2", "2", "k3", "3"]);
    out.push(line("mget", a.cmd(&["MGET", "k1", "k2"])));
    b.cmd(&["SET", "k1", "x"]);
    b.cmd(&["SET", "k3", "x"]);
    b.cmd(&["SET", "k1", "y"]);
    out.push(line("after sets", a.drain()));
    // Own write: the reply, then the invalidation.
    a.cmd(&["GET", "k2"]);
    a.send_str(&["SET", "k2", "mine"]);
    out.push(line(
        "own write reply",
        String::from_utf8_lossy(&a.read().raw),
    ));
    out.push(line("own write push", a.drain()));
    // NOLOOP.
    a.cmd(&["CLIENT", "TRACKING", "OFF"]);
    a.cmd(&["CLIENT", "TRACKING", "ON", "NOLOOP"]);
    a.cmd(&["MGET", "k1", "k2"]);
    a.cmd(&["SET", "k1", "loop"]);
    b.cmd(&["SET", "k2", "other"]);
    out.push(line("noloop", a.drain()));
    out.push(line("info", a.cmd(&["CLIENT", "TRACKINGINFO"])));
    out.push(line("getredir", a.cmd(&["CLIENT", "GETREDIR"])));
    // MULTI: the invalidation after EXEC's reply; FLUSHALL: a null.
    a.cmd(&["GET", "k1"]);
    a.cmd(&["MULTI"]);
    a.cmd(&["INCR", "n"]);
    a.cmd(&["SET", "k1", "z"]);
    a.cmd(&["GET", "k1"]);
    out.push(line("exec", a.cmd(&["EXEC"])));
    out.push(line("after exec", a.drain()));
    b.cmd(&["FLUSHALL"]);
    out.push(line("flushall", a.drain()));
    out
}

/// RESP2 redirection to a client subscribed to `__redis__:invalidate`, BCAST with
/// prefixes (one message per prefix), OPTIN/OPTOUT with CLIENT CACHING, and a
/// redirect client that went away.
fn resp2_redirect(port: u16) -> Vec<String> {
    let mut out = Vec::new();
    let mut r = Client::connect(port);
    let mut a = Client::connect(port);
    let mut b = Client::connect(port);
    let rid = client_id(&mut r);
    out.push(line("sub", r.cmd(&["SUBSCRIBE", "__redis__:invalidate"])));
    out.push(line(
        "on",
        a.cmd(&["CLIENT", "TRACKING", "ON", "REDIRECT", &rid]),
    ));
    a.cmd(&["GET", "x"]);
    b.cmd(&["SET", "x", "1"]);
    out.push(line("redirected", r.drain()));
    // BCAST.
    a.cmd(&["CLIENT", "TRACKING", "OFF"]);
    out.push(line(
        "bcast",
        a.cmd(&[
            "CLIENT", "TRACKING", "ON", "BCAST", "REDIRECT", &rid, "PREFIX", "a:", "PREFIX", "b:",
        ]),
    ));
    b.cmd(&["MULTI"]);
    for k in ["a:2", "a:1", "b:1", "c:1", "a:2"] {
        b.cmd(&["INCR", k]);
    }
    b.cmd(&["EXEC"]);
    out.push(line("bcast messages", r.drain()));
    out.push(line(
        "collision",
        a.cmd(&["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "a:x"]),
    ));
    out.push(line("bcast info", a.cmd(&["CLIENT", "TRACKINGINFO"])));
    // OPTIN.
    a.cmd(&["CLIENT", "TRACKING", "OFF"]);
    a.cmd(&["CLIENT", "TRACKING", "ON", "OPTIN", "REDIRECT", &rid]);
    a.cmd(&["GET", "o1"]);
    out.push(line("caching yes", a.cmd(&["CLIENT", "CACHING", "YES"])));
    a.cmd(&["GET", "o2"]);
    out.push(line(
        "caching no in optin",
        a.cmd(&["CLIENT", "CACHING", "NO"]),
    ));
    b.cmd(&["MSET", "o1", "1", "o2", "2"]);
    out.push(line("optin", r.drain()));
    // OPTOUT.
    a.cmd(&["CLIENT", "TRACKING", "OFF"]);
    a.cmd(&["CLIENT", "TRACKING", "ON", "OPTOUT", "REDIRECT", &rid]);
    a.cmd(&["CLIENT", "CACHING", "NO"]);
    a.cmd(&["GET", "o1"]);
    a.cmd(&["GET", "o2"]);
    b.cmd(&["MSET", "o1", "1", "o2", "2"]);
    out.push(line("optout", r.drain()));
    b.cmd(&["FLUSHDB"]);
    out.push(line("flushdb", r.drain()));
    // Errors.
    out.push(line(
        "bad redirect",
        a.cmd(&["CLIENT", "TRACKING", "ON", "REDIRECT", "99999"]),
    ));
    out.push(line(
        "prefix without bcast",
        a.cmd(&["CLIENT", "TRACKING", "ON", "PREFIX", "p"]),
    ));
    out.push(line(
        "switch",
        a.cmd(&["CLIENT", "TRACKING", "ON", "OPTIN"]),
    ));
    out.push(line("caching off", b.cmd(&["CLIENT", "CACHING", "YES"])));
    // The redirect client goes away: a RESP2 client is told nothing, TRACKINGINFO
    // shows the broken redirection.
    a.cmd(&["GET", "gone"]);
    r.cmd(&["QUIT"]);
    b.cmd(&["SET", "gone", "1"]);
    out.push(line("broken", a.cmd(&["CLIENT", "TRACKINGINFO"])));
    // Client ids differ between the servers.
    let id = format!("redirect\\r\\n:{rid}\\r\\n");
    out.iter()
        .map(|l| l.replace(&id, "redirect\\r\\n:RID\\r\\n"))
        .collect()
}

/// SSUBSCRIBE / SPUBLISH / SUNSUBSCRIBE and PUBSUB SHARD*, RESP2 and RESP3.
fn sharded(port: u16) -> Vec<String> {
    let mut out = Vec::new();
    let mut s2 = Client::connect(port);
    let mut s3 = Client::connect(port);
    let mut p = Client::connect(port);
    s3.cmd(&["HELLO", "3"]);
    for s in [&mut s2, &mut s3] {
        s.send_str(&["SSUBSCRIBE", "ch1", "ch2", "ch1"]);
        for _ in 0..3 {
            out.push(line("ssub", String::from_utf8_lossy(&s.read().raw)));
        }
    }
    out.push(line("subscribe too", s2.cmd(&["SUBSCRIBE", "ch1"])));
    out.push(line("resp2 context", s2.cmd(&["GET", "x"])));
    out.push(line("spublish", p.cmd(&["SPUBLISH", "ch1", "hello"])));
    out.push(line("publish", p.cmd(&["PUBLISH", "ch1", "plain"])));
    out.push(line("s2", s2.drain()));
    out.push(line("s3", s3.drain()));
    // (Redis lists channels in hash table order: one channel per listing.)
    out.push(line("channels", p.cmd(&["PUBSUB", "SHARDCHANNELS", "ch1"])));
    out.push(line(
        "channels pat",
        p.cmd(&["PUBSUB", "SHARDCHANNELS", "*2"]),
    ));
    out.push(line(
        "numsub",
        p.cmd(&["PUBSUB", "SHARDNUMSUB", "ch1", "ch2", "x"]),
    ));
    out.push(line("plain numsub", p.cmd(&["PUBSUB", "NUMSUB", "ch1"])));
    // (In hash table order: compared sorted.)
    s3.send_str(&["SUNSUBSCRIBE"]);
    let mut v: Vec<String> = (0..2)
        .map(|_| {
            let r = s3.read();
            // The kind and the channel (the count depends on the order).
            String::from_utf8_lossy(&r.parts[..2].concat()).into_owned()
        })
        .collect();
    v.sort();
    out.push(line("sunsub", v));
    out.push(line("sunsub none", s3.cmd(&["SUNSUBSCRIBE"])));
    out.push(line("after", p.cmd(&["SPUBLISH", "ch2", "x"])));
    out.push(line("multi", p.cmd(&["MULTI"])));
    p.cmd(&["SSUBSCRIBE", "m"]);
    out.push(line("exec", p.cmd(&["EXEC"])));
    out
}

/// `tracking-table-max-keys`: before the next command the table is cut down to it,
/// each key dropped sent as invalidated (which keys is random: counted).
fn table_limit(port: u16) -> Vec<String> {
    let mut out = Vec::new();
    let mut a = Client::connect(port);
    let mut b = Client::connect(port);
    a.cmd(&["HELLO", "3"]);
    a.cmd(&["CLIENT", "TRACKING", "ON"]);
    a.cmd(&["MGET", "k1", "k2", "k3", "k4"]);
    let keys = |b: &mut Client| {
        let r = b.cmd(&["INFO", "stats"]);
        r.lines()
            .filter(|l| l.starts_with("tracking_total_keys:"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    out.push(line("before", keys(&mut b)));
    out.push(line(
        "set",
        b.cmd(&["CONFIG", "SET", "tracking-table-max-keys", "1"]),
    ));
    let got = a.drain();
    out.push(line("invalidations", got.len()));
    out.push(line(
        "all single keys",
        got.iter()
            .all(|m| m.starts_with(">2\r\n$10\r\ninvalidate\r\n*1\r\n$2\r\nk")),
    ));
    out.push(line("after", keys(&mut b)));
    b.cmd(&["CONFIG", "SET", "tracking-table-max-keys", "0"]);
    a.cmd(&["MGET", "k1", "k2", "k3", "k4"]);
    out.push(line("unlimited", keys(&mut b)));
    out
}

/// What client harnesses read from INFO: every section of Redis 7.0, in order,
/// and the tracking and shard counters.
fn info_sections(port: u16) -> Vec<String> {
    let mut out = Vec::new();
    let mut a = Client::connect(port);
    let mut b = Client::connect(port);
    a.cmd(&["CLIENT", "TRACKING", "ON"]);
    a.cmd(&["GET", "k1"]);
    b.cmd(&["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "p"]);
    let heads = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.starts_with('#'))
            .map(str::to_string)
            .collect()
    };
    for args in [
        vec!["INFO"],
        vec!["INFO", "default"],
        vec!["INFO", "all"],
        vec!["INFO", "everything"],
        vec!["INFO", "cluster", "MODULES", "errorstats"],
    ] {
        let r = a.cmd(&args);
        out.push(line(&args.join(" "), heads(&r)));
    }
    let r = a.cmd(&["INFO"]);
    for field in [
        "tracking_clients:",
        "tracking_total_keys:",
        "tracking_total_items:",
        "tracking_total_prefixes:",
        "cluster_enabled:",
        "pubsubshard_channels:",
    ] {
        let v: Vec<&str> = r.lines().filter(|l| l.starts_with(field)).collect();
        out.push(line(field, v));
    }
    out
}

#[test]
fn tracking_resp3_push_like_redis() {
    compare("resp3", resp3_push);
}

#[test]
fn tracking_resp2_redirect_bcast_optin_optout_like_redis() {
    compare("resp2 redirect", resp2_redirect);
}

#[test]
fn sharded_pubsub_like_redis() {
    compare("sharded", sharded);
}

#[test]
fn tracking_table_max_keys_like_redis() {
    compare("table limit", table_limit);
}

#[test]
fn info_sections_like_redis() {
    compare("info", info_sections);
}
