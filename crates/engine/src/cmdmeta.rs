//! What Redis 7.0 says about each command beyond what dispatch needs: key specs, ACL
//! categories, command tips and documentation (COMMAND INFO, COMMAND DOCS, COMMAND
//! GETKEYS/GETKEYSANDFLAGS, COMMAND LIST FILTERBY ACLCAT). The rows of the command
//! table (`table.rs`) find their metadata by full name (`CommandSpec::meta`); the data
//! covers every command of Redis 7.0.15, so a command added to the table has its
//! metadata already (a unit test checks that every table row has it, and that the
//! row's arity, flags and key positions agree with it).
//!
//! The data (`cmdmeta.txt`) is a transcription of Redis 7.0.15's `src/commands/*.json`
//! into a line format read once, at the first use, without copying its strings.
//! One record per command, lines of tab-separated fields:
//!
//! ```text
//! C  name arity group since     starts a command (name: "config|get" for a subcommand)
//! S  summary                    X  complexity
//! F  command flags (lowercase)  A  explicit ACL categories (lowercase)
//! T  tip (one line each)        H  since changes (history, one line each)
//! D  doc flags                  V  deprecated since        P  replaced by
//! G  getkeys function           K  flags begin-search find-keys [notes]
//!                                   begin-search: "index N" | "keyword KW N" | "unknown"
//!                                   find-keys: "range LAST STEP LIMIT"
//!                                            | "keynum IDX FIRST STEP" | "unknown"
//! R<depth> name type [ks=N] [tok=T] [since=V] [dep=V] [optional] [multiple]
//!          [multiple_token]     an argument (nested by depth)
//! ```

use crate::table::{flags, CommandSpec};
use std::collections::HashMap;
use std::sync::OnceLock;

static DATA: &str = include_str!("cmdmeta.txt");

/// Key spec flags (Redis's `CMD_KEY_*`), in the order COMMAND prints them.
pub mod keyflags {
    pub const RO: u32 = 1 << 0;
    pub const RW: u32 = 1 << 1;
    pub const OW: u32 = 1 << 2;
    pub const RM: u32 = 1 << 3;
    pub const ACCESS: u32 = 1 << 4;
    pub const UPDATE: u32 = 1 << 5;
    pub const INSERT: u32 = 1 << 6;
    pub const DELETE: u32 = 1 << 7;
    pub const NOT_KEY: u32 = 1 << 8;
    pub const INCOMPLETE: u32 = 1 << 9;
    pub const VARIABLE_FLAGS: u32 = 1 << 10;

    /// (flag, name in the data, name COMMAND prints)
    pub const NAMES: &[(u32, &str, &str)] = &[
        (RO, "RO", "RO"),
        (RW, "RW", "RW"),
        (OW, "OW", "OW"),
        (RM, "RM", "RM"),
        (ACCESS, "ACCESS", "access"),
        (UPDATE, "UPDATE", "update"),
        (INSERT, "INSERT", "insert"),
        (DELETE, "DELETE", "delete"),
        (NOT_KEY, "NOT_KEY", "not_key"),
        (INCOMPLETE, "INCOMPLETE", "incomplete"),
        (VARIABLE_FLAGS, "VARIABLE_FLAGS", "variable_flags"),
    ];

    /// The names COMMAND prints for a set of flags, in Redis's order.
    pub fn names(f: u32) -> impl Iterator<Item = &'static str> {
        NAMES
            .iter()
            .filter(move |(b, _, _)| f & b != 0)
            .map(|(_, _, n)| *n)
    }
}

/// ACL categories (Redis's `ACL_CATEGORY_*`), in the order COMMAND and ACL CAT list
/// them.
pub mod acl {
    pub const NAMES: &[&str] = &[
        "keyspace",
        "read",
        "write",
        "set",
        "sortedset",
        "list",
        "hash",
        "string",
        "bitmap",
        "hyperloglog",
        "geo",
        "stream",
        "pubsub",
        "admin",
        "fast",
        "slow",
        "blocking",
        "dangerous",
        "connection",
        "transaction",
        "scripting",
        // Not a Redis 7.0 category: the JSON commands' (RedisJSON declares it on
        // Redis 7.2+, where modules can add categories).
        "json",
    ];

    /// The bit of a category name (case-insensitive), 0 if there is none.
    pub fn by_name(name: &[u8]) -> u32 {
        NAMES
            .iter()
            .position(|n| n.as_bytes().eq_ignore_ascii_case(name))
            .map_or(0, |i| 1 << i)
    }

    pub fn bit(name: &str) -> u32 {
        by_name(name.as_bytes())
    }

    /// The names of a set of categories, in Redis's order.
    pub fn names(cats: u32) -> impl Iterator<Item = &'static str> {
        NAMES
            .iter()
            .enumerate()
            .filter(move |(i, _)| cats & (1 << i) != 0)
            .map(|(_, n)| *n)
    }
}

/// Where the search for a key spec's keys begins.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BeginSearch {
    Index(i64),
    Keyword {
        keyword: &'static str,
        startfrom: i64,
    },
    Unknown,
}

/// How a key spec's keys are found from where the search began.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FindKeys {
    Range {
        lastkey: i64,
        step: i64,
        limit: i64,
    },
    Keynum {
        keynumidx: i64,
        firstkey: i64,
        step: i64,
    },
    Unknown,
}

#[derive(Debug, Clone)]
pub struct KeySpec {
    pub flags: u32,
    pub begin: BeginSearch,
    pub find: FindKeys,
    pub notes: Option<&'static str>,
}

/// A native key-extraction function (Redis's `getkeys_proc`), for commands whose
/// key specs cannot tell the keys (or their flags) from the arguments alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetKeys {
    Bitfield,
    Blmpop,
    Eval,
    Function,
    Georadius,
    Lmpop,
    Migrate,
    Set,
    Sintercard,
    Sort,
    SortRo,
    Xread,
    Zmpop,
    Bzmpop,
    ZunionInterDiff,
    ZunionInterDiffStore,
}

impl GetKeys {
    fn parse(name: &str) -> Option<GetKeys> {
        Some(match name {
            "bitfieldGetKeys" => GetKeys::Bitfield,
            "blmpopGetKeys" => GetKeys::Blmpop,
            "evalGetKeys" => GetKeys::Eval,
            "functionGetKeys" => GetKeys::Function,
            "georadiusGetKeys" => GetKeys::Georadius,
            "lmpopGetKeys" => GetKeys::Lmpop,
            "migrateGetKeys" => GetKeys::Migrate,
            "setGetKeys" => GetKeys::Set,
            "sintercardGetKeys" => GetKeys::Sintercard,
            "sortGetKeys" => GetKeys::Sort,
            "sortROGetKeys" => GetKeys::SortRo,
            "xreadGetKeys" => GetKeys::Xread,
            "zmpopGetKeys" => GetKeys::Zmpop,
            "bzmpopGetKeys" => GetKeys::Bzmpop,
            "zunionInterDiffGetKeys" => GetKeys::ZunionInterDiff,
            "zunionInterDiffStoreGetKeys" => GetKeys::ZunionInterDiffStore,
            _ => return None,
        })
    }
}

/// Argument flags of COMMAND DOCS.
pub mod argflags {
    pub const OPTIONAL: u8 = 1;
    pub const MULTIPLE: u8 = 2;
    pub const MULTIPLE_TOKEN: u8 = 4;
    pub const NAMES: &[(u8, &str)] = &[
        (OPTIONAL, "optional"),
        (MULTIPLE, "multiple"),
        (MULTIPLE_TOKEN, "multiple_token"),
    ];
}

/// One documented argument (COMMAND DOCS).
#[derive(Debug, Clone)]
pub struct Arg {
    pub name: &'static str,
    /// "string", "integer", "double", "key", "pattern", "unix-time", "pure-token",
    /// "oneof", "block".
    pub kind: &'static str,
    pub key_spec_index: Option<i64>,
    pub token: Option<&'static str>,
    pub since: Option<&'static str>,
    pub deprecated_since: Option<&'static str>,
    pub flags: u8,
    pub args: Vec<Arg>,
}

/// Everything Redis 7.0 documents about one command or subcommand.
#[derive(Debug, Clone)]
pub struct Meta {
    pub name: &'static str,
    pub arity: i32,
    /// The documentation group ("generic", "sorted-set", ...).
    pub group: &'static str,
    pub since: &'static str,
    pub summary: &'static str,
    pub complexity: Option<&'static str>,
    /// Redis's command flags (lowercase names, as in the JSON files).
    pub flags: Vec<&'static str>,
    /// The categories the command declares; [`CommandSpec::acl_categories`] adds
    /// the ones Redis derives from the flags.
    pub acl: u32,
    pub tips: Vec<&'static str>,
    pub history: Vec<(&'static str, &'static str)>,
    pub doc_flags: Vec<&'static str>,
    pub deprecated_since: Option<&'static str>,
    pub replaced_by: Option<&'static str>,
    pub getkeys: Option<GetKeys>,
    pub key_specs: Vec<KeySpec>,
    pub args: Vec<Arg>,
}

impl Meta {
    fn new(fields: &[&'static str]) -> Option<Meta> {
        Some(Meta {
            name: fields.get(1)?,
            arity: fields.get(2)?.parse().ok()?,
            group: fields.get(3)?,
            since: fields.get(4)?,
            summary: "",
            complexity: None,
            flags: Vec::new(),
            acl: 0,
            tips: Vec::new(),
            history: Vec::new(),
            doc_flags: Vec::new(),
            deprecated_since: None,
            replaced_by: None,
            getkeys: None,
            key_specs: Vec::new(),
            args: Vec::new(),
        })
    }

    /// Redis's legacy (first, last, step) key range and whether the command has
    /// keys the range does not cover (`movablekeys`), both derived from the key
    /// specs as Redis's `populateCommandLegacyRangeSpec` does.
    pub fn legacy_range(&self) -> (i64, i64, i64, bool) {
        let specs = &self.key_specs;
        if specs.is_empty() {
            return (0, 0, 0, false);
        }
        let range_of = |s: &KeySpec| match (s.begin, s.find) {
            (BeginSearch::Index(pos), FindKeys::Range { lastkey, step, .. }) => {
                Some((pos, lastkey, step))
            }
            _ => None,
        };
        let mut movable = false;
        if specs.len() == 1 {
            if let Some((pos, lastkey, step)) = range_of(&specs[0]) {
                let last = if lastkey >= 0 { pos + lastkey } else { lastkey };
                let incomplete = specs[0].flags & keyflags::INCOMPLETE != 0;
                return (pos, last, step, incomplete);
            }
        }
        let (mut first, mut last) = (i64::MAX, 0i64);
        let mut prev_last = 0i64;
        for s in specs {
            let Some((pos, lastkey, step)) = range_of(s) else {
                movable = true;
                continue;
            };
            if step != 1 || (prev_last != 0 && prev_last != pos - 1) {
                movable = true;
                continue;
            }
            if s.flags & keyflags::INCOMPLETE != 0 {
                movable = true;
            }
            first = first.min(pos);
            let abs = if lastkey >= 0 { lastkey + pos } else { lastkey };
            // Redis compares as unsigned so that a negative (relative-to-end) last
            // key wins over any positive one.
            if (abs as u64) > (last as u64) {
                last = abs;
            }
            prev_last = last;
        }
        if first == i64::MAX {
            return (0, 0, 0, true);
        }
        (first, last, 1, movable)
    }

    /// Whether any key spec names real keys (not `NOT_KEY`), or a function finds
    /// them (Redis's `doesCommandHaveKeys`).
    pub fn has_keys(&self) -> bool {
        self.getkeys.is_some()
            || self
                .key_specs
                .iter()
                .any(|k| k.flags & keyflags::NOT_KEY == 0)
    }
}

fn parse_keyspec(fields: &[&'static str]) -> Option<KeySpec> {
    let mut flags = 0;
    for f in fields.get(1)?.split(' ') {
        flags |= keyflags::NAMES.iter().find(|(_, n, _)| *n == f)?.0;
    }
    let num = |s: Option<&&str>| s.and_then(|v| v.parse::<i64>().ok());
    let b: Vec<&'static str> = fields.get(2)?.split(' ').collect();
    let begin = match b[0] {
        "index" => BeginSearch::Index(num(b.get(1))?),
        "keyword" => BeginSearch::Keyword {
            keyword: b.get(1)?,
            startfrom: num(b.get(2))?,
        },
        _ => BeginSearch::Unknown,
    };
    let k: Vec<&'static str> = fields.get(3)?.split(' ').collect();
    let find = match k[0] {
        "range" => FindKeys::Range {
            lastkey: num(k.get(1))?,
            step: num(k.get(2))?,
            limit: num(k.get(3))?,
        },
        "keynum" => FindKeys::Keynum {
            keynumidx: num(k.get(1))?,
            firstkey: num(k.get(2))?,
            step: num(k.get(3))?,
        },
        _ => FindKeys::Unknown,
    };
    Some(KeySpec {
        flags,
        begin,
        find,
        notes: fields.get(4).copied(),
    })
}

fn parse_arg(fields: &[&'static str]) -> Option<Arg> {
    let mut a = Arg {
        name: fields.get(1)?,
        kind: fields.get(2)?,
        key_spec_index: None,
        token: None,
        since: None,
        deprecated_since: None,
        flags: 0,
        args: Vec::new(),
    };
    for f in &fields[3..] {
        if let Some(v) = f.strip_prefix("ks=") {
            a.key_spec_index = Some(v.parse().ok()?);
        } else if let Some(v) = f.strip_prefix("tok=") {
            a.token = Some(v);
        } else if let Some(v) = f.strip_prefix("since=") {
            a.since = Some(v);
        } else if let Some(v) = f.strip_prefix("dep=") {
            a.deprecated_since = Some(v);
        } else {
            a.flags |= argflags::NAMES.iter().find(|(_, n)| n == f)?.0;
        }
    }
    Some(a)
}

/// Appends an argument at `depth` under the last argument of the level above.
fn push_arg(args: &mut Vec<Arg>, depth: usize, arg: Arg) -> Option<()> {
    if depth == 0 {
        args.push(arg);
        return Some(());
    }
    push_arg(&mut args.last_mut()?.args, depth - 1, arg)
}

/// Reads the data; a malformed line is reported with its number (a unit test
/// parses the whole file, so this cannot happen in a build that passed it).
fn parse(data: &'static str) -> Result<Vec<Meta>, usize> {
    let mut out: Vec<Meta> = Vec::new();
    for (i, line) in data.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&'static str> = line.split('\t').collect();
        let bad = || i + 1;
        if fields[0] == "C" {
            out.push(Meta::new(&fields).ok_or_else(bad)?);
            continue;
        }
        let m = out.last_mut().ok_or_else(bad)?;
        let one = fields.get(1).copied().ok_or_else(bad)?;
        match fields[0] {
            "S" => m.summary = one,
            "X" => m.complexity = Some(one),
            "F" => m.flags = one.split(' ').collect(),
            "A" => {
                for c in one.split(' ') {
                    let bit = acl::bit(c);
                    if bit == 0 {
                        return Err(bad());
                    }
                    m.acl |= bit;
                }
            }
            "T" => m.tips.push(one),
            "H" => m
                .history
                .push((one, fields.get(2).copied().ok_or_else(bad)?)),
            "D" => m.doc_flags = one.split(' ').collect(),
            "V" => m.deprecated_since = Some(one),
            "P" => m.replaced_by = Some(one),
            "G" => m.getkeys = Some(GetKeys::parse(one).ok_or_else(bad)?),
            "K" => m.key_specs.push(parse_keyspec(&fields).ok_or_else(bad)?),
            d if d.starts_with('R') => {
                let depth: usize = d[1..].parse().map_err(|_| bad())?;
                let arg = parse_arg(&fields).ok_or_else(bad)?;
                push_arg(&mut m.args, depth, arg).ok_or_else(bad)?;
            }
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

fn all_meta() -> &'static HashMap<&'static str, Meta> {
    static META: OnceLock<HashMap<&'static str, Meta>> = OnceLock::new();
    META.get_or_init(|| {
        // A malformed line leaves the metadata empty (COMMAND then shows no key
        // specs or docs) rather than failing the server; the unit test below
        // rejects such data at build time.
        parse(DATA)
            .unwrap_or_default()
            .into_iter()
            .chain(parse(crate::json::META_DATA).unwrap_or_default())
            .map(|m| (m.name, m))
            .collect()
    })
}

/// The metadata of a command by full name (`get`, `config|get`).
pub fn lookup(name: &str) -> Option<&'static Meta> {
    all_meta().get(name)
}

/// Command flags as COMMAND INFO prints them, in Redis's order (`may_replicate`
/// and the other hidden flags are left out, as Redis does).
pub const SHOWN_FLAGS: &[&str] = &[
    "write",
    "readonly",
    "denyoom",
    "module",
    "admin",
    "pubsub",
    "noscript",
    "blocking",
    "loading",
    "stale",
    "skip_monitor",
    "skip_slowlog",
    "asking",
    "fast",
    "no_auth",
    "no_mandatory_keys",
    "no_async_loading",
    "no_multi",
    "movablekeys",
    "allow_busy",
];

impl CommandSpec {
    /// Redis's metadata of this command.
    pub fn meta(&self) -> Option<&'static Meta> {
        lookup(self.name)
    }

    /// The ACL categories of the command: those it declares, and those Redis
    /// derives from its flags (`setImplicitACLCategories`).
    pub fn acl_categories(&self) -> u32 {
        let mut c = self.meta().map_or(0, |m| m.acl);
        if self.has(flags::WRITE) {
            c |= acl::bit("write");
        }
        if self.has(flags::READONLY) && c & acl::bit("scripting") == 0 {
            c |= acl::bit("read");
        }
        if self.has(flags::ADMIN) {
            c |= acl::bit("admin") | acl::bit("dangerous");
        }
        if self.has(flags::PUBSUB) {
            c |= acl::bit("pubsub");
        }
        if self.has(flags::FAST) {
            c |= acl::bit("fast");
        }
        if self.has(flags::BLOCKING) {
            c |= acl::bit("blocking");
        }
        if c & acl::bit("fast") == 0 {
            c |= acl::bit("slow");
        }
        c
    }

    /// The flags COMMAND INFO shows, in Redis's order: the table's (which agree
    /// with Redis's but for [`FLAG_DEVIATIONS`], see the tests), and those the
    /// table has no bit for (`asking`, `no_async_loading`) from Redis's metadata.
    pub fn shown_flags(&self) -> Vec<&'static str> {
        let meta = self.meta();
        SHOWN_FLAGS
            .iter()
            .copied()
            .filter(|name| match flags::NAMES.iter().find(|(_, n)| n == name) {
                Some((bit, _)) => self.has(*bit),
                None => meta.is_some_and(|m| m.flags.contains(name)),
            })
            .collect()
    }
}

/// Where the table's flags differ from Redis 7.0's on purpose: (command, flag, why).
pub const FLAG_DEVIATIONS: &[(&str, u32, &str)] = &[(
    "bgrewriteaof",
    flags::NO_MULTI,
    "it stages the append log in the middle of the batch: inside MULTI it would split \
     the transaction's log frame, which replay must apply whole",
)];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table;

    #[test]
    fn the_data_parses_whole() {
        let all = parse(DATA).unwrap_or_else(|l| panic!("cmdmeta.txt line {l} is malformed"));
        // Redis 7.0.15: 240 commands and 126 subcommands.
        assert_eq!(all.len(), 366);
        assert_eq!(all.iter().filter(|m| !m.name.contains('|')).count(), 240);
        let set = lookup("set").unwrap();
        assert_eq!(set.arity, -3);
        assert_eq!(set.getkeys, Some(GetKeys::Set));
        assert_eq!(set.key_specs.len(), 1);
        assert_eq!(set.args.len(), 5);
        assert_eq!(set.args[4].args.len(), 5);
        assert_eq!(set.args[4].args[4].token, Some("KEEPTTL"));
    }

    #[test]
    fn the_json_data_parses_whole() {
        let all = parse(crate::json::META_DATA)
            .unwrap_or_else(|l| panic!("json/cmdmeta.txt line {l} is malformed"));
        assert_eq!(all.len(), crate::cmd::json::COMMANDS.len());
        let set = lookup("json.set").unwrap();
        assert!(set.flags.contains(&"module"));
        assert_eq!(set.acl, acl::bit("json"));
        assert_eq!(
            lookup("json.mget").unwrap().legacy_range(),
            (1, -2, 1, false)
        );
        assert_eq!(
            lookup("json.mset").unwrap().legacy_range(),
            (1, -1, 3, false)
        );
    }

    #[test]
    fn legacy_ranges_follow_redis() {
        let r = |n: &str| lookup(n).unwrap().legacy_range();
        assert_eq!(r("get"), (1, 1, 1, false));
        assert_eq!(r("mset"), (1, -1, 2, false));
        assert_eq!(r("lmove"), (1, 2, 1, false));
        assert_eq!(r("zunionstore"), (1, 1, 1, true));
        assert_eq!(r("eval"), (0, 0, 0, true));
        assert_eq!(r("sort"), (1, 1, 1, true));
        assert_eq!(r("ping"), (0, 0, 0, false));
        assert_eq!(r("memory|usage"), (2, 2, 1, false));
    }

    /// Every row of the command table has Redis's metadata, and agrees with it on
    /// arity, flags and key positions (COMMAND INFO shows the metadata's).
    #[test]
    fn table_rows_agree_with_redis() {
        let mut bad = Vec::new();
        let mut check = |c: &CommandSpec| {
            let Some(m) = c.meta() else {
                bad.push(format!("{}: not a Redis 7.0 command", c.name));
                return;
            };
            if m.arity != c.arity {
                bad.push(format!("{}: arity {} (Redis {})", c.name, c.arity, m.arity));
            }
            for (f, n) in flags::NAMES {
                if *f == flags::MOVABLEKEYS {
                    continue;
                }
                let deviates = FLAG_DEVIATIONS
                    .iter()
                    .any(|(name, bit, _)| *name == c.name && bit == f);
                if c.has(*f) != m.flags.contains(n) && !deviates {
                    bad.push(format!("{}: flag {n} differs from Redis", c.name));
                }
            }
            let (first, last, step, movable) = m.legacy_range();
            if (c.first_key as i64, c.last_key as i64, c.step as i64) != (first, last, step) {
                bad.push(format!(
                    "{}: keys {} {} {} (Redis {first} {last} {step})",
                    c.name, c.first_key, c.last_key, c.step
                ));
            }
            if c.has(flags::MOVABLEKEYS) != movable {
                bad.push(format!("{}: movablekeys differs from Redis", c.name));
            }
        };
        for c in table::all() {
            check(c);
            for s in c.subs {
                check(s);
            }
        }
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }

    #[test]
    fn categories_include_implicit_ones() {
        let cats = |n: &str| {
            let c = table::lookup(n.as_bytes()).unwrap();
            acl::names(c.acl_categories()).collect::<Vec<_>>()
        };
        assert_eq!(cats("set"), ["write", "string", "slow"]);
        assert_eq!(cats("get"), ["read", "string", "fast"]);
        assert_eq!(cats("del"), ["keyspace", "write", "slow"]);
        assert_eq!(cats("eval"), ["slow", "scripting"]);
        assert_eq!(cats("flushall"), ["keyspace", "write", "slow", "dangerous"]);
    }
}
