//! Redis's geohash (`geohash.c`, `geohash_helper.c` of Redis 7.0.15): the 52-bit
//! interleaved hash geo commands store as sorted-set scores, the neighbour boxes a
//! radius or box search scans, and the haversine distance. Ported operation by
//! operation (same constants, same order of floating-point operations, the same libm
//! calls) so that scores, coordinates and distances match Redis bit for bit.

pub mod pqsort;

/// 26 steps: 52 bits.
pub const STEP_MAX: u8 = 26;
pub const LAT_MIN: f64 = -85.05112878;
pub const LAT_MAX: f64 = 85.05112878;
pub const LONG_MIN: f64 = -180.0;
pub const LONG_MAX: f64 = 180.0;

/// Earth's quadratic mean radius for WGS-84 (Redis's `EARTH_RADIUS_IN_METERS`).
pub const EARTH_RADIUS_IN_METERS: f64 = 6372797.560856;
const MERCATOR_MAX: f64 = 20037726.37;
/// `M_PI / 180.0`, as Redis's `D_R` macro.
const D_R: f64 = std::f64::consts::PI / 180.0;

#[inline]
fn deg_rad(ang: f64) -> f64 {
    ang * D_R
}
#[inline]
fn rad_deg(ang: f64) -> f64 {
    ang / D_R
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HashBits {
    pub bits: u64,
    pub step: u8,
}

impl HashBits {
    /// `HASHISZERO`.
    pub fn is_zero(&self) -> bool {
        self.bits == 0 && self.step == 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Range {
    pub min: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Area {
    pub longitude: Range,
    pub latitude: Range,
}

/// The eight neighbours of a box.
#[derive(Debug, Clone, Copy, Default)]
pub struct Neighbors {
    pub north: HashBits,
    pub east: HashBits,
    pub west: HashBits,
    pub south: HashBits,
    pub north_east: HashBits,
    pub south_east: HashBits,
    pub north_west: HashBits,
    pub south_west: HashBits,
}

pub const LONG_RANGE: Range = Range {
    min: LONG_MIN,
    max: LONG_MAX,
};
pub const LAT_RANGE: Range = Range {
    min: LAT_MIN,
    max: LAT_MAX,
};

fn interleave64(xlo: u32, ylo: u32) -> u64 {
    const B: [u64; 5] = [
        0x5555555555555555,
        0x3333333333333333,
        0x0F0F0F0F0F0F0F0F,
        0x00FF00FF00FF00FF,
        0x0000FFFF0000FFFF,
    ];
    const S: [u32; 5] = [1, 2, 4, 8, 16];
    let mut x = xlo as u64;
    let mut y = ylo as u64;
    for i in (0..5).rev() {
        x = (x | (x << S[i])) & B[i];
        y = (y | (y << S[i])) & B[i];
    }
    x | (y << 1)
}

fn deinterleave64(interleaved: u64) -> u64 {
    const B: [u64; 6] = [
        0x5555555555555555,
        0x3333333333333333,
        0x0F0F0F0F0F0F0F0F,
        0x00FF00FF00FF00FF,
        0x0000FFFF0000FFFF,
        0x00000000FFFFFFFF,
    ];
    const S: [u32; 6] = [0, 1, 2, 4, 8, 16];
    let mut x = interleaved;
    let mut y = interleaved >> 1;
    for i in 0..6 {
        x = (x | (x >> S[i])) & B[i];
        y = (y | (y >> S[i])) & B[i];
    }
    x | (y << 32)
}

/// `geohashEncode`: None where Redis returns 0.
pub fn encode(
    long_range: Range,
    lat_range: Range,
    longitude: f64,
    latitude: f64,
    step: u8,
) -> Option<HashBits> {
    if step > 32 || step == 0 {
        return None;
    }
    if !(LONG_MIN..=LONG_MAX).contains(&longitude) || !(LAT_MIN..=LAT_MAX).contains(&latitude) {
        return None;
    }
    if latitude < lat_range.min
        || latitude > lat_range.max
        || longitude < long_range.min
        || longitude > long_range.max
    {
        return None;
    }
    let mut lat_offset = (latitude - lat_range.min) / (lat_range.max - lat_range.min);
    let mut long_offset = (longitude - long_range.min) / (long_range.max - long_range.min);
    lat_offset *= (1u64 << step) as f64;
    long_offset *= (1u64 << step) as f64;
    Some(HashBits {
        bits: interleave64(lat_offset as u32, long_offset as u32),
        step,
    })
}

/// `geohashEncodeWGS84`.
pub fn encode_wgs84(longitude: f64, latitude: f64, step: u8) -> Option<HashBits> {
    encode(LONG_RANGE, LAT_RANGE, longitude, latitude, step)
}

/// `geohashDecode`.
pub fn decode(long_range: Range, lat_range: Range, hash: HashBits) -> Option<Area> {
    if hash.is_zero() {
        return None;
    }
    let step = hash.step;
    let hash_sep = deinterleave64(hash.bits);
    let lat_scale = lat_range.max - lat_range.min;
    let long_scale = long_range.max - long_range.min;
    let ilato = hash_sep as u32;
    let ilono = (hash_sep >> 32) as u32;
    let div = (1u64 << step) as f64;
    // `ilato + 1` is 32-bit arithmetic in C (it wraps).
    Some(Area {
        latitude: Range {
            min: lat_range.min + (ilato as f64 * 1.0 / div) * lat_scale,
            max: lat_range.min + (ilato.wrapping_add(1) as f64 * 1.0 / div) * lat_scale,
        },
        longitude: Range {
            min: long_range.min + (ilono as f64 * 1.0 / div) * long_scale,
            max: long_range.min + (ilono.wrapping_add(1) as f64 * 1.0 / div) * long_scale,
        },
    })
}

/// `geohashDecodeAreaToLongLat`: the centre of the area, clamped to the valid range.
fn area_to_long_lat(area: &Area) -> [f64; 2] {
    // (clamp keeps a NaN, as the C comparisons do)
    let x = ((area.longitude.min + area.longitude.max) / 2.0).clamp(LONG_MIN, LONG_MAX);
    let y = ((area.latitude.min + area.latitude.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    [x, y]
}

/// `geohashDecodeToLongLatWGS84`.
pub fn decode_to_long_lat(hash: HashBits) -> Option<[f64; 2]> {
    decode(LONG_RANGE, LAT_RANGE, hash).map(|a| area_to_long_lat(&a))
}

/// The conversion `(uint64_t)double` compiles to on x86-64 (cvttsd2si, with the
/// upper half done by subtracting 2^63): what Redis's `decodeGeohash` applies to any
/// score, including ones no GEOADD wrote.
pub fn c_double_to_u64(x: f64) -> u64 {
    const TWO63: f64 = 9223372036854775808.0;
    if x < TWO63 {
        c_double_to_i64(x) as u64
    } else {
        (c_double_to_i64(x - TWO63) as u64) ^ (1u64 << 63)
    }
}

/// `(long long)double` on x86-64: truncation, and the "integer indefinite" value
/// (i64::MIN) for NaN and out-of-range values.
pub fn c_double_to_i64(x: f64) -> i64 {
    if !(-9223372036854775808.0..9223372036854775808.0).contains(&x) {
        i64::MIN
    } else {
        x as i64
    }
}

/// Redis's `decodeGeohash`: a score to (longitude, latitude). Never fails for a
/// 26-step hash (the step is not zero).
pub fn decode_score(score: f64) -> [f64; 2] {
    let hash = HashBits {
        bits: c_double_to_u64(score),
        step: STEP_MAX,
    };
    decode_to_long_lat(hash).unwrap_or([0.0, 0.0])
}

/// `geohashAlign52Bits`.
pub fn align52(hash: HashBits) -> u64 {
    hash.bits << (52 - hash.step as u32 * 2)
}

/// The score GEOADD stores for a (validated) position.
pub fn score_of(longitude: f64, latitude: f64) -> u64 {
    encode_wgs84(longitude, latitude, STEP_MAX)
        .map(align52)
        .unwrap_or(0)
}

fn move_x(hash: &mut HashBits, d: i8) {
    if d == 0 {
        return;
    }
    let mut x = hash.bits & 0xaaaaaaaaaaaaaaaa;
    let y = hash.bits & 0x5555555555555555;
    let zz = 0x5555555555555555u64 >> (64 - hash.step as u32 * 2);
    if d > 0 {
        x = x.wrapping_add(zz + 1);
    } else {
        x |= zz;
        x = x.wrapping_sub(zz + 1);
    }
    x &= 0xaaaaaaaaaaaaaaaau64 >> (64 - hash.step as u32 * 2);
    hash.bits = x | y;
}

fn move_y(hash: &mut HashBits, d: i8) {
    if d == 0 {
        return;
    }
    let x = hash.bits & 0xaaaaaaaaaaaaaaaa;
    let mut y = hash.bits & 0x5555555555555555;
    let zz = 0xaaaaaaaaaaaaaaaau64 >> (64 - hash.step as u32 * 2);
    if d > 0 {
        y = y.wrapping_add(zz + 1);
    } else {
        y |= zz;
        y = y.wrapping_sub(zz + 1);
    }
    y &= 0x5555555555555555u64 >> (64 - hash.step as u32 * 2);
    hash.bits = x | y;
}

/// `geohashNeighbors`.
pub fn neighbors(hash: &HashBits) -> Neighbors {
    let moved = |dx: i8, dy: i8| {
        let mut h = *hash;
        move_x(&mut h, dx);
        move_y(&mut h, dy);
        h
    };
    Neighbors {
        east: moved(1, 0),
        west: moved(-1, 0),
        south: moved(0, -1),
        north: moved(0, 1),
        north_west: moved(-1, 1),
        north_east: moved(1, 1),
        south_east: moved(1, -1),
        south_west: moved(-1, -1),
    }
}

/// `geohashEstimateStepsByRadius`.
pub fn estimate_steps_by_radius(mut range_meters: f64, lat: f64) -> u8 {
    if range_meters == 0.0 {
        return 26;
    }
    let mut step: i32 = 1;
    while range_meters < MERCATOR_MAX {
        range_meters *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

/// A search area: a circle or an axis-aligned box around a point (`GeoShape`).
#[derive(Debug, Clone, Copy)]
pub enum ShapeKind {
    Circle { radius: f64 },
    Rect { width: f64, height: f64 },
}

#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub kind: ShapeKind,
    /// Centre: longitude, latitude.
    pub xy: [f64; 2],
    /// Metres per unit (km: 1000).
    pub conversion: f64,
}

/// The boxes a search scans: the centre box and its neighbours, some zeroed.
#[derive(Debug, Clone, Copy)]
pub struct AreasOfShape {
    pub hash: HashBits,
    pub neighbors: Neighbors,
    pub area: Area,
}

/// `geohashBoundingBox`: min lon, min lat, max lon, max lat.
pub fn bounding_box(shape: &Shape) -> [f64; 4] {
    let longitude = shape.xy[0];
    let latitude = shape.xy[1];
    let (height, width) = match shape.kind {
        ShapeKind::Circle { radius } => (shape.conversion * radius, shape.conversion * radius),
        ShapeKind::Rect { width, height } => (
            shape.conversion * (height / 2.0),
            shape.conversion * (width / 2.0),
        ),
    };
    let lat_delta = rad_deg(height / EARTH_RADIUS_IN_METERS);
    let long_delta_top =
        rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(latitude + lat_delta).cos());
    let long_delta_bottom =
        rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(latitude - lat_delta).cos());
    let southern = latitude < 0.0;
    [
        if southern {
            longitude - long_delta_bottom
        } else {
            longitude - long_delta_top
        },
        latitude - lat_delta,
        if southern {
            longitude + long_delta_bottom
        } else {
            longitude + long_delta_top
        },
        latitude + lat_delta,
    ]
}

/// `geohashCalculateAreasByShapeWGS84`.
pub fn areas_by_shape(shape: &Shape) -> AreasOfShape {
    let [min_lon, min_lat, max_lon, max_lat] = bounding_box(shape);
    let longitude = shape.xy[0];
    let latitude = shape.xy[1];
    let mut radius_meters = match shape.kind {
        ShapeKind::Circle { radius } => radius,
        ShapeKind::Rect { width, height } => {
            ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt()
        }
    };
    radius_meters *= shape.conversion;
    let mut steps = estimate_steps_by_radius(radius_meters, latitude);
    let enc = |steps: u8| {
        // The centre is a valid position (checked by the caller or decoded from a
        // score), so encoding cannot fail; a zero hash would only mean no results.
        let hash = encode(LONG_RANGE, LAT_RANGE, longitude, latitude, steps).unwrap_or(HashBits {
            bits: 0,
            step: steps,
        });
        let n = neighbors(&hash);
        let area = decode(LONG_RANGE, LAT_RANGE, hash).unwrap_or_default();
        (hash, n, area)
    };
    let (mut hash, mut nb, mut area) = enc(steps);
    let dec = |h: HashBits| decode(LONG_RANGE, LAT_RANGE, h).unwrap_or_default();
    let north = dec(nb.north);
    let south = dec(nb.south);
    let east = dec(nb.east);
    let west = dec(nb.west);
    let decrease_step = north.latitude.max < max_lat
        || south.latitude.min > min_lat
        || east.longitude.max < max_lon
        || west.longitude.min > min_lon;
    if steps > 1 && decrease_step {
        steps -= 1;
        (hash, nb, area) = enc(steps);
    }
    if steps >= 2 {
        let zero = HashBits::default();
        if area.latitude.min < min_lat {
            nb.south = zero;
            nb.south_west = zero;
            nb.south_east = zero;
        }
        if area.latitude.max > max_lat {
            nb.north = zero;
            nb.north_east = zero;
            nb.north_west = zero;
        }
        if area.longitude.min < min_lon {
            nb.west = zero;
            nb.south_west = zero;
            nb.north_west = zero;
        }
        if area.longitude.max > max_lon {
            nb.east = zero;
            nb.south_east = zero;
            nb.north_east = zero;
        }
    }
    AreasOfShape {
        hash,
        neighbors: nb,
        area,
    }
}

/// `geohashGetLatDistance`.
pub fn lat_distance(lat1d: f64, lat2d: f64) -> f64 {
    EARTH_RADIUS_IN_METERS * (deg_rad(lat2d) - deg_rad(lat1d)).abs()
}

/// `geohashGetDistance`: haversine great-circle distance in metres.
pub fn distance(lon1d: f64, lat1d: f64, lon2d: f64, lat2d: f64) -> f64 {
    let lon1r = deg_rad(lon1d);
    let lon2r = deg_rad(lon2d);
    let v = ((lon2r - lon1r) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1d, lat2d);
    }
    let lat1r = deg_rad(lat1d);
    let lat2r = deg_rad(lat2d);
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_IN_METERS * a.sqrt().asin()
}

/// `geoWithinShape` after decoding: the distance from the centre when the point
/// (`xy`) is inside the shape.
pub fn within_shape(shape: &Shape, xy: [f64; 2]) -> Option<f64> {
    match shape.kind {
        ShapeKind::Circle { radius } => {
            let d = distance(shape.xy[0], shape.xy[1], xy[0], xy[1]);
            (d <= radius * shape.conversion).then_some(d)
        }
        ShapeKind::Rect { width, height } => {
            let (width_m, height_m) = (width * shape.conversion, height * shape.conversion);
            let (x1, y1, x2, y2) = (shape.xy[0], shape.xy[1], xy[0], xy[1]);
            if lat_distance(y2, y1) > height_m / 2.0 {
                return None;
            }
            if distance(x2, y2, x1, y2) > width_m / 2.0 {
                return None;
            }
            Some(distance(x1, y1, x2, y2))
        }
    }
}

/// The standard 11-character geohash GEOHASH replies with for a score: decoded with
/// Redis's latitude range, re-encoded with -90..90.
pub fn standard_hash(score: f64) -> [u8; 11] {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let xy = decode_score(score);
    let r_long = Range {
        min: -180.0,
        max: 180.0,
    };
    let r_lat = Range {
        min: -90.0,
        max: 90.0,
    };
    let bits = encode(r_long, r_lat, xy[0], xy[1], 26)
        .map(|h| h.bits)
        .unwrap_or(0);
    let mut out = [b'0'; 11];
    for (i, c) in out.iter_mut().enumerate().take(10) {
        let idx = (bits >> (52 - (i + 1) * 5)) & 0x1f;
        *c = ALPHABET[idx as usize];
    }
    out
}

/// Redis's `fixedpoint_d2string(.., 4)` for distances: `llrint(d * 10000)` printed
/// with four decimals.
pub fn fmt_distance(d: f64) -> String {
    if d == 0.0 {
        return "0.0000".to_string();
    }
    let scaled = d * 10000.0;
    // llrint: round half to even; out of range gives LLONG_MIN.
    let sv = c_double_to_i64(scaled.round_ties_even());
    let neg = sv < 0;
    let v = sv.unsigned_abs();
    format!(
        "{}{}.{:04}",
        if neg { "-" } else { "" },
        v / 10000,
        v % 10000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleave_round_trips() {
        for (a, b) in [(0u32, 0u32), (1, 2), (0xFFFF_FFFF, 0), (12345678, 87654321)] {
            let i = interleave64(a, b);
            let d = deinterleave64(i);
            assert_eq!(d as u32, a);
            assert_eq!((d >> 32) as u32, b);
        }
    }

    #[test]
    fn encode_decode_is_close() {
        for &(lon, lat) in &[
            (13.361389, 38.115556),
            (-180.0, -85.05112878),
            (180.0, 85.05112878),
            (0.0, 0.0),
        ] {
            let s = score_of(lon, lat) as f64;
            let xy = decode_score(s);
            assert!((xy[0] - lon).abs() < 1e-5, "{lon} {xy:?}");
            assert!((xy[1] - lat).abs() < 1e-5, "{lat} {xy:?}");
        }
    }

    #[test]
    fn distance_formatting() {
        assert_eq!(fmt_distance(0.0), "0.0000");
        assert_eq!(fmt_distance(0.00005), "0.0000");
        assert_eq!(fmt_distance(1.23456), "1.2346");
        assert_eq!(fmt_distance(166274.15156960033), "166274.1516");
        assert_eq!(fmt_distance(6.06429515983917e-5), "0.0001");
    }

    #[test]
    fn c_conversions() {
        assert_eq!(c_double_to_u64(-1.0), u64::MAX);
        assert_eq!(c_double_to_u64(f64::INFINITY), 0);
        assert_eq!(c_double_to_u64(1e19), 10_000_000_000_000_000_000);
        assert_eq!(c_double_to_i64(1e300), i64::MIN);
        assert_eq!(c_double_to_i64(-2.7), -2);
    }
}
