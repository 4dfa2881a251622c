//! Redis's `.rdb` files: the interchange format between redsnap and Redis.
//!
//! * [`RdbReader`] reads what Redis 7.0 and every older version write (RDB versions 1
//!   to 10), and version 11 (Redis 7.2's sets as listpacks): every non-module type
//!   and encoding, AUX fields, SELECTDB, RESIZEDB, EXPIRETIME(_MS), IDLE/FREQ and
//!   FUNCTION2 libraries, with the CRC-64 trailer checked. Values are decoded by the
//!   engine's codecs (`redsnap_engine::rdb`, which DUMP/RESTORE use).
//! * [`RdbWriter`] writes version 10 with the plain encodings every Redis since 5.0
//!   loads.
//!
//! # Streaming
//!
//! The reader reads from any [`std::io::Read`] (a file, a socket, a pipe) and holds
//! one value at a time: the serialized bytes of the current value, then the decoded
//! value, each bounded by [`ReadOptions::value_limit`]. Nothing is allocated from a
//! length read in the file before the bytes behind it were read: a string grows as
//! its bytes arrive, so a damaged length runs into the end of the file (or the
//! limit), not into an allocation failure. A file is verified by reading it whole
//! (the CRC-64 covers every byte up to the trailer) before anything is written from
//! it.

pub mod crc64;
mod dump;
mod load;
mod read;
mod write;

pub use dump::{function_dump_libraries, DumpPayload};
pub use load::{load_into, LoadRdbOptions, LoadRdbReport, RdbLoadError};
pub use read::{Item, KeyRecord, RdbReader, ReadOptions, ReadSummary, SkipReason};
pub use write::{default_aux, write_dbs, write_entries, RdbWriter, WriteStats};

/// The newest RDB version the reader accepts (Redis 7.2).
pub const MAX_READ_VERSION: u32 = 11;
/// The version the writer produces (Redis 7.0's).
pub const WRITE_VERSION: u32 = 10;

/// Opcodes between keys.
pub mod opcode {
    pub const FUNCTION2: u8 = 245;
    pub const FUNCTION_PRE_GA: u8 = 246;
    pub const MODULE_AUX: u8 = 247;
    pub const IDLE: u8 = 248;
    pub const FREQ: u8 = 249;
    pub const AUX: u8 = 250;
    pub const RESIZEDB: u8 = 251;
    pub const EXPIRETIME_MS: u8 = 252;
    pub const EXPIRETIME: u8 = 253;
    pub const SELECTDB: u8 = 254;
    pub const EOF: u8 = 255;
}

/// The name Redis gives an RDB object type (TYPE's answer for the type it loads as),
/// with the encoding in parentheses.
pub fn type_name(ty: u8) -> &'static str {
    match ty {
        0 => "string",
        1 => "list",
        2 => "set",
        3 => "zset",
        4 => "hash",
        5 => "zset (binary scores)",
        6 => "module (pre-GA format)",
        7 => "module",
        9 => "hash (zipmap)",
        10 => "list (ziplist)",
        11 => "set (intset)",
        12 => "zset (ziplist)",
        13 => "hash (ziplist)",
        14 => "list (quicklist)",
        15 => "stream",
        16 => "hash (listpack)",
        17 => "zset (listpack)",
        18 => "list (quicklist 2)",
        19 => "stream (v2)",
        20 => "set (listpack)",
        21 => "stream (v3)",
        _ => "unknown type",
    }
}

/// A key for messages: quoted, non-printable bytes escaped, long keys shortened.
pub fn show_key(key: &[u8]) -> String {
    const MAX: usize = 128;
    let mut s = String::from("\"");
    for &b in key.iter().take(MAX) {
        match b {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s.push('"');
    if key.len() > MAX {
        s.push_str(&format!("... ({} bytes)", key.len()));
    }
    s
}

fn at(db: &Option<u64>, key: &Option<String>) -> String {
    match (db, key) {
        (Some(db), Some(k)) => format!(" (db {db}, key {k})"),
        (None, Some(k)) => format!(" (key {k})"),
        (Some(db), None) => format!(" (db {db})"),
        (None, None) => String::new(),
    }
}

/// Why an RDB file could not be read. Every variant says where: the byte offset,
/// and the database and key when the damage is inside a key's record.
#[derive(Debug, thiserror::Error)]
pub enum RdbFileError {
    #[error("read error at byte offset {offset}: {source}")]
    Io {
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("not an RDB file: it starts with {found:?}, not \"REDIS\" and a 4-digit version")]
    BadSignature { found: String },
    #[error("RDB format version {version} is not supported: this redsnap reads versions 1 to {MAX_READ_VERSION} (Redis 7.2 and older)")]
    UnsupportedVersion { version: u32 },
    #[error("truncated file: the data ends at byte offset {offset}{}", at(.db, .key))]
    Truncated {
        offset: u64,
        db: Option<u64>,
        key: Option<String>,
    },
    #[error("corrupt data at byte offset {offset}{}: {detail}", at(.db, .key))]
    Corrupt {
        offset: u64,
        db: Option<u64>,
        key: Option<String>,
        detail: String,
    },
    #[error("wrong RDB checksum: the trailer at byte offset {offset} says {stored:016x}, the file's bytes give {computed:016x} (the file is damaged)")]
    Checksum {
        offset: u64,
        stored: u64,
        computed: u64,
    },
    #[error("key {key} in db {db} (byte offset {offset}) is a {type_name}, which redsnap does not hold (skip such keys with --skip-unsupported)")]
    Unsupported {
        offset: u64,
        db: u64,
        key: String,
        type_name: String,
    },
    #[error("{what} at byte offset {offset} is not supported: {detail} (skip it with --skip-unsupported)")]
    UnsupportedData {
        offset: u64,
        what: String,
        detail: String,
    },
    #[error("value at byte offset {offset}{} is larger than the limit of {limit} bytes per value", at(.db, .key))]
    TooLarge {
        offset: u64,
        db: Option<u64>,
        key: Option<String>,
        limit: u64,
    },
}

impl RdbFileError {
    /// The byte offset the error is about.
    pub fn offset(&self) -> Option<u64> {
        match self {
            RdbFileError::Io { offset, .. }
            | RdbFileError::Truncated { offset, .. }
            | RdbFileError::Corrupt { offset, .. }
            | RdbFileError::Checksum { offset, .. }
            | RdbFileError::Unsupported { offset, .. }
            | RdbFileError::UnsupportedData { offset, .. }
            | RdbFileError::TooLarge { offset, .. } => Some(*offset),
            RdbFileError::BadSignature { .. } | RdbFileError::UnsupportedVersion { .. } => Some(0),
        }
    }
}

#[cfg(test)]
mod tests;
