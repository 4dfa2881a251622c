//! The command table: arity, flags and key positions of every command in one place,
//! read by dispatch, COMMAND, MULTI, scripts and the append log alike (the same role
//! as Redis's `src/commands/*.json`).

use crate::reply::{wrong_arity, Reply};
use crate::store::{CmdResult, Cx};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::OnceLock;

/// A command handler run by the engine.
pub type Handler = fn(&mut Cx, &[Bytes]) -> CmdResult;

/// Command flags (Redis's names, see COMMAND INFO).
pub mod flags {
    pub const WRITE: u32 = 1 << 0;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const PUBSUB: u32 = 1 << 4;
    pub const NOSCRIPT: u32 = 1 << 5;
    pub const BLOCKING: u32 = 1 << 6;
    pub const LOADING: u32 = 1 << 7;
    pub const STALE: u32 = 1 << 8;
    pub const SKIP_MONITOR: u32 = 1 << 9;
    pub const SKIP_SLOWLOG: u32 = 1 << 10;
    pub const FAST: u32 = 1 << 11;
    pub const NO_AUTH: u32 = 1 << 12;
    pub const MAY_REPLICATE: u32 = 1 << 13;
    pub const NO_MULTI: u32 = 1 << 14;
    pub const ALLOW_BUSY: u32 = 1 << 15;
    pub const MOVABLEKEYS: u32 = 1 << 16;
    pub const NO_MANDATORY_KEYS: u32 = 1 << 17;

    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (PUBSUB, "pubsub"),
        (NOSCRIPT, "noscript"),
        (BLOCKING, "blocking"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (SKIP_MONITOR, "skip_monitor"),
        (SKIP_SLOWLOG, "skip_slowlog"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (MAY_REPLICATE, "may_replicate"),
        (NO_MULTI, "no_multi"),
        (ALLOW_BUSY, "allow_busy"),
        (MOVABLEKEYS, "movablekeys"),
        (NO_MANDATORY_KEYS, "no_mandatory_keys"),
    ];
}

/// One command (or subcommand).
#[derive(Debug)]
pub struct CommandSpec {
    /// Lowercase name; subcommands carry the full `parent|sub` name.
    pub name: &'static str,
    /// Redis arity: positive = exact argc, negative = at least -arity.
    pub arity: i32,
    pub flags: u32,
    /// Key positions: first key, last key (-1 = last argument, -2 = ...), step.
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    /// ACL category group (`string`, `list`, ...), as COMMAND DOCS names it.
    pub group: &'static str,
    pub summary: &'static str,
    /// Engine handler; `None` for commands the server handles (connection, pub/sub,
    /// transactions, server administration).
    pub handler: Option<Handler>,
    pub subs: &'static [CommandSpec],
}

impl CommandSpec {
    pub fn is_write(&self) -> bool {
        self.flags & flags::WRITE != 0
    }
    pub fn has(&self, f: u32) -> bool {
        self.flags & f != 0
    }

    /// Key argument positions for this argv (for WATCH-like uses and COMMAND GETKEYS).
    pub fn key_positions(&self, argc: usize) -> Vec<usize> {
        if self.first_key <= 0 || argc as i32 <= self.first_key {
            return Vec::new();
        }
        let last = if self.last_key < 0 {
            argc as i32 + self.last_key
        } else {
            self.last_key.min(argc as i32 - 1)
        };
        let step = self.step.max(1) as usize;
        (self.first_key as usize..=last.max(self.first_key - 1) as usize)
            .step_by(step)
            .collect()
    }
}

/// A helper to write table entries compactly.
#[allow(clippy::too_many_arguments)]
pub const fn cmd(
    name: &'static str,
    arity: i32,
    flags: u32,
    first_key: i32,
    last_key: i32,
    step: i32,
    group: &'static str,
    handler: Option<Handler>,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        first_key,
        last_key,
        step,
        group,
        summary: "",
        handler,
        subs: &[],
    }
}

fn all_groups() -> [&'static [CommandSpec]; 15] {
    [
        crate::cmd::keys::COMMANDS,
        crate::cmd::string::COMMANDS,
        crate::cmd::bitops::COMMANDS,
        crate::cmd::hyperloglog::COMMANDS,
        crate::cmd::hash::COMMANDS,
        crate::cmd::list::COMMANDS,
        crate::cmd::set::COMMANDS,
        crate::cmd::zset::COMMANDS,
        crate::cmd::stream::COMMANDS,
        crate::cmd::geo::COMMANDS,
        crate::cmd::sort::COMMANDS,
        crate::cmd::dump::COMMANDS,
        crate::cmd::server::COMMANDS,
        crate::cmd::server::SERVER_HANDLED,
        crate::cmd::json::COMMANDS,
    ]
}

/// Every command by name. Lookups go through [`front`] first; the index serves
/// [`all`] and the names a shared front slot defers to.
type Index = HashMap<&'static str, &'static CommandSpec>;

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut m = Index::default();
        for group in all_groups() {
            for c in group {
                m.insert(c.name, c);
            }
        }
        m
    })
}

/// Every command, for COMMAND and COMMAND COUNT.
pub fn all() -> impl Iterator<Item = &'static CommandSpec> {
    index().values().copied()
}

/// Every command and subcommand numbered once, for per-command counters kept in a
/// plain array (INFO commandstats, latency histograms): parents in name order, each
/// followed by its subcommands. `positions` maps a spec's address to its number.
struct Numbering {
    specs: Vec<&'static CommandSpec>,
    positions: HashMap<usize, u32, std::hash::BuildHasherDefault<AddrHasher>>,
}

/// Hashes a spec's address with one multiplication (addresses are not chosen by
/// clients: nothing to flood).
#[derive(Default)]
struct AddrHasher(u64);

impl std::hash::Hasher for AddrHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64 >> 3).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
}

fn numbering() -> &'static Numbering {
    static NUMBERING: OnceLock<Numbering> = OnceLock::new();
    NUMBERING.get_or_init(|| {
        let mut parents: Vec<&'static CommandSpec> = index().values().copied().collect();
        parents.sort_by_key(|c| c.name);
        let mut specs = Vec::new();
        for p in parents {
            specs.push(p);
            specs.extend(p.subs.iter());
        }
        let positions = specs
            .iter()
            .enumerate()
            .map(|(i, s)| (*s as *const CommandSpec as usize, i as u32))
            .collect();
        Numbering { specs, positions }
    })
}

/// The number of a command or subcommand found through [`lookup`] / [`lookup_sub`]
/// (below [`numbered`]`().len()`), for arrays of per-command counters; None for a
/// spec that is not in the table.
#[inline]
pub fn number_of(spec: &CommandSpec) -> Option<usize> {
    numbering()
        .positions
        .get(&(spec as *const CommandSpec as usize))
        .map(|&i| i as usize)
}

/// Every command and subcommand in the order of [`number_of`].
pub fn numbered() -> &'static [&'static CommandSpec] {
    &numbering().specs
}

/// Finds a command or subcommand by its full name (`get`, `client|list`),
/// case-insensitively, as Redis's `lookupCommandBySds`.
pub fn lookup_full(name: &[u8]) -> Option<&'static CommandSpec> {
    match name.iter().position(|&c| c == b'|') {
        None => lookup(name),
        Some(p) => {
            let parent = lookup(&name[..p])?;
            let sub = &name[p + 1..];
            if sub.contains(&b'|') {
                return None;
            }
            lookup_sub(parent, sub)
        }
    }
}

/// A direct-mapped front for [`index`]: slot [`slot_of`] of a name holds the one
/// command whose name maps there (the multiplier is searched at startup so that no
/// two commands share a slot; should none be found, shared slots defer to the index).
/// A lookup reads four bytes of the name and compares it once, instead of
/// lowercasing, validating and hashing it (three lookups per script call: ~2 % of a
/// pipelined EVALSHA in the profile).
struct Front {
    seed: u64,
    /// 0: no command; [`SHARED`]: several (ask the index); else `specs[i - 1]`.
    slots: Vec<u16>,
    specs: Vec<&'static CommandSpec>,
    /// `specs[i]`'s name as [`words`] gives it, lowercased: a name of up to 16 bytes
    /// is compared as two words.
    words: Vec<(u64, u64)>,
}

const FRONT_BITS: u32 = 13;
const SHARED: u16 = u16::MAX;

/// The slot of a (non-empty) name: its first and last eight bytes (the whole of
/// names up to 16 bytes) case-folded, and its length, multiplied by the seed.
#[inline]
fn slot_of(name: &[u8], seed: u64) -> usize {
    slot_of_words(words(name), name.len(), seed)
}

/// A name's first and last eight bytes (zero-padded when shorter) as words.
#[inline]
fn words(name: &[u8]) -> (u64, u64) {
    let n = name.len();
    let k = n.min(8);
    let (mut head, mut tail) = ([0u8; 8], [0u8; 8]);
    head[..k].copy_from_slice(&name[..k]);
    tail[8 - k..].copy_from_slice(&name[n - k..]);
    (u64::from_le_bytes(head), u64::from_le_bytes(tail))
}

#[inline]
fn slot_of_words((head, tail): (u64, u64), n: usize, seed: u64) -> usize {
    const FOLD: u64 = 0x2020_2020_2020_2020;
    let x = (head | FOLD)
        ^ (tail | FOLD).rotate_left(29)
        ^ (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x.wrapping_mul(seed | 1) >> (64 - FRONT_BITS)) as usize
}

/// ASCII lowercase of the eight bytes of a word at once (exactly `A`-`Z` change;
/// bytes of 0x80 and above are left alone), as `u8::to_ascii_lowercase` per byte.
#[inline]
fn lower8(x: u64) -> u64 {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let h = x & LOW7;
    // Per byte (no carry crosses bytes: h <= 0x7F): bit 7 set when above '@' and
    // when above 'Z'.
    let above_at = h + 0x3F3F_3F3F_3F3F_3F3F;
    let above_z = h + 0x2525_2525_2525_2525;
    let upper = above_at & !above_z & !x & HIGH;
    x | (upper >> 2)
}

fn front() -> &'static Front {
    static FRONT: OnceLock<Front> = OnceLock::new();
    FRONT.get_or_init(|| {
        let specs: Vec<&'static CommandSpec> = index().values().copied().collect();
        let fill = |seed: u64| {
            let mut slots = vec![0u16; 1 << FRONT_BITS];
            let mut clean = true;
            for (i, spec) in specs.iter().enumerate() {
                let s = &mut slots[slot_of(spec.name.as_bytes(), seed)];
                if *s == 0 {
                    *s = i as u16 + 1;
                } else {
                    *s = SHARED;
                    clean = false;
                }
            }
            (slots, clean)
        };
        let mut seed = 0xFF51_AFD7_ED55_8CCDu64;
        for _ in 0..10_000 {
            if let (slots, true) = fill(seed) {
                return Front::new(seed, slots, specs);
            }
            seed = seed
                .wrapping_mul(0x5851_F42D_4C95_7F2D)
                .wrapping_add(0x1405_7B7E_F767_814F);
        }
        let (slots, _) = fill(seed);
        Front::new(seed, slots, specs)
    })
}

impl Front {
    fn new(seed: u64, slots: Vec<u16>, specs: Vec<&'static CommandSpec>) -> Front {
        let words = specs
            .iter()
            .map(|s| {
                let (h, t) = words(s.name.as_bytes());
                (lower8(h), lower8(t))
            })
            .collect();
        Front {
            seed,
            slots,
            specs,
            words,
        }
    }
}

/// Finds a command by name, case-insensitively.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    if name.is_empty() || name.len() > 32 {
        return None;
    }
    let f = front();
    let w = words(name);
    match f.slots[slot_of_words(w, name.len(), f.seed)] {
        // Every command whose name maps to this slot is the one held there.
        0 => None,
        SHARED => lookup_index(name),
        i => {
            let spec = f.specs[i as usize - 1];
            let same = if name.len() <= 16 {
                // Head and tail words cover the whole name.
                spec.name.len() == name.len()
                    && f.words[i as usize - 1] == (lower8(w.0), lower8(w.1))
            } else {
                spec.name.as_bytes().eq_ignore_ascii_case(name)
            };
            same.then_some(spec)
        }
    }
}

fn lookup_index(name: &[u8]) -> Option<&'static CommandSpec> {
    let mut buf = [0u8; 32];
    for (d, s) in buf.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    let s = std::str::from_utf8(&buf[..name.len()]).ok()?;
    index().get(s).copied()
}

/// Finds a subcommand of a container command (`config get`).
pub fn lookup_sub(spec: &'static CommandSpec, sub: &[u8]) -> Option<&'static CommandSpec> {
    spec.subs.iter().find(|s| {
        let short = s.name.rsplit('|').next().unwrap_or(s.name);
        short.as_bytes().eq_ignore_ascii_case(sub)
    })
}

/// Checks argc against the arity; for container commands also the subcommand's.
pub fn check_arity(
    spec: &'static CommandSpec,
    argv: &[Bytes],
) -> Result<&'static CommandSpec, Reply> {
    let ok = |arity: i32, argc: usize| {
        if arity >= 0 {
            argc == arity as usize
        } else {
            argc >= (-arity) as usize
        }
    };
    if !ok(spec.arity, argv.len()) {
        return Err(wrong_arity(spec.name));
    }
    if spec.subs.is_empty() || argv.len() < 2 {
        return Ok(spec);
    }
    match lookup_sub(spec, &argv[1]) {
        Some(sub) => {
            if !ok(sub.arity, argv.len()) {
                return Err(wrong_arity(sub.name));
            }
            Ok(sub)
        }
        None => Err(unknown_subcommand(spec.name, &argv[1])),
    }
}

/// `ERR unknown subcommand 'x'. Try CONFIG HELP.`
pub fn unknown_subcommand(parent: &str, sub: &[u8]) -> Reply {
    let sub = String::from_utf8_lossy(&sub[..sub.len().min(128)]).into_owned();
    Reply::error(format!(
        "ERR unknown subcommand '{sub}'. Try {} HELP.",
        parent.to_ascii_uppercase()
    ))
}

/// Redis's unknown-command error, quoting the first arguments. Built from bytes
/// like Redis's `%.128s` formats: each quoted piece stops at a NUL byte, CR/LF
/// become spaces.
pub fn unknown_command(argv: &[Bytes]) -> Reply {
    fn cstr(b: &[u8], max: usize) -> &[u8] {
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len()).min(max);
        &b[..end]
    }
    let mut msg = b"ERR unknown command '".to_vec();
    msg.extend_from_slice(argv.first().map(|n| cstr(n, 128)).unwrap_or_default());
    msg.extend_from_slice(b"', with args beginning with: ");
    let mut args: Vec<u8> = Vec::new();
    for a in argv.iter().skip(1) {
        if args.len() >= 128 {
            break;
        }
        let room = 128 - args.len();
        args.push(b'\'');
        args.extend_from_slice(cstr(a, room));
        args.extend_from_slice(b"' ");
    }
    msg.extend_from_slice(&args);
    for c in msg.iter_mut() {
        if *c == b'\r' || *c == b'\n' {
            *c = b' ';
        }
    }
    Reply::Error(Bytes::from(msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower8_is_ascii_lowercase_of_every_byte() {
        for b in 0..=255u8 {
            for pos in 0..8 {
                // The byte among neighbours that are letters and not.
                let mut bytes = *b"aZ@[`{\x7f\x80";
                bytes[pos] = b;
                let want = u64::from_le_bytes(bytes.map(|c| c.to_ascii_lowercase()));
                assert_eq!(lower8(u64::from_le_bytes(bytes)), want, "byte {b} at {pos}");
            }
        }
    }

    #[test]
    fn lookup_compares_every_byte_of_the_name() {
        assert!(lookup(b"SADD").is_some_and(|s| s.name == "sadd"));
        assert!(lookup(b"zRangeByScore").is_some_and(|s| s.name == "zrangebyscore"));
        // Bytes that differ from a name's only in bit 0x20 but are not its letters'
        // other case are other names.
        assert!(lookup(b"s\x01dd").is_none());
        assert!(lookup(b"restore\rasking").is_none());
        assert!(lookup(b"zrangebyscorE\x00").is_none());
        assert!(lookup(b"georadiusbymember_ro").is_some());
        assert!(lookup(b"georadiusbymember\x7fro").is_none());
    }

    #[test]
    fn every_command_is_found_in_any_case_and_others_are_not() {
        let mut shared = 0;
        for spec in all() {
            let lower = spec.name.as_bytes();
            let upper = spec.name.to_ascii_uppercase();
            let mixed: Vec<u8> = lower
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if i % 2 == 0 {
                        c.to_ascii_uppercase()
                    } else {
                        *c
                    }
                })
                .collect();
            for n in [lower, upper.as_bytes(), &mixed] {
                assert!(std::ptr::eq(lookup(n).unwrap(), spec), "{}", spec.name);
            }
            let f = front();
            if f.slots[slot_of(lower, f.seed)] == SHARED {
                shared += 1;
            }
        }
        // The front decides every name on its own.
        assert_eq!(shared, 0, "{shared} names in shared slots");
        for n in [
            &b"gett"[..],
            b"ge",
            b"xget",
            b"evalshaa",
            b"\xff\xfe",
            b"set\0",
            b"-",
        ] {
            assert!(lookup(n).is_none(), "{:?}", String::from_utf8_lossy(n));
        }
        assert!(lookup(b"").is_none());
        assert!(lookup(&[b'a'; 40]).is_none());
    }

    #[test]
    fn no_command_is_in_the_table_twice() {
        let mut seen = std::collections::HashSet::new();
        for group in all_groups() {
            for c in group {
                assert!(seen.insert(c.name), "{} has two rows", c.name);
            }
        }
        assert_eq!(seen.len(), index().len());
    }

    #[test]
    fn every_command_and_subcommand_has_its_own_number() {
        let all = numbered();
        let mut seen = std::collections::HashSet::new();
        for spec in super::all() {
            let found = lookup(spec.name.as_bytes()).unwrap();
            let n = number_of(found).unwrap();
            assert!(std::ptr::eq(all[n], spec), "{}", spec.name);
            assert!(seen.insert(n));
            for sub in spec.subs {
                let short = sub.name.rsplit('|').next().unwrap();
                let s = lookup_sub(found, short.to_uppercase().as_bytes()).unwrap();
                let n = number_of(s).unwrap();
                assert!(std::ptr::eq(all[n], sub), "{}", sub.name);
                assert!(seen.insert(n));
                assert!(std::ptr::eq(lookup_full(sub.name.as_bytes()).unwrap(), sub));
            }
        }
        assert_eq!(seen.len(), all.len());
        // A spec outside the table has no number.
        let stray = cmd("stray", 1, 0, 0, 0, 0, "server", None);
        assert!(number_of(&stray).is_none());
        assert!(lookup_full(b"client|nosuch").is_none());
        assert!(lookup_full(b"get|x").is_none());
        assert!(lookup_full(b"CLIENT|LIST").is_some());
    }
}
