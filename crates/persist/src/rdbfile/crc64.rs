//! Redis's CRC-64 (`src/crc64.c`: the Jones polynomial 0xad93d23594c935a9, reflected,
//! initial value 0, no final xor), computed incrementally over a stream.
//!
//! The `crc` crate's `CRC_64_REDIS` is this checksum; the 16-table implementation
//! processes 16 bytes per step, as Redis's own crcspeed does 8.

use crc::{Crc, Digest, Table};

static CRC64: Crc<u64, Table<16>> = Crc::<u64, Table<16>>::new(&crc::CRC_64_REDIS);

/// A running CRC-64 of the bytes fed so far.
#[derive(Clone)]
pub struct Crc64 {
    digest: Digest<'static, u64, Table<16>>,
}

impl Default for Crc64 {
    fn default() -> Self {
        Crc64::new()
    }
}

impl Crc64 {
    pub fn new() -> Crc64 {
        Crc64 {
            digest: CRC64.digest(),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.digest.update(bytes);
    }

    /// The checksum of everything fed so far (the digest goes on).
    pub fn value(&self) -> u64 {
        self.digest.clone().finalize()
    }
}

/// `crc64(0, data, len)`.
pub fn crc64(data: &[u8]) -> u64 {
    CRC64.checksum(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_test_vectors() {
        // src/crc64.c's own test: crc64(0, "123456789", 9) == 0xe9c6d914c4b8d9ca.
        assert_eq!(crc64(b"123456789"), 0xe9c6_d914_c4b8_d9ca);
        let li = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis aute irure dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla pariatur. Excepteur sint occaecat cupidatat non proident, sunt in culpa qui officia deserunt mollit anim id est laborum.\0";
        // (`sizeof(li)`: the C string's terminating NUL is part of the input.)
        assert_eq!(crc64(li), 0xc779_4709_e696_83b3);
        // Incremental in uneven pieces equals one pass, and agrees with the engine's.
        let mut c = Crc64::new();
        for piece in li.chunks(7) {
            c.update(piece);
        }
        assert_eq!(c.value(), crc64(li));
        assert_eq!(c.value(), redsnap_engine::rdb::crc64(li));
    }
}
