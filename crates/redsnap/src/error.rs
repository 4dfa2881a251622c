//! Error types.

use std::time::Duration;

/// Why stored bytes could not be turned back into a value.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the 6-byte envelope header.
    #[error("value too short for a redsnap envelope: {len} bytes (need at least 6)")]
    TooShort {
        /// Length of the value.
        len: usize,
    },
    /// The first four bytes are not `RSNP`.
    #[error("not a redsnap envelope: magic bytes {found:02x?}, expected \"RSNP\"")]
    BadMagic {
        /// The first four bytes found.
        found: [u8; 4],
    },
    /// The format version byte is not one this library reads.
    #[error("unsupported redsnap envelope version {0} (this library reads version 1)")]
    UnsupportedVersion(u8),
    /// The codec byte is unknown.
    #[error("unknown redsnap codec id {0:#04x}")]
    UnknownCodec(u8),
    /// The LZ4 frame is corrupt or truncated.
    #[error("LZ4 frame decompression failed: {0}")]
    Decompress(String),
    /// The MessagePack payload does not match the expected type or is truncated.
    #[error("MessagePack payload invalid: {0}")]
    Msgpack(String),
    /// The JSON payload does not match the expected type or is truncated.
    #[error("JSON payload invalid: {0}")]
    Json(String),
}

/// Errors returned by this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad configuration (URL, environment variable, TLS files...).
    #[error("invalid redsnap configuration: {0}")]
    Config(String),
    /// Could not connect to, or lost the connection to, the server.
    #[error("cannot reach Redis at {target}: {message}")]
    Connection {
        /// Where we tried to connect (password redacted).
        target: String,
        /// What went wrong.
        message: String,
    },
    /// The server refused our credentials.
    #[error("authentication to Redis at {target} failed: {message}")]
    Auth {
        /// Where we tried to connect (password redacted).
        target: String,
        /// The server's answer.
        message: String,
    },
    /// An operation did not finish in time.
    #[error("Redis operation timed out after {0:?}")]
    Timeout(Duration),
    /// Any other error reported by the Redis client or server.
    #[error("Redis error: {0}")]
    Redis(#[from] redis::RedisError),
    /// A stored value could not be decoded.
    #[error("cannot decode value of key {key}: {source}")]
    Decode {
        /// The key that held the bad value.
        key: String,
        /// What was wrong with it.
        #[source]
        source: DecodeError,
    },
    /// A value could not be encoded.
    #[error("cannot encode value: {0}")]
    Encode(String),
    /// A stored JSON document could not be parsed.
    #[error("malformed JSON in key {key}: {source}")]
    MalformedJson {
        /// The key.
        key: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A key component is not allowed (empty, or contains a separator).
    #[error("invalid key component {0:?}")]
    InvalidKey(String),
    /// The background task is gone.
    #[error("snapshotter stopped: {0}")]
    Stopped(String),
    /// The in-process backend could not open, persist or close its data (the data
    /// directory in use by another process, damaged, not writable...).
    #[error("in-process store: {0}")]
    InProcess(String),
}

impl Error {
    /// True for errors that mean the server is unreachable (connection or timeout).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Connection { .. } | Error::Timeout(_) => true,
            Error::Redis(e) => e.is_io_error() || e.is_timeout() || e.is_connection_dropped(),
            _ => false,
        }
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
