//! The RedsnapServer harness, exercised with a stand-in binary (a script
//! that runs redis-server with the translated flags), since the real
//! redsnap binary may not exist yet.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use redsnap_testsupport::{raw_command, RedsnapServer};

fn fake_bin(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("fake-redsnap");
    std::fs::write(
        &path,
        "#!/bin/sh\n# usage: serve --port P --bind B --dir D [args]\n\
         [ \"$1\" = serve ] || exit 2\n\
         port=$3; bind=$5; dir=$7; shift 7\n\
         exec redis-server --port \"$port\" --bind \"$bind\" --dir \"$dir\" --save '' --appendonly no \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn lifecycle_with_a_stand_in_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = fake_bin(tmp.path());
    let data = tmp.path().join("data");
    let mut s = RedsnapServer::builder()
        .bin(&bin)
        .dir(&data)
        .password("pw")
        .start()
        .unwrap();
    assert_eq!(s.url(), format!("redis://:pw@127.0.0.1:{}", s.port()));
    assert_eq!(s.command(&[b"PING"]).unwrap(), b"+PONG\r\n");
    assert!(raw_command(s.port(), &[b"GET", b"x"])
        .unwrap()
        .starts_with(b"-NOAUTH"));
    assert_eq!(s.dir(), data.as_path());

    // SIGTERM: redis-server exits cleanly.
    s.terminate().unwrap();
    let status = s.wait_exit(Duration::from_secs(10)).expect("exited");
    assert!(status.success(), "{status:?}");
    assert!(s.wait_exit(Duration::from_millis(10)).is_none());

    // Restart on the same port and dir, then kill -9.
    let port = s.port();
    s.restart().unwrap();
    assert_eq!(s.port(), port);
    assert_eq!(s.command(&[b"PING"]).unwrap(), b"+PONG\r\n");
    s.kill_9();
    assert!(raw_command(port, &[b"PING"]).is_err());
    s.restart().unwrap();
    assert!(s.stop().is_some());
}

#[test]
fn early_exit_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = fake_bin(tmp.path());
    let err = RedsnapServer::builder()
        .bin(&bin)
        .extra_args(&["--definitely-not-an-option", "1"])
        .start()
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("exited early"), "{text}");
    assert!(text.contains("log tail"), "{text}");
}
