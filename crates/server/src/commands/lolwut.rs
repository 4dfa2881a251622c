//! LOLWUT, as Redis 7.0.15's `lolwut.c`, `lolwut5.c` and `lolwut6.c`: without
//! VERSION (or a version other than 5 and 6) the version line; VERSION 5 draws
//! Georg Nees's "Schotter" in braille characters, VERSION 6 a city skyline in
//! terminal colours. Both are random, as Redis's are (`rand()`).

use crate::conn::{Conn, Step};
use crate::state::Inner;
use bytes::Bytes;
use redsnap_engine::table::CommandSpec;
use redsnap_engine::Reply;

pub(crate) fn lolwut(_: &mut Conn, _: &mut Inner, _: &'static CommandSpec, argv: &[Bytes]) -> Step {
    let mut version = crate::REDIS_VERSION.to_string();
    let mut args = &argv[1..];
    if argv.len() >= 3 && argv[1].eq_ignore_ascii_case(b"version") {
        let Some(v) = redsnap_engine::num::parse_i64(&argv[2]) else {
            return Reply::err("ERR value is not an integer or out of range").into();
        };
        // Redis prints it with "%u.0.0" from an unsigned int.
        version = format!("{}.0.0", v as u32);
        args = &argv[3..];
    }
    let v = version.as_bytes();
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    let text = if (at(0) == b'5' && at(1) == b'.' && at(2) != b'9')
        || (at(0) == b'4' && at(1) == b'.' && at(2) == b'9')
    {
        match lolwut5(args) {
            Ok(t) => t,
            Err(e) => return e.into(),
        }
    } else if (at(0) == b'6' && at(1) == b'.' && at(2) != b'9')
        || (at(0) == b'5' && at(1) == b'.' && at(2) == b'9')
    {
        match lolwut6(args) {
            Ok(t) => t,
            Err(e) => return e.into(),
        }
    } else {
        format!("Redis ver. {}\n", crate::REDIS_VERSION)
    };
    Reply::Verbatim("txt", Bytes::from(text)).into()
}

/// C's `rand()` range (0..=RAND_MAX, glibc's RAND_MAX).
fn rand() -> i64 {
    (rand::random::<u32>() & 0x7fff_ffff) as i64
}
const RAND_MAX: f32 = 2_147_483_647.0;

/// The optional numeric arguments (`getLongFromObjectOrReply`), clamped.
fn numbers(args: &[Bytes], defaults: &mut [i64], limits: &[(i64, i64)]) -> Result<(), Reply> {
    for (i, d) in defaults.iter_mut().enumerate() {
        if let Some(a) = args.get(i) {
            *d = redsnap_engine::num::parse_i64(a)
                .ok_or_else(|| Reply::err("ERR value is not an integer or out of range"))?;
        }
        *d = (*d).clamp(limits[i].0, limits[i].1);
    }
    Ok(())
}

/// `lwCanvas`: pixels of one byte each (a colour).
struct Canvas {
    width: i64,
    height: i64,
    pixels: Vec<u8>,
}

impl Canvas {
    fn new(width: i64, height: i64, bg: u8) -> Canvas {
        Canvas {
            width,
            height,
            pixels: vec![bg; (width.max(0) * height.max(0)) as usize],
        }
    }
    fn set(&mut self, x: i64, y: i64, color: u8) {
        if x < 0 || x >= self.width || y < 0 || y >= self.height {
            return;
        }
        self.pixels[(x + y * self.width) as usize] = color;
    }
    fn get(&self, x: i64, y: i64) -> u8 {
        if x < 0 || x >= self.width || y < 0 || y >= self.height {
            return 0;
        }
        self.pixels[(x + y * self.width) as usize]
    }
    /// Bresenham, as `lwDrawLine`.
    fn line(&mut self, mut x1: i64, mut y1: i64, x2: i64, y2: i64, color: u8) {
        let dx = (x2 - x1).abs();
        let dy = (y2 - y1).abs();
        let sx = if x1 < x2 { 1 } else { -1 };
        let sy = if y1 < y2 { 1 } else { -1 };
        let mut err = dx - dy;
        loop {
            self.set(x1, y1, color);
            if x1 == x2 && y1 == y2 {
                break;
            }
            let e2 = err * 2;
            if e2 > -dy {
                err -= dy;
                x1 += sx;
            }
            if e2 < dx {
                err += dx;
                y1 += sy;
            }
        }
    }
    /// `lwDrawSquare`: a square centred on x,y, rotated by `angle`.
    fn square(&mut self, x: i64, y: i64, size: f32, angle: f32, color: u8) {
        // Redis's literal (a double: the division is in double, stored to float).
        #[allow(clippy::approx_constant)]
        let size = ((size as f64 / 1.414_213_562_3) as f32).round();
        let mut k = std::f32::consts::FRAC_PI_4 + angle;
        let mut px = [0i64; 4];
        let mut py = [0i64; 4];
        for j in 0..4 {
            px[j] = ((k as f64).sin() * size as f64 + x as f64).round() as i64;
            py[j] = ((k as f64).cos() * size as f64 + y as f64).round() as i64;
            k += std::f32::consts::FRAC_PI_2;
        }
        for j in 0..4 {
            self.line(px[j], py[j], px[(j + 1) % 4], py[(j + 1) % 4], color);
        }
    }
}

/// LOLWUT VERSION 5 [columns] [squares per row] [squares per column].
fn lolwut5(args: &[Bytes]) -> Result<String, Reply> {
    let mut n = [66, 8, 12];
    numbers(args, &mut n, &[(1, 1000), (1, 200), (1, 200)])?;
    let [cols, per_row, per_col] = n;
    let width = cols * 2;
    let padding = if width > 4 { 2 } else { 0 };
    let side = (width - padding * 2) as f32 / per_row as f32;
    let height = (side * per_col as f32 + (padding * 2) as f32) as i64;
    let mut c = Canvas::new(width, height, 0);
    for y in 0..per_col {
        for x in 0..per_row {
            let mut sx = (x as f32 * side + side / 2.0 + padding as f32) as i64;
            let mut sy = (y as f32 * side + side / 2.0 + padding as f32) as i64;
            let mut angle = 0.0f32;
            if y > 1 {
                let r = || rand() as f32 / RAND_MAX / per_col as f32 * y as f32;
                let (mut r1, mut r2, mut r3) = (r(), r(), r());
                if rand() % 2 == 1 {
                    r1 = -r1;
                }
                if rand() % 2 == 1 {
                    r2 = -r2;
                }
                if rand() % 2 == 1 {
                    r3 = -r3;
                }
                angle = r1;
                sx = (sx as f32 + r2 * side / 3.0) as i64;
                sy = (sy as f32 + r3 * side / 3.0) as i64;
            }
            c.square(sx, sy, side, angle, 1);
        }
    }
    let mut text = String::new();
    let mut y = 0;
    while y < c.height {
        let mut x = 0;
        while x < c.width {
            let bits = [
                (x, y),
                (x, y + 1),
                (x, y + 2),
                (x + 1, y),
                (x + 1, y + 1),
                (x + 1, y + 2),
                (x, y + 3),
                (x + 1, y + 3),
            ];
            let byte = bits
                .iter()
                .enumerate()
                .filter(|(_, &(px, py))| c.get(px, py) != 0)
                .fold(0u32, |b, (i, _)| b | 1 << i);
            text.push(char::from_u32(0x2800 + byte).unwrap_or(' '));
            x += 2;
        }
        if y != c.height - 1 {
            text.push('\n');
        }
        y += 4;
    }
    text.push_str("\nGeorg Nees - schotter, plotter on paper, 1968. Redis ver. ");
    text.push_str(crate::REDIS_VERSION);
    text.push('\n');
    Ok(text)
}

/// `generateSkyscraper`.
fn skyscraper(c: &mut Canvas, xoff: i64, width: i64, height: i64, windows: bool, color: u8) {
    let starty = c.height - 1;
    let endy = starty - height + 1;
    let mut y = starty;
    while y >= endy {
        for x in xoff..xoff + width {
            if y == endy && (x <= xoff + 1 || x >= xoff + width - 2) {
                continue;
            }
            let mut col = color;
            if windows && x > xoff + 1 && x < xoff + width - 2 && y > endy + 1 && y < starty - 1 {
                let relx = x - (xoff + 1);
                let rely = y - (endy + 1);
                if (relx / 2) % 2 != 0 && rely % 2 != 0 {
                    loop {
                        col = 1 + (rand() % 2) as u8;
                        if col != color {
                            break;
                        }
                    }
                    if relx % 2 != 0 {
                        col = c.get(x - 1, y);
                    }
                }
            }
            c.set(x, y, col);
        }
        y -= 1;
    }
}

/// LOLWUT VERSION 6 [columns] [rows].
fn lolwut6(args: &[Bytes]) -> Result<String, Reply> {
    let mut n = [80, 20];
    numbers(args, &mut n, &[(1, 1000), (1, 1000)])?;
    let [cols, rows] = n;
    let mut c = Canvas::new(cols, rows, 3);
    let h = c.height;
    for color in [2u8, 1] {
        let mut offset = -10;
        while offset < c.width {
            offset += rand() % 8;
            let width = 10 + rand() % 9;
            let height = if color == 2 {
                h / 2 + (rand() % h) / 2
            } else {
                h / 2 + (rand() % h) / 3
            };
            skyscraper(&mut c, offset, width, height, false, color);
            offset += if color == 2 { width / 2 } else { width + 1 };
        }
    }
    let mut offset = -10;
    while offset < c.width {
        offset += rand() % 8;
        let mut width = 5 + rand() % 14;
        if width % 4 != 0 {
            width += width % 3;
        }
        let height = h / 3 + (rand() % h) / 2;
        skyscraper(&mut c, offset, width, height, true, 0);
        offset += width + 5;
    }
    let mut text = String::new();
    for y in 0..c.height {
        for x in 0..c.width {
            let ce = match c.get(x, y) {
                1 => "0;90;100m",
                2 => "0;37;47m",
                3 => "0;97;107m",
                _ => "0;30;40m",
            };
            text.push_str("\x1b[");
            text.push_str(ce);
            text.push_str(" \x1b[0m");
        }
        if y != c.height - 1 {
            text.push('\n');
        }
    }
    text.push_str("\nDedicated to the 8 bit game developers of past and present.\nOriginal 8 bit image from Plaguemon by hikikomori. Redis ver. ");
    text.push_str(crate::REDIS_VERSION);
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schotter_has_redis_shape() {
        // 66 columns of braille, 8 squares of 16 pixels a row, 12 rows: 196 pixels
        // tall, 49 text lines, an empty line, then Redis's caption (as redis-server
        // 7.0.15 prints it).
        let t = lolwut5(&[]).unwrap_or_default();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 51);
        assert!(lines[..49].iter().all(|l| l.chars().count() == 66));
        assert_eq!(lines[49], "");
        assert_eq!(
            lines[50],
            format!(
                "Georg Nees - schotter, plotter on paper, 1968. Redis ver. {}",
                crate::REDIS_VERSION
            )
        );
        // The first two rows are not rotated: the top squares draw in the first line.
        assert!(lines[0].chars().any(|ch| ch != '\u{2800}'));
    }

    #[test]
    fn skyline_size_and_limits() {
        let t = lolwut6(&[Bytes::from_static(b"5"), Bytes::from_static(b"3")]).unwrap_or_default();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 5);
        for l in &lines[..3] {
            assert_eq!(l.matches("\x1b[0m").count(), 5);
        }
        assert!(lolwut6(&[Bytes::from_static(b"x")]).is_err());
    }
}
