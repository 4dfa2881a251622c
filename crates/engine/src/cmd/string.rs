//! String commands.

use super::is;
use crate::db::own;
use crate::reply::{self, Reply};
use crate::store::{CmdResult, Cx};
use crate::table::{cmd, flags::*, CommandSpec};
use crate::value::Value;
use bytes::Bytes;

pub const COMMANDS: &[CommandSpec] = &[
    cmd("get", 2, READONLY | FAST, 1, 1, 1, "string", Some(get)),
    cmd("set", -3, WRITE | DENYOOM, 1, 1, 1, "string", Some(set)),
];

fn get(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    Ok(Reply::opt_bulk(cx.get_str(&argv[1])?))
}

/// SET key value [NX | XX] [GET] [EX s | PX ms | EXAT ts | PXAT ms-ts | KEEPTTL]
fn set(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let (key, val) = (&argv[1], &argv[2]);
    let (mut nx, mut xx, mut get, mut keepttl) = (false, false, false, false);
    let mut expire: Option<(&str, i64)> = None;
    let mut i = 3;
    while i < argv.len() {
        let a = &argv[i];
        let next = argv.get(i + 1);
        if is(a, "nx") && !xx {
            nx = true;
        } else if is(a, "xx") && !nx {
            xx = true;
        } else if is(a, "get") {
            get = true;
        } else if is(a, "keepttl") && expire.is_none() {
            keepttl = true;
        } else if (is(a, "ex") || is(a, "px") || is(a, "exat") || is(a, "pxat")) && !keepttl && expire.is_none() && next.is_some() {
            let unit = if is(a, "ex") {
                "ex"
            } else if is(a, "px") {
                "px"
            } else if is(a, "exat") {
                "exat"
            } else {
                "pxat"
            };
            let n = super::int(next.unwrap_or(a))?;
            expire = Some((unit, n));
            i += 1;
        } else {
            return Err(Reply::err(reply::ERR_SYNTAX));
        }
        i += 1;
    }
    let deadline = match expire {
        None => None,
        Some((unit, n)) => Some(expire_deadline(cx.now, unit, n).ok_or_else(|| invalid_expire("set"))?),
    };
    if val.len() as u64 > cx.config().proto_max_bulk_len {
        return Err(Reply::err(reply::ERR_STRING_TOO_LONG));
    }
    // GET needs the old value to be a string (or absent) before anything changes.
    let old = match cx.entry(key).map(|e| e.value()) {
        None => None,
        Some(Value::Str(s)) => Some(s.clone()),
        Some(_) if get => return Err(Reply::wrongtype()),
        Some(_) => Some(Bytes::new()),
    };
    let exists = cx.exists(key);
    let old_reply = || if get { Reply::opt_bulk(old.clone()) } else { Reply::NilArray };
    if (nx && exists) || (xx && !exists) {
        // Not performed: GET returns the old value, otherwise a null reply.
        return Ok(if get { Reply::opt_bulk(old.clone()) } else { Reply::Nil });
    }
    let ttl = if keepttl { cx.entry(key).and_then(|e| e.expire_at) } else { deadline };
    cx.set_value(key, Value::Str(own(val)), ttl);
    if let Some(t) = deadline {
        if t < cx.now {
            // A deadline already in the past deletes the key, as Redis does.
            cx.delete(key);
        }
    }
    Ok(if get { old_reply() } else { Reply::ok() })
}

/// Converts an expire option into an absolute deadline in ms; None when out of range
/// or not positive (Redis: "invalid expire time in 'set' command").
pub fn expire_deadline(now: u64, unit: &str, n: i64) -> Option<u64> {
    if n <= 0 {
        return None;
    }
    let ms: i64 = match unit {
        "ex" => n.checked_mul(1000)?.checked_add(now as i64)?,
        "px" => n.checked_add(now as i64)?,
        "exat" => n.checked_mul(1000)?,
        _ => n,
    };
    if ms <= 0 {
        return None;
    }
    Some(ms as u64)
}

pub fn invalid_expire(cmd: &str) -> Reply {
    Reply::error(format!("ERR invalid expire time in '{cmd}' command"))
}
