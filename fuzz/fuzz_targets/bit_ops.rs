//! The bit functions on arbitrary arguments: the first byte picks the function, the
//! rest are its arguments separated by spaces (numbers where they parse, strings
//! otherwise).
#![no_main]
mod common;
use libfuzzer_sys::fuzz_target;

const OPS: [&str; 12] = [
    "tobit", "tohex", "bnot", "band", "bor", "bxor", "lshift", "rshift", "arshift", "rol", "ror",
    "bswap",
];

fuzz_target!(|data: &[u8]| {
    let (sel, rest) = data.split_first().unwrap_or((&0, &[]));
    let op = OPS[*sel as usize % OPS.len()];
    let mut args: Vec<&[u8]> = vec![op.as_bytes()];
    args.extend(rest.split(|&c| c == b' ').take(8));
    let r = common::eval(
        "local a = {} for i = 2, #ARGV do a[#a + 1] = tonumber(ARGV[i]) or ARGV[i] end \
         local r = {pcall(bit[ARGV[1]], unpack(a))} return {tostring(r[1]), tostring(r[2])}",
        &args,
    );
    assert!(!r.is_empty());
});
