//! struct.unpack / struct.pack / struct.size with an arbitrary format and data
//! (input split at the first NUL: format, then data).
#![no_main]
mod common;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (fmt, rest) = match data.iter().position(|&c| c == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let r = common::eval(
        "local r = {pcall(struct.unpack, ARGV[1], ARGV[2])} \
         local s = {pcall(struct.size, ARGV[1])} \
         local p = {pcall(struct.pack, ARGV[1], 1, 2, 3, 'abc', 4.5)} \
         return {#r, #s, #p, tostring(r[2])}",
        &[fmt, rest],
    );
    assert!(!r.is_empty());
});
