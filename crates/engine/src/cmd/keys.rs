//! Generic key commands.

use crate::reply::Reply;
use crate::store::{CmdResult, Cx};
use crate::table::{cmd, flags::*, CommandSpec};
use bytes::Bytes;

pub const COMMANDS: &[CommandSpec] = &[
    cmd("del", -2, WRITE, 1, -1, 1, "keyspace", Some(del)),
    cmd("exists", -2, READONLY | FAST, 1, -1, 1, "keyspace", Some(exists)),
];

fn del(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let n = argv[1..].iter().filter(|k| cx.delete(k)).count();
    Ok(Reply::Int(n as i64))
}

fn exists(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let n = argv[1..].iter().filter(|k| cx.exists(k)).count();
    Ok(Reply::Int(n as i64))
}
