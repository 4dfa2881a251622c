//! The permission check (Redis's `ACLCheckAllUserCommandPerm`) and the denials'
//! texts and log entries.

use super::{
    universe, Context, LogEntry, Reason, Selector, User, ALLCHANNELS, ALLCOMMANDS, ALLKEYS,
    PERM_ALL, PERM_READ, PERM_WRITE,
};
use bytes::Bytes;
use redsnap_engine::cmdmeta::keyflags;
use redsnap_engine::getkeys::{self, KeyRef};
use redsnap_engine::glob::glob_match;
use redsnap_engine::table::{flags, CommandSpec};
use redsnap_engine::Reply;

/// Why a command was refused; the position is the argument (key or channel) at
/// fault. Ordered as Redis's `ACL_DENIED_*` values (the most relevant wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denied {
    Cmd,
    Key(usize),
    Channel(usize),
}

impl Denied {
    fn rank(self) -> (u8, usize) {
        match self {
            Denied::Cmd => (1, 0),
            Denied::Key(i) => (2, i),
            Denied::Channel(i) => (4, i),
        }
    }

    pub fn reason(self) -> Reason {
        match self {
            Denied::Cmd => Reason::Command,
            Denied::Key(_) => Reason::Key,
            Denied::Channel(_) => Reason::Channel,
        }
    }

    /// What ACL LOG records as the object: the command's full name, or the key or
    /// channel.
    pub fn object(self, spec: &CommandSpec, argv: &[Bytes]) -> Bytes {
        match self {
            Denied::Cmd => Bytes::from_static(spec.name.as_bytes()),
            Denied::Key(i) | Denied::Channel(i) => argv.get(i).cloned().unwrap_or_default(),
        }
    }

    /// The reply to a client's command (`processCommand`).
    pub fn error(self, spec: &CommandSpec) -> Reply {
        match self {
            Denied::Cmd => Reply::error(format!(
                "NOPERM this user has no permissions to run the '{}' command",
                spec.name
            )),
            Denied::Key(_) => Reply::err(
                "NOPERM this user has no permissions to access one of the keys used as arguments",
            ),
            Denied::Channel(_) => Reply::err(
                "NOPERM this user has no permissions to access one of the channels used as arguments",
            ),
        }
    }

    /// The reply to a queued command EXEC finds denied (`execCommand`).
    pub fn exec_error(self) -> Reply {
        let reason = match self {
            Denied::Cmd => "no permission to execute the command or subcommand",
            Denied::Key(_) => "no permission to touch the specified keys",
            Denied::Channel(_) => "no permission to access one of the channels used as arguments",
        };
        Reply::error(format!("NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: {reason}"))
    }

    /// The error of a script's call (`getAclErrorMessage`, after "The user executing
    /// the script ").
    pub fn script_message(self) -> &'static str {
        match self {
            Denied::Cmd => "can't run this command or subcommand",
            Denied::Key(_) => {
                "can't access at least one of the keys mentioned in the command arguments"
            }
            Denied::Channel(_) => "can't publish to the channel mentioned in the command",
        }
    }

    /// ACL DRYRUN's answer.
    pub fn dryrun_text(self, spec: &CommandSpec, argv: &[Bytes]) -> String {
        match self {
            Denied::Cmd => format!(
                "This user has no permissions to run the '{}' command",
                spec.name
            ),
            Denied::Key(i) => format!(
                "This user has no permissions to access the '{}' key",
                String::from_utf8_lossy(argv.get(i).map_or(&b""[..], |a| a))
            ),
            Denied::Channel(i) => format!(
                "This user has no permissions to access the '{}' channel",
                String::from_utf8_lossy(argv.get(i).map_or(&b""[..], |a| a))
            ),
        }
    }
}

/// Channel arguments of the pub/sub commands (Redis's `getChannelsFromCommand`):
/// (first argument, only one, pattern). Unsubscribing is never checked.
fn channel_args(spec: &CommandSpec) -> Option<(bool, bool)> {
    Some(match spec.name {
        "publish" | "spublish" => (true, false),
        "subscribe" | "ssubscribe" => (false, false),
        "psubscribe" => (false, true),
        _ => return None,
    })
}

/// Whether a channel (or a PSUBSCRIBE pattern, compared literally) is in the list.
pub(crate) fn channel_allowed(list: &[Bytes], ch: &[u8], is_pattern: bool) -> bool {
    list.iter().any(|p| {
        if is_pattern {
            p == ch
        } else {
            glob_match(p, ch, false)
        }
    })
}

fn key_allowed(s: &Selector, key: &[u8], spec_flags: u32) -> bool {
    let mut need = 0;
    if spec_flags & keyflags::ACCESS != 0 {
        need |= PERM_READ;
    }
    if spec_flags & (keyflags::INSERT | keyflags::DELETE | keyflags::UPDATE) != 0 {
        need |= PERM_WRITE;
    }
    s.patterns
        .iter()
        .any(|p| p.flags & need == need && glob_match(&p.pattern, key, false))
}

/// Redis's `ACLSelectorCheckCmd`. `keys` caches the command's keys across selectors.
fn check_selector(
    s: &Selector,
    spec: &CommandSpec,
    id: usize,
    argv: &[Bytes],
    keys: &mut Option<Vec<KeyRef>>,
) -> Result<(), Denied> {
    if s.flags & ALLCOMMANDS == 0 && !spec.has(flags::NO_AUTH) && !s.bit(id) {
        let idx = if spec.name.contains('|') { 2 } else { 1 };
        let ok = argv.len() >= 2
            && s.firstargs.get(&id).is_some_and(|list| {
                argv.get(idx)
                    .is_some_and(|a| list.iter().any(|x| x.eq_ignore_ascii_case(a)))
            });
        if !ok {
            return Err(Denied::Cmd);
        }
    }
    if s.flags & ALLKEYS == 0 {
        if universe().range_keys.get(id) == Some(&true)
            && s.patterns.iter().all(|p| p.flags == PERM_ALL)
        {
            // The common case: the keys are the table's key range and every pattern
            // allows reads and writes, so no key spec needs reading (no allocation).
            if let Some(pos) = range_keys(spec, argv.len()).find(|&i| {
                argv.get(i)
                    .is_some_and(|k| !s.patterns.iter().any(|p| glob_match(&p.pattern, k, false)))
            }) {
                return Err(Denied::Key(pos));
            }
        } else if let Some(meta) = universe().meta.get(id).copied().flatten() {
            let keys = keys.get_or_insert_with(|| getkeys::keys(meta, argv));
            for k in keys.iter() {
                if let Some(key) = argv.get(k.pos) {
                    if !key_allowed(s, key, k.flags) {
                        return Err(Denied::Key(k.pos));
                    }
                }
            }
        }
    }
    if s.flags & ALLCHANNELS == 0 {
        if let Some((one, pattern)) = channel_args(spec) {
            let end = if one { argv.len().min(2) } else { argv.len() };
            for (i, ch) in argv.iter().enumerate().take(end).skip(1) {
                if !channel_allowed(&s.channels, ch, pattern) {
                    return Err(Denied::Channel(i));
                }
            }
        }
    }
    Ok(())
}

/// The key positions of a command without movable keys (its table key range).
fn range_keys(spec: &CommandSpec, argc: usize) -> impl Iterator<Item = usize> {
    let argc = argc as i64;
    let first = spec.first_key as i64;
    let last = if spec.last_key < 0 {
        argc + spec.last_key as i64
    } else {
        (spec.last_key as i64).min(argc - 1)
    };
    let step = (spec.step as i64).max(1) as usize;
    let (from, to) = if first <= 0 || argc <= first {
        (1, 0)
    } else {
        (first, last)
    };
    (from.max(0) as usize..=to.max(0) as usize)
        .step_by(step)
        .filter(move |_| from <= to)
}

/// Whether the user may run the command (`spec`: the subcommand when there is one)
/// with these arguments. The caller skips it for an unrestricted user.
pub(crate) fn check(u: &User, spec: &CommandSpec, argv: &[Bytes]) -> Result<(), Denied> {
    let Some(id) = redsnap_engine::table::number_of(spec) else {
        return Err(Denied::Cmd);
    };
    let mut keys = None;
    let mut relevant = Denied::Cmd;
    for s in &u.selectors {
        match check_selector(s, spec, id, argv, &mut keys) {
            Ok(()) => return Ok(()),
            Err(d) => {
                if d.rank() > relevant.rank() {
                    relevant = d;
                }
            }
        }
    }
    Err(relevant)
}

/// Whether one selector allows the command and reads every key (`~*`, `%R~*` or
/// allkeys): Redis's `ACLUserCheckCmdWithUnrestrictedKeyAccess(.., CMD_KEY_ACCESS)`,
/// which SORT's BY and GET options need.
pub(crate) fn full_read_access(u: &User, spec: &CommandSpec, argv: &[Bytes]) -> bool {
    let Some(id) = redsnap_engine::table::number_of(spec) else {
        return false;
    };
    let mut keys = None;
    u.selectors.iter().any(|s| {
        check_selector(s, spec, id, argv, &mut keys).is_ok()
            && (s.flags & ALLKEYS != 0
                || s.patterns
                    .iter()
                    .any(|p| p.flags & PERM_READ != 0 && &p.pattern[..] == b"*"))
    })
}

/// A log entry for a denial.
pub(crate) fn entry(
    reason: Reason,
    context: Context,
    object: Bytes,
    username: Bytes,
    cinfo: String,
) -> LogEntry {
    LogEntry {
        count: 1,
        reason,
        context,
        object,
        username,
        ctime_ms: redsnap_engine::now_ms(),
        cinfo,
    }
}
