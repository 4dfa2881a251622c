//! Value encoding: MessagePack (named fields) or JSON, optionally LZ4-frame
//! compressed, inside a 6-byte versioned envelope.
//!
//! ```text
//! offset 0..4  magic   b"RSNP"
//! offset 4     version 0x01
//! offset 5     codec   0x01 msgpack | 0x02 msgpack+lz4 | 0x03 json | 0x04 json+lz4
//! offset 6..   payload (LZ4 frame format when compressed)
//! ```

use std::io::{Read, Write};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{DecodeError, Error, Result};

/// Envelope magic bytes.
pub const MAGIC: &[u8; 4] = b"RSNP";
/// Current envelope format version.
pub const VERSION: u8 = 1;
/// Header length (magic + version + codec).
pub const HEADER_LEN: usize = 6;
/// Payloads smaller than this are never compressed: below 1 KiB an LZ4
/// frame saves a few dozen bytes for 4x the encode time (measured in
/// BENCHMARKS.md, "Library"), so small states are stored as 0x01/0x03.
pub const COMPRESS_MIN: usize = 1024;

/// Codec id byte of the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum CodecId {
    /// MessagePack with named fields, uncompressed.
    Msgpack = 0x01,
    /// MessagePack with named fields, LZ4 frame.
    MsgpackLz4 = 0x02,
    /// JSON, uncompressed.
    Json = 0x03,
    /// JSON, LZ4 frame.
    JsonLz4 = 0x04,
}

impl CodecId {
    /// Parse the codec byte.
    pub fn from_byte(b: u8) -> Result<Self, DecodeError> {
        Ok(match b {
            0x01 => Self::Msgpack,
            0x02 => Self::MsgpackLz4,
            0x03 => Self::Json,
            0x04 => Self::JsonLz4,
            other => return Err(DecodeError::UnknownCodec(other)),
        })
    }
}

/// Serialization format chosen by the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// MessagePack with named fields (`rmp_serde::to_vec_named`).
    #[default]
    Msgpack,
    /// JSON (`serde_json`).
    Json,
}

/// How values are written. Reading accepts every codec id regardless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codec {
    /// Serialization format.
    pub format: Format,
    /// Compress with LZ4 frame when it makes the value smaller.
    pub compress: bool,
}

impl Default for Codec {
    fn default() -> Self {
        Self::MSGPACK_LZ4
    }
}

/// Sizes of one encoding, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodedSize {
    /// Serialized size before compression.
    pub raw: usize,
    /// Size stored (envelope included).
    pub stored: usize,
}

impl Codec {
    /// MessagePack + LZ4 (the default).
    pub const MSGPACK_LZ4: Codec = Codec {
        format: Format::Msgpack,
        compress: true,
    };
    /// JSON, uncompressed (human-readable in redis-cli).
    pub const JSON: Codec = Codec {
        format: Format::Json,
        compress: false,
    };

    /// Encode `value` into an envelope.
    pub fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>> {
        self.encode_with_size(value).map(|(v, _)| v)
    }

    /// Encode and report sizes.
    pub fn encode_with_size<T: Serialize + ?Sized>(
        &self,
        value: &T,
    ) -> Result<(Vec<u8>, EncodedSize)> {
        // Serialize into a buffer sized like the last value this thread
        // encoded, so big states are not copied through repeated growth.
        let mut raw = Vec::with_capacity(SIZE_HINT.with(|h| h.get()));
        match self.format {
            Format::Msgpack => rmp_serde::encode::write_named(&mut raw, value)
                .map_err(|e| Error::Encode(e.to_string()))?,
            Format::Json => {
                serde_json::to_writer(&mut raw, value).map_err(|e| Error::Encode(e.to_string()))?
            }
        };
        SIZE_HINT.with(|h| h.set((raw.len() + raw.len() / 8).clamp(256, MAX_SIZE_HINT)));
        let raw_len = raw.len();
        let (plain_id, lz_id) = match self.format {
            Format::Msgpack => (CodecId::Msgpack, CodecId::MsgpackLz4),
            Format::Json => (CodecId::Json, CodecId::JsonLz4),
        };
        if self.compress && raw.len() >= COMPRESS_MIN && compression_may_pay(&raw) {
            let compressed = lz4_compress(&raw)?;
            if compressed.len() < raw.len() {
                let out = wrap(lz_id, &compressed);
                let stored = out.len();
                return Ok((
                    out,
                    EncodedSize {
                        raw: raw_len,
                        stored,
                    },
                ));
            }
        }
        let out = wrap(plain_id, &raw);
        let stored = out.len();
        Ok((
            out,
            EncodedSize {
                raw: raw_len,
                stored,
            },
        ))
    }
}

fn wrap(id: CodecId, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(id as u8);
    out.extend_from_slice(payload);
    out
}

thread_local! {
    static SIZE_HINT: std::cell::Cell<usize> = const { std::cell::Cell::new(256) };
}

/// Largest serialization buffer preallocated from the size hint.
const MAX_SIZE_HINT: usize = 64 << 20;

/// Values at least this big are sampled before being compressed whole.
const SAMPLE_FROM: usize = 1 << 20;
const SAMPLE_LEN: usize = 64 << 10;

/// For big values, compress a 64 KiB sample from the middle first and skip
/// compression when it saves less than 10 % (already compressed or random
/// data), instead of paying for compressing megabytes for nothing.
fn compression_may_pay(raw: &[u8]) -> bool {
    if raw.len() < SAMPLE_FROM {
        return true;
    }
    let start = raw.len() / 2 - SAMPLE_LEN / 2;
    let sample = &raw[start..start + SAMPLE_LEN];
    lz4_flex::block::compress(sample).len() < SAMPLE_LEN * 9 / 10
}

fn lz4_compress(raw: &[u8]) -> Result<Vec<u8>> {
    let mut info = lz4_flex::frame::FrameInfo::new();
    info.content_checksum = true;
    info.content_size = Some(raw.len() as u64);
    // 4 MiB blocks for big values: fewer, larger blocks compress faster and
    // smaller than 64 KiB ones (BENCHMARKS.md, "Library"); values under
    // 1 MiB keep 64 KiB blocks so readers allocate little.
    if raw.len() > 1 << 20 {
        info.block_size = lz4_flex::frame::BlockSize::Max4MB;
    }
    // Compressible states shrink 2-4x: start with room for half the input.
    let out = Vec::with_capacity(raw.len() / 2 + 64);
    let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, out);
    enc.write_all(raw)
        .map_err(|e| Error::Encode(format!("lz4: {e}")))?;
    enc.finish().map_err(|e| Error::Encode(format!("lz4: {e}")))
}

fn lz4_decompress(data: &[u8]) -> Result<Vec<u8>, DecodeError> {
    // The frame header carries the content size (we always set it): size
    // the output once, bounded so a forged header cannot allocate much.
    let cap = frame_content_size(data)
        .map(|n| n.min((data.len() as u64).saturating_mul(255)).min(1 << 30) as usize)
        .unwrap_or(data.len() * 3);
    let mut out = Vec::with_capacity(cap);
    lz4_flex::frame::FrameDecoder::new(data)
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::Decompress(e.to_string()))?;
    Ok(out)
}

/// Content size from an LZ4 frame header, when present (FLG bit 3).
fn frame_content_size(data: &[u8]) -> Option<u64> {
    if data.len() < 14 || data[..4] != [0x04, 0x22, 0x4D, 0x18] || data[4] & 0x08 == 0 {
        return None;
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&data[6..14]);
    Some(u64::from_le_bytes(b))
}

/// Split an envelope into its codec and the (decompressed) serialized bytes.
pub fn open_envelope(bytes: &[u8]) -> Result<(CodecId, Vec<u8>), DecodeError> {
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::TooShort { len: bytes.len() });
    }
    if &bytes[..4] != MAGIC {
        let mut found = [0u8; 4];
        found.copy_from_slice(&bytes[..4]);
        return Err(DecodeError::BadMagic { found });
    }
    if bytes[4] != VERSION {
        return Err(DecodeError::UnsupportedVersion(bytes[4]));
    }
    let id = CodecId::from_byte(bytes[5])?;
    let payload = &bytes[HEADER_LEN..];
    let raw = match id {
        CodecId::MsgpackLz4 | CodecId::JsonLz4 => lz4_decompress(payload)?,
        CodecId::Msgpack | CodecId::Json => payload.to_vec(),
    };
    Ok((id, raw))
}

/// Decode an envelope written by any codec.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let (id, raw) = open_envelope(bytes)?;
    match id {
        CodecId::Msgpack | CodecId::MsgpackLz4 => {
            rmp_serde::from_slice(&raw).map_err(|e| DecodeError::Msgpack(e.to_string()))
        }
        CodecId::Json | CodecId::JsonLz4 => {
            serde_json::from_slice(&raw).map_err(|e| DecodeError::Json(e.to_string()))
        }
    }
}

/// Decode, attaching the key name to the error.
pub(crate) fn decode_key<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    decode(bytes).map_err(|source| Error::Decode {
        key: key.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq, Clone)]
    struct S {
        name: String,
        values: Vec<u32>,
    }

    fn sample(n: usize) -> S {
        S {
            name: "hello".repeat(n),
            values: (0..n as u32).collect(),
        }
    }

    #[test]
    fn round_trips_every_codec() {
        for codec in [
            Codec::MSGPACK_LZ4,
            Codec::JSON,
            Codec {
                format: Format::Json,
                compress: true,
            },
            Codec {
                format: Format::Msgpack,
                compress: false,
            },
        ] {
            for n in [0, 1, 10, 1000] {
                let s = sample(n);
                let bytes = codec.encode(&s).unwrap();
                assert_eq!(&bytes[..4], MAGIC);
                assert_eq!(bytes[4], VERSION);
                assert_eq!(decode::<S>(&bytes).unwrap(), s);
            }
        }
    }

    #[test]
    fn small_values_stay_uncompressed_and_big_ones_compress() {
        let small = Codec::MSGPACK_LZ4.encode(&sample(1)).unwrap();
        assert_eq!(small[5], CodecId::Msgpack as u8);
        let (big, size) = Codec::MSGPACK_LZ4.encode_with_size(&sample(2000)).unwrap();
        assert_eq!(big[5], CodecId::MsgpackLz4 as u8);
        assert!(size.stored * 2 < size.raw, "{size:?}");
    }

    #[test]
    fn incompressible_big_values_are_stored_plain() {
        let mut x = 0x1234_5678_9abc_def0u64;
        let noise: Vec<u8> = (0..2 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let bytes = Codec::MSGPACK_LZ4
            .encode(&serde_bytes_like(&noise))
            .unwrap();
        assert_eq!(bytes[5], CodecId::Msgpack as u8);
        let big = Codec::MSGPACK_LZ4.encode(&sample(300_000)).unwrap();
        assert_eq!(big[5], CodecId::MsgpackLz4 as u8);
        assert!(frame_content_size(&big[HEADER_LEN..]).is_some());
        assert_eq!(decode::<S>(&big).unwrap(), sample(300_000));
    }

    fn serde_bytes_like(b: &[u8]) -> Vec<u32> {
        b.chunks(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) | 0x8000_0000)
            .collect()
    }

    #[test]
    fn msgpack_uses_named_fields() {
        let bytes = Codec {
            format: Format::Msgpack,
            compress: false,
        }
        .encode(&sample(1))
        .unwrap();
        let needle = b"values";
        assert!(bytes.windows(needle.len()).any(|w| w == needle));
    }

    proptest::proptest! {
        #[test]
        fn any_value_round_trips(name in ".*", values in proptest::collection::vec(0u32..1000, 0..300), json in proptest::bool::ANY, compress in proptest::bool::ANY) {
            let s = S { name, values };
            let codec = Codec { format: if json { Format::Json } else { Format::Msgpack }, compress };
            let bytes = codec.encode(&s).unwrap();
            proptest::prop_assert_eq!(decode::<S>(&bytes).unwrap(), s);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200), codec in 1u8..=4) {
            let mut v = b"RSNP\x01".to_vec();
            v.push(codec);
            v.extend_from_slice(&bytes);
            let _ = decode::<S>(&v);
            let _ = decode::<S>(&bytes);
        }
    }

    #[test]
    fn garbage_gives_clear_errors() {
        assert_eq!(decode::<S>(b"RSN"), Err(DecodeError::TooShort { len: 3 }));
        assert!(matches!(
            decode::<S>(b"XXXX\x01\x01abc"),
            Err(DecodeError::BadMagic { .. })
        ));
        assert_eq!(
            decode::<S>(b"RSNP\x09\x01abc"),
            Err(DecodeError::UnsupportedVersion(9))
        );
        assert_eq!(
            decode::<S>(b"RSNP\x01\x7fabc"),
            Err(DecodeError::UnknownCodec(0x7f))
        );
        let big = Codec::MSGPACK_LZ4.encode(&sample(2000)).unwrap();
        let truncated = &big[..big.len() / 2];
        assert!(matches!(
            decode::<S>(truncated),
            Err(DecodeError::Decompress(_))
        ));
        let small = Codec {
            format: Format::Msgpack,
            compress: false,
        }
        .encode(&sample(3))
        .unwrap();
        assert!(matches!(
            decode::<S>(&small[..small.len() - 2]),
            Err(DecodeError::Msgpack(_))
        ));
        let msg = decode::<S>(b"RSNP\x01\x7fabc").unwrap_err().to_string();
        assert!(msg.contains("unknown redsnap codec"), "{msg}");
    }
}
