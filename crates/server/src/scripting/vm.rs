//! A Lua state scripts or functions run in: the sandboxed globals, the `redis` API,
//! and the raw run of one script under `lua_pcall` with the busy hook.
//!
//! Each state is built once (the prelude, `sandbox.lua`, runs at creation) and used
//! under the server lock only. EVAL and the function libraries have a state each (as
//! in Redis); they differ only in their entry function: EVAL's sets the KEYS and
//! ARGV globals, a function's gets them as its two arguments.

use super::bridge::{acl_check, lua_redis_call, lua_redis_pcall, lua_to_reply, run_error_reply};
use super::functions::{register_function, LoadCell};
use super::{error_text, rand48_next, sandbox, sha1_hex, value_text, version_num, RAND48};
use crate::conn::Conn;
use crate::lua_raw;
use crate::state::{Inner, Shared};
use bytes::Bytes;
use mlua::ffi;
use mlua::{
    chunk::ChunkMode, Function, Lua, LuaOptions, MultiValue, RegistryKey, StdLib, Table, Value,
};
use redsnap_engine::{now_ms, Reply};
use std::cell::UnsafeCell;
use std::ffi::c_int;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

/// The error a killed script (SCRIPT KILL, FUNCTION KILL, SHUTDOWN NOSAVE) raises.
const KILL_MSG: &[u8] = b"Script killed by user with SCRIPT KILL...";

/// Instructions between two calls of the hook.
const HOOK_EVERY: c_int = 100_000;

/// What the `redis` library needs while a script runs: the connection and the server
/// state of the command being served, and the run's flags.
pub(super) struct RunCtx {
    pub conn: *mut Conn,
    pub inner: *mut Inner,
    pub resp3: bool,
    pub ro: bool,
    pub allow_oom: bool,
    pub script_oom: bool,
    pub dirty: bool,
    pub repl: u8,
    /// An FCALL (SCRIPT KILL refuses it, FUNCTION KILL kills it).
    pub function: bool,
}

/// Holds the run context for the Lua callbacks. Only touched while the server lock is
/// held and a script runs (the callbacks run synchronously inside `run`), so there is
/// never concurrent access.
#[derive(Default)]
pub(super) struct CtxCell(UnsafeCell<Option<RunCtx>>, UnsafeCell<bytes::BytesMut>);
// SAFETY: see above: accessed only under the server lock, from the thread running the
// script.
unsafe impl Send for CtxCell {}
unsafe impl Sync for CtxCell {}

impl CtxCell {
    #[allow(clippy::mut_from_ref)]
    pub fn get(&self) -> &mut Option<RunCtx> {
        // SAFETY: no two references are alive at once: each callback takes it, uses it,
        // and returns before another callback can run.
        unsafe { &mut *self.0.get() }
    }

    /// The buffer `redis.call` copies its arguments into (see `lua_raw::read_argv`).
    #[allow(clippy::mut_from_ref)]
    pub fn argv_buf(&self) -> &mut bytes::BytesMut {
        // SAFETY: as for `get`: used only by the callback running now.
        unsafe { &mut *self.1.get() }
    }
}

/// The Lua state as a raw pointer, for the hot path of a run, which drives it with
/// the C API instead of through mlua. Every use of the state, mlua's or raw, happens
/// under the server lock, one at a time.
#[derive(Clone, Copy)]
struct RawState(*mut ffi::lua_State);
// SAFETY: see above: the state is only used by whoever holds the server lock.
unsafe impl Send for RawState {}
unsafe impl Sync for RawState {}

/// What the hook works on (see `busy_hook`).
const MODE_RUN: u8 = 0;
const MODE_LOAD: u8 = 1;

/// The hook's state, reached through the Lua registry (a hook has no upvalues).
#[derive(Default)]
struct HookCtx {
    /// The server's busy state (set at the first run: the state is built before the
    /// server's shared state exists).
    shared: OnceLock<Weak<Shared>>,
    /// MODE_RUN (a script or function: busy handling) or MODE_LOAD (FUNCTION LOAD).
    mode: AtomicU8,
    /// When the library load in progress started, and its time limit (None: none).
    load: parking_lot::Mutex<Option<(Instant, Duration)>>,
    /// Whether the hook fires on every line (after it raised, so that `pcall` cannot
    /// keep a killed script alive); reset after the run.
    every_line: AtomicBool,
}

const HOOK_KEY: &std::ffi::CStr = c"redsnap.hook";

/// Registry slot a non-scalar script result is handed to mlua through.
const RESULT_SLOT: &std::ffi::CStr = c"redsnap.script_result";

/// The most memory a Lua state may hold (`lua-memory-limit`; 0: no limit). Past
/// it an allocation fails inside Lua, so the script stops with "not enough
/// memory" and the state stays usable. Without a limit a failed allocation aborts
/// the process (mlua cannot hand Lua a failed allocation then): a script that
/// builds an endless table must not take the server down.
pub(super) static MEMORY_LIMIT: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(1 << 30);

/// Applies [`MEMORY_LIMIT`] to `lua` (before each run: the setting may have changed).
fn apply_memory_limit(lua: &Lua) {
    // Not available only in module mode, which redsnap does not use.
    let _ = lua.set_memory_limit(MEMORY_LIMIT.load(Ordering::Relaxed));
}

/// Which entry function a state's runs go through.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// EVAL: the body takes no arguments; KEYS and ARGV are globals.
    Eval,
    /// A function: called as `f(keys, args)`.
    Function,
}

/// A Lua state with the sandbox and the `redis` API.
pub(crate) struct Vm {
    pub(super) lua: Lua,
    raw: RawState,
    /// The environment EVAL scripts run in (the read-only globals).
    pub(super) env: Table,
    /// The environment function libraries load and run in (see `sandbox.lua`).
    pub(super) lib_env: Table,
    /// The metatable of `lib_env`, whose `__index` is `lib_loading` while a library
    /// loads and `lib_loaded` otherwise.
    lib_meta: Table,
    lib_loading: Table,
    lib_loaded: Table,
    /// The error handler scripts run under (adds the script position).
    err_handler: RegistryKey,
    /// The C entry function (`run_entry` or `fn_entry`).
    entry: RegistryKey,
    pub(super) ctx: Arc<CtxCell>,
    /// The functions registered by the library being loaded.
    pub(super) load: Arc<LoadCell>,
    hook: Box<HookCtx>,
}

/// What a run needs of a `Vm`, copied out so that the run can borrow the server state
/// (which owns the `Vm`) mutably.
#[derive(Clone)]
pub(super) struct VmRef {
    lua: Lua,
    raw: RawState,
    handler: c_int,
    entry: c_int,
    ctx: Arc<CtxCell>,
    hook: *const HookCtx,
}

/// The script's KEYS and ARGV, for the entry functions.
pub(super) struct RunArgs<'a> {
    pub keys: &'a [Bytes],
    pub args: &'a [Bytes],
}

impl Vm {
    pub(super) fn new(kind: Kind) -> mlua::Result<Vm> {
        // SAFETY: the debug library is only used by the prelude, which removes it from
        // the globals before any script runs.
        let lua = unsafe {
            Lua::unsafe_new_with(
                StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::DEBUG,
                LuaOptions::default(),
            )
        };
        apply_memory_limit(&lua);
        let ctx = Arc::new(CtxCell::default());
        let load = Arc::new(LoadCell::default());
        let api = lua.create_table()?;
        redis_api(&lua, &api, &ctx, &load)?;
        sandbox::register_libs(&lua, &api)?;

        let globals = lua.globals();
        let prelude = lua
            .load(sandbox::PRELUDE)
            .set_name("=redsnap")
            .set_mode(ChunkMode::Text)
            .into_function()?;
        let (err_handler, env, lib): (Function, Table, Table) =
            prelude.call((api, globals.clone()))?;
        let err_handler = lua.create_registry_value(err_handler)?;
        let hook = Box::new(HookCtx::default());
        let hook_ptr = &*hook as *const HookCtx as *mut std::ffi::c_void;
        let mut main: *mut ffi::lua_State = std::ptr::null_mut();
        // SAFETY: reads the state pointer (mlua's main state at the top level), stores
        // the hook context's address in the registry (the box lives as long as the
        // state: both are owned by this `Vm`), installs the hook and makes the entry
        // function value.
        let entry: Function = unsafe {
            lua.exec_raw((), |l| {
                main = l;
                ffi::lua_pushlightuserdata(l, hook_ptr);
                ffi::lua_setfield(l, ffi::LUA_REGISTRYINDEX, HOOK_KEY.as_ptr());
                ffi::lua_sethook(l, Some(busy_hook), ffi::LUA_MASKCOUNT, HOOK_EVERY);
                match kind {
                    Kind::Eval => {
                        // Upvalues: the KEYS and ARGV tables every run refills, and
                        // their global names.
                        ffi::lua_createtable(l, 4, 0);
                        ffi::lua_createtable(l, 4, 0);
                        lua_raw::push_bytes(l, b"KEYS");
                        lua_raw::push_bytes(l, b"ARGV");
                        ffi::lua_pushcclosure(l, super::eval::run_entry, 4);
                    }
                    Kind::Function => ffi::lua_pushcfunction(l, fn_entry),
                }
            })?
        };
        let entry = lua.create_registry_value(entry)?;
        // What building the state left behind (the prelude's chunk, temporaries):
        // a new state starts at its live size (INFO used_memory_lua).
        lua.gc_collect()?;
        lua.gc_collect()?;
        Ok(Vm {
            raw: RawState(main),
            env,
            lib_env: lib.get("env")?,
            lib_meta: lib.get("meta")?,
            lib_loading: lib.get("loading")?,
            lib_loaded: lib.get("loaded")?,
            err_handler,
            entry,
            ctx,
            load,
            hook,
            lua,
        })
    }

    pub(super) fn handle(&self) -> VmRef {
        VmRef {
            lua: self.lua.clone(),
            raw: self.raw,
            handler: self.err_handler.id(),
            entry: self.entry.id(),
            ctx: self.ctx.clone(),
            hook: &*self.hook,
        }
    }

    /// Runs the body of a library being loaded (compiled with `lib_env` as its
    /// environment), with the load API in `lib_env` and the load hook: past
    /// `timeout` (if any) the body is stopped with "FUNCTION LOAD timeout". Returns
    /// the error, as Redis's luaExtractErrorInformation reads it, if the body failed.
    pub(super) fn run_library_body(
        &self,
        body: Function,
        timeout: Option<Duration>,
    ) -> Result<(), Vec<u8>> {
        let internal = |e: mlua::Error| format!("ERR {}", error_text(&e)).into_bytes();
        apply_memory_limit(&self.lua);
        let body = self.lua.create_registry_value(body).map_err(internal)?;
        self.lib_meta
            .raw_set("__index", self.lib_loading.clone())
            .map_err(internal)?;
        *self.hook.load.lock() = timeout.map(|t| (Instant::now(), t));
        self.hook.mode.store(MODE_LOAD, Ordering::Release);
        let raw = self.raw.0;
        // SAFETY: the main state, under the server lock (see `RawState`); the stack
        // is restored before leaving, and no Rust value with a destructor is alive
        // across the protected call.
        let res = unsafe {
            let base = ffi::lua_gettop(raw);
            let res = if ffi::lua_checkstack(raw, 4) == 0 {
                Err(b"ERR reached lua stack limit".to_vec())
            } else {
                ffi::lua_rawgeti_(raw, ffi::LUA_REGISTRYINDEX, body.id());
                if ffi::lua_pcall(raw, 0, 0, 0) == 0 {
                    Ok(())
                } else {
                    Err(lua_raw::error_message(raw))
                }
            };
            ffi::lua_settop(raw, base);
            self.hook.mode.store(MODE_RUN, Ordering::Release);
            reset_hook(raw, &self.hook);
            res
        };
        *self.hook.load.lock() = None;
        self.lib_meta
            .raw_set("__index", self.lib_loaded.clone())
            .map_err(internal)?;
        res
    }
}

/// Puts the hook back to every `HOOK_EVERY` instructions after it was switched to
/// every line.
unsafe fn reset_hook(l: *mut ffi::lua_State, hook: &HookCtx) {
    if hook.every_line.swap(false, Ordering::AcqRel) {
        ffi::lua_sethook(l, Some(busy_hook), ffi::LUA_MASKCOUNT, HOOK_EVERY);
    }
}

/// The `redis` API's Rust side (the prelude builds the library from it).
fn redis_api(lua: &Lua, api: &Table, ctx: &Arc<CtxCell>, load: &Arc<LoadCell>) -> mlua::Result<()> {
    // redis.call / redis.pcall: C closures over the run context (upvalue 1).
    let cell = Arc::as_ptr(ctx) as *mut std::ffi::c_void;
    for (name, f) in [
        ("call", lua_redis_call as ffi::lua_CFunction),
        ("pcall", lua_redis_pcall as ffi::lua_CFunction),
    ] {
        // SAFETY: pushes a C closure with one light userdata upvalue; the cell
        // outlives the Lua state (both are owned by the `Vm`).
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
    let l = load.clone();
    api.set(
        "register_function",
        lua.create_function(move |lua, args: MultiValue| register_function(lua, &l, args))?,
    )?;
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
        lua.create_function(|_, args: MultiValue| redis_log(args))?,
    )?;
    api.set("version", crate::REDIS_VERSION)?;
    api.set("version_num", version_num(crate::REDIS_VERSION))?;
    Ok(())
}

/// redis.log(level, ...): the arguments (strings and numbers) joined by spaces.
fn redis_log(args: MultiValue) -> mlua::Result<()> {
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
}

/// The instruction hook of every state. While a library loads: the load's time limit.
/// While a script runs: SCRIPT/FUNCTION KILL and SHUTDOWN NOSAVE (through
/// `Shared::busy.kill`), and the hand-off of the runtime worker of a long script.
/// Once it has raised, it fires on every line until the run ends (as in Redis), so
/// that a script catching the error with `pcall` meets it again at once.
unsafe extern "C-unwind" fn busy_hook(l: *mut ffi::lua_State, _ar: *mut ffi::lua_Debug) {
    ffi::lua_getfield(l, ffi::LUA_REGISTRYINDEX, HOOK_KEY.as_ptr());
    let ptr = ffi::lua_touserdata(l, -1) as *const HookCtx;
    ffi::lua_pop(l, 1);
    if ptr.is_null() {
        return;
    }
    // SAFETY: the registry entry is the address of the `HookCtx` box of the `Vm`
    // owning this state (see `Vm::new`).
    let hook = &*ptr;
    let msg: Option<&[u8]> =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook_check(hook)))
            .unwrap_or_default();
    // No Rust value with a destructor is alive past this point: `lua_error` jumps.
    if let Some(msg) = msg {
        if !hook.every_line.swap(true, Ordering::AcqRel) {
            ffi::lua_sethook(l, Some(busy_hook), ffi::LUA_MASKLINE, 0);
        }
        lua_raw::push_error_table(l, msg, false);
        ffi::lua_error(l);
    }
}

/// What the hook does; Some(message) = stop the script with this error.
fn hook_check(hook: &HookCtx) -> Option<&'static [u8]> {
    if hook.mode.load(Ordering::Acquire) == MODE_LOAD {
        let load = *hook.load.lock();
        return match load {
            Some((start, limit)) if start.elapsed() > limit => Some(b"FUNCTION LOAD timeout"),
            _ => None,
        };
    }
    let sh = hook.shared.get()?.upgrade()?;
    let threshold = sh.busy.threshold_ms.load(Ordering::Acquire);
    if threshold == 0 {
        return None;
    }
    if sh.busy.kill.load(Ordering::Acquire) != 0 {
        return Some(KILL_MSG);
    }
    // A long script blocks this runtime worker: once it has run for a quarter of
    // busy-reply-threshold, hand the worker's queue (and the I/O driver) to another
    // thread, so that other connections can answer BUSY and pass SCRIPT KILL.
    let elapsed = now_ms().saturating_sub(sh.busy.since_ms.load(Ordering::Acquire));
    if elapsed < threshold / 4 {
        return None;
    }
    let killed = || sh.busy.kill.load(Ordering::Acquire) != 0;
    if !sh.busy.handed_off.load(Ordering::Relaxed) && hand_off_worker(killed) {
        sh.busy.handed_off.store(true, Ordering::Relaxed);
    }
    // Wake an idle worker now and then: a worker blocked on the server lock may have
    // left the I/O driver unattended.
    if let Ok(h) = tokio::runtime::Handle::try_current() {
        h.spawn(async {});
    }
    None
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
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        handle.spawn(async move { flag.store(true, Ordering::Release) });
        let deadline = Instant::now() + Duration::from_millis(50);
        while !ran.load(Ordering::Acquire) && !stop() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        ran.load(Ordering::Acquire)
    })
}

/// A function's entry, called (protected, with the error handler) as
/// `fn_entry(args, func)`: calls `func(KEYS, ARGV)` with two new tables, leaving its
/// first result. Holds no Rust value with a destructor: an error raised by the
/// function unwinds through it with a long jump.
unsafe extern "C-unwind" fn fn_entry(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: argument 1 is the `RunArgs` of the run in progress (see `run`).
    let a = &*(ffi::lua_touserdata(l, 1) as *const RunArgs);
    ffi::lua_remove(l, 1);
    for items in [a.keys, a.args] {
        ffi::lua_createtable(l, items.len().min(i32::MAX as usize) as c_int, 0);
        for (i, item) in items.iter().enumerate() {
            lua_raw::push_bytes(l, item);
            ffi::lua_rawseti(l, -2, (i + 1) as _);
        }
    }
    ffi::lua_call(l, 2, 1);
    1
}

/// Runs a compiled script or function (`func`: its registry index) and converts its
/// result or error into the reply. `name` names it in error messages (the SHA1 of an
/// EVAL script, a function's name).
#[allow(clippy::too_many_arguments)]
pub(super) fn run(
    conn: &mut Conn,
    inner: &mut Inner,
    vm: VmRef,
    name: &str,
    func: c_int,
    keys: &[Bytes],
    args: &[Bytes],
    run: RunCtx,
) -> Reply {
    let raw = vm.raw.0;
    apply_memory_limit(&vm.lua);
    // Busy-script state for other connections; the hook reads it.
    let shared = conn.shared.clone();
    // SAFETY: the hook context is owned by the `Vm` the handle was taken from, which
    // the server state keeps for the whole run (nothing a script can call drops it).
    let hook = unsafe { &*vm.hook };
    hook.shared.get_or_init(|| Arc::downgrade(&shared));
    let busy = &shared.busy;
    busy.wrote.store(false, Ordering::Release);
    busy.kill.store(0, Ordering::Release);
    let started = now_ms();
    busy.since_ms.store(started, Ordering::Release);
    busy.function.store(run.function, Ordering::Release);
    busy.running.store(true, Ordering::Release);
    busy.handed_off.store(false, Ordering::Relaxed);

    let saved_db = conn.db;
    let saved_in_exec = conn.in_exec;
    conn.in_exec = true;
    // Time stands still while a script runs (Redis: keys do not expire mid-script).
    conn.script_now = Some(started);
    let ctx = vm.ctx.clone();
    *ctx.get() = Some(run);

    // From here until the context is cleared, `conn` and `inner` are only used
    // through the context by the `redis` library callbacks.
    let run_args = RunArgs { keys, args };
    // SAFETY: the raw state is the main state of `lua`, used under the server lock
    // only (see `RawState`). The stack is restored to `base` before leaving; the
    // pushed values are registry entries made by the `Vm` (handler, entry, the
    // script) and a pointer to `run_args`, which outlives the call.
    let (ok, fast, run) = unsafe {
        let base = ffi::lua_gettop(raw);
        let out = if ffi::lua_checkstack(raw, 8) == 0 {
            let run = ctx.get().take();
            (false, Some(Reply::err("ERR reached lua stack limit")), run)
        } else {
            ffi::lua_rawgeti_(raw, ffi::LUA_REGISTRYINDEX, vm.handler);
            ffi::lua_rawgeti_(raw, ffi::LUA_REGISTRYINDEX, vm.entry);
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
        };
        reset_hook(raw, hook);
        out
    };

    let resp3 = run.as_ref().is_some_and(|r| r.resp3);
    busy.running.store(false, Ordering::Release);
    conn.script_now = None;
    let reply = match fast {
        Some(r) => r,
        None => {
            let slot = RESULT_SLOT.to_str().unwrap_or_default();
            let v = vm
                .lua
                .named_registry_value::<Value>(slot)
                .unwrap_or(Value::Nil);
            let _ = vm.lua.unset_named_registry_value(slot);
            // An error raised by (or returned from) redis.call/pcall was counted when
            // the command failed: the EVAL's error reply counts a failed call only.
            if let Value::Table(t) = &v {
                inner.calls.precounted = matches!(t.raw_get::<Value>("err"), Ok(Value::String(_)))
                    && matches!(
                        t.raw_get::<Value>("ignore_error_stats_update"),
                        Ok(Value::Boolean(true))
                    );
            }
            if ok {
                lua_to_reply(&v, resp3, 0)
            } else {
                run_error_reply(v, name)
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
