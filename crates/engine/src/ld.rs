//! Redis computes HINCRBYFLOAT (and INCRBYFLOAT) in x87 `long double` (64-bit
//! significand) and prints the result with `%.17Lf`, trailing zeros removed. This
//! emulates that exactly (big-integer conversion and printing) for decimal operands,
//! with or without an exponent, within long double's finite range; other inputs
//! (hex, inf) fall back to [`crate::num::incr_float`].

use num_bigint::BigUint;
use num_integer::Integer;
use num_traits::{One, ToPrimitive, Zero};
/// `(-1)^neg * m * 2^e`, `m` normalized (top bit set) unless zero.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ld {
    pub neg: bool,
    pub m: u64,
    pub e: i32,
}

fn bitlen(x: u128) -> i32 {
    128 - x.leading_zeros() as i32
}

/// Longest operand Redis converts (MAX_LONG_DOUBLE_CHARS); longer is not a number.
const MAX_CHARS: usize = 5 * 1024;

/// Largest binary exponent of a finite x87 long double (values below 2^16384).
const MAX_EXP: i32 = 16384;

/// Exponent of a normalized significand at the smallest normal long double
/// (2^63 * 2^MIN_E = 2^-16382); also the unit of subnormals.
const MIN_E: i32 = -16445;

/// `num / den` rounded to nearest, ties to even (`den > 0`).
fn div_round_big(num: &BigUint, den: &BigUint) -> BigUint {
    let (q, r) = num.div_rem(den);
    let twice: BigUint = r << 1usize;
    if twice > *den || (twice == *den && q.bit(0)) {
        q + 1u32
    } else {
        q
    }
}

/// A decimal `[+-]digits[.digits][(e|E)[+-]digits]` as sign, digits and a power of ten.
fn parse_decimal(b: &[u8]) -> Option<(bool, BigUint, i64)> {
    if b.len() > MAX_CHARS {
        return None;
    }
    let (neg, body) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    let (mant, exp) = match body.iter().position(|&c| c == b'e' || c == b'E') {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let exp: i64 = match exp {
        None => 0,
        Some(e) => {
            let digits = e
                .strip_prefix(b"-")
                .or_else(|| e.strip_prefix(b"+"))
                .unwrap_or(e);
            if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            std::str::from_utf8(e).ok()?.parse().ok()?
        }
    };
    let (int, frac) = match mant.iter().position(|&c| c == b'.') {
        Some(i) => (&mant[..i], &mant[i + 1..]),
        None => (mant, &mant[..0]),
    };
    if (int.is_empty() && frac.is_empty()) || !int.iter().chain(frac).all(u8::is_ascii_digit) {
        return None;
    }
    let digits: Vec<u8> = int.iter().chain(frac).map(|c| c - b'0').collect();
    let d = BigUint::from_radix_be(&digits, 10)?;
    Some((neg, d, exp.checked_sub(frac.len() as i64)?))
}

/// What `strtold` makes of an operand, as far as this module emulates it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Parsed {
    /// A decimal within long double's finite range, correctly rounded.
    Num(Ld),
    /// A decimal beyond the largest long double (strtold: ERANGE, HUGE_VAL).
    Overflow,
    /// A decimal too small for a normal long double (subnormals are not emulated).
    Underflow,
    /// Not a plain or exponent decimal (hex, inf, nan, garbage).
    Other,
}

/// `strtold` of a decimal, correctly rounded to a 64-bit significand.
pub fn parse(b: &[u8]) -> Parsed {
    let Some((neg, d, e10)) = parse_decimal(b) else {
        return Parsed::Other;
    };
    if d.is_zero() {
        return Parsed::Num(Ld { neg, m: 0, e: 0 });
    }
    // Far outside long double's range (about 3.4e-4932 .. 1.2e+4932): decided by the
    // magnitude alone; close to the edges the exact conversion below decides.
    let magnitude = e10 as f64 + d.bits() as f64 * std::f64::consts::LOG10_2;
    if magnitude > 4940.0 {
        return Parsed::Overflow;
    }
    if magnitude < -4960.0 {
        return Parsed::Underflow;
    }
    let ten = BigUint::from(10u32);
    let (num, den) = if e10 >= 0 {
        (d * ten.pow(e10 as u32), BigUint::one())
    } else {
        (d, ten.pow((-e10) as u32))
    };
    let mut k = 64 - (num.bits() as i64 - den.bits() as i64);
    for _ in 0..4 {
        let q = if k >= 0 {
            div_round_big(&(&num << (k as usize)), &den)
        } else {
            div_round_big(&num, &(&den << ((-k) as usize)))
        };
        match q.bits() {
            65.. => k -= 1,
            0..=63 => k += 1,
            _ => {
                let (Ok(e), Some(m)) = (i32::try_from(-k), q.to_u64()) else {
                    return Parsed::Other;
                };
                if e + 64 > MAX_EXP {
                    return Parsed::Overflow;
                }
                if e < MIN_E {
                    return subnormal(neg, &num, &den);
                }
                return Parsed::Num(Ld { neg, m, e });
            }
        }
    }
    Parsed::Other
}

/// Below the smallest normal long double (2^-16382) the significand loses bits: the
/// value is rounded to a multiple of 2^-16445 (the smallest subnormal); what rounds
/// to zero is strtold's underflow (ERANGE), which Redis refuses.
fn subnormal(neg: bool, num: &BigUint, den: &BigUint) -> Parsed {
    let q = div_round_big(&(num << ((-MIN_E) as usize)), den);
    let Some(q) = q.to_u64().filter(|&q| q != 0) else {
        return Parsed::Underflow;
    };
    let s = q.leading_zeros() as i32;
    Parsed::Num(Ld {
        neg,
        m: q << s,
        e: MIN_E - s,
    })
}

/// Rounds `mag * 2^e` to a 64-bit significand (ties to even).
fn normalize(neg: bool, mag: u128, e: i32) -> Ld {
    let bl = bitlen(mag);
    if bl <= 64 {
        let s = 64 - bl;
        return Ld {
            neg,
            m: (mag << s) as u64,
            e: e - s,
        };
    }
    let s = bl - 64;
    let (q, r, half) = (mag >> s, mag & ((1u128 << s) - 1), 1u128 << (s - 1));
    let q = if r > half || (r == half && q & 1 == 1) {
        q + 1
    } else {
        q
    };
    if q == 1 << 64 {
        Ld {
            neg,
            m: 1 << 63,
            e: e + s + 1,
        }
    } else {
        Ld {
            neg,
            m: q as u64,
            e: e + s,
        }
    }
}

/// Correctly rounded addition.
pub fn add(a: Ld, b: Ld) -> Ld {
    if a.m == 0 {
        return b;
    }
    if b.m == 0 {
        return a;
    }
    let (hi, lo) = if a.e >= b.e { (a, b) } else { (b, a) };
    // Work in units of 2^(hi.e - 62): 62 guard bits, then a sticky bit.
    const X: i32 = 62;
    let unit = hi.e - X;
    let h = (hi.m as u128) << X;
    let shift = lo.e - unit;
    let (l, sticky) = if shift >= 0 {
        ((lo.m as u128) << shift, false)
    } else if -shift >= 64 {
        (0, true)
    } else {
        let s = -shift;
        (
            (lo.m as u128) >> s,
            (lo.m as u128) & ((1u128 << s) - 1) != 0,
        )
    };
    let (neg, mag) = if hi.neg == lo.neg {
        (hi.neg, (h + l) | sticky as u128)
    } else if h >= l {
        // h - (l + eps): floor is h - l - 1 when eps > 0; an odd unit keeps it off ties.
        (hi.neg, if sticky { (h - l - 1) | 1 } else { h - l })
    } else {
        (lo.neg, l - h)
    };
    if mag == 0 {
        return Ld {
            neg: false,
            m: 0,
            e: 0,
        };
    }
    normalize(neg, mag, unit)
}

/// `%.17Lf` with trailing zeros (and a bare `.`) removed; `-0` becomes `0`. None for
/// a value beyond the finite long double range.
pub fn format(x: Ld) -> Option<String> {
    if x.m == 0 {
        return Some("0".into());
    }
    if x.e + 64 > MAX_EXP {
        return None;
    }
    let sign = if x.neg { "-" } else { "" };
    let m = BigUint::from(x.m);
    if x.e >= 0 {
        // An integer: no decimals to print.
        return Some(format!("{sign}{}", m << (x.e as usize)));
    }
    let scale = BigUint::from(100_000_000_000_000_000u64);
    let n = div_round_big(&(m * &scale), &(BigUint::one() << ((-x.e) as usize)));
    if n.is_zero() {
        return Some("0".into());
    }
    let (int, frac) = n.div_rem(&scale);
    let mut out = format!("{sign}{int}");
    let frac = frac.to_u64().unwrap_or(0);
    if frac != 0 {
        let f = format!("{frac:017}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
    Some(out)
}

#[cfg(test)]
mod exponent_tests {
    /// The text INCRBYFLOAT stores (the one entry point: [`crate::num::incr_float`]).
    fn incr(cur: &[u8], incr: &[u8]) -> Option<String> {
        crate::num::incr_float(cur, incr).map(|x| x.1)
    }

    #[test]
    fn exponent_forms_match_redis() {
        // Values checked against redis-server 7.0.15.
        assert_eq!(
            incr(b"1e3", b"0.1").as_deref(),
            Some("1000.09999999999999998")
        );
        assert_eq!(incr(b"5.0e3", b"2.0e2").as_deref(), Some("5200"));
        assert_eq!(incr(b"2.5e-2", b"0").as_deref(), Some("0.025"));
        assert_eq!(incr(b"-1.5E2", b"0").as_deref(), Some("-150"));
    }

    #[test]
    fn long_fractions_round_like_strtold() {
        // Found by the differential test (seed 7756391335020442003): a 21-digit
        // fraction; the expected text is redis-server 7.0.15's reply.
        assert_eq!(
            incr(b"0.759223372036854775808", b"3").as_deref(),
            Some("3.75922337203685478")
        );
    }
}

#[cfg(test)]
mod range_tests {
    use crate::num::{incr_float, ld_valid};

    #[test]
    fn long_double_range_beyond_f64() {
        // Found by the differential test (seed 5554141258728902117): 1e342 is a long
        // double, not a double. Checked against redis-server 7.0.15.
        assert_eq!(ld_valid(b"1e342"), Some(true));
        let (_, text) = incr_float(b"1e342", b"-1.25").expect("in range");
        assert!(text.starts_with("10000000000000000000474252912118232088"));
        assert_eq!(text.len(), 343);
        assert_eq!(ld_valid(b"1e4933"), None);
        assert_eq!(ld_valid(b"inf"), Some(false));
        assert_eq!(ld_valid(b" 1"), None);
        // Subnormals are numbers; what rounds to zero is not (redis-server 7.0.15).
        assert_eq!(ld_valid(b"1e-4940"), Some(true));
        assert_eq!(ld_valid(b"4e-4951"), Some(true));
        assert_eq!(ld_valid(b"1e-4951"), None);
        assert_eq!(ld_valid(b"1e-4960"), None);
        assert_eq!(
            incr_float(b"4e-4951", b"0").map(|x| x.1).as_deref(),
            Some("0")
        );
        // The sum leaves the finite range: NaN or Infinity.
        assert_eq!(incr_float(b"1.1e4932", b"1.1e4932"), None);
    }
}
