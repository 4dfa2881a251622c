//! The JSON value a `ReJSON-RL` key holds, its text form (parsing and printing as
//! RedisJSON 2.6 does through serde_json) and its memory estimate.

use indexmap::IndexMap;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use std::fmt;

/// An object's members, in insertion order (RedisJSON's `ijson` objects keep it too;
/// removing a member keeps the others' order).
pub type Map = IndexMap<String, JVal>;

/// One JSON value. Numbers keep RedisJSON's distinction: an integer literal that fits
/// an `i64` stays an integer, anything with a fraction or an exponent is a double and
/// prints as one (`7.0`, `1e300`), as `ijson` keeps `has_decimal_point`.
#[derive(Debug, Clone, PartialEq)]
pub enum JVal {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Arr(Vec<JVal>),
    Obj(Box<Map>),
}

impl JVal {
    /// RedisJSON's type names (JSON.TYPE, and the "found X" of its errors).
    pub fn type_name(&self) -> &'static str {
        match self {
            JVal::Null => "null",
            JVal::Bool(_) => "boolean",
            JVal::Int(_) => "integer",
            JVal::Float(_) => "number",
            JVal::Str(_) => "string",
            JVal::Arr(_) => "array",
            JVal::Obj(_) => "object",
        }
    }

    pub fn empty_object() -> JVal {
        JVal::Obj(Box::default())
    }

    /// Parses JSON text as RedisJSON does (serde_json with its default nesting limit of
    /// 128); the error is serde_json's message, which RedisJSON replies verbatim.
    pub fn parse(text: &[u8]) -> Result<JVal, String> {
        let text = std::str::from_utf8(text).map_err(|e| e.to_string())?;
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    /// Parses without the nesting limit (loading a stored document, as RedisJSON's
    /// `rdb_load` does).
    pub fn parse_unlimited(text: &[u8]) -> Result<JVal, String> {
        let text = std::str::from_utf8(text).map_err(|e| e.to_string())?;
        let mut de = serde_json::Deserializer::from_str(text);
        de.disable_recursion_limit();
        let v = JVal::deserialize(&mut de).map_err(|e| e.to_string())?;
        de.end().map_err(|e| e.to_string())?;
        Ok(v)
    }

    /// Compact JSON text.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.write_json(&mut out);
        out
    }

    /// Appends the compact JSON text of `self` to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let mut ser = serde_json::Serializer::with_formatter(out, Compact);
        // Writing to a Vec fails only for a non-finite float, which no JVal holds
        // (parsing rejects them and arithmetic results are checked).
        let _ = self.serialize(&mut ser);
    }

    /// JSON text with JSON.GET's INDENT / NEWLINE / SPACE.
    pub fn to_json_formatted(&self, fmt: &Format) -> Vec<u8> {
        let mut out = Vec::new();
        write_formatted(self, fmt, &mut out);
        out
    }

    /// RedisJSON's `get_memory` (JSON.DEBUG MEMORY): the sizes `ijson` uses: 8 bytes
    /// per value, small integers inline, 16 for larger numbers and doubles, the
    /// string's length, and per container a header and 8 bytes per slot (3 per
    /// object member). The slots are the capacity `ijson` reaches growing a
    /// container while parsing: at least 4, doubling (RedisJSON 2.6.9's own test
    /// document gives 903, as there; the command reference's JSON.DEBUG MEMORY example
    /// was computed by another version and does not agree with that test).
    pub fn debug_memory(&self) -> usize {
        8 + match self {
            JVal::Null | JVal::Bool(_) => 0,
            JVal::Float(_) => 16,
            JVal::Int(i) if (-128..=383).contains(i) => 0,
            JVal::Int(i) if *i > -8_388_608 && *i <= 8_388_607 => 4,
            JVal::Int(_) => 16,
            JVal::Str(s) => s.len(),
            JVal::Arr(a) if a.is_empty() => 0,
            JVal::Arr(a) => {
                8 * (slots(a.len()) + 2) + a.iter().map(JVal::debug_memory).sum::<usize>()
            }
            JVal::Obj(o) if o.is_empty() => 0,
            JVal::Obj(o) => {
                8 * (slots(o.len()) * 3 + 2)
                    + o.iter()
                        .map(|(k, v)| k.len() + v.debug_memory())
                        .sum::<usize>()
            }
        }
    }

    /// An estimate of the heap bytes this value uses in redsnap (MEMORY USAGE,
    /// maxmemory): the enum, strings, vectors and index maps.
    pub fn mem_usage(&self) -> usize {
        const NODE: usize = std::mem::size_of::<JVal>();
        match self {
            JVal::Str(s) => NODE + s.len(),
            JVal::Arr(a) => NODE + a.iter().map(JVal::mem_usage).sum::<usize>(),
            JVal::Obj(o) => {
                NODE + 64
                    + o.iter()
                        .map(|(k, v)| k.len() + 24 + 16 + v.mem_usage())
                        .sum::<usize>()
            }
            _ => NODE,
        }
    }

    /// Nesting depth: 0 for a scalar, 1 + the deepest element for a container.
    pub fn depth(&self) -> usize {
        match self {
            JVal::Arr(a) => 1 + a.iter().map(JVal::depth).max().unwrap_or(0),
            JVal::Obj(o) => 1 + o.values().map(JVal::depth).max().unwrap_or(0),
            _ => 0,
        }
    }

    /// RedisJSON's `is_equal` (JSON.ARRINDEX): same type and same contents; an
    /// integer never equals a double.
    pub fn json_eq(&self, other: &JVal) -> bool {
        match (self, other) {
            (JVal::Null, JVal::Null) => true,
            (JVal::Bool(a), JVal::Bool(b)) => a == b,
            (JVal::Int(a), JVal::Int(b)) => a == b,
            (JVal::Float(a), JVal::Float(b)) => a == b,
            (JVal::Str(a), JVal::Str(b)) => a == b,
            (JVal::Arr(a), JVal::Arr(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.json_eq(y))
            }
            (JVal::Obj(a), JVal::Obj(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .all(|(k, v)| b.get(k).is_some_and(|w| v.json_eq(w)))
            }
            _ => false,
        }
    }

    /// JSON Merge Patch (RFC 7396) as RedisJSON's `merge`: a non-object patch
    /// replaces; an object patch sets members, `null` members delete.
    pub fn merge(&mut self, patch: &JVal) {
        let JVal::Obj(p) = patch else {
            *self = patch.clone();
            return;
        };
        if !matches!(self, JVal::Obj(_)) {
            *self = JVal::empty_object();
        }
        if let JVal::Obj(map) = self {
            for (k, v) in p.iter() {
                if matches!(v, JVal::Null) {
                    map.shift_remove(k);
                } else {
                    map.entry(k.clone()).or_insert(JVal::Null).merge(v);
                }
            }
        }
    }
}

/// The capacity `ijson` gives a container of `n` elements built by pushing.
fn slots(n: usize) -> usize {
    n.next_power_of_two().max(4)
}

impl Serialize for JVal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            JVal::Null => s.serialize_unit(),
            JVal::Bool(b) => s.serialize_bool(*b),
            JVal::Int(i) => s.serialize_i64(*i),
            JVal::Float(f) => s.serialize_f64(*f),
            JVal::Str(v) => s.serialize_str(v),
            JVal::Arr(a) => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for e in a {
                    seq.serialize_element(e)?;
                }
                seq.end()
            }
            JVal::Obj(o) => {
                let mut m = s.serialize_map(Some(o.len()))?;
                for (k, v) in o.iter() {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for JVal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<JVal, D::Error> {
        d.deserialize_any(JValVisitor)
    }
}

struct JValVisitor;

impl<'de> Visitor<'de> for JValVisitor {
    type Value = JVal;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any valid JSON value")
    }
    fn visit_unit<E>(self) -> Result<JVal, E> {
        Ok(JVal::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<JVal, E> {
        Ok(JVal::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<JVal, E> {
        Ok(JVal::Int(i))
    }
    fn visit_u64<E>(self, u: u64) -> Result<JVal, E> {
        // Beyond i64 RedisJSON's ijson keeps an unsigned integer; redsnap keeps a
        // double (the value prints in exponent form).
        Ok(match i64::try_from(u) {
            Ok(i) => JVal::Int(i),
            Err(_) => JVal::Float(u as f64),
        })
    }
    fn visit_f64<E>(self, f: f64) -> Result<JVal, E> {
        Ok(JVal::Float(f))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<JVal, E> {
        Ok(JVal::Str(s.to_owned()))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<JVal, E> {
        Ok(JVal::Str(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JVal, A::Error> {
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(e) = seq.next_element()? {
            v.push(e);
        }
        Ok(JVal::Arr(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JVal, A::Error> {
        let mut m = Map::new();
        while let Some((k, v)) = map.next_entry::<String, JVal>()? {
            m.insert(k, v);
        }
        Ok(JVal::Obj(Box::new(m)))
    }
}

/// serde_json's compact output with doubles printed by `ryu` (`1e300`, `3.0`), as
/// the serde_json RedisJSON 2.6 links prints them (newer serde_json writes `1e+300`).
struct Compact;

impl serde_json::ser::Formatter for Compact {
    fn write_f64<W: ?Sized + std::io::Write>(&mut self, w: &mut W, v: f64) -> std::io::Result<()> {
        let mut b = ryu::Buffer::new();
        w.write_all(b.format_finite(v).as_bytes())
    }
    fn write_f32<W: ?Sized + std::io::Write>(&mut self, w: &mut W, v: f32) -> std::io::Result<()> {
        self.write_f64(w, v as f64)
    }
}

/// JSON.GET's formatting options (RedisJSON's `RedisJsonFormatter`).
#[derive(Debug, Default, Clone)]
pub struct Format {
    pub indent: Option<String>,
    pub newline: Option<String>,
    pub space: Option<String>,
}

impl Format {
    pub fn is_plain(&self) -> bool {
        self.indent.is_none() && self.newline.is_none() && self.space.is_none()
    }
}

struct Pretty<'a> {
    fmt: &'a Format,
    level: usize,
}

impl Pretty<'_> {
    fn new_line(&self, out: &mut Vec<u8>) {
        if let Some(n) = &self.fmt.newline {
            out.extend_from_slice(n.as_bytes());
        }
        if let Some(i) = &self.fmt.indent {
            for _ in 0..self.level {
                out.extend_from_slice(i.as_bytes());
            }
        }
    }

    fn write(&mut self, v: &JVal, out: &mut Vec<u8>) {
        match v {
            JVal::Arr(a) => {
                self.level += 1;
                out.push(b'[');
                for (i, e) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    self.new_line(out);
                    self.write(e, out);
                }
                self.level -= 1;
                if !a.is_empty() {
                    self.new_line(out);
                }
                out.push(b']');
            }
            JVal::Obj(o) => {
                self.level += 1;
                out.push(b'{');
                for (i, (k, e)) in o.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    self.new_line(out);
                    JVal::Str(k.clone()).write_json(out);
                    out.push(b':');
                    if let Some(s) = &self.fmt.space {
                        out.extend_from_slice(s.as_bytes());
                    }
                    self.write(e, out);
                }
                self.level -= 1;
                if !o.is_empty() {
                    self.new_line(out);
                }
                out.push(b'}');
            }
            scalar => scalar.write_json(out),
        }
    }
}

/// Writes `v` with the formatting options (compact when there are none).
pub fn write_formatted(v: &JVal, fmt: &Format, out: &mut Vec<u8>) {
    if fmt.is_plain() {
        v.write_json(out);
    } else {
        Pretty { fmt, level: 0 }.write(v, out);
    }
}

/// Writes a list of values as one JSON array (the reply of `$` paths).
pub fn write_array<'a>(vals: impl IntoIterator<Item = &'a JVal>, fmt: &Format, out: &mut Vec<u8>) {
    let arr = JVal::Arr(vals.into_iter().cloned().collect());
    write_formatted(&arr, fmt, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> JVal {
        JVal::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn numbers_keep_their_kind_and_print_as_redisjson() {
        assert_eq!(p("7"), JVal::Int(7));
        assert_eq!(p("7.0"), JVal::Float(7.0));
        assert_eq!(p("7.0").to_json(), b"7.0");
        assert_eq!(p("1e300").to_json(), b"1e300");
        assert_eq!(p("-0.5").to_json(), b"-0.5");
        assert_eq!(p("9223372036854775807"), JVal::Int(i64::MAX));
        assert!(matches!(p("9223372036854775808"), JVal::Float(_)));
    }

    #[test]
    fn objects_keep_insertion_order() {
        let v = p(r#"{"b":1,"a":{"z":[1,2],"y":null},"c":"x\"y"}"#);
        assert_eq!(
            v.to_json(),
            br#"{"b":1,"a":{"z":[1,2],"y":null},"c":"x\"y"}"#
        );
    }

    #[test]
    fn malformed_json_gives_serde_message() {
        assert_eq!(
            JVal::parse(b"{").unwrap_err(),
            "EOF while parsing an object at line 1 column 1"
        );
        assert!(JVal::parse(b"[1,]").is_err());
        assert!(JVal::parse(b"1 2").is_err());
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(JVal::parse(deep.as_bytes()).is_err());
        assert!(JVal::parse_unlimited(deep.as_bytes()).is_ok());
    }

    #[test]
    fn formatting_follows_redisjson_formatter() {
        let v = p(r#"{"a":[1,{}],"b":{}}"#);
        let f = Format {
            indent: Some("\t".into()),
            newline: Some("\n".into()),
            space: Some(" ".into()),
        };
        assert_eq!(
            String::from_utf8(v.to_json_formatted(&f)).unwrap(),
            "{\n\t\"a\": [\n\t\t1,\n\t\t{}\n\t],\n\t\"b\": {}\n}"
        );
    }

    #[test]
    fn debug_memory_matches_redisjson_test() {
        // RedisJSON 2.6's own unit test of get_memory (ivalue_manager.rs): 903.
        let v = p(r#"{"a": 100.12, "b": "foo", "c": true, "d": 126, "e": -112,
            "f": 7388608, "g": -6388608, "h": 9388608, "i": -9485608, "j": [], "k": {},
            "l": [1, "asas", {"a": 1}], "m": {"t": "f"}}"#);
        assert_eq!(v.debug_memory(), 903);
    }

    #[test]
    fn merge_patch() {
        let mut v = p(r#"{"a":1,"b":{"c":2,"d":3}}"#);
        v.merge(&p(r#"{"a":null,"b":{"c":9},"e":[1]}"#));
        assert_eq!(v.to_json(), br#"{"b":{"c":9,"d":3},"e":[1]}"#);
        v.merge(&p("5"));
        assert_eq!(v, JVal::Int(5));
    }
}
