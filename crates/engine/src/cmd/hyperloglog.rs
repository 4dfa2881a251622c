//! HyperLogLog commands (Redis 7.0 `hyperloglog.c`): PFADD PFCOUNT PFMERGE PFDEBUG
//! PFSELFTEST, over string values in Redis's own encodings ([`crate::hll`]).

use super::bitops::{create_str, edit_obj, edit_str, write_str};
use super::is;
use crate::hll::{self, Corrupt};
use crate::notify;
use crate::reply::Reply;
use crate::store::{CmdResult, Cx};
use crate::table::{cmd, flags::*, CommandSpec};
use crate::value::Value;
use bytes::{Bytes, BytesMut};
use rand::Rng;

#[rustfmt::skip]
pub const COMMANDS: &[CommandSpec] = &[
    cmd("pfadd", -2, WRITE | DENYOOM | FAST, 1, 1, 1, "hyperloglog", Some(pfadd)),
    cmd("pfcount", -2, READONLY | MAY_REPLICATE, 1, -1, 1, "hyperloglog", Some(pfcount)),
    cmd("pfmerge", -2, WRITE | DENYOOM, 1, -1, 1, "hyperloglog", Some(pfmerge)),
    cmd("pfdebug", 3, WRITE | DENYOOM | ADMIN, 2, 2, 1, "hyperloglog", Some(pfdebug)),
    cmd("pfselftest", 1, ADMIN, 0, 0, 0, "hyperloglog", Some(pfselftest)),
];

fn invalid(_: Corrupt) -> Reply {
    Reply::err(hll::ERR_INVALID)
}

/// `isHLLObjectOrReply` on a looked-up value.
fn check(v: &Value) -> Result<&Bytes, Reply> {
    match v {
        Value::Str(s) if hll::is_valid(s) => Ok(s),
        Value::Str(_) => Err(Reply::err(hll::ERR_NOT_HLL)),
        _ => Err(Reply::wrongtype()),
    }
}

/// `isHLLObjectOrReply`'s validity half, for [`write_str`].
fn check_hll(s: &Bytes) -> Result<(), Reply> {
    if hll::is_valid(s) {
        Ok(())
    } else {
        Err(Reply::err(hll::ERR_NOT_HLL))
    }
}

/// PFADD key [element ...]
fn pfadd(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let max_sparse = cx.config().hll_sparse_max_bytes;
    let add = |o: &mut BytesMut, created: bool| {
        let mut updated = created as u64;
        let mut e = hll::Edit::new(o);
        for ele in &argv[2..] {
            if e.add(ele, max_sparse)? {
                updated += 1;
            }
        }
        if updated > 0 {
            hll::invalidate(o);
        }
        Ok(updated)
    };
    // An existing HLL (the common case) is found, checked and edited with one search.
    let res = match write_str(cx, key, check_hll)? {
        Some(obj) => edit_obj(obj, 0, |o| add(o, false)),
        None => {
            create_str(cx, key, hll::new_sparse().freeze());
            edit_str(cx, key, 0, |o| add(o, true))
        }
    };
    // An error leaves the registers updated so far, unreplicated, as Redis does.
    let updated = res.unwrap_or(Ok(0)).map_err(invalid)?;
    if updated > 0 {
        cx.modified_n(key, updated);
        cx.notify(notify::STRING, "pfadd", key);
    }
    Ok(Reply::Int((updated > 0) as i64))
}

/// PFCOUNT key [key ...]: one key's cached or computed cardinality (the cache is
/// updated in the value and the command replicated, as Redis does), or the
/// cardinality of the union of several.
fn pfcount(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    if argv.len() > 2 {
        let mut max = vec![0u8; hll::REGISTERS];
        for key in &argv[1..] {
            let Some(e) = cx.lookup_read(key) else {
                continue;
            };
            hll::merge(&mut max, check(e.value())?).map_err(invalid)?;
        }
        return Ok(Reply::Int(hll::count_raw(&max) as i64));
    }
    let key = &argv[1];
    let Some(e) = cx.lookup_read(key) else {
        return Ok(Reply::Int(0));
    };
    let raw = e.obj.big_encoding;
    let s = check(e.value())?;
    if let Some(card) = hll::cached(s) {
        if !raw {
            // Redis's dbUnshareStringValue: raw from then on.
            edit_str(cx, key, 0, |_| ());
        }
        return Ok(Reply::Int(card as i64));
    }
    let card = hll::count(s).map_err(invalid)?;
    edit_str(cx, key, 0, |o| hll::set_cache(o, card));
    cx.modified(key);
    if cx.store.log_enabled {
        cx.propagate(argv.to_vec());
    }
    Ok(Reply::Int(card as i64))
}

/// PFMERGE destkey [sourcekey ...] (the destination is a source too).
fn pfmerge(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let mut max = vec![0u8; hll::REGISTERS];
    let mut use_dense = false;
    for key in &argv[1..] {
        let Some(e) = cx.lookup_read(key) else {
            continue;
        };
        let s = check(e.value())?;
        use_dense |= s[4] == hll::DENSE;
        hll::merge(&mut max, s).map_err(invalid)?;
    }
    let dest = &argv[1];
    // Checked as a source above when present.
    if cx.entry(dest).is_none() {
        create_str(cx, dest, hll::new_sparse().freeze());
    } else {
        cx.touch(dest);
    }
    let max_sparse = cx.config().hll_sparse_max_bytes;
    let res = edit_str(cx, dest, 0, |o| {
        let mut e = hll::Edit::new(o);
        if use_dense {
            e.to_dense()?;
        }
        for (j, &m) in max.iter().enumerate() {
            if m != 0 {
                // Redis ignores the result here: the inputs were validated.
                let _ = e.set(j, m, max_sparse);
            }
        }
        hll::invalidate(o);
        Ok(())
    });
    res.unwrap_or(Ok(())).map_err(invalid)?;
    cx.modified(dest);
    cx.notify(notify::STRING, "pfadd", dest);
    Ok(Reply::ok())
}

/// PFDEBUG GETREG | DECODE | ENCODING | TODENSE key
fn pfdebug(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let (sub, key) = (&argv[1], &argv[2]);
    let Some(e) = cx.entry(key) else {
        return Err(Reply::err("ERR The specified key does not exist"));
    };
    check(e.value())?;
    cx.touch(key);
    let todense = |cx: &mut Cx| -> Result<bool, Reply> {
        let r = edit_str(cx, key, 0, |o| {
            let conv = o[4] == hll::SPARSE;
            hll::sparse_to_dense(o).map(|_| conv)
        });
        r.unwrap_or(Ok(false)).map_err(invalid)
    };
    // Every subcommand unshares the value (raw from then on).
    edit_str(cx, key, 0, |_| ());
    if is(sub, "getreg") {
        if todense(cx)? {
            // Redis forces propagation of the encoding change.
            cx.add_dirty(1);
        }
        let s = read_value(cx, key);
        let regs = &s[hll::HDR..];
        return Ok(Reply::Array(
            (0..hll::REGISTERS)
                .map(|i| Reply::Int(hll::dense_get(regs, i) as i64))
                .collect(),
        ));
    }
    let s = read_value(cx, key);
    if is(sub, "decode") {
        if s[4] != hll::SPARSE {
            return Err(Reply::err("ERR HLL encoding is not sparse"));
        }
        return Ok(Reply::Bulk(Bytes::from(hll::decode(&s))));
    }
    if is(sub, "encoding") {
        return Ok(Reply::simple(if s[4] == hll::DENSE {
            "dense"
        } else {
            "sparse"
        }));
    }
    if is(sub, "todense") {
        let conv = todense(cx)?;
        if conv {
            cx.add_dirty(1);
        }
        return Ok(Reply::Int(conv as i64));
    }
    let name = &sub[..sub.iter().position(|&c| c == 0).unwrap_or(sub.len())];
    Err(Reply::error(format!(
        "ERR Unknown PFDEBUG subcommand '{}'",
        String::from_utf8_lossy(name)
    )))
}

/// The string value of a key known to hold one (empty otherwise).
fn read_value(cx: &mut Cx, key: &Bytes) -> Bytes {
    match cx.entry(key).map(|e| e.value()) {
        Some(Value::Str(s)) => s.clone(),
        _ => Bytes::new(),
    }
}

/// PFSELFTEST
fn pfselftest(cx: &mut Cx, _argv: &[Bytes]) -> CmdResult {
    let max_sparse = cx.config().hll_sparse_max_bytes;
    let rng = cx.rng();
    // C's rand(): 31 random bits.
    hll::selftest(max_sparse, || rng.random::<u32>() >> 1)
        .map(|()| Reply::ok())
        .map_err(|e| Reply::error(format!("ERR {e}")))
}

#[cfg(test)]
#[path = "hyperloglog_tests.rs"]
mod tests;
