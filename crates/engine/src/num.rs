//! Number parsing and formatting with Redis's exact rules.

use bytes::Bytes;

/// Redis's `string2ll`: optional `-`, digits, no leading zeros, no `+`, no spaces, fits i64.
pub fn parse_i64(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    if b == b"0" {
        return Some(0);
    }
    let (neg, digits) = if b[0] == b'-' {
        (true, &b[1..])
    } else {
        (false, b)
    };
    if digits.is_empty() || digits[0] == b'0' {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    if neg {
        if v > (i64::MAX as u64) + 1 {
            None
        } else {
            Some((v as i64).wrapping_neg())
        }
    } else if v > i64::MAX as u64 {
        None
    } else {
        Some(v as i64)
    }
}

/// `strtoull`-like parse used for SCAN cursors (Redis's `parseScanCursorOrReply`).
pub fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 20 || !b.iter().all(|c| c.is_ascii_digit()) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Redis's `string2d` / `getDoubleFromObject`: a `strtod` float, no leading space, no NaN.
/// Accepts `inf`, `+inf`, `-inf`, `infinity` (any case), hex floats are not accepted.
/// Redis's string2ld (strtold, long double range, at most 5 KiB of text): None when
/// `b` is not a number, else whether it is finite. Decimals are converted exactly;
/// other forms (hex, inf) follow [`parse_f64`].
pub fn ld_valid(b: &[u8]) -> Option<bool> {
    if b.is_empty() || b.len() > 5 * 1024 || b[0].is_ascii_whitespace() {
        return None;
    }
    match crate::ld::parse(b) {
        crate::ld::Parsed::Num(_) => Some(true),
        crate::ld::Parsed::Overflow | crate::ld::Parsed::Underflow => None,
        crate::ld::Parsed::Other => parse_f64(b).map(f64::is_finite),
    }
}

pub fn parse_f64(b: &[u8]) -> Option<f64> {
    if b.is_empty() || b[0].is_ascii_whitespace() || b.len() > 5000 {
        return None;
    }
    let s = std::str::from_utf8(b).ok()?;
    let lower = s.to_ascii_lowercase();
    let t = lower.trim_start_matches(['+', '-']);
    if t.starts_with("nan") || t.starts_with("0x") {
        return None;
    }
    // Rust's parser accepts what strtod accepts for decimal input, except it rejects
    // trailing garbage (as Redis does) and accepts "inf"/"infinity".
    let v: f64 = lower.parse().ok()?;
    if v.is_nan() {
        return None;
    }
    // strtod reports ERANGE for overflow (HUGE_VAL) and underflow to zero, and Redis
    // refuses both.
    if v.is_infinite() && !t.starts_with("inf") {
        return None;
    }
    if v == 0.0 {
        let mantissa = t.split('e').next().unwrap_or("");
        if mantissa.bytes().any(|c| (b'1'..=b'9').contains(&c)) {
            return None;
        }
    }
    Some(v)
}

/// Format like C's `%.17g` (Redis 7.0's `addReplyDouble`).
pub fn fmt_g17(v: f64) -> String {
    fmt_g(v, 17)
}

/// Format like C's `%.{prec}g`.
pub fn fmt_g(v: f64, prec: usize) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let p = prec.max(1);
    // Exponent after rounding to p significant digits.
    let e_repr = format!("{:.*e}", p - 1, v);
    let (mant, exp) = e_repr.split_once('e').unwrap_or((&e_repr, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= p as i32 {
        let mant = trim_zeros(mant);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        trim_zeros(&format!("{:.*}", decimals, v)).to_string()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        let t = s.trim_end_matches('0');
        t.trim_end_matches('.')
    } else {
        s
    }
}

/// Format an i64 as bytes.
pub fn int_bytes(v: i64) -> Bytes {
    let mut buf = itoa::Buffer::new();
    Bytes::copy_from_slice(buf.format(v).as_bytes())
}

/// Redis's `ld2string(..., LD_STR_HUMAN)` for INCRBYFLOAT results: fixed notation with
/// 17 decimals, trailing zeros removed. Redis computes in `long double`; we compute the
/// sum exactly in decimal when both operands are short decimals (the common case, where
/// `long double` is exact at 17 places too) and fall back to f64 otherwise.
pub fn fmt_human(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let s = format!("{:.17}", v);
    let t = trim_zeros(&s);
    if t == "-0" {
        "0".into()
    } else {
        t.to_string()
    }
}

/// INCRBYFLOAT arithmetic: `cur + incr`, formatted as Redis would store it.
/// Returns None when the result is not finite.
pub fn incr_float(cur: &[u8], incr: &[u8]) -> Option<(f64, String)> {
    use crate::ld::Parsed;
    // Exact x87 long double emulation for decimals (what Redis computes in); a sum
    // beyond the long double range is Infinity.
    if let (Parsed::Num(a), Parsed::Num(b)) = (crate::ld::parse(cur), crate::ld::parse(incr)) {
        let text = crate::ld::format(crate::ld::add(a, b))?;
        let v = parse_f64(text.as_bytes()).unwrap_or(f64::NAN);
        return Some((v, text));
    }
    // Other forms (huge exponents, very long fractions): f64 arithmetic.
    let v = parse_f64(cur)? + parse_f64(incr)?;
    if !v.is_finite() {
        return None;
    }
    Some((v, fmt_human(v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"01"), None);
        assert_eq!(parse_i64(b"+1"), None);
        assert_eq!(parse_i64(b" 1"), None);
        assert_eq!(parse_i64(b"-0"), None);
        assert_eq!(parse_i64(b"-"), None);
        assert_eq!(parse_i64(b""), None);
    }

    #[test]
    fn g17() {
        assert_eq!(fmt_g17(1.5), "1.5");
        assert_eq!(fmt_g17(1.1), "1.1000000000000001");
        assert_eq!(fmt_g17(3.0), "3");
        assert_eq!(fmt_g17(1e20), "1e+20");
        assert_eq!(fmt_g17(1.5e-7), "1.4999999999999999e-07");
        assert_eq!(fmt_g17(123456789012345680.0), "1.2345678901234568e+17");
        assert_eq!(fmt_g17(f64::INFINITY), "inf");
        assert_eq!(fmt_g17(-0.0), "-0");
        assert_eq!(fmt_g17(0.0001), "0.0001");
    }

    #[test]
    fn floats() {
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"inf"), Some(f64::INFINITY));
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"nan"), None);
        assert_eq!(parse_f64(b" 1"), None);
        assert_eq!(parse_f64(b"1 "), None);
        assert_eq!(parse_f64(b"1e3"), Some(1000.0));
        assert_eq!(parse_f64(b""), None);
        assert_eq!(parse_f64(b"-1e33372036854775808"), None);
        assert_eq!(parse_f64(b"1e-400"), None);
        assert_eq!(parse_f64(b"0e5"), Some(0.0));
        assert_eq!(parse_f64(b"+inf"), Some(f64::INFINITY));
    }

    #[test]
    fn incrbyfloat() {
        assert_eq!(
            incr_float(b"10.50", b"0.1").map(|x| x.1),
            Some("10.6".into())
        );
        assert_eq!(incr_float(b"0.1", b"0.2").map(|x| x.1), Some("0.3".into()));
        assert_eq!(
            incr_float(b"5.0e3", b"2.0e2").map(|x| x.1),
            Some("5200".into())
        );
        assert_eq!(incr_float(b"3", b"-3").map(|x| x.1), Some("0".into()));
    }
}
