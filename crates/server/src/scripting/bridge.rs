//! The `redis.call` bridge: commands a script runs go through the normal command path
//! (Redis's `scriptCall`: lookup, arity, NOSCRIPT, read-only and OOM checks, then
//! `Conn::execute`), and Redis's conversions between replies and Lua values both ways
//! (`lua_raw` pushes replies; `lua_to_reply` converts what a script returns).

use super::vm::{CtxCell, RunCtx};
use super::{error_reply_bytes, value_text, write_refusal, MAX_NESTING};
use crate::conn::{Conn, Step};
use crate::lua_raw;
use crate::state::Inner;
use bytes::Bytes;
use mlua::ffi;
use mlua::{Lua, MultiValue, Table, Value};
use redsnap_engine::num::fmt_g;
use redsnap_engine::table::{self, flags, CommandSpec};
use redsnap_engine::Reply;
use std::ffi::c_int;
use std::sync::atomic::Ordering;

/// The reply for an error that ended a script: an error table (with where it was
/// raised), or any other value (Redis's luaCallFunction).
pub(super) fn run_error_reply(v: Value, name: &str) -> Reply {
    match v {
        Value::Table(t) => error_from_table(&t, name),
        other => {
            let text = value_text(&other).unwrap_or_else(|| b"execution failure".to_vec());
            let mut msg = format!("ERR Error running script {name}, ").into_bytes();
            msg.extend_from_slice(&text[..text.len().min(100)]);
            error_reply_bytes(msg)
        }
    }
}

/// The reply for an error raised by a script: the message, then where it was raised.
fn error_from_table(t: &Table, sha: &str) -> Reply {
    let get =
        |k: &str| -> Option<Vec<u8>> { t.raw_get::<Value>(k).ok().and_then(|v| value_text(&v)) };
    let mut msg = get("err").unwrap_or_else(|| b"ERR unknown error".to_vec());
    if let (Some(source), Some(line)) = (get("source"), get("line")) {
        msg.extend_from_slice(format!(" script: {sha}, on ").as_bytes());
        msg.extend_from_slice(&source);
        msg.push(b':');
        msg.extend_from_slice(&line);
        msg.push(b'.');
    }
    error_reply_bytes(msg)
}

/// Redis's luaPushErrorBuff: "-CODE msg" or "msg" (code ERR) into "CODE msg".
pub(crate) fn error_text_from_buf(buf: &[u8]) -> Vec<u8> {
    let (code, msg): (&[u8], &[u8]) = if let Some(rest) = buf.strip_prefix(b"-") {
        match rest.iter().position(|&c| c == b' ') {
            Some(sp) => (&rest[..sp], &rest[sp + 1..]),
            None => (b"ERR", rest),
        }
    } else {
        (b"ERR", buf)
    };
    let is_nl = |c: &u8| *c == b'\r' || *c == b'\n';
    let start = msg.iter().position(|c| !is_nl(c)).unwrap_or(msg.len());
    let end = msg.iter().rposition(|c| !is_nl(c)).map_or(start, |e| e + 1);
    let mut out = code.to_vec();
    out.push(b' ');
    out.extend_from_slice(&msg[start..end.max(start)]);
    out
}

pub(super) fn error_table(lua: &Lua, buf: &[u8], ignore_stats: bool) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set("err", lua.create_string(error_text_from_buf(buf))?)?;
    if ignore_stats {
        t.raw_set("ignore_error_stats_update", true)?;
    }
    Ok(Value::Table(t))
}

/// Redis's luaArgsToRedisArgv.
pub(super) fn lua_args_to_argv(args: &MultiValue) -> Result<Vec<Bytes>, &'static [u8]> {
    if args.is_empty() {
        return Err(b"Please specify at least one argument for this redis lib call");
    }
    let mut argv = Vec::with_capacity(args.len());
    for v in args.iter() {
        match v {
            Value::String(s) => argv.push(Bytes::copy_from_slice(&s.as_bytes())),
            Value::Integer(i) => argv.push(Bytes::from(fmt_g(*i as f64, 17))),
            Value::Number(n) => argv.push(Bytes::from(fmt_g(*n, 17))),
            _ => return Err(b"Lua redis lib command arguments must be strings or integers"),
        }
    }
    Ok(argv)
}

/// Status for library implementations wrapped by `lib_shim`: the value, or raise it.
pub(super) fn status(raise: bool, v: Value) -> (i32, Value) {
    (raise as i32, v)
}

pub(super) unsafe extern "C-unwind" fn lua_redis_call(l: *mut ffi::lua_State) -> c_int {
    redis_call_raw(l, true)
}

pub(super) unsafe extern "C-unwind" fn lua_redis_pcall(l: *mut ffi::lua_State) -> c_int {
    redis_call_raw(l, false)
}

/// redis.call / redis.pcall: the converted reply, raised when it is an error and this
/// is redis.call. Every Rust value is dropped before `lua_error` jumps away.
unsafe fn redis_call_raw(l: *mut ffi::lua_State, raise: bool) -> c_int {
    let raise_now = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        redis_call_body(l, raise)
    })) {
        Ok(r) => r,
        Err(_) => {
            ffi::lua_settop(l, 0);
            lua_raw::push_error_table(l, b"internal error running the command", false);
            true
        }
    };
    if raise_now {
        ffi::lua_error(l)
    } else {
        1
    }
}

/// Pushes the call's result (or error table) and says whether to raise it.
unsafe fn redis_call_body(l: *mut ffi::lua_State, raise: bool) -> bool {
    // SAFETY: upvalue 1 is the `CtxCell` of the `Scripts` owning this state.
    let cell = &*(ffi::lua_touserdata(l, ffi::lua_upvalueindex(1)) as *const CtxCell);
    let Some(ctx) = cell.get().as_mut() else {
        lua_raw::push_error_table(
            l,
            b"redis.call/pcall can only be called inside a script invocation",
            false,
        );
        return true;
    };
    let argv = match lua_raw::read_argv(l, cell.argv_buf()) {
        Ok(a) => a,
        Err(msg) => {
            lua_raw::push_error_table(l, msg, false);
            return raise;
        }
    };
    // The arguments are copied: pop them, so the reply has the stack's room (a
    // call with thousands of arguments leaves little of it, as in Redis).
    ffi::lua_settop(l, 0);
    // SAFETY: the pointers were taken from the `&mut` references of the EVAL being
    // served, which are not used while the script runs (see `vm::run`).
    let conn = &mut *ctx.conn;
    let inner = &mut *ctx.inner;
    let reply = match script_call(ctx, conn, inner, argv) {
        Ok(r) => r,
        Err((cmd, msg)) => {
            crate::calls::script_rejected(inner, cmd, &msg);
            lua_raw::push_error_table(l, &msg, true);
            return raise;
        }
    };
    if !lua_raw::push_reply(l, &reply, ctx.resp3) {
        lua_raw::push_error_table(l, b"reached lua stack limit", false);
        return raise;
    }
    raise && reply.is_error()
}

/// Redis's scriptCall: the checks a command from a script goes through, then the run.
fn script_call(
    ctx: &mut RunCtx,
    conn: &mut Conn,
    inner: &mut Inner,
    argv: Vec<Bytes>,
) -> Result<Reply, (Option<&'static CommandSpec>, Vec<u8>)> {
    let unknown = || (None, b"Unknown Redis command called from script".to_vec());
    let spec = table::lookup(&argv[0]).ok_or_else(unknown)?;
    let cmd = if !spec.subs.is_empty() && argv.len() >= 2 {
        table::lookup_sub(spec, &argv[1]).ok_or_else(unknown)?
    } else {
        spec
    };
    script_checks(ctx, conn, inner, cmd, &argv).map_err(|e| (Some(cmd), e))?;
    let saved_resp = conn.resp3;
    conn.resp3 = ctx.resp3;
    let log_len = inner.store.effects.log.len();
    inner.store.in_script = true;
    let step = conn.call(inner, spec, cmd, argv, true);
    inner.store.in_script = false;
    conn.resp3 = saved_resp;
    if ctx.repl & 1 == 0 {
        inner.store.effects.log.truncate(log_len);
    }
    Ok(match step {
        Step::Reply(r) | Step::Block(_, r) => r,
        // DEBUG SLEEP: the script (and the server, as in Redis) waits.
        Step::Sleep(d, r) => {
            std::thread::sleep(d);
            r
        }
        Step::Many(v) => Reply::Array(v),
        Step::Close(r) => r.unwrap_or_else(Reply::ok),
        // (`execute` never postpones: CLIENT PAUSE acts in `dispatch`.)
        Step::Async(_) | Step::Postpone(_) => {
            Reply::err("ERR This Redis command is not allowed from script")
        }
    })
}

/// The checks of scriptCall after the lookup: arity, commands scripts may not run,
/// read-only scripts, MISCONF, OOM.
fn script_checks(
    ctx: &mut RunCtx,
    conn: &mut Conn,
    inner: &Inner,
    cmd: &'static CommandSpec,
    argv: &[Bytes],
) -> Result<(), Vec<u8>> {
    let argc = argv.len();
    let arity_ok = if cmd.arity >= 0 {
        argc == cmd.arity as usize
    } else {
        argc >= (-cmd.arity) as usize
    };
    if !arity_ok {
        return Err(b"Wrong number of args calling Redis command from script".to_vec());
    }
    // Redis 7.0 flags every blocking command NOSCRIPT. DEBUG
    // SET-DISABLE-DENY-SCRIPTS lets NOSCRIPT commands through (for tests).
    let deny = cmd.has(flags::NOSCRIPT) && !inner.scripts.allow_denied;
    // XREAD and XREADGROUP run (without blocking: BLOCK is refused) as in Redis.
    let blocking = cmd.has(flags::BLOCKING) && !matches!(cmd.name, "xread" | "xreadgroup");
    if deny || blocking {
        return Err(b"This Redis command is not allowed from script".to_vec());
    }
    // With the permissions of the script's caller (Redis's `scriptVerifyACL`).
    conn.acl_check_script(inner, cmd, argv)?;
    let write = cmd.is_write();
    if ctx.ro && (write || cmd.has(flags::MAY_REPLICATE)) {
        return Err(b"Write commands are not allowed from read-only scripts.".to_vec());
    }
    if write && !ctx.dirty {
        if let Some(Reply::Error(e)) = write_refusal(inner) {
            let mut buf = b"-".to_vec();
            buf.extend_from_slice(&e);
            return Err(buf);
        }
    }
    if !ctx.allow_oom
        && !ctx.dirty
        && ctx.script_oom
        && cmd.has(flags::DENYOOM)
        && inner.config.u64("maxmemory") > 0
    {
        return Err(b"-OOM command not allowed when used memory > 'maxmemory'.".to_vec());
    }
    if write {
        ctx.dirty = true;
        conn.shared.busy.wrote.store(true, Ordering::Release);
    }
    Ok(())
}

/// redis.acl_check_cmd: whether the script's caller may run the command (nothing is
/// logged).
pub(super) fn acl_check(lua: &Lua, cell: &CtxCell, args: MultiValue) -> mlua::Result<(i32, Value)> {
    if cell.get().is_none() {
        return Ok(status(
            true,
            error_table(
                lua,
                b"redis.acl_check_cmd can only be called inside a script invocation",
                false,
            )?,
        ));
    }
    let argv = match lua_args_to_argv(&args) {
        Ok(a) => a,
        Err(msg) => return Ok(status(true, error_table(lua, msg, false)?)),
    };
    let found = table::lookup(&argv[0]).and_then(|spec| {
        if !spec.subs.is_empty() && argv.len() >= 2 {
            table::lookup_sub(spec, &argv[1])
        } else {
            Some(spec)
        }
    });
    match found {
        Some(cmd) => {
            let allowed = match cell.get().as_ref() {
                // SAFETY: as in `redis_call_body`: the EVAL's connection, not used
                // otherwise while the script runs.
                Some(ctx) => {
                    let conn = unsafe { &mut *ctx.conn };
                    conn.acl_check(cmd, &argv).is_ok()
                }
                None => false,
            };
            Ok(status(false, Value::Boolean(allowed)))
        }
        None => Ok(status(
            true,
            error_table(
                lua,
                b"Invalid command passed to redis.acl_check_cmd()",
                false,
            )?,
        )),
    }
}

fn replace_newlines(b: &[u8]) -> Bytes {
    if b.iter().any(|&c| c == b'\r' || c == b'\n') {
        Bytes::from(
            b.iter()
                .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c })
                .collect::<Vec<u8>>(),
        )
    } else {
        Bytes::copy_from_slice(b)
    }
}

/// A script's return value as a reply (Redis's luaReplyToRedisReply).
pub(super) fn lua_to_reply(v: &Value, resp3: bool, depth: usize) -> Reply {
    if depth > MAX_NESTING {
        return Reply::err("ERR reached lua stack limit");
    }
    match v {
        Value::String(s) => Reply::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Boolean(b) => lua_raw::bool_reply(*b, resp3),
        Value::Integer(i) => Reply::Int(*i),
        Value::Number(n) => Reply::Int(*n as i64),
        Value::Table(t) => {
            if let Ok(Value::String(e)) = t.raw_get::<Value>("err") {
                return error_reply_bytes(e.as_bytes().to_vec());
            }
            if let Ok(Value::String(s)) = t.raw_get::<Value>("ok") {
                return Reply::Simple(replace_newlines(&s.as_bytes()));
            }
            match t.raw_get::<Value>("double") {
                Ok(Value::Number(d)) => return Reply::Double(d),
                Ok(Value::Integer(i)) => return Reply::Double(i as f64),
                _ => {}
            }
            if let Ok(Value::String(s)) = t.raw_get::<Value>("big_number") {
                return Reply::BigNumber(replace_newlines(&s.as_bytes()));
            }
            if let Ok(Value::Table(vt)) = t.raw_get::<Value>("verbatim_string") {
                if let (Ok(Value::String(f)), Ok(Value::String(s))) =
                    (vt.raw_get::<Value>("format"), vt.raw_get::<Value>("string"))
                {
                    let text = Bytes::copy_from_slice(&s.as_bytes());
                    return match &f.as_bytes()[..] {
                        b"txt" => Reply::Verbatim("txt", text),
                        b"mkd" => Reply::Verbatim("mkd", text),
                        _ => Reply::Bulk(text),
                    };
                }
            }
            if let Ok(Value::Table(m)) = t.raw_get::<Value>("map") {
                let mut pairs = Vec::new();
                for (k, v) in m.pairs::<Value, Value>().flatten() {
                    pairs.push((
                        lua_to_reply(&k, resp3, depth + 1),
                        lua_to_reply(&v, resp3, depth + 1),
                    ));
                }
                return Reply::Map(pairs);
            }
            if let Ok(Value::Table(s)) = t.raw_get::<Value>("set") {
                let mut items = Vec::new();
                for (k, _) in s.pairs::<Value, Value>().flatten() {
                    items.push(lua_to_reply(&k, resp3, depth + 1));
                }
                return Reply::Set(items);
            }
            let mut items = Vec::new();
            let mut j = 1i64;
            loop {
                match t.raw_get::<Value>(j) {
                    Ok(Value::Nil) | Err(_) => break,
                    Ok(v) => items.push(lua_to_reply(&v, resp3, depth + 1)),
                }
                j += 1;
            }
            Reply::Array(items)
        }
        _ => Reply::Nil,
    }
}
