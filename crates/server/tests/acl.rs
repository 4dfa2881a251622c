//! ACL users (issue 17): a user limited to its key prefix and command categories is
//! refused other keys and commands at the top level, inside MULTI (at queue time and
//! when the rules change before EXEC) and inside a script, with Redis's NOPERM texts,
//! and ACL LOG records each denial; users survive a restart through the `aclfile`
//! and `user` directives; a malformed ACL file stops the start naming its line; and
//! a password used with AUTH, HELLO AUTH and ACL SETUSER appears in no reply, log
//! line, MONITOR line, SLOWLOG entry, INFO field or CLIENT LIST.
//!
//! Every wait is bounded; servers are killed on drop.

use redsnap_testsupport::{encode_command, free_port, redsnap_bin, RedsnapServer};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// A minimal RESP client: replies flattened into text (errors as `-TEXT`), and
/// every reply it read kept in `seen`.
struct Client {
    w: TcpStream,
    r: BufReader<TcpStream>,
    seen: String,
}

impl Client {
    fn connect(port: u16) -> Client {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        Client {
            r: BufReader::new(s.try_clone().expect("clone")),
            w: s,
            seen: String::new(),
        }
    }

    fn send(&mut self, args: &[&str]) {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.w.write_all(&encode_command(&args)).expect("send");
    }

    fn read_one(&mut self) -> io::Result<String> {
        let mut line = String::new();
        if self.r.read_line(&mut line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
        }
        let line = line.trim_end().to_string();
        let n = || line[1..].parse::<i64>().unwrap_or(0);
        match line.as_bytes().first() {
            Some(b'$') | Some(b'=') => {
                if n() < 0 {
                    return Ok("(nil)".into());
                }
                let mut buf = vec![0u8; n() as usize + 2];
                self.r.read_exact(&mut buf)?;
                Ok(String::from_utf8_lossy(&buf[..n() as usize]).into_owned())
            }
            Some(b'*') | Some(b'>') | Some(b'~') => {
                let mut parts = Vec::new();
                for _ in 0..n().max(0) {
                    parts.push(self.read_one()?);
                }
                Ok(parts.join(" "))
            }
            Some(b'%') => {
                let mut parts = Vec::new();
                for _ in 0..n().max(0) * 2 {
                    parts.push(self.read_one()?);
                }
                Ok(parts.join(" "))
            }
            _ => Ok(line),
        }
    }

    fn read(&mut self) -> io::Result<String> {
        let r = self.read_one()?;
        self.seen.push_str(&r);
        self.seen.push('\n');
        Ok(r)
    }

    fn call(&mut self, args: &[&str]) -> String {
        self.send(args);
        self.read().expect("reply")
    }
}

fn ok(r: String) {
    assert_eq!(r, "+OK");
}

fn start(extra: &[&str]) -> RedsnapServer {
    let mut args = vec!["--appendonly", "no", "--save", ""];
    args.extend_from_slice(extra);
    RedsnapServer::builder()
        .extra_args(&args)
        .start()
        .expect("start redsnap")
}

const KEY_DENIED: &str =
    "-NOPERM this user has no permissions to access one of the keys used as arguments";

#[test]
fn a_restricted_user_gets_noperm_everywhere_and_acl_log_shows_it() {
    let server = start(&[]);
    let mut admin = Client::connect(server.port());
    ok(admin.call(&[
        "ACL",
        "SETUSER",
        "app",
        "on",
        ">app-pw",
        "~app:*",
        "+@read",
        "+@write",
        "-@dangerous",
        "+@transaction",
        "+eval",
    ]));
    let mut app = Client::connect(server.port());
    ok(app.call(&["AUTH", "app", "app-pw"]));
    assert_eq!(
        app.call(&["ACL", "WHOAMI"]),
        "-NOPERM this user has no permissions to run the 'acl|whoami' command"
    );
    // Its keys: read and write.
    ok(app.call(&["SET", "app:1", "v"]));
    assert_eq!(app.call(&["GET", "app:1"]), "v");
    // Other keys, FLUSHALL, KEYS.
    assert_eq!(app.call(&["SET", "other", "v"]), KEY_DENIED);
    assert_eq!(app.call(&["GET", "other"]), KEY_DENIED);
    // A blocking command is checked before it blocks.
    assert_eq!(app.call(&["BLPOP", "other", "0"]), KEY_DENIED);
    assert_eq!(app.call(&["BLPOP", "app:list", "other", "0"]), KEY_DENIED);
    assert_eq!(
        app.call(&["FLUSHALL"]),
        "-NOPERM this user has no permissions to run the 'flushall' command"
    );
    assert_eq!(
        app.call(&["KEYS", "*"]),
        "-NOPERM this user has no permissions to run the 'keys' command"
    );
    // MULTI: refused when queued (the transaction is then discarded)...
    ok(app.call(&["MULTI"]));
    assert_eq!(app.call(&["SET", "other", "v"]), KEY_DENIED);
    assert_eq!(
        app.call(&["EXEC"]),
        "-EXECABORT Transaction discarded because of previous errors."
    );
    // ... and when the rules change between queueing and EXEC.
    ok(app.call(&["MULTI"]));
    assert_eq!(app.call(&["SET", "app:2", "v"]), "+QUEUED");
    assert_eq!(app.call(&["INCR", "app:3"]), "+QUEUED");
    ok(admin.call(&["ACL", "SETUSER", "app", "-incr"]));
    let exec = app.call(&["EXEC"]);
    assert!(
        exec.starts_with("+OK -NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: no permission to execute the command or subcommand"),
        "{exec}"
    );
    assert_eq!(admin.call(&["EXISTS", "app:3"]), ":0");
    // A script runs its commands with the caller's permissions.
    let r = app.call(&["EVAL", "return redis.call('set','other','v')", "0"]);
    assert!(
        r.starts_with("-ERR The user executing the script can't access at least one of the keys mentioned in the command arguments"),
        "{r}"
    );
    let r = app.call(&["EVAL", "return redis.call('flushall')", "0"]);
    assert!(
        r.starts_with("-ERR The user executing the script can't run this command or subcommand"),
        "{r}"
    );
    assert_eq!(
        app.call(&["EVAL", "return redis.call('get',KEYS[1])", "1", "app:1"]),
        "v"
    );
    assert_eq!(app.call(&["EVAL", "return 1", "1", "other"]), KEY_DENIED);
    assert_eq!(admin.call(&["EXISTS", "other"]), ":0");
    assert_eq!(admin.call(&["DBSIZE"]), ":2");
    // A failed AUTH.
    assert_eq!(
        app.call(&["AUTH", "app", "wrong"]),
        "-WRONGPASS invalid username-password pair or user is disabled."
    );
    // ACL LOG: newest first; each entry: count reason context object username ...
    admin.send(&["ACL", "LOG"]);
    let log = admin.read_one().expect("log");
    let entries: Vec<&str> = log.split("count ").skip(1).collect();
    let has = |reason: &str, context: &str, object: &str| {
        entries.iter().any(|e| {
            e.contains(&format!(
                "reason {reason} context {context} object {object} username app "
            ))
        })
    };
    assert!(has("key", "toplevel", "other"), "{log}");
    assert!(has("command", "toplevel", "flushall"), "{log}");
    assert!(has("command", "toplevel", "keys"), "{log}");
    assert!(has("key", "multi", "other"), "{log}");
    assert!(has("command", "multi", "incr"), "{log}");
    assert!(has("key", "lua", "other"), "{log}");
    assert!(has("command", "lua", "flushall"), "{log}");
    assert!(has("auth", "toplevel", "AUTH"), "{log}");
    // SET, GET, two BLPOPs and EVAL naming "other" at the top level: one entry.
    assert!(
        entries
            .iter()
            .any(|e| e.starts_with(":5 reason key context toplevel object other")),
        "{log}"
    );
    // Dry runs say the same without running anything.
    assert_eq!(
        admin.call(&["ACL", "DRYRUN", "app", "SET", "other", "v"]),
        "This user has no permissions to access the 'other' key"
    );
    ok(admin.call(&["ACL", "DRYRUN", "app", "SET", "app:9", "v"]));
    // Deleting the user closes its connections.
    assert_eq!(admin.call(&["ACL", "DELUSER", "app"]), ":1");
    app.send(&["PING"]);
    assert!(app.read().is_err());
}

#[test]
fn read_and_write_key_patterns_and_selectors() {
    let server = start(&[]);
    let mut admin = Client::connect(server.port());
    ok(admin.call(&[
        "ACL",
        "SETUSER",
        "rw",
        "on",
        "nopass",
        "+@all",
        "%R~r:*",
        "%W~w:*",
        "(+get ~sel:*)",
    ]));
    let mut c = Client::connect(server.port());
    ok(c.call(&["AUTH", "rw", "x"]));
    assert_eq!(c.call(&["GET", "r:1"]), "(nil)");
    assert_eq!(c.call(&["SET", "r:1", "v"]), KEY_DENIED);
    ok(c.call(&["SET", "w:1", "v"]));
    assert_eq!(c.call(&["GET", "w:1"]), KEY_DENIED);
    // COPY reads its source and writes its destination.
    assert_eq!(c.call(&["COPY", "r:1", "w:2"]), ":0");
    assert_eq!(c.call(&["COPY", "w:1", "r:2"]), KEY_DENIED);
    // The selector allows GET (only) on sel:*.
    assert_eq!(c.call(&["GET", "sel:1"]), "(nil)");
    assert_eq!(c.call(&["SET", "sel:1", "v"]), KEY_DENIED);
    let user = admin.call(&["ACL", "LIST"]);
    assert!(
        user.contains(
            "user rw on nopass %R~r:* %W~w:* resetchannels +@all (~sel:* resetchannels -@all +get)"
        ),
        "{user}"
    );
    // CLIENT KILL USER.
    assert_eq!(admin.call(&["CLIENT", "KILL", "USER", "rw"]), ":1");
    c.send(&["PING"]);
    assert!(c.read().is_err());
    assert_eq!(
        admin.call(&["CLIENT", "KILL", "USER", "nosuch"]),
        "-ERR No such user 'nosuch'"
    );
}

#[test]
fn users_survive_a_restart_through_the_aclfile() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("users.acl"), "").expect("acl file");
    let mut server = RedsnapServer::builder()
        .dir(dir.path())
        .extra_args(&["--appendonly", "no", "--save", "", "--aclfile", "users.acl"])
        .start()
        .expect("start");
    let mut admin = Client::connect(server.port());
    ok(admin.call(&[
        "ACL", "SETUSER", "app", "on", ">app-pw", "~app:*", "+@read", "+@write",
    ]));
    ok(admin.call(&["ACL", "SAVE"]));
    let file = std::fs::read_to_string(server.dir().join("users.acl")).expect("read");
    assert!(file.contains("user app on #"), "{file}");
    assert!(!file.contains("app-pw"), "{file}");
    server.restart().expect("restart");
    let mut app = Client::connect(server.port());
    ok(app.call(&["AUTH", "app", "app-pw"]));
    ok(app.call(&["SET", "app:1", "v"]));
    assert_eq!(app.call(&["SET", "other", "v"]), KEY_DENIED);
    // ACL LOAD re-reads the file (the user's clients are disconnected).
    std::fs::write(
        server.dir().join("users.acl"),
        format!("{file}user viewer on nopass ~* +@read\n"),
    )
    .expect("write");
    let mut admin = Client::connect(server.port());
    ok(admin.call(&["ACL", "LOAD"]));
    assert_eq!(admin.call(&["ACL", "USERS"]), "app default viewer");
    app.send(&["PING"]);
    assert!(app.read().is_err());
    // A malformed line is refused, naming the line; nothing changes.
    std::fs::write(
        server.dir().join("users.acl"),
        "user a on\nuser a off\nnot a user line\n",
    )
    .expect("write");
    let e = admin.call(&["ACL", "LOAD"]);
    assert!(
        e.contains("WARNING: Duplicate user 'a' found on line 2."),
        "{e}"
    );
    assert!(
        e.contains("users.acl:3 should start with user keyword"),
        "{e}"
    );
    assert_eq!(admin.call(&["ACL", "USERS"]), "app default viewer");
}

#[test]
fn a_malformed_acl_file_or_user_directive_stops_the_start() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("bad.acl"),
        "user ok on\nuser x on +nosuchcommand\n",
    )
    .expect("w");
    let out = std::process::Command::new(redsnap_bin().expect("bin"))
        .args([
            "serve",
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--port", &free_port().to_string()])
        .arg("--dir")
        .arg(dir.path())
        .args(["--aclfile", "bad.acl"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.acl:2: Error in applying operation '+nosuchcommand'"),
        "{err}"
    );
    let out = std::process::Command::new(redsnap_bin().expect("bin"))
        .args(["serve", "--user", "u", "on", "~*", "+nosuchcommand"])
        .args(["--port", &free_port().to_string()])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Unknown command or category name in ACL"),
        "{err}"
    );
}

#[test]
fn user_directives_define_users_at_start() {
    let server = start(&[
        "--user", "default", "on", "nopass", "~*", "+@all", "-flushdb", "--user", "svc", "on",
        ">svc-pw", "~svc:*", "+get",
    ]);
    let mut c = Client::connect(server.port());
    assert_eq!(
        c.call(&["FLUSHDB"]),
        "-NOPERM this user has no permissions to run the 'flushdb' command"
    );
    ok(c.call(&["AUTH", "svc", "svc-pw"]));
    assert_eq!(c.call(&["GET", "svc:1"]), "(nil)");
}

#[test]
fn requirepass_is_the_default_users_password() {
    let server = start(&[]);
    let mut c = Client::connect(server.port());
    ok(c.call(&["CONFIG", "SET", "requirepass", "pw1"]));
    let mut other = Client::connect(server.port());
    assert_eq!(other.call(&["PING"]), "-NOAUTH Authentication required.");
    ok(other.call(&["AUTH", "pw1"]));
    ok(other.call(&["AUTH", "default", "pw1"]));
    let user = c.call(&["ACL", "GETUSER", "default"]);
    assert!(user.starts_with("flags on passwords "), "{user}");
    ok(c.call(&["CONFIG", "SET", "requirepass", ""]));
    let mut third = Client::connect(server.port());
    assert_eq!(third.call(&["PING"]), "+PONG");
}

/// A known password, used with AUTH, HELLO AUTH, ACL SETUSER (and a rule that fails),
/// appears nowhere: replies, MONITOR, SLOWLOG, INFO, CLIENT LIST, ACL LIST/LOG, log.
#[test]
fn a_password_appears_in_no_reply_log_or_introspection() {
    const PW: &str = "Known-S3cret-Passw0rd";
    let server = start(&["--loglevel", "debug"]);
    let mut admin = Client::connect(server.port());
    ok(admin.call(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]));
    let mut monitor = Client::connect(server.port());
    ok(monitor.call(&["MONITOR"]));
    let pass_rule = format!(">{PW}");
    let remove_rule = format!("<{PW}x");
    ok(admin.call(&["ACL", "SETUSER", "svc", "on", &pass_rule, "~*", "+@all"]));
    let e = admin.call(&["ACL", "SETUSER", "svc", &remove_rule]);
    assert!(
        e.starts_with("-ERR Error in ACL SETUSER modifier '<(redacted)'"),
        "{e}"
    );
    let e = admin.call(&["ACL", "SETUSER", "svc", "(", &pass_rule]);
    assert!(e.starts_with("-ERR Unmatched parenthesis"), "{e}");
    let mut c = Client::connect(server.port());
    ok(c.call(&["AUTH", "svc", PW]));
    assert!(c
        .call(&["AUTH", PW])
        .starts_with("-ERR AUTH <password> called without any password configured"));
    let hello = c.call(&["HELLO", "3", "AUTH", "svc", PW, "SETNAME", "n"]);
    assert!(hello.contains("proto :3"), "{hello}");
    assert!(c
        .call(&["AUTH", "svc", &format!("{PW}!")])
        .starts_with("-WRONGPASS"));
    let e = c.call(&["HELLO", "3", "AUTH", "nosuchuser", PW]);
    assert!(e.starts_with("-WRONGPASS"), "{e}");
    ok(c.call(&["CONFIG", "SET", "masterauth", PW]));
    ok(c.call(&["SET", "k", "v"]));
    ok(admin.call(&["CONFIG", "SET", "slowlog-log-slower-than", "10000"]));
    // Everything that shows commands, clients or users.
    for q in [
        &["SLOWLOG", "GET", "128"][..],
        &["INFO", "ALL"],
        &["CLIENT", "LIST"],
        &["ACL", "LIST"],
        &["ACL", "GETUSER", "svc"],
        &["ACL", "LOG"],
    ] {
        admin.call(q);
    }
    let mut lines = Vec::new();
    for _ in 0..12 {
        match monitor.read() {
            Ok(l) if l.contains("\"SET\" \"k\"") => break,
            Ok(l) => lines.push(l),
            Err(e) => panic!("monitor: {e}"),
        }
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"AUTH\" \"(redacted)\" \"(redacted)\"")),
        "{lines:?}"
    );
    for (what, text) in [
        ("replies to the admin", &admin.seen),
        ("replies to the client", &c.seen),
        ("MONITOR", &monitor.seen),
        ("the server log", &server.log()),
    ] {
        assert!(
            !text.contains(PW),
            "the password appears in {what}:\n{text}"
        );
    }
    assert!(
        admin.seen.contains("svc"),
        "the introspection replies were read"
    );
}

#[test]
fn acllog_max_len_and_acl_pubsub_default_take_effect() {
    let server = start(&[]);
    let mut admin = Client::connect(server.port());
    ok(admin.call(&["CONFIG", "SET", "acllog-max-len", "3"]));
    ok(admin.call(&["ACL", "SETUSER", "u", "on", "nopass", "+get", "~a"]));
    let mut u = Client::connect(server.port());
    ok(u.call(&["AUTH", "u", "x"]));
    for k in ["b", "c", "d", "e", "f"] {
        assert_eq!(u.call(&["GET", k]), KEY_DENIED);
    }
    admin.send(&["ACL", "LOG"]);
    let log = admin.read_one().expect("log");
    assert_eq!(log.matches("reason key").count(), 3, "{log}");
    assert!(
        log.contains("object f") && !log.contains("object b"),
        "{log}"
    );
    // New users get the channels acl-pubsub-default says.
    ok(admin.call(&["ACL", "SETUSER", "before"]));
    ok(admin.call(&["CONFIG", "SET", "acl-pubsub-default", "allchannels"]));
    ok(admin.call(&["ACL", "SETUSER", "after"]));
    let list = admin.call(&["ACL", "LIST"]);
    assert!(list.contains("user after off &* -@all"), "{list}");
    assert!(
        list.contains("user before off resetchannels -@all"),
        "{list}"
    );
}
