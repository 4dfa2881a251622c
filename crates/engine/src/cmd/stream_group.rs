//! Stream consumer groups (Redis 7.0's `t_stream.c`): XGROUP, XACK, XPENDING,
//! XCLAIM, XAUTOCLAIM, XINFO, and the group side of XREADGROUP ([`read_group`]).

use super::is;
use super::stream::{
    id_reply, item_reply, items_reply, parse_id, parse_range_end, parse_range_start,
    parse_strict_id, read_stream, write_stream,
};
use crate::db::own;
use crate::notify;
use crate::reply::{self, Reply};
use crate::store::{CmdResult, Cx, Store};
use crate::stream::{Consumer, Group, Nack, StreamId, INVALID_ENTRIES_READ};
use crate::table::{cmd, flags::*, CommandSpec};
use crate::value::Value;
use bytes::Bytes;

#[rustfmt::skip]
const XGROUP_SUBS: &[CommandSpec] = &[
    cmd("xgroup|create", -5, WRITE | DENYOOM, 2, 2, 1, "stream", Some(xgroup)),
    cmd("xgroup|createconsumer", 5, WRITE | DENYOOM, 2, 2, 1, "stream", Some(xgroup)),
    cmd("xgroup|delconsumer", 5, WRITE, 2, 2, 1, "stream", Some(xgroup)),
    cmd("xgroup|destroy", 4, WRITE, 2, 2, 1, "stream", Some(xgroup)),
    cmd("xgroup|help", 2, LOADING | STALE, 0, 0, 0, "stream", Some(xgroup)),
    cmd("xgroup|setid", -5, WRITE, 2, 2, 1, "stream", Some(xgroup)),
];

#[rustfmt::skip]
const XINFO_SUBS: &[CommandSpec] = &[
    cmd("xinfo|consumers", 4, READONLY, 2, 2, 1, "stream", Some(super::stream_info::xinfo)),
    cmd("xinfo|groups", 3, READONLY, 2, 2, 1, "stream", Some(super::stream_info::xinfo)),
    cmd("xinfo|help", 2, LOADING | STALE, 0, 0, 0, "stream", Some(super::stream_info::xinfo)),
    cmd("xinfo|stream", -3, READONLY, 2, 2, 1, "stream", Some(super::stream_info::xinfo)),
];

pub const fn xgroup_subs() -> &'static [CommandSpec] {
    XGROUP_SUBS
}

pub const fn xinfo_subs() -> &'static [CommandSpec] {
    XINFO_SUBS
}

fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn long(b: &Bytes) -> Result<i64, Reply> {
    crate::num::parse_i64(b).ok_or_else(|| Reply::err(reply::ERR_NOT_INT))
}

fn long_msg(b: &Bytes, msg: &'static str) -> Result<i64, Reply> {
    crate::num::parse_i64(b).ok_or_else(|| Reply::err(msg))
}

pub(crate) fn syntax_sub(argv: &[Bytes]) -> Reply {
    Reply::error(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
        s(&argv[1][..argv[1].len().min(128)]),
        s(&argv[0]).to_ascii_uppercase()
    ))
}

pub(crate) fn help(argv: &[Bytes], lines: &[&str]) -> Reply {
    let mut out = vec![Reply::Simple(Bytes::from(format!(
        "{} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        s(&argv[0]).to_ascii_uppercase()
    )))];
    out.extend(
        lines
            .iter()
            .map(|l| Reply::Simple(Bytes::from(l.to_string()))),
    );
    out.push(Reply::simple("HELP"));
    out.push(Reply::simple("    Print this help."));
    Reply::Array(out)
}

/// Looks up (refreshing its seen-time) or creates a consumer (Redis's
/// `streamLookupConsumer` + `streamCreateConsumer` with SCC_DEFAULT); returns
/// whether it was created.
fn touch_consumer(cx: &mut Cx, key: &Bytes, group: &Bytes, name: &Bytes) -> bool {
    let now = cx.now;
    let created = {
        let Ok(Some(st)) = write_stream(cx, key) else {
            return false;
        };
        let Some(g) = st.groups.get_mut(group) else {
            return false;
        };
        match g.consumers.get_mut(name) {
            Some(c) => {
                c.seen_time = now;
                false
            }
            None => {
                {
                    let c = Consumer::new(name, now);
                    g.consumers.insert(c.name.as_ref().clone(), c);
                }
                true
            }
        }
    };
    if created {
        cx.add_dirty(1);
        cx.notify(notify::STREAM, "xgroup-createconsumer", key);
    }
    created
}

fn xclaim_record(
    key: &Bytes,
    group: &Bytes,
    id: StreamId,
    nack: &Nack,
    last: StreamId,
) -> Vec<Bytes> {
    let st = |x: &'static str| Bytes::from_static(x.as_bytes());
    vec![
        st("XCLAIM"),
        key.clone(),
        group.clone(),
        Bytes::clone(&nack.consumer),
        st("0"),
        id.to_bytes(),
        st("TIME"),
        Bytes::from(nack.delivery_time.to_string()),
        st("RETRYCOUNT"),
        Bytes::from(nack.delivery_count.to_string()),
        st("FORCE"),
        st("JUSTID"),
        st("LASTID"),
        last.to_bytes(),
    ]
}

fn setid_record(key: &Bytes, group: &Bytes, g: &Group) -> Vec<Bytes> {
    vec![
        Bytes::from_static(b"XGROUP"),
        Bytes::from_static(b"SETID"),
        key.clone(),
        group.clone(),
        g.last_id.to_bytes(),
        Bytes::from_static(b"ENTRIESREAD"),
        Bytes::from(g.entries_read.to_string()),
    ]
}

/// The group side of XREADGROUP for one key (Redis's `streamReplyWithRange` with a
/// group, or `streamReplyWithRangeFromConsumerPEL` for `history`): the entries
/// reply; records XCLAIM / XGROUP SETID / XGROUP CREATECONSUMER for the log.
#[allow(clippy::too_many_arguments)]
pub fn read_group(
    cx: &mut Cx,
    key: &Bytes,
    group: &Bytes,
    consumer: &Bytes,
    start: StreamId,
    count: u64,
    noack: bool,
    history: bool,
    _propagate: bool,
) -> Result<Reply, Reply> {
    let created = touch_consumer(cx, key, group, consumer);
    if created && noack {
        cx.propagate(vec![
            Bytes::from_static(b"XGROUP"),
            Bytes::from_static(b"CREATECONSUMER"),
            key.clone(),
            group.clone(),
            own(consumer),
        ]);
    }
    cx.add_dirty(1);
    let now = cx.now;
    let Some(st) = write_stream(cx, key)? else {
        return Ok(Reply::Array(vec![]));
    };
    let limit = if count == 0 {
        usize::MAX
    } else {
        count as usize
    };
    if history {
        let ids: Vec<StreamId> = st
            .groups
            .get(group)
            .and_then(|g| Some((g, g.consumers.get(consumer)?)))
            .map(|(g, c)| c.pending_ids(&g.pel, start).take(limit).collect())
            .unwrap_or_default();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            match st.get(id) {
                Some(fields) => {
                    if let Some(n) = st.groups.get_mut(group).and_then(|g| g.pel.get_mut(&id)) {
                        n.delivery_time = now;
                        n.delivery_count += 1;
                    }
                    out.push(item_reply((id, fields)));
                }
                None => out.push(Reply::Array(vec![id_reply(id), Reply::NilArray])),
            }
        }
        return Ok(Reply::Array(out));
    }
    let items = st.range(start, StreamId::MAX, false, limit);
    let cname = st.groups.get(group).map(|g| g.consumer_name(consumer));
    let mut records = Vec::new();
    let mut propagate_last_id = false;
    for (id, _) in &items {
        let id = *id;
        let tomb = st.range_has_tombstones(id, StreamId::MAX);
        let est = st.estimate_distance(id);
        let entries_added = st.entries_added;
        let Some(g) = st.groups.get_mut(group) else {
            break;
        };
        if id > g.last_id {
            if g.entries_read != INVALID_ENTRIES_READ && !tomb {
                g.entries_read += 1;
            } else if entries_added > 0 {
                g.entries_read = est;
            }
            g.last_id = id;
            if noack {
                propagate_last_id = true;
            }
        }
        if let (false, Some(cname)) = (noack, &cname) {
            let prev = g.pel.insert(
                id,
                Nack {
                    delivery_time: now,
                    delivery_count: 1,
                    consumer: cname.clone(),
                },
            );
            if let Some(p) = prev {
                if let Some(c) = g.consumers.get_mut(&*p.consumer) {
                    c.release(&g.pel);
                }
            }
            if let Some(c) = g.consumers.get_mut(consumer) {
                c.add(id);
            }
            if let Some(n) = g.pel.get(&id) {
                records.push(xclaim_record(key, group, id, n, g.last_id));
            }
        }
    }
    // Redis 7.0 propagates the group's last ID (with ENTRIESREAD) only for NOACK
    // reads (the XCLAIMs of the others carry no read counter), so replaying the
    // log leaves `entries-read` where XGROUP CREATE/SETID put it, as replaying
    // Redis's AOF does; a replica sees the same stream as Redis's replicas.
    if propagate_last_id {
        if let Some(g) = st.groups.get(group) {
            records.push(setid_record(key, group, g));
        }
    }
    for r in records {
        cx.propagate(r);
    }
    Ok(items_reply(items))
}

const XGROUP_HELP: &[&str] = &[
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
];

/// XGROUP CREATE|SETID|DESTROY|CREATECONSUMER|DELCONSUMER|HELP
pub fn xgroup(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let opt = &argv[1];
    let argc = argv.len();
    let mut mkstream = false;
    let mut entries_read = INVALID_ENTRIES_READ;
    let mut exists = false;
    let mut has_group = false;
    if argc >= 4 {
        let create = is(opt, "create");
        let setid = is(opt, "setid");
        let mut i = 5;
        while i < argc {
            if create && is(&argv[i], "mkstream") {
                mkstream = true;
                i += 1;
            } else if (create || setid) && is(&argv[i], "entriesread") && i + 1 < argc {
                entries_read = long(&argv[i + 1])?;
                if entries_read < 0 && entries_read != INVALID_ENTRIES_READ {
                    return Err(Reply::err(
                        "ERR value for ENTRIESREAD must be positive or -1",
                    ));
                }
                i += 2;
            } else {
                return Err(syntax_sub(argv));
            }
        }
        if let Some(st) = write_stream(cx, &argv[2])? {
            exists = true;
            has_group = st.groups.contains_key(&argv[3]);
        }
    }
    if argc >= 4 && !mkstream {
        if !exists {
            return Err(Reply::err("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically."));
        }
        if !has_group && (is(opt, "setid") || is(opt, "createconsumer") || is(opt, "delconsumer")) {
            return Err(Reply::error(format!(
                "NOGROUP No such consumer group '{}' for key name '{}'",
                s(&argv[3]),
                s(&argv[2])
            )));
        }
    }
    if argc == 2 && is(opt, "help") {
        return Ok(help(argv, XGROUP_HELP));
    }
    if is(opt, "create") && (5..=8).contains(&argc) {
        let key = &argv[2];
        let id = if argv[4].as_ref() == b"$" {
            None
        } else {
            Some(parse_strict_id(&argv[4])?)
        };
        if !exists {
            super::stream::create_stream(cx, key);
        }
        let Some(st) = write_stream(cx, key)? else {
            return Err(Reply::err("ERR internal error: stream not created"));
        };
        let id = id.unwrap_or(st.last_id);
        if st.groups.contains_key(&argv[3]) {
            return Err(Reply::err("BUSYGROUP Consumer Group name already exists"));
        }
        st.groups
            .insert(own(&argv[3]), Group::new(id, entries_read));
        cx.add_dirty(1);
        cx.notify(notify::STREAM, "xgroup-create", key);
        return Ok(Reply::ok());
    }
    if is(opt, "setid") && (argc == 5 || argc == 7) {
        let key = &argv[2];
        let given = if argv[4].as_ref() == b"$" {
            None
        } else {
            Some(parse_id(&argv[4], 0)?)
        };
        let Some(st) = write_stream(cx, key)? else {
            return Err(Reply::err(reply::ERR_NO_KEY));
        };
        let id = given.unwrap_or(st.last_id);
        if let Some(g) = st.groups.get_mut(&argv[3]) {
            g.last_id = id;
            g.entries_read = entries_read;
        }
        cx.add_dirty(1);
        cx.notify(notify::STREAM, "xgroup-setid", key);
        return Ok(Reply::ok());
    }
    if is(opt, "destroy") && argc == 4 {
        let key = &argv[2];
        let removed = write_stream(cx, key)?.is_some_and(|st| st.groups.remove(&argv[3]).is_some());
        if !removed {
            return Ok(Reply::Int(0));
        }
        // Wakes the clients blocked on the group (they get NOGROUP).
        cx.modified(key);
        cx.notify(notify::STREAM, "xgroup-destroy", key);
        return Ok(Reply::Int(1));
    }
    if is(opt, "createconsumer") && argc == 5 {
        let key = &argv[2];
        let now = cx.now;
        let Some(st) = write_stream(cx, key)? else {
            return Ok(Reply::Int(0));
        };
        let Some(g) = st.groups.get_mut(&argv[3]) else {
            return Ok(Reply::Int(0));
        };
        if g.consumers.contains_key(&argv[4]) {
            return Ok(Reply::Int(0));
        }
        {
            let c = Consumer::new(&argv[4], now);
            g.consumers.insert(c.name.as_ref().clone(), c);
        }
        cx.add_dirty(1);
        cx.notify(notify::STREAM, "xgroup-createconsumer", key);
        return Ok(Reply::Int(1));
    }
    if is(opt, "delconsumer") && argc == 5 {
        let key = &argv[2];
        let pending = write_stream(cx, key)?
            .and_then(|st| st.groups.get_mut(&argv[3]))
            .and_then(|g| g.del_consumer(&argv[4]));
        return Ok(Reply::Int(match pending {
            Some(n) => {
                cx.add_dirty(1);
                cx.notify(notify::STREAM, "xgroup-delconsumer", key);
                n as i64
            }
            None => 0,
        }));
    }
    Err(syntax_sub(argv))
}

/// XACK key group id [id ...]
pub fn xack(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    // The IDs are parsed first, their error reported only where Redis reports it
    // (after the key and group were found); up to 8 without an allocation, as
    // Redis's `static_ids`.
    let mut few = [StreamId::MIN; 8];
    let mut many = Vec::new();
    let args = &argv[3..];
    let parsed = if args.len() <= few.len() {
        args.iter()
            .zip(few.iter_mut())
            .try_for_each(|(a, slot)| parse_strict_id(a).map(|id| *slot = id))
            .map(|()| &few[..args.len()])
    } else {
        args.iter()
            .map(|a| parse_strict_id(a))
            .collect::<Result<Vec<_>, _>>()
            .map(|v| {
                many = v;
                &many[..]
            })
    };
    // Redis's lookupKeyRead (a hit or miss counted, the access clock touched), and
    // the value made mutable only when the group exists: one keyspace search.
    let (db, now) = (cx.db, cx.now);
    let store = &mut *cx.store;
    store.expire_if_needed(db, key, now);
    let Store {
        dbs,
        stats,
        rng,
        lfu,
        ..
    } = store;
    let (mut found, mut has_group) = (false, false);
    let obj = dbs[db].get_mut_checked(key, |o| {
        found = true;
        stats.keyspace_hits += 1;
        Store::touch_obj(*lfu, o, now, rng);
        match &o.value {
            Value::Stream(st) => {
                has_group = st.groups.contains_key(&argv[2]);
                // Nothing to write with a bad ID: it is reported below.
                Ok(has_group && parsed.is_ok())
            }
            _ => Err(Reply::wrongtype()),
        }
    })?;
    let Some(g) = obj.and_then(|o| match &mut o.value {
        Value::Stream(st) => st.groups.get_mut(&argv[2]),
        _ => None,
    }) else {
        if !found {
            store.stats.keyspace_misses += 1;
            store.notify(db, notify::KEY_MISS, "keymiss", key);
        }
        if has_group {
            parsed?;
        }
        return Ok(Reply::Int(0));
    };
    let mut acked = 0;
    for id in parsed? {
        if let Some(n) = g.pel.remove(id) {
            // One B-tree search: the consumer's set keeps the ID until its
            // next rebuild (see `Consumer`).
            if let Some(c) = g.consumers.get_mut(&*n.consumer) {
                c.release(&g.pel);
            }
            acked += 1;
        }
    }
    cx.add_dirty(acked);
    Ok(Reply::Int(acked as i64))
}

/// XPENDING key group [[IDLE min-idle] start end count [consumer]]
pub fn xpending(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let argc = argv.len();
    let justinfo = argc == 3;
    if argc != 3 && !(6..=9).contains(&argc) {
        return Err(Reply::err(reply::ERR_SYNTAX));
    }
    let mut start = StreamId::MIN;
    let mut end = StreamId::MAX;
    let mut count: i64 = 0;
    let mut minidle: i64 = 0;
    let mut consumer: Option<&Bytes> = None;
    if argc >= 6 {
        let mut startidx = 3;
        if is(&argv[3], "idle") {
            minidle = long(&argv[4])?;
            if argc < 8 {
                return Err(Reply::err(reply::ERR_SYNTAX));
            }
            startidx += 2;
        }
        count = long(&argv[startidx + 2])?.max(0);
        start = parse_range_start(&argv[startidx])?;
        end = parse_range_end(&argv[startidx + 1])?;
        if startidx + 3 < argc {
            consumer = Some(&argv[startidx + 3]);
        }
    }
    let now = cx.now as i64;
    let st = read_stream(cx, &argv[1])?;
    let Some(g) = st.and_then(|st| st.groups.get(&argv[2])) else {
        return Err(Reply::error(format!(
            "NOGROUP No such key '{}' or consumer group '{}'",
            s(&argv[1]),
            s(&argv[2])
        )));
    };
    if justinfo {
        let n = g.pel.len() as i64;
        if n == 0 {
            return Ok(Reply::Array(vec![
                Reply::Int(0),
                Reply::Nil,
                Reply::Nil,
                Reply::NilArray,
            ]));
        }
        let first = g.pel.keys().next().copied().unwrap_or_default();
        let last = g.pel.keys().next_back().copied().unwrap_or_default();
        let per: Vec<Reply> = g
            .consumers
            .iter()
            .filter(|(_, c)| c.pending() != 0)
            .map(|(name, c)| {
                Reply::Array(vec![
                    Reply::Bulk(name.clone()),
                    Reply::Bulk(Bytes::from(c.pending().to_string())),
                ])
            })
            .collect();
        return Ok(Reply::Array(vec![
            Reply::Int(n),
            id_reply(first),
            id_reply(last),
            Reply::Array(per),
        ]));
    }
    let ids: Vec<StreamId> = match consumer {
        Some(name) => match g.consumers.get(name) {
            None => return Ok(Reply::Array(vec![])),
            Some(c) => c.pending_ids(&g.pel, start).collect(),
        },
        None => g.pel.range(start..).map(|(k, _)| *k).collect(),
    };
    let mut out = Vec::new();
    if start > end {
        return Ok(Reply::Array(out));
    }
    for id in ids {
        if count == 0 || id > end {
            break;
        }
        let Some(n) = g.pel.get(&id) else {
            continue;
        };
        let idle = now - n.delivery_time as i64;
        if minidle != 0 && idle < minidle {
            continue;
        }
        count -= 1;
        out.push(Reply::Array(vec![
            id_reply(id),
            Reply::Bulk(Bytes::clone(&n.consumer)),
            Reply::Int(idle.max(0)),
            Reply::Int(n.delivery_count as i64),
        ]));
    }
    Ok(Reply::Array(out))
}

fn nogroup(argv: &[Bytes]) -> Reply {
    Reply::error(format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        s(&argv[1]),
        s(&argv[2])
    ))
}

/// Moves a pending entry to `consumer`; `fresh`: its NACK was just created
/// (XCLAIM FORCE) and has no owner yet.
fn claim_to(g: &mut Group, id: StreamId, consumer: &Bytes, fresh: bool) {
    let name = g.consumer_name(consumer);
    let Some(n) = g.pel.get_mut(&id) else {
        return;
    };
    if !fresh && *n.consumer == *consumer {
        return;
    }
    let old = std::mem::replace(&mut n.consumer, name);
    if !fresh {
        if let Some(c) = g.consumers.get_mut(&*old) {
            c.release(&g.pel);
        }
    }
    if let Some(c) = g.consumers.get_mut(consumer) {
        c.add(id);
    }
}

/// Drops a pending entry whose stream entry is gone; returns its NACK.
fn drop_nack(g: &mut Group, id: StreamId) -> Option<Nack> {
    let n = g.pel.remove(&id)?;
    if let Some(c) = g.consumers.get_mut(&*n.consumer) {
        c.release(&g.pel);
    }
    Some(n)
}

/// XCLAIM key group consumer min-idle-time id [id ...] [IDLE ms] [TIME ms]
/// [RETRYCOUNT n] [FORCE] [JUSTID] [LASTID id]
pub fn xclaim(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let gname = &argv[2];
    let has_group = read_stream(cx, key)?.is_some_and(|st| st.groups.contains_key(gname));
    if !has_group {
        return Err(nogroup(argv));
    }
    let minidle = long_msg(&argv[4], "ERR Invalid min-idle-time argument for XCLAIM")?.max(0);
    let mut ids = Vec::new();
    let mut j = 5;
    while j < argv.len() {
        match parse_strict_id(&argv[j]) {
            Ok(id) => ids.push(id),
            Err(_) => break,
        }
        j += 1;
    }
    let now = cx.now as i64;
    let mut last_id = StreamId::MIN;
    let mut force = false;
    let mut justid = false;
    let mut retrycount: i64 = -1;
    let mut deliverytime: i64 = -1;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        let opt = &argv[j];
        if is(opt, "force") {
            force = true;
        } else if is(opt, "justid") {
            justid = true;
        } else if is(opt, "idle") && more > 0 {
            j += 1;
            let v = long_msg(&argv[j], "ERR Invalid IDLE option argument for XCLAIM")?;
            deliverytime = now.wrapping_sub(v);
        } else if is(opt, "time") && more > 0 {
            j += 1;
            deliverytime = long_msg(&argv[j], "ERR Invalid TIME option argument for XCLAIM")?;
        } else if is(opt, "retrycount") && more > 0 {
            j += 1;
            retrycount = long_msg(
                &argv[j],
                "ERR Invalid RETRYCOUNT option argument for XCLAIM",
            )?;
        } else if is(opt, "lastid") && more > 0 {
            j += 1;
            last_id = parse_strict_id(&argv[j])?;
        } else {
            return Err(Reply::error(format!(
                "ERR Unrecognized XCLAIM option '{}'",
                s(opt)
            )));
        }
        j += 1;
    }
    cx.no_propagate();
    let Some(st) = write_stream(cx, key)? else {
        return Err(nogroup(argv));
    };
    let mut propagate_last_id = false;
    if let Some(g) = st.groups.get_mut(gname) {
        if last_id > g.last_id {
            g.last_id = last_id;
            propagate_last_id = true;
        }
    }
    if deliverytime != -1 {
        if deliverytime < 0 || deliverytime > now {
            deliverytime = now;
        }
    } else {
        deliverytime = now;
    }
    let name = own(&argv[3]);
    let mut consumer_ready = false;
    let mut created = false;
    let mut out = Vec::new();
    let mut records = Vec::new();
    let mut dirty = 0;
    for id in ids {
        let exists = st.contains(id);
        let fields = if exists && !justid { st.get(id) } else { None };
        let Some(g) = st.groups.get_mut(gname) else {
            break;
        };
        if !exists {
            if let Some(n) = drop_nack(g, id) {
                records.push(xclaim_record(key, gname, id, &n, g.last_id));
                propagate_last_id = false;
                dirty += 1;
            }
            continue;
        }
        let mut fresh = false;
        if force && !g.pel.contains_key(&id) {
            // Redis's streamCreateNACK starts the count at 1; the claim below
            // then adds one (unless JUSTID or RETRYCOUNT), as in xclaimCommand.
            g.pel.insert(
                id,
                Nack {
                    delivery_time: now as u64,
                    delivery_count: 1,
                    consumer: Default::default(),
                },
            );
            fresh = true;
        }
        let Some(n) = g.pel.get(&id) else {
            continue;
        };
        if !fresh && minidle != 0 && now - (n.delivery_time as i64) < minidle {
            continue;
        }
        if !consumer_ready {
            match g.consumers.get_mut(&name) {
                Some(c) => c.seen_time = now as u64,
                None => {
                    {
                        let c = Consumer::new(&name, now as u64);
                        g.consumers.insert(c.name.as_ref().clone(), c);
                    }
                    created = true;
                }
            }
            consumer_ready = true;
        }
        claim_to(g, id, &name, fresh);
        let last = g.last_id;
        if let Some(n) = g.pel.get_mut(&id) {
            n.delivery_time = deliverytime as u64;
            if retrycount >= 0 {
                n.delivery_count = retrycount as u64;
            } else if !justid {
                n.delivery_count += 1;
            }
            records.push(xclaim_record(key, gname, id, n, last));
        }
        propagate_last_id = false;
        dirty += 1;
        if justid {
            out.push(id_reply(id));
        } else {
            out.push(item_reply((id, fields.unwrap_or_default())));
        }
    }
    if propagate_last_id {
        if let Some(g) = st.groups.get(gname) {
            records.push(setid_record(key, gname, g));
        }
        dirty += 1;
    }
    if created {
        cx.add_dirty(1);
        cx.notify(notify::STREAM, "xgroup-createconsumer", key);
    }
    cx.add_dirty(dirty);
    for r in records {
        cx.propagate(r);
    }
    Ok(Reply::Array(out))
}

/// XAUTOCLAIM key group consumer min-idle-time start [COUNT count] [JUSTID]
pub fn xautoclaim(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let gname = &argv[2];
    let minidle = long_msg(
        &argv[4],
        "ERR Invalid min-idle-time argument for XAUTOCLAIM",
    )?
    .max(0);
    let start = parse_range_start(&argv[5])?;
    let mut count: i64 = 100;
    let mut justid = false;
    let mut j = 6;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        if is(&argv[j], "count") && more > 0 {
            let max = i64::MAX / 16;
            count = crate::num::parse_i64(&argv[j + 1])
                .filter(|c| (1..=max).contains(c))
                .ok_or_else(|| Reply::err("ERR COUNT must be > 0"))?;
            j += 1;
        } else if is(&argv[j], "justid") {
            justid = true;
        } else {
            return Err(Reply::err(reply::ERR_SYNTAX));
        }
        j += 1;
    }
    let has_group = read_stream(cx, key)?.is_some_and(|st| st.groups.contains_key(gname));
    if !has_group {
        return Err(nogroup(argv));
    }
    cx.no_propagate();
    let now = cx.now as i64;
    let Some(st) = write_stream(cx, key)? else {
        return Err(nogroup(argv));
    };
    let name = own(&argv[3]);
    let mut attempts = count.saturating_mul(10);
    let mut out = Vec::new();
    let mut deleted = Vec::new();
    let mut records = Vec::new();
    let mut consumer_ready = false;
    let mut created = false;
    let mut cursor = start;
    let mut next: Option<StreamId> = None;
    while let Some(g) = st.groups.get(gname) {
        let Some((&id, n)) = g.pel.range(cursor..).next() else {
            next = None;
            break;
        };
        if attempts == 0 || count == 0 {
            next = Some(id);
            break;
        }
        attempts -= 1;
        cursor = id.incr().unwrap_or(StreamId::MAX);
        let idle = now - n.delivery_time as i64;
        let exists = st.contains(id);
        let fields = if exists && !justid { st.get(id) } else { None };
        let Some(g) = st.groups.get_mut(gname) else {
            break;
        };
        if !exists {
            if let Some(n) = drop_nack(g, id) {
                records.push(xclaim_record(key, gname, id, &n, g.last_id));
            }
            deleted.push(id_reply(id));
            count -= 1;
            if id == StreamId::MAX {
                break;
            }
            continue;
        }
        if minidle != 0 && idle < minidle {
            if id == StreamId::MAX {
                break;
            }
            continue;
        }
        if !consumer_ready {
            match g.consumers.get_mut(&name) {
                Some(c) => c.seen_time = now as u64,
                None => {
                    {
                        let c = Consumer::new(&name, now as u64);
                        g.consumers.insert(c.name.as_ref().clone(), c);
                    }
                    created = true;
                }
            }
            consumer_ready = true;
        }
        claim_to(g, id, &name, false);
        let last = g.last_id;
        if let Some(n) = g.pel.get_mut(&id) {
            n.delivery_time = now as u64;
            if !justid {
                n.delivery_count += 1;
            }
            records.push(xclaim_record(key, gname, id, n, last));
        }
        if justid {
            out.push(id_reply(id));
        } else {
            out.push(item_reply((id, fields.unwrap_or_default())));
        }
        count -= 1;
        if id == StreamId::MAX {
            break;
        }
    }
    if created {
        cx.add_dirty(1);
        cx.notify(notify::STREAM, "xgroup-createconsumer", key);
    }
    cx.add_dirty(records.len() as u64);
    for r in records {
        cx.propagate(r);
    }
    Ok(Reply::Array(vec![
        id_reply(next.unwrap_or(StreamId::MIN)),
        Reply::Array(out),
        Reply::Array(deleted),
    ]))
}
