//! Lua scripting as in Redis 7.0: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT
//! LOAD/EXISTS/FLUSH/KILL/HELP.
//!
//! One long-lived Lua 5.1 state (mlua, vendored) holds every script compiled once and
//! cached by SHA1, as Redis does. The sandbox (`sandbox.rs`, `sandbox.lua`) follows
//! Redis 7.0: no io/os/loadfile/dofile/require/print, read-only globals and libraries
//! that no script can reach but through read-only proxies, errors for reads of
//! undefined globals, bytecode refused by `loadstring`. The `redis` library runs
//! commands through the normal command path (lookup, arity, NOSCRIPT, read-only and
//! OOM checks, then `Conn::execute`) with Redis's conversions both ways; `cjson`,
//! `cmsgpack` and `bit` are implemented in Rust in the submodules of those names.
//!
//! Scripts run under the server lock, so they are atomic. Their commands leave
//! append-log records as executed; the server appends the whole command's records as
//! one frame. An instruction hook (every 100k instructions, when
//! busy-reply-threshold > 0) checks `Shared::busy.kill`: other connections answer
//! BUSY on their own (see `Conn::busy_gate`) and SCRIPT KILL / SHUTDOWN NOSAVE reach
//! the script through that flag.

mod bit;
mod cjson;
mod cmsgpack;
#[cfg(test)]
mod lib_tests;
mod sandbox;

use crate::conn::{Conn, Step};
use crate::lua_raw;
use crate::state::Inner;
use bytes::Bytes;
use mlua::ffi;
use mlua::{
    chunk::ChunkMode, Function, HookTriggers, Lua, LuaOptions, MultiValue, RegistryKey, StdLib,
    Table, Value, VmState,
};
use redsnap_engine::num::fmt_g;
use redsnap_engine::table::{self, flags, CommandSpec};
use redsnap_engine::{now_ms, Reply};
use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::ffi::c_int;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const KILL_MSG: &str = "Script killed by user with SCRIPT KILL...";

/// Script flags (shebang `#!lua flags=...`).
const SF_COMPAT: u32 = 1;
const SF_NO_WRITES: u32 = 2;
const SF_ALLOW_OOM: u32 = 4;
const SF_ALLOW_STALE: u32 = 8;
const SF_NO_CLUSTER: u32 = 16;
const SF_ALLOW_CROSS_SLOT: u32 = 32;

/// Deepest table nesting converted recursively (script replies, cjson); bounded so
/// that a cyclic or absurdly deep table cannot overflow the thread's stack.
const MAX_NESTING: usize = 200;

/// Redis's rand48 state for math.random (process-wide and never reseeded, as in Redis).
static RAND48: AtomicU64 = AtomicU64::new(0x1234_ABCD_330E);

/// What the `redis` library needs while a script runs: the connection and the server
/// state of the EVAL being served, and the run's flags.
struct RunCtx {
    conn: *mut Conn,
    inner: *mut Inner,
    resp3: bool,
    ro: bool,
    allow_oom: bool,
    script_oom: bool,
    dirty: bool,
    repl: u8,
}

/// Holds the run context for the Lua callbacks. Only touched while the server lock is
/// held and a script runs (the callbacks run synchronously inside `run_script`), so
/// there is never concurrent access.
#[derive(Default)]
struct CtxCell(UnsafeCell<Option<RunCtx>>, UnsafeCell<bytes::BytesMut>);
// SAFETY: see above: accessed only under the server lock, from the thread running the
// script.
unsafe impl Send for CtxCell {}
unsafe impl Sync for CtxCell {}

impl CtxCell {
    #[allow(clippy::mut_from_ref)]
    fn get(&self) -> &mut Option<RunCtx> {
        // SAFETY: no two references are alive at once: each callback takes it, uses it,
        // and returns before another callback can run.
        unsafe { &mut *self.0.get() }
    }

    /// The buffer `redis.call` copies its arguments into (see `lua_raw::read_argv`).
    #[allow(clippy::mut_from_ref)]
    fn argv_buf(&self) -> &mut bytes::BytesMut {
        // SAFETY: as for `get`: used only by the callback running now.
        unsafe { &mut *self.1.get() }
    }
}

struct Script {
    /// The compiled body, held in the registry (its index is what a run pushes).
    func: RegistryKey,
    flags: u32,
}

/// The main Lua state as a raw pointer, for the hot path of a run (`run_script`),
/// which drives it with the C API instead of through mlua. Every use of the state,
/// mlua's or raw, happens under the server lock, one at a time.
struct RawState(*mut ffi::lua_State);
// SAFETY: see above: the state is only used by whoever holds the server lock.
unsafe impl Send for RawState {}
unsafe impl Sync for RawState {}

/// The Lua state and the script cache.
pub struct Scripts {
    lua: Lua,
    raw: RawState,
    env: Table,
    /// The error handler scripts run under (adds the script position).
    err_handler: RegistryKey,
    /// `run_entry` as a Lua function (made once, not per run).
    entry: RegistryKey,
    /// Whether the SCRIPT KILL / busy hook is installed (once, for good).
    hooked: bool,
    cache: HashMap<String, Script, ShaBuild>,
    ctx: Arc<CtxCell>,
}

/// Hashes a script's SHA1 (hex) by its first 16 characters (64 bits of the digest)
/// with the process's keyed SipHash: as safe against crafted collisions as hashing
/// all 40 (finding scripts whose digests share 64 bits is out of reach), in a third
/// of the time; the cache is read on every EVALSHA. Other keys (none are used) would
/// hash by the same prefix.
#[derive(Default, Clone)]
struct ShaBuild(std::hash::RandomState);

struct ShaHasher {
    sip: std::hash::DefaultHasher,
    prefix: [u8; 16],
    filled: usize,
}

impl std::hash::BuildHasher for ShaBuild {
    type Hasher = ShaHasher;
    fn build_hasher(&self) -> ShaHasher {
        ShaHasher {
            sip: self.0.build_hasher(),
            prefix: [0; 16],
            filled: 0,
        }
    }
}

impl std::hash::Hasher for ShaHasher {
    fn write(&mut self, bytes: &[u8]) {
        let k = bytes.len().min(self.prefix.len() - self.filled);
        self.prefix[self.filled..self.filled + k].copy_from_slice(&bytes[..k]);
        self.filled += k;
    }
    fn finish(&self) -> u64 {
        let mut sip = self.sip.clone();
        sip.write(&self.prefix[..self.filled]);
        sip.finish()
    }
}

impl Scripts {
    pub fn new() -> Scripts {
        Scripts::build().expect("the Lua scripting state could not be created")
    }

    fn build() -> mlua::Result<Scripts> {
        // SAFETY: the debug library is only used by the prelude, which removes it from
        // the globals before any script runs.
        let lua = unsafe {
            Lua::unsafe_new_with(
                StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::DEBUG,
                LuaOptions::default(),
            )
        };
        let ctx = Arc::new(CtxCell::default());
        let api = lua.create_table()?;
        {
            // redis.call / redis.pcall: C closures over the run context (upvalue 1).
            let cell = Arc::as_ptr(&ctx) as *mut std::ffi::c_void;
            for (name, f) in [
                ("call", lua_redis_call as ffi::lua_CFunction),
                ("pcall", lua_redis_pcall as ffi::lua_CFunction),
            ] {
                // SAFETY: pushes a C closure with one light userdata upvalue; the cell
                // outlives the Lua state (both are owned by `Scripts`).
                let func: Function = unsafe {
                    lua.exec_raw((), |l| {
                        ffi::lua_pushlightuserdata(l, cell);
                        ffi::lua_pushcclosure(l, f, 1);
                    })?
                };
                api.set(name, func)?;
            }
            let c = ctx.clone();
            api.set(
                "acl",
                lua.create_function(move |lua, args: MultiValue| acl_check(lua, &c, args))?,
            )?;
            let c = ctx.clone();
            api.set(
                "setresp",
                lua.create_function(move |_, v: f64| {
                    if let Some(ctx) = c.get().as_mut() {
                        ctx.resp3 = v == 3.0;
                    }
                    Ok(())
                })?,
            )?;
            let c = ctx.clone();
            api.set(
                "setrepl",
                lua.create_function(move |_, v: f64| {
                    if let Some(ctx) = c.get().as_mut() {
                        ctx.repl = v as u8;
                    }
                    Ok(())
                })?,
            )?;
        }
        api.set(
            "errmsg",
            lua.create_function(|_, v: Value| {
                Ok(match v {
                    Value::Error(e) => Some(error_text(&e)),
                    _ => None,
                })
            })?,
        )?;
        api.set("rand", lua.create_function(|_, ()| Ok(rand48_next()))?)?;
        api.set(
            "srand",
            lua.create_function(|_, seed: f64| {
                let s = seed as i64 as i32 as u32 as u64;
                RAND48.store((s << 16) | 0x330E, Ordering::Relaxed);
                Ok(())
            })?,
        )?;
        api.set(
            "sha1",
            lua.create_function(|lua, v: Value| {
                let bytes = value_text(&v).unwrap_or_default();
                lua.create_string(sha1_hex(&bytes))
            })?,
        )?;
        api.set(
            "log",
            lua.create_function(|_, args: MultiValue| {
                let mut it = args.into_iter();
                let level = match it.next() {
                    Some(Value::Integer(i)) => i,
                    Some(Value::Number(n)) => n as i64,
                    _ => 2,
                };
                let mut msg = Vec::new();
                for (j, v) in it.enumerate() {
                    if let Some(t) = value_text(&v) {
                        if j != 0 {
                            msg.push(b' ');
                        }
                        msg.extend_from_slice(&t);
                    }
                }
                let msg = String::from_utf8_lossy(&msg);
                match level {
                    0 | 1 => tracing::debug!(target: "redsnap::script", "{msg}"),
                    2 => tracing::info!(target: "redsnap::script", "{msg}"),
                    _ => tracing::warn!(target: "redsnap::script", "{msg}"),
                }
                Ok(())
            })?,
        )?;
        api.set("version", crate::REDIS_VERSION)?;
        api.set("version_num", version_num(crate::REDIS_VERSION))?;
        sandbox::register_libs(&lua, &api)?;

        let globals = lua.globals();
        let prelude = lua
            .load(sandbox::PRELUDE)
            .set_name("=redsnap")
            .set_mode(ChunkMode::Text)
            .into_function()?;
        let (err_handler, env): (Function, Table) = prelude.call((api, globals.clone()))?;
        let err_handler = lua.create_registry_value(err_handler)?;
        let mut main: *mut ffi::lua_State = std::ptr::null_mut();
        // SAFETY: only reads the state pointer (mlua's main state at the top level) and
        // makes a C function value.
        let entry: Function = unsafe {
            lua.exec_raw((), |l| {
                main = l;
                // Upvalues: the KEYS and ARGV tables every run refills, and
                // their global names.
                ffi::lua_createtable(l, 4, 0);
                ffi::lua_createtable(l, 4, 0);
                lua_raw::push_bytes(l, b"KEYS");
                lua_raw::push_bytes(l, b"ARGV");
                ffi::lua_pushcclosure(l, run_entry, 4);
            })?
        };
        let entry = lua.create_registry_value(entry)?;
        Ok(Scripts {
            lua,
            raw: RawState(main),
            env,
            err_handler,
            entry,
            hooked: false,
            cache: HashMap::default(),
            ctx,
        })
    }

    /// Compiles a script body (once) and returns its SHA1; errors are replies.
    fn create(&mut self, body: &[u8]) -> Result<String, Reply> {
        let sha = sha1_hex(body);
        if self.cache.contains_key(&sha) {
            return Ok(sha);
        }
        let (flags, shebang_len) = parse_shebang(body)?;
        let code = &body[shebang_len..];
        if code.first() == Some(&27) {
            return Err(Reply::err(
                "ERR Error compiling script (new function): user_script:1: unexpected symbol near 'char(27)'",
            ));
        }
        let func = self
            .lua
            .load(code)
            .set_name("@user_script")
            .set_mode(ChunkMode::Text)
            .set_environment(self.env.clone())
            .into_function()
            .map_err(|e| {
                let mut msg = b"ERR Error compiling script (new function): ".to_vec();
                msg.extend_from_slice(error_text(&e).as_bytes());
                error_reply_bytes(msg)
            })?;
        let func = self
            .lua
            .create_registry_value(func)
            .map_err(|e| Reply::error(format!("ERR Error compiling script: {}", error_text(&e))))?;
        self.cache.insert(sha.clone(), Script { func, flags });
        Ok(sha)
    }
}

impl Default for Scripts {
    fn default() -> Self {
        Scripts::new()
    }
}

/// The message of a Lua error as Lua code would see it.
fn error_text(e: &mlua::Error) -> String {
    match e {
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::MemoryError(m) => m.clone(),
        mlua::Error::CallbackError { cause, .. } => error_text(cause),
        other => other.to_string(),
    }
}

fn version_num(v: &str) -> i64 {
    let mut n = 0i64;
    for part in v.split('.').take(3) {
        n = (n << 8) | part.parse::<i64>().unwrap_or(0);
    }
    n
}

fn sha1_hex(data: &[u8]) -> String {
    sha1_smol::Sha1::from(data).digest().to_string()
}

fn rand48_next() -> f64 {
    let mut x = RAND48.load(Ordering::Relaxed);
    x = (x.wrapping_mul(0x5_DEEC_E66D).wrapping_add(0xB)) & ((1 << 48) - 1);
    RAND48.store(x, Ordering::Relaxed);
    let v = (x >> 17) as i64;
    (v % 2_147_483_647) as f64 / 2_147_483_647.0
}

/// What `lua_tolstring` gives for a value (strings and numbers), as bytes.
fn value_text(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Integer(i) => Some(fmt_g(*i as f64, 14).into_bytes()),
        Value::Number(n) => Some(lua_number_text(*n).into_bytes()),
        _ => None,
    }
}

/// Lua 5.1's number to string ("%.14g").
fn lua_number_text(n: f64) -> String {
    fmt_g(n, 14)
}

fn error_reply_bytes(mut msg: Vec<u8>) -> Reply {
    for c in msg.iter_mut() {
        if *c == b'\r' || *c == b'\n' {
            *c = b' ';
        }
    }
    Reply::Error(Bytes::from(msg))
}

/// Redis's evalExtractShebangFlags: returns the flags and the shebang length.
fn parse_shebang(body: &[u8]) -> Result<(u32, usize), Reply> {
    if !body.starts_with(b"#!") {
        return Ok((SF_COMPAT, 0));
    }
    let Some(end) = body.iter().position(|&c| c == b'\n') else {
        return Err(Reply::err("ERR Invalid script shebang"));
    };
    let line = String::from_utf8_lossy(&body[..end]).into_owned();
    let parts: Vec<&str> = line.split_whitespace().collect();
    if parts.is_empty() {
        return Err(Reply::err("ERR Invalid engine in script shebang"));
    }
    if parts[0] != "#!lua" {
        return Err(Reply::error(format!(
            "ERR Unexpected engine in script shebang: {}",
            parts[0]
        )));
    }
    let mut flags = 0;
    for p in &parts[1..] {
        let Some(list) = p.strip_prefix("flags=") else {
            return Err(Reply::error(format!("ERR Unknown lua shebang option: {p}")));
        };
        for f in list.split(',') {
            flags |= match f {
                "no-writes" => SF_NO_WRITES,
                "allow-oom" => SF_ALLOW_OOM,
                "allow-stale" => SF_ALLOW_STALE,
                "no-cluster" => SF_NO_CLUSTER,
                "allow-cross-slot-keys" => SF_ALLOW_CROSS_SLOT,
                "" => 0,
                other => {
                    return Err(Reply::error(format!(
                        "ERR Unexpected flag in script shebang: {other}"
                    )))
                }
            };
        }
    }
    Ok((flags, end))
}

/// Whether EVAL / EVALSHA may write, by the script's declared flags (Redis's
/// `evalGetCommandFlags`): None when the script declares none (the command's own
/// flags apply) or is unknown.
pub(crate) fn script_may_write(inner: &Inner, argv: &[Bytes], evalsha: bool) -> Option<bool> {
    let flags = if evalsha {
        let sha = std::str::from_utf8(argv.get(1)?).ok()?.to_ascii_lowercase();
        inner.scripts.cache.get(&sha)?.flags
    } else {
        parse_shebang(argv.get(1)?).ok()?.0
    };
    (flags & SF_COMPAT == 0).then_some(flags & SF_NO_WRITES == 0)
}

const NOSCRIPT_ERR: &str = "NOSCRIPT No matching script. Please use EVAL.";

fn write_refusal(inner: &Inner) -> Option<Reply> {
    crate::persist::write_refusal(inner)
}

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
        _ => script_command(inner, argv),
    };
    Step::Reply(reply)
}

fn script_command(inner: &mut Inner, argv: &[Bytes]) -> Reply {
    let sub = String::from_utf8_lossy(&argv[1]).to_ascii_lowercase();
    match sub.as_str() {
        "help" if argv.len() == 2 => {
            let lines = [
                "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "DEBUG (YES|SYNC|NO)",
                "    Set the debug mode for subsequent scripts executed.",
                "EXISTS <sha1> [<sha1> ...]",
                "    Return information about the existence of the scripts in the script cache.",
                "FLUSH [ASYNC|SYNC]",
                "    Flush the Lua scripts cache. Very dangerous on replicas.",
                "    When called without the optional mode argument, the behavior is determined by the",
                "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
                "    * ASYNC: Asynchronously flush the scripts cache.",
                "    * SYNC: Synchronously flush the scripts cache.",
                "KILL",
                "    Kill the currently executing Lua script.",
                "LOAD <script>",
                "    Load a script into the scripts cache without executing it.",
                "HELP",
                "    Prints this help.",
            ];
            Reply::Array(
                lines
                    .iter()
                    .map(|l| Reply::Simple(Bytes::from_static(l.as_bytes())))
                    .collect(),
            )
        }
        "flush" => {
            let ok = argv.len() == 2
                || (argv.len() == 3
                    && (argv[2].eq_ignore_ascii_case(b"sync")
                        || argv[2].eq_ignore_ascii_case(b"async")));
            if !ok {
                return Reply::err("ERR SCRIPT FLUSH only support SYNC|ASYNC option");
            }
            inner.scripts = Scripts::new();
            Reply::ok()
        }
        "exists" => Reply::Array(
            argv[2..]
                .iter()
                .map(|s| {
                    let sha = String::from_utf8_lossy(s).to_ascii_lowercase();
                    Reply::Int(inner.scripts.cache.contains_key(&sha) as i64)
                })
                .collect(),
        ),
        "load" if argv.len() == 3 => match inner.scripts.create(&argv[2]) {
            Ok(sha) => Reply::Bulk(Bytes::from(sha)),
            Err(e) => e,
        },
        "kill" if argv.len() == 2 => Reply::err("NOTBUSY No scripts in execution right now."),
        _ => Reply::error(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try SCRIPT HELP.",
            String::from_utf8_lossy(&argv[1])
        )),
    }
}

fn eval(conn: &mut Conn, inner: &mut Inner, argv: &[Bytes], evalsha: bool, ro: bool) -> Reply {
    if evalsha && argv[1].len() != 40 {
        return Reply::err(NOSCRIPT_ERR);
    }
    let Some(numkeys) = redsnap_engine::num::parse_i64(&argv[2]) else {
        return Reply::err("ERR value is not an integer or out of range");
    };
    if numkeys > (argv.len() - 3) as i64 {
        return Reply::err("ERR Number of keys can't be greater than number of args");
    }
    if numkeys < 0 {
        return Reply::err("ERR Number of keys can't be negative");
    }
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
        if !inner.scripts.cache.contains_key(&sha) {
            if let Err(e) = inner.scripts.create(&argv[1]) {
                return e;
            }
        }
        std::borrow::Cow::Owned(sha)
    };
    let Some(script) = inner.scripts.cache.get(sha.as_ref()) else {
        return Reply::err(NOSCRIPT_ERR);
    };
    let (func, sflags) = (script.func.id(), script.flags);

    let script_oom = !crate::perform_evictions(inner);
    if sflags & SF_COMPAT == 0 {
        if sflags & SF_NO_WRITES == 0 {
            if let Some(r) = write_refusal(inner) {
                return r;
            }
            if ro {
                return Reply::err(
                    "ERR Can not execute a script with write flag using *_ro command.",
                );
            }
        }
        if sflags & (SF_ALLOW_OOM | SF_NO_WRITES) == 0 && script_oom {
            return Reply::err("OOM allow-oom flag is not set on the script, can not run it when used memory > 'maxmemory'");
        }
    }
    let keys = &argv[3..3 + numkeys as usize];
    let args = &argv[3 + numkeys as usize..];
    let run = RunCtx {
        conn: conn as *mut Conn,
        inner: inner as *mut Inner,
        resp3: false,
        ro: ro || sflags & SF_NO_WRITES != 0,
        allow_oom: sflags & SF_COMPAT == 0 && sflags & SF_ALLOW_OOM != 0,
        script_oom,
        dirty: false,
        repl: 3,
    };
    run_script(conn, inner, sha.as_ref(), func, keys, args, run)
}

/// What `run_entry` needs: the script's KEYS and ARGV.
struct RunArgs<'a> {
    keys: &'a [Bytes],
    args: &'a [Bytes],
}

/// Called (protected, with the error handler) as `run_entry(args, func)`: sets KEYS
/// and ARGV (raw: the globals are read-only to scripts) and calls the script, leaving
/// its first result. Holds no Rust value with a destructor: an error raised by the
/// script unwinds through it with a long jump.
unsafe extern "C-unwind" fn run_entry(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: argument 1 is the `RunArgs` of the run in progress (see `run_script`).
    let a = &*(ffi::lua_touserdata(l, 1) as *const RunArgs);
    lua_raw::refill_global_array(l, 3, 1, a.keys);
    lua_raw::refill_global_array(l, 4, 2, a.args);
    ffi::lua_remove(l, 1);
    ffi::lua_call(l, 0, 1);
    1
}

/// Registry slot a non-scalar script result is handed to mlua through.
const RESULT_SLOT: &std::ffi::CStr = c"redsnap.script_result";

fn run_script(
    conn: &mut Conn,
    inner: &mut Inner,
    sha: &str,
    func: c_int,
    keys: &[Bytes],
    args: &[Bytes],
    run: RunCtx,
) -> Reply {
    let lua = inner.scripts.lua.clone();
    let raw = inner.scripts.raw.0;
    let (handler, entry) = (inner.scripts.err_handler.id(), inner.scripts.entry.id());
    let ctx = inner.scripts.ctx.clone();

    // Busy-script state for other connections, and the hook that lets SCRIPT KILL in
    // (installed once; it checks the state, so idle it costs one test per 100k
    // instructions).
    let shared = conn.shared.clone();
    let busy = &shared.busy;
    busy.wrote.store(false, Ordering::Release);
    busy.kill.store(0, Ordering::Release);
    let started = now_ms();
    busy.since_ms.store(started, Ordering::Release);
    busy.running.store(true, Ordering::Release);
    busy.handed_off.store(false, Ordering::Relaxed);
    if !inner.scripts.hooked {
        inner.scripts.hooked = true;
        // Weak: the hook lives in the Lua state, which the shared state owns.
        let weak = Arc::downgrade(&shared);
        let _ = lua.set_hook(
            HookTriggers::new().every_nth_instruction(100_000),
            move |_, _| {
                let Some(sh) = weak.upgrade() else {
                    return Ok(VmState::Continue);
                };
                let threshold = sh.busy.threshold_ms.load(Ordering::Acquire);
                if threshold == 0 {
                    return Ok(VmState::Continue);
                }
                if sh.busy.kill.load(Ordering::Acquire) != 0 {
                    return Err(mlua::Error::RuntimeError(KILL_MSG.into()));
                }
                // A long script blocks this runtime worker: once it has run for a
                // quarter of busy-reply-threshold, hand the worker's queue (and the
                // I/O driver) to another thread, so that other connections can answer
                // BUSY and pass SCRIPT KILL.
                let elapsed = now_ms().saturating_sub(sh.busy.since_ms.load(Ordering::Acquire));
                if elapsed < threshold / 4 {
                    return Ok(VmState::Continue);
                }
                let killed = || sh.busy.kill.load(Ordering::Acquire) != 0;
                if !sh.busy.handed_off.load(Ordering::Relaxed) && hand_off_worker(killed) {
                    sh.busy.handed_off.store(true, Ordering::Relaxed);
                }
                // Wake an idle worker now and then: a worker blocked on the server lock
                // may have left the I/O driver unattended.
                if let Ok(h) = tokio::runtime::Handle::try_current() {
                    h.spawn(async {});
                }
                Ok(VmState::Continue)
            },
        );
    }

    let saved_db = conn.db;
    let saved_in_exec = conn.in_exec;
    conn.in_exec = true;
    // Time stands still while a script runs (Redis: keys do not expire mid-script).
    conn.script_now = Some(started);
    *ctx.get() = Some(run);

    // From here until the context is cleared, `conn` and `inner` are only used
    // through the context by the `redis` library callbacks.
    let run_args = RunArgs { keys, args };
    // SAFETY: the raw state is the main state of `lua`, used under the server lock
    // only (see `RawState`). The stack is restored to `base` before leaving; the
    // pushed values are registry entries made by `Scripts` (handler, entry, the
    // script) and a pointer to `run_args`, which outlives the call.
    let (ok, fast, run) = unsafe {
        let base = ffi::lua_gettop(raw);
        if ffi::lua_checkstack(raw, 8) == 0 {
            let run = ctx.get().take();
            (false, Some(Reply::err("ERR reached lua stack limit")), run)
        } else {
            ffi::lua_rawgeti_(raw, ffi::LUA_REGISTRYINDEX, handler);
            ffi::lua_rawgeti_(raw, ffi::LUA_REGISTRYINDEX, entry);
            ffi::lua_pushlightuserdata(raw, &run_args as *const RunArgs as *mut _);
            ffi::lua_rawgeti_(raw, ffi::LUA_REGISTRYINDEX, func);
            let ok = ffi::lua_pcall(raw, 2, 1, base + 1) == 0;
            let run = ctx.get().take();
            let resp3 = run.as_ref().is_some_and(|r| r.resp3);
            let fast = if ok {
                lua_raw::scalar_reply(raw, resp3)
            } else {
                None
            };
            if fast.is_none() {
                // Tables and errors go through mlua's values (not the hot path).
                ffi::lua_setfield(raw, ffi::LUA_REGISTRYINDEX, RESULT_SLOT.as_ptr());
            }
            ffi::lua_settop(raw, base);
            (ok, fast, run)
        }
    };

    let resp3 = run.as_ref().is_some_and(|r| r.resp3);
    busy.running.store(false, Ordering::Release);
    conn.script_now = None;
    let reply = match fast {
        Some(r) => r,
        None => {
            let slot = RESULT_SLOT.to_str().unwrap_or_default();
            let v = lua
                .named_registry_value::<Value>(slot)
                .unwrap_or(Value::Nil);
            let _ = lua.unset_named_registry_value(slot);
            if ok {
                lua_to_reply(&v, resp3, 0)
            } else {
                match v {
                    Value::Table(t) => error_from_table(&t, sha),
                    other => {
                        let text =
                            value_text(&other).unwrap_or_else(|| b"execution failure".to_vec());
                        let mut msg = format!("ERR Error running script {sha}, ").into_bytes();
                        msg.extend_from_slice(&text[..text.len().min(100)]);
                        error_reply_bytes(msg)
                    }
                }
            }
        }
    };
    conn.in_exec = saved_in_exec;
    if conn.db != saved_db {
        conn.db = saved_db;
        if let Some(c) = inner.clients.get_mut(&conn.id) {
            c.db = saved_db;
        }
    }
    reply
}

/// Moves the current tokio worker's tasks to another thread (the script goes on
/// blocking this one). No-op outside a multi-threaded runtime.
///
/// Returns whether the hand-off is confirmed: `block_in_place` gives the worker's
/// core to a new thread, and takes it back on return if that thread has not picked
/// it up yet (under load it may not have started). So the closure waits until a
/// task spawned meanwhile has run, which needs a worker with a core: then the new
/// thread holds it. Unconfirmed, the caller tries again at its next hook. `stop`
/// (SCRIPT KILL) ends the wait early.
fn hand_off_worker(stop: impl Fn() -> bool) -> bool {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return true;
    };
    if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        return true;
    }
    tokio::task::block_in_place(|| {
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ran.clone();
        handle.spawn(async move { flag.store(true, Ordering::Release) });
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(50);
        while !ran.load(Ordering::Acquire) && !stop() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        ran.load(Ordering::Acquire)
    })
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

fn error_table(lua: &Lua, buf: &[u8], ignore_stats: bool) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set("err", lua.create_string(error_text_from_buf(buf))?)?;
    if ignore_stats {
        t.raw_set("ignore_error_stats_update", true)?;
    }
    Ok(Value::Table(t))
}

/// Redis's luaArgsToRedisArgv.
fn lua_args_to_argv(args: &MultiValue) -> Result<Vec<Bytes>, &'static [u8]> {
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
fn status(raise: bool, v: Value) -> (i32, Value) {
    (raise as i32, v)
}

unsafe extern "C-unwind" fn lua_redis_call(l: *mut ffi::lua_State) -> c_int {
    redis_call_raw(l, true)
}

unsafe extern "C-unwind" fn lua_redis_pcall(l: *mut ffi::lua_State) -> c_int {
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
    // SAFETY: the pointers were taken from the `&mut` references of the EVAL being
    // served, which are not used while the script runs (see `run_script`).
    let conn = &mut *ctx.conn;
    let inner = &mut *ctx.inner;
    let reply = match script_call(ctx, conn, inner, argv) {
        Ok(r) => r,
        Err(msg) => {
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
) -> Result<Reply, Vec<u8>> {
    let unknown = || b"Unknown Redis command called from script".to_vec();
    let spec = table::lookup(&argv[0]).ok_or_else(unknown)?;
    let cmd = if !spec.subs.is_empty() && argv.len() >= 2 {
        table::lookup_sub(spec, &argv[1]).ok_or_else(unknown)?
    } else {
        spec
    };
    let arity_ok = if cmd.arity >= 0 {
        argv.len() == cmd.arity as usize
    } else {
        argv.len() >= (-cmd.arity) as usize
    };
    if !arity_ok {
        return Err(b"Wrong number of args calling Redis command from script".to_vec());
    }
    // Redis 7.0 flags every blocking command NOSCRIPT.
    if cmd.has(flags::NOSCRIPT) || cmd.has(flags::BLOCKING) {
        return Err(b"This Redis command is not allowed from script".to_vec());
    }
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
    let saved_resp = conn.resp3;
    conn.resp3 = ctx.resp3;
    let log_len = inner.store.effects.log.len();
    inner.stats.total_commands += 1;
    let step = conn.execute(inner, spec, argv);
    conn.resp3 = saved_resp;
    if ctx.repl & 1 == 0 {
        inner.store.effects.log.truncate(log_len);
    }
    Ok(match step {
        Step::Reply(r) | Step::Block(_, r) | Step::Sleep(_, r) => r,
        Step::Many(v) => Reply::Array(v),
        Step::Close(r) => r.unwrap_or_else(Reply::ok),
        // (`execute` never postpones: CLIENT PAUSE acts in `dispatch`.)
        Step::Async(_) | Step::Postpone(_) => {
            Reply::err("ERR This Redis command is not allowed from script")
        }
    })
}

/// redis.acl_check_cmd: every command is allowed (redsnap has only the default user).
fn acl_check(lua: &Lua, cell: &CtxCell, args: MultiValue) -> mlua::Result<(i32, Value)> {
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
        Some(_) => Ok(status(false, Value::Boolean(true))),
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
fn lua_to_reply(v: &Value, resp3: bool, depth: usize) -> Reply {
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
                return Reply::Bulk(replace_newlines(&s.as_bytes()));
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
