//! Function libraries (Redis 7's FUNCTION LOAD) as the dataset holds them: the code of
//! each library under its name. The server compiles and runs them; the engine keeps
//! their code so that snapshots carry it (as Redis's RDB does) and so that the append
//! log's FUNCTION records replay without a Lua engine (`Libraries::replay`).
//!
//! Only what a library's name depends on is parsed here: the first line of its code,
//! `#!<engine> name=<name>` (Redis's `functionExtractLibMetaData`).

use crate::rdb;
use crate::reply::Reply;
use crate::text::split_args;
use bytes::Bytes;
use indexmap::IndexMap;

/// What the first line of a library's code declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibraryMeta {
    /// The engine named after `#!` (as written; engines are matched ignoring case).
    pub engine: Vec<u8>,
    pub name: Vec<u8>,
    /// Where the code after the first line starts (at its newline, so line numbers
    /// in error messages count the metadata line, as in Redis).
    pub body_start: usize,
}

/// Redis's `functionExtractLibMetaData`, with its error texts.
pub fn parse_metadata(code: &[u8]) -> Result<LibraryMeta, String> {
    // Redis reads the code as a C string here: a NUL byte ends it.
    let cstr = &code[..code.iter().position(|&c| c == 0).unwrap_or(code.len())];
    if !cstr.starts_with(b"#!") {
        return Err("Missing library metadata".into());
    }
    let Some(end) = cstr.iter().position(|&c| c == b'\n') else {
        return Err("Invalid library metadata".into());
    };
    let parts = match split_args(&code[..end]) {
        Some(p) if !p.is_empty() => p,
        _ => return Err("Invalid library metadata".into()),
    };
    let engine = parts[0].get(2..).unwrap_or_default().to_vec();
    let mut name: Option<Vec<u8>> = None;
    for part in &parts[1..] {
        if part.len() >= 5 && part[..5].eq_ignore_ascii_case(b"name=") {
            if name.is_some() {
                return Err(
                    "Invalid metadata value, name argument was given multiple times".into(),
                );
            }
            name = Some(part[5..].to_vec());
            continue;
        }
        let shown = &part[..part.iter().position(|&c| c == 0).unwrap_or(part.len())];
        return Err(format!(
            "Invalid metadata value given: {}",
            String::from_utf8_lossy(shown)
        ));
    }
    let Some(name) = name else {
        return Err("Library name was not given".into());
    };
    Ok(LibraryMeta {
        engine,
        name,
        body_start: end,
    })
}

/// Redis's `functionsVerifyName`: `[a-zA-Z0-9_]+`.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// RDB opcode of a library (its code) in a FUNCTION DUMP payload and in an RDB file.
pub const RDB_OPCODE_FUNCTION2: u8 = 245;
/// The library format of Redis 7.0 release candidates (name, engine, description,
/// code), still read.
pub const RDB_OPCODE_FUNCTION: u8 = 246;

/// FUNCTION DUMP: each library as `RDB_OPCODE_FUNCTION2` and its code (an RDB
/// string), then the RDB version and the CRC64, as Redis's `functionDumpCommand`.
pub fn dump_payload<'a>(codes: impl Iterator<Item = &'a Bytes>) -> Vec<u8> {
    let mut out = Vec::new();
    for code in codes {
        out.push(RDB_OPCODE_FUNCTION2);
        rdb::write_string(&mut out, code);
    }
    out.extend_from_slice(&rdb::RDB_VERSION.to_le_bytes());
    let crc = rdb::crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// FUNCTION RESTORE's reading of a payload (Redis's `functionRestoreCommand` and
/// `rdbFunctionLoad`): the code of each library, or Redis's error text. Decoding
/// builds at most what `budget` allows (LZF strings expand).
pub fn parse_payload(p: &[u8], budget: rdb::Budget) -> Result<Vec<Bytes>, String> {
    if rdb::verify_payload(p).is_err() {
        return Err("DUMP payload version or checksum are wrong".into());
    }
    let mut r = rdb::Reader::with_budget(&p[..p.len() - 10], budget);
    let mut codes = Vec::new();
    while !r.is_at_end() {
        let ty = r
            .read_u8()
            .map_err(|_| "can not read data type".to_string())?;
        let code = match ty {
            RDB_OPCODE_FUNCTION2 => r
                .read_string()
                .map_err(|_| "Failed loading library payload".to_string())?,
            RDB_OPCODE_FUNCTION => read_old_library(&mut r)?,
            _ => return Err("given type is not a function".into()),
        };
        codes.push(code);
    }
    Ok(codes)
}

/// A library in the 7.0 release candidates' format, as the code of today's.
fn read_old_library(r: &mut rdb::Reader) -> Result<Bytes, String> {
    let name = r
        .read_string()
        .map_err(|_| "Failed loading library name".to_string())?;
    let engine = r
        .read_string()
        .map_err(|_| "Failed loading engine name".to_string())?;
    let has_desc = r
        .read_len()
        .map_err(|_| "Failed loading library description indicator".to_string())?;
    if has_desc != 0 {
        r.read_string()
            .map_err(|_| "Failed loading library description".to_string())?;
    }
    let blob = r
        .read_string()
        .map_err(|_| "Failed loading library blob".to_string())?;
    let mut code = b"#!".to_vec();
    code.extend_from_slice(&engine);
    code.extend_from_slice(b" name=");
    code.extend_from_slice(&name);
    code.push(b'\n');
    code.extend_from_slice(&blob);
    Ok(Bytes::from(code))
}

/// The libraries of the dataset: name -> code, in the order they were created.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Libraries {
    libs: IndexMap<Bytes, Bytes>,
}

impl Libraries {
    /// Libraries from their code (a snapshot's list). Fails on code whose metadata
    /// does not parse, naming the library's position in the list.
    pub fn from_codes(codes: Vec<Bytes>) -> Result<Libraries, String> {
        let mut libs = Libraries::default();
        for (i, code) in codes.into_iter().enumerate() {
            let meta = parse_metadata(&code).map_err(|e| format!("library #{i}: {e}"))?;
            libs.insert(Bytes::from(meta.name), code);
        }
        Ok(libs)
    }

    pub fn len(&self) -> usize {
        self.libs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.libs.is_empty()
    }

    /// The code of every library, in order (what a snapshot stores).
    pub fn codes(&self) -> Vec<Bytes> {
        self.libs.values().cloned().collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &Bytes)> {
        self.libs.iter()
    }

    pub fn get(&self, name: &[u8]) -> Option<&Bytes> {
        self.libs.get(name)
    }

    /// Adds a library (last), or replaces the one of that name (which moves last,
    /// as the server's list of compiled libraries does).
    pub fn insert(&mut self, name: Bytes, code: Bytes) {
        self.libs.shift_remove(&name);
        self.libs.insert(name, code);
    }

    pub fn remove(&mut self, name: &[u8]) -> bool {
        self.libs.shift_remove(name).is_some()
    }

    pub fn clear(&mut self) {
        self.libs.clear();
    }

    /// Replays a FUNCTION record of the append log: `LOAD [REPLACE] <code>`,
    /// `DELETE <name>` or `FLUSH [ASYNC|SYNC]`. The server logs only what succeeded
    /// (its FUNCTION RESTORE is logged as these), so the checks that need a Lua
    /// engine (compiling, function name collisions) were passed when it was logged.
    pub fn replay(&mut self, argv: &[Bytes]) -> Reply {
        let sub = argv.get(1).map(|s| s.to_ascii_lowercase());
        match (sub.as_deref(), argv.len()) {
            (Some(b"load"), n) if n >= 3 => {
                let code = &argv[n - 1];
                let replace = argv[2..n - 1]
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(b"replace"));
                match parse_metadata(code) {
                    Ok(meta) => {
                        let name = Bytes::from(meta.name);
                        if !replace && self.libs.contains_key(&name) {
                            return Reply::error(format!(
                                "ERR Library '{}' already exists",
                                String::from_utf8_lossy(&name)
                            ));
                        }
                        self.insert(name.clone(), code.clone());
                        Reply::Bulk(name)
                    }
                    Err(e) => Reply::error(format!("ERR {e}")),
                }
            }
            (Some(b"delete"), 3) => {
                if self.remove(&argv[2]) {
                    Reply::ok()
                } else {
                    Reply::err("ERR Library not found")
                }
            }
            (Some(b"flush"), 2 | 3) => {
                self.clear();
                Reply::ok()
            }
            _ => Reply::err("ERR unsupported FUNCTION record"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FUNCTION DUMP of Redis 7.0.15 holding one library (see the test).
    const REDIS_DUMP: &[u8] = &[
        0xf5, 0xc3, 0x40, 0x56, 0x40, 0x5b, 0x1f, 0x23, 0x21, 0x6c, 0x75, 0x61, 0x20, 0x6e, 0x61,
        0x6d, 0x65, 0x3d, 0x6d, 0x79, 0x6c, 0x69, 0x62, 0x0a, 0x72, 0x65, 0x64, 0x69, 0x73, 0x2e,
        0x72, 0x65, 0x67, 0x69, 0x73, 0x74, 0x65, 0x72, 0x5f, 0x0b, 0x66, 0x75, 0x6e, 0x63, 0x74,
        0x69, 0x6f, 0x6e, 0x28, 0x27, 0x6d, 0x79, 0x40, 0x0b, 0x02, 0x27, 0x2c, 0x20, 0x40, 0x06,
        0x60, 0x12, 0x11, 0x6b, 0x65, 0x79, 0x73, 0x2c, 0x20, 0x61, 0x72, 0x67, 0x73, 0x29, 0x20,
        0x72, 0x65, 0x74, 0x75, 0x72, 0x6e, 0x60, 0x0c, 0x07, 0x5b, 0x31, 0x5d, 0x20, 0x65, 0x6e,
        0x64, 0x29, 0x0a, 0x00, 0x8d, 0x59, 0x36, 0xad, 0xc6, 0xe7, 0x07, 0xda,
    ];

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn metadata_errors_are_redis_texts() {
        let err = |c: &str| parse_metadata(c.as_bytes()).expect_err(c);
        assert_eq!(err("return 1"), "Missing library metadata");
        assert_eq!(err("#!lua name=x"), "Invalid library metadata");
        assert_eq!(err("#!lua\nx"), "Library name was not given");
        assert_eq!(
            err("#!lua name=a name=b\n"),
            "Invalid metadata value, name argument was given multiple times"
        );
        assert_eq!(
            err("#!lua name=a foo=bar\n"),
            "Invalid metadata value given: foo=bar"
        );
        assert_eq!(err("#!lua name=\"a\n"), "Invalid library metadata");
    }

    #[test]
    fn metadata_parses_quotes_and_engine() {
        let m = parse_metadata(b"#!LUA NAME=\"foo\"\nreturn").expect("parses");
        assert_eq!(
            (m.engine.as_slice(), m.name.as_slice(), m.body_start),
            (&b"LUA"[..], &b"foo"[..], 16)
        );
        let m = parse_metadata(b"#! name=x\n").expect("parses");
        assert!(m.engine.is_empty());
    }

    #[test]
    fn replay_applies_load_delete_flush() {
        let mut libs = Libraries::default();
        let a = "#!lua name=a\nredis.register_function('f', function() end)";
        assert_eq!(
            libs.replay(&[b("FUNCTION"), b("LOAD"), b(a)]),
            Reply::Bulk(b("a"))
        );
        assert!(libs.replay(&[b("function"), b("load"), b(a)]).is_error());
        libs.replay(&[b("function"), b("load"), b("#!lua name=b\n")]);
        let a2 = "#!lua name=a\n-- v2";
        libs.replay(&[b("function"), b("load"), b("REPLACE"), b(a2)]);
        assert_eq!(libs.get(b"a"), Some(&b(a2)));
        assert_eq!(libs.codes(), vec![b("#!lua name=b\n"), b(a2)]);
        assert_eq!(
            libs.replay(&[b("function"), b("delete"), b("a")]),
            Reply::ok()
        );
        assert!(libs
            .replay(&[b("function"), b("delete"), b("a")])
            .is_error());
        libs.replay(&[b("function"), b("flush"), b("async")]);
        assert!(libs.is_empty());
    }

    #[test]
    fn dump_payload_round_trips_and_reads_redis() {
        let codes = vec![
            b("#!lua name=a\nredis.register_function('f', function() return 1 end)"),
            b("#!lua name=b\n"),
        ];
        let p = dump_payload(codes.iter());
        assert_eq!(parse_payload(&p, rdb::Budget::unlimited()), Ok(codes));
        let mut bad = p.clone();
        bad[2] ^= 1;
        assert_eq!(
            parse_payload(&bad, rdb::Budget::unlimited()),
            Err("DUMP payload version or checksum are wrong".into())
        );
        assert!(parse_payload(b"bad_payload", rdb::Budget::unlimited()).is_err());
        // A Redis 7.0.15 FUNCTION DUMP (its code LZF-compressed).
        let code = "#!lua name=mylib\nredis.register_function('myfunc', function(keys, args) return args[1] end)";
        assert_eq!(
            parse_payload(REDIS_DUMP, rdb::Budget::unlimited()),
            Ok(vec![b(code)])
        );
        // An old-format library (7.0 release candidates).
        let mut old = vec![RDB_OPCODE_FUNCTION];
        for s in ["lib", "LUA"] {
            rdb::write_string(&mut old, s.as_bytes());
        }
        rdb::write_len(&mut old, 0);
        rdb::write_string(&mut old, b"return 1");
        old.extend_from_slice(&rdb::RDB_VERSION.to_le_bytes());
        let crc = rdb::crc64(&old);
        old.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(
            parse_payload(&old, rdb::Budget::unlimited()),
            Ok(vec![b("#!LUA name=lib\nreturn 1")])
        );
        // A non-function type.
        let mut other = vec![0u8];
        rdb::write_string(&mut other, b"x");
        other.extend_from_slice(&rdb::RDB_VERSION.to_le_bytes());
        let crc = rdb::crc64(&other);
        other.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(
            parse_payload(&other, rdb::Budget::unlimited()),
            Err("given type is not a function".into())
        );
    }

    #[test]
    fn from_codes_names_libraries() {
        let libs =
            Libraries::from_codes(vec![b("#!lua name=x\n"), b("#!lua name=y\n")]).expect("ok");
        assert_eq!(
            libs.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
            vec![b("x"), b("y")]
        );
        assert!(Libraries::from_codes(vec![b("nope")]).is_err());
    }
}
