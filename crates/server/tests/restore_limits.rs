//! RESTORE under maxmemory: a DENYOOM command, refused with OOM once used memory is
//! over the limit (as Redis does), while DUMP (read-only) still answers.

use redsnap_testsupport::{bulk_payload, RawConn, RedsnapServer};

#[test]
fn restore_is_refused_with_oom_over_maxmemory() {
    let server = RedsnapServer::builder()
        .extra_args(&[
            "--appendonly",
            "no",
            "--save",
            "",
            "--maxmemory",
            "16mb",
            "--maxmemory-policy",
            "noeviction",
        ])
        .start()
        .expect("redsnap");
    let mut c = RawConn::connect(server.port()).expect("connect");
    // A payload taken while there is room, and RESTORE accepted then.
    c.command_ok(&[b"SET", b"small", b"value"]).expect("set");
    let payload = bulk_payload(&c.command(&[b"DUMP", b"small"]).expect("dump")).expect("bulk");
    assert_eq!(
        c.command(&[b"RESTORE", b"copy", b"0", &payload])
            .expect("restore"),
        b"+OK\r\n"
    );
    // Fill until writes are refused.
    let value = vec![b'x'; 50_000];
    let mut refused = false;
    for i in 0..2000 {
        let r = c
            .command(&[b"SET", format!("k{i}").as_bytes(), &value])
            .expect("set");
        if r != b"+OK\r\n" {
            refused = true;
            break;
        }
    }
    assert!(refused, "16 MB never filled");
    assert_eq!(
        c.command(&[b"RESTORE", b"copy2", b"0", &payload])
            .expect("restore"),
        b"-OOM command not allowed when used memory > 'maxmemory'.\r\n".to_vec()
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
