//! Redis computes HINCRBYFLOAT (and INCRBYFLOAT) in x87 `long double` (64-bit
//! significand) and prints the result with `%.17Lf`, trailing zeros removed. This
//! emulates that exactly for plain decimal operands (an integer part below 2^127,
//! and at most 18 decimals when it is below 2^65); other inputs (exponents, hex,
//! longer) fall back to [`crate::num::incr_float`].
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

/// `num / den` rounded to nearest, ties to even (`den > 0`).
fn div_round(num: u128, den: u128) -> u128 {
    let (q, r) = (num / den, num % den);
    let rest = den - r;
    if r > rest || (r == rest && q & 1 == 1) {
        q + 1
    } else {
        q
    }
}

/// `big * 2^k / den`, rounded; None on overflow.
fn scaled(big: u128, den: u128, k: i32) -> Option<u128> {
    if k >= 0 {
        if bitlen(big) + k > 127 {
            return None;
        }
        Some(div_round(big << k, den))
    } else {
        if bitlen(den) - k > 127 {
            return None;
        }
        Some(div_round(big, den << -k))
    }
}

/// A plain decimal (`[+-]digits[.digits]`) as sign and an exact fraction
/// `num / den`, within what the conversion below handles exactly.
fn parse_plain(b: &[u8]) -> Option<(bool, u128, u128)> {
    let (neg, body) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    let (int, frac) = match body.iter().position(|&c| c == b'.') {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, &body[..0]),
    };
    if (int.is_empty() && frac.is_empty()) || !int.iter().chain(frac).all(u8::is_ascii_digit) {
        return None;
    }
    let frac = &frac[..frac.iter().rposition(|&c| c != b'0').map_or(0, |i| i + 1)];
    let digits = |ds: &[u8], mut acc: u128| -> Option<u128> {
        for &c in ds {
            acc = acc.checked_mul(10)?.checked_add(u128::from(c - b'0'))?;
            if bitlen(acc) > 127 {
                return None;
            }
        }
        Some(acc)
    };
    let whole = digits(int, 0)?;
    if bitlen(whole) >= 65 {
        // The unit in the last place is >= 2, so rounding boundaries are integers and
        // a nonzero fraction only tells "strictly above": any one will do.
        return Some(if frac.is_empty() {
            (neg, whole, 1)
        } else {
            (neg, whole * 2 + 1, 2)
        })
        .filter(|(_, n, _)| bitlen(*n) <= 127);
    }
    if frac.len() > 18 {
        return None;
    }
    Some((neg, digits(frac, whole)?, 10u128.pow(frac.len() as u32)))
}

/// Rewrites `[+-]digits[.digits]e[+-]N` (small N) as a plain decimal by moving the
/// decimal point, so exponent forms like `1e3` or `2.5E-2` convert exactly too.
fn expand_exponent(b: &[u8]) -> Option<Vec<u8>> {
    let epos = b.iter().position(|&c| c == b'e' || c == b'E')?;
    let (mant, exp) = (&b[..epos], &b[epos + 1..]);
    let exp: i32 = std::str::from_utf8(exp).ok()?.parse().ok()?;
    if !(-40..=40).contains(&exp) {
        return None;
    }
    let (sign, mant) = match mant.first()? {
        b'-' | b'+' => (&mant[..1], &mant[1..]),
        _ => (&mant[..0], mant),
    };
    let (int, frac) = match mant.iter().position(|&c| c == b'.') {
        Some(i) => (&mant[..i], &mant[i + 1..]),
        None => (mant, &mant[..0]),
    };
    if (int.is_empty() && frac.is_empty()) || !int.iter().chain(frac).all(u8::is_ascii_digit) {
        return None;
    }
    let digits: Vec<u8> = int.iter().chain(frac).copied().collect();
    let point = int.len() as i32 + exp;
    let mut out = sign.to_vec();
    if point <= 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', (-point) as usize));
        out.extend_from_slice(&digits);
    } else if point as usize >= digits.len() {
        out.extend_from_slice(&digits);
        out.extend(std::iter::repeat_n(b'0', point as usize - digits.len()));
    } else {
        out.extend_from_slice(&digits[..point as usize]);
        out.push(b'.');
        out.extend_from_slice(&digits[point as usize..]);
    }
    Some(out)
}

/// `strtold` of a decimal (plain, or with a small exponent).
pub fn from_decimal(b: &[u8]) -> Option<Ld> {
    let expanded = expand_exponent(b);
    let b = expanded.as_deref().unwrap_or(b);
    let (neg, big, den) = parse_plain(b)?;
    if big == 0 {
        return Some(Ld { neg, m: 0, e: 0 });
    }
    let mut k = 64 - (bitlen(big) - bitlen(den));
    for _ in 0..8 {
        let q = scaled(big, den, k)?;
        if q >= 1 << 64 {
            k -= 1;
        } else if q < 1 << 63 {
            k += 1;
        } else {
            return Some(Ld {
                neg,
                m: q as u64,
                e: -k,
            });
        }
    }
    None
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

/// `%.17Lf` with trailing zeros (and a bare `.`) removed; `-0` becomes `0`.
pub fn format(x: Ld) -> Option<String> {
    const SCALE: u128 = 100_000_000_000_000_000;
    let m = x.m as u128;
    if x.m == 0 {
        return Some("0".into());
    }
    if x.e >= 0 {
        // An integer: no decimals to print.
        if bitlen(m) + x.e > 127 {
            return None;
        }
        let sign = if x.neg { "-" } else { "" };
        return Some(format!("{sign}{}", m << x.e));
    }
    let s = -x.e;
    let n: u128 = if s >= 127 {
        0
    } else {
        div_round(m * SCALE, 1u128 << s)
    };
    if n == 0 {
        return Some("0".into());
    }
    let (int, frac) = (n / SCALE, n % SCALE);
    let mut out = String::new();
    if x.neg {
        out.push('-');
    }
    out.push_str(&int.to_string());
    if frac != 0 {
        let f = format!("{frac:017}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
    Some(out)
}

/// HINCRBYFLOAT's arithmetic, when both operands are plain decimals in range.
pub fn incr(cur: &[u8], incr: &[u8]) -> Option<String> {
    let a = from_decimal(cur)?;
    let b = from_decimal(incr)?;
    format(add(a, b))
}

#[cfg(test)]
mod exponent_tests {
    #[test]
    fn exponent_forms_match_redis() {
        // Values checked against redis-server 7.0.15.
        assert_eq!(
            super::incr(b"1e3", b"0.1").as_deref(),
            Some("1000.09999999999999998")
        );
        assert_eq!(super::incr(b"5.0e3", b"2.0e2").as_deref(), Some("5200"));
        assert_eq!(
            super::expand_exponent(b"2.5e-2").as_deref(),
            Some(&b"0.025"[..])
        );
        assert_eq!(
            super::expand_exponent(b"-1.5E2").as_deref(),
            Some(&b"-150"[..])
        );
    }
}
