use super::*;

#[test]
fn memory_units() {
    assert_eq!(parse_memory("64mb"), Some(64 << 20));
    assert_eq!(parse_memory("1GB"), Some(1 << 30));
    assert_eq!(parse_memory("100k"), Some(100_000));
    assert_eq!(parse_memory("12"), Some(12));
    assert_eq!(parse_memory("x"), None);
    assert_eq!(parse_memory("-1"), None);
    assert_eq!(parse_memory(""), None);
    assert_eq!(parse_memory("1kbb"), None);
}

#[test]
fn file_errors_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("r.conf");
    std::fs::write(
        &p,
        "port 7000\n# comment\nmaxclients 10\nbogus-directive 1\n",
    )
    .unwrap();
    let mut c = Config::default();
    let e = c.load_file(&p).unwrap_err().to_string();
    assert!(e.contains(":4:"), "{e}");
    assert!(e.contains("bogus-directive"), "{e}");
    assert_eq!(c.int("port"), 7000);
    std::fs::write(&p, "port notanumber\n").unwrap();
    let e = Config::default().load_file(&p).unwrap_err().to_string();
    assert!(e.contains(":1:") && e.contains("integer"), "{e}");
}

#[test]
fn save_points_and_runtime() {
    let mut c = Config::default();
    c.set(
        "save",
        &["900".into(), "1".into(), "60".into(), "10000".into()],
    )
    .unwrap();
    assert_eq!(c.save_points(), vec![(900, 1), (60, 10000)]);
    c.set("save", &["".into()]).unwrap();
    assert!(c.save_points().is_empty());
    assert!(c.set_runtime("databases", "1").is_err());
    c.set_runtime("maxmemory", "1mb").unwrap();
    assert_eq!(c.u64("maxmemory"), 1 << 20);
    assert_eq!(c.get("maxmemory"), Some("1048576"));
}

#[test]
fn save_lines_in_a_file_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("r.conf");
    std::fs::write(&p, "save 900 1\nsave 300 10\n").unwrap();
    let mut c = Config::default();
    c.load_file(&p).unwrap();
    assert_eq!(c.str("save"), "900 1 300 10");
    assert_eq!(c.file(), Some(std::path::absolute(&p).unwrap().as_path()));
}

fn set_many(c: &mut Config, args: &[&str]) -> Result<Vec<&'static str>, String> {
    let pairs: Vec<(&[u8], &[u8])> = args
        .chunks(2)
        .map(|p| (p[0].as_bytes(), p[1].as_bytes()))
        .collect();
    c.set_many(&pairs).map(|ch| ch.names)
}

#[test]
fn config_set_is_all_or_nothing_with_redis_errors() {
    let mut c = Config::default();
    assert_eq!(
        set_many(&mut c, &["maxmemory", "10", "maxmemory-clients", "200%", "client-query-buffer-limit", "x"]),
        Err("CONFIG SET failed (possibly related to argument 'maxmemory-clients') - percentage argument must be less or equal to 100".into())
    );
    assert_eq!(c.get("maxmemory"), Some("0"));
    assert_eq!(
        set_many(&mut c, &["maxmemory", "1", "MAXMEMORY", "2"]),
        Err(
            "CONFIG SET failed (possibly related to argument 'MAXMEMORY') - duplicate parameter"
                .into()
        )
    );
    assert_eq!(
        set_many(&mut c, &["foo", "1", "daemonize", "yes"]),
        Err("Unknown option or number of arguments for CONFIG SET - 'foo'".into())
    );
    assert_eq!(
        set_many(&mut c, &["daemonize", "yes", "foo", "1"]),
        Err("CONFIG SET failed (possibly related to argument 'daemonize') - can't set immutable config".into())
    );
    // An alias and its name are different parameters to the duplicate check.
    assert_eq!(
        set_many(
            &mut c,
            &[
                "hash-max-ziplist-entries",
                "1",
                "hash-max-listpack-entries",
                "2"
            ]
        ),
        Ok(vec!["hash-max-listpack-entries"])
    );
    assert_eq!(c.get("hash-max-ziplist-entries"), Some("2"));
    // Errors name the parameter as given (alias) for value errors.
    assert_eq!(
        set_many(&mut c, &["hash-max-ziplist-entries", "x"]),
        Err("CONFIG SET failed (possibly related to argument 'hash-max-ziplist-entries') - argument couldn't be parsed into an integer".into())
    );
    assert_eq!(set_many(&mut c, &["maxmemory", "0"]), Ok(vec![]));
}

#[test]
fn every_value_config_get_shows_is_accepted_back() {
    let c = Config::default();
    let mut next = c.clone();
    for (name, value) in c.matching(b"*") {
        let d = find(&name).unwrap().0;
        if !d.mutable && !STARTUP_ONLY.contains(&d.name) {
            continue;
        }
        assert_eq!(
            next.set_runtime(&name, &value),
            Ok(()),
            "CONFIG SET {name} {value:?}"
        );
    }
    for (name, value) in c.matching(b"*") {
        assert_eq!(next.get(&name), Some(value.as_str()), "{name}");
    }
}

#[test]
fn formats_follow_redis() {
    let mut c = Config::default();
    let mut ok = |n: &str, v: &str, shown: &str| {
        c.set_runtime(n, v).unwrap();
        assert_eq!(c.get(n), Some(shown), "{n} {v}");
    };
    let mmc = find("maxmemory-clients").unwrap().0;
    assert_eq!(validate(mmc, "10%", ""), Ok("10%".into()));
    assert_eq!(validate(mmc, "1kb", ""), Ok("1024".into()));
    ok("appendfsync", "ALWAYS", "always");
    ok(
        "client-output-buffer-limit",
        "pubsub 1mb 2mb 3",
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 1048576 2097152 3",
    );
    ok(
        "client-output-buffer-limit",
        "replica 0 0 0",
        "normal 0 0 0 slave 0 0 0 pubsub 1048576 2097152 3",
    );
    ok("save", "3000 5", "3000 5");
    ok("repl-backlog-size", "10000002", "10000002");
    let err = |c: &mut Config, n: &str, v: &str| c.set_runtime(n, v).unwrap_err();
    assert!(err(&mut c, "maxmemory-policy", "x").ends_with("argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction"));
    assert!(err(&mut c, "timeout", "-1")
        .ends_with("argument must be between 0 and 2147483647 inclusive"));
    assert!(err(&mut c, "maxmemory", "1x").ends_with("argument must be a memory value"));
    assert!(err(&mut c, "save", "1 2 3").ends_with("Invalid save parameters"));
    assert!(err(&mut c, "protected-mode", "true").ends_with("argument must be 'yes' or 'no'"));
    assert!(err(&mut c, "client-output-buffer-limit", "master 1 1 1")
        .ends_with("Invalid client class specified in buffer limit configuration."));
}

#[test]
fn hidden_parameters_need_their_exact_name() {
    let c = Config::default();
    assert!(c.matching(b"*").iter().all(|(n, _)| n != "key-load-delay"));
    assert_eq!(
        c.matching(b"key-load-delay"),
        vec![("key-load-delay".to_string(), "0".to_string())]
    );
    let both = c.matching(b"*of");
    assert!(both.iter().any(|(n, _)| n == "slaveof") && both.iter().any(|(n, _)| n == "replicaof"));
    // The name is shown as asked.
    assert_eq!(c.matching(b"MAXMEMORY")[0].0, "MAXMEMORY");
}

#[test]
fn startup_only_parameters_accept_their_own_value() {
    let mut c = Config::default();
    assert_eq!(c.set_runtime("dbfilename", "dump.rdb"), Ok(()));
    assert_eq!(
        c.set_runtime("dbfilename", "x.rdb"),
        Err("CONFIG SET failed (possibly related to argument 'dbfilename') - can't set immutable config".into())
    );
}

#[test]
fn every_directive_has_a_policy_or_an_effect() {
    // Each Redis parameter redsnap does not act on is listed with a reason.
    for d in redis_params::DIRECTIVES {
        let listed = NO_EFFECT_BY_DESIGN.iter().any(|(n, _)| *n == d.name)
            || redis_params::ACTED_ON.iter().any(|(n, _)| *n == d.name)
            || not_built().any(|(n, _)| n == d.name);
        assert!(listed || !d.mutable, "{} has no policy", d.name);
    }
    // Names are unique across both tables.
    let mut seen = std::collections::HashSet::new();
    for d in all_directives() {
        for n in std::iter::once(&d.name).chain(d.aliases) {
            assert!(seen.insert(*n), "{n} twice");
        }
    }
}
