//! The streaming RDB reader.
//!
//! Each key's record is read in two steps: its serialized bytes are copied out of
//! the stream by a walk that knows only the framing of each type (lengths and
//! strings, nothing allocated before the bytes arrive), then the engine's codec
//! decodes that buffer under a budget. Types redsnap does not hold (streams, module
//! values, module AUX data) are walked without copying when they are skipped.

use super::crc64::Crc64;
use super::{opcode, show_key, type_name, RdbFileError, MAX_READ_VERSION};
use bytes::Bytes;
use redsnap_engine::rdb::{self as codec, Budget, RdbError};
use redsnap_engine::Value;
use std::io::Read;

/// How to read.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Skip (and count) keys of types redsnap does not hold (streams, module
    /// values) and module AUX data, instead of failing on them.
    pub skip_unsupported: bool,
    /// The most one value may take, serialized and again decoded (bytes, with the
    /// engine's per-element estimate). Default 2 GiB: RESTORE's budget
    /// (4 x `proto-max-bulk-len`).
    pub value_limit: u64,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            skip_unsupported: false,
            value_limit: 4 * 512 * 1024 * 1024,
        }
    }
}

/// Why a key was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// A type redsnap does not hold (with `skip_unsupported`); the type's name.
    Unsupported(&'static str),
    /// An empty collection: Redis skips these too (they come from an old bug,
    /// redis#8453), with a warning.
    Empty,
}

/// One key's record.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub db: u64,
    pub key: Bytes,
    pub value: Value,
    /// Absolute deadline, ms since the epoch (a negative one in the file is 0).
    pub expire_ms: Option<u64>,
    /// IDLE opcode: seconds since last access (LRU).
    pub idle: Option<u64>,
    /// FREQ opcode: the LFU counter.
    pub freq: Option<u8>,
    /// Byte offset of the record (its first opcode or type byte).
    pub offset: u64,
    /// The RDB object type it was stored as.
    pub rdb_type: u8,
    /// Bytes of the serialized value in the file.
    pub size: u64,
}

/// What the reader returns, in file order.
#[derive(Debug, Clone)]
pub enum Item {
    Aux {
        key: Bytes,
        value: Bytes,
    },
    SelectDb(u64),
    ResizeDb {
        db_size: u64,
        expires_size: u64,
    },
    /// A function library (FUNCTION2): its Lua code, for `FUNCTION LOAD`.
    Function {
        code: Bytes,
    },
    Key(KeyRecord),
    Skipped {
        db: u64,
        key: Bytes,
        offset: u64,
        reason: SkipReason,
    },
}

/// Totals of a read, complete once [`RdbReader::next_item`] returned `None`.
#[derive(Debug, Clone, Default)]
pub struct ReadSummary {
    pub version: u32,
    pub keys: u64,
    pub skipped_unsupported: u64,
    pub skipped_empty: u64,
    pub module_aux_skipped: u64,
    pub functions: u64,
    /// The checksum in the trailer: `Some(0)` means the writer had checksums off
    /// (nothing to check), `None` a version without a trailer (before 5).
    pub stored_checksum: Option<u64>,
    /// Whether the trailer's checksum was compared with the file and matched.
    pub checksum_verified: bool,
    /// Bytes read, trailer included.
    pub bytes: u64,
}

/// An internal error before it is given its place.
enum Fail {
    Eof,
    Io(std::io::Error),
    Corrupt(String),
    TooLarge,
}

impl From<RdbError> for Fail {
    fn from(e: RdbError) -> Fail {
        match e {
            RdbError::Eof => Fail::Eof,
            RdbError::TooLarge => Fail::TooLarge,
            e => Fail::Corrupt(e.to_string()),
        }
    }
}

const BUF: usize = 64 * 1024;
/// A value buffer larger than this is released after use instead of kept.
const KEEP_CAPACITY: usize = 16 << 20;

/// The byte source: buffered, counting, and checksumming what was consumed.
struct Src<R> {
    r: R,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    /// `buf[hashed..pos]` is consumed but not yet in `crc`.
    hashed: usize,
    /// Offset in the stream of `buf[0]`.
    base: u64,
    crc: Crc64,
}

impl<R: Read> Src<R> {
    fn new(r: R) -> Src<R> {
        Src {
            r,
            buf: vec![0u8; BUF].into_boxed_slice(),
            pos: 0,
            end: 0,
            hashed: 0,
            base: 0,
            crc: Crc64::new(),
        }
    }

    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Refills an exhausted buffer; false at the end of the stream.
    fn refill(&mut self) -> Result<bool, Fail> {
        debug_assert_eq!(self.pos, self.end);
        self.crc.update(&self.buf[self.hashed..self.end]);
        self.base += self.end as u64;
        self.pos = 0;
        self.end = 0;
        self.hashed = 0;
        loop {
            match self.r.read(&mut self.buf) {
                Ok(n) => {
                    self.end = n;
                    return Ok(n > 0);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Fail::Io(e)),
            }
        }
    }

    /// The CRC-64 of everything consumed so far.
    fn crc_now(&self) -> u64 {
        let mut c = self.crc.clone();
        c.update(&self.buf[self.hashed..self.pos]);
        c.value()
    }

    fn byte(&mut self) -> Result<u8, Fail> {
        if self.pos == self.end && !self.refill()? {
            return Err(Fail::Eof);
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        Ok(b)
    }

    /// Consumes `n` bytes, appending them to `out` (or dropping them), growing `out`
    /// only as bytes arrive and never past `limit` bytes in all.
    fn take(&mut self, mut n: u64, mut out: Option<&mut Vec<u8>>, limit: u64) -> Result<(), Fail> {
        while n > 0 {
            if self.pos == self.end && !self.refill()? {
                return Err(Fail::Eof);
            }
            let k = ((self.end - self.pos) as u64).min(n) as usize;
            if let Some(o) = out.as_deref_mut() {
                // Checked against the bytes that arrived, not the declared length: a
                // damaged length is reported where the data ends.
                if (o.len() + k) as u64 > limit {
                    return Err(Fail::TooLarge);
                }
                o.extend_from_slice(&self.buf[self.pos..self.pos + k]);
            }
            self.pos += k;
            n -= k as u64;
        }
        Ok(())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Fail> {
        let mut a = [0u8; N];
        for b in a.iter_mut() {
            *b = self.byte()?;
        }
        Ok(a)
    }

    /// A plain RDB length (a special encoding is an error).
    fn len(&mut self) -> Result<u64, Fail> {
        let mut w = Walk {
            src: self,
            out: None,
            limit: u64::MAX,
        };
        w.len()
    }
}

/// A walk over one serialized value: copies its bytes into `out` (or skips them).
struct Walk<'a, R> {
    src: &'a mut Src<R>,
    out: Option<&'a mut Vec<u8>>,
    limit: u64,
}

impl<R: Read> Walk<'_, R> {
    fn byte(&mut self) -> Result<u8, Fail> {
        let b = self.src.byte()?;
        if let Some(o) = self.out.as_deref_mut() {
            if o.len() as u64 >= self.limit {
                return Err(Fail::TooLarge);
            }
            o.push(b);
        }
        Ok(b)
    }

    fn bytes(&mut self, n: u64) -> Result<(), Fail> {
        self.src.take(n, self.out.as_deref_mut(), self.limit)
    }

    fn len_or_enc(&mut self) -> Result<(u64, bool), Fail> {
        let b = self.byte()?;
        Ok(match b >> 6 {
            0 => ((b & 0x3f) as u64, false),
            1 => ((((b & 0x3f) as u64) << 8) | self.byte()? as u64, false),
            2 => match b {
                0x80 => {
                    let mut v = 0u64;
                    for _ in 0..4 {
                        v = (v << 8) | self.byte()? as u64;
                    }
                    (v, false)
                }
                0x81 => {
                    let mut v = 0u64;
                    for _ in 0..8 {
                        v = (v << 8) | self.byte()? as u64;
                    }
                    (v, false)
                }
                _ => return Err(Fail::Corrupt(format!("invalid length encoding {b:#04x}"))),
            },
            _ => ((b & 0x3f) as u64, true),
        })
    }

    fn len(&mut self) -> Result<u64, Fail> {
        match self.len_or_enc()? {
            (n, false) => Ok(n),
            (e, true) => Err(Fail::Corrupt(format!(
                "a length was expected, found string encoding {e}"
            ))),
        }
    }

    /// A string in any encoding (raw, integer, LZF).
    fn string(&mut self) -> Result<(), Fail> {
        match self.len_or_enc()? {
            (n, false) => self.bytes(n),
            (0, true) => self.bytes(1),
            (1, true) => self.bytes(2),
            (2, true) => self.bytes(4),
            (3, true) => {
                let clen = self.len()?;
                self.len()?;
                self.bytes(clen)
            }
            (e, true) => Err(Fail::Corrupt(format!("unknown string encoding {e}"))),
        }
    }

    /// An old-style ASCII double: a length byte (253-255 for NaN/+inf/-inf).
    fn old_double(&mut self) -> Result<(), Fail> {
        match self.byte()? {
            253..=255 => Ok(()),
            n => self.bytes(n as u64),
        }
    }

    /// Walks a value of object type `ty`. `Ok(false)` for an unknown type.
    fn value(&mut self, ty: u8) -> Result<bool, Fail> {
        use codec::types::*;
        match ty {
            STRING => self.string()?,
            LIST | SET => {
                for _ in 0..self.len()? {
                    self.string()?;
                }
            }
            ZSET => {
                for _ in 0..self.len()? {
                    self.string()?;
                    self.old_double()?;
                }
            }
            ZSET_2 => {
                for _ in 0..self.len()? {
                    self.string()?;
                    self.bytes(8)?;
                }
            }
            HASH => {
                for _ in 0..self.len()? {
                    self.string()?;
                    self.string()?;
                }
            }
            HASH_ZIPMAP
            | LIST_ZIPLIST
            | SET_INTSET
            | ZSET_ZIPLIST
            | HASH_ZIPLIST
            | HASH_LISTPACK
            | ZSET_LISTPACK
            | codec::SET_LISTPACK => self.string()?,
            LIST_QUICKLIST => {
                for _ in 0..self.len()? {
                    self.string()?;
                }
            }
            LIST_QUICKLIST_2 => {
                for _ in 0..self.len()? {
                    self.len()?;
                    self.string()?;
                }
            }
            STREAM_LISTPACKS | STREAM_LISTPACKS_2 | STREAM_LISTPACKS_3 => self.stream(ty)?,
            MODULE_2 => {
                self.len()?;
                self.module_value()?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// A stream (rdb.c's `rdbLoadObject`, stream branch, for types 15, 19 and 21).
    fn stream(&mut self, ty: u8) -> Result<(), Fail> {
        use codec::types::STREAM_LISTPACKS_2;
        for _ in 0..self.len()? {
            self.string()?; // master ID (the rax key)
            self.string()?; // listpack
        }
        // length, last ID
        for _ in 0..3 {
            self.len()?;
        }
        if ty >= STREAM_LISTPACKS_2 {
            // first ID, max deleted ID, entries added
            for _ in 0..5 {
                self.len()?;
            }
        }
        for _ in 0..self.len()? {
            self.string()?; // group name
            self.len()?;
            self.len()?; // last ID
            if ty >= STREAM_LISTPACKS_2 {
                self.len()?; // entries read
            }
            for _ in 0..self.len()? {
                self.bytes(16 + 8)?; // ID, delivery time
                self.len()?; // delivery count
            }
            for _ in 0..self.len()? {
                self.string()?; // consumer name
                self.bytes(8)?; // seen time
                if ty >= STREAM_LISTPACKS_3 {
                    self.bytes(8)?; // active time
                }
                for _ in 0..self.len()? {
                    self.bytes(16)?;
                }
            }
        }
        Ok(())
    }

    /// A module value's annotated fields, up to its EOF opcode.
    fn module_value(&mut self) -> Result<(), Fail> {
        loop {
            match self.len()? {
                0 => return Ok(()),
                1 | 2 => {
                    self.len()?;
                }
                3 => self.bytes(4)?,
                4 => self.bytes(8)?,
                5 => self.string()?,
                op => return Err(Fail::Corrupt(format!("unknown module opcode {op}"))),
            }
        }
    }
}

/// RDB_TYPE_STREAM_LISTPACKS_3 (Redis 7.2, consumers with an active time); the
/// engine's type table stops at Redis 7.0's types.
const STREAM_LISTPACKS_3: u8 = 21;

/// A module type's name from its 64-bit id (Redis's `moduleTypeNameByID`).
fn module_name(id: u64) -> String {
    const CSET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut id = id >> 10;
    let mut name = [0u8; 9];
    for j in 0..9 {
        name[8 - j] = CSET[(id & 63) as usize];
        id >>= 6;
    }
    String::from_utf8_lossy(&name).into_owned()
}

/// Reads an RDB file item by item. See the module docs.
pub struct RdbReader<R> {
    src: Src<R>,
    opts: ReadOptions,
    version: u32,
    db: u64,
    raw: Vec<u8>,
    done: bool,
    summary: ReadSummary,
}

impl<R: Read> RdbReader<R> {
    /// Reads the header ("REDIS" and a 4-digit version) and checks the version.
    pub fn new(r: R, opts: ReadOptions) -> Result<RdbReader<R>, RdbFileError> {
        let mut src = Src::new(r);
        let mut head = Vec::with_capacity(9);
        match src.take(9, Some(&mut head), 9) {
            Ok(()) => {}
            Err(Fail::Io(source)) => return Err(RdbFileError::Io { offset: 0, source }),
            Err(_) => {
                return Err(RdbFileError::BadSignature {
                    found: String::from_utf8_lossy(&head).into_owned(),
                })
            }
        }
        let digits = &head[5..9];
        if &head[..5] != b"REDIS" || !digits.iter().all(u8::is_ascii_digit) {
            return Err(RdbFileError::BadSignature {
                found: String::from_utf8_lossy(&head).into_owned(),
            });
        }
        let version = digits
            .iter()
            .fold(0u32, |v, d| v * 10 + u32::from(d - b'0'));
        if !(1..=MAX_READ_VERSION).contains(&version) {
            return Err(RdbFileError::UnsupportedVersion { version });
        }
        Ok(RdbReader {
            src,
            opts,
            version,
            db: 0,
            raw: Vec::new(),
            done: false,
            summary: ReadSummary {
                version,
                ..Default::default()
            },
        })
    }

    /// The file's RDB version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Bytes consumed so far (for progress).
    pub fn offset(&self) -> u64 {
        self.src.offset()
    }

    /// The totals so far (complete after the last item).
    pub fn summary(&self) -> &ReadSummary {
        &self.summary
    }

    fn place(&self, f: Fail, offset: u64, key: Option<&[u8]>, db: bool) -> RdbFileError {
        let db = db.then_some(self.db);
        let key = key.map(show_key);
        match f {
            Fail::Eof => RdbFileError::Truncated {
                offset: self.src.offset(),
                db,
                key,
            },
            Fail::Io(source) => RdbFileError::Io {
                offset: self.src.offset(),
                source,
            },
            Fail::Corrupt(detail) => RdbFileError::Corrupt {
                offset,
                db,
                key,
                detail,
            },
            Fail::TooLarge => RdbFileError::TooLarge {
                offset,
                db,
                key,
                limit: self.opts.value_limit,
            },
        }
    }

    /// A string outside a value (AUX fields, keys, function code), decoded.
    fn read_string(&mut self) -> Result<Bytes, Fail> {
        self.raw.clear();
        let limit = self.opts.value_limit;
        Walk {
            src: &mut self.src,
            out: Some(&mut self.raw),
            limit,
        }
        .string()?;
        let mut r = codec::Reader::with_budget(&self.raw, Budget::new(limit));
        Ok(r.read_string()?)
    }

    /// The next item, or `None` after the EOF opcode (the checksum then verified).
    pub fn next_item(&mut self) -> Result<Option<Item>, RdbFileError> {
        let mut expire: Option<i64> = None;
        let mut idle = None;
        let mut freq = None;
        let mut record_start: Option<u64> = None;
        loop {
            if self.done {
                return Ok(None);
            }
            let offset = self.src.offset();
            let start = *record_start.get_or_insert(offset);
            let ty = self
                .src
                .byte()
                .map_err(|f| self.place(f, offset, None, false))?;
            match ty {
                opcode::EXPIRETIME => {
                    let a = self.src.array::<4>();
                    let t = a.map_err(|f| self.place(f, offset, None, true))?;
                    expire = Some(i64::from(i32::from_le_bytes(t)).saturating_mul(1000));
                }
                opcode::EXPIRETIME_MS => {
                    let a = self.src.array::<8>();
                    expire = Some(i64::from_le_bytes(
                        a.map_err(|f| self.place(f, offset, None, true))?,
                    ));
                }
                opcode::FREQ => {
                    let b = self.src.byte();
                    freq = Some(b.map_err(|f| self.place(f, offset, None, true))?);
                }
                opcode::IDLE => {
                    let n = self.src.len();
                    idle = Some(n.map_err(|f| self.place(f, offset, None, true))?);
                }
                opcode::EOF => {
                    self.finish(offset)?;
                    return Ok(None);
                }
                opcode::SELECTDB => {
                    let n = self.src.len();
                    self.db = n.map_err(|f| self.place(f, offset, None, false))?;
                    return Ok(Some(Item::SelectDb(self.db)));
                }
                opcode::RESIZEDB => {
                    let mut both =
                        || -> Result<(u64, u64), Fail> { Ok((self.src.len()?, self.src.len()?)) };
                    let (db_size, expires_size) =
                        both().map_err(|f| self.place(f, offset, None, true))?;
                    return Ok(Some(Item::ResizeDb {
                        db_size,
                        expires_size,
                    }));
                }
                opcode::AUX => {
                    let mut both = || -> Result<(Bytes, Bytes), Fail> {
                        Ok((self.read_string()?, self.read_string()?))
                    };
                    let (key, value) = both().map_err(|f| self.place(f, offset, None, false))?;
                    return Ok(Some(Item::Aux { key, value }));
                }
                opcode::MODULE_AUX => self.module_aux(offset)?,
                opcode::FUNCTION_PRE_GA => return Err(RdbFileError::UnsupportedData {
                    offset,
                    what: "a function library".into(),
                    detail:
                        "pre-release function format (Redis 7.0 release candidates) not supported"
                            .into(),
                }),
                opcode::FUNCTION2 => {
                    let code = self.read_string();
                    let code = code.map_err(|f| self.place(f, offset, None, false))?;
                    self.summary.functions += 1;
                    return Ok(Some(Item::Function { code }));
                }
                ty => {
                    let expire_ms = expire.map(|t| t.max(0) as u64);
                    return self.key(ty, start, expire_ms, idle, freq).map(Some);
                }
            }
        }
    }

    /// The EOF opcode at `offset` was read: the trailer (version 5 and later).
    fn finish(&mut self, offset: u64) -> Result<(), RdbFileError> {
        self.done = true;
        if self.version >= 5 {
            let computed = self.src.crc_now();
            let trailer = self.src.offset();
            let stored = self.src.array::<8>();
            let stored =
                u64::from_le_bytes(stored.map_err(|f| self.place(f, offset, None, false))?);
            self.summary.stored_checksum = Some(stored);
            if stored != 0 {
                if stored != computed {
                    return Err(RdbFileError::Checksum {
                        offset: trailer,
                        stored,
                        computed,
                    });
                }
                self.summary.checksum_verified = true;
            }
        }
        self.summary.bytes = self.src.offset();
        Ok(())
    }

    /// MODULE_AUX: skipped and counted with `skip_unsupported`, else an error.
    fn module_aux(&mut self, offset: u64) -> Result<(), RdbFileError> {
        let mut head = || -> Result<(u64, u64), Fail> {
            let id = self.src.len()?;
            let when_op = self.src.len()?;
            self.src.len()?;
            Ok((id, when_op))
        };
        let (id, when_op) = head().map_err(|f| self.place(f, offset, None, false))?;
        if when_op != 2 {
            return Err(RdbFileError::Corrupt {
                offset,
                db: None,
                key: None,
                detail: "module AUX data: bad when_opcode".into(),
            });
        }
        if !self.opts.skip_unsupported {
            return Err(RdbFileError::UnsupportedData {
                offset,
                what: "module AUX data".into(),
                detail: format!("module '{}' is not available in redsnap", module_name(id)),
            });
        }
        let walked = Walk {
            src: &mut self.src,
            out: None,
            limit: u64::MAX,
        }
        .module_value();
        walked.map_err(|f| self.place(f, offset, None, false))?;
        self.summary.module_aux_skipped += 1;
        Ok(())
    }

    fn key(
        &mut self,
        ty: u8,
        offset: u64,
        expire_ms: Option<u64>,
        idle: Option<u64>,
        freq: Option<u8>,
    ) -> Result<Item, RdbFileError> {
        use codec::types::*;
        let key = self
            .read_string()
            .map_err(|f| self.place(f, offset, None, true))?;
        // A module value starts with its type id: a RedisJSON document
        // (`ReJSON-RL`) is redsnap's JSON type, any other module's is unsupported.
        let module_id = if ty == MODULE_2 {
            Some(
                self.src
                    .len()
                    .map_err(|f| self.place(f, offset, Some(&key), true))?,
            )
        } else {
            None
        };
        let is_json =
            module_id.is_some_and(|id| id >> 10 == redsnap_engine::json::rejson_id_prefix());
        let unsupported = match ty {
            MODULE_2 => !is_json,
            MODULE => {
                return Err(RdbFileError::Unsupported {
                    offset,
                    db: self.db,
                    key: show_key(&key),
                    type_name: "module value in the pre-GA format (it cannot be skipped: its length is known only to its module)".into(),
                })
            }
            _ => false,
        };
        if unsupported && !self.opts.skip_unsupported {
            let name = if let Some(id) = module_id {
                format!("value of module '{}'", module_name(id))
            } else {
                type_name(ty).to_string()
            };
            return Err(RdbFileError::Unsupported {
                offset,
                db: self.db,
                key: show_key(&key),
                type_name: name,
            });
        }
        self.raw.clear();
        if let Some(id) = module_id.filter(|_| is_json) {
            codec::write_len(&mut self.raw, id);
        }
        let value_start = self.src.offset();
        let limit = self.opts.value_limit;
        let mut walk = Walk {
            src: &mut self.src,
            out: (!unsupported).then_some(&mut self.raw),
            limit,
        };
        // (The module id is read already.)
        let walked = if module_id.is_some() {
            walk.module_value().map(|()| true)
        } else {
            walk.value(ty)
        };
        match walked {
            Ok(true) => {}
            Ok(false) => {
                return Err(RdbFileError::Corrupt {
                    offset: value_start - 1,
                    db: Some(self.db),
                    key: Some(show_key(&key)),
                    detail: format!("unknown value type {ty}"),
                })
            }
            Err(f) => return Err(self.place(f, value_start, Some(&key), true)),
        }
        if unsupported {
            self.summary.skipped_unsupported += 1;
            return Ok(Item::Skipped {
                db: self.db,
                key,
                offset,
                reason: SkipReason::Unsupported(type_name(ty)),
            });
        }
        let size = self.raw.len() as u64;
        let decoded = {
            let mut r = codec::Reader::with_budget(&self.raw, Budget::new(limit));
            let v = if ty == codec::SET_LISTPACK {
                codec::read_set_listpack(&mut r)
            } else {
                codec::read_value(&mut r, ty)
            };
            v.and_then(|v| {
                if r.is_at_end() {
                    Ok(v)
                } else {
                    Err(RdbError::Trailing)
                }
            })
        };
        if self.raw.capacity() > KEEP_CAPACITY {
            self.raw = Vec::new();
        }
        match decoded {
            Ok(value) => {
                self.summary.keys += 1;
                Ok(Item::Key(KeyRecord {
                    db: self.db,
                    key,
                    value,
                    expire_ms,
                    idle,
                    freq,
                    offset,
                    rdb_type: ty,
                    size,
                }))
            }
            Err(RdbError::Empty(_)) => {
                self.summary.skipped_empty += 1;
                Ok(Item::Skipped {
                    db: self.db,
                    key,
                    offset,
                    reason: SkipReason::Empty,
                })
            }
            Err(e) => {
                let f = match e {
                    RdbError::TooLarge => Fail::TooLarge,
                    e => Fail::Corrupt(format!("{} value: {e}", type_name(ty))),
                };
                Err(self.place(f, value_start, Some(&key), true))
            }
        }
    }

    /// Reads to the end, calling `f` for every item; returns the summary.
    pub fn for_each(
        mut self,
        mut f: impl FnMut(&Item, u64) -> Result<(), RdbFileError>,
    ) -> Result<ReadSummary, RdbFileError> {
        while let Some(item) = self.next_item()? {
            f(&item, self.src.offset())?;
        }
        Ok(self.summary)
    }

    /// Reads the whole file (every value decoded, the checksum compared) and
    /// returns the summary: what `verify` and `restore` do before writing anything.
    pub fn verify(self) -> Result<ReadSummary, RdbFileError> {
        self.for_each(|_, _| Ok(()))
    }
}
