//! Lua scripting (EVAL, EVALSHA, SCRIPT): not implemented yet.

use crate::conn::{Conn, Step};
use crate::state::Inner;
use bytes::Bytes;
use redsnap_engine::table::CommandSpec;
use redsnap_engine::Reply;

/// The Lua state and the script cache.
pub struct Scripts {}

impl Scripts {
    pub fn new() -> Scripts {
        Scripts {}
    }
}

impl Default for Scripts {
    fn default() -> Self {
        Scripts::new()
    }
}

pub(crate) fn run(
    _conn: &mut Conn,
    _inner: &mut Inner,
    spec: &'static CommandSpec,
    _argv: &[Bytes],
) -> Step {
    Step::Reply(Reply::error(format!(
        "ERR '{}': scripting is not available yet",
        spec.name
    )))
}
