//! The JSON document type (`ReJSON-RL`, RedisJSON 2.x built in): the value
//! (`value.rs`), JSONPath (`path.rs`), and the encodings the rest of redsnap uses.
//! The commands are `cmd/json.rs`.
//!
//! Encodings: snapshots and the append log hold a document as its compact JSON text
//! (what RedisJSON's `rdb_save` writes); DUMP payloads and RDB files use Redis's
//! module value format (`RDB_TYPE_MODULE_2`, the module type id of `ReJSON-RL`
//! encoding version 3, one string, the EOF opcode), the bytes RedisJSON 2.6 writes,
//! so a redsnap DUMP restores into Redis Stack and back.

pub mod path;
pub mod regex;
pub mod value;

pub use path::{compile, PathArg, PathElem, Query};
pub use value::{Format, JVal};

/// The module type name TYPE reports.
pub const TYPE_NAME: &str = "ReJSON-RL";
/// The encoding version RedisJSON 2.6 saves (`encver` 3: the document as one string).
pub const ENCVER: u64 = 3;
/// The command metadata of the JSON commands (same format as `cmdmeta.txt`).
pub static META_DATA: &str = include_str!("cmdmeta.txt");

/// Redis's module type id (`moduleTypeEncodeId`): the 9-character name in a 64-byte
/// alphabet, 6 bits each, then 10 bits of encoding version.
pub fn module_type_id(name: &str, encver: u64) -> Option<u64> {
    const SET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    if name.len() != 9 {
        return None;
    }
    let mut id: u64 = 0;
    for c in name.bytes() {
        let pos = SET.iter().position(|&s| s == c)? as u64;
        id = (id << 6) | pos;
    }
    Some((id << 10) | (encver & 1023))
}

/// The `ReJSON-RL` type id without its encoding version (the top 54 bits).
pub fn rejson_id_prefix() -> u64 {
    module_type_id(TYPE_NAME, 0).unwrap_or(0) >> 10
}

/// The deepest nesting a stored document may reach. A JSON argument is limited to
/// 128 levels when parsed (as in RedisJSON), but writes below existing levels
/// could stack documents ever deeper, and the code that walks, prints, copies and
/// frees a document recurses once per level: RedisJSON has no limit there (and
/// its recursion can exhaust the stack); redsnap refuses a write that would nest
/// deeper than this.
pub const MAX_DEPTH: usize = 512;

/// `ERR` reply text for a write that would nest deeper than [`MAX_DEPTH`].
pub const ERR_TOO_DEEP: &str = "ERR the document would nest deeper than 512 levels";

/// The value at a concrete path.
pub fn get_mut<'a>(root: &'a mut JVal, path: &[PathElem]) -> Option<&'a mut JVal> {
    let mut cur = root;
    for e in path {
        cur = match (e, cur) {
            (PathElem::Key(k), JVal::Obj(o)) => o.get_mut(k)?,
            (PathElem::Index(i), JVal::Arr(a)) => a.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Removes the value at a concrete (non-root) path; true when it existed.
pub fn remove(root: &mut JVal, path: &[PathElem]) -> bool {
    let Some((last, parent)) = path.split_last() else {
        return false;
    };
    match (get_mut(root, parent), last) {
        (Some(JVal::Obj(o)), PathElem::Key(k)) => o.shift_remove(k).is_some(),
        (Some(JVal::Arr(a)), PathElem::Index(i)) if *i < a.len() => {
            a.remove(*i);
            true
        }
        _ => false,
    }
}

/// RedisJSON's `prepare_paths_for_deletion`: later array positions before earlier
/// ones (so that removing one does not shift the next), and paths below another
/// path of the set dropped (their ancestor goes anyway).
pub fn order_for_deletion(paths: &mut Vec<Vec<PathElem>>) {
    if paths.len() < 2 {
        return;
    }
    paths.sort_by(|a, b| {
        use std::cmp::Ordering;
        for (x, y) in a.iter().zip(b.iter()) {
            let o = match (x, y) {
                (PathElem::Key(p), PathElem::Key(q)) => p.cmp(q),
                (PathElem::Index(_), PathElem::Key(_)) => Ordering::Greater,
                (PathElem::Key(_), PathElem::Index(_)) => Ordering::Less,
                (PathElem::Index(p), PathElem::Index(q)) => q.cmp(p),
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        // Longer paths first.
        b.len().cmp(&a.len())
    });
    let all = paths.clone();
    paths.retain(|p| !all.iter().any(|q| q.len() < p.len() && p.starts_with(q)));
    paths.dedup();
}

/// Module value opcodes (Redis's `RDB_MODULE_OPCODE_*`).
const OPCODE_EOF: u64 = 0;
const OPCODE_STRING: u64 = 5;

/// Writes a document as RedisJSON does in an RDB file or DUMP payload (the body of
/// an `RDB_TYPE_MODULE_2` value).
pub fn rdb_write(out: &mut Vec<u8>, doc: &JVal) {
    crate::rdb::write_len(out, module_type_id(TYPE_NAME, ENCVER).unwrap_or(0));
    crate::rdb::write_len(out, OPCODE_STRING);
    crate::rdb::write_string(out, &doc.to_json());
    crate::rdb::write_len(out, OPCODE_EOF);
}

/// Reads the body of an `RDB_TYPE_MODULE_2` value: a `ReJSON-RL` document of
/// encoding version 3 (what RedisJSON 2.x writes); any other module's value is an
/// unsupported type, as in a Redis without that module.
pub fn rdb_read(r: &mut crate::rdb::Reader) -> crate::rdb::Result<JVal> {
    use crate::rdb::RdbError;
    let id = r.read_len()?;
    if id >> 10 != rejson_id_prefix() {
        return Err(RdbError::UnsupportedType(crate::rdb::types::MODULE_2));
    }
    if id & 1023 != ENCVER || r.read_len()? != OPCODE_STRING {
        return Err(RdbError::Corrupt(
            "ReJSON-RL value (only encoding version 3 is read)",
        ));
    }
    let text = r.read_string()?;
    let doc = JVal::parse_unlimited(&text).map_err(|_| RdbError::Corrupt("ReJSON-RL document"))?;
    if r.read_len()? != OPCODE_EOF {
        return Err(RdbError::Corrupt("ReJSON-RL value"));
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejson_type_id_is_redisjsons() {
        // The id RedisJSON's type registers ("ReJSON-RL", encver 3), as found in
        // RDB files Redis Stack writes.
        let id = module_type_id("ReJSON-RL", 3).unwrap();
        assert_eq!(id & 1023, 3);
        assert_eq!(id >> 10, rejson_id_prefix());
        assert!(module_type_id("short", 3).is_none());
    }

    #[test]
    fn deletion_order_removes_nested_and_later_first() {
        let k = |s: &str| PathElem::Key(s.into());
        let i = PathElem::Index;
        let mut p = vec![
            vec![k("a"), i(0)],
            vec![k("a"), i(2)],
            vec![k("a"), i(2), k("x")],
            vec![k("b")],
        ];
        order_for_deletion(&mut p);
        assert_eq!(
            p,
            vec![vec![k("a"), i(2)], vec![k("a"), i(0)], vec![k("b")]]
        );
        let mut doc = JVal::parse(br#"{"a":[0,1,{"x":1}],"b":1,"c":2}"#).unwrap();
        for path in &p {
            assert!(remove(&mut doc, path));
        }
        assert_eq!(doc.to_json(), br#"{"a":[1],"c":2}"#);
    }
}
