//! Replication: SYNC, PSYNC, REPLCONF, WAIT, ROLE, REPLICAOF/SLAVEOF (the stream,
//! the replicas and the link to a master are `crate::repl`).

use super::Handler;
use crate::conn::{Conn, Step};
use crate::state::Inner;
use bytes::Bytes;
use redsnap_engine::table::CommandSpec;

pub(crate) const HANDLERS: &[(&str, Handler)] = &[
    ("sync", repl),
    ("psync", repl),
    ("replconf", repl),
    ("wait", repl),
    ("role", repl),
    ("replicaof", repl),
    ("slaveof", repl),
];

fn repl(conn: &mut Conn, inner: &mut Inner, spec: &'static CommandSpec, argv: &[Bytes]) -> Step {
    crate::repl::command(conn, inner, spec.name, argv)
}
