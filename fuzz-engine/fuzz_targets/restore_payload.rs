//! RESTORE's payload decoder on arbitrary bytes.
//!
//! The input is a DUMP payload without its footer (object type byte, then the value):
//! the target appends the RDB version and a correct CRC64, so the fuzzer's mutations
//! reach the decoder instead of failing the checksum. Decoding runs with RESTORE's
//! smallest budget (64 MiB). Whatever decodes must re-encode into a payload that
//! decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use redsnap_engine::rdb::{self, Budget, RDB_VERSION};

fuzz_target!(|body: &[u8]| {
    let mut p = body.to_vec();
    p.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = rdb::crc64(&p);
    p.extend_from_slice(&crc.to_le_bytes());
    if let Ok(v) = rdb::parse_payload_within(&p, Budget::new(64 << 20)) {
        let again = rdb::parse_payload(&rdb::dump_payload(&v));
        assert_eq!(
            again.as_ref(),
            Ok(&v),
            "re-encoded value decodes differently"
        );
    }
    // The compact blob parsers on their own.
    let _ = rdb::parse_listpack(body);
    let _ = rdb::parse_ziplist(body);
    let _ = rdb::parse_intset(body);
});
