//! Redis 7.0's HyperLogLog representation (`hyperloglog.c`), byte for byte: the
//! 16-byte `HYLL` header with the cached cardinality, the sparse (ZERO / XZERO / VAL
//! opcodes) and dense (16384 six-bit registers) encodings, MurmurHash64A with Redis's
//! seed and the estimator of Ertl ("new cardinality estimation algorithms", `hllTau`
//! and `hllSigma`). An HLL is a plain string value, so a key made by Redis (GET, DUMP)
//! counts the same here and the other way round.
//!
//! Every reader tolerates corrupted input (a client can SETRANGE any byte of an HLL):
//! where Redis reads the sds terminator just past the end, these functions read a 0.

use bytes::BytesMut;

/// Header size: "HYLL", encoding, 3 unused bytes, 8 bytes of cached cardinality.
pub const HDR: usize = 16;
const P: u32 = 14;
const Q: u32 = 64 - P;
/// Number of registers.
pub const REGISTERS: usize = 1 << P;
const P_MASK: u64 = REGISTERS as u64 - 1;
const BITS: usize = 6;
const REGISTER_MAX: u8 = (1 << BITS) - 1;
/// Size of a dense HLL (header plus 12288 register bytes).
pub const DENSE_SIZE: usize = HDR + (REGISTERS * BITS).div_ceil(8);
pub const DENSE: u8 = 0;
pub const SPARSE: u8 = 1;
const MAX_ENCODING: u8 = 1;

const SPARSE_VAL_MAX_VALUE: u8 = 32;
const SPARSE_VAL_MAX_LEN: i64 = 4;
const SPARSE_ZERO_MAX_LEN: i64 = 64;
const SPARSE_XZERO_MAX_LEN: i64 = 16384;
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;
/// MurmurHash64A seed of `hllPatLen`.
const SEED: u64 = 0xadc8_3b19;

/// `-INVALIDOBJ`: the sparse representation does not describe 16384 registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt;

pub const ERR_INVALID: &str = "INVALIDOBJ Corrupted HLL object detected";
pub const ERR_NOT_HLL: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";

/// Redis's `MurmurHash64A` (little-endian reads on every architecture).
pub fn murmur64a(key: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    // Redis passes the length as an `int`.
    let len = key.len() as i32 as i64 as u64;
    let mut h = seed ^ len.wrapping_mul(M);
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let mut k = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= (b as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// `hllPatLen`: the register an element maps to and the length of its `000..1`
/// pattern (1 to 51).
pub fn pat_len(ele: &[u8]) -> (usize, u8) {
    let mut hash = murmur64a(ele, SEED);
    let index = (hash & P_MASK) as usize;
    hash >>= P;
    hash |= 1u64 << Q;
    (index, hash.trailing_zeros() as u8 + 1)
}

/// `HLL_DENSE_GET_REGISTER` over the register bytes (past the end reads 0).
#[inline]
pub fn dense_get(regs: &[u8], i: usize) -> u8 {
    let byte = i * BITS / 8;
    let fb = (i * BITS) & 7;
    let b0 = regs.get(byte).copied().unwrap_or(0) as u32;
    let b1 = regs.get(byte + 1).copied().unwrap_or(0) as u32;
    (((b0 >> fb) | (b1 << (8 - fb))) & REGISTER_MAX as u32) as u8
}

/// `HLL_DENSE_SET_REGISTER` (`val` below 64).
#[inline]
pub fn dense_set_reg(regs: &mut [u8], i: usize, val: u8) {
    let byte = i * BITS / 8;
    let fb = (i * BITS) & 7;
    let v = val as u32;
    if let Some(b) = regs.get_mut(byte) {
        *b &= !((REGISTER_MAX as u32) << fb) as u8;
        *b |= (v << fb) as u8;
    }
    if let Some(b) = regs.get_mut(byte + 1) {
        *b &= !((REGISTER_MAX as u32) >> (8 - fb)) as u8;
        *b |= (v >> (8 - fb)) as u8;
    }
}

/// `hllDenseSet`: raises register `i` to `count`; true when it changed.
#[inline]
pub fn dense_set(regs: &mut [u8], i: usize, count: u8) -> bool {
    if count > dense_get(regs, i) {
        dense_set_reg(regs, i, count);
        true
    } else {
        false
    }
}

#[inline]
fn is_zero(b: u8) -> bool {
    b & 0xc0 == 0
}
#[inline]
fn is_xzero(b: u8) -> bool {
    b & 0xc0 == 0x40
}
#[inline]
fn is_val(b: u8) -> bool {
    b & 0x80 != 0
}
#[inline]
fn zero_len(b: u8) -> i64 {
    (b & 0x3f) as i64 + 1
}
/// XZERO's run length from its two bytes (`b1` is 0 past the end, as Redis reads
/// the sds terminator there).
#[inline]
fn xzero_len(b0: u8, b1: u8) -> i64 {
    ((((b0 & 0x3f) as i64) << 8) | b1 as i64) + 1
}
#[inline]
fn val_value(b: u8) -> u8 {
    ((b >> 2) & 0x1f) + 1
}
#[inline]
fn val_len(b: u8) -> i64 {
    (b & 0x3) as i64 + 1
}
#[inline]
fn val_op(val: u8, len: i64) -> u8 {
    (((val - 1) << 2) | (len as u8 - 1)) | 0x80
}
#[inline]
fn zero_op(len: i64) -> u8 {
    (len - 1) as u8
}
#[inline]
fn xzero_op(len: i64) -> [u8; 2] {
    let l = len - 1;
    [((l >> 8) as u8) | 0x40, (l & 0xff) as u8]
}

/// `createHLLObject`: an empty sparse HLL (header plus one XZERO of 16384).
pub fn new_sparse() -> BytesMut {
    let mut s = BytesMut::with_capacity(HDR + 2);
    s.extend_from_slice(b"HYLL");
    s.extend_from_slice(&[SPARSE, 0, 0, 0]);
    s.extend_from_slice(&[0; 8]);
    s.extend_from_slice(&xzero_op(SPARSE_XZERO_MAX_LEN));
    s
}

/// `isHLLObjectOrReply`'s checks on a string value.
pub fn is_valid(s: &[u8]) -> bool {
    s.len() >= HDR
        && &s[..4] == b"HYLL"
        && s[4] <= MAX_ENCODING
        && (s[4] != DENSE || s.len() == DENSE_SIZE)
}

/// The cached cardinality, when valid.
pub fn cached(s: &[u8]) -> Option<u64> {
    if s[15] & 0x80 != 0 {
        return None;
    }
    let mut c = [0u8; 8];
    c.copy_from_slice(&s[8..16]);
    Some(u64::from_le_bytes(c))
}

pub fn set_cache(s: &mut [u8], card: u64) {
    s[8..16].copy_from_slice(&card.to_le_bytes());
}

/// `HLL_INVALIDATE_CACHE`.
pub fn invalidate(s: &mut [u8]) {
    s[15] |= 0x80;
}

/// `hllSparseToDense`: converts in place (nothing to do for a dense HLL).
pub fn sparse_to_dense(o: &mut BytesMut) -> Result<(), Corrupt> {
    sparse_to_dense_term(o, 0)
}

/// [`sparse_to_dense`] with the byte past the end (see [`Term`]).
fn sparse_to_dense_term(o: &mut BytesMut, term: Term) -> Result<(), Corrupt> {
    if o[4] == DENSE {
        return Ok(());
    }
    let mut dense = BytesMut::zeroed(DENSE_SIZE);
    dense[..HDR].copy_from_slice(&o[..HDR]);
    dense[4] = DENSE;
    let regs = &mut dense[HDR..];
    let sparse = &o[HDR..];
    let mut idx: i64 = 0;
    let mut p = 0;
    while p < sparse.len() {
        let b = sparse[p];
        if is_zero(b) {
            idx += zero_len(b);
            p += 1;
        } else if is_xzero(b) {
            idx += xzero_len(b, sparse.get(p + 1).copied().unwrap_or(term));
            p += 2;
        } else {
            let runlen = val_len(b);
            let regval = val_value(b);
            // Redis 7.0.15 stops here and accepts an HLL whose registers already
            // add up; the CVE-2025-32023 fix (in the 7.0.15 builds distributions
            // ship) refuses it, and so does redsnap.
            if runlen + idx > REGISTERS as i64 {
                return Err(Corrupt);
            }
            for _ in 0..runlen {
                dense_set_reg(regs, idx as usize, regval);
                idx += 1;
            }
            p += 1;
        }
    }
    if idx != REGISTERS as i64 {
        return Err(Corrupt);
    }
    *o = dense;
    Ok(())
}

/// The byte just past the end of the string. Redis reads it where a corrupted
/// sparse HLL ends in half an XZERO opcode: normally the sds terminator (0), but
/// splitting such an opcode writes the last byte of the new sequence there, and the
/// next elements of the same command read it. (Redis keeps it in the value between
/// commands too; redsnap starts every command from 0, so only HLLs corrupted this
/// way can differ.)
pub type Term = u8;

/// A command's edit of one HLL string: the value and its [`Term`].
pub struct Edit<'a> {
    pub o: &'a mut BytesMut,
    term: Term,
}

impl<'a> Edit<'a> {
    pub fn new(o: &'a mut BytesMut) -> Edit<'a> {
        Edit { o, term: 0 }
    }

    /// `hllAdd`: adds an element; true when a register changed. May promote a
    /// sparse HLL to dense (`max_sparse` is `hll-sparse-max-bytes`).
    pub fn add(&mut self, ele: &[u8], max_sparse: usize) -> Result<bool, Corrupt> {
        let (index, count) = pat_len(ele);
        self.set(index, count, max_sparse)
    }

    /// Raises register `index` to `count` in either encoding.
    pub fn set(&mut self, index: usize, count: u8, max_sparse: usize) -> Result<bool, Corrupt> {
        match self.o[4] {
            DENSE => Ok(dense_set(&mut self.o[HDR..], index, count)),
            SPARSE => sparse_set(self.o, index, count, max_sparse, &mut self.term),
            _ => Err(Corrupt),
        }
    }

    pub fn to_dense(&mut self) -> Result<(), Corrupt> {
        sparse_to_dense_term(self.o, self.term)?;
        self.term = 0;
        Ok(())
    }
}

/// [`Edit::add`] on its own.
pub fn add(o: &mut BytesMut, ele: &[u8], max_sparse: usize) -> Result<bool, Corrupt> {
    Edit::new(o).add(ele, max_sparse)
}

/// `hllSparseSet`: raises register `index` to `count` in a sparse HLL, splitting and
/// merging opcodes as Redis does, or promoting to dense when the value does not fit
/// a VAL opcode or the result would exceed `max_sparse` bytes.
fn sparse_set(
    o: &mut BytesMut,
    index: usize,
    count: u8,
    max_sparse: usize,
    term: &mut Term,
) -> Result<bool, Corrupt> {
    if count > SPARSE_VAL_MAX_VALUE {
        return promote(o, index, count, term);
    }
    let index = index as i64;
    // Step 1: the opcode covering `index`.
    let Some((p, first, span, prev)) = locate(o, index, *term) else {
        return Err(Corrupt);
    };
    let end = o.len();
    let t = *term;
    let at = |o: &BytesMut, i: usize| o.get(i).copied().unwrap_or(t);
    let b = o[p];
    let next = if is_xzero(b) { p + 2 } else { p + 1 };
    let next = (next < end).then_some(next);
    let (op_zero, op_xzero) = (is_zero(b), is_xzero(b));
    let runlen = if op_zero {
        zero_len(b)
    } else if op_xzero {
        xzero_len(b, at(o, p + 1))
    } else {
        val_len(b)
    };

    // Step 2: the trivial cases (A, B, C in Redis), else a split (D).
    let mut done = false;
    if !op_zero && !op_xzero {
        let old = val_value(b);
        if old >= count {
            return Ok(false);
        }
        if runlen == 1 {
            o[p] = val_op(count, 1);
            done = true;
        }
    }
    if !done && op_zero && runlen == 1 {
        o[p] = val_op(count, 1);
        done = true;
    }
    if !done {
        let (seq, n) = split(b, index, first, first + span - 1, count);
        let oldlen = if op_xzero { 2 } else { 1 };
        if n > oldlen && o.len() + (n - oldlen) > max_sparse {
            return promote(o, index as usize, count, term);
        }
        replace(o, p, oldlen, next, &seq[..n], term);
    }
    merge_vals(o, prev.unwrap_or(HDR), term);
    invalidate(o);
    Ok(true)
}

/// Case D of `hllSparseSet`: the opcodes replacing opcode `b` (covering registers
/// `first..=last`) once register `index` is `count`, and how many bytes they take.
fn split(b: u8, index: i64, first: i64, last: i64, count: u8) -> ([u8; 5], usize) {
    let mut seq = [0u8; 5];
    let mut n = 0;
    let mut push = |ops: &[u8]| {
        seq[n..n + ops.len()].copy_from_slice(ops);
        n += ops.len();
    };
    let zeros = |len: i64| -> ([u8; 2], usize) {
        if len > SPARSE_ZERO_MAX_LEN {
            (xzero_op(len), 2)
        } else {
            ([zero_op(len), 0], 1)
        }
    };
    if is_zero(b) || is_xzero(b) {
        if index != first {
            let (z, k) = zeros(index - first);
            push(&z[..k]);
        }
        push(&[val_op(count, 1)]);
        if index != last {
            let (z, k) = zeros(last - index);
            push(&z[..k]);
        }
    } else {
        let curval = val_value(b);
        if index != first {
            push(&[val_op(curval, index - first)]);
        }
        push(&[val_op(count, 1)]);
        if index != last {
            push(&[val_op(curval, last - index)]);
        }
    }
    (seq, n)
}

/// Step 3 of `hllSparseSet`: `seq` in place of the `oldlen`-byte opcode at `p`
/// (`next`: the following opcode, if any), moving what follows.
fn replace(
    o: &mut BytesMut,
    p: usize,
    oldlen: usize,
    next: Option<usize>,
    seq: &[u8],
    term: &mut Term,
) {
    let end = o.len();
    let n = seq.len();
    let new_len = end + n - oldlen;
    if n > oldlen {
        o.resize(new_len, 0);
    }
    if n != oldlen {
        if let Some(next) = next {
            o.copy_within(next..end, next + n - oldlen);
        }
    }
    // Half an XZERO at the very end: the new sequence reaches one byte past the new
    // length, where Redis's copy lands in place of the terminator it just wrote.
    *term = 0;
    if p + n > new_len {
        o.resize(p + n, 0);
        *term = seq[new_len - p];
    }
    o[p..p + n].copy_from_slice(seq);
    o.truncate(new_len);
}

/// Step 4 of `hllSparseSet`: merges adjacent VAL opcodes of equal value, scanning
/// up to 5 opcodes from `p`.
fn merge_vals(o: &mut BytesMut, mut p: usize, term: &mut Term) {
    let mut end = o.len();
    let mut scanlen = 5;
    while p < end {
        if scanlen == 0 {
            break;
        }
        scanlen -= 1;
        let b = o[p];
        if is_xzero(b) {
            p += 2;
            continue;
        } else if is_zero(b) {
            p += 1;
            continue;
        }
        if p + 1 < end && is_val(o[p + 1]) {
            let v1 = val_value(b);
            let v2 = val_value(o[p + 1]);
            if v1 == v2 {
                let len = val_len(b) + val_len(o[p + 1]);
                if len <= SPARSE_VAL_MAX_LEN {
                    o[p + 1] = val_op(v1, len);
                    o.copy_within(p + 1..end, p);
                    end -= 1;
                    o.truncate(end);
                    *term = 0;
                    continue;
                }
            }
        }
        p += 1;
    }
}

/// Step 1 of `hllSparseSet`: the opcode covering register `index`, as (its
/// position, the first register it covers, its span, the previous opcode's
/// position). The hottest loop of a sparse HLL, written without helper calls (they
/// are not inlined in debug builds, which the test suites run).
fn locate(buf: &[u8], index: i64, term: Term) -> Option<(usize, i64, i64, Option<usize>)> {
    let end = buf.len();
    let mut p = HDR;
    let mut prev = usize::MAX;
    // Registers still to pass before `index`.
    let mut rem = index;
    while p < end {
        let b = buf[p];
        let span;
        let mut oplen = 1;
        if b < 0x40 {
            span = b as i64 + 1;
        } else if b >= 0x80 {
            span = (b & 0x3) as i64 + 1;
        } else {
            let b1 = if p + 1 < end { buf[p + 1] } else { term };
            span = ((((b & 0x3f) as i64) << 8) | b1 as i64) + 1;
            oplen = 2;
        }
        if rem < span {
            let prev = (prev != usize::MAX).then_some(prev);
            return Some((p, index - rem, span, prev));
        }
        rem -= span;
        prev = p;
        p += oplen;
    }
    None
}

/// Promotes to dense, then sets the register (Redis asserts it changes).
fn promote(o: &mut BytesMut, index: usize, count: u8, term: &mut Term) -> Result<bool, Corrupt> {
    sparse_to_dense_term(o, *term)?;
    *term = 0;
    dense_set(&mut o[HDR..], index, count);
    Ok(true)
}

/// The register histogram of a dense HLL (`hllDenseRegHisto`).
fn dense_histo(regs: &[u8], histo: &mut [i64; 64]) {
    for r in regs.chunks_exact(3).take(REGISTERS / 4) {
        // Four registers in three bytes.
        histo[(r[0] & 63) as usize] += 1;
        histo[((r[0] >> 6 | r[1] << 2) & 63) as usize] += 1;
        histo[((r[1] >> 4 | r[2] << 4) & 63) as usize] += 1;
        histo[((r[2] >> 2) & 63) as usize] += 1;
    }
}

/// The register histogram of a sparse HLL (`hllSparseRegHisto`); Err when the
/// opcodes do not cover exactly 16384 registers.
fn sparse_histo(sparse: &[u8], histo: &mut [i64; 64]) -> Result<(), Corrupt> {
    let mut idx: i64 = 0;
    let mut p = 0;
    while p < sparse.len() {
        let b = sparse[p];
        if is_zero(b) {
            let r = zero_len(b);
            idx += r;
            histo[0] += r;
            p += 1;
        } else if is_xzero(b) {
            let r = xzero_len(b, sparse.get(p + 1).copied().unwrap_or(0));
            idx += r;
            histo[0] += r;
            p += 2;
        } else {
            let r = val_len(b);
            idx += r;
            histo[val_value(b) as usize] += r;
            p += 1;
        }
    }
    if idx != REGISTERS as i64 {
        return Err(Corrupt);
    }
    Ok(())
}

/// `hllSigma` (Ertl).
fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let z_prime = z;
        z += x * y;
        y += y;
        if z_prime == z {
            return z;
        }
    }
}

/// `hllTau` (Ertl). Redis's `pow(1 - x, 2)` is compiled to a multiplication.
fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let z_prime = z;
        y *= 0.5;
        let d = 1.0 - x;
        z -= d * d * y;
        if z_prime == z {
            return z / 3.0;
        }
    }
}

/// The estimate from a register histogram (the second half of `hllCount`).
fn estimate(histo: &[i64; 64]) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - histo[Q as usize + 1] as f64) / m);
    for j in (1..=Q as usize).rev() {
        z += histo[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(histo[0] as f64 / m);
    (ALPHA_INF * m * m / z).round() as u64
}

/// `hllCount` of a valid HLL string (see [`is_valid`]); Err for a corrupted sparse one.
pub fn count(s: &[u8]) -> Result<u64, Corrupt> {
    let mut histo = [0i64; 64];
    match s[4] {
        DENSE => dense_histo(&s[HDR..], &mut histo),
        _ => sparse_histo(&s[HDR..], &mut histo)?,
    }
    Ok(estimate(&histo))
}

/// `hllCount` of one register per byte (Redis's internal HLL_RAW encoding).
pub fn count_raw(regs: &[u8]) -> u64 {
    let mut histo = [0i64; 64];
    for &r in regs {
        histo[(r & 63) as usize] += 1;
    }
    estimate(&histo)
}

/// `hllMerge`: `max[i] = max(max[i], register i)` over a valid HLL string.
pub fn merge(max: &mut [u8], s: &[u8]) -> Result<(), Corrupt> {
    let regs = &s[HDR..];
    if s[4] == DENSE {
        for (i, m) in max.iter_mut().enumerate().take(REGISTERS) {
            let v = dense_get(regs, i);
            if v > *m {
                *m = v;
            }
        }
        return Ok(());
    }
    let mut i: i64 = 0;
    let mut p = 0;
    while p < regs.len() {
        let b = regs[p];
        if is_zero(b) {
            i += zero_len(b);
            p += 1;
        } else if is_xzero(b) {
            i += xzero_len(b, regs.get(p + 1).copied().unwrap_or(0));
            p += 2;
        } else {
            let runlen = val_len(b);
            let regval = val_value(b);
            // As in `sparse_to_dense`: an overflowing VAL is corrupt.
            if runlen + i > REGISTERS as i64 {
                return Err(Corrupt);
            }
            for _ in 0..runlen {
                if let Some(m) = max.get_mut(i as usize) {
                    if regval > *m {
                        *m = regval;
                    }
                }
                i += 1;
            }
            p += 1;
        }
    }
    if i != REGISTERS as i64 {
        return Err(Corrupt);
    }
    Ok(())
}

/// PFDEBUG DECODE: the sparse opcodes as text (`z:N Z:N v:V,N`).
pub fn decode(s: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let regs = &s[HDR..];
    let mut p = 0;
    while p < regs.len() {
        let b = regs[p];
        if is_zero(b) {
            let _ = write!(out, "z:{} ", zero_len(b));
            p += 1;
        } else if is_xzero(b) {
            let _ = write!(
                out,
                "Z:{} ",
                xzero_len(b, regs.get(p + 1).copied().unwrap_or(0))
            );
            p += 2;
        } else {
            let _ = write!(out, "v:{},{} ", val_value(b), val_len(b));
            p += 1;
        }
    }
    out.trim_matches(' ').to_string()
}

/// PFSELFTEST (`pfselftestCommand`): register access, then the estimate of 1 to 10M
/// distinct elements added to a dense and a sparse HLL side by side. `rand` plays
/// the role of C's `rand()`.
pub fn selftest(max_sparse: usize, mut rand: impl FnMut() -> u32) -> Result<(), String> {
    // Test 1: registers keep their values and leave their neighbours alone.
    let mut dense = vec![0u8; DENSE_SIZE - HDR];
    let mut bytes = vec![0u8; REGISTERS];
    for _ in 0..1000 {
        for (i, b) in bytes.iter_mut().enumerate() {
            let r = (rand() & REGISTER_MAX as u32) as u8;
            *b = r;
            dense_set_reg(&mut dense, i, r);
        }
        for (i, &b) in bytes.iter().enumerate() {
            let v = dense_get(&dense, i);
            if v != b {
                return Err(format!("TESTFAILED Register {i} should be {b} but is {v}"));
            }
        }
    }
    // Test 2: approximation error, dense and sparse agreeing.
    let mut dense = BytesMut::zeroed(DENSE_SIZE);
    dense[..4].copy_from_slice(b"HYLL");
    let mut sparse = new_sparse();
    let mut o = Edit::new(&mut sparse);
    let relerr = 1.04 / (REGISTERS as f64).sqrt();
    let mut checkpoint: u64 = 1;
    let seed = rand() as u64 | (rand() as u64) << 32;
    for j in 1..=10_000_000u64 {
        let ele = (j ^ seed).to_le_bytes();
        let (index, count) = pat_len(&ele);
        dense_set(&mut dense[HDR..], index, count);
        // Sparse and dense agree on every register whatever the encoding, so a
        // corrupt result cannot happen here.
        let _ = o.set(index, count, max_sparse);
        if j != checkpoint {
            continue;
        }
        if j < (max_sparse / 2) as u64 && o.o[4] != SPARSE {
            return Err("TESTFAILED sparse encoding not used".into());
        }
        let d = count_or_zero(&dense);
        if d != count_or_zero(o.o) {
            return Err("TESTFAILED dense/sparse disagree".into());
        }
        let abserr = (checkpoint as i64 - d as i64).unsigned_abs();
        let mut maxerr = (relerr * 6.0 * checkpoint as f64).ceil() as u64;
        if j == 10 {
            maxerr = 1;
        }
        if abserr > maxerr {
            return Err(format!(
                "TESTFAILED Too big error. card:{checkpoint} abserr:{abserr}"
            ));
        }
        checkpoint *= 10;
    }
    Ok(())
}

fn count_or_zero(s: &[u8]) -> u64 {
    count(s).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Registers of a string in either encoding.
    fn registers(s: &[u8]) -> Vec<u8> {
        let mut max = vec![0u8; REGISTERS];
        merge(&mut max, s).unwrap();
        max
    }

    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn murmur_matches_the_reference_algorithm() {
        // Straight from the reference's definition: every tail length, and the
        // length mixed into the seed.
        let h0 = murmur64a(b"", 0);
        let h1 = murmur64a(b"", 1);
        assert_ne!(h0, h1);
        let data: Vec<u8> = (0u8..40).collect();
        let mut seen = std::collections::HashSet::new();
        for n in 0..=data.len() {
            assert!(seen.insert(murmur64a(&data[..n], SEED)), "collision at {n}");
        }
        // A value computed by hand from the algorithm: the empty key hashes the
        // seed alone.
        let m = 0xc6a4_a793_5bd1_e995u64;
        let mut h = SEED;
        h ^= h >> 47;
        h = h.wrapping_mul(m);
        h ^= h >> 47;
        assert_eq!(murmur64a(b"", SEED), h);
    }

    #[test]
    fn dense_registers_do_not_touch_their_neighbours() {
        let mut regs = vec![0u8; DENSE_SIZE - HDR];
        let mut st = 0x1234_5678u64;
        let mut want = vec![0u8; REGISTERS];
        for _ in 0..3 {
            for (i, w) in want.iter_mut().enumerate() {
                let v = (xorshift(&mut st) & 63) as u8;
                *w = v;
                dense_set_reg(&mut regs, i, v);
            }
            for (i, &w) in want.iter().enumerate() {
                assert_eq!(dense_get(&regs, i), w, "register {i}");
            }
        }
        assert!(selftest(3000, || xorshift(&mut st) as u32).is_ok());
    }

    #[test]
    fn sparse_and_dense_agree_and_promote() {
        let mut st = 42u64;
        for n in [0usize, 1, 5, 50, 300, 1000, 3000] {
            let mut sparse = new_sparse();
            let mut dense = new_sparse();
            sparse_to_dense(&mut dense).unwrap();
            assert_eq!(dense.len(), DENSE_SIZE);
            for _ in 0..n {
                let e = xorshift(&mut st).to_string();
                add(&mut sparse, e.as_bytes(), 3000).unwrap();
                add(&mut dense, e.as_bytes(), 3000).unwrap();
            }
            assert!(is_valid(&sparse) && is_valid(&dense));
            assert_eq!(registers(&sparse), registers(&dense), "n={n}");
            assert_eq!(count(&sparse), count(&dense), "n={n}");
            if n <= 300 {
                assert_eq!(sparse[4], SPARSE, "n={n}");
            }
            if n == 3000 {
                assert_eq!(sparse[4], DENSE);
            }
            if sparse[4] == SPARSE {
                assert!(sparse.len() <= 3000);
                let mut conv = sparse.clone();
                sparse_to_dense(&mut conv).unwrap();
                assert_eq!(&conv[HDR..], &dense[HDR..]);
            }
            let est = count(&dense).unwrap() as f64;
            assert!(
                (est - n as f64).abs() <= (n as f64 * 0.05).max(1.0),
                "n={n} est={est}"
            );
        }
    }

    #[test]
    fn sparse_opcodes_stay_canonical() {
        // Registers set in order are merged into VAL runs of up to 4.
        let mut o = new_sparse();
        for i in 0..6 {
            sparse_set(&mut o, 100 + i, 3, 3000, &mut 0).unwrap();
        }
        assert_eq!(decode(&o), "Z:100 v:3,4 v:3,2 Z:16278");
        sparse_set(&mut o, 0, 1, 3000, &mut 0).unwrap();
        sparse_set(&mut o, 16383, 32, 3000, &mut 0).unwrap();
        assert_eq!(decode(&o), "v:1,1 Z:99 v:3,4 v:3,2 Z:16277 v:32,1");
        // A short zero run becomes a ZERO opcode.
        sparse_set(&mut o, 50, 2, 3000, &mut 0).unwrap();
        assert_eq!(
            decode(&o),
            "v:1,1 z:49 v:2,1 z:49 v:3,4 v:3,2 Z:16277 v:32,1"
        );
        // 33 does not fit a VAL opcode: promotion.
        assert_eq!(sparse_set(&mut o, 5, 33, 3000, &mut 0), Ok(true));
        assert_eq!(o[4], DENSE);
        assert_eq!(dense_get(&o[HDR..], 5), 33);
        assert_eq!(dense_get(&o[HDR..], 16383), 32);
    }

    #[test]
    fn a_split_past_the_end_is_read_back_within_the_command() {
        // A corrupted HLL ending in half an XZERO: each split writes the low byte of
        // the new trailing XZERO past the end, and the next add reads it there (the
        // bytes Redis's own algorithm gives, byte for byte).
        let mut o = BytesMut::from(&b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\0\x7f"[..]);
        let mut e = Edit::new(&mut o);
        let want: [&[u8]; 3] = [
            &[0x40, 0x63, 0x80, 0x7e],
            &[0x40, 0x63, 0x80, 0x66, 0xaa, 0x80, 0x57],
            &[0x40, 0x63, 0x80, 0x66, 0xaa, 0x80, 0x53, 0x86, 0x80, 0x44],
        ];
        for ((index, term), want) in [(100, 0x9b), (10000, 0xef), (15000, 0x67)].iter().zip(want) {
            assert_eq!(e.set(*index, 1, 3000), Ok(true));
            assert_eq!(&e.o[HDR..], want, "register {index}");
            assert_eq!(e.term, *term, "register {index}");
        }
        // A new command starts from the terminator (0): the trailing XZERO reads
        // as 1025 registers.
        let mut e = Edit::new(&mut o);
        assert_eq!(e.set(16000, 1, 3000), Ok(true));
        let tail = [0x53, 0x86, 0x80, 0x43, 0xe6, 0x80];
        assert_eq!(&e.o[e.o.len() - 6..], tail);
        assert_eq!(e.term, 0x18);
    }

    #[test]
    fn estimator_edges() {
        let empty = new_sparse();
        assert_eq!(count(&empty), Ok(0));
        assert_eq!(count_raw(&[0u8; REGISTERS]), 0);
        // All registers at the maximum pattern length: a finite estimate.
        let all = count_raw(&[51u8; REGISTERS]);
        assert!(all > 0);
    }

    #[test]
    fn corrupt_input_never_panics() {
        let mut st = 7u64;
        for round in 0..3000 {
            let mut o = new_sparse();
            let n = (xorshift(&mut st) % 400) as usize;
            for _ in 0..n {
                let _ = add(&mut o, &xorshift(&mut st).to_le_bytes(), 3000);
            }
            if round % 3 == 0 {
                let _ = sparse_to_dense(&mut o);
            }
            for _ in 0..1 + xorshift(&mut st) % 4 {
                let len = o.len();
                let pos = (xorshift(&mut st) as usize) % len;
                o[pos] = xorshift(&mut st) as u8;
            }
            if round % 5 == 0 {
                let cut = HDR + (xorshift(&mut st) as usize) % (o.len() - HDR + 1);
                o.truncate(cut);
            }
            if !is_valid(&o) {
                continue;
            }
            let _ = count(&o);
            let mut max = vec![0u8; REGISTERS];
            let _ = merge(&mut max, &o);
            let _ = decode(&o);
            for _ in 0..20 {
                let _ = add(&mut o, &xorshift(&mut st).to_le_bytes(), 3000);
            }
            let _ = sparse_to_dense(&mut o);
        }
    }
}
