//! Lua scripting as in Redis 7.0: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT
//! LOAD/EXISTS/FLUSH/KILL/HELP, and functions: FUNCTION LOAD/DELETE/FLUSH/LIST/DUMP/
//! RESTORE/STATS/KILL/HELP, FCALL and FCALL_RO.
//!
//! The parts, by job:
//! * `vm`: a Lua 5.1 state (mlua, vendored) with the sandbox and the `redis` API, and
//!   the raw run of a script or function under `lua_pcall` with its busy hook
//!   (SCRIPT/FUNCTION KILL, the hand-off of a long script's runtime worker, the
//!   FUNCTION LOAD timeout). EVAL and functions each have their own state, as in Redis.
//! * `sandbox.rs` / `sandbox.lua`: the prelude, as Redis 7.0 builds it: no
//!   io/os/loadfile/dofile/require/print, read-only globals and libraries that no
//!   script can reach but through read-only proxies, errors for reads of undefined
//!   globals, bytecode refused by `loadstring`, and the environment function
//!   libraries load in.
//! * `bridge`: `redis.call` / `redis.pcall` through the normal command path (lookup,
//!   arity, NOSCRIPT, read-only and OOM checks, then `Conn::execute`), and Redis's
//!   conversions both ways.
//! * `cache` (the EVAL script cache and SCRIPT), `eval` (EVAL itself), `functions`
//!   (libraries, FUNCTION and FCALL).
//! * `cjson`, `cmsgpack`, `bit` and `struct` are implemented in Rust in the
//!   submodules of those names.
//!
//! Scripts run under the server lock, so they are atomic. Their commands leave
//! append-log records as executed; the server appends the whole command's records as
//! one frame. An instruction hook (every 100k instructions) checks `Shared::busy.kill`:
//! other connections answer BUSY on their own (see `Conn::busy_gate`) and SCRIPT KILL,
//! FUNCTION KILL and SHUTDOWN NOSAVE reach the script through that flag.

mod bit;
mod bridge;
pub(crate) mod cache;
mod cjson;
mod cmsgpack;
mod eval;
pub(crate) mod functions;
#[cfg(test)]
mod lib_tests;
mod sandbox;
mod structlib;
mod vm;

/// `lua-memory-limit`: the most memory each Lua state (scripts, functions) may hold.
pub(crate) fn set_memory_limit(bytes: u64) {
    vm::MEMORY_LIMIT.store(
        usize::try_from(bytes).unwrap_or(usize::MAX),
        std::sync::atomic::Ordering::Relaxed,
    );
}

use crate::state::Inner;
use bytes::Bytes;
use mlua::Value;
use redsnap_engine::num::fmt_g;
use redsnap_engine::Reply;
use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) use bridge::error_text_from_buf;
pub use cache::Scripts;
pub(crate) use eval::run;
pub use functions::Functions;

/// Script flags (shebang `#!lua flags=...`, `redis.register_function{flags=...}`).
const SF_COMPAT: u32 = 1;
const SF_NO_WRITES: u32 = 2;
const SF_ALLOW_OOM: u32 = 4;
const SF_ALLOW_STALE: u32 = 8;
const SF_NO_CLUSTER: u32 = 16;
const SF_ALLOW_CROSS_SLOT: u32 = 32;

/// The flags' names, in Redis's order (`scripts_flags_def`).
const FLAG_NAMES: [(u32, &str); 5] = [
    (SF_NO_WRITES, "no-writes"),
    (SF_ALLOW_OOM, "allow-oom"),
    (SF_ALLOW_STALE, "allow-stale"),
    (SF_NO_CLUSTER, "no-cluster"),
    (SF_ALLOW_CROSS_SLOT, "allow-cross-slot-keys"),
];

/// Deepest table nesting converted recursively (script replies, cjson); bounded so
/// that a cyclic or absurdly deep table cannot overflow the thread's stack.
const MAX_NESTING: usize = 200;

/// Redis's rand48 state for math.random (process-wide and never reseeded, as in Redis).
static RAND48: AtomicU64 = AtomicU64::new(0x1234_ABCD_330E);

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

fn write_refusal(inner: &Inner) -> Option<Reply> {
    crate::persist::write_refusal(inner)
}

/// The checks Redis's `scriptPrepareForRun` makes on a script that declared flags
/// (a shebang, or a function): writes refused by the server state, a write script
/// on an `*_RO` command, and OOM.
fn check_declared_flags(
    inner: &Inner,
    sflags: u32,
    ro: bool,
    script_oom: bool,
) -> Result<(), Reply> {
    if sflags & SF_COMPAT != 0 {
        return Ok(());
    }
    if sflags & SF_NO_WRITES == 0 {
        if let Some(r) = write_refusal(inner) {
            return Err(r);
        }
        if ro {
            return Err(Reply::err(
                "ERR Can not execute a script with write flag using *_ro command.",
            ));
        }
    }
    if sflags & (SF_ALLOW_OOM | SF_NO_WRITES) == 0 && script_oom {
        return Err(Reply::err("OOM allow-oom flag is not set on the script, can not run it when used memory > 'maxmemory'"));
    }
    Ok(())
}
