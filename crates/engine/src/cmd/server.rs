//! Database-wide commands the engine runs (DBSIZE, FLUSHDB, FLUSHALL, SWAPDB), and the
//! table entries of commands the server runs itself (connection, pub/sub,
//! transactions, blocking, scripting, administration).

use super::is;
use crate::reply::{self, Reply};
use crate::store::{CmdResult, Cx};
use crate::table::{cmd, flags::*, CommandSpec};
use bytes::Bytes;

pub const COMMANDS: &[CommandSpec] = &[
    cmd(
        "dbsize",
        1,
        READONLY | FAST,
        0,
        0,
        0,
        "server",
        Some(dbsize),
    ),
    cmd("flushdb", -1, WRITE, 0, 0, 0, "server", Some(flushdb)),
    cmd("flushall", -1, WRITE, 0, 0, 0, "server", Some(flushall)),
    cmd("swapdb", 3, WRITE | FAST, 0, 0, 0, "server", Some(swapdb)),
];

fn dbsize(cx: &mut Cx, _argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(cx.db().len() as i64))
}

/// Whether the flush is ASYNC (the contents are freed on the lazyfree thread).
fn flush_mode(argv: &[Bytes]) -> Result<bool, Reply> {
    match argv.len() {
        1 => Ok(false),
        2 if is(&argv[1], "sync") => Ok(false),
        2 if is(&argv[1], "async") => Ok(true),
        _ => Err(Reply::err(reply::ERR_SYNTAX)),
    }
}

/// Empties database `i`, freeing its contents in the background when `lazy`.
fn empty_db(cx: &mut Cx, i: usize, lazy: bool) {
    let d = cx.db_at(i);
    let n = d.len() as u64;
    if lazy && n > 0 {
        crate::lazyfree::drop_later(d.take_all(), n);
    } else {
        d.clear();
    }
}

fn flushdb(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let lazy = flush_mode(argv)?;
    let n = cx.db().len() as u64;
    let db = cx.db;
    empty_db(cx, db, lazy);
    cx.touched_db(db);
    cx.add_dirty(n.max(1));
    Ok(Reply::ok())
}

fn flushall(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let lazy = flush_mode(argv)?;
    let mut n = 0;
    for i in 0..cx.store.dbs.len() {
        n += cx.db_at(i).len() as u64;
        empty_db(cx, i, lazy);
        cx.touched_db(i);
    }
    cx.add_dirty(n.max(1));
    Ok(Reply::ok())
}

fn swapdb(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let parse = |b: &Bytes| -> Result<usize, Reply> {
        let v = crate::num::parse_i64(b).ok_or_else(|| Reply::err("ERR invalid first DB index"))?;
        Ok(v as usize)
    };
    let a =
        crate::num::parse_i64(&argv[1]).ok_or_else(|| Reply::err("ERR invalid first DB index"))?;
    let b =
        crate::num::parse_i64(&argv[2]).ok_or_else(|| Reply::err("ERR invalid second DB index"))?;
    let _ = parse;
    let n = cx.store.dbs.len() as i64;
    if a < 0 || a >= n || b < 0 || b >= n {
        return Err(Reply::err(reply::ERR_DB_INDEX));
    }
    cx.store.dbs.swap(a as usize, b as usize);
    // Each index now holds the other's keys: its record no longer describes it.
    cx.store.dbs[a as usize].forget_changes();
    cx.store.dbs[b as usize].forget_changes();
    cx.touched_db(a as usize);
    cx.touched_db(b as usize);
    cx.add_dirty(1);
    Ok(Reply::ok())
}

const fn sub(name: &'static str, arity: i32, flags: u32) -> CommandSpec {
    cmd(name, arity, flags, 0, 0, 0, "server", None)
}

const fn srv(name: &'static str, arity: i32, flags: u32, group: &'static str) -> CommandSpec {
    cmd(name, arity, flags, 0, 0, 0, group, None)
}

const fn keyed(
    name: &'static str,
    arity: i32,
    flags: u32,
    first: i32,
    last: i32,
    step: i32,
    group: &'static str,
) -> CommandSpec {
    cmd(name, arity, flags, first, last, step, group, None)
}

const fn with_subs(mut c: CommandSpec, subs: &'static [CommandSpec]) -> CommandSpec {
    c.subs = subs;
    c
}

/// Commands run by the server crate (their handler is `None` here).
pub const SERVER_HANDLED: &[CommandSpec] = &[
    // connection
    srv("ping", -1, FAST, "connection"),
    srv("echo", 2, LOADING | STALE | FAST, "connection"),
    srv(
        "auth",
        -2,
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY,
        "connection",
    ),
    srv(
        "hello",
        -1,
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY,
        "connection",
    ),
    srv("select", 2, LOADING | STALE | FAST, "connection"),
    srv(
        "quit",
        -1,
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY,
        "connection",
    ),
    srv(
        "reset",
        1,
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY,
        "connection",
    ),
    with_subs(
        srv("client", -2, 0, "connection"),
        &[
            sub("client|id", 2, NOSCRIPT | LOADING | STALE),
            sub("client|info", 2, NOSCRIPT | LOADING | STALE),
            sub("client|list", -2, ADMIN | NOSCRIPT | LOADING | STALE),
            sub("client|kill", -3, ADMIN | NOSCRIPT | LOADING | STALE),
            sub("client|setname", 3, NOSCRIPT | LOADING | STALE),
            sub("client|getname", 2, NOSCRIPT | LOADING | STALE),
            sub("client|pause", -3, ADMIN | NOSCRIPT | LOADING | STALE),
            sub("client|unpause", 2, ADMIN | NOSCRIPT | LOADING | STALE),
            sub("client|no-evict", 3, ADMIN | NOSCRIPT | LOADING | STALE),
            sub("client|reply", 3, NOSCRIPT | LOADING | STALE),
            sub("client|tracking", -3, NOSCRIPT | LOADING | STALE),
            sub("client|getredir", 2, NOSCRIPT | LOADING | STALE),
            sub("client|trackinginfo", 2, NOSCRIPT | LOADING | STALE),
            sub("client|caching", 3, NOSCRIPT | LOADING | STALE),
            sub("client|unblock", -3, ADMIN | NOSCRIPT | LOADING | STALE),
            sub("client|help", 2, LOADING | STALE),
        ],
    ),
    // ACL (the server's `commands/acl.rs`)
    with_subs(
        srv("acl", -2, 0, "server"),
        &[
            sub("acl|cat", -2, NOSCRIPT | LOADING | STALE),
            sub("acl|deluser", -3, ADMIN | NOSCRIPT | LOADING | STALE),
            sub("acl|dryrun", -4, ADMIN | NOSCRIPT | LOADING | STALE),
            sub("acl|genpass", -2, NOSCRIPT | LOADING | STALE),
            sub("acl|getuser", 3, ADMIN | NOSCRIPT | LOADING | STALE),
            sub("acl|help", 2, LOADING | STALE),
            sub("acl|list", 2, ADMIN | NOSCRIPT | LOADING | STALE),
            sub("acl|load", 2, ADMIN | NOSCRIPT | LOADING | STALE),
            sub("acl|log", -2, ADMIN | NOSCRIPT | LOADING | STALE),
            sub("acl|save", 2, ADMIN | NOSCRIPT | LOADING | STALE),
            sub("acl|setuser", -3, ADMIN | NOSCRIPT | LOADING | STALE),
            sub("acl|users", 2, ADMIN | NOSCRIPT | LOADING | STALE),
            sub("acl|whoami", 2, NOSCRIPT | LOADING | STALE),
        ],
    ),
    // server
    with_subs(
        srv("command", -1, LOADING | STALE, "server"),
        &[
            sub("command|count", 2, LOADING | STALE),
            sub("command|info", -2, LOADING | STALE),
            sub("command|docs", -2, LOADING | STALE),
            sub("command|list", -2, LOADING | STALE),
            sub("command|getkeys", -4, LOADING | STALE),
            sub("command|getkeysandflags", -4, LOADING | STALE),
            sub("command|help", 2, LOADING | STALE),
        ],
    ),
    srv("info", -1, LOADING | STALE, "server"),
    with_subs(
        srv("config", -2, 0, "server"),
        &[
            sub("config|get", -3, ADMIN | NOSCRIPT | LOADING | STALE),
            sub("config|set", -4, ADMIN | NOSCRIPT | LOADING | STALE),
            sub("config|resetstat", 2, ADMIN | NOSCRIPT | LOADING | STALE),
            sub("config|rewrite", 2, ADMIN | NOSCRIPT | LOADING | STALE),
            sub("config|help", 2, LOADING | STALE),
        ],
    ),
    srv("time", 1, LOADING | STALE | FAST, "server"),
    srv(
        "shutdown",
        -1,
        ADMIN | NOSCRIPT | LOADING | STALE | NO_MULTI | ALLOW_BUSY,
        "server",
    ),
    srv("save", 1, ADMIN | NOSCRIPT | NO_MULTI, "server"),
    srv("bgsave", -1, ADMIN | NOSCRIPT, "server"),
    srv("bgrewriteaof", 1, ADMIN | NOSCRIPT | NO_MULTI, "server"),
    srv("lastsave", 1, LOADING | STALE | FAST, "server"),
    srv("monitor", 1, ADMIN | NOSCRIPT | LOADING | STALE, "server"),
    srv("sync", 1, ADMIN | NOSCRIPT | NO_MULTI, "server"),
    srv("psync", -3, ADMIN | NOSCRIPT | NO_MULTI, "server"),
    srv("wait", 3, NOSCRIPT, "generic"),
    // Movable keys (KEYS ...): `getkeys::migrate_keys`.
    keyed("migrate", -6, WRITE | MOVABLEKEYS, 3, 3, 1, "generic"),
    srv("role", 1, NOSCRIPT | LOADING | STALE | FAST, "server"),
    srv("replicaof", 3, ADMIN | NOSCRIPT | STALE, "server"),
    srv("slaveof", 3, ADMIN | NOSCRIPT | STALE, "server"),
    srv(
        "replconf",
        -1,
        ADMIN | NOSCRIPT | LOADING | STALE | ALLOW_BUSY,
        "server",
    ),
    with_subs(
        srv("debug", -2, ADMIN | NOSCRIPT | LOADING | STALE, "server"),
        &[],
    ),
    with_subs(
        srv("latency", -2, 0, "server"),
        &[
            sub("latency|latest", 2, ADMIN | NOSCRIPT | LOADING | STALE),
            sub("latency|history", 3, ADMIN | NOSCRIPT | LOADING | STALE),
            sub("latency|reset", -2, ADMIN | NOSCRIPT | LOADING | STALE),
            sub("latency|doctor", 2, ADMIN | NOSCRIPT | LOADING | STALE),
            sub("latency|graph", 3, ADMIN | NOSCRIPT | LOADING | STALE),
            sub("latency|histogram", -2, ADMIN | NOSCRIPT | LOADING | STALE),
            sub("latency|help", 2, LOADING | STALE),
        ],
    ),
    with_subs(
        srv("memory", -2, 0, "server"),
        &[
            keyed("memory|usage", -3, READONLY, 2, 2, 1, "server"),
            sub("memory|stats", 2, 0),
            sub("memory|doctor", 2, 0),
            sub("memory|malloc-stats", 2, 0),
            sub("memory|purge", 2, 0),
            sub("memory|help", 2, LOADING | STALE),
        ],
    ),
    with_subs(
        srv("slowlog", -2, 0, "server"),
        &[
            sub("slowlog|get", -2, ADMIN | LOADING | STALE),
            sub("slowlog|len", 2, ADMIN | LOADING | STALE),
            sub("slowlog|reset", 2, ADMIN | LOADING | STALE),
            sub("slowlog|help", 2, LOADING | STALE),
        ],
    ),
    srv("lolwut", -1, READONLY | FAST, "server"),
    // cluster (redsnap runs standalone: every one answers that cluster support is
    // disabled, as Redis does with cluster-enabled no)
    srv("asking", 1, FAST, "cluster"),
    srv("readonly", 1, FAST | LOADING | STALE, "cluster"),
    srv("readwrite", 1, FAST | LOADING | STALE, "cluster"),
    with_subs(
        srv("cluster", -2, 0, "cluster"),
        &[
            sub("cluster|addslots", -3, ADMIN | STALE),
            sub("cluster|addslotsrange", -4, ADMIN | STALE),
            sub("cluster|bumpepoch", 2, ADMIN | STALE),
            sub("cluster|count-failure-reports", 3, ADMIN | STALE),
            sub("cluster|countkeysinslot", 3, STALE),
            sub("cluster|delslots", -3, ADMIN | STALE),
            sub("cluster|delslotsrange", -4, ADMIN | STALE),
            sub("cluster|failover", -2, ADMIN | STALE),
            sub("cluster|flushslots", 2, ADMIN | STALE),
            sub("cluster|forget", 3, ADMIN | STALE),
            sub("cluster|getkeysinslot", 4, STALE),
            sub("cluster|help", 2, LOADING | STALE),
            sub("cluster|info", 2, STALE),
            sub("cluster|keyslot", 3, STALE),
            sub("cluster|links", 2, STALE),
            sub("cluster|meet", -4, ADMIN | STALE),
            sub("cluster|myid", 2, STALE),
            sub("cluster|nodes", 2, STALE),
            sub("cluster|replicas", 3, ADMIN | STALE),
            sub("cluster|replicate", 3, ADMIN | STALE),
            sub("cluster|reset", -2, ADMIN | STALE | NOSCRIPT),
            sub("cluster|saveconfig", 2, ADMIN | STALE),
            sub("cluster|set-config-epoch", 3, ADMIN | STALE),
            sub("cluster|setslot", -4, ADMIN | STALE),
            sub("cluster|shards", 2, STALE),
            sub("cluster|slaves", 3, ADMIN | STALE),
            sub("cluster|slots", 2, STALE),
        ],
    ),
    // transactions
    srv(
        "multi",
        1,
        NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        "transactions",
    ),
    srv(
        "exec",
        1,
        NOSCRIPT | LOADING | STALE | SKIP_SLOWLOG,
        "transactions",
    ),
    srv(
        "discard",
        1,
        NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        "transactions",
    ),
    keyed(
        "watch",
        -2,
        NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        1,
        -1,
        1,
        "transactions",
    ),
    srv(
        "unwatch",
        1,
        NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        "transactions",
    ),
    // pub/sub
    srv(
        "subscribe",
        -2,
        PUBSUB | NOSCRIPT | LOADING | STALE,
        "pubsub",
    ),
    srv(
        "unsubscribe",
        -1,
        PUBSUB | NOSCRIPT | LOADING | STALE,
        "pubsub",
    ),
    srv(
        "psubscribe",
        -2,
        PUBSUB | NOSCRIPT | LOADING | STALE,
        "pubsub",
    ),
    srv(
        "punsubscribe",
        -1,
        PUBSUB | NOSCRIPT | LOADING | STALE,
        "pubsub",
    ),
    srv(
        "publish",
        3,
        PUBSUB | LOADING | STALE | FAST | MAY_REPLICATE,
        "pubsub",
    ),
    // sharded pub/sub (the channel is the key of cluster routing)
    keyed(
        "ssubscribe",
        -2,
        PUBSUB | NOSCRIPT | LOADING | STALE,
        1,
        -1,
        1,
        "pubsub",
    ),
    keyed(
        "sunsubscribe",
        -1,
        PUBSUB | NOSCRIPT | LOADING | STALE,
        1,
        -1,
        1,
        "pubsub",
    ),
    keyed(
        "spublish",
        3,
        PUBSUB | LOADING | STALE | FAST | MAY_REPLICATE,
        1,
        1,
        1,
        "pubsub",
    ),
    with_subs(
        srv("pubsub", -2, 0, "pubsub"),
        &[
            sub("pubsub|channels", -2, PUBSUB | LOADING | STALE),
            sub("pubsub|numsub", -2, PUBSUB | LOADING | STALE),
            sub("pubsub|numpat", 2, PUBSUB | LOADING | STALE),
            sub("pubsub|shardchannels", -2, PUBSUB | LOADING | STALE),
            sub("pubsub|shardnumsub", -2, PUBSUB | LOADING | STALE),
            sub("pubsub|help", 2, LOADING | STALE),
        ],
    ),
    // blocking (the server serves them with the non-blocking forms)
    keyed("blpop", -3, WRITE | NOSCRIPT | BLOCKING, 1, -2, 1, "list"),
    keyed("brpop", -3, WRITE | NOSCRIPT | BLOCKING, 1, -2, 1, "list"),
    keyed(
        "brpoplpush",
        4,
        WRITE | DENYOOM | NOSCRIPT | BLOCKING,
        1,
        2,
        1,
        "list",
    ),
    keyed(
        "blmove",
        6,
        WRITE | DENYOOM | NOSCRIPT | BLOCKING,
        1,
        2,
        1,
        "list",
    ),
    keyed(
        "blmpop",
        -5,
        WRITE | BLOCKING | MOVABLEKEYS,
        0,
        0,
        0,
        "list",
    ),
    keyed(
        "bzpopmin",
        -3,
        WRITE | NOSCRIPT | BLOCKING | FAST,
        1,
        -2,
        1,
        "sorted_set",
    ),
    keyed(
        "bzpopmax",
        -3,
        WRITE | NOSCRIPT | BLOCKING | FAST,
        1,
        -2,
        1,
        "sorted_set",
    ),
    keyed(
        "bzmpop",
        -5,
        WRITE | BLOCKING | MOVABLEKEYS,
        0,
        0,
        0,
        "sorted_set",
    ),
    // scripting
    keyed(
        "eval",
        -3,
        NOSCRIPT | SKIP_MONITOR | MAY_REPLICATE | NO_MANDATORY_KEYS | STALE | MOVABLEKEYS,
        0,
        0,
        0,
        "scripting",
    ),
    keyed(
        "evalsha",
        -3,
        NOSCRIPT | SKIP_MONITOR | MAY_REPLICATE | NO_MANDATORY_KEYS | STALE | MOVABLEKEYS,
        0,
        0,
        0,
        "scripting",
    ),
    keyed(
        "eval_ro",
        -3,
        NOSCRIPT | SKIP_MONITOR | NO_MANDATORY_KEYS | STALE | READONLY | MOVABLEKEYS,
        0,
        0,
        0,
        "scripting",
    ),
    keyed(
        "evalsha_ro",
        -3,
        NOSCRIPT | SKIP_MONITOR | NO_MANDATORY_KEYS | STALE | READONLY | MOVABLEKEYS,
        0,
        0,
        0,
        "scripting",
    ),
    with_subs(
        srv("script", -2, 0, "scripting"),
        &[
            sub("script|load", 3, NOSCRIPT | STALE),
            sub("script|exists", -3, NOSCRIPT),
            sub("script|flush", -2, NOSCRIPT),
            sub("script|kill", 2, NOSCRIPT | ALLOW_BUSY),
            sub("script|help", 2, LOADING | STALE),
        ],
    ),
    keyed(
        "fcall",
        -3,
        NOSCRIPT | SKIP_MONITOR | MAY_REPLICATE | NO_MANDATORY_KEYS | STALE | MOVABLEKEYS,
        0,
        0,
        0,
        "scripting",
    ),
    keyed(
        "fcall_ro",
        -3,
        NOSCRIPT | SKIP_MONITOR | NO_MANDATORY_KEYS | STALE | READONLY | MOVABLEKEYS,
        0,
        0,
        0,
        "scripting",
    ),
    with_subs(
        srv("function", -2, 0, "scripting"),
        &[
            sub("function|load", -3, WRITE | DENYOOM | NOSCRIPT),
            sub("function|delete", 3, WRITE | NOSCRIPT),
            sub("function|flush", -2, WRITE | NOSCRIPT),
            sub("function|list", -2, NOSCRIPT),
            sub("function|dump", 2, NOSCRIPT),
            sub("function|restore", -3, WRITE | DENYOOM | NOSCRIPT),
            sub("function|stats", 2, NOSCRIPT | ALLOW_BUSY),
            sub("function|kill", 2, NOSCRIPT | ALLOW_BUSY),
            sub("function|help", 2, LOADING | STALE),
        ],
    ),
];
