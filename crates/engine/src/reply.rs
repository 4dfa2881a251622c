//! Typed replies. The engine answers in these; the server encodes them as RESP2 or RESP3.

use bytes::Bytes;

/// A reply to a command, independent of the protocol version.
///
/// RESP2 and RESP3 differ in how some of these go on the wire: `Nil` is `$-1` in RESP2,
/// `NilArray` is `*-1`, both are `_` in RESP3; `Map` is a flat array in RESP2; `Double`
/// is a bulk string in RESP2; `Bool` is an integer in RESP2.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A simple string (`+OK`).
    Simple(Bytes),
    /// An error; the text includes its code (`ERR ...`, `WRONGTYPE ...`).
    Error(Bytes),
    Int(i64),
    Bulk(Bytes),
    /// Null bulk string.
    Nil,
    /// Null array.
    NilArray,
    Array(Vec<Reply>),
    Map(Vec<(Reply, Reply)>),
    Set(Vec<Reply>),
    Double(f64),
    /// A double printed as Redis's `addReplyHumanLongDouble` (`%.17Lf`, trailing
    /// zeros removed): a bulk string under RESP2, a RESP3 double (geo coordinates).
    HumanDouble(f64),
    Bool(bool),
    /// Verbatim string: format (3 bytes, e.g. `txt`) and text.
    Verbatim(&'static str, Bytes),
    /// Out-of-band push (pub/sub messages under RESP3; an array under RESP2).
    Push(Vec<Reply>),
    /// A big number (RESP3 `(`; a bulk string under RESP2): its decimal digits.
    BigNumber(Bytes),
    /// RESP3 attributes (`|`) followed by the reply they describe; under RESP2 only the
    /// reply is sent, as Redis's `addReplyAttributeLen` does nothing there.
    Attribute(Vec<(Reply, Reply)>, Box<Reply>),
}

impl Reply {
    pub const fn ok() -> Reply {
        Reply::Simple(Bytes::from_static(b"OK"))
    }
    pub fn simple(s: &'static str) -> Reply {
        Reply::Simple(Bytes::from_static(s.as_bytes()))
    }
    /// An error from a static text that already carries its code.
    pub fn err(s: &'static str) -> Reply {
        Reply::Error(Bytes::from_static(s.as_bytes()))
    }
    /// An error from a formatted text that already carries its code.
    pub fn error(s: impl Into<String>) -> Reply {
        let mut s: String = s.into();
        // Redis never sends newlines inside an error line.
        if s.contains(['\r', '\n']) {
            s = s.replace(['\r', '\n'], " ");
        }
        Reply::Error(Bytes::from(s))
    }
    pub fn bulk(b: impl Into<Bytes>) -> Reply {
        Reply::Bulk(b.into())
    }
    pub fn bulk_str(s: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }
    pub fn opt_bulk(b: Option<Bytes>) -> Reply {
        match b {
            Some(b) => Reply::Bulk(b),
            None => Reply::Nil,
        }
    }
    pub fn bulks<I: IntoIterator<Item = Bytes>>(it: I) -> Reply {
        Reply::Array(it.into_iter().map(Reply::Bulk).collect())
    }
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
    pub fn wrongtype() -> Reply {
        Reply::err(WRONGTYPE)
    }
}

pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const ERR_NOT_INT: &str = "ERR value is not an integer or out of range";
pub const ERR_NOT_FLOAT: &str = "ERR value is not a valid float";
pub const ERR_SYNTAX: &str = "ERR syntax error";
pub const ERR_NO_KEY: &str = "ERR no such key";
pub const ERR_OVERFLOW: &str = "ERR increment or decrement would overflow";
pub const ERR_INDEX: &str = "ERR index out of range";
pub const ERR_DB_INDEX: &str = "ERR DB index is out of range";
pub const ERR_EXPIRE: &str = "ERR invalid expire time in '%s' command";
pub const ERR_STRING_TOO_LONG: &str =
    "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
pub const ERR_NOT_POSITIVE: &str = "ERR value is out of range, must be positive";

/// The arity error for a command (`name` is the full lowercase name, e.g. `config|get`).
pub fn wrong_arity(name: &str) -> Reply {
    Reply::error(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}
