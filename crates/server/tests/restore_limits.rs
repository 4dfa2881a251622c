//! RESTORE under maxmemory: a DENYOOM command, refused with OOM once used memory is
//! over the limit (as Redis does), while DUMP (read-only) still answers.

use redsnap_testsupport::{bulk_payload, RawConn, RedsnapServer};

#[test]
fn restore_is_refused_with_oom_over_maxmemory() {
    let server = RedsnapServer::builder()
        .extra_args(&["--appendonly", "no", "--save", ""])
        .start()
        .expect("redsnap");
    let mut c = RawConn::connect(server.port()).expect("connect");
    // A payload, and RESTORE accepted while there is no limit.
    c.command_ok(&[b"SET", b"small", b"value"]).expect("set");
    let payload = bulk_payload(&c.command(&[b"DUMP", b"small"]).expect("dump")).expect("bulk");
    assert_eq!(
        c.command(&[b"RESTORE", b"copy", b"0", &payload])
            .expect("restore"),
        b"+OK\r\n"
    );
    // About 8 MB of data, then a limit far below it (transient buffers cannot bring
    // used memory under it between two commands).
    let value = vec![b'x'; 50_000];
    for i in 0..160 {
        c.command_ok(&[b"SET", format!("k{i}").as_bytes(), &value])
            .expect("set");
    }
    for (name, v) in [("maxmemory", "1mb"), ("maxmemory-policy", "noeviction")] {
        c.command_ok(&[b"CONFIG", b"SET", name.as_bytes(), v.as_bytes()])
            .expect("config set");
    }
    let oom = b"-OOM command not allowed when used memory > 'maxmemory'.\r\n".to_vec();
    assert_eq!(c.command(&[b"SET", b"x", b"1"]).expect("set"), oom);
    assert_eq!(
        c.command(&[b"RESTORE", b"copy2", b"0", &payload])
            .expect("restore"),
        oom
    );
    assert_eq!(
        c.command(&[b"EXISTS", b"copy2"]).expect("exists"),
        b":0\r\n"
    );
    // DUMP is not DENYOOM.
    assert_eq!(
        bulk_payload(&c.command(&[b"DUMP", b"small"]).expect("dump")),
        Some(payload)
    );
}
