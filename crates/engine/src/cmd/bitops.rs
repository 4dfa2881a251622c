//! Bitmap commands (Redis 7.0 `bitops.c`): SETBIT GETBIT BITCOUNT BITPOS BITOP
//! BITFIELD BITFIELD_RO. Bitmaps are plain string values; a write edits the stored
//! bytes in place (no copy of the string when nothing else shares it).

use super::{int, is};
use crate::db::{own, Obj};
use crate::notify;
use crate::reply::{self, Reply};
use crate::store::{CmdResult, Cx, Store};
use crate::table::{cmd, flags::*, CommandSpec};
use crate::value::Value;
use bytes::{Bytes, BytesMut};

#[rustfmt::skip]
pub const COMMANDS: &[CommandSpec] = &[
    cmd("setbit", 4, WRITE | DENYOOM, 1, 1, 1, "bitmap", Some(setbit)),
    cmd("getbit", 3, READONLY | FAST, 1, 1, 1, "bitmap", Some(getbit)),
    cmd("bitcount", -2, READONLY, 1, 1, 1, "bitmap", Some(bitcount)),
    cmd("bitpos", -3, READONLY, 1, 1, 1, "bitmap", Some(bitpos)),
    cmd("bitop", -4, WRITE | DENYOOM, 2, -1, 1, "bitmap", Some(bitop)),
    cmd("bitfield", -2, WRITE | DENYOOM, 1, 1, 1, "bitmap", Some(bitfield)),
    cmd("bitfield_ro", -2, READONLY | FAST, 1, 1, 1, "bitmap", Some(bitfield_ro)),
];

const ERR_OFFSET: &str = "ERR bit offset is not an integer or out of range";
const ERR_BIT: &str = "ERR bit is not an integer or out of range";
const ERR_TYPE: &str =
    "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";

// ----- shared with the HyperLogLog commands -----

/// Edits the string value of an existing key in place (Redis's
/// `dbUnshareStringValue`: the value is raw from then on). The bytes are copied only
/// when a snapshot or a reply still shares them; `extra` is room to reserve.
pub(crate) fn edit_str<R>(
    cx: &mut Cx,
    key: &Bytes,
    extra: usize,
    f: impl FnOnce(&mut BytesMut) -> R,
) -> Option<R> {
    edit_obj(cx.obj_mut(key)?, extra, f)
}

/// [`edit_str`] on an object already looked up for writing.
pub(crate) fn edit_obj<R>(
    obj: &mut Obj,
    extra: usize,
    f: impl FnOnce(&mut BytesMut) -> R,
) -> Option<R> {
    obj.big_encoding = true;
    let Value::Str(s) = &mut obj.value else {
        return None;
    };
    let mut m = super::string::into_mut(std::mem::take(s), extra);
    let r = f(&mut m);
    *s = m.freeze();
    Some(r)
}

/// The string at `key` for a write (Redis's `lookupKeyWrite`: no hit or miss
/// counted, the access clock touched) with one hash and one keyspace search; `check`
/// sees the string first (WRONGTYPE and its errors copy and mark nothing). None when
/// the key is absent.
pub(crate) fn write_str<'a>(
    cx: &'a mut Cx,
    key: &Bytes,
    check: impl FnOnce(&Bytes) -> Result<(), Reply>,
) -> Result<Option<&'a mut Obj>, Reply> {
    let (db, now) = (cx.db, cx.now);
    let store = &mut *cx.store;
    store.expire_if_needed(db, key, now);
    let (lfu, rng) = (store.lfu, &mut store.rng);
    store.dbs[db].get_mut_checked(key, |o| match &o.value {
        Value::Str(s) => {
            check(s)?;
            Store::touch_obj(lfu, o, now, rng);
            Ok(true)
        }
        _ => Err(Reply::wrongtype()),
    })
}

/// Creates `key` holding `value` (Redis's `dbAdd` of a new string object: the "new"
/// event, no dirty yet; the caller counts its changes).
pub(crate) fn create_str(cx: &mut Cx, key: &Bytes, value: Bytes) {
    cx.notify(notify::NEW, "new", key);
    cx.db().insert(own(key), Value::Str(value), None);
    cx.touch(key);
}

/// The string at `key` for a read command (a keyspace hit or miss is counted);
/// WRONGTYPE for another type.
pub(crate) fn read_str<'a>(cx: &'a mut Cx, key: &Bytes) -> Result<Option<&'a Bytes>, Reply> {
    match cx.lookup_read(key).map(|e| e.value()) {
        None => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s)),
        Some(_) => Err(Reply::wrongtype()),
    }
}

/// Redis's `lookupStringForBitCommand` followed by the edit: the string at `key`,
/// created or zero-padded to at least `min_len` bytes; `f` learns whether the key
/// was created or grew (Redis's `dirty`).
fn with_bits<R>(
    cx: &mut Cx,
    key: &Bytes,
    min_len: usize,
    f: impl FnOnce(&mut BytesMut, bool) -> R,
) -> Result<R, Reply> {
    let edit = |m: &mut BytesMut, created: bool| {
        let grown = m.len() < min_len;
        if grown {
            m.resize(min_len, 0);
        }
        f(m, created || grown)
    };
    // An existing key (the common case) is found and edited with one search.
    let r = match write_str(cx, key, |_| Ok(()))? {
        Some(obj) => edit_obj(obj, min_len, |m| edit(m, false)),
        None => {
            create_str(cx, key, Bytes::new());
            edit_str(cx, key, min_len, |m| edit(m, true))
        }
    };
    r.ok_or_else(Reply::wrongtype)
}

/// Redis's `getBitOffsetFromArgument`: a bit offset below `proto-max-bulk-len` bytes;
/// with `hash` and a `#N` argument, N times `bits` (BITFIELD).
fn bit_offset(cx: &Cx, arg: &[u8], hash: bool, bits: u32) -> Result<u64, Reply> {
    let usehash = hash && bits > 0 && arg.first() == Some(&b'#');
    let mut v =
        crate::num::parse_i64(&arg[usehash as usize..]).ok_or_else(|| Reply::err(ERR_OFFSET))?;
    if usehash {
        // Redis multiplies without an overflow check (two's complement wrap).
        v = v.wrapping_mul(bits as i64);
    }
    if v < 0 || (v >> 3) as u64 >= cx.config().proto_max_bulk_len {
        return Err(Reply::err(ERR_OFFSET));
    }
    Ok(v as u64)
}

// ----- SETBIT / GETBIT -----

fn setbit(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let offset = bit_offset(cx, &argv[2], false, 0)?;
    let on = crate::num::parse_i64(&argv[3]).ok_or_else(|| Reply::err(ERR_BIT))?;
    if on & !1 != 0 {
        return Err(Reply::err(ERR_BIT));
    }
    let byte = (offset >> 3) as usize;
    let shift = 7 - (offset & 7) as u32;
    let (old, changed) = with_bits(cx, key, byte + 1, |m, dirty| {
        let cur = m[byte];
        let old = (cur >> shift) & 1;
        let changed = dirty || old as i64 != on;
        if changed {
            m[byte] = (cur & !(1 << shift)) | ((on as u8) << shift);
        }
        (old, changed)
    })?;
    if changed {
        cx.modified(key);
        cx.notify(notify::STRING, "setbit", key);
    }
    Ok(Reply::Int(old as i64))
}

fn getbit(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let offset = bit_offset(cx, &argv[2], false, 0)?;
    let Some(s) = read_str(cx, &argv[1])? else {
        return Ok(Reply::Int(0));
    };
    let byte = (offset >> 3) as usize;
    let bit = s.get(byte).map_or(0, |b| (b >> (7 - (offset & 7))) & 1);
    Ok(Reply::Int(bit as i64))
}

// ----- BITCOUNT / BITPOS -----

/// Number of set bits (Redis's `redisPopcount`).
pub fn popcount(s: &[u8]) -> u64 {
    let mut chunks = s.chunks_exact(8);
    let mut n: u64 = 0;
    for c in &mut chunks {
        n += u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]).count_ones()
            as u64;
    }
    n + chunks
        .remainder()
        .iter()
        .map(|b| b.count_ones() as u64)
        .sum::<u64>()
}

/// Redis's `redisBitpos`: the first bit equal to `bit` (the most significant bit of
/// the first byte is bit 0); none: -1 for a 1, `len * 8` for a 0 (the string is
/// taken as zero-padded on the right).
pub fn first_bit(s: &[u8], bit: bool) -> i64 {
    let skip = if bit { 0u8 } else { 0xff };
    let mut chunks = s.chunks_exact(8);
    let mut base = 0usize;
    let word = if bit { 0u64 } else { u64::MAX };
    for c in &mut chunks {
        let w = u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        if w != word {
            break;
        }
        base += 8;
    }
    for (i, &b) in s[base..].iter().enumerate() {
        if b != skip {
            let lead = if bit {
                b.leading_zeros()
            } else {
                b.leading_ones()
            };
            return ((base + i) * 8) as i64 + lead as i64;
        }
    }
    if bit {
        -1
    } else {
        (s.len() * 8) as i64
    }
}

/// The optional BYTE | BIT unit argument: true for BIT.
fn unit_is_bit(arg: &[u8]) -> Result<bool, Reply> {
    if is(arg, "bit") {
        Ok(true)
    } else if is(arg, "byte") {
        Ok(false)
    } else {
        Err(Reply::err(reply::ERR_SYNTAX))
    }
}

/// Masks of the bits outside a BIT range in its first and last bytes (Redis's
/// `first_byte_neg_mask` / `last_byte_neg_mask`).
fn edge_masks(start: i64, end: i64) -> (u8, u8) {
    let first = !((1i64 << (8 - (start & 7))) - 1) & 0xff;
    let last = (1i64 << (7 - (end & 7))) - 1;
    (first as u8, last as u8)
}

/// BITCOUNT's and BITPOS's range: negative indexes from the end (of `totlen`,
/// bytes or bits), clamped; a BIT range becomes its bytes and the masks of the
/// first and last byte's bits outside it (Redis's bitops.c does this in both).
fn byte_range(mut start: i64, mut end: i64, totlen: i64, isbit: bool) -> (i64, i64, (u8, u8)) {
    if start < 0 {
        start += totlen;
    }
    if end < 0 {
        end += totlen;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= totlen {
        end = totlen - 1;
    }
    let mut masks = (0, 0);
    if isbit && start <= end {
        masks = edge_masks(start, end);
        start >>= 3;
        end >>= 3;
    }
    (start, end, masks)
}

/// BITCOUNT key [start end [BYTE | BIT]]
fn bitcount(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let Some(s) = read_str(cx, &argv[1])? else {
        return Ok(Reply::Int(0));
    };
    let strlen = s.len() as i64;
    let (mut first_mask, mut last_mask) = (0u8, 0u8);
    let (start, end) = match argv.len() {
        4 | 5 => {
            let mut totlen = strlen;
            let start = int(&argv[2])?;
            let end = int(&argv[3])?;
            if start < 0 && end < 0 && start > end {
                return Ok(Reply::Int(0));
            }
            let isbit = argv.len() == 5 && unit_is_bit(&argv[4])?;
            if isbit {
                totlen <<= 3;
            }
            let (start, end, masks) = byte_range(start, end, totlen, isbit);
            (first_mask, last_mask) = masks;
            (start, end)
        }
        2 => (0, strlen - 1),
        _ => return Err(Reply::err(reply::ERR_SYNTAX)),
    };
    if start > end {
        return Ok(Reply::Int(0));
    }
    let (start, end) = (start as usize, end as usize);
    let mut count = popcount(&s[start..=end]);
    count -= (s[start] & first_mask).count_ones() as u64;
    count -= (s[end] & last_mask).count_ones() as u64;
    Ok(Reply::Int(count as i64))
}

/// BITPOS key bit [start [end [BYTE | BIT]]]
fn bitpos(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let bit = int(&argv[2])?;
    if bit != 0 && bit != 1 {
        return Err(Reply::err("ERR The bit argument must be 1 or 0."));
    }
    let Some(s) = read_str(cx, &argv[1])? else {
        return Ok(Reply::Int(if bit == 1 { -1 } else { 0 }));
    };
    let strlen = s.len() as i64;
    let mut end_given = false;
    let (mut first_mask, mut last_mask) = (0u8, 0u8);
    let (start, end) = match argv.len() {
        4..=6 => {
            let mut totlen = strlen;
            let start = int(&argv[3])?;
            let isbit = argv.len() == 6 && unit_is_bit(&argv[5])?;
            let end = if argv.len() >= 5 {
                end_given = true;
                int(&argv[4])?
            } else if isbit {
                (totlen << 3) + 7
            } else {
                totlen - 1
            };
            if isbit {
                totlen <<= 3;
            }
            let (start, end, masks) = byte_range(start, end, totlen, isbit);
            (first_mask, last_mask) = masks;
            (start, end)
        }
        3 => (0, strlen - 1),
        _ => return Err(Reply::err(reply::ERR_SYNTAX)),
    };
    if start > end {
        return Ok(Reply::Int(-1));
    }
    let bit = bit == 1;
    let (mut start, end) = (start as usize, end as usize);
    let mut bytes = end - start + 1;
    let pos = 'found: {
        if first_mask != 0 {
            let mut t = if bit {
                s[start] & !first_mask
            } else {
                s[start] | first_mask
            };
            if last_mask != 0 && bytes == 1 {
                t = if bit { t & !last_mask } else { t | last_mask };
            }
            let pos = first_bit(&[t], bit);
            if bytes == 1 || (pos != -1 && pos != 8) {
                break 'found pos;
            }
            start += 1;
            bytes -= 1;
        }
        let cur = bytes - usize::from(last_mask != 0);
        if cur > 0 {
            let pos = first_bit(&s[start..start + cur], bit);
            if bytes == cur || (pos != -1 && pos != (cur as i64) << 3) {
                break 'found pos;
            }
            start += cur;
            bytes -= cur;
        }
        let t = if bit {
            s[end] & !last_mask
        } else {
            s[end] | last_mask
        };
        first_bit(&[t], bit)
    };
    // With an explicit end, a clear bit past the range is not in it.
    if end_given && !bit && pos == (bytes as i64) << 3 {
        return Ok(Reply::Int(-1));
    }
    Ok(Reply::Int(if pos != -1 {
        pos + ((start as i64) << 3)
    } else {
        pos
    }))
}

// ----- BITOP -----

#[derive(Clone, Copy, PartialEq)]
enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

/// BITOP AND | OR | XOR | NOT destkey key [key ...]
fn bitop(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let op = match &argv[1] {
        a if is(a, "and") => BitOp::And,
        a if is(a, "or") => BitOp::Or,
        a if is(a, "xor") => BitOp::Xor,
        a if is(a, "not") => BitOp::Not,
        _ => return Err(Reply::err(reply::ERR_SYNTAX)),
    };
    if op == BitOp::Not && argv.len() != 4 {
        return Err(Reply::err(
            "ERR BITOP NOT must be called with a single source key.",
        ));
    }
    // The result grows to the longest source; shorter sources (and missing keys)
    // count as zero-padded.
    let mut res = BytesMut::new();
    for (j, key) in argv[3..].iter().enumerate() {
        let src: &[u8] = read_str(cx, key)?.map_or(&[], |s| s);
        if src.len() > res.len() {
            res.resize(src.len(), 0);
        }
        if j == 0 {
            res[..src.len()].copy_from_slice(src);
            if op == BitOp::Not {
                res.iter_mut().for_each(|b| *b = !*b);
            }
            continue;
        }
        let (head, tail) = res.split_at_mut(src.len());
        match op {
            BitOp::And => {
                head.iter_mut().zip(src).for_each(|(r, s)| *r &= s);
                tail.fill(0);
            }
            BitOp::Or => head.iter_mut().zip(src).for_each(|(r, s)| *r |= s),
            BitOp::Xor => head.iter_mut().zip(src).for_each(|(r, s)| *r ^= s),
            BitOp::Not => {}
        }
    }
    let dest = &argv[2];
    let len = res.len();
    if len > 0 {
        // Redis's setKey: a stale destination expires first; the result is raw.
        cx.store.expire_if_needed(cx.db, dest, cx.now);
        cx.set_value(dest, Value::Str(res.freeze()), None);
        if let Some(obj) = cx.obj_mut(dest) {
            obj.big_encoding = true;
        }
        cx.notify(notify::STRING, "set", dest);
    } else {
        cx.delete(dest);
    }
    Ok(Reply::Int(len as i64))
}

// ----- BITFIELD -----

#[derive(Clone, Copy, PartialEq)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Clone, Copy, PartialEq)]
enum FieldOp {
    Get,
    Set,
    Incrby,
}

#[derive(Clone, Copy)]
struct Field {
    op: FieldOp,
    offset: u64,
    /// SET value or INCRBY increment.
    value: i64,
    ow: Overflow,
    bits: u32,
    signed: bool,
}

/// Redis's `getBitfieldTypeFromArgument`: `i1`..`i64` or `u1`..`u63` (the name is
/// read up to a NUL byte, as C's strlen does).
fn field_type(arg: &[u8]) -> Result<(bool, u32), Reply> {
    let signed = match arg.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(Reply::err(ERR_TYPE)),
    };
    let rest = &arg[1..];
    let rest = &rest[..rest.iter().position(|&c| c == 0).unwrap_or(rest.len())];
    match crate::num::parse_i64(rest) {
        Some(b) if b >= 1 && ((signed && b <= 64) || (!signed && b <= 63)) => {
            Ok((signed, b as u32))
        }
        _ => Err(Reply::err(ERR_TYPE)),
    }
}

/// Redis's `getUnsignedBitfield` (bits past the end of `p` read as 0).
fn get_unsigned(p: &[u8], offset: u64, bits: u32) -> u64 {
    let mut v = 0u64;
    for j in 0..bits as u64 {
        let o = offset + j;
        let byte = p.get((o >> 3) as usize).copied().unwrap_or(0);
        v = (v << 1) | ((byte >> (7 - (o & 7))) & 1) as u64;
    }
    v
}

fn get_signed(p: &[u8], offset: u64, bits: u32) -> i64 {
    let mut v = get_unsigned(p, offset, bits) as i64;
    if bits < 64 && v & (1i64 << (bits - 1)) != 0 {
        v |= -1i64 << bits;
    }
    v
}

/// Redis's `setUnsignedBitfield` (the string already covers the field).
fn set_unsigned(p: &mut [u8], offset: u64, bits: u32, value: u64) {
    for j in 0..bits as u64 {
        let bitval = (value >> (bits as u64 - 1 - j)) & 1;
        let o = offset + j;
        let shift = 7 - (o & 7);
        if let Some(b) = p.get_mut((o >> 3) as usize) {
            *b = (*b & !(1u8 << shift)) | ((bitval as u8) << shift);
        }
    }
}

/// Redis's `checkUnsignedBitfieldOverflow`: whether `value + incr` overflows an
/// unsigned field of `bits`, and the value to store instead under WRAP or SAT.
fn check_unsigned(value: u64, incr: i64, bits: u32, ow: Overflow) -> Option<u64> {
    let max = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let maxincr = max.wrapping_sub(value) as i64;
    let minincr = value.wrapping_neg() as i64;
    let wrap = || {
        let mask = u64::MAX.checked_shl(bits).unwrap_or(0);
        value.wrapping_add(incr as u64) & !mask
    };
    if value > max || (incr > 0 && incr > maxincr) {
        return Some(match ow {
            Overflow::Wrap => wrap(),
            Overflow::Sat => max,
            Overflow::Fail => 0,
        });
    }
    if incr < 0 && incr < minincr {
        return Some(match ow {
            Overflow::Wrap => wrap(),
            Overflow::Sat | Overflow::Fail => 0,
        });
    }
    None
}

/// Redis's `checkSignedBitfieldOverflow`.
fn check_signed(value: i64, incr: i64, bits: u32, ow: Overflow) -> Option<i64> {
    let max = if bits == 64 {
        i64::MAX
    } else {
        (1i64 << (bits - 1)) - 1
    };
    let min = -max - 1;
    let maxincr = (max as u64).wrapping_sub(value as u64) as i64;
    let minincr = min.wrapping_sub(value);
    let wrap = || {
        let msb = 1u64 << (bits - 1);
        let mut c = (value as u64).wrapping_add(incr as u64);
        if bits < 64 {
            let mask = u64::MAX << bits;
            if c & msb != 0 {
                c |= mask;
            } else {
                c &= !mask;
            }
        }
        c as i64
    };
    let limit = |sat: i64| match ow {
        Overflow::Wrap => wrap(),
        Overflow::Sat => sat,
        Overflow::Fail => 0,
    };
    if value > max || (bits != 64 && incr > maxincr) || (value >= 0 && incr > 0 && incr > maxincr) {
        return Some(limit(max));
    }
    if value < min || (bits != 64 && incr < minincr) || (value < 0 && incr < 0 && incr < minincr) {
        return Some(limit(min));
    }
    None
}

/// BITFIELD's GET: the field read from a zero-padded copy of its (up to) 9 bytes.
fn field_get(src: &[u8], f: &Field) -> i64 {
    let byte = (f.offset >> 3) as usize;
    let mut buf = [0u8; 9];
    for (i, b) in buf.iter_mut().enumerate() {
        match src.get(byte + i) {
            Some(&v) => *b = v,
            None => break,
        }
    }
    let off = f.offset - (byte as u64) * 8;
    if f.signed {
        get_signed(&buf, off, f.bits)
    } else {
        get_unsigned(&buf, off, f.bits) as i64
    }
}

/// A SET or INCRBY on the string: its reply (Nil when FAIL refused it) and
/// whether it changed the field.
fn field_write(m: &mut [u8], f: &Field, dirty: bool) -> (Reply, bool) {
    let incr = f.op == FieldOp::Incrby;
    if f.signed {
        let old = get_signed(m, f.offset, f.bits);
        let (ov, new, ret) = if incr {
            let ov = check_signed(old, f.value, f.bits, f.ow);
            let new = ov.unwrap_or(old.wrapping_add(f.value));
            (ov.is_some(), new, new)
        } else {
            let ov = check_signed(f.value, 0, f.bits, f.ow);
            (ov.is_some(), ov.unwrap_or(f.value), old)
        };
        if ov && f.ow == Overflow::Fail {
            return (Reply::Nil, false);
        }
        set_unsigned(m, f.offset, f.bits, new as u64);
        (Reply::Int(ret), dirty || old != new)
    } else {
        let old = get_unsigned(m, f.offset, f.bits);
        let (ov, new, ret) = if incr {
            let ov = check_unsigned(old, f.value, f.bits, f.ow);
            let new = ov.unwrap_or(old.wrapping_add(f.value as u64));
            (ov.is_some(), new, new)
        } else {
            let ov = check_unsigned(f.value as u64, 0, f.bits, f.ow);
            (ov.is_some(), ov.unwrap_or(f.value as u64), old)
        };
        if ov && f.ow == Overflow::Fail {
            return (Reply::Nil, false);
        }
        set_unsigned(m, f.offset, f.bits, new);
        (Reply::Int(ret as i64), dirty || old != new)
    }
}

/// Parses BITFIELD's operations (Redis's first loop of `bitfieldGeneric`).
fn parse_fields(cx: &Cx, argv: &[Bytes]) -> Result<Vec<Field>, Reply> {
    let mut fields = Vec::new();
    let mut ow = Overflow::Wrap;
    let mut j = 2;
    while j < argv.len() {
        let rem = argv.len() - j - 1;
        let sub = &argv[j];
        let op = if is(sub, "get") && rem >= 2 {
            FieldOp::Get
        } else if is(sub, "set") && rem >= 3 {
            FieldOp::Set
        } else if is(sub, "incrby") && rem >= 3 {
            FieldOp::Incrby
        } else if is(sub, "overflow") && rem >= 1 {
            let t = &argv[j + 1];
            ow = if is(t, "wrap") {
                Overflow::Wrap
            } else if is(t, "sat") {
                Overflow::Sat
            } else if is(t, "fail") {
                Overflow::Fail
            } else {
                return Err(Reply::err("ERR Invalid OVERFLOW type specified"));
            };
            j += 2;
            continue;
        } else {
            return Err(Reply::err(reply::ERR_SYNTAX));
        };
        let (signed, bits) = field_type(&argv[j + 1])?;
        let offset = bit_offset(cx, &argv[j + 2], true, bits)?;
        let value = if op == FieldOp::Get {
            0
        } else {
            int(&argv[j + 3])?
        };
        fields.push(Field {
            op,
            offset,
            value,
            ow,
            bits,
            signed,
        });
        j += if op == FieldOp::Get { 3 } else { 4 };
    }
    Ok(fields)
}

fn bitfield_generic(cx: &mut Cx, argv: &[Bytes], ro: bool) -> CmdResult {
    let key = &argv[1];
    let fields = parse_fields(cx, argv)?;
    let writes = fields.iter().filter(|f| f.op != FieldOp::Get);
    let Some(highest) = writes.map(|f| f.offset + f.bits as u64 - 1).max() else {
        // Only GETs: a read.
        let src: &[u8] = read_str(cx, key)?.map_or(&[], |s| s);
        return Ok(Reply::Array(
            fields
                .iter()
                .map(|f| Reply::Int(field_get(src, f)))
                .collect(),
        ));
    };
    if ro {
        return Err(Reply::err(
            "ERR BITFIELD_RO only supports the GET subcommand",
        ));
    }
    let (replies, changes) = with_bits(cx, key, (highest >> 3) as usize + 1, |m, dirty| {
        let mut changes = 0u64;
        let replies: Vec<Reply> = fields
            .iter()
            .map(|f| {
                if f.op == FieldOp::Get {
                    return Reply::Int(field_get(m, f));
                }
                let (r, changed) = field_write(m, f, dirty);
                changes += changed as u64;
                r
            })
            .collect();
        (replies, changes)
    })?;
    if changes > 0 {
        cx.modified_n(key, changes);
        cx.notify(notify::STRING, "setbit", key);
    }
    Ok(Reply::Array(replies))
}

/// BITFIELD key [GET type offset | [OVERFLOW WRAP|SAT|FAIL] SET type offset value
/// | INCRBY type offset increment ...]
fn bitfield(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    bitfield_generic(cx, argv, false)
}

/// BITFIELD_RO key [GET type offset ...]
fn bitfield_ro(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    bitfield_generic(cx, argv, true)
}

#[cfg(test)]
#[path = "bitops_tests.rs"]
mod tests;
