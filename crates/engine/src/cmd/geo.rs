//! Geo commands (Redis 7.0 `geo.c`): positions are stored in sorted sets, the score
//! being the 52-bit interleaved geohash (see [`crate::geo`]).

use super::{float, is, zset};
use crate::geo::{self, Shape, ShapeKind};
use crate::num;
use crate::reply::{self, Reply};
use crate::store::{CmdResult, Cx};
use crate::table::{cmd, flags::*, CommandSpec};
use crate::value::{ScoreRange, ZSet};
use bytes::Bytes;

#[rustfmt::skip]
pub const COMMANDS: &[CommandSpec] = &[
    cmd("geoadd", -5, WRITE | DENYOOM, 1, 1, 1, "geo", Some(geoadd)),
    cmd("geodist", -4, READONLY, 1, 1, 1, "geo", Some(geodist)),
    cmd("geohash", -2, READONLY, 1, 1, 1, "geo", Some(geohash)),
    cmd("geopos", -2, READONLY, 1, 1, 1, "geo", Some(geopos)),
    cmd("georadius", -6, WRITE | DENYOOM | MOVABLEKEYS, 1, 1, 1, "geo", Some(georadius)),
    cmd("georadius_ro", -6, READONLY, 1, 1, 1, "geo", Some(georadius_ro)),
    cmd("georadiusbymember", -5, WRITE | DENYOOM | MOVABLEKEYS, 1, 1, 1, "geo", Some(georadiusbymember)),
    cmd("georadiusbymember_ro", -5, READONLY, 1, 1, 1, "geo", Some(georadiusbymember_ro)),
    cmd("geosearch", -7, READONLY, 1, 1, 1, "geo", Some(geosearch)),
    cmd("geosearchstore", -8, WRITE | DENYOOM, 1, 2, 1, "geo", Some(geosearchstore)),
];

const ERR_DECODE: &str = "ERR could not decode requested zset member";
const ERR_UNIT: &str = "ERR unsupported unit provided. please use M, KM, FT, MI";

// ----- argument helpers (geo.c's extract*OrReply) -----

/// `extractLongLatOrReply`: two doubles, then the range check.
fn extract_long_lat(args: &[Bytes]) -> Result<[f64; 2], Reply> {
    let x = float(&args[0])?;
    let y = float(&args[1])?;
    if !(geo::LONG_MIN..=geo::LONG_MAX).contains(&x) || !(geo::LAT_MIN..=geo::LAT_MAX).contains(&y)
    {
        return Err(Reply::error(format!(
            "ERR invalid longitude,latitude pair {x:.6},{y:.6}"
        )));
    }
    Ok([x, y])
}

/// `extractUnitOrReply`: metres per unit.
fn extract_unit(u: &[u8]) -> Result<f64, Reply> {
    if is(u, "m") {
        Ok(1.0)
    } else if is(u, "km") {
        Ok(1000.0)
    } else if is(u, "ft") {
        Ok(0.3048)
    } else if is(u, "mi") {
        Ok(1609.34)
    } else {
        Err(Reply::err(ERR_UNIT))
    }
}

fn double_or(b: &Bytes, msg: &'static str) -> Result<f64, Reply> {
    num::parse_f64(b).ok_or_else(|| Reply::err(msg))
}

/// `extractDistanceOrReply`: radius and conversion.
fn extract_distance(args: &[Bytes]) -> Result<(f64, f64), Reply> {
    let d = double_or(&args[0], "ERR need numeric radius")?;
    if d < 0.0 {
        return Err(Reply::err("ERR radius cannot be negative"));
    }
    Ok((d, extract_unit(&args[1])?))
}

/// `extractBoxOrReply`: width, height and conversion.
fn extract_box(args: &[Bytes]) -> Result<(f64, f64, f64), Reply> {
    let w = double_or(&args[0], "ERR need numeric width")?;
    let h = double_or(&args[1], "ERR need numeric height")?;
    if h < 0.0 || w < 0.0 {
        return Err(Reply::err("ERR height or width cannot be negative"));
    }
    Ok((w, h, extract_unit(&args[2])?))
}

/// A coordinate as Redis replies it (`addReplyHumanLongDouble`).
fn coord(v: f64) -> Reply {
    Reply::HumanDouble(v)
}

fn distance_reply(d: f64) -> Reply {
    Reply::Bulk(Bytes::from(geo::fmt_distance(d)))
}

// ----- GEOADD -----

/// GEOADD key [NX|XX] [CH] lon lat member ...: run as the ZADD it becomes, and
/// propagated as that ZADD (Redis replaces the command vector).
fn geoadd(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let (mut nx, mut xx) = (false, false);
    let mut longidx = 2;
    while longidx < argv.len() {
        let a = &argv[longidx];
        if is(a, "nx") {
            nx = true;
        } else if is(a, "xx") {
            xx = true;
        } else if !is(a, "ch") {
            break;
        }
        longidx += 1;
    }
    if !(argv.len() - longidx).is_multiple_of(3) || (xx && nx) {
        return Err(Reply::err(reply::ERR_SYNTAX));
    }
    let elements = (argv.len() - longidx) / 3;
    let mut zargv = Vec::with_capacity(longidx + elements * 2);
    zargv.push(Bytes::from_static(b"zadd"));
    zargv.extend(argv[1..longidx].iter().cloned());
    for i in 0..elements {
        let base = longidx + i * 3;
        let xy = extract_long_lat(&argv[base..base + 2])?;
        zargv.push(num::int_bytes(geo::score_of(xy[0], xy[1]) as i64));
        zargv.push(argv[base + 2].clone());
    }
    let before = cx.store.effects.dirty;
    let r = zset::zadd_generic(cx, &zargv, false);
    if cx.store.effects.dirty > before {
        cx.propagate(zargv);
    }
    r
}

// ----- GEODIST / GEOHASH / GEOPOS -----

fn geodist(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let mut to_meter = 1.0;
    if argv.len() == 5 {
        to_meter = extract_unit(&argv[4])?;
    } else if argv.len() > 5 {
        return Err(Reply::err(reply::ERR_SYNTAX));
    }
    let Some(z) = cx.get_zset(&argv[1])? else {
        return Ok(Reply::Nil);
    };
    let (Some(s1), Some(s2)) = (z.score(&argv[2]), z.score(&argv[3])) else {
        return Ok(Reply::Nil);
    };
    let a = geo::decode_score(s1);
    let b = geo::decode_score(s2);
    Ok(distance_reply(
        geo::distance(a[0], a[1], b[0], b[1]) / to_meter,
    ))
}

fn geohash(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let z = cx.get_zset(&argv[1])?;
    Ok(Reply::Array(
        argv[2..]
            .iter()
            .map(|m| match z.and_then(|z| z.score(m)) {
                None => Reply::Nil,
                Some(s) => Reply::Bulk(Bytes::copy_from_slice(&geo::standard_hash(s))),
            })
            .collect(),
    ))
}

fn geopos(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let z = cx.get_zset(&argv[1])?;
    Ok(Reply::Array(
        argv[2..]
            .iter()
            .map(|m| match z.and_then(|z| z.score(m)) {
                None => Reply::NilArray,
                Some(s) => {
                    let xy = geo::decode_score(s);
                    Reply::Array(vec![coord(xy[0]), coord(xy[1])])
                }
            })
            .collect(),
    ))
}

// ----- GEORADIUS / GEOSEARCH -----

const RADIUS_COORDS: u32 = 1 << 0;
const RADIUS_MEMBER: u32 = 1 << 1;
const RADIUS_NOSTORE: u32 = 1 << 2;
const GEOSEARCH: u32 = 1 << 3;
const GEOSEARCHSTORE: u32 = 1 << 4;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sort {
    None,
    Asc,
    Desc,
}

/// One match (`geoPoint`).
struct Point {
    xy: [f64; 2],
    dist: f64,
    score: f64,
    member: Bytes,
}

fn georadius(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    georadius_generic(cx, argv, 1, RADIUS_COORDS)
}
fn georadiusbymember(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    georadius_generic(cx, argv, 1, RADIUS_MEMBER)
}
fn georadius_ro(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    georadius_generic(cx, argv, 1, RADIUS_COORDS | RADIUS_NOSTORE)
}
fn georadiusbymember_ro(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    georadius_generic(cx, argv, 1, RADIUS_MEMBER | RADIUS_NOSTORE)
}
fn geosearch(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    georadius_generic(cx, argv, 1, GEOSEARCH)
}
fn geosearchstore(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    georadius_generic(cx, argv, 2, GEOSEARCH | GEOSEARCHSTORE)
}

/// What a search asks for, parsed.
struct Request {
    shape: Shape,
    storekey: Option<Bytes>,
    storedist: bool,
    withdist: bool,
    withhash: bool,
    withcoords: bool,
    sort: Sort,
    any: bool,
    count: u64,
}

/// `georadiusGeneric`'s parsing, in its order (errors come out in Redis's order,
/// FROMMEMBER's member lookup included). `z` is the source set, if any.
fn parse_request(
    argv: &[Bytes],
    src_idx: usize,
    flags: u32,
    z: Option<&ZSet>,
) -> Result<Request, Reply> {
    let mut storekey = None;
    let mut storedist = false;
    let mut shape = Shape {
        kind: ShapeKind::Circle { radius: 0.0 },
        xy: [0.0, 0.0],
        conversion: 0.0,
    };
    let member_xy = |m: &Bytes| -> Result<[f64; 2], Reply> {
        z.and_then(|z| z.score(m))
            .map(geo::decode_score)
            .ok_or_else(|| Reply::err(ERR_DECODE))
    };
    let base_args;
    if flags & RADIUS_COORDS != 0 {
        base_args = 6;
        shape.xy = extract_long_lat(&argv[2..4])?;
        let (radius, conv) = extract_distance(&argv[4..6])?;
        shape.kind = ShapeKind::Circle { radius };
        shape.conversion = conv;
    } else if flags & RADIUS_MEMBER != 0 {
        base_args = 5;
        if z.is_some() {
            shape.xy = member_xy(&argv[2])?;
            let (radius, conv) = extract_distance(&argv[3..5])?;
            shape.kind = ShapeKind::Circle { radius };
            shape.conversion = conv;
        }
    } else {
        base_args = src_idx + 1;
        if flags & GEOSEARCHSTORE != 0 {
            storekey = Some(argv[1].clone());
        }
    }
    let (mut withdist, mut withhash, mut withcoords) = (false, false, false);
    let (mut frommember, mut fromloc, mut byradius, mut bybox) = (false, false, false, false);
    let mut sort = Sort::None;
    let mut any = false;
    let mut count: i64 = 0;
    let search = flags & GEOSEARCH != 0;
    let can_store = flags & RADIUS_NOSTORE == 0 && !search;
    let remaining = argv.len().saturating_sub(base_args);
    let mut i = 0;
    while i < remaining {
        let arg = &argv[base_args + i];
        let at = |k: usize| &argv[base_args + i + k];
        if is(arg, "withdist") {
            withdist = true;
        } else if is(arg, "withhash") {
            withhash = true;
        } else if is(arg, "withcoord") {
            withcoords = true;
        } else if is(arg, "any") {
            any = true;
        } else if is(arg, "asc") {
            sort = Sort::Asc;
        } else if is(arg, "desc") {
            sort = Sort::Desc;
        } else if is(arg, "count") && i + 1 < remaining {
            count = super::int(at(1))?;
            if count <= 0 {
                return Err(Reply::err("ERR COUNT must be > 0"));
            }
            i += 1;
        } else if is(arg, "store") && i + 1 < remaining && can_store {
            storekey = Some(at(1).clone());
            storedist = false;
            i += 1;
        } else if is(arg, "storedist") && i + 1 < remaining && can_store {
            storekey = Some(at(1).clone());
            storedist = true;
            i += 1;
        } else if is(arg, "storedist") && search && flags & GEOSEARCHSTORE != 0 {
            storedist = true;
        } else if is(arg, "frommember") && i + 1 < remaining && search && !fromloc {
            if z.is_some() {
                shape.xy = member_xy(at(1))?;
            }
            frommember = true;
            i += 1;
        } else if is(arg, "fromlonlat") && i + 2 < remaining && search && !frommember {
            shape.xy = extract_long_lat(&argv[base_args + i + 1..base_args + i + 3])?;
            fromloc = true;
            i += 2;
        } else if is(arg, "byradius") && i + 2 < remaining && search && !bybox {
            let (radius, conv) = extract_distance(&argv[base_args + i + 1..base_args + i + 3])?;
            shape.kind = ShapeKind::Circle { radius };
            shape.conversion = conv;
            byradius = true;
            i += 2;
        } else if is(arg, "bybox") && i + 3 < remaining && search && !byradius {
            let (width, height, conv) = extract_box(&argv[base_args + i + 1..base_args + i + 4])?;
            shape.kind = ShapeKind::Rect { width, height };
            shape.conversion = conv;
            bybox = true;
            i += 3;
        } else {
            return Err(Reply::err(reply::ERR_SYNTAX));
        }
        i += 1;
    }
    if storekey.is_some() && (withdist || withhash || withcoords) {
        return Err(Reply::error(format!(
            "ERR {} is not compatible with WITHDIST, WITHHASH and WITHCOORD options",
            if flags & GEOSEARCHSTORE != 0 {
                "GEOSEARCHSTORE"
            } else {
                "STORE option in GEORADIUS"
            }
        )));
    }
    let name = String::from_utf8_lossy(&argv[0]);
    if search && !(frommember || fromloc) {
        return Err(Reply::error(format!(
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"
        )));
    }
    if search && !(byradius || bybox) {
        return Err(Reply::error(format!(
            "ERR exactly one of BYRADIUS and BYBOX can be specified for {name}"
        )));
    }
    if any && count == 0 {
        return Err(Reply::err("ERR the ANY argument requires COUNT argument"));
    }
    Ok(Request {
        shape,
        storekey,
        storedist,
        withdist,
        withhash,
        withcoords,
        sort,
        any,
        count: count as u64,
    })
}

/// `membersOfAllNeighbors`: scans the centre box and its neighbours in Redis's
/// order, skipping zeroed boxes and a box equal to the last one scanned; stops once
/// `limit` (ANY) points were found.
fn members_of_all_neighbors(z: &ZSet, shape: &Shape, limit: usize) -> Vec<Point> {
    let areas = geo::areas_by_shape(shape);
    let n = &areas.neighbors;
    let boxes = [
        areas.hash,
        n.north,
        n.south,
        n.east,
        n.west,
        n.north_east,
        n.north_west,
        n.south_east,
        n.south_west,
    ];
    let mut out = Vec::new();
    let mut last_processed = 0usize;
    for (i, b) in boxes.iter().enumerate() {
        if b.is_zero() {
            continue;
        }
        if last_processed != 0
            && b.bits == boxes[last_processed].bits
            && b.step == boxes[last_processed].step
        {
            continue;
        }
        if !out.is_empty() && limit != 0 && out.len() >= limit {
            break;
        }
        points_in_box(z, *b, shape, &mut out, limit);
        last_processed = i;
    }
    out
}

/// `membersOfGeoHashBox` / `geoGetPointsInRange`: members with `min <= score < max`.
fn points_in_box(z: &ZSet, hash: geo::HashBits, shape: &Shape, out: &mut Vec<Point>, limit: usize) {
    let min = geo::align52(hash) as f64;
    let max = geo::align52(geo::HashBits {
        bits: hash.bits.wrapping_add(1),
        step: hash.step,
    }) as f64;
    let range = ScoreRange {
        min,
        max,
        minex: false,
        maxex: true,
    };
    for (m, score) in z.iter_by_score(&range, false) {
        let xy = geo::decode_score(score);
        if let Some(dist) = geo::within_shape(shape, xy) {
            out.push(Point {
                xy,
                dist,
                score,
                member: m.to_bytes(),
            });
        }
        if !out.is_empty() && limit != 0 && out.len() >= limit {
            break;
        }
    }
}

fn georadius_generic(cx: &mut Cx, argv: &[Bytes], src_idx: usize, flags: u32) -> CmdResult {
    let resp_search = {
        let z = cx.get_zset(&argv[src_idx])?;
        let req = parse_request(argv, src_idx, flags, z)?;
        match z {
            None => Err(req),
            Some(z) => {
                let limit = if req.any { req.count as usize } else { 0 };
                let points = members_of_all_neighbors(z, &req.shape, limit);
                Ok((req, points))
            }
        }
    };
    let (mut req, mut points) = match resp_search {
        Err(req) => {
            // No source key.
            return Ok(match req.storekey {
                Some(dst) => {
                    // (Cx::delete marks the key modified and raises "del".)
                    cx.delete(&dst);
                    Reply::Int(0)
                }
                None => Reply::Array(Vec::new()),
            });
        }
        Ok(x) => x,
    };
    if req.count != 0 && req.sort == Sort::None && !req.any {
        req.sort = Sort::Asc;
    }
    if points.is_empty() && req.storekey.is_none() {
        return Ok(Reply::Array(Vec::new()));
    }
    let result_length = points.len();
    let returned = if req.count == 0 || (result_length as u64) < req.count {
        result_length
    } else {
        req.count as usize
    };
    if req.sort != Sort::None {
        let asc = |a: &Point, b: &Point| {
            // sort_gp_asc: greater, equal, else less (NaN never occurs).
            if a.dist > b.dist {
                std::cmp::Ordering::Greater
            } else if a.dist == b.dist {
                std::cmp::Ordering::Equal
            } else {
                std::cmp::Ordering::Less
            }
        };
        let desc = |a: &Point, b: &Point| asc(a, b).reverse();
        // glibc's qsort (a stable merge sort) for a full sort; Redis's pqsort for
        // the first `returned` positions.
        match (req.sort, returned == result_length) {
            (Sort::Asc, true) => points.sort_by(asc),
            (Sort::Desc, true) => points.sort_by(desc),
            (Sort::Asc, false) => geo::pqsort::pqsort(&mut points, &asc, 0, returned - 1),
            _ => geo::pqsort::pqsort(&mut points, &desc, 0, returned - 1),
        }
    }
    points.truncate(returned);
    let conversion = req.shape.conversion;
    match req.storekey {
        None => {
            let opts = req.withdist as usize + req.withhash as usize + req.withcoords as usize;
            let items = points
                .into_iter()
                .map(|p| {
                    let member = Reply::Bulk(p.member);
                    if opts == 0 {
                        return member;
                    }
                    let mut sub = Vec::with_capacity(opts + 1);
                    sub.push(member);
                    if req.withdist {
                        sub.push(distance_reply(p.dist / conversion));
                    }
                    if req.withhash {
                        sub.push(Reply::Int(geo::c_double_to_i64(p.score)));
                    }
                    if req.withcoords {
                        sub.push(Reply::Array(vec![coord(p.xy[0]), coord(p.xy[1])]));
                    }
                    Reply::Array(sub)
                })
                .collect();
            Ok(Reply::Array(items))
        }
        Some(dst) => {
            let n = points.len();
            if n > 0 {
                let z = ZSet::from_pairs(points.into_iter().map(|p| {
                    let score = if req.storedist {
                        p.dist / conversion
                    } else {
                        p.score
                    };
                    (p.member, score)
                }));
                let event = if flags & GEOSEARCH != 0 {
                    "geosearchstore"
                } else {
                    "georadiusstore"
                };
                zset::store_result(cx, &dst, z, event);
                // Redis counts one change per stored element (set_value counted one).
                cx.add_dirty(n as u64 - 1);
            } else {
                cx.delete(&dst);
            }
            Ok(Reply::Int(n as i64))
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::testutil::run;
    use crate::reply::Reply;
    use crate::store::Store;

    fn err(s: &mut Store, args: &[&str]) -> String {
        match run(s, args) {
            Reply::Error(e) => String::from_utf8_lossy(&e).into_owned(),
            r => panic!("expected an error, got {r:?}"),
        }
    }

    #[test]
    fn geoadd_stores_the_geohash_and_geopos_decodes_it() {
        let mut s = Store::default();
        assert_eq!(
            run(
                &mut s,
                &[
                    "GEOADD",
                    "Sicily",
                    "13.361389",
                    "38.115556",
                    "Palermo",
                    "15.087269",
                    "37.502669",
                    "Catania"
                ]
            ),
            Reply::Int(2)
        );
        assert_eq!(
            run(&mut s, &["ZSCORE", "Sicily", "Palermo"]),
            Reply::Double(3479099956230698.0)
        );
        assert_eq!(
            run(&mut s, &["GEODIST", "Sicily", "Palermo", "Catania"]),
            Reply::Bulk("166274.1516".into())
        );
        assert_eq!(
            run(&mut s, &["GEOHASH", "Sicily", "Palermo", "nope"]),
            Reply::Array(vec![Reply::Bulk("sqc8b49rny0".into()), Reply::Nil])
        );
        assert_eq!(
            err(&mut s, &["GEOADD", "Sicily", "200", "100", "x"]),
            "ERR invalid longitude,latitude pair 200.000000,100.000000"
        );
        assert_eq!(
            err(&mut s, &["GEOADD", "Sicily", "nx", "xx", "1", "1", "x"]),
            "ERR syntax error"
        );
    }

    /// GEOADD propagates as the ZADD it became (Redis replaces the command vector);
    /// a store propagates as itself, a search that changes nothing not at all.
    #[test]
    fn propagation() {
        let mut s = Store::default();
        s.effects.log.clear();
        run(
            &mut s,
            &["GEOADD", "k", "CH", "13.361389", "38.115556", "Palermo"],
        );
        let argv: Vec<Vec<u8>> = s.effects.log[0].argv.iter().map(|a| a.to_vec()).collect();
        assert_eq!(
            argv,
            vec![
                b"zadd".to_vec(),
                b"k".to_vec(),
                b"CH".to_vec(),
                b"3479099956230698".to_vec(),
                b"Palermo".to_vec()
            ]
        );
        s.effects.log.clear();
        run(
            &mut s,
            &["GEOADD", "k", "13.361389", "38.115556", "Palermo"],
        );
        run(&mut s, &["GEORADIUS", "k", "13", "38", "100", "km"]);
        assert!(s.effects.log.is_empty());
        run(
            &mut s,
            &[
                "GEOSEARCHSTORE",
                "d",
                "k",
                "FROMMEMBER",
                "Palermo",
                "BYBOX",
                "1",
                "1",
                "m",
            ],
        );
        assert_eq!(s.effects.log.len(), 1);
        assert_eq!(&s.effects.log[0].argv[0][..], b"GEOSEARCHSTORE");
    }

    #[test]
    fn search_errors_follow_redis_order() {
        let mut s = Store::default();
        run(&mut s, &["GEOADD", "k", "1", "1", "a"]);
        assert_eq!(
            err(
                &mut s,
                &["GEOSEARCH", "k", "BYRADIUS", "1", "km", "ASC", "WITHDIST"]
            ),
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for GEOSEARCH"
        );
        assert_eq!(
            err(
                &mut s,
                &[
                    "geosearch",
                    "k",
                    "FROMMEMBER",
                    "a",
                    "WITHDIST",
                    "ASC",
                    "WITHHASH"
                ]
            ),
            "ERR exactly one of BYRADIUS and BYBOX can be specified for geosearch"
        );
        assert_eq!(
            err(
                &mut s,
                &["GEOSEARCH", "k", "FROMMEMBER", "zz", "BYRADIUS", "1", "km"]
            ),
            "ERR could not decode requested zset member"
        );
        assert_eq!(
            err(&mut s, &["GEORADIUS", "k", "1", "1", "1", "km", "ANY"]),
            "ERR the ANY argument requires COUNT argument"
        );
        assert_eq!(
            err(&mut s, &["GEORADIUS", "k", "1", "1", "1", "km", "WITHDIST", "STORE", "d"]),
            "ERR STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        );
        assert_eq!(
            run(
                &mut s,
                &["GEORADIUS", "k", "1", "1", "1", "km", "STORE", "d"]
            ),
            Reply::Int(1)
        );
        assert_eq!(run(&mut s, &["TYPE", "d"]), Reply::Simple("zset".into()));
    }
}
