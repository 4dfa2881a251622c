//! RESP2/RESP3 wire protocol: an incremental request parser with Redis's limits and
//! error texts, and a reply encoder for both protocol versions.

use bytes::{Buf, Bytes, BytesMut};
use redsnap_engine::num::fmt_g17;
use redsnap_engine::Reply;

/// Limits applied while parsing requests.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest bulk string accepted (`proto-max-bulk-len`).
    pub max_bulk_len: u64,
    /// Largest number of arguments in one request.
    pub max_multibulk_len: u64,
    /// Largest inline request line.
    pub max_inline_len: usize,
    /// The client has not authenticated while a password is required: Redis 6.2's
    /// limits apply (at most 10 arguments and 16 KB per bulk, CVE-2021-32675).
    pub unauthenticated: bool,
}

/// Most arguments in one request before authentication (Redis: 10).
pub const UNAUTH_MAX_ARGS: i64 = 10;
/// Largest bulk before authentication (Redis: 16384 bytes).
pub const UNAUTH_MAX_BULK: i64 = 16384;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            max_multibulk_len: 1024 * 1024 * 1024,
            max_inline_len: 64 * 1024,
            unauthenticated: false,
        }
    }
}

/// A protocol error: the client gets `-ERR Protocol error: ...` and is disconnected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Protocol error: {0}")]
pub struct ProtocolError(pub String);

/// Incremental parser state (one per connection), like Redis's `processMultibulkBuffer`:
/// complete arguments are taken out of the buffer as they arrive, so a large request
/// arriving in pieces is never re-scanned.
#[derive(Debug, Default)]
pub struct Parser {
    args: Vec<Bytes>,
    /// Bytes held by the arguments parsed so far of the current request.
    args_bytes: usize,
    /// Arguments still expected in the current multibulk (0 = between requests).
    remaining: usize,
    /// Length of the bulk being read, once its header was parsed.
    bulk_len: Option<usize>,
    /// Scratch for [`whole_request`]: the arguments' spans in the request.
    spans: Vec<(usize, usize)>,
}

fn memchr_cr(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\r')
}

/// Parses a `*<n>` / `$<n>` header number the way Redis's `string2ll` does.
fn header_num(line: &[u8]) -> Option<i64> {
    redsnap_engine::num::parse_i64(line)
}

/// Most arguments [`whole_request`] takes (longer requests take the incremental path).
const WHOLE_MAX_ARGS: usize = 32;

/// A header number written the canonical way (`1`-`9` then up to 17 more digits, or
/// a lone `0`) starting at `from` and ended by `\r`: its value and the position of
/// the `\r`. Anything else (a sign, a leading zero, another byte, no `\r` yet) is
/// None, and the request takes the incremental parser, which gives Redis's errors;
/// for what it accepts, the value is the one `header_num` gives.
#[inline]
fn canonical_num(b: &[u8], from: usize) -> Option<(usize, usize)> {
    let first = *b.get(from)?;
    if first == b'0' {
        return (b.get(from + 1) == Some(&b'\r')).then_some((0, from + 1));
    }
    let mut v = first.wrapping_sub(b'0') as usize;
    if v > 9 {
        return None;
    }
    let mut i = from + 1;
    while i < from + 18 {
        let d = b.get(i)?.wrapping_sub(b'0') as usize;
        if d > 9 {
            return (b[i] == b'\r').then_some((v, i));
        }
        v = v * 10 + d;
        i += 1;
    }
    None
}

/// A request that is complete at the front of `buf` (`*<n>` then `n` bulks, all
/// within the limits), parsed by position and taken out with one split: the common
/// case of a pipelined request, without advancing the buffer once per header and
/// bulk. None when it is anything else (incomplete, malformed, over a limit, over
/// [`WHOLE_MAX_ARGS`] arguments, before authentication, a header number not
/// written canonically): `buf` is then untouched and the incremental parser
/// handles it, with its errors. `spans` is scratch space kept by the parser (no
/// allocation or zeroing per request).
#[inline]
fn whole_request(
    buf: &mut BytesMut,
    limits: &Limits,
    spans: &mut Vec<(usize, usize)>,
) -> Option<Vec<Bytes>> {
    if limits.unauthenticated {
        return None;
    }
    let b = &buf[..];
    let (n, cr) = canonical_num(b, 1)?;
    if n == 0 || n > WHOLE_MAX_ARGS || n as u64 > limits.max_multibulk_len {
        return None;
    }
    spans.clear();
    let mut pos = cr + 2;
    for _ in 0..n {
        if b.get(pos) != Some(&b'$') {
            return None;
        }
        let (len, cr) = canonical_num(b, pos + 1)?;
        if len as u64 > limits.max_bulk_len {
            return None;
        }
        let start = cr + 2;
        let end = start.checked_add(len)?;
        // The bulk and its CRLF (not checked, as the incremental path and Redis
        // skip it) must be there.
        if end.checked_add(2)? > b.len() {
            return None;
        }
        spans.push((start, end));
        pos = end + 2;
    }
    let mut chunk = buf.split_to(pos).freeze();
    let mut args = Vec::with_capacity(n);
    let (&(last_start, last_end), rest) = spans.split_last()?;
    for &(s, e) in rest {
        args.push(chunk.slice(s..e));
    }
    // The last argument is the chunk itself, cut down (one reference count less).
    chunk.truncate(last_end);
    chunk.advance(last_start);
    args.push(chunk);
    Some(args)
}

impl Parser {
    pub fn new() -> Parser {
        Parser::default()
    }

    /// True when part of a request has been read (used to tell "client vanished
    /// mid-command" from a clean close).
    pub fn in_progress(&self) -> bool {
        self.remaining > 0 || self.bulk_len.is_some()
    }

    /// Bytes held by the complete arguments of the request being read (counted
    /// against `client-query-buffer-limit` together with the unparsed buffer).
    pub fn pending_bytes(&self) -> usize {
        self.args_bytes
    }

    /// The length of the bulk being read and the bytes of it (with its CRLF) that
    /// `buf` still lacks, once its header was parsed.
    #[inline]
    pub fn bulk_missing(&self, buf: &BytesMut) -> Option<(usize, usize)> {
        let len = self.bulk_len?;
        Some((len, (len + 2).saturating_sub(buf.len())))
    }

    /// Parses the next complete request from `buf`. `Ok(None)` means more bytes are
    /// needed. Returns an empty argv for an empty inline line (which callers skip).
    pub fn next(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
    ) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        if self.remaining == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            if buf[0] != b'*' {
                return self.inline(buf, limits);
            }
            if let Some(args) = whole_request(buf, limits, &mut self.spans) {
                return Ok(Some(args));
            }
            let Some(cr) = memchr_cr(buf) else {
                if buf.len() > limits.max_inline_len {
                    return Err(ProtocolError("too big mbulk count string".into()));
                }
                return Ok(None);
            };
            if cr + 1 >= buf.len() {
                return Ok(None);
            }
            let n = header_num(&buf[1..cr]);
            let n = match n {
                Some(n)
                    if n <= i32::MAX as i64
                        && (n <= 0 || (n as u64) <= limits.max_multibulk_len) =>
                {
                    n
                }
                _ => return Err(ProtocolError("invalid multibulk length".into())),
            };
            if n > UNAUTH_MAX_ARGS && limits.unauthenticated {
                return Err(ProtocolError("unauthenticated multibulk length".into()));
            }
            buf.advance(cr + 2);
            if n <= 0 {
                // `*0` and `*-1` are empty requests, skipped silently.
                return Ok(Some(Vec::new()));
            }
            self.remaining = n as usize;
            self.args = Vec::with_capacity((n as usize).min(1024));
        }
        while self.remaining > 0 {
            let len = match self.bulk_len {
                Some(l) => l,
                None => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let Some(cr) = memchr_cr(buf) else {
                        if buf.len() > limits.max_inline_len {
                            return Err(ProtocolError("too big bulk count string".into()));
                        }
                        return Ok(None);
                    };
                    if cr + 1 >= buf.len() {
                        return Ok(None);
                    }
                    if buf[0] != b'$' {
                        let c = buf[0] as char;
                        return Err(ProtocolError(format!("expected '$', got '{c}'")));
                    }
                    let l = match header_num(&buf[1..cr]) {
                        Some(l) if l >= 0 && (l as u64) <= limits.max_bulk_len => l as usize,
                        _ => return Err(ProtocolError("invalid bulk length".into())),
                    };
                    if l as i64 > UNAUTH_MAX_BULK && limits.unauthenticated {
                        return Err(ProtocolError("unauthenticated bulk length".into()));
                    }
                    buf.advance(cr + 2);
                    self.bulk_len = Some(l);
                    l
                }
            };
            if buf.len() < len + 2 {
                // The connection makes room for the rest (`bulk_missing`,
                // querybuf.rs), growing with the bytes that arrive.
                return Ok(None);
            }
            let arg = buf.split_to(len).freeze();
            buf.advance(2);
            self.args_bytes += arg.len();
            self.args.push(arg);
            self.bulk_len = None;
            self.remaining -= 1;
        }
        self.args_bytes = 0;
        Ok(Some(std::mem::take(&mut self.args)))
    }

    fn inline(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
    ) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
            if buf.len() > limits.max_inline_len {
                return Err(ProtocolError("too big inline request".into()));
            }
            return Ok(None);
        };
        if nl > limits.max_inline_len {
            return Err(ProtocolError("too big inline request".into()));
        }
        let line = buf.split_to(nl + 1);
        let mut line = &line[..nl];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        let args =
            split_args(line).ok_or_else(|| ProtocolError("unbalanced quotes in request".into()))?;
        Ok(Some(args.into_iter().map(Bytes::from).collect()))
    }
}

pub use redsnap_engine::text::split_args;

/// Appends the encoding of `reply` to `out` for protocol version 2 or 3.
pub fn encode(out: &mut BytesMut, reply: &Reply, resp3: bool) {
    match reply {
        Reply::Simple(s) => line(out, b'+', s),
        Reply::Error(e) => line(out, b'-', e),
        Reply::Int(i) => {
            out.extend_from_slice(b":");
            out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Reply::Bulk(b) => bulk(out, b),
        Reply::Nil => out.extend_from_slice(if resp3 { b"_\r\n" } else { b"$-1\r\n" }),
        Reply::NilArray => out.extend_from_slice(if resp3 { b"_\r\n" } else { b"*-1\r\n" }),
        Reply::Array(items) => {
            header(out, b'*', items.len());
            for r in items {
                // Bulk strings inline (LRANGE's elements): no call per element.
                match r {
                    Reply::Bulk(b) => bulk(out, b),
                    r => encode(out, r, resp3),
                }
            }
        }
        Reply::Set(items) => {
            header(out, if resp3 { b'~' } else { b'*' }, items.len());
            for r in items {
                encode(out, r, resp3);
            }
        }
        Reply::Push(items) => {
            header(out, if resp3 { b'>' } else { b'*' }, items.len());
            for r in items {
                encode(out, r, resp3);
            }
        }
        Reply::Map(pairs) => {
            if resp3 {
                header(out, b'%', pairs.len());
            } else {
                header(out, b'*', pairs.len() * 2);
            }
            for (k, v) in pairs {
                encode(out, k, resp3);
                encode(out, v, resp3);
            }
        }
        Reply::Double(d) => {
            let s = fmt_g17(*d);
            if resp3 {
                line(out, b',', s.as_bytes());
            } else {
                bulk(out, s.as_bytes());
            }
        }
        Reply::HumanDouble(d) => {
            let s = redsnap_engine::num::fmt_human(*d);
            if resp3 {
                line(out, b',', s.as_bytes());
            } else {
                bulk(out, s.as_bytes());
            }
        }
        Reply::Bool(b) => {
            if resp3 {
                out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" });
            } else {
                out.extend_from_slice(if *b { b":1\r\n" } else { b":0\r\n" });
            }
        }
        Reply::BigNumber(n) => {
            if resp3 {
                line(out, b'(', n);
            } else {
                bulk(out, n);
            }
        }
        Reply::Attribute(attrs, reply) => {
            if resp3 {
                header(out, b'|', attrs.len());
                for (k, v) in attrs {
                    encode(out, k, resp3);
                    encode(out, v, resp3);
                }
            }
            encode(out, reply, resp3);
        }
        Reply::Verbatim(fmt, text) => {
            if resp3 {
                header(out, b'=', text.len() + 4);
                out.extend_from_slice(fmt.as_bytes());
                out.extend_from_slice(b":");
                out.extend_from_slice(text);
                out.extend_from_slice(b"\r\n");
            } else {
                bulk(out, text);
            }
        }
    }
}

fn line(out: &mut BytesMut, prefix: u8, s: &[u8]) {
    out.extend_from_slice(&[prefix]);
    out.extend_from_slice(s);
    out.extend_from_slice(b"\r\n");
}

fn header(out: &mut BytesMut, prefix: u8, n: usize) {
    out.extend_from_slice(&[prefix]);
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

#[inline]
fn bulk(out: &mut BytesMut, b: &[u8]) {
    let n = b.len();
    if n < 10 {
        // A one-digit length (LRANGE's elements, benchmark values): the header is
        // four fixed bytes, written after one reservation, without formatting.
        out.reserve(n + 6);
        out.extend_from_slice(&[b'$', b'0' + n as u8, b'\r', b'\n']);
        out.extend_from_slice(b);
        out.extend_from_slice(b"\r\n");
        return;
    }
    header(out, b'$', n);
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
        let mut p = Parser::new();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(a) = p.next(&mut buf, &Limits::default())? {
            out.push(a);
        }
        Ok(out)
    }

    #[test]
    fn multibulk_and_inline() {
        let r = parse_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\nset a \"b c\"\r\n").unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0], vec![Bytes::from("GET"), Bytes::from("k")]);
        assert_eq!(r[1], vec![Bytes::from("PING")]);
        assert_eq!(
            r[2],
            vec![Bytes::from("set"), Bytes::from("a"), Bytes::from("b c")]
        );
    }

    #[test]
    fn errors_match_redis() {
        assert_eq!(
            parse_all(b"*abc\r\n").unwrap_err().0,
            "invalid multibulk length"
        );
        assert_eq!(
            parse_all(b"*1\r\n$-5\r\n").unwrap_err().0,
            "invalid bulk length"
        );
        assert_eq!(
            parse_all(b"*1\r\n+x\r\n").unwrap_err().0,
            "expected '$', got '+'"
        );
        assert_eq!(
            parse_all(b"*99999999999\r\n").unwrap_err().0,
            "invalid multibulk length"
        );
        assert_eq!(
            parse_all(b"set a \"b\r\n").unwrap_err().0,
            "unbalanced quotes in request"
        );
        let big = vec![b'a'; 70 * 1024];
        assert_eq!(parse_all(&big).unwrap_err().0, "too big inline request");
        let limits = Limits {
            max_bulk_len: 10,
            ..Limits::default()
        };
        let mut p = Parser::new();
        let mut buf = BytesMut::from(&b"*1\r\n$11\r\n"[..]);
        assert_eq!(
            p.next(&mut buf, &limits).unwrap_err().0,
            "invalid bulk length"
        );
    }

    #[test]
    fn limits_before_authentication() {
        let unauth = Limits {
            unauthenticated: true,
            ..Limits::default()
        };
        let parse =
            |input: &[u8], limits: &Limits| Parser::new().next(&mut BytesMut::from(input), limits);
        assert_eq!(
            parse(b"*11\r\n", &unauth).unwrap_err().0,
            "unauthenticated multibulk length"
        );
        assert_eq!(
            parse(b"*2\r\n$4\r\nAUTH\r\n$16385\r\n", &unauth)
                .unwrap_err()
                .0,
            "unauthenticated bulk length"
        );
        // At the limits, and once authenticated: accepted.
        assert_eq!(parse(b"*10\r\n", &unauth), Ok(None));
        assert_eq!(parse(b"*2\r\n$4\r\nAUTH\r\n$16384\r\n", &unauth), Ok(None));
        assert_eq!(parse(b"*11\r\n", &Limits::default()), Ok(None));
    }

    #[test]
    fn split_in_pieces() {
        let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\n0123456789\r\n";
        let mut p = Parser::new();
        let mut buf = BytesMut::new();
        let mut got = None;
        for b in input.iter() {
            buf.extend_from_slice(&[*b]);
            if let Some(a) = p.next(&mut buf, &Limits::default()).unwrap() {
                got = Some(a);
            }
        }
        assert_eq!(got.unwrap()[2], Bytes::from("0123456789"));
        assert!(!p.in_progress());
    }

    /// Every request fed whole (the one-split path) and byte by byte (the
    /// incremental path) parses to the same arguments, and the one-split path is
    /// taken for a complete request.
    #[test]
    fn whole_requests_parse_as_the_incremental_path_does() {
        let mut input = b"*3\r\n$4\r\nSADD\r\n$5\r\nmyset\r\n$0\r\n\r\n".to_vec();
        input.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
        // Over WHOLE_MAX_ARGS arguments.
        let many = 40;
        input.extend_from_slice(format!("*{many}\r\n").as_bytes());
        for i in 0..many {
            let a = format!("a{i}");
            input.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        let whole = parse_all(&input).unwrap();
        let mut p = Parser::new();
        let mut buf = BytesMut::new();
        let mut pieces = Vec::new();
        for b in &input {
            buf.extend_from_slice(&[*b]);
            while let Some(a) = p.next(&mut buf, &Limits::default()).unwrap() {
                pieces.push(a);
            }
        }
        assert_eq!(whole, pieces);
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[0][2], Bytes::new());
        assert_eq!(whole[2].len(), many);

        let mut spans = Vec::new();
        let mut buf = BytesMut::from(&input[..]);
        let first = whole_request(&mut buf, &Limits::default(), &mut spans);
        assert_eq!(first.as_ref(), Some(&whole[0]));
        // Incomplete or over a limit: untouched.
        assert_eq!(
            whole_request(&mut buf, &Limits::default(), &mut spans).as_ref(),
            Some(&whole[1])
        );
        let rest = buf.len();
        assert!(whole_request(&mut buf, &Limits::default(), &mut spans).is_none());
        assert_eq!(buf.len(), rest);
        let mut cut = BytesMut::from(&input[..30]);
        assert!(whole_request(&mut cut, &Limits::default(), &mut spans).is_none());
        assert_eq!(cut.len(), 30);
        let tight = Limits {
            max_bulk_len: 3,
            ..Limits::default()
        };
        let mut buf = BytesMut::from(&input[..]);
        assert!(whole_request(&mut buf, &tight, &mut spans).is_none());
        assert_eq!(buf.len(), input.len());
    }

    proptest! {
        /// A header number the one-split path reads has the value the incremental
        /// path's `header_num` gives, ends at the same `\r`, and is refused only
        /// for spellings the incremental path handles itself.
        #[test]
        fn canonical_numbers_read_as_header_num(line in "[-+0-9]{0,22}", tail in "[\r0-9x]?") {
            let mut b = b"$".to_vec();
            b.extend_from_slice(line.as_bytes());
            b.extend_from_slice(tail.as_bytes());
            if let Some((v, cr)) = canonical_num(&b, 1) {
                prop_assert_eq!(b[cr], b'\r');
                prop_assert_eq!(memchr_cr(&b), Some(cr));
                prop_assert_eq!(header_num(&b[1..cr]), Some(v as i64));
            } else if let Some(cr) = memchr_cr(&b) {
                // Refused: a sign, a leading zero, or over 18 digits.
                let digits = &b[1..cr];
                let canonical = digits == b"0"
                    || (!digits.is_empty()
                        && digits.len() <= 18
                        && digits[0] != b'0'
                        && digits.iter().all(u8::is_ascii_digit));
                prop_assert!(!canonical, "{:?} refused", String::from_utf8_lossy(digits));
            }
        }
    }

    #[test]
    fn encodes_nulls_per_protocol() {
        let mut o = BytesMut::new();
        encode(&mut o, &Reply::Nil, false);
        encode(&mut o, &Reply::NilArray, false);
        encode(&mut o, &Reply::Nil, true);
        encode(&mut o, &Reply::Double(1.5), false);
        encode(&mut o, &Reply::Double(1.5), true);
        encode(
            &mut o,
            &Reply::Map(vec![(Reply::bulk_str("a"), Reply::Int(1))]),
            false,
        );
        assert_eq!(
            &o[..],
            b"$-1\r\n*-1\r\n_\r\n$3\r\n1.5\r\n,1.5\r\n*2\r\n$1\r\na\r\n:1\r\n"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
        /// Arbitrary bytes never panic, and never produce more arguments than bytes.
        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut p = Parser::new();
            let mut buf = BytesMut::from(&data[..]);
            let limits = Limits { max_bulk_len: 1 << 20, max_multibulk_len: 1 << 20, max_inline_len: 256, unauthenticated: false };
            for _ in 0..600 {
                match p.next(&mut buf, &limits) {
                    Ok(Some(a)) => prop_assert!(a.len() <= data.len()),
                    Ok(None) | Err(_) => break,
                }
            }
        }

        /// Any argv encoded as RESP parses back to itself, however it is split.
        #[test]
        fn roundtrip(args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..8), cut in 0usize..400) {
            let mut wire = Vec::new();
            wire.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
            for a in &args {
                wire.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                wire.extend_from_slice(a);
                wire.extend_from_slice(b"\r\n");
            }
            let cut = cut.min(wire.len());
            let mut p = Parser::new();
            let mut buf = BytesMut::from(&wire[..cut]);
            let first = p.next(&mut buf, &Limits::default()).unwrap();
            buf.extend_from_slice(&wire[cut..]);
            let got = match first { Some(a) => a, None => p.next(&mut buf, &Limits::default()).unwrap().unwrap() };
            let want: Vec<Bytes> = args.into_iter().map(Bytes::from).collect();
            prop_assert_eq!(got, want);
        }
    }
}
