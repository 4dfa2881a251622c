//! Which arguments of a command are keys, with their key-spec flags: Redis's
//! `getKeysFromCommandWithSpecs` (key specs first, then the command's own key
//! function), for COMMAND GETKEYS and GETKEYSANDFLAGS.

use crate::cmdmeta::{keyflags, BeginSearch, FindKeys, GetKeys, Meta};
use bytes::Bytes;

/// One key argument: its position in argv and its key-spec flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRef {
    pub pos: usize,
    pub flags: u32,
}

/// The keys of `argv` (argv[0] is the command name; for a subcommand argv[1] is
/// its name), as Redis finds them. An empty result means none could be found
/// (Redis then answers "Invalid arguments specified for command", or an empty
/// array for commands flagged `no_mandatory_keys`).
pub fn keys(meta: &Meta, argv: &[Bytes]) -> Vec<KeyRef> {
    let mut all_flags = 0;
    let mut has_real_spec = false;
    for s in &meta.key_specs {
        all_flags |= s.flags;
        has_real_spec |= s.flags & keyflags::NOT_KEY == 0;
    }
    // Key specs are preferred when their flags are reliable.
    if has_real_spec && all_flags & keyflags::VARIABLE_FLAGS == 0 {
        if let Some(keys) = by_specs(meta, argv) {
            return keys;
        }
    }
    match meta.getkeys {
        Some(f) => by_function(f, argv),
        None => Vec::new(),
    }
}

/// Redis's `getKeysUsingKeySpecs` (without partial results): None when a spec is
/// unknown, incomplete, or does not fit the arguments.
fn by_specs(meta: &Meta, argv: &[Bytes]) -> Option<Vec<KeyRef>> {
    let argc = argv.len() as i64;
    let mut out = Vec::new();
    for spec in &meta.key_specs {
        if spec.flags & keyflags::NOT_KEY != 0 {
            continue;
        }
        let mut first = match spec.begin {
            BeginSearch::Index(pos) => pos,
            BeginSearch::Keyword { keyword, startfrom } => {
                let (start, end) = if startfrom > 0 {
                    (startfrom, argc - 1)
                } else {
                    (argc + startfrom, 1)
                };
                let mut found = 0;
                let mut i = start;
                while i != end {
                    if i >= argc || i < 1 {
                        break;
                    }
                    if argv[i as usize].eq_ignore_ascii_case(keyword.as_bytes()) {
                        found = i + 1;
                        break;
                    }
                    i = if start <= end { i + 1 } else { i - 1 };
                }
                if found == 0 {
                    // Keyword absent: this spec has no keys here.
                    continue;
                }
                found
            }
            BeginSearch::Unknown => return None,
        };
        let (last, step) = match spec.find {
            FindKeys::Range {
                lastkey,
                step,
                limit,
            } => {
                let last = if lastkey >= 0 {
                    first + lastkey
                } else if limit == 0 {
                    argc + lastkey
                } else {
                    first + ((argc - first) / limit + lastkey)
                };
                (last, step)
            }
            FindKeys::Keynum {
                keynumidx,
                firstkey,
                step,
            } => {
                if keynumidx >= argc {
                    return None;
                }
                let at = usize::try_from(first + keynumidx).ok()?;
                let n = crate::num::parse_i64(argv.get(at)?)?;
                if n < 0 {
                    return None;
                }
                first += firstkey;
                // Redis keeps the count in an int.
                (first + (n as i32) as i64 - 1, step)
            }
            FindKeys::Unknown => return None,
        };
        if last >= argc || last < first || first >= argc {
            return None;
        }
        let mut i = first;
        while i <= last {
            out.push(KeyRef {
                pos: i as usize,
                flags: spec.flags,
            });
            i += step.max(1);
        }
        if spec.flags & keyflags::INCOMPLETE != 0 {
            return None;
        }
    }
    Some(out)
}

/// C's `atoi` (through `strtol`, whose saturated result is truncated to an int).
fn atoi(b: &[u8]) -> i64 {
    let mut i = 0;
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let neg = match b.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let mut v: i64 = 0;
    while let Some(d) = b.get(i).filter(|c| c.is_ascii_digit()) {
        v = v.saturating_mul(10).saturating_add((d - b'0') as i64);
        i += 1;
    }
    let v = if neg { v.saturating_neg() } else { v };
    (v as i32) as i64
}

/// Redis's `genericGetKeys`: `[destkey] numkeys key ...`.
fn generic(store: usize, count_at: usize, first: usize, argv: &[Bytes]) -> Vec<KeyRef> {
    let Some(n) = argv.get(count_at).map(|a| atoi(a)) else {
        return Vec::new();
    };
    let argc = argv.len() as i64;
    if n < 1 || n > argc - first as i64 {
        return Vec::new();
    }
    let mut out: Vec<KeyRef> = (0..n as usize)
        .map(|i| KeyRef {
            pos: first + i,
            flags: 0,
        })
        .collect();
    if store > 0 {
        out.push(KeyRef {
            pos: store,
            flags: 0,
        });
    }
    out
}

fn is(a: &[u8], kw: &str) -> bool {
    a.eq_ignore_ascii_case(kw.as_bytes())
}

fn by_function(f: GetKeys, argv: &[Bytes]) -> Vec<KeyRef> {
    use keyflags::*;
    let one = |flags| vec![KeyRef { pos: 1, flags }];
    match f {
        GetKeys::Sintercard | GetKeys::ZunionInterDiff | GetKeys::Lmpop | GetKeys::Zmpop => {
            generic(0, 1, 2, argv)
        }
        GetKeys::ZunionInterDiffStore => generic(1, 2, 3, argv),
        GetKeys::Eval | GetKeys::Function | GetKeys::Blmpop | GetKeys::Bzmpop => {
            generic(0, 2, 3, argv)
        }
        GetKeys::SortRo => one(RO | ACCESS),
        GetKeys::Sort => sort_keys(argv),
        GetKeys::Migrate => migrate_keys(argv),
        GetKeys::Georadius => {
            let mut store = None;
            let mut i = 5;
            while i < argv.len() {
                if (is(&argv[i], "store") || is(&argv[i], "storedist")) && i + 1 < argv.len() {
                    store = Some(i + 1);
                    i += 1;
                }
                i += 1;
            }
            let mut out = one(0);
            out.extend(store.map(|pos| KeyRef { pos, flags: 0 }));
            out
        }
        GetKeys::Xread => xread_keys(argv),
        GetKeys::Set => {
            let get = argv.iter().skip(3).any(|a| is(a, "get"));
            one(if get {
                RW | ACCESS | UPDATE
            } else {
                OW | UPDATE
            })
        }
        GetKeys::Bitfield => {
            let mut readonly = true;
            let mut i = 2;
            while i < argv.len() {
                let rem = argv.len() - i - 1;
                let a = &argv[i];
                if is(a, "get") && rem >= 2 {
                    i += 2;
                } else if (is(a, "set") || is(a, "incrby")) && rem >= 3 {
                    readonly = false;
                    break;
                } else if is(a, "overflow") && rem >= 1 {
                    i += 1;
                } else {
                    readonly = false;
                    break;
                }
                i += 1;
            }
            one(if readonly {
                RO | ACCESS
            } else {
                RW | ACCESS | UPDATE
            })
        }
    }
}

/// Redis's `sortGetKeys`: the sorted key, and the last STORE destination.
fn sort_keys(argv: &[Bytes]) -> Vec<KeyRef> {
    use keyflags::*;
    let mut out = vec![KeyRef {
        pos: 1,
        flags: RO | ACCESS,
    }];
    let mut store = None;
    let mut i = 2;
    while i < argv.len() {
        // The order of Redis's tests: LIMIT, then STORE, then GET and BY.
        let a = &argv[i];
        if is(a, "limit") {
            i += 2;
        } else if is(a, "store") && i + 1 < argv.len() {
            store = Some(i + 1);
        } else if is(a, "get") || is(a, "by") {
            i += 1;
        }
        i += 1;
    }
    out.extend(store.map(|pos| KeyRef {
        pos,
        flags: OW | UPDATE,
    }));
    out
}

/// Redis's `migrateGetKeys`: the key argument, or the keys after KEYS.
fn migrate_keys(argv: &[Bytes]) -> Vec<KeyRef> {
    use keyflags::*;
    let (mut first, mut num) = (3usize, 1usize);
    if argv.len() > 6 {
        let mut i = 6;
        while i < argv.len() {
            let a = &argv[i];
            if is(a, "keys") {
                if !argv[3].is_empty() {
                    num = 0;
                } else {
                    first = i + 1;
                    num = argv.len() - first;
                }
                break;
            }
            if is(a, "auth") {
                i += 1;
            } else if is(a, "auth2") {
                i += 2;
            }
            i += 1;
        }
    }
    (first..first + num)
        .map(|pos| KeyRef {
            pos,
            flags: RW | ACCESS | DELETE,
        })
        .collect()
}

/// Redis's `xreadGetKeys`: the first half of the arguments after STREAMS.
fn xread_keys(argv: &[Bytes]) -> Vec<KeyRef> {
    let mut streams = None;
    let mut i = 1;
    while i < argv.len() {
        let a = &argv[i];
        if is(a, "block") || is(a, "count") {
            i += 1;
        } else if is(a, "group") {
            i += 2;
        } else if is(a, "noack") {
        } else if is(a, "streams") {
            streams = Some(i);
            break;
        } else {
            break;
        }
        i += 1;
    }
    let Some(s) = streams else {
        return Vec::new();
    };
    let num = argv.len() - s - 1;
    if num == 0 || !num.is_multiple_of(2) {
        return Vec::new();
    }
    (s + 1..s + 1 + num / 2)
        .map(|pos| KeyRef { pos, flags: 0 })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdmeta::lookup;

    fn argv(s: &str) -> Vec<Bytes> {
        s.split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    fn keys_of(name: &str, line: &str) -> Vec<(usize, Vec<&'static str>)> {
        let m = lookup(name).unwrap();
        keys(m, &argv(line))
            .into_iter()
            .map(|k| (k.pos, keyflags::names(k.flags).collect()))
            .collect()
    }

    #[test]
    fn specs_and_functions() {
        assert_eq!(keys_of("set", "set k v"), [(1, vec!["OW", "update"])]);
        assert_eq!(
            keys_of("set", "set k v get"),
            [(1, vec!["RW", "access", "update"])]
        );
        assert_eq!(
            keys_of("lmove", "lmove a b left right"),
            [
                (1, vec!["RW", "access", "delete"]),
                (2, vec!["RW", "insert"])
            ]
        );
        assert_eq!(
            keys_of("sort", "sort a limit 0 1 store b"),
            [(1, vec!["RO", "access"]), (6, vec!["OW", "update"])]
        );
        assert_eq!(keys_of("eval", "eval s 0"), []);
        assert_eq!(keys_of("eval", "eval s 2 a b c").len(), 2);
        let z = keys_of("zunionstore", "zunionstore d 2 a b weights 1 2");
        assert_eq!(
            z.iter().map(|k| k.0).collect::<Vec<_>>(),
            [1, 3, 4],
            "{z:?}"
        );
        assert_eq!(keys_of("xread", "xread count 2 streams a b 0 0").len(), 2);
        assert_eq!(keys_of("xread", "xread streams a b 0").len(), 1);
        assert_eq!(
            keys_of("migrate", "migrate h p  0 5 keys a b")
                .iter()
                .map(|k| k.0)
                .collect::<Vec<_>>(),
            [7, 8]
        );
        assert_eq!(keys_of("mset", "mset a 1 b 2").len(), 2);
        assert_eq!(keys_of("memory|usage", "memory usage k"), [(2, vec!["RO"])]);
    }

    #[test]
    fn atoi_is_cs() {
        assert_eq!(atoi(b" 12x"), 12);
        assert_eq!(atoi(b"-3"), -3);
        assert_eq!(atoi(b"x"), 0);
        assert_eq!(atoi(b"99999999999999999999"), -1);
    }
}
