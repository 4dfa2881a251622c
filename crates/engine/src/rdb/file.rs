//! Whole RDB files (Redis's `rdbSaveRio` layout, version 10): what SYNC/PSYNC hand a
//! replica, and a reader for them.
//!
//! Layout: `REDIS0010`, auxiliary fields (`0xFA` name value), then per non-empty
//! database `0xFE` db number, `0xFB` key count and volatile count, and its entries
//! (`0xFC` deadline in ms, LE, when the key has one; the object type; the key; the
//! value as DUMP encodes it), then `0xFF` and the CRC64 of everything before it, LE.

use super::{crc64, read_value, write_len, write_string, write_value, Reader, Result};
use super::{value_type, RdbError, RDB_VERSION};
use crate::db::Db;
use crate::value::Value;
use bytes::Bytes;

const OP_FUNCTION2: u8 = 0xF5;
const OP_MODULE_AUX: u8 = 0xF7;
const OP_IDLE: u8 = 0xF8;
const OP_FREQ: u8 = 0xF9;
const OP_AUX: u8 = 0xFA;
const OP_RESIZEDB: u8 = 0xFB;
const OP_EXPIRETIME_MS: u8 = 0xFC;
const OP_EXPIRETIME: u8 = 0xFD;
const OP_SELECTDB: u8 = 0xFE;
const OP_EOF: u8 = 0xFF;

/// An RDB file holding every key of `dbs` (database numbers are their indexes),
/// keys whose deadline passed included, as Redis saves them.
pub fn write_file(dbs: &[Db], redis_version: &str, now_ms: u64) -> Vec<u8> {
    let mut out = format!("REDIS{RDB_VERSION:04}").into_bytes();
    for (name, value) in [
        ("redis-ver", redis_version.to_string()),
        ("redis-bits", "64".to_string()),
        ("ctime", (now_ms / 1000).to_string()),
        ("aof-base", "0".to_string()),
    ] {
        out.push(OP_AUX);
        write_string(&mut out, name.as_bytes());
        write_string(&mut out, value.as_bytes());
    }
    for (n, db) in dbs.iter().enumerate() {
        if db.is_empty() {
            continue;
        }
        out.push(OP_SELECTDB);
        write_len(&mut out, n as u64);
        out.push(OP_RESIZEDB);
        write_len(&mut out, db.len() as u64);
        write_len(&mut out, db.volatile_len() as u64);
        for (key, entry) in db.iter() {
            if let Some(at) = entry.expire_at() {
                out.push(OP_EXPIRETIME_MS);
                out.extend_from_slice(&at.to_le_bytes());
            }
            out.push(value_type(entry.value()));
            write_string(&mut out, key);
            write_value(&mut out, entry.value());
        }
    }
    out.push(OP_EOF);
    let crc = crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// One key of an RDB file.
#[derive(Debug, Clone, PartialEq)]
pub struct FileEntry {
    pub db: usize,
    pub key: Bytes,
    pub value: Value,
    /// Absolute deadline in ms since the epoch.
    pub expire_at: Option<u64>,
}

/// Reads an RDB file of version 1 to [`RDB_VERSION`] (the types [`read_value`]
/// knows; module values, streams and functions are refused). The checksum is
/// verified unless the file stores zero (written with `rdbchecksum no`).
pub fn read_file(buf: &[u8]) -> Result<Vec<FileEntry>> {
    if buf.len() < 9 || &buf[..5] != b"REDIS" {
        return Err(RdbError::Corrupt("RDB header"));
    }
    let version: u16 = std::str::from_utf8(&buf[5..9])
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or(RdbError::Corrupt("RDB header"))?;
    if version == 0 || version > RDB_VERSION {
        return Err(RdbError::Corrupt("RDB version"));
    }
    let mut r = Reader::new(&buf[9..]);
    let (mut db, mut expire_at) = (0usize, None);
    let mut out = Vec::new();
    loop {
        let op = r.read_u8()?;
        match op {
            OP_EOF => break,
            OP_AUX => {
                r.read_string()?;
                r.read_string()?;
            }
            OP_SELECTDB => db = usize::try_from(r.read_len()?).map_err(|_| RdbError::BadLength)?,
            OP_RESIZEDB => {
                r.read_len()?;
                r.read_len()?;
            }
            OP_EXPIRETIME_MS => {
                let b = r.read_exact(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                expire_at = Some(u64::from_le_bytes(a));
            }
            OP_EXPIRETIME => {
                let b = r.read_exact(4)?;
                let mut a = [0u8; 4];
                a.copy_from_slice(b);
                expire_at = Some(u64::from(u32::from_le_bytes(a)) * 1000);
            }
            OP_IDLE => {
                r.read_len()?;
            }
            OP_FREQ => {
                r.read_u8()?;
            }
            OP_MODULE_AUX | OP_FUNCTION2 => return Err(RdbError::UnsupportedType(op)),
            ty => {
                let key = r.read_string()?;
                let value = read_value(&mut r, ty)?;
                out.push(FileEntry {
                    db,
                    key,
                    value,
                    expire_at: expire_at.take(),
                });
            }
        }
    }
    if version >= 5 {
        let end = 9 + r.position();
        let stored = buf.get(end..end + 8).ok_or(RdbError::Eof)?;
        if stored != [0u8; 8] && stored != crc64(&buf[..end]).to_le_bytes() {
            return Err(RdbError::Corrupt("RDB checksum"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::ZSet;
    use std::collections::VecDeque;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn round_trip_every_type_with_deadlines() {
        let mut dbs = vec![Db::new(), Db::new(), Db::new()];
        dbs[0].insert(b("s"), Value::Str(b("v")), None);
        dbs[0].insert(b("n"), Value::Str(b("12345")), Some(4_000_000_000_000));
        dbs[2].insert(
            b("l"),
            Value::List(VecDeque::from(vec![b("a"), b("b")])),
            None,
        );
        dbs[2].insert(
            b("h"),
            Value::Hash(Box::new([(b("f"), b("x"))].into_iter().collect())),
            None,
        );
        dbs[2].insert(
            b("st"),
            Value::Set(Box::new([b("1"), b("m")].into_iter().collect())),
            Some(5),
        );
        dbs[2].insert(
            b("z"),
            Value::ZSet(Box::new(ZSet::from_pairs([(b("a"), 1.5), (b("b"), -2.0)]))),
            None,
        );
        let file = write_file(&dbs, "7.0.15", 1_700_000_000_000);
        assert_eq!(&file[..9], b"REDIS0010");
        let mut got = read_file(&file).expect("read back");
        got.sort_by(|x, y| (x.db, &x.key).cmp(&(y.db, &y.key)));
        let mut want: Vec<FileEntry> = Vec::new();
        for (n, db) in dbs.iter().enumerate() {
            for (k, e) in db.iter() {
                want.push(FileEntry {
                    db: n,
                    key: Bytes::copy_from_slice(k),
                    value: e.value().clone(),
                    expire_at: e.expire_at(),
                });
            }
        }
        want.sort_by(|x, y| (x.db, &x.key).cmp(&(y.db, &y.key)));
        assert_eq!(got, want);
        // A flipped byte is caught by the checksum.
        let mut bad = file.clone();
        let i = bad.len() - 12;
        bad[i] ^= 1;
        assert!(read_file(&bad).is_err());
        // Truncation never panics.
        for n in 0..file.len() {
            let _ = read_file(&file[..n]);
        }
    }

    #[test]
    fn empty_dataset() {
        let file = write_file(&[Db::new()], "7.0.15", 0);
        assert_eq!(read_file(&file), Ok(vec![]));
    }
}
