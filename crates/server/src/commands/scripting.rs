//! Scripting commands: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT, FUNCTION (the Lua
//! engine itself is `crate::scripting`).

use super::Handler;
use crate::conn::{ok, Conn, Step};
use crate::state::Inner;
use bytes::Bytes;
use redsnap_engine::cmd::is;
use redsnap_engine::table::CommandSpec;
use redsnap_engine::Reply;

pub(crate) const HANDLERS: &[(&str, Handler)] = &[
    ("eval", eval),
    ("evalsha", eval),
    ("eval_ro", eval),
    ("evalsha_ro", eval),
    ("script", eval),
    ("function", function),
];

fn eval(conn: &mut Conn, inner: &mut Inner, spec: &'static CommandSpec, argv: &[Bytes]) -> Step {
    crate::scripting::run(conn, inner, spec, argv)
}

fn function(_: &mut Conn, _: &mut Inner, _: &'static CommandSpec, argv: &[Bytes]) -> Step {
    if is(&argv[1], "flush") {
        ok().into()
    } else if is(&argv[1], "list") {
        Reply::Array(vec![]).into()
    } else {
        Reply::error(
            "ERR FUNCTION subcommands other than FLUSH and LIST are not supported by redsnap",
        )
        .into()
    }
}
