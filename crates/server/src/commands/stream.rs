//! XREAD and XREADGROUP: the engine reads (`redsnap_engine::cmd::stream::xread`);
//! with BLOCK and nothing to read, the client waits on its keys like a list pop
//! (`blocking.rs` serves it through [`serve`] when one of them is touched).

use super::Handler;
use crate::conn::{Conn, Step};
use crate::state::{BlockKind, Inner};
use bytes::Bytes;
use redsnap_engine::cmd::stream::{self as xs, Served, XRead, XReadWait};
use redsnap_engine::table::CommandSpec;
use redsnap_engine::{Cx, Reply};
use std::time::Duration;

pub(crate) const HANDLERS: &[(&str, Handler)] = &[("xread", command), ("xreadgroup", command)];

fn command(
    conn: &mut Conn,
    inner: &mut Inner,
    _spec: &'static CommandSpec,
    argv: &[Bytes],
) -> Step {
    let now = conn.script_now.unwrap_or_else(|| conn.command_ms());
    let in_script = inner.store.in_script;
    // Inside MULTI/EXEC and scripts nothing blocks (CLIENT_DENY_BLOCKING).
    let can_block = !conn.in_exec;
    let mut cx = Cx::new(&mut inner.store, conn.db, now, conn.resp3);
    match xs::xread(&mut cx, argv, in_script, can_block) {
        XRead::Reply(r) => Step::Reply(r),
        XRead::Block { timeout, wait } => {
            let keys: Vec<Bytes> = wait.ids.iter().map(|(k, _)| k.clone()).collect();
            conn.register_block(inner, keys, BlockKind::Stream(Box::new(wait)));
            let t = (timeout > 0).then(|| Duration::from_millis(timeout));
            Step::Block(t, Reply::NilArray)
        }
    }
}

/// Serves a client blocked by XREAD/XREADGROUP on `key` of `db`: its reply, or None
/// while it should keep waiting.
pub(crate) fn serve(
    inner: &mut Inner,
    db: usize,
    resp3: bool,
    key: &Bytes,
    wait: &XReadWait,
) -> Option<Reply> {
    let mut cx = Cx::new(&mut inner.store, db, redsnap_engine::now_ms(), resp3);
    match xs::serve_blocked(&mut cx, key, wait) {
        Served::NotReady => None,
        Served::Reply(r) => Some(r),
    }
}
