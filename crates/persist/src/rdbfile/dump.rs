//! DUMP and FUNCTION DUMP payloads, as `redsnap backup --method scan` receives them
//! from a server that refuses SYNC: an RDB-encoded value (or function libraries),
//! then the RDB version of the server that made it (2 bytes, little-endian) and a
//! CRC-64 of everything before (8 bytes, little-endian), as Redis's
//! `createDumpPayload` and `functionDumpCommand` write them.

use super::opcode;
use bytes::Bytes;
use redsnap_engine::rdb::{self as codec, Budget, RdbError};
use redsnap_engine::Value;

/// A DUMP payload taken apart, its checksum checked.
#[derive(Debug, Clone, Copy)]
pub struct DumpPayload<'a> {
    /// The RDB object type (the encoding the source held the value in).
    pub rdb_type: u8,
    /// The value's RDB encoding, without the type byte and the footer.
    pub body: &'a [u8],
    /// The RDB version of the server that made it.
    pub version: u16,
}

/// Splits off the footer (version and CRC-64) and checks the CRC.
fn footer(p: &[u8]) -> Result<(&[u8], u16), String> {
    if p.len() < 10 {
        return Err(format!(
            "payload of {} bytes is shorter than its footer",
            p.len()
        ));
    }
    let (data, crc) = p.split_at(p.len() - 8);
    let stored = u64::from_le_bytes(crc.try_into().map_err(|_| "short footer".to_string())?);
    let computed = super::crc64::crc64(data);
    if stored != computed {
        return Err(format!(
            "payload checksum mismatch: its footer says {stored:016x}, its bytes give {computed:016x}"
        ));
    }
    let (body, ver) = data.split_at(data.len() - 2);
    Ok((body, u16::from_le_bytes([ver[0], ver[1]])))
}

impl<'a> DumpPayload<'a> {
    /// Parses a DUMP reply: checks the CRC-64, reads the version.
    pub fn parse(p: &'a [u8]) -> Result<DumpPayload<'a>, String> {
        let (data, version) = footer(p)?;
        let Some((&rdb_type, body)) = data.split_first() else {
            return Err("payload holds no value".into());
        };
        Ok(DumpPayload {
            rdb_type,
            body,
            version,
        })
    }

    /// Decodes the value (for a payload of a newer RDB version than the writer's,
    /// re-encoded in the writer's plain encodings). The body must be exactly one
    /// value. Module values are an error.
    pub fn decode(&self, limit: u64) -> Result<Value, String> {
        let mut r = codec::Reader::with_budget(self.body, Budget::new(limit));
        let v = if self.rdb_type == codec::SET_LISTPACK {
            codec::read_set_listpack(&mut r)
        } else {
            codec::read_value(&mut r, self.rdb_type)
        };
        let v = v.and_then(|v| {
            if r.is_at_end() {
                Ok(v)
            } else {
                Err(RdbError::Trailing)
            }
        });
        v.map_err(|e| format!("{} value: {e}", super::type_name(self.rdb_type)))
    }
}

/// The function libraries (their code) of a FUNCTION DUMP reply, its checksum
/// checked: FUNCTION2 opcodes, each followed by an RDB string.
pub fn function_dump_libraries(p: &[u8]) -> Result<Vec<Bytes>, String> {
    let (data, _version) = footer(p)?;
    let mut r = codec::Reader::new(data);
    let mut out = Vec::new();
    while !r.is_at_end() {
        match r.read_u8().map_err(|e| e.to_string())? {
            opcode::FUNCTION2 => out.push(
                r.read_string()
                    .map_err(|e| format!("function library {}: {e}", out.len() + 1))?,
            ),
            other => return Err(format!("unexpected opcode {other} in the payload")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(ty: u8, body: &[u8], version: u16) -> Vec<u8> {
        let mut p = vec![ty];
        p.extend_from_slice(body);
        p.extend_from_slice(&version.to_le_bytes());
        let crc = super::super::crc64::crc64(&p);
        p.extend_from_slice(&crc.to_le_bytes());
        p
    }

    #[test]
    fn payloads_are_checked_and_split() {
        let v = Value::Str(Bytes::from_static(b"hello"));
        let p = codec::dump_payload(&v);
        let d = DumpPayload::parse(&p).unwrap();
        assert_eq!((d.rdb_type, d.version), (0, 10));
        assert_eq!(d.decode(1 << 20).unwrap(), v);
        let mut bad = p.clone();
        bad[2] ^= 1;
        assert!(DumpPayload::parse(&bad).unwrap_err().contains("checksum"));
        assert!(DumpPayload::parse(&p[..5]).is_err());
        // A body with bytes after the value.
        let mut body = codec::encode_value(&v);
        body.push(0);
        let p = payload(0, &body, 11);
        assert!(DumpPayload::parse(&p).unwrap().decode(1 << 20).is_err());
    }

    #[test]
    fn function_payloads() {
        let mut body = Vec::new();
        for code in ["#!lua name=a\nx", "#!lua name=b\ny"] {
            body.push(opcode::FUNCTION2);
            codec::write_string(&mut body, code.as_bytes());
        }
        let mut p = body.clone();
        p.extend_from_slice(&10u16.to_le_bytes());
        let crc = super::super::crc64::crc64(&p);
        p.extend_from_slice(&crc.to_le_bytes());
        let libs = function_dump_libraries(&p).unwrap();
        assert_eq!(libs.len(), 2);
        assert_eq!(&libs[1][..], b"#!lua name=b\ny");
        // No libraries: the footer alone.
        let mut empty = 10u16.to_le_bytes().to_vec();
        let crc = super::super::crc64::crc64(&empty);
        empty.extend_from_slice(&crc.to_le_bytes());
        assert!(function_dump_libraries(&empty).unwrap().is_empty());
        p[0] = 7;
        assert!(function_dump_libraries(&p).is_err());
    }
}
