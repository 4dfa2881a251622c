//! EVAL, EVALSHA, EVAL_RO and EVALSHA_RO.

use super::vm::{self, RunArgs, RunCtx};
use super::{check_declared_flags, sha1_hex, SF_ALLOW_OOM, SF_COMPAT, SF_NO_WRITES};
use crate::conn::{Conn, Step};
use crate::lua_raw;
use crate::state::Inner;
use bytes::Bytes;
use mlua::ffi;
use redsnap_engine::table::CommandSpec;
use redsnap_engine::Reply;
use std::ffi::c_int;

const NOSCRIPT_ERR: &str = "NOSCRIPT No matching script. Please use EVAL.";

/// Entry point from `Conn::execute` for EVAL*, EVALSHA* and SCRIPT.
pub(crate) fn run(
    conn: &mut Conn,
    inner: &mut Inner,
    spec: &'static CommandSpec,
    argv: &[Bytes],
) -> Step {
    let reply = match spec.name {
        "eval" => eval(conn, inner, argv, false, false),
        "eval_ro" => eval(conn, inner, argv, false, true),
        "evalsha" => eval(conn, inner, argv, true, false),
        "evalsha_ro" => eval(conn, inner, argv, true, true),
        _ => super::cache::script_command(inner, argv),
    };
    Step::Reply(reply)
}

/// The number of keys of an EVAL or FCALL (`argv[2]`), checked against the arguments.
pub(super) fn numkeys(argv: &[Bytes], not_integer: &'static str) -> Result<usize, Reply> {
    let Some(numkeys) = redsnap_engine::num::parse_i64(&argv[2]) else {
        return Err(Reply::err(not_integer));
    };
    if numkeys > (argv.len() - 3) as i64 {
        return Err(Reply::err(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    if numkeys < 0 {
        return Err(Reply::err("ERR Number of keys can't be negative"));
    }
    Ok(numkeys as usize)
}

fn eval(conn: &mut Conn, inner: &mut Inner, argv: &[Bytes], evalsha: bool, ro: bool) -> Reply {
    if evalsha && argv[1].len() != 40 {
        return Reply::err(NOSCRIPT_ERR);
    }
    let numkeys = match numkeys(argv, "ERR value is not an integer or out of range") {
        Ok(n) => n,
        Err(e) => return e,
    };
    // The SHA1 in lower case, on the stack for EVALSHA (no allocation per call).
    let mut lower = [0u8; 40];
    let sha: std::borrow::Cow<str> = if evalsha {
        for (d, c) in lower.iter_mut().zip(argv[1].iter()) {
            *d = c.to_ascii_lowercase();
        }
        match std::str::from_utf8(&lower) {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) => return Reply::err(NOSCRIPT_ERR),
        }
    } else {
        let sha = sha1_hex(&argv[1]);
        if !inner.scripts.contains(&sha) {
            if let Err(e) = inner.scripts.create(&argv[1]) {
                return e;
            }
        }
        std::borrow::Cow::Owned(sha)
    };
    let Some((func, sflags)) = inner.scripts.get(sha.as_ref()) else {
        return Reply::err(NOSCRIPT_ERR);
    };

    let script_oom = !crate::perform_evictions(inner);
    if let Err(e) = check_declared_flags(inner, sflags, ro, script_oom) {
        return e;
    }
    let keys = &argv[3..3 + numkeys];
    let args = &argv[3 + numkeys..];
    let run = RunCtx {
        conn: conn as *mut Conn,
        inner: inner as *mut Inner,
        resp3: false,
        ro: ro || sflags & SF_NO_WRITES != 0,
        allow_oom: sflags & SF_COMPAT == 0 && sflags & SF_ALLOW_OOM != 0,
        script_oom,
        dirty: false,
        repl: 3,
        function: false,
    };
    let handle = inner.scripts.vm.handle();
    vm::run(conn, inner, handle, sha.as_ref(), func, keys, args, run)
}

/// EVAL's entry, called (protected, with the error handler) as
/// `run_entry(args, func)`: sets KEYS and ARGV (raw: the globals are read-only to
/// scripts) and calls the script, leaving its first result. Holds no Rust value with
/// a destructor: an error raised by the script unwinds through it with a long jump.
pub(super) unsafe extern "C-unwind" fn run_entry(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: argument 1 is the `RunArgs` of the run in progress (see `vm::run`).
    let a = &*(ffi::lua_touserdata(l, 1) as *const RunArgs);
    lua_raw::refill_global_array(l, 3, 1, a.keys);
    lua_raw::refill_global_array(l, 4, 2, a.args);
    ffi::lua_remove(l, 1);
    ffi::lua_call(l, 0, 1);
    1
}
