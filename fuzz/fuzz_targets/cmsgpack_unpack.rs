//! cmsgpack.unpack / unpack_one / unpack_limit on arbitrary bytes (the first byte
//! picks the function and the limit), and the values back through cmsgpack.pack.
#![no_main]
mod common;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (sel, input) = data.split_first().unwrap_or((&0, &[]));
    let script = match sel % 3 {
        0 => {
            "local r = {pcall(cmsgpack.unpack, ARGV[1])} \
              if r[1] then pcall(cmsgpack.pack, unpack(r, 2)) end return #r"
        }
        1 => "local r = {pcall(cmsgpack.unpack_one, ARGV[1], tonumber(ARGV[2]))} return #r",
        _ => {
            "local r = {pcall(cmsgpack.unpack_limit, ARGV[1], tonumber(ARGV[2]))} \
              if r[1] then return r end return r[2]"
        }
    };
    let n = (sel / 3).to_string();
    let r = common::eval(script, &[input, n.as_bytes()]);
    assert!(!r.is_empty());
});
