//! ACL users (Redis 7.0's `acl.c`): who may run which commands on which keys and
//! channels.
//!
//! * The registry ([`Acl`]) lives in `Shared`, behind its own lock, read only when a
//!   client authenticates, when the rules change, by the ACL commands and by a
//!   denial (the log); a busy script holding the server lock does not stop AUTH.
//! * A connection holds an `Arc<User>` (an immutable version of its user) and the
//!   registry's epoch when it took it. Every change to any user bumps the epoch; a
//!   connection sees the bump at its next command (one atomic load) and takes the
//!   new version of its user, as Redis's clients see a user changed in place.
//! * The hot path: a user allowed every command, key and channel (the `default` user
//!   unless it was restricted) has [`User::unrestricted`] set and skips every check;
//!   a restricted user costs a bit test in the selector's command bitmap (indexed by
//!   the command's number in the one command table, `table::number_of`) plus the
//!   key patterns matched against the keys the command's key specs name
//!   (`getkeys.rs`, the same function COMMAND GETKEYS uses).
//! * Command categories are `CommandSpec::acl_categories` (Redis 7.0.15's metadata,
//!   `cmdmeta.txt`), so ACL CAT, `+@category` and the checks read the same data.
//! * Passwords are kept only as SHA-256 hex digests, compared in constant time.

pub(crate) mod check;
pub(crate) mod file;
pub(crate) mod rules;

use bytes::Bytes;
use parking_lot::RwLock;
use redsnap_engine::cmdmeta::Meta;
use redsnap_engine::table::{self, CommandSpec};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

pub(crate) use check::Denied;

/// User flags (Redis's `USER_FLAG_*`), in the order ACL LIST shows them.
pub(crate) mod uflags {
    pub const ENABLED: u8 = 1;
    pub const DISABLED: u8 = 2;
    pub const NOPASS: u8 = 4;
    pub const SKIP_SANITIZE: u8 = 8;
    pub const SANITIZE: u8 = 16;
    pub const NAMES: &[(u8, &str)] = &[
        (ENABLED, "on"),
        (DISABLED, "off"),
        (NOPASS, "nopass"),
        (SKIP_SANITIZE, "skip-sanitize-payload"),
        (SANITIZE, "sanitize-payload"),
    ];
}

/// Selector flags (Redis's `SELECTOR_FLAG_*`).
pub(crate) const ROOT: u8 = 1;
pub(crate) const ALLKEYS: u8 = 2;
pub(crate) const ALLCOMMANDS: u8 = 4;
pub(crate) const ALLCHANNELS: u8 = 8;

/// Key pattern permissions (`%R~`, `%W~`, `~`).
pub(crate) const PERM_READ: u8 = 1;
pub(crate) const PERM_WRITE: u8 = 2;
pub(crate) const PERM_ALL: u8 = 3;

/// Every command and subcommand by number (`table::numbered`), with what the ACL
/// code needs of each, computed once.
pub(crate) struct Universe {
    pub specs: &'static [&'static CommandSpec],
    pub cats: Vec<u32>,
    pub meta: Vec<Option<&'static Meta>>,
    /// For a parent, the numbers of its subcommands.
    pub subs: Vec<std::ops::Range<usize>>,
    /// Parents only, in table order.
    pub parents: Vec<usize>,
    /// The command's keys are exactly its table key range (no movable keys, no
    /// key spec that is not a key).
    pub range_keys: Vec<bool>,
}

pub(crate) fn universe() -> &'static Universe {
    static U: OnceLock<Universe> = OnceLock::new();
    U.get_or_init(|| {
        let specs = table::numbered();
        let mut parents = Vec::new();
        let mut subs = vec![0..0; specs.len()];
        let mut i = 0;
        while i < specs.len() {
            let n = specs[i].subs.len();
            parents.push(i);
            subs[i] = i + 1..i + 1 + n;
            i += 1 + n;
        }
        Universe {
            specs,
            cats: specs.iter().map(|s| s.acl_categories()).collect(),
            meta: specs.iter().map(|s| s.meta()).collect(),
            range_keys: specs
                .iter()
                .map(|s| {
                    !s.has(redsnap_engine::table::flags::MOVABLEKEYS)
                        && s.meta().is_some_and(|m| {
                            m.key_specs
                                .iter()
                                .all(|k| k.flags & redsnap_engine::cmdmeta::keyflags::NOT_KEY == 0)
                        })
                })
                .collect(),
            subs,
            parents,
        }
    })
}

/// The number of bits in a command bitmap: every command, plus the reserved bit of
/// "future commands" that only `+@all` sets (as Redis's last bit).
pub(crate) fn nbits() -> usize {
    universe().specs.len() + 1
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyPattern {
    pub flags: u8,
    pub pattern: Bytes,
}

/// A set of permissions (Redis's `aclSelector`): the root one (rules given outside
/// parentheses) and any number of `(...)` selectors; a command is allowed when one
/// selector allows it.
#[derive(Debug, Clone)]
pub(crate) struct Selector {
    pub flags: u8,
    pub allowed: Vec<u64>,
    /// Allowed first arguments of an otherwise denied command (`+select|0`), by
    /// command number.
    pub firstargs: HashMap<usize, Vec<Bytes>>,
    pub patterns: Vec<KeyPattern>,
    pub channels: Vec<Bytes>,
}

impl Selector {
    pub fn new(flags: u8, pubsub_default_all: bool) -> Selector {
        Selector {
            flags: flags | if pubsub_default_all { ALLCHANNELS } else { 0 },
            allowed: vec![0; nbits().div_ceil(64)],
            firstargs: HashMap::new(),
            patterns: Vec::new(),
            channels: Vec::new(),
        }
    }

    #[inline]
    pub fn bit(&self, id: usize) -> bool {
        self.allowed
            .get(id / 64)
            .is_some_and(|w| w & (1u64 << (id % 64)) != 0)
    }

    pub fn set_bit(&mut self, id: usize, v: bool) {
        let Some(w) = self.allowed.get_mut(id / 64) else {
            return;
        };
        if v {
            *w |= 1u64 << (id % 64);
        } else {
            *w &= !(1u64 << (id % 64));
            self.flags &= !ALLCOMMANDS;
        }
    }

    /// Whether `+@all` was the last word on the commands (future commands allowed).
    pub fn future_commands(&self) -> bool {
        self.bit(nbits() - 1)
    }

    fn unrestricted(&self) -> bool {
        self.flags & (ALLKEYS | ALLCOMMANDS | ALLCHANNELS) == ALLKEYS | ALLCOMMANDS | ALLCHANNELS
    }
}

/// One user. Immutable once published: a change makes a new version.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub name: Bytes,
    pub flags: u8,
    /// SHA-256 digests, lowercase hex (64 bytes each).
    pub passwords: Vec<Bytes>,
    /// `selectors[0]` is the root selector.
    pub selectors: Vec<Selector>,
    /// Every command, key and channel is allowed: the checks are skipped.
    pub unrestricted: bool,
}

impl User {
    pub fn new(name: Bytes, pubsub_default_all: bool) -> User {
        User {
            name,
            flags: uflags::DISABLED,
            passwords: Vec::new(),
            selectors: vec![Selector::new(ROOT, pubsub_default_all)],
            unrestricted: false,
        }
    }

    /// The user with no permissions at all (a connection whose user was deleted, until
    /// it is closed).
    pub fn nobody() -> Arc<User> {
        Arc::new(User::new(Bytes::new(), false))
    }

    pub fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }

    pub(crate) fn refresh(&mut self) {
        self.unrestricted = self.selectors.iter().any(Selector::unrestricted);
    }

    /// Redis's `ACLCreateDefaultUser`.
    pub fn default_user() -> User {
        let mut u = User::new(Bytes::from_static(b"default"), false);
        for op in ["+@all", "~*", "&*", "on", "nopass"] {
            let _ = rules::set_user(&mut u, op.as_bytes(), false);
        }
        u.refresh();
        u
    }
}

/// One entry of ACL LOG.
#[derive(Debug, Clone)]
pub(crate) struct LogEntry {
    pub count: u64,
    pub reason: Reason,
    pub context: Context,
    pub object: Bytes,
    pub username: Bytes,
    pub ctime_ms: u64,
    pub cinfo: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    Command,
    Key,
    Channel,
    Auth,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Reason::Command => "command",
            Reason::Key => "key",
            Reason::Channel => "channel",
            Reason::Auth => "auth",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Context {
    Toplevel,
    Multi,
    Lua,
}

impl Context {
    pub fn name(self) -> &'static str {
        match self {
            Context::Toplevel => "toplevel",
            Context::Multi => "multi",
            Context::Lua => "lua",
        }
    }
}

/// The users, the ACL log and the settings that shape new users.
pub(crate) struct AclState {
    /// By name, in byte order (Redis's rax order for ACL LIST and ACL SAVE).
    pub users: BTreeMap<Bytes, Arc<User>>,
    pub log: VecDeque<LogEntry>,
    pub log_max: usize,
    /// `acl-pubsub-default allchannels`.
    pub pubsub_default_all: bool,
    /// `aclfile` ("" = none).
    pub file: String,
}

/// The registry in `Shared`.
pub(crate) struct Acl {
    pub state: RwLock<AclState>,
    /// Bumped by every change of any user.
    pub epoch: AtomicU64,
}

impl Default for Acl {
    fn default() -> Self {
        let mut users = BTreeMap::new();
        users.insert(
            Bytes::from_static(b"default"),
            Arc::new(User::default_user()),
        );
        Acl {
            state: RwLock::new(AclState {
                users,
                log: VecDeque::new(),
                log_max: 128,
                pubsub_default_all: false,
                file: String::new(),
            }),
            epoch: AtomicU64::new(1),
        }
    }
}

impl Acl {
    pub fn user(&self, name: &[u8]) -> Option<Arc<User>> {
        self.state.read().users.get(name).cloned()
    }

    pub fn default_user(&self) -> Arc<User> {
        self.user(b"default")
            .unwrap_or_else(|| Arc::new(User::default_user()))
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// After a change of the users: connections re-read theirs, and the
    /// authentication requirement of new connections follows the default user.
    pub fn changed(&self, live: &crate::state::LiveConfig) {
        let d = self.default_user();
        let required = !d.has(uflags::NOPASS) || d.has(uflags::DISABLED);
        live.auth_required.store(required, Ordering::Release);
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// `requirepass` sets the default user's password (Redis's
    /// `ACLUpdateDefaultUserPassword`); "" makes it `nopass`.
    pub fn set_requirepass(&self, live: &crate::state::LiveConfig, pass: &[u8]) {
        {
            let mut st = self.state.write();
            let pubsub = st.pubsub_default_all;
            let mut u = st
                .users
                .get(&b"default"[..])
                .map(|u| (**u).clone())
                .unwrap_or_else(User::default_user);
            let _ = rules::set_user(&mut u, b"resetpass", pubsub);
            if pass.is_empty() {
                let _ = rules::set_user(&mut u, b"nopass", pubsub);
            } else {
                let mut op = b">".to_vec();
                op.extend_from_slice(pass);
                let _ = rules::set_user(&mut u, &op, pubsub);
            }
            u.refresh();
            st.users.insert(Bytes::from_static(b"default"), Arc::new(u));
        }
        self.changed(live);
    }

    /// Adds a denial to ACL LOG, or bumps a similar recent one (Redis's
    /// `addACLLogEntry`).
    pub fn log(&self, mut e: LogEntry) {
        let mut st = self.state.write();
        let max = st.log_max;
        let found = st.log.iter().take(10).position(|c| {
            c.reason == e.reason
                && c.context == e.context
                && c.ctime_ms.abs_diff(e.ctime_ms) <= 60_000
                && c.object == e.object
                && c.username == e.username
        });
        if let Some(i) = found {
            if let Some(mut m) = st.log.remove(i) {
                m.cinfo = std::mem::take(&mut e.cinfo);
                m.ctime_ms = e.ctime_ms;
                m.count += 1;
                st.log.push_front(m);
            }
            return;
        }
        st.log.push_front(e);
        while st.log.len() > max {
            st.log.pop_back();
        }
    }
}

/// SHA-256 of a password, lowercase hex (Redis's `ACLHashPassword`).
pub(crate) fn hash_password(pass: &[u8]) -> Bytes {
    use sha2::Digest;
    let d = sha2::Sha256::digest(pass);
    let mut out = Vec::with_capacity(64);
    for b in d {
        out.push(b"0123456789abcdef"[(b >> 4) as usize]);
        out.push(b"0123456789abcdef"[(b & 15) as usize]);
    }
    Bytes::from(out)
}

/// Equality of two digests visiting every byte (time independent of where they
/// differ).
pub(crate) fn digest_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Redis's `ACLCheckUserCredentials`: the user if the name and password are valid.
pub(crate) fn check_credentials(acl: &Acl, name: &[u8], pass: &[u8]) -> Option<Arc<User>> {
    let u = acl.user(name)?;
    if u.has(uflags::DISABLED) {
        return None;
    }
    if u.has(uflags::NOPASS) {
        return Some(u);
    }
    let h = hash_password(pass);
    // Every stored digest is compared, whether or not an earlier one matched.
    let mut ok = false;
    for p in &u.passwords {
        ok |= digest_eq(&h, p);
    }
    ok.then_some(u)
}

/// Whether a string has spaces or NUL bytes (Redis's `ACLStringHasSpaces`).
pub(crate) fn has_spaces(s: &[u8]) -> bool {
    s.iter()
        .any(|&c| c == 0 || matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
}

/// An I/O error as C's `strerror` words it (without Rust's "(os error N)").
pub(crate) fn file_error_text(e: &std::io::Error) -> String {
    let t = e.to_string();
    match t.find(" (os error") {
        Some(i) => t[..i].to_string(),
        None => t,
    }
}

impl Acl {
    /// `acllog-max-len` and `acl-pubsub-default` (at startup and after CONFIG SET).
    pub fn configure(&self, c: &crate::config::Config) {
        let mut st = self.state.write();
        st.log_max = c.u64("acllog-max-len") as usize;
        st.pubsub_default_all = c.str("acl-pubsub-default") == "allchannels";
    }
}

/// Loads the users of the config file's `user` directives, or of the `aclfile`
/// (relative to `dir`), at startup (Redis's `ACLLoadUsersAtStartup`).
pub(crate) fn load_at_startup(
    shared: &crate::state::Shared,
    c: &crate::config::Config,
) -> Result<(), String> {
    let aclfile = c.str("aclfile");
    let directives = c.users();
    if !aclfile.is_empty() && !directives.is_empty() {
        return Err("Configuring Redis with users defined in redis.conf and at the same setting an ACL file path is invalid. This setup is very likely to lead to configuration errors and security holes, please define either an ACL file or declare users directly in your redis.conf, but not both.".into());
    }
    let acl = &shared.acl;
    {
        let mut st = acl.state.write();
        let pubsub_all = st.pubsub_default_all;
        file::apply_directives(&mut st.users, directives, pubsub_all)
            .map_err(|e| format!("{e}. Critical error while loading ACLs. Exiting."))?;
        if !aclfile.is_empty() {
            let path = std::path::Path::new(&c.str("dir")).join(&aclfile);
            let path = path.to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).map_err(|e| {
                format!(
                    "Aborting Redis startup because of ACL errors: Error loading ACLs, opening file '{path}': {}",
                    file_error_text(&e)
                )
            })?;
            st.users = file::parse(&path, &text, pubsub_all)
                .map_err(|e| format!("Aborting Redis startup because of ACL errors: {e}"))?;
            st.file = path;
        }
    }
    acl.changed(&shared.live);
    Ok(())
}

/// The users as config-file `user` lines for CONFIG REWRITE; None when an
/// `aclfile` holds them.
pub(crate) fn rewrite_lines(acl: &Acl) -> Option<Vec<String>> {
    let st = acl.state.read();
    if !st.file.is_empty() {
        return None;
    }
    Some(
        st.users
            .values()
            .map(|u| {
                format!(
                    "user {} {}",
                    String::from_utf8_lossy(&u.name),
                    rules::describe_user(u)
                )
            })
            .collect(),
    )
}
