//! The RDB writer: version 10, plain encodings (string, list, set, hash, zset with
//! binary scores), which every Redis since 5.0 loads (and converts to its compact
//! encodings as it loads).

use super::crc64::Crc64;
use super::{opcode, WRITE_VERSION};
use redsnap_engine::rdb as codec;
use redsnap_engine::{Db, Value};
use std::io::{self, Write};

/// The version redsnap claims in `redis-ver` (the Redis it follows).
pub const REDIS_VER: &str = "7.0.15";

/// Flush the buffer to the writer past this many bytes.
const FLUSH_AT: usize = 256 * 1024;

/// AUX fields as Redis 7.0 writes them for a plain SAVE: `redis-ver`, `redis-bits`,
/// `ctime` (seconds), `used-mem` (bytes), `aof-base` (0: not an AOF base).
pub fn default_aux(used_mem: u64) -> Vec<(String, String)> {
    let ctime = redsnap_engine::now_ms() / 1000;
    vec![
        ("redis-ver".into(), REDIS_VER.into()),
        ("redis-bits".into(), (usize::BITS).to_string()),
        ("ctime".into(), ctime.to_string()),
        ("used-mem".into(), used_mem.to_string()),
        ("aof-base".into(), "0".into()),
    ]
}

/// What was written.
#[derive(Debug, Clone, Default)]
pub struct WriteStats {
    pub keys: u64,
    pub bytes: u64,
    pub checksum: u64,
}

/// Writes an RDB file: header and AUX fields at creation, then databases and keys,
/// then [`RdbWriter::finish`] writes the EOF opcode and the CRC-64 trailer.
pub struct RdbWriter<W: Write> {
    w: W,
    buf: Vec<u8>,
    crc: Crc64,
    stats: WriteStats,
    db: Option<u64>,
}

impl<W: Write> RdbWriter<W> {
    /// Writes the header (`REDIS0010`) and the AUX fields.
    pub fn new(w: W, aux: &[(String, String)]) -> io::Result<RdbWriter<W>> {
        let mut this = RdbWriter {
            w,
            buf: Vec::with_capacity(FLUSH_AT + 4096),
            crc: Crc64::new(),
            stats: WriteStats::default(),
            db: None,
        };
        this.buf
            .extend_from_slice(format!("REDIS{WRITE_VERSION:04}").as_bytes());
        for (k, v) in aux {
            this.buf.push(opcode::AUX);
            codec::write_string(&mut this.buf, k.as_bytes());
            codec::write_string(&mut this.buf, v.as_bytes());
        }
        Ok(this)
    }

    fn maybe_flush(&mut self) -> io::Result<()> {
        if self.buf.len() >= FLUSH_AT {
            self.flush_buf()?;
        }
        Ok(())
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        self.crc.update(&self.buf);
        self.w.write_all(&self.buf)?;
        self.stats.bytes += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// SELECTDB, then RESIZEDB when the sizes (keys, keys with a deadline) are known.
    pub fn select_db(&mut self, db: u64, sizes: Option<(u64, u64)>) -> io::Result<()> {
        self.buf.push(opcode::SELECTDB);
        codec::write_len(&mut self.buf, db);
        if let Some((keys, expires)) = sizes {
            self.buf.push(opcode::RESIZEDB);
            codec::write_len(&mut self.buf, keys);
            codec::write_len(&mut self.buf, expires);
        }
        self.db = Some(db);
        self.maybe_flush()
    }

    /// One key in database `db` (a SELECTDB is written first when `db` is not the
    /// current one), with its absolute deadline in ms.
    pub fn write_key(
        &mut self,
        db: u64,
        key: &[u8],
        value: &Value,
        expire_ms: Option<u64>,
    ) -> io::Result<()> {
        if self.db != Some(db) {
            self.select_db(db, None)?;
        }
        if let Some(t) = expire_ms {
            self.buf.push(opcode::EXPIRETIME_MS);
            self.buf.extend_from_slice(&t.to_le_bytes());
        }
        self.buf.push(codec::value_type(value));
        codec::write_string(&mut self.buf, key);
        codec::write_value(&mut self.buf, value);
        self.stats.keys += 1;
        self.maybe_flush()
    }

    /// One key whose value is RDB-encoded already: its object type and body as a
    /// DUMP payload holds them (see [`super::DumpPayload`]), copied as they are.
    /// The caller vouches that `rdb_type` and `body` are valid for the file's
    /// version; `redsnap backup` reads the whole file back before keeping it.
    pub fn write_encoded_key(
        &mut self,
        db: u64,
        key: &[u8],
        rdb_type: u8,
        body: &[u8],
        expire_ms: Option<u64>,
    ) -> io::Result<()> {
        if self.db != Some(db) {
            self.select_db(db, None)?;
        }
        if let Some(t) = expire_ms {
            self.buf.push(opcode::EXPIRETIME_MS);
            self.buf.extend_from_slice(&t.to_le_bytes());
        }
        self.buf.push(rdb_type);
        codec::write_string(&mut self.buf, key);
        if body.len() >= FLUSH_AT {
            // Large values go straight through instead of through the buffer.
            self.flush_buf()?;
            self.crc.update(body);
            self.w.write_all(body)?;
            self.stats.bytes += body.len() as u64;
        } else {
            self.buf.extend_from_slice(body);
        }
        self.stats.keys += 1;
        self.maybe_flush()
    }

    /// Bytes produced so far (written and buffered).
    pub fn bytes(&self) -> u64 {
        self.stats.bytes + self.buf.len() as u64
    }

    /// Keys written so far.
    pub fn keys(&self) -> u64 {
        self.stats.keys
    }

    /// A function library (FUNCTION2), its Lua code.
    pub fn write_function(&mut self, code: &[u8]) -> io::Result<()> {
        self.buf.push(opcode::FUNCTION2);
        codec::write_string(&mut self.buf, code);
        self.maybe_flush()
    }

    /// The EOF opcode and the CRC-64 trailer; flushes and returns the writer.
    pub fn finish(mut self) -> io::Result<(W, WriteStats)> {
        self.buf.push(opcode::EOF);
        self.flush_buf()?;
        let crc = self.crc.value();
        self.w.write_all(&crc.to_le_bytes())?;
        self.w.flush()?;
        self.stats.bytes += 8;
        self.stats.checksum = crc;
        Ok((self.w, self.stats))
    }
}

/// Writes keys given as `(db, key, value, deadline ms)`, in database order (a
/// SELECTDB, without RESIZEDB, opens each database), as one RDB file.
pub fn write_entries<'a, W: Write>(
    w: W,
    aux: &[(String, String)],
    entries: impl IntoIterator<Item = (u64, &'a [u8], &'a Value, Option<u64>)>,
) -> io::Result<(W, WriteStats)> {
    let mut wr = RdbWriter::new(w, aux)?;
    for (db, key, value, expire_ms) in entries {
        wr.write_key(db, key, value, expire_ms)?;
    }
    wr.finish()
}

/// Writes databases (a point-in-time clone: `Store::snapshot()`, O(1)) as one RDB
/// file: each non-empty database with SELECTDB and RESIZEDB, keys with their
/// deadlines (expired ones included, as Redis's SAVE does: the loader drops them).
pub fn write_dbs<W: Write>(
    w: W,
    dbs: &[Db],
    aux: &[(String, String)],
) -> io::Result<(W, WriteStats)> {
    let mut wr = RdbWriter::new(w, aux)?;
    for (i, db) in dbs.iter().enumerate() {
        if db.is_empty() {
            continue;
        }
        wr.select_db(i as u64, Some((db.len() as u64, db.volatile_len() as u64)))?;
        for (k, e) in db.iter() {
            wr.write_key(i as u64, k.as_bytes(), e.value(), e.expire_at())?;
        }
    }
    wr.finish()
}
