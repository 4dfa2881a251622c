//! Redis's compact blob encodings inside RDB values: ziplist, listpack, intset, and
//! the zipmap of RDB versions before 4 (Redis 2.x hashes).

use super::{Budget, RdbError, Reader, Result};
use bytes::Bytes;

/// The entries of a ziplist blob.
pub fn parse_ziplist(zl: &[u8]) -> Result<Vec<Bytes>> {
    ziplist_in(zl, &mut Budget::unlimited())
}

/// [`parse_ziplist`], charging each entry to `budget`.
pub(super) fn ziplist_in(zl: &[u8], budget: &mut Budget) -> Result<Vec<Bytes>> {
    const WHAT: &str = "ziplist";
    if zl.len() < 11
        || u32::from_le_bytes([zl[0], zl[1], zl[2], zl[3]]) as usize != zl.len()
        || zl[zl.len() - 1] != 0xff
    {
        return Err(RdbError::Corrupt(WHAT));
    }
    let mut r = Reader::new(&zl[10..]);
    let mut out = Vec::new();
    let corrupt = |_| RdbError::Corrupt(WHAT);
    loop {
        let first = r.read_u8().map_err(corrupt)?;
        if first == 0xff {
            break;
        }
        // prevlen: 1 byte, or 0xFE + 4 bytes.
        if first == 0xfe {
            r.read_exact(4).map_err(corrupt)?;
        }
        let enc = r.read_u8().map_err(corrupt)?;
        let entry: Bytes = match enc >> 6 {
            0 => Bytes::copy_from_slice(r.read_exact((enc & 0x3f) as u64).map_err(corrupt)?),
            1 => {
                let n = (((enc & 0x3f) as u64) << 8) | r.read_u8().map_err(corrupt)? as u64;
                Bytes::copy_from_slice(r.read_exact(n).map_err(corrupt)?)
            }
            2 => {
                if enc != 0x80 {
                    return Err(RdbError::Corrupt(WHAT));
                }
                let n = u32::from_be_bytes(r.read_array().map_err(corrupt)?) as u64;
                Bytes::copy_from_slice(r.read_exact(n).map_err(corrupt)?)
            }
            _ => {
                let v: i64 = match enc {
                    0xc0 => i16::from_le_bytes(r.read_array().map_err(corrupt)?) as i64,
                    0xd0 => i32::from_le_bytes(r.read_array().map_err(corrupt)?) as i64,
                    0xe0 => i64::from_le_bytes(r.read_array().map_err(corrupt)?),
                    0xf0 => {
                        let b: [u8; 3] = r.read_array().map_err(corrupt)?;
                        (i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) as i64
                    }
                    0xfe => r.read_u8().map_err(corrupt)? as i8 as i64,
                    0xf1..=0xfd => (enc & 0x0f) as i64 - 1,
                    _ => return Err(RdbError::Corrupt(WHAT)),
                };
                crate::num::int_bytes(v)
            }
        };
        budget.element(entry.len())?;
        out.push(entry);
    }
    if !r.is_at_end() {
        return Err(RdbError::Corrupt(WHAT));
    }
    Ok(out)
}

/// The entries of a listpack blob.
pub fn parse_listpack(lp: &[u8]) -> Result<Vec<Bytes>> {
    listpack_in(lp, &mut Budget::unlimited())
}

/// [`parse_listpack`], charging each entry to `budget`.
pub(crate) fn listpack_in(lp: &[u8], budget: &mut Budget) -> Result<Vec<Bytes>> {
    const WHAT: &str = "listpack";
    if lp.len() < 7
        || u32::from_le_bytes([lp[0], lp[1], lp[2], lp[3]]) as usize != lp.len()
        || lp[lp.len() - 1] != 0xff
    {
        return Err(RdbError::Corrupt(WHAT));
    }
    let declared = u16::from_le_bytes([lp[4], lp[5]]);
    let mut r = Reader::new(&lp[6..]);
    let corrupt = |_| RdbError::Corrupt(WHAT);
    let mut out = Vec::new();
    loop {
        let start = r.position();
        let enc = r.read_u8().map_err(corrupt)?;
        if enc == 0xff {
            break;
        }
        let entry: Bytes = if enc & 0x80 == 0 {
            crate::num::int_bytes((enc & 0x7f) as i64)
        } else if enc & 0xc0 == 0x80 {
            Bytes::copy_from_slice(r.read_exact((enc & 0x3f) as u64).map_err(corrupt)?)
        } else if enc & 0xe0 == 0xc0 {
            let uv = (((enc & 0x1f) as i64) << 8) | r.read_u8().map_err(corrupt)? as i64;
            crate::num::int_bytes(if uv >= 1 << 12 { uv - (1 << 13) } else { uv })
        } else if enc & 0xf0 == 0xe0 {
            let n = (((enc & 0x0f) as u64) << 8) | r.read_u8().map_err(corrupt)? as u64;
            Bytes::copy_from_slice(r.read_exact(n).map_err(corrupt)?)
        } else {
            match enc {
                0xf0 => {
                    let n = u32::from_le_bytes(r.read_array().map_err(corrupt)?) as u64;
                    Bytes::copy_from_slice(r.read_exact(n).map_err(corrupt)?)
                }
                0xf1 => crate::num::int_bytes(
                    i16::from_le_bytes(r.read_array().map_err(corrupt)?) as i64
                ),
                0xf2 => {
                    let b: [u8; 3] = r.read_array().map_err(corrupt)?;
                    crate::num::int_bytes((i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) as i64)
                }
                0xf3 => crate::num::int_bytes(
                    i32::from_le_bytes(r.read_array().map_err(corrupt)?) as i64
                ),
                0xf4 => crate::num::int_bytes(i64::from_le_bytes(r.read_array().map_err(corrupt)?)),
                _ => return Err(RdbError::Corrupt(WHAT)),
            }
        };
        // Skip the back-length, which encodes the entry's size so far.
        let size = (r.position() - start) as u64;
        let backlen = match size {
            0..=127 => 1,
            128..=16382 => 2,
            16383..=2097150 => 3,
            2097151..=268435454 => 4,
            _ => 5,
        };
        r.read_exact(backlen).map_err(corrupt)?;
        budget.element(entry.len())?;
        out.push(entry);
    }
    if !r.is_at_end() || (declared != u16::MAX && declared as usize != out.len()) {
        return Err(RdbError::Corrupt(WHAT));
    }
    Ok(out)
}

/// The members of an intset blob, as decimal strings.
pub fn parse_intset(is: &[u8]) -> Result<Vec<Bytes>> {
    intset_in(is, &mut Budget::unlimited())
}

/// [`parse_intset`], charging each member to `budget`.
pub(super) fn intset_in(is: &[u8], budget: &mut Budget) -> Result<Vec<Bytes>> {
    const WHAT: &str = "intset";
    if is.len() < 8 {
        return Err(RdbError::Corrupt(WHAT));
    }
    let enc = u32::from_le_bytes([is[0], is[1], is[2], is[3]]) as usize;
    let n = u32::from_le_bytes([is[4], is[5], is[6], is[7]]) as usize;
    if !matches!(enc, 2 | 4 | 8) || (is.len() - 8) as u64 != (n as u64) * (enc as u64) {
        return Err(RdbError::Corrupt(WHAT));
    }
    is[8..]
        .chunks_exact(enc)
        .map(|c| {
            let v = match enc {
                2 => i16::from_le_bytes([c[0], c[1]]) as i64,
                4 => i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64,
                _ => i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
            };
            let m = crate::num::int_bytes(v);
            budget.element(m.len())?;
            Ok(m)
        })
        .collect()
}

/// The fields and values of a zipmap blob (Redis 2.x small hashes, RDB type 9), flat:
/// field, value, field, value...
pub fn parse_zipmap(zm: &[u8]) -> Result<Vec<Bytes>> {
    zipmap_in(zm, &mut Budget::unlimited())
}

/// [`parse_zipmap`], charging each field and value to `budget`. Validates as Redis's
/// `zipmapValidateIntegrity` (deep): entries inside the blob, at least one, and the
/// count byte (unless 254, "unknown") equal to the number of entries.
pub(super) fn zipmap_in(zm: &[u8], budget: &mut Budget) -> Result<Vec<Bytes>> {
    const WHAT: &str = "zipmap";
    if zm.len() < 2 || zm[zm.len() - 1] != 0xff {
        return Err(RdbError::Corrupt(WHAT));
    }
    let corrupt = |_| RdbError::Corrupt(WHAT);
    let mut r = Reader::new(&zm[1..zm.len() - 1]);
    // A length: one byte below 254, or 254 then 4 bytes (little endian).
    let len = |r: &mut Reader| -> Result<u64> {
        match r.read_u8().map_err(corrupt)? {
            254 => Ok(u32::from_le_bytes(r.read_array().map_err(corrupt)?) as u64),
            255 => Err(RdbError::Corrupt(WHAT)),
            n => Ok(n as u64),
        }
    };
    let mut out = Vec::new();
    let mut count = 0usize;
    while !r.is_at_end() {
        let n = len(&mut r)?;
        let field = Bytes::copy_from_slice(r.read_exact(n).map_err(corrupt)?);
        let n = len(&mut r)?;
        let free = r.read_u8().map_err(corrupt)? as u64;
        let value = Bytes::copy_from_slice(r.read_exact(n).map_err(corrupt)?);
        r.read_exact(free).map_err(corrupt)?;
        budget.element(field.len())?;
        budget.element(value.len())?;
        out.push(field);
        out.push(value);
        count += 1;
    }
    if count == 0 || (zm[0] != 254 && zm[0] as usize != count) {
        return Err(RdbError::Corrupt(WHAT));
    }
    Ok(out)
}
