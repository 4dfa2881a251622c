//! cjson.decode on arbitrary bytes, and the decoded value back through
//! cjson.encode and the script reply conversion.
#![no_main]
mod common;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let r = common::eval(
        "local ok, v = pcall(cjson.decode, ARGV[1]) \
         if ok then pcall(cjson.encode, v) return {type(v), v} end return v",
        &[data],
    );
    assert!(!r.is_empty());
});
