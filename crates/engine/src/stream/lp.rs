//! Redis's listpack encoding (`listpack.c`): element sizes, so that stream nodes
//! split where Redis's do (`stream-node-max-bytes`), and a writer for the listpacks
//! of RDB stream payloads.

/// The header: 32-bit total bytes and 16-bit element count.
pub const HEADER: usize = 6;
/// The end marker.
pub const EOF: u8 = 0xFF;
/// Redis's `STREAM_LISTPACK_MAX_SIZE` (1 GiB).
pub const MAX_SIZE: u64 = 1 << 30;

/// Bytes of the backlen of an element whose encoding takes `l` bytes.
pub fn backlen_size(l: usize) -> usize {
    if l <= 127 {
        1
    } else if l < 16383 {
        2
    } else if l < 2097151 {
        3
    } else if l < 268435455 {
        4
    } else {
        5
    }
}

fn int_enc_len(v: i64) -> usize {
    if (0..=127).contains(&v) {
        1
    } else if (-4096..=4095).contains(&v) {
        2
    } else if (-32768..=32767).contains(&v) {
        3
    } else if (-8388608..=8388607).contains(&v) {
        4
    } else if (-2147483648..=2147483647).contains(&v) {
        5
    } else {
        9
    }
}

/// Bytes an integer element takes, backlen included.
pub fn int_size(v: i64) -> usize {
    let l = int_enc_len(v);
    l + backlen_size(l)
}

fn str_enc_len(len: usize) -> usize {
    if len < 64 {
        1 + len
    } else if len < 4096 {
        2 + len
    } else {
        5 + len
    }
}

/// Bytes a string element takes (stored as an integer when it reads as one, as
/// `lpAppend` does), backlen included.
pub fn str_size(s: &[u8]) -> usize {
    match as_int(s) {
        Some(v) => int_size(v),
        None => {
            let l = str_enc_len(s.len());
            l + backlen_size(l)
        }
    }
}

/// `lpStringToInt64`: Redis's `string2ll` rules.
pub fn as_int(s: &[u8]) -> Option<i64> {
    crate::num::parse_i64(s)
}

/// Builds a listpack.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
    count: usize,
}

impl Writer {
    pub fn new() -> Writer {
        Writer {
            buf: vec![0; HEADER],
            count: 0,
        }
    }

    fn backlen(&mut self, l: usize) {
        let l = l as u64;
        let n = backlen_size(l as usize);
        let mut b = [0u8; 5];
        match n {
            1 => b[0] = l as u8,
            2 => {
                b[0] = (l >> 7) as u8;
                b[1] = ((l & 127) | 128) as u8;
            }
            3 => {
                b[0] = (l >> 14) as u8;
                b[1] = (((l >> 7) & 127) | 128) as u8;
                b[2] = ((l & 127) | 128) as u8;
            }
            4 => {
                b[0] = (l >> 21) as u8;
                b[1] = (((l >> 14) & 127) | 128) as u8;
                b[2] = (((l >> 7) & 127) | 128) as u8;
                b[3] = ((l & 127) | 128) as u8;
            }
            _ => {
                b[0] = (l >> 28) as u8;
                b[1] = (((l >> 21) & 127) | 128) as u8;
                b[2] = (((l >> 14) & 127) | 128) as u8;
                b[3] = (((l >> 7) & 127) | 128) as u8;
                b[4] = ((l & 127) | 128) as u8;
            }
        }
        self.buf.extend_from_slice(&b[..n]);
    }

    pub fn int(&mut self, v: i64) {
        let start = self.buf.len();
        if (0..=127).contains(&v) {
            self.buf.push(v as u8);
        } else if (-4096..=4095).contains(&v) {
            let u = if v < 0 { (1i64 << 13) + v } else { v } as u64;
            self.buf.push(((u >> 8) as u8) | 0xC0);
            self.buf.push(u as u8);
        } else if (-32768..=32767).contains(&v) {
            self.buf.push(0xF1);
            self.buf.extend_from_slice(&(v as i16).to_le_bytes());
        } else if (-8388608..=8388607).contains(&v) {
            self.buf.push(0xF2);
            self.buf.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
        } else if (-2147483648..=2147483647).contains(&v) {
            self.buf.push(0xF3);
            self.buf.extend_from_slice(&(v as i32).to_le_bytes());
        } else {
            self.buf.push(0xF4);
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
        let l = self.buf.len() - start;
        self.backlen(l);
        self.count += 1;
    }

    pub fn str(&mut self, s: &[u8]) {
        if let Some(v) = as_int(s) {
            self.int(v);
            return;
        }
        let start = self.buf.len();
        let len = s.len();
        if len < 64 {
            self.buf.push(len as u8 | 0x80);
        } else if len < 4096 {
            self.buf.push(((len >> 8) as u8) | 0xE0);
            self.buf.push(len as u8);
        } else {
            self.buf.push(0xF0);
            self.buf.extend_from_slice(&(len as u32).to_le_bytes());
        }
        self.buf.extend_from_slice(s);
        let l = self.buf.len() - start;
        self.backlen(l);
        self.count += 1;
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(EOF);
        let total = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&total.to_le_bytes());
        let n = if self.count < 65535 {
            self.count as u16
        } else {
            65535
        };
        self.buf[4..6].copy_from_slice(&n.to_le_bytes());
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_the_writer() {
        for v in [
            0i64,
            127,
            128,
            -1,
            4095,
            -4096,
            4096,
            32767,
            -32769,
            8388607,
            1 << 31,
            i64::MIN,
        ] {
            let mut w = Writer::new();
            w.int(v);
            assert_eq!(w.finish().len(), HEADER + 1 + int_size(v), "{v}");
        }
        for len in [0usize, 1, 63, 64, 4095, 4096, 20000] {
            let s = vec![b'x'; len];
            let mut w = Writer::new();
            w.str(&s);
            assert_eq!(w.finish().len(), HEADER + 1 + str_size(&s), "{len}");
        }
        assert_eq!(str_size(b"12"), int_size(12));
    }
}
