//! Command implementations, one module per group. Each module exports `COMMANDS`, its
//! part of the command table (see [`crate::table`]).

pub mod bitops;
pub mod dump;
pub mod geo;
pub mod hash;
pub mod hyperloglog;
pub mod json;
pub mod json_ops;
#[cfg(test)]
mod json_tests;
pub mod keys;
pub mod list;
pub mod scan_util;
pub mod server;
pub mod set;
pub mod sort;
pub mod stream;
pub mod stream_group;
pub mod stream_info;
pub mod string;
pub mod zset;

use crate::reply::{self, Reply};
use bytes::Bytes;

/// Case-insensitive comparison of an argument with an ASCII keyword.
pub fn is(arg: &[u8], kw: &str) -> bool {
    arg.eq_ignore_ascii_case(kw.as_bytes())
}

pub fn int(b: &Bytes) -> Result<i64, Reply> {
    crate::num::parse_i64(b).ok_or_else(|| Reply::err(reply::ERR_NOT_INT))
}

pub fn float(b: &Bytes) -> Result<f64, Reply> {
    crate::num::parse_f64(b).ok_or_else(|| Reply::err(reply::ERR_NOT_FLOAT))
}

/// A non-negative count/index argument (`ERR value is out of range, must be positive`).
pub fn positive(b: &Bytes) -> Result<usize, Reply> {
    let v = int(b)?;
    if v < 0 {
        return Err(Reply::err(reply::ERR_NOT_POSITIVE));
    }
    Ok(v as usize)
}

/// Redis's `getTimeoutFromObjectOrReply` for blocking commands: seconds as a float,
/// returned as milliseconds (0 = forever). Like Redis, the product is truncated to an
/// integer, and a value too large for a 64-bit integer converts to a negative one
/// (x86 semantics), which is reported as "timeout is negative".
pub fn timeout_ms(b: &Bytes) -> Result<u64, Reply> {
    let v = crate::num::parse_f64(b)
        .ok_or_else(|| Reply::err("ERR timeout is not a float or out of range"))?;
    let ms = v * 1000.0;
    const LIMIT: f64 = 9.223_372_036_854_776e18;
    let tval: i64 = if ms.is_nan() || !(-LIMIT..LIMIT).contains(&ms) {
        i64::MIN
    } else {
        ms as i64
    };
    if tval < 0 {
        return Err(Reply::err("ERR timeout is negative"));
    }
    if tval > i64::MAX - crate::now_ms() as i64 {
        return Err(Reply::err("ERR timeout is out of range"));
    }
    Ok(tval as u64)
}

/// Normalizes Redis-style range indexes (negative from the end) to `[start, end]`
/// inclusive over a sequence of `len`; None when the range is empty.
pub fn norm_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let mut s = if start < 0 { len + start } else { start };
    let mut e = if end < 0 { len + end } else { end };
    if s < 0 {
        s = 0;
    }
    if s > e || s >= len {
        return None;
    }
    if e >= len {
        e = len - 1;
    }
    Some((s as usize, e as usize))
}

/// Helpers shared by the command modules' unit tests.
#[cfg(test)]
pub(crate) mod testutil {
    use crate::reply::Reply;
    use crate::store::Store;
    use bytes::Bytes;

    pub fn argv(args: &[&str]) -> Vec<Bytes> {
        args.iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    /// Runs a command in db 0 at clock 1000.
    pub fn run(s: &mut Store, args: &[&str]) -> Reply {
        s.exec(0, 1000, &argv(args))
    }
}
