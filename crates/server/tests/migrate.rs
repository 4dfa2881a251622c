//! MIGRATE against a real redis-server 7.0 (with a password) and into redsnap itself:
//! keys arrive with their values and time to live, the source keys are deleted (and
//! stay deleted after a restart: the deletion is logged) unless COPY, the target's
//! errors come back as Redis words them, and the replies without a transfer (NOKEY,
//! argument errors, a target that does not answer) are Redis's.

use redsnap_testsupport::{free_port, RawConn, RedisServer, RedsnapServer};

fn cmd(c: &mut RawConn, args: &[&str]) -> String {
    let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
    String::from_utf8_lossy(&c.command(&a).expect("command")).into_owned()
}

#[test]
fn migrate_moves_keys_to_redis_and_the_deletion_survives_a_restart() {
    let redis = RedisServer::builder()
        .password("pw")
        .extra_args(&["--save", "", "--appendonly", "no"])
        .start()
        .expect("redis-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let rport = redis.port().to_string();
    {
        let src = RedsnapServer::builder()
            .dir(dir.path())
            .extra_args(&["--appendonly", "yes", "--appendfsync", "always"])
            .start()
            .expect("redsnap");
        let mut c = RawConn::connect(src.port()).expect("connect");
        cmd(&mut c, &["SET", "s", "value"]);
        cmd(&mut c, &["PEXPIRE", "s", "100000"]);
        cmd(&mut c, &["RPUSH", "l", "x", "y", "z"]);
        cmd(&mut c, &["HSET", "h", "f", "v"]);
        cmd(&mut c, &["SET", "kept", "1"]);

        // Without AUTH, the target's refusal comes back and nothing is deleted.
        let r = cmd(&mut c, &["MIGRATE", "127.0.0.1", &rport, "s", "0", "5000"]);
        assert!(
            r.starts_with("-ERR Target instance replied with error: NOAUTH"),
            "{r}"
        );
        assert_eq!(cmd(&mut c, &["EXISTS", "s"]), ":1\r\n");

        let r = cmd(
            &mut c,
            &[
                "MIGRATE",
                "127.0.0.1",
                &rport,
                "",
                "3",
                "5000",
                "AUTH2",
                "default",
                "pw",
                "KEYS",
                "s",
                "l",
                "h",
                "missing",
            ],
        );
        assert_eq!(r, "+OK\r\n");
        assert_eq!(cmd(&mut c, &["EXISTS", "s", "l", "h"]), ":0\r\n");
        let mut rc = RawConn::connect(redis.port()).expect("connect redis");
        cmd(&mut rc, &["AUTH", "pw"]);
        cmd(&mut rc, &["SELECT", "3"]);
        assert_eq!(cmd(&mut rc, &["GET", "s"]), "$5\r\nvalue\r\n");
        let ttl: i64 = cmd(&mut rc, &["PTTL", "s"])
            .trim_start_matches(':')
            .trim()
            .parse()
            .expect("pttl");
        assert!(ttl > 0 && ttl <= 100_000, "pttl {ttl}");
        assert_eq!(
            cmd(&mut rc, &["LRANGE", "l", "0", "-1"]),
            "*3\r\n$1\r\nx\r\n$1\r\ny\r\n$1\r\nz\r\n"
        );
        assert_eq!(cmd(&mut rc, &["HGET", "h", "f"]), "$1\r\nv\r\n");

        // COPY keeps the source; the target's BUSYKEY without REPLACE; then REPLACE.
        let copy = [
            "MIGRATE",
            "127.0.0.1",
            &rport,
            "kept",
            "3",
            "5000",
            "AUTH",
            "pw",
            "COPY",
        ];
        assert_eq!(cmd(&mut c, &copy), "+OK\r\n");
        assert_eq!(cmd(&mut c, &["EXISTS", "kept"]), ":1\r\n");
        let r = cmd(&mut c, &copy);
        assert_eq!(
            r,
            "-ERR Target instance replied with error: BUSYKEY Target key name already exists.\r\n"
        );
        cmd(&mut c, &["SET", "kept", "2"]);
        let mut replace = copy.to_vec();
        replace.push("REPLACE");
        assert_eq!(cmd(&mut c, &replace), "+OK\r\n");
        assert_eq!(cmd(&mut rc, &["GET", "kept"]), "$1\r\n2\r\n");
    }
    // The deletions were logged: a restart does not bring the keys back.
    let src = RedsnapServer::builder()
        .dir(dir.path())
        .extra_args(&["--appendonly", "yes"])
        .start()
        .expect("redsnap restart");
    let mut c = RawConn::connect(src.port()).expect("connect");
    assert_eq!(cmd(&mut c, &["EXISTS", "s", "l", "h"]), ":0\r\n");
    assert_eq!(cmd(&mut c, &["GET", "kept"]), "$1\r\n2\r\n");
}

#[test]
fn migrate_replies_without_a_transfer_are_redis_s() {
    let src = RedsnapServer::builder()
        .extra_args(&["--save", "", "--appendonly", "no"])
        .start()
        .expect("redsnap");
    let mut c = RawConn::connect(src.port()).expect("connect");
    let port = src.port().to_string();
    cmd(&mut c, &["SET", "a", "1"]);
    assert_eq!(
        cmd(
            &mut c,
            &["MIGRATE", "127.0.0.1", &port, "nokey", "0", "1000"]
        ),
        "+NOKEY\r\n"
    );
    assert_eq!(
        cmd(
            &mut c,
            &["MIGRATE", "127.0.0.1", &port, "a", "0", "1000", "KEYS", "a"]
        ),
        "-ERR When using MIGRATE KEYS option, the key argument must be set to the empty string\r\n"
    );
    assert_eq!(
        cmd(&mut c, &["MIGRATE", "127.0.0.1", &port, "a", "0", "x"]),
        "-ERR value is not an integer or out of range\r\n"
    );
    assert_eq!(
        cmd(
            &mut c,
            &["MIGRATE", "127.0.0.1", &port, "a", "0", "1000", "BOGUS"]
        ),
        "-ERR syntax error\r\n"
    );
    assert_eq!(
        cmd(
            &mut c,
            &["MIGRATE", "127.0.0.1", &port, "a", "0", "1000", "AUTH"]
        ),
        "-ERR syntax error\r\n"
    );
    // Nothing listens on a fresh port.
    let closed = free_port().to_string();
    assert_eq!(
        cmd(&mut c, &["MIGRATE", "127.0.0.1", &closed, "a", "0", "200"]),
        "-IOERR error or timeout connecting to the client\r\n"
    );
    assert_eq!(cmd(&mut c, &["EXISTS", "a"]), ":1\r\n");
    // Into another database of this same server (Redis would wait on itself): the
    // transfer runs outside the server lock.
    assert_eq!(
        cmd(&mut c, &["MIGRATE", "127.0.0.1", &port, "a", "5", "2000"]),
        "+OK\r\n"
    );
    assert_eq!(cmd(&mut c, &["EXISTS", "a"]), ":0\r\n");
    cmd(&mut c, &["SELECT", "5"]);
    assert_eq!(cmd(&mut c, &["GET", "a"]), "$1\r\n1\r\n");
    // Inside MULTI the transfer runs under the lock, as Redis's: into itself it
    // waits on itself until the timeout (Redis's reply), and nothing moves.
    cmd(&mut c, &["MULTI"]);
    cmd(&mut c, &["MIGRATE", "127.0.0.1", &port, "a", "0", "300"]);
    let r = cmd(&mut c, &["EXEC"]);
    assert!(r.contains("IOERR error or timeout reading"), "{r}");
    assert_eq!(cmd(&mut c, &["EXISTS", "a"]), ":1\r\n");
}

/// MIGRATE inside MULTI/EXEC and inside a script, to a real redis-server: the keys
/// move (the deletion is part of the transaction's effects), as on Redis.
#[test]
fn migrate_inside_multi_and_scripts_moves_keys() {
    let redis = RedisServer::builder()
        .extra_args(&["--save", "", "--appendonly", "no"])
        .start()
        .expect("redis-server");
    let src = RedsnapServer::builder()
        .extra_args(&["--save", "", "--appendonly", "no"])
        .start()
        .expect("redsnap");
    let rport = redis.port().to_string();
    let mut c = RawConn::connect(src.port()).expect("connect");
    let mut t = RawConn::connect(redis.port()).expect("connect");
    cmd(&mut c, &["SET", "m1", "one"]);
    cmd(&mut c, &["RPUSH", "m2", "a", "b"]);
    cmd(&mut c, &["MULTI"]);
    cmd(&mut c, &["MIGRATE", "127.0.0.1", &rport, "m1", "0", "5000"]);
    cmd(&mut c, &["SET", "after", "x"]);
    assert_eq!(cmd(&mut c, &["EXEC"]), "*2\r\n+OK\r\n+OK\r\n");
    assert_eq!(cmd(&mut c, &["EXISTS", "m1"]), ":0\r\n");
    assert_eq!(cmd(&mut t, &["GET", "m1"]), "$3\r\none\r\n");
    let r = cmd(
        &mut c,
        &[
            "EVAL",
            "return redis.call('MIGRATE', ARGV[1], ARGV[2], KEYS[1], 0, 5000, 'COPY')",
            "1",
            "m2",
            "127.0.0.1",
            &rport,
        ],
    );
    assert_eq!(r, "+OK\r\n");
    assert_eq!(
        cmd(&mut c, &["LLEN", "m2"]),
        ":2\r\n",
        "COPY keeps the source"
    );
    assert_eq!(
        cmd(&mut t, &["LRANGE", "m2", "0", "-1"]),
        "*2\r\n$1\r\na\r\n$1\r\nb\r\n"
    );
}
