//! The library's Lua scripts, run natively by the in-process backend.
//!
//! The Lua interpreter lives in `redsnap-server`, which the library does not
//! depend on. The in-process backend knows the library's own scripts (the lock's
//! acquire/release/extend, the checkpointer's put/delete, the fallback replay) by
//! their SHA1 and runs each as Rust that makes the same `redis.call`s in the same
//! order, under the engine lock the whole batch holds: as atomic as the Lua
//! script on a server, with its writes staged as one append-log frame. A call
//! that fails raises, as `redis.call` does: the script stops and replies the
//! error, with Redis 7.0's ` script: <sha>, on @user_script:<line>.` suffix.
//! Any other script is refused (`NOSCRIPT` for EVALSHA, an error naming this
//! limit for EVAL and SCRIPT LOAD): a limit of this backend.
//!
//! Each function below mirrors its Lua text line for line; a change to one of
//! the scripts must change its twin (the conformance suite runs both).

use std::sync::LazyLock;

use bytes::Bytes;
use redsnap_engine::Reply;

/// What a native script calls: one command, as `redis.call` would run it.
pub(crate) type CallFn<'a> = dyn FnMut(&[Bytes]) -> Reply + 'a;

/// A script's context: its calls and what an error needs to name it.
pub(crate) struct Cx<'a, 'b> {
    call: &'a mut CallFn<'b>,
    script: &'static Native,
}

type Run = fn(&mut Cx<'_, '_>, &[Bytes], &[Bytes]) -> Result<Reply, Reply>;

/// One known script: its Lua text, SHA1 and native twin.
pub(crate) struct Native {
    pub(crate) text: &'static str,
    pub(crate) sha: String,
    run: Run,
}

static SCRIPTS: LazyLock<Vec<Native>> = LazyLock::new(|| {
    let table: [(&'static str, Run); 6] = [
        (crate::coord::ACQUIRE_LUA, acquire),
        (crate::coord::RELEASE_LUA, release),
        (crate::coord::EXTEND_LUA, extend),
        (crate::checkpoint::PUT_LUA, put),
        (crate::checkpoint::DELETE_LUA, delete),
        (crate::snapshot::REPLAY_LUA, replay),
    ];
    table
        .into_iter()
        .map(|(text, run)| Native {
            text,
            sha: redis::Script::new(text).get_hash().to_string(),
            run,
        })
        .collect()
});

/// The script whose SHA1 (hex, any case) is `sha`.
pub(crate) fn by_sha(sha: &[u8]) -> Option<&'static Native> {
    SCRIPTS
        .iter()
        .find(|s| s.sha.as_bytes().eq_ignore_ascii_case(sha))
}

/// The script whose text is `text`.
pub(crate) fn by_text(text: &[u8]) -> Option<&'static Native> {
    SCRIPTS.iter().find(|s| s.text.as_bytes() == text)
}

/// The error for a script this backend does not run.
pub(crate) const UNKNOWN: &str = "ERR the in-process backend (redsnap://) runs only the redsnap library's own scripts (natively, without Lua); this script is not one of them";

impl Native {
    /// Runs the script with `keys` and `args`; `call` runs one command.
    pub(crate) fn run(
        &'static self,
        call: &mut CallFn<'_>,
        keys: &[Bytes],
        args: &[Bytes],
    ) -> Reply {
        let mut cx = Cx { call, script: self };
        match (self.run)(&mut cx, keys, args) {
            Ok(r) | Err(r) => r,
        }
    }
}

impl Cx<'_, '_> {
    /// `redis.call(argv...)` on the line of the Lua text that contains `site`.
    fn call(&mut self, site: &str, argv: &[&[u8]]) -> Result<Reply, Reply> {
        let argv: Vec<Bytes> = argv.iter().map(|a| Bytes::copy_from_slice(a)).collect();
        match (self.call)(&argv) {
            Reply::Error(e) => Err(self.raise(site, &String::from_utf8_lossy(&e))),
            r => Ok(r),
        }
    }

    /// The error reply of a script that raised `msg` on the line holding `site`.
    fn raise(&self, site: &str, msg: &str) -> Reply {
        let line = self
            .script
            .text
            .lines()
            .position(|l| l.contains(site))
            .map_or(0, |i| i + 1);
        Reply::error(format!(
            "{msg} script: {}, on @user_script:{line}.",
            self.script.sha
        ))
    }

    /// Lua's error for comparing a non-number (`tonumber` gave nil).
    fn not_a_number(&self, site: &str) -> Reply {
        let line = self
            .script
            .text
            .lines()
            .position(|l| l.contains(site))
            .map_or(0, |i| i + 1);
        self.raise(
            site,
            &format!("ERR user_script:{line}: attempt to compare nil with number"),
        )
    }
}

/// `KEYS[i]` / `ARGV[i]` (1-based); a missing one is nil, which `redis.call` refuses.
fn nth<'a>(cx: &Cx<'_, '_>, v: &'a [Bytes], i: usize, site: &str) -> Result<&'a [u8], Reply> {
    v.get(i - 1).map(|b| &b[..]).ok_or_else(|| {
        cx.raise(
            site,
            "ERR Lua redis lib command arguments must be strings or integers",
        )
    })
}

/// Lua 5.1's `tonumber` on a string (strtod, surrounding spaces allowed, hex).
fn tonumber(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?.trim();
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return u64::from_str_radix(h, 16).ok().map(|v| v as f64);
    }
    s.parse::<f64>().ok()
}

/// A Lua number as `redis.call` passes it (`%.14g`).
fn lua_num(v: f64) -> String {
    redsnap_engine::num::fmt_g(v, 14)
}

fn int(r: &Reply) -> i64 {
    match r {
        Reply::Int(i) => *i,
        _ => 0,
    }
}

/// `redis.call('GET', k) == v`: GET's bulk equals the string (nil never does).
fn get_equals(r: &Reply, v: Option<&Bytes>) -> bool {
    matches!((r, v), (Reply::Bulk(b), Some(v)) if b == v)
}

// ACQUIRE_LUA
// if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
//   return redis.call('INCR', KEYS[2])
// end
// return false
fn acquire(cx: &mut Cx<'_, '_>, keys: &[Bytes], args: &[Bytes]) -> Result<Reply, Reply> {
    let site = "redis.call('SET'";
    let (k1, a1, a2) = (
        nth(cx, keys, 1, site)?,
        nth(cx, args, 1, site)?,
        nth(cx, args, 2, site)?,
    );
    // SET NX answers nil (Lua false) when the key exists.
    if matches!(
        cx.call(site, &[b"SET", k1, a1, b"NX", b"PX", a2])?,
        Reply::Nil
    ) {
        return Ok(Reply::Nil);
    }
    let site = "redis.call('INCR'";
    let k2 = nth(cx, keys, 2, site)?;
    cx.call(site, &[b"INCR", k2])
}

// RELEASE_LUA
// if redis.call('GET', KEYS[1]) == ARGV[1] then
//   return redis.call('DEL', KEYS[1])
// end
// return 0
fn release(cx: &mut Cx<'_, '_>, keys: &[Bytes], args: &[Bytes]) -> Result<Reply, Reply> {
    let site = "redis.call('GET'";
    let k1 = nth(cx, keys, 1, site)?;
    if get_equals(&cx.call(site, &[b"GET", k1])?, args.first()) {
        return cx.call("redis.call('DEL'", &[b"DEL", k1]);
    }
    Ok(Reply::Int(0))
}

// EXTEND_LUA
// if redis.call('GET', KEYS[1]) == ARGV[1] then
//   return redis.call('PEXPIRE', KEYS[1], ARGV[2])
// end
// return 0
fn extend(cx: &mut Cx<'_, '_>, keys: &[Bytes], args: &[Bytes]) -> Result<Reply, Reply> {
    let site = "redis.call('GET'";
    let k1 = nth(cx, keys, 1, site)?;
    if get_equals(&cx.call(site, &[b"GET", k1])?, args.first()) {
        let site = "redis.call('PEXPIRE'";
        let a2 = nth(cx, args, 2, site)?;
        return cx.call(site, &[b"PEXPIRE", k1, a2]);
    }
    Ok(Reply::Int(0))
}

// PUT_LUA
// local ttl = tonumber(ARGV[3])
// if ttl > 0 then SET KEYS[1] ARGV[2] EX ttl else SET KEYS[1] ARGV[2] end
// ZADD KEYS[2] 0 ARGV[1]
// if ttl > 0 then EXPIRE KEYS[2] ttl else PERSIST KEYS[2] end
// return 1
fn put(cx: &mut Cx<'_, '_>, keys: &[Bytes], args: &[Bytes]) -> Result<Reply, Reply> {
    let ttl = args
        .get(2)
        .and_then(|a| tonumber(a))
        .ok_or_else(|| cx.not_a_number("if ttl > 0 then"))?;
    let ttl_arg = lua_num(ttl);
    let (ex, plain) = (
        "redis.call('SET', KEYS[1], ARGV[2], 'EX', ttl)",
        "redis.call('SET', KEYS[1], ARGV[2])",
    );
    if ttl > 0.0 {
        let (k1, a2) = (nth(cx, keys, 1, ex)?, nth(cx, args, 2, ex)?);
        cx.call(ex, &[b"SET", k1, a2, b"EX", ttl_arg.as_bytes()])?;
    } else {
        let (k1, a2) = (nth(cx, keys, 1, plain)?, nth(cx, args, 2, plain)?);
        cx.call(plain, &[b"SET", k1, a2])?;
    }
    let site = "redis.call('ZADD'";
    let (k2, a1) = (nth(cx, keys, 2, site)?, nth(cx, args, 1, site)?);
    cx.call(site, &[b"ZADD", k2, b"0", a1])?;
    if ttl > 0.0 {
        cx.call("redis.call('EXPIRE'", &[b"EXPIRE", k2, ttl_arg.as_bytes()])?;
    } else {
        cx.call("redis.call('PERSIST'", &[b"PERSIST", k2])?;
    }
    Ok(Reply::Int(1))
}

// DELETE_LUA
// KEYS[1] index, KEYS[2..] checkpoint keys; ARGV ids to remove from the index
// n = sum of DEL KEYS[i] (i >= 2); ZREM KEYS[1] ARGV[i] each;
// if ZCARD KEYS[1] == 0 then DEL KEYS[1] end; return n
fn delete(cx: &mut Cx<'_, '_>, keys: &[Bytes], args: &[Bytes]) -> Result<Reply, Reply> {
    let mut n = 0i64;
    for k in keys.iter().skip(1) {
        n += int(&cx.call("redis.call('DEL', KEYS[i])", &[b"DEL", k])?);
    }
    let zrem = "redis.call('ZREM'";
    for a in args {
        let idx = nth(cx, keys, 1, zrem)?;
        cx.call(zrem, &[b"ZREM", idx, a])?;
    }
    let site = "redis.call('ZCARD'";
    let idx = nth(cx, keys, 1, site)?;
    if int(&cx.call(site, &[b"ZCARD", idx])?) == 0 {
        cx.call("redis.call('DEL', KEYS[1])", &[b"DEL", idx])?;
    }
    Ok(Reply::Int(n))
}

// REPLAY_LUA (see snapshot/replay.rs for the contract)
fn replay(cx: &mut Cx<'_, '_>, keys: &[Bytes], args: &[Bytes]) -> Result<Reply, Reply> {
    let at = args.get(1).and_then(|a| tonumber(a));
    let site = "redis.call('GET', KEYS[2])";
    let k2 = nth(cx, keys, 2, site)?;
    let cur = match cx.call(site, &[b"GET", k2])? {
        Reply::Bulk(b) => tonumber(&b),
        _ => None,
    };
    // `epoch ~= ''`: a missing ARGV[3] (nil) is not '' either.
    let has_epoch = args.get(2).is_none_or(|a| !a.is_empty());
    if has_epoch {
        let site = "tonumber(ARGV[4]) > 0";
        let ttl = args
            .get(3)
            .and_then(|a| tonumber(a))
            .ok_or_else(|| cx.not_a_number(site))?;
        if ttl > 0.0 {
            let site = "redis.call('SET', KEYS[4]";
            let (k4, a1, a4) = (
                nth(cx, keys, 4, site)?,
                nth(cx, args, 1, site)?,
                nth(cx, args, 4, site)?,
            );
            cx.call(site, &[b"SET", k4, a1, b"EX", a4])?;
            let site = "redis.call('ZADD'";
            let (k3, e) = (nth(cx, keys, 3, site)?, nth(cx, args, 3, site)?);
            cx.call(site, &[b"ZADD", k3, e, e])?;
        }
    }
    let mut replaced = 0;
    let newer = match (cur, at) {
        (None, _) => true,
        (Some(cur), Some(at)) => at >= cur,
        (Some(_), None) => return Err(cx.not_a_number("if cur == nil or at >= cur")),
    };
    if newer {
        let site = "redis.call('SET', KEYS[1]";
        let (k1, a1) = (nth(cx, keys, 1, site)?, nth(cx, args, 1, site)?);
        cx.call(site, &[b"SET", k1, a1])?;
        let site = "redis.call('SET', KEYS[2]";
        let a2 = nth(cx, args, 2, site)?;
        cx.call(site, &[b"SET", k2, a2])?;
        replaced = 1;
    }
    if has_epoch {
        let site = "redis.call('ZREMRANGEBYSCORE'";
        let (k3, a5) = (nth(cx, keys, 3, site)?, nth(cx, args, 5, site)?);
        cx.call(site, &[b"ZREMRANGEBYSCORE", k3, b"-inf", a5])?;
        let site = "redis.call('PUBLISH', ARGV[6], epoch)";
        let (a6, e) = (nth(cx, args, 6, site)?, nth(cx, args, 3, site)?);
        cx.call(site, &[b"PUBLISH", a6, e])?;
    } else if replaced == 1 {
        let site = "redis.call('PUBLISH', ARGV[6], 'latest')";
        let a6 = nth(cx, args, 6, site)?;
        cx.call(site, &[b"PUBLISH", a6, b"latest"])?;
    }
    Ok(Reply::Int(replaced))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_library_script_has_a_native_twin() {
        for text in [
            crate::coord::ACQUIRE_LUA,
            crate::coord::RELEASE_LUA,
            crate::coord::EXTEND_LUA,
            crate::checkpoint::PUT_LUA,
            crate::checkpoint::DELETE_LUA,
            crate::snapshot::REPLAY_LUA,
        ] {
            let sha = redis::Script::new(text).get_hash().to_string();
            assert!(by_sha(sha.as_bytes()).is_some());
            assert!(by_sha(sha.to_uppercase().as_bytes()).is_some());
            assert!(by_text(text.as_bytes()).is_some());
        }
        assert!(by_text(b"return 1").is_none());
    }

    #[test]
    fn every_call_site_names_a_line_of_its_script() {
        // The error suffix names the line of the Lua text holding the call: each
        // site string must occur in the script it belongs to.
        let sites: [(&str, &[&str]); 6] = [
            (
                crate::coord::ACQUIRE_LUA,
                &["redis.call('SET'", "redis.call('INCR'"],
            ),
            (
                crate::coord::RELEASE_LUA,
                &["redis.call('GET'", "redis.call('DEL'"],
            ),
            (
                crate::coord::EXTEND_LUA,
                &["redis.call('GET'", "redis.call('PEXPIRE'"],
            ),
            (
                crate::checkpoint::PUT_LUA,
                &[
                    "if ttl > 0 then",
                    "redis.call('SET', KEYS[1], ARGV[2], 'EX', ttl)",
                    "redis.call('SET', KEYS[1], ARGV[2])",
                    "redis.call('ZADD'",
                    "redis.call('EXPIRE'",
                    "redis.call('PERSIST'",
                ],
            ),
            (
                crate::checkpoint::DELETE_LUA,
                &[
                    "redis.call('DEL', KEYS[i])",
                    "redis.call('ZREM'",
                    "redis.call('ZCARD'",
                    "redis.call('DEL', KEYS[1])",
                ],
            ),
            (
                crate::snapshot::REPLAY_LUA,
                &[
                    "redis.call('GET', KEYS[2])",
                    "tonumber(ARGV[4]) > 0",
                    "redis.call('SET', KEYS[4]",
                    "redis.call('ZADD'",
                    "if cur == nil or at >= cur",
                    "redis.call('SET', KEYS[1]",
                    "redis.call('SET', KEYS[2]",
                    "redis.call('ZREMRANGEBYSCORE'",
                    "redis.call('PUBLISH', ARGV[6], epoch)",
                    "redis.call('PUBLISH', ARGV[6], 'latest')",
                ],
            ),
        ];
        for (text, list) in sites {
            for s in list {
                assert!(text.contains(s), "{s:?} not in {text}");
            }
        }
    }

    #[test]
    fn lua_numbers() {
        assert_eq!(tonumber(b" 42 "), Some(42.0));
        assert_eq!(tonumber(b"0x10"), Some(16.0));
        assert_eq!(tonumber(b"x"), None);
        assert_eq!(lua_num(600.0), "600");
        assert_eq!(lua_num(1.5), "1.5");
    }
}
