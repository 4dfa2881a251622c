//! The master side of replication: SYNC, PSYNC, REPLCONF (the stream itself is
//! `crate::repl`).

use super::Handler;
use crate::conn::{Conn, Step};
use crate::state::Inner;
use bytes::Bytes;
use redsnap_engine::table::CommandSpec;

pub(crate) const HANDLERS: &[(&str, Handler)] =
    &[("sync", sync), ("psync", sync), ("replconf", sync)];

fn sync(conn: &mut Conn, inner: &mut Inner, spec: &'static CommandSpec, argv: &[Bytes]) -> Step {
    crate::repl::command(conn, inner, spec.name, argv)
}
