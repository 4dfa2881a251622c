//! The master side of replication: SYNC, PSYNC, REPLCONF (the stream itself is
//! `crate::repl`); CLUSTER, which answers as a Redis without `cluster-enabled`.

use super::Handler;
use crate::conn::{Conn, Step};
use crate::state::Inner;
use bytes::Bytes;
use redsnap_engine::table::CommandSpec;
use redsnap_engine::Reply;

pub(crate) const HANDLERS: &[(&str, Handler)] = &[
    ("sync", sync),
    ("psync", sync),
    ("replconf", sync),
    ("cluster", cluster),
];

fn cluster(_: &mut Conn, _: &mut Inner, _: &'static CommandSpec, _: &[Bytes]) -> Step {
    Reply::err("ERR This instance has cluster support disabled").into()
}

fn sync(conn: &mut Conn, inner: &mut Inner, spec: &'static CommandSpec, argv: &[Bytes]) -> Step {
    crate::repl::command(conn, inner, spec.name, argv)
}
