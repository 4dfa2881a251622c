//! XINFO STREAM [FULL [COUNT n]] | GROUPS | CONSUMERS | HELP (Redis 7.0's
//! `xinfoCommand`).

use super::is;
use super::stream::{id_reply, item_reply, items_reply, read_stream};
use super::stream_group::{help, syntax_sub};
use crate::reply::{self, Reply};
use crate::store::{CmdResult, Cx};
use crate::stream::{Group, Stream, StreamId, INVALID_ENTRIES_READ};
use bytes::Bytes;

fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn long(b: &Bytes) -> Result<i64, Reply> {
    crate::num::parse_i64(b).ok_or_else(|| Reply::err(reply::ERR_NOT_INT))
}

const XINFO_HELP: &[&str] = &[
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
];

fn bs(x: &'static str) -> Reply {
    Reply::Bulk(Bytes::from_static(x.as_bytes()))
}

fn opt_int(v: Option<i64>) -> Reply {
    v.map_or(Reply::Nil, Reply::Int)
}

/// XINFO STREAM key [FULL [COUNT n]] | GROUPS key | CONSUMERS key group | HELP
pub fn xinfo(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let opt = &argv[1];
    if is(opt, "help") {
        if argv.len() != 2 {
            return Err(syntax_sub(argv));
        }
        return Ok(help(argv, XINFO_HELP));
    }
    if argv.len() < 3 {
        return Err(syntax_sub(argv));
    }
    let now = cx.now as i64;
    let Some(st) = read_stream(cx, &argv[2])? else {
        return Err(Reply::err(reply::ERR_NO_KEY));
    };
    if is(opt, "consumers") && argv.len() == 4 {
        let Some(g) = st.groups.get(&argv[3]) else {
            return Err(Reply::error(format!(
                "NOGROUP No such consumer group '{}' for key name '{}'",
                s(&argv[3]),
                s(&argv[2])
            )));
        };
        let out = g
            .consumers
            .iter()
            .map(|(name, c)| {
                Reply::Map(vec![
                    (bs("name"), Reply::Bulk(name.clone())),
                    (bs("pending"), Reply::Int(c.pending() as i64)),
                    (bs("idle"), Reply::Int((now - c.seen_time as i64).max(0))),
                ])
            })
            .collect();
        return Ok(Reply::Array(out));
    }
    if is(opt, "groups") && argv.len() == 3 {
        let out = st
            .groups
            .iter()
            .map(|(name, g)| {
                Reply::Map(vec![
                    (bs("name"), Reply::Bulk(name.clone())),
                    (bs("consumers"), Reply::Int(g.consumers.len() as i64)),
                    (bs("pending"), Reply::Int(g.pel.len() as i64)),
                    (bs("last-delivered-id"), id_reply(g.last_id)),
                    (bs("entries-read"), entries_read(g)),
                    (bs("lag"), opt_int(st.group_lag(g))),
                ])
            })
            .collect();
        return Ok(Reply::Array(out));
    }
    if is(opt, "stream") {
        return stream_info(st, argv);
    }
    Err(syntax_sub(argv))
}

fn entries_read(g: &Group) -> Reply {
    if g.entries_read != INVALID_ENTRIES_READ {
        Reply::Int(g.entries_read)
    } else {
        Reply::Nil
    }
}

/// Redis's radix tree has about one inner node per key byte that branches; this is
/// an estimate for `radix-tree-nodes` (16-byte keys).
fn rax_nodes(st: &Stream) -> i64 {
    let n = st.nodes.len() as i64;
    if n == 0 {
        1
    } else {
        n * 2 + 15
    }
}

fn stream_info(st: &Stream, argv: &[Bytes]) -> CmdResult {
    let optc = argv.len() - 3;
    let mut full = false;
    let mut count: i64 = 10;
    if optc > 0 {
        if optc != 1 && optc != 3 {
            return Err(syntax_sub(argv));
        }
        if !is(&argv[3], "full") {
            return Err(syntax_sub(argv));
        }
        full = true;
        if optc == 3 {
            if !is(&argv[4], "count") {
                return Err(syntax_sub(argv));
            }
            count = long(&argv[5])?;
            if count < 0 {
                count = 10;
            }
        }
    }
    let mut m = vec![
        (bs("length"), Reply::Int(st.length as i64)),
        (bs("radix-tree-keys"), Reply::Int(st.nodes.len() as i64)),
        (bs("radix-tree-nodes"), Reply::Int(rax_nodes(st))),
        (bs("last-generated-id"), id_reply(st.last_id)),
        (bs("max-deleted-entry-id"), id_reply(st.max_deleted)),
        (bs("entries-added"), Reply::Int(st.entries_added as i64)),
        (bs("recorded-first-entry-id"), id_reply(st.first_id)),
    ];
    if !full {
        m.push((bs("groups"), Reply::Int(st.groups.len() as i64)));
        let first = st.range(StreamId::MIN, StreamId::MAX, false, 1).pop();
        let last = st.range(StreamId::MIN, StreamId::MAX, true, 1).pop();
        m.push((bs("first-entry"), first.map_or(Reply::Nil, item_reply)));
        m.push((bs("last-entry"), last.map_or(Reply::Nil, item_reply)));
        return Ok(Reply::Map(m));
    }
    let lim = if count == 0 {
        usize::MAX
    } else {
        count as usize
    };
    m.push((
        bs("entries"),
        items_reply(st.range(StreamId::MIN, StreamId::MAX, false, lim)),
    ));
    let groups = st
        .groups
        .iter()
        .map(|(name, g)| {
            let pending = g
                .pel
                .iter()
                .take(lim)
                .map(|(id, n)| {
                    Reply::Array(vec![
                        id_reply(*id),
                        Reply::Bulk(Bytes::clone(&n.consumer)),
                        Reply::Int(n.delivery_time as i64),
                        Reply::Int(n.delivery_count as i64),
                    ])
                })
                .collect();
            let consumers = g
                .consumers
                .iter()
                .map(|(cname, c)| {
                    let pend = c
                        .pending_ids(&g.pel, StreamId::MIN)
                        .take(lim)
                        .filter_map(|id| {
                            g.pel.get(&id).map(|n| {
                                Reply::Array(vec![
                                    id_reply(id),
                                    Reply::Int(n.delivery_time as i64),
                                    Reply::Int(n.delivery_count as i64),
                                ])
                            })
                        })
                        .collect();
                    Reply::Map(vec![
                        (bs("name"), Reply::Bulk(cname.clone())),
                        (bs("seen-time"), Reply::Int(c.seen_time as i64)),
                        (bs("pel-count"), Reply::Int(c.pending() as i64)),
                        (bs("pending"), Reply::Array(pend)),
                    ])
                })
                .collect();
            Reply::Map(vec![
                (bs("name"), Reply::Bulk(name.clone())),
                (bs("last-delivered-id"), id_reply(g.last_id)),
                (bs("entries-read"), entries_read(g)),
                (bs("lag"), opt_int(st.group_lag(g))),
                (bs("pel-count"), Reply::Int(g.pel.len() as i64)),
                (bs("pending"), Reply::Array(pending)),
                (bs("consumers"), Reply::Array(consumers)),
            ])
        })
        .collect();
    m.push((bs("groups"), Reply::Array(groups)));
    Ok(Reply::Map(m))
}
