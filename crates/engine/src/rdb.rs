//! Redis's RDB value serialization: the encoding DUMP/RESTORE payloads use, and the
//! building blocks of `.rdb` files (lengths, strings, doubles, objects).
//!
//! Writing produces the plain encodings every Redis since 2.x loads (string, list,
//! set, hash, zset with binary scores). Reading also accepts the compact encodings
//! Redis 7.0 writes (intset, listpack hash/zset, quicklist v2 with listpack nodes),
//! the older ziplist/quicklist v1 ones, LZF-compressed and integer-encoded strings.
//!
//! Nothing here panics on malformed input, and no allocation is sized by a length
//! read from the input before the bytes backing it have been seen: an LZF string
//! grows as it is decompressed. What a payload may build is bounded by a [`Budget`]
//! of bytes shared by every nesting level (a quicklist of LZF-compressed listpacks
//! expands each node up to 264 times, and each tiny listpack entry into a whole
//! element): decompressed strings and every decoded element are charged to it, and
//! decoding stops with [`RdbError::TooLarge`] when it runs out.

use crate::value::{Member, Value, ZSet};
use bytes::Bytes;
use std::collections::VecDeque;

/// The RDB version Redis 7.0 writes (and the newest it accepts in DUMP payloads).
pub const RDB_VERSION: u16 = 10;

/// Object type bytes.
pub mod types {
    pub const STRING: u8 = 0;
    pub const LIST: u8 = 1;
    pub const SET: u8 = 2;
    pub const ZSET: u8 = 3;
    pub const HASH: u8 = 4;
    pub const ZSET_2: u8 = 5;
    pub const MODULE: u8 = 6;
    pub const MODULE_2: u8 = 7;
    pub const HASH_ZIPMAP: u8 = 9;
    pub const LIST_ZIPLIST: u8 = 10;
    pub const SET_INTSET: u8 = 11;
    pub const ZSET_ZIPLIST: u8 = 12;
    pub const HASH_ZIPLIST: u8 = 13;
    pub const LIST_QUICKLIST: u8 = 14;
    pub const STREAM_LISTPACKS: u8 = 15;
    pub const HASH_LISTPACK: u8 = 16;
    pub const ZSET_LISTPACK: u8 = 17;
    pub const LIST_QUICKLIST_2: u8 = 18;
    pub const STREAM_LISTPACKS_2: u8 = 19;
}

/// Why a payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RdbError {
    #[error("unexpected end of data")]
    Eof,
    #[error("invalid length encoding")]
    BadLength,
    #[error("invalid string encoding")]
    BadStringEncoding,
    #[error("invalid LZF compressed string")]
    Lzf,
    #[error("unsupported object type {0}")]
    UnsupportedType(u8),
    #[error("corrupt {0}")]
    Corrupt(&'static str),
    #[error("empty {0}")]
    Empty(&'static str),
    #[error("duplicate element in {0}")]
    Duplicate(&'static str),
    #[error("invalid score")]
    BadScore,
    #[error("trailing bytes after the value")]
    Trailing,
    #[error("DUMP payload version or checksum are wrong")]
    BadFooter,
    #[error("the value would take more memory than allowed")]
    TooLarge,
}

pub type Result<T> = std::result::Result<T, RdbError>;

const CRC64: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_REDIS);

/// Redis's `crc64(0, data, len)`.
pub fn crc64(data: &[u8]) -> u64 {
    CRC64.checksum(data)
}

pub(crate) mod compact;
use compact::{intset_in, listpack_in, ziplist_in, zipmap_in};
pub use compact::{parse_intset, parse_listpack, parse_ziplist, parse_zipmap};

#[cfg(test)]
pub(crate) mod tests;

// ----- reading -----

/// The memory a decoded value may take, in bytes (an estimate: element bytes plus
/// [`ELEMENT_COST`] per element, and decompressed strings in full).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget(u64);

/// What one decoded element costs beyond its bytes (its handle, its allocation's
/// header and its slot in the container), for the [`Budget`].
pub const ELEMENT_COST: u64 = 48;

impl Budget {
    pub const fn new(bytes: u64) -> Budget {
        Budget(bytes)
    }
    pub const fn unlimited() -> Budget {
        Budget(u64::MAX)
    }
    /// Takes `n` bytes, or fails with [`RdbError::TooLarge`] (leaving nothing).
    pub fn charge(&mut self, n: u64) -> Result<()> {
        match self.0.checked_sub(n) {
            Some(left) => {
                self.0 = left;
                Ok(())
            }
            None => {
                self.0 = 0;
                Err(RdbError::TooLarge)
            }
        }
    }
    /// One element of `len` bytes.
    pub fn element(&mut self, len: usize) -> Result<()> {
        self.charge((len as u64).saturating_add(ELEMENT_COST))
    }
}

/// A cursor over RDB bytes, with the budget of what decoding may build.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    pub budget: Budget,
}

impl<'a> Reader<'a> {
    /// A reader with no limit on what decoding builds (for trusted input).
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader::with_budget(buf, Budget::unlimited())
    }
    pub fn with_budget(buf: &'a [u8], budget: Budget) -> Reader<'a> {
        Reader {
            buf,
            pos: 0,
            budget,
        }
    }
    pub fn position(&self) -> usize {
        self.pos
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub fn is_at_end(&self) -> bool {
        self.pos == self.buf.len()
    }
    pub fn read_u8(&mut self) -> Result<u8> {
        let b = *self.buf.get(self.pos).ok_or(RdbError::Eof)?;
        self.pos += 1;
        Ok(b)
    }
    pub fn read_exact(&mut self, n: u64) -> Result<&'a [u8]> {
        if n > self.remaining() as u64 {
            return Err(RdbError::Eof);
        }
        let n = n as usize;
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn read_array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.read_exact(N as u64)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// A length, or (with `true`) a special string encoding number.
    pub fn read_len_or_enc(&mut self) -> Result<(u64, bool)> {
        let b = self.read_u8()?;
        match b >> 6 {
            0 => Ok(((b & 0x3f) as u64, false)),
            1 => Ok(((((b & 0x3f) as u64) << 8) | self.read_u8()? as u64, false)),
            2 => match b {
                0x80 => Ok((u32::from_be_bytes(self.read_array()?) as u64, false)),
                0x81 => Ok((u64::from_be_bytes(self.read_array()?), false)),
                _ => Err(RdbError::BadLength),
            },
            _ => Ok(((b & 0x3f) as u64, true)),
        }
    }

    /// A plain length (special encodings are an error).
    pub fn read_len(&mut self) -> Result<u64> {
        match self.read_len_or_enc()? {
            (n, false) => Ok(n),
            _ => Err(RdbError::BadLength),
        }
    }

    /// A string in any RDB string encoding (raw, integer, LZF), charged to the budget
    /// as one element.
    pub fn read_string(&mut self) -> Result<Bytes> {
        let (s, charged) = self.read_blob_charged()?;
        if charged {
            // The decompressed bytes were charged as they were built.
            self.budget.charge(ELEMENT_COST)?;
        } else {
            self.budget.element(s.len())?;
        }
        Ok(s)
    }

    /// A string that holds a compact encoding (listpack, ziplist, intset): parsed and
    /// dropped, so only a decompressed one is charged (its elements are, when parsed).
    fn read_blob(&mut self) -> Result<Bytes> {
        self.read_blob_charged().map(|(b, _)| b)
    }

    /// [`Reader::read_blob`], and whether its bytes were charged to the budget (LZF:
    /// charged before decompression, since the expansion is the attack).
    fn read_blob_charged(&mut self) -> Result<(Bytes, bool)> {
        let (n, enc) = self.read_len_or_enc()?;
        if !enc {
            return Ok((Bytes::copy_from_slice(self.read_exact(n)?), false));
        }
        let v: i64 = match n {
            0 => self.read_u8()? as i8 as i64,
            1 => i16::from_le_bytes(self.read_array()?) as i64,
            2 => i32::from_le_bytes(self.read_array()?) as i64,
            3 => {
                let clen = self.read_len()?;
                let ulen = self.read_len()?;
                let data = self.read_exact(clen)?;
                // Charged before it is built: the expansion is the attack.
                self.budget.charge(ulen)?;
                return lzf_decompress(data, ulen).map(|v| (Bytes::from(v), true));
            }
            _ => return Err(RdbError::BadStringEncoding),
        };
        Ok((crate::num::int_bytes(v), false))
    }

    /// An 8-byte little-endian IEEE double (RDB_TYPE_ZSET_2 scores).
    pub fn read_binary_double(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(self.read_array()?))
    }

    /// An old-style double: a length byte, then ASCII (253 NaN, 254 +inf, 255 -inf).
    pub fn read_old_double(&mut self) -> Result<f64> {
        let n = self.read_u8()?;
        match n {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            _ => {
                let s = self.read_exact(n as u64)?;
                crate::num::parse_f64(s).ok_or(RdbError::BadScore)
            }
        }
    }
}

/// How many times its input an LZF output reserves before it is produced.
pub const LZF_RESERVE_FACTOR: usize = 4;

/// LZF decompression (liblzf's `lzf_decompress`) into exactly `out_len` bytes. The
/// output grows as it is produced: the declared length reserves at most
/// [`LZF_RESERVE_FACTOR`] times the input up front, whatever it says.
pub fn lzf_decompress(input: &[u8], out_len: u64) -> Result<Vec<u8>> {
    // One 3-byte back reference expands to at most 264 bytes.
    if out_len > (input.len() as u64).saturating_mul(264) {
        return Err(RdbError::Lzf);
    }
    let out_len = usize::try_from(out_len).map_err(|_| RdbError::Lzf)?;
    let mut out = Vec::with_capacity(out_len.min(input.len().saturating_mul(LZF_RESERVE_FACTOR)));
    let mut i = 0;
    while i < input.len() {
        let ctrl = input[i] as usize;
        i += 1;
        if ctrl < 32 {
            let len = ctrl + 1;
            if i + len > input.len() || out.len() + len > out_len {
                return Err(RdbError::Lzf);
            }
            out.extend_from_slice(&input[i..i + len]);
            i += len;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += *input.get(i).ok_or(RdbError::Lzf)? as usize;
                i += 1;
            }
            let back = ((ctrl & 0x1f) << 8) + *input.get(i).ok_or(RdbError::Lzf)? as usize + 1;
            i += 1;
            len += 2;
            if back > out.len() || out.len() + len > out_len {
                return Err(RdbError::Lzf);
            }
            let from = out.len() - back;
            for k in 0..len {
                let c = out[from + k];
                out.push(c);
            }
        }
    }
    if out.len() != out_len {
        return Err(RdbError::Lzf);
    }
    Ok(out)
}

fn set_from(members: Vec<Bytes>) -> Result<Value> {
    if members.is_empty() {
        return Err(RdbError::Empty("set"));
    }
    let mut s = crate::value::Set::with_capacity(members.len());
    for m in members {
        if !s.insert(crate::value::Member::new(&m)) {
            return Err(RdbError::Duplicate("set"));
        }
    }
    Ok(Value::Set(Box::new(s)))
}

fn hash_from_flat(flat: Vec<Bytes>) -> Result<Value> {
    if flat.is_empty() {
        return Err(RdbError::Empty("hash"));
    }
    if flat.len() % 2 == 1 {
        return Err(RdbError::Corrupt("hash"));
    }
    let mut h = crate::value::Hash::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(f), Some(v)) = (it.next(), it.next()) {
        if h.insert(Member::new(&f), Member::new(&v)).is_some() {
            return Err(RdbError::Duplicate("hash"));
        }
    }
    Ok(Value::Hash(Box::new(h)))
}

fn zset_add(z: &mut ZSet, m: Bytes, score: f64) -> Result<()> {
    if score.is_nan() {
        return Err(RdbError::BadScore);
    }
    if z.dict.contains_key(&m[..]) {
        return Err(RdbError::Duplicate("zset"));
    }
    z.insert(m, score);
    Ok(())
}

fn zset_from_flat(flat: Vec<Bytes>) -> Result<Value> {
    if flat.is_empty() {
        return Err(RdbError::Empty("zset"));
    }
    if flat.len() % 2 == 1 {
        return Err(RdbError::Corrupt("zset"));
    }
    let mut z = ZSet::new();
    let mut it = flat.into_iter();
    while let (Some(m), Some(s)) = (it.next(), it.next()) {
        let score = crate::num::parse_f64(&s).ok_or(RdbError::BadScore)?;
        zset_add(&mut z, m, score)?;
    }
    Ok(Value::ZSet(Box::new(z)))
}

fn list_from(items: VecDeque<Bytes>) -> Result<Value> {
    if items.is_empty() {
        return Err(RdbError::Empty("list"));
    }
    Ok(Value::List(items.into()))
}

/// Reads one value of RDB object type `ty` from `r`.
pub fn read_value(r: &mut Reader, ty: u8) -> Result<Value> {
    use types::*;
    match ty {
        STRING => Ok(Value::Str(r.read_string()?)),
        LIST => {
            let n = r.read_len()?;
            let mut l = VecDeque::new();
            for _ in 0..n {
                l.push_back(r.read_string()?);
            }
            list_from(l)
        }
        SET => {
            let n = r.read_len()?;
            let mut m = Vec::new();
            for _ in 0..n {
                m.push(r.read_string()?);
            }
            set_from(m)
        }
        ZSET | ZSET_2 => {
            let n = r.read_len()?;
            if n == 0 {
                return Err(RdbError::Empty("zset"));
            }
            let mut z = ZSet::new();
            for _ in 0..n {
                let m = r.read_string()?;
                let s = if ty == ZSET_2 {
                    r.read_binary_double()?
                } else {
                    r.read_old_double()?
                };
                zset_add(&mut z, m, s)?;
            }
            Ok(Value::ZSet(Box::new(z)))
        }
        HASH => {
            let n = r.read_len()?;
            if n == 0 {
                return Err(RdbError::Empty("hash"));
            }
            let mut h = crate::value::Hash::new();
            for _ in 0..n {
                let f = r.read_string()?;
                let v = r.read_string()?;
                if h.insert(Member::new(&f), Member::new(&v)).is_some() {
                    return Err(RdbError::Duplicate("hash"));
                }
            }
            Ok(Value::Hash(Box::new(h)))
        }
        SET_INTSET => set_from(intset_in(&r.read_blob()?, &mut r.budget)?),
        HASH_ZIPMAP => hash_from_flat(zipmap_in(&r.read_blob()?, &mut r.budget)?),
        LIST_ZIPLIST => list_from(ziplist_in(&r.read_blob()?, &mut r.budget)?.into()),
        ZSET_ZIPLIST => zset_from_flat(ziplist_in(&r.read_blob()?, &mut r.budget)?),
        HASH_ZIPLIST => hash_from_flat(ziplist_in(&r.read_blob()?, &mut r.budget)?),
        HASH_LISTPACK => hash_from_flat(listpack_in(&r.read_blob()?, &mut r.budget)?),
        ZSET_LISTPACK => zset_from_flat(listpack_in(&r.read_blob()?, &mut r.budget)?),
        LIST_QUICKLIST | LIST_QUICKLIST_2 => {
            let nodes = r.read_len()?;
            let mut l = VecDeque::new();
            for _ in 0..nodes {
                if ty == LIST_QUICKLIST_2 {
                    match r.read_len()? {
                        // PLAIN: one element.
                        1 => l.push_back(r.read_string()?),
                        // PACKED: a listpack (empty ones are skipped, as Redis does).
                        2 => l.extend(listpack_in(&r.read_blob()?, &mut r.budget)?),
                        _ => return Err(RdbError::Corrupt("quicklist")),
                    }
                } else {
                    l.extend(ziplist_in(&r.read_blob()?, &mut r.budget)?);
                }
            }
            list_from(l)
        }
        STREAM_LISTPACKS | STREAM_LISTPACKS_2 | crate::stream::rdb::STREAM_LISTPACKS_3 => {
            crate::stream::rdb::read(r, ty)
        }
        MODULE_2 => Ok(Value::Json(Box::new(crate::json::rdb_read(r)?))),
        other => Err(RdbError::UnsupportedType(other)),
    }
}

/// RDB type 20, a set as a listpack (Redis 7.2, RDB version 11). Only `.rdb` files
/// hold it here: [`read_value`] refuses it, since Redis 7.0's RESTORE does (a DUMP
/// payload of RDB version 11 never passes its footer check).
pub const SET_LISTPACK: u8 = 20;

/// Reads the body of an RDB type 20 value (see [`SET_LISTPACK`]).
pub fn read_set_listpack(r: &mut Reader) -> Result<Value> {
    set_from(listpack_in(&r.read_blob()?, &mut r.budget)?)
}

/// Decodes a value of type `ty` that must span all of `data`.
pub fn decode_value(ty: u8, data: &[u8]) -> Result<Value> {
    let mut r = Reader::new(data);
    let v = read_value(&mut r, ty)?;
    if !r.is_at_end() {
        return Err(RdbError::Trailing);
    }
    Ok(v)
}

// ----- writing -----

/// Appends an RDB length.
pub fn write_len(out: &mut Vec<u8>, n: u64) {
    if n < 1 << 6 {
        out.push(n as u8);
    } else if n < 1 << 14 {
        out.push(0x40 | (n >> 8) as u8);
        out.push(n as u8);
    } else if n <= u32::MAX as u64 {
        out.push(0x80);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// Appends a string, integer-encoded when it is a canonical integer that fits 32
/// bits (as Redis's `rdbSaveRawString` does for short strings).
pub fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    if s.len() <= 11 {
        if let Some(v) = crate::num::parse_i64(s) {
            if let Ok(v8) = i8::try_from(v) {
                out.push(0xc0);
                out.push(v8 as u8);
                return;
            } else if let Ok(v16) = i16::try_from(v) {
                out.push(0xc1);
                out.extend_from_slice(&v16.to_le_bytes());
                return;
            } else if let Ok(v32) = i32::try_from(v) {
                out.push(0xc2);
                out.extend_from_slice(&v32.to_le_bytes());
                return;
            }
        }
    }
    write_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

pub fn write_binary_double(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// The object type [`write_value`] uses for a value.
pub fn value_type(v: &Value) -> u8 {
    match v {
        Value::Str(_) => types::STRING,
        Value::List(_) => types::LIST,
        Value::Set(_) => types::SET,
        Value::Hash(_) => types::HASH,
        Value::ZSet(_) => types::ZSET_2,
        Value::Stream(_) => types::STREAM_LISTPACKS_2,
        Value::Json(_) => types::MODULE_2,
    }
}

/// Appends the body of a value (without the type byte) in the [`value_type`] encoding.
pub fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Str(s) => write_string(out, s),
        Value::List(l) => {
            write_len(out, l.len() as u64);
            for e in l {
                write_string(out, e);
            }
        }
        Value::Set(s) => {
            write_len(out, s.len() as u64);
            for e in s.iter() {
                write_string(out, e);
            }
        }
        Value::Hash(h) => {
            write_len(out, h.len() as u64);
            for (f, v) in h.iter() {
                write_string(out, f);
                write_string(out, v);
            }
        }
        Value::ZSet(z) => {
            write_len(out, z.len() as u64);
            // Highest first, as Redis writes skiplists (cheap appends on load).
            for (m, s) in z.iter().rev() {
                write_string(out, m);
                write_binary_double(out, s);
            }
        }
        Value::Stream(s) => crate::stream::rdb::write(out, s),
        Value::Json(j) => crate::json::rdb_write(out, j),
    }
}

/// The body of a value (see [`write_value`]).
pub fn encode_value(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_value(&mut out, v);
    out
}

// ----- DUMP payloads -----

/// A DUMP payload: type, value, RDB version (2 bytes LE), CRC64 (8 bytes LE).
pub fn dump_payload(v: &Value) -> Vec<u8> {
    let mut out = vec![value_type(v)];
    write_value(&mut out, v);
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Redis's `verifyDumpPayload`: the footer's version is supported and the CRC matches.
pub fn verify_payload(p: &[u8]) -> Result<()> {
    if p.len() < 10 {
        return Err(RdbError::BadFooter);
    }
    let footer = &p[p.len() - 10..];
    let ver = u16::from_le_bytes([footer[0], footer[1]]);
    if ver > RDB_VERSION {
        return Err(RdbError::BadFooter);
    }
    let crc = crc64(&p[..p.len() - 8]);
    if crc.to_le_bytes() != footer[2..] {
        return Err(RdbError::BadFooter);
    }
    Ok(())
}

/// Verifies and decodes a DUMP payload. Like Redis, bytes between the value and
/// the footer are ignored.
pub fn parse_payload(p: &[u8]) -> Result<Value> {
    parse_payload_within(p, Budget::unlimited())
}

/// [`parse_payload`], building at most what `budget` allows (RESTORE's decoder).
pub fn parse_payload_within(p: &[u8], budget: Budget) -> Result<Value> {
    verify_payload(p)?;
    let body = &p[..p.len() - 10];
    let mut r = Reader::with_budget(body, budget);
    let ty = r.read_u8()?;
    read_value(&mut r, ty)
}
