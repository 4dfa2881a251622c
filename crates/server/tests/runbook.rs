//! The operations guide this project comes from (source document 004) tells operators
//! to type these commands into `redis-cli`: INFO memory, CLIENT LIST, CONFIG GET
//! timeout, DEBUG SLEEP 0, SLOWLOG GET 10, MONITOR, BGSAVE, LASTSAVE, INFO
//! persistence. Each is run here with the real `redis-cli` against redsnap and against
//! a real redis-server side by side, and what the guide reads from the output is
//! checked on both.

use redsnap_testsupport::{RedisServer, RedsnapServer};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .stderr(Stdio::null())
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn servers() -> (RedsnapServer, RedisServer) {
    let redsnap = RedsnapServer::builder()
        .extra_args(&["--appendonly", "no", "--save", ""])
        .start()
        .expect("redsnap");
    let redis = RedisServer::builder()
        .extra_args(&["--enable-debug-command", "yes"])
        .start()
        .expect("redis-server");
    (redsnap, redis)
}

/// One field of an INFO reply.
fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
}

#[test]
fn inspection_commands_answer_as_the_guide_shows() {
    let (redsnap, redis) = servers();
    for (who, port) in [("redsnap", redsnap.port()), ("redis", redis.port())] {
        let mem = cli(port, &["INFO", "memory"]);
        assert!(mem.starts_with("# Memory"), "{who}: INFO memory: {mem}");
        for f in [
            "used_memory",
            "used_memory_human",
            "used_memory_peak",
            "maxmemory",
        ] {
            assert!(
                info_field(&mem, f).is_some(),
                "{who}: INFO memory lacks {f}"
            );
        }
        assert!(
            !mem.contains("# Server"),
            "{who}: INFO memory shows other sections"
        );

        let list = cli(port, &["CLIENT", "LIST"]);
        // The calling client is the newest (highest id): the previous redis-cli's
        // connection may still be listed while its close is being processed.
        let id_of = |l: &str| {
            l.strip_prefix("id=")
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let line = list.lines().max_by_key(|l| id_of(l)).unwrap_or_default();
        assert!(line.starts_with("id="), "{who}: CLIENT LIST: {list}");
        for f in [
            " addr=127.0.0.1:",
            " age=",
            " idle=",
            " db=0 ",
            " cmd=client|list ",
        ] {
            assert!(line.contains(f), "{who}: CLIENT LIST lacks {f}: {line}");
        }

        assert_eq!(
            cli(port, &["CONFIG", "GET", "timeout"]),
            "timeout\n0\n",
            "{who}: CONFIG GET timeout"
        );
        assert_eq!(cli(port, &["DEBUG", "SLEEP", "0"]), "OK\n", "{who}");
    }
}

#[test]
fn slowlog_get_shows_the_slow_command() {
    let (redsnap, redis) = servers();
    for (who, port) in [("redsnap", redsnap.port()), ("redis", redis.port())] {
        assert_eq!(cli(port, &["SLOWLOG", "RESET"]), "OK\n", "{who}");
        // Default threshold (10 ms): a 50 ms command is logged, a fast one is not.
        assert_eq!(cli(port, &["DEBUG", "SLEEP", "0.05"]), "OK\n", "{who}");
        assert_eq!(cli(port, &["PING"]), "PONG\n", "{who}");
        let log = cli(port, &["SLOWLOG", "GET", "10"]);
        let lines: Vec<&str> = log.lines().collect();
        // id, timestamp, duration (us), argv..., client address, client name
        assert!(
            lines.len() >= 6 && lines[3..6] == ["DEBUG", "SLEEP", "0.05"],
            "{who}: SLOWLOG GET 10: {log}"
        );
        let micros: u64 = lines[2].parse().unwrap_or(0);
        assert!(micros >= 50_000, "{who}: duration {micros}");
        assert!(
            !log.contains("PING"),
            "{who}: a fast command was logged: {log}"
        );
        assert_eq!(cli(port, &["SLOWLOG", "LEN"]), "1\n", "{who}");
    }
}

#[test]
fn monitor_shows_commands_from_other_clients() {
    let (redsnap, redis) = servers();
    for (who, port) in [("redsnap", redsnap.port()), ("redis", redis.port())] {
        let mut mon = Command::new("redis-cli")
            .arg("-p")
            .arg(port.to_string())
            .arg("MONITOR")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-cli MONITOR");
        let stdout = mon.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(10)).as_deref(),
            Ok("OK"),
            "{who}: MONITOR's first line"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = None;
        while seen.is_none() && Instant::now() < deadline {
            cli(port, &["SET", "runbook:key", "a value"]);
            while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
                if line.ends_with("\"SET\" \"runbook:key\" \"a value\"") {
                    seen = Some(line);
                    break;
                }
            }
        }
        let _ = mon.kill();
        let _ = mon.wait();
        let line = seen.unwrap_or_else(|| panic!("{who}: MONITOR never showed the SET"));
        // `<unix time>.<micros> [<db> <addr>] "SET" ...`
        let (time, rest) = line.split_once(' ').expect("time");
        let (secs, micros) = time.split_once('.').expect("fraction");
        assert!(
            secs.parse::<u64>().is_ok() && micros.len() == 6,
            "{who}: {line}"
        );
        assert!(rest.starts_with("[0 127.0.0.1:"), "{who}: {line}");
    }
}

#[test]
fn bgsave_lastsave_and_info_persistence() {
    let (redsnap, redis) = servers();
    for (who, port) in [("redsnap", redsnap.port()), ("redis", redis.port())] {
        cli(port, &["SET", "runbook:k", "v"]);
        let before: i64 = cli(port, &["LASTSAVE"]).trim().parse().expect("LASTSAVE");
        assert_eq!(
            cli(port, &["BGSAVE"]),
            "Background saving started\n",
            "{who}: BGSAVE"
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let info = cli(port, &["INFO", "persistence"]);
            assert!(info.starts_with("# Persistence"), "{who}: {info}");
            if info_field(&info, "rdb_bgsave_in_progress").as_deref() == Some("0")
                && info_field(&info, "rdb_last_bgsave_status").as_deref() == Some("ok")
                && cli(port, &["LASTSAVE"]).trim().parse::<i64>().unwrap_or(0) >= before
            {
                break;
            }
            assert!(Instant::now() < deadline, "{who}: BGSAVE never finished");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
