//! Scripting commands: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT, FUNCTION, FCALL,
//! FCALL_RO (the Lua engine itself is `crate::scripting`).

use super::Handler;
use crate::conn::{Conn, Step};
use crate::state::Inner;
use bytes::Bytes;
use redsnap_engine::table::CommandSpec;

pub(crate) const HANDLERS: &[(&str, Handler)] = &[
    ("eval", eval),
    ("evalsha", eval),
    ("eval_ro", eval),
    ("evalsha_ro", eval),
    ("script", eval),
    ("function", function),
    ("fcall", fcall),
    ("fcall_ro", fcall),
];

fn eval(conn: &mut Conn, inner: &mut Inner, spec: &'static CommandSpec, argv: &[Bytes]) -> Step {
    crate::scripting::run(conn, inner, spec, argv)
}

fn function(conn: &mut Conn, inner: &mut Inner, _: &'static CommandSpec, argv: &[Bytes]) -> Step {
    crate::scripting::functions::function_command(conn, inner, argv)
}

fn fcall(conn: &mut Conn, inner: &mut Inner, spec: &'static CommandSpec, argv: &[Bytes]) -> Step {
    crate::scripting::functions::fcall(conn, inner, spec, argv)
}
