//! Function libraries (Redis 7's FUNCTION LOAD) as the dataset holds them: the code of
//! each library under its name. The server compiles and runs them; the engine keeps
//! their code so that snapshots carry it (as Redis's RDB does) and so that the append
//! log's FUNCTION records replay without a Lua engine (`Libraries::replay`).
//!
//! Only what a library's name depends on is parsed here: the first line of its code,
//! `#!<engine> name=<name>` (Redis's `functionExtractLibMetaData`).

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

    /// Adds a library, or replaces the one of that name (keeping its place).
    pub fn insert(&mut self, name: Bytes, code: Bytes) {
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
                let replace = argv[2..n - 1].iter().any(|a| a.eq_ignore_ascii_case(b"replace"));
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

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn metadata_errors_are_redis_texts() {
        let err = |c: &str| parse_metadata(c.as_bytes()).expect_err(c);
        assert_eq!(err("return 1"), "Missing library metadata");
        assert_eq!(err("#!lua name=x"), "Invalid library metadata");
        assert_eq!(err("#!lua\nx"), "Library name was not given");
        assert_eq!(err("#!lua name=a name=b\n"), "Invalid metadata value, name argument was given multiple times");
        assert_eq!(err("#!lua name=a foo=bar\n"), "Invalid metadata value given: foo=bar");
        assert_eq!(err("#!lua name=\"a\n"), "Invalid library metadata");
    }

    #[test]
    fn metadata_parses_quotes_and_engine() {
        let m = parse_metadata(b"#!LUA NAME=\"foo\"\nreturn").expect("parses");
        assert_eq!((m.engine.as_slice(), m.name.as_slice(), m.body_start), (&b"LUA"[..], &b"foo"[..], 16));
        let m = parse_metadata(b"#! name=x\n").expect("parses");
        assert!(m.engine.is_empty());
    }

    #[test]
    fn replay_applies_load_delete_flush() {
        let mut libs = Libraries::default();
        let a = "#!lua name=a\nredis.register_function('f', function() end)";
        assert_eq!(libs.replay(&[b("FUNCTION"), b("LOAD"), b(a)]), Reply::Bulk(b("a")));
        assert!(libs.replay(&[b("function"), b("load"), b(a)]).is_error());
        let a2 = "#!lua name=a\n-- v2";
        libs.replay(&[b("function"), b("load"), b("REPLACE"), b(a2)]);
        assert_eq!(libs.get(b"a"), Some(&b(a2)));
        libs.replay(&[b("function"), b("load"), b("#!lua name=b\n")]);
        assert_eq!(libs.codes(), vec![b(a2), b("#!lua name=b\n")]);
        assert_eq!(libs.replay(&[b("function"), b("delete"), b("a")]), Reply::ok());
        assert!(libs.replay(&[b("function"), b("delete"), b("a")]).is_error());
        libs.replay(&[b("function"), b("flush"), b("async")]);
        assert!(libs.is_empty());
    }

    #[test]
    fn from_codes_names_libraries() {
        let libs = Libraries::from_codes(vec![b("#!lua name=x\n"), b("#!lua name=y\n")]).expect("ok");
        assert_eq!(libs.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(), vec![b("x"), b("y")]);
        assert!(Libraries::from_codes(vec![b("nope")]).is_err());
    }
}
