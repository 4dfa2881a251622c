//! ACL SETUSER's rules (Redis's `ACLSetUser` / `ACLSetSelector`) and their
//! description back as rules (`ACLDescribeUser`, ACL LIST, ACL GETUSER, ACL SAVE).

use super::{
    has_spaces, hash_password, uflags, universe, KeyPattern, Selector, User, ALLCHANNELS,
    ALLCOMMANDS, ALLKEYS, PERM_ALL, PERM_READ, PERM_WRITE, ROOT,
};
use bytes::Bytes;
use redsnap_engine::cmdmeta::acl as cats;
use redsnap_engine::table;

/// Why a rule was refused (Redis's errno values in `ACLSetUser`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RuleError {
    /// ENOENT
    UnknownCommand,
    /// EINVAL
    Syntax,
    /// EEXIST
    AfterAllKeys,
    /// EISDIR
    AfterAllChannels,
    /// ENODEV
    NoSuchPassword,
    /// EBADMSG
    BadHash,
    /// ECHILD
    SubcommandFirstArg,
}

impl RuleError {
    /// Redis's `ACLSetUserStringError`.
    pub fn text(self) -> &'static str {
        match self {
            RuleError::UnknownCommand => "Unknown command or category name in ACL",
            RuleError::Syntax => "Syntax error",
            RuleError::AfterAllKeys => "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns",
            RuleError::AfterAllChannels => "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels",
            RuleError::NoSuchPassword => "The password you are trying to remove from the user does not exist",
            RuleError::BadHash => "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters",
            RuleError::SubcommandFirstArg => "Allowing first-arg of a subcommand is not supported",
        }
    }
}

fn eq(op: &[u8], word: &str) -> bool {
    op.eq_ignore_ascii_case(word.as_bytes())
}

fn valid_hash(h: &[u8]) -> bool {
    h.len() == 64 && h.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// Applies one rule to a user (Redis's `ACLSetUser`). The caller calls
/// `User::refresh` when done.
pub(crate) fn set_user(u: &mut User, op: &[u8], pubsub_all: bool) -> Result<(), RuleError> {
    use uflags::*;
    if op.is_empty() {
        return Ok(());
    }
    if eq(op, "on") {
        u.flags = (u.flags | ENABLED) & !DISABLED;
    } else if eq(op, "off") {
        u.flags = (u.flags | DISABLED) & !ENABLED;
    } else if eq(op, "skip-sanitize-payload") {
        u.flags = (u.flags | SKIP_SANITIZE) & !SANITIZE;
    } else if eq(op, "sanitize-payload") {
        u.flags = (u.flags | SANITIZE) & !SKIP_SANITIZE;
    } else if eq(op, "nopass") {
        u.flags |= NOPASS;
        u.passwords.clear();
    } else if eq(op, "resetpass") {
        u.flags &= !NOPASS;
        u.passwords.clear();
    } else if op[0] == b'>' || op[0] == b'#' {
        let p = if op[0] == b'>' {
            hash_password(&op[1..])
        } else {
            if !valid_hash(&op[1..]) {
                return Err(RuleError::BadHash);
            }
            Bytes::copy_from_slice(&op[1..])
        };
        if !u.passwords.contains(&p) {
            u.passwords.push(p);
        }
        u.flags &= !NOPASS;
    } else if op[0] == b'<' || op[0] == b'!' {
        let p = if op[0] == b'<' {
            hash_password(&op[1..])
        } else {
            if !valid_hash(&op[1..]) {
                return Err(RuleError::BadHash);
            }
            Bytes::copy_from_slice(&op[1..])
        };
        match u.passwords.iter().position(|x| *x == p) {
            Some(i) => {
                u.passwords.remove(i);
            }
            None => return Err(RuleError::NoSuchPassword),
        }
    } else if op[0] == b'(' && op[op.len() - 1] == b')' {
        let s = selector_from_opset(op, pubsub_all)?;
        u.selectors.push(s);
    } else if eq(op, "clearselectors") {
        u.selectors.truncate(1);
    } else if eq(op, "reset") {
        for r in ["resetpass", "resetkeys", "resetchannels"] {
            set_user(u, r.as_bytes(), pubsub_all)?;
        }
        if pubsub_all {
            set_user(u, b"allchannels", pubsub_all)?;
        }
        for r in ["off", "sanitize-payload", "clearselectors", "-@all"] {
            set_user(u, r.as_bytes(), pubsub_all)?;
        }
    } else {
        set_selector(&mut u.selectors[0], op)?;
    }
    Ok(())
}

/// A `(...)` selector (Redis's `aclCreateSelectorFromOpSet`).
fn selector_from_opset(op: &[u8], pubsub_all: bool) -> Result<Selector, RuleError> {
    let mut s = Selector::new(0, pubsub_all);
    let inner = &op[1..op.len() - 1];
    let words = crate::resp::split_args(inner).ok_or(RuleError::Syntax)?;
    for w in words {
        set_selector(&mut s, &w)?;
    }
    Ok(s)
}

/// Allows or denies a command; a container's subcommands follow it (Redis's
/// `ACLChangeSelectorPerm`).
fn change_perm(s: &mut Selector, id: usize, allow: bool) {
    s.set_bit(id, allow);
    s.firstargs.remove(&id);
    for sub in universe().subs[id].clone() {
        s.set_bit(sub, allow);
    }
}

/// `+@category` / `-@category` (Redis's `ACLSetSelectorCommandBitsForCategory`).
fn set_category(s: &mut Selector, flag: u32, allow: bool) {
    let u = universe();
    for &p in &u.parents {
        if u.cats[p] & flag != 0 {
            change_perm(s, p, allow);
        }
        for sub in u.subs[p].clone() {
            if u.cats[sub] & flag != 0 {
                change_perm(s, sub, allow);
            }
        }
    }
}

fn category(name: &[u8]) -> u32 {
    if eq(name, "all") {
        return u32::MAX;
    }
    cats::by_name(name)
}

/// The number of a command by its ACL name (`get`, `config|get`).
fn command_id(name: &[u8]) -> Option<usize> {
    table::lookup_full(name).and_then(table::number_of)
}

/// Applies one rule to a selector (Redis's `ACLSetSelector`).
pub(crate) fn set_selector(s: &mut Selector, op: &[u8]) -> Result<(), RuleError> {
    if op.is_empty() {
        return Ok(());
    }
    if eq(op, "allkeys") || op == b"~*" {
        s.flags |= ALLKEYS;
        s.patterns.clear();
    } else if eq(op, "resetkeys") {
        s.flags &= !ALLKEYS;
        s.patterns.clear();
    } else if eq(op, "allchannels") || op == b"&*" {
        s.flags |= ALLCHANNELS;
        s.channels.clear();
    } else if eq(op, "resetchannels") {
        s.flags &= !ALLCHANNELS;
        s.channels.clear();
    } else if eq(op, "allcommands") || eq(op, "+@all") {
        s.allowed.iter_mut().for_each(|w| *w = u64::MAX);
        s.flags |= ALLCOMMANDS;
        s.firstargs.clear();
    } else if eq(op, "nocommands") || eq(op, "-@all") {
        s.allowed.iter_mut().for_each(|w| *w = 0);
        s.flags &= !ALLCOMMANDS;
        s.firstargs.clear();
    } else if op[0] == b'~' || op[0] == b'%' {
        if s.flags & ALLKEYS != 0 {
            return Err(RuleError::AfterAllKeys);
        }
        let mut flags = 0;
        let mut offset = 1;
        if op[0] == b'%' {
            while let Some(&c) = op.get(offset) {
                if c.eq_ignore_ascii_case(&b'r') && flags & PERM_READ == 0 {
                    flags |= PERM_READ;
                } else if c.eq_ignore_ascii_case(&b'w') && flags & PERM_WRITE == 0 {
                    flags |= PERM_WRITE;
                } else if c == b'~' {
                    offset += 1;
                    break;
                } else {
                    return Err(RuleError::Syntax);
                }
                offset += 1;
            }
        } else {
            flags = PERM_ALL;
        }
        let pat = &op[offset.min(op.len())..];
        if has_spaces(pat) {
            return Err(RuleError::Syntax);
        }
        match s.patterns.iter_mut().find(|p| p.pattern == pat) {
            Some(p) => p.flags |= flags,
            None => s.patterns.push(KeyPattern {
                flags,
                pattern: Bytes::copy_from_slice(pat),
            }),
        }
        s.flags &= !ALLKEYS;
    } else if op[0] == b'&' {
        if s.flags & ALLCHANNELS != 0 {
            return Err(RuleError::AfterAllChannels);
        }
        let pat = &op[1..];
        if has_spaces(pat) {
            return Err(RuleError::Syntax);
        }
        if !s.channels.iter().any(|c| c == pat) {
            s.channels.push(Bytes::copy_from_slice(pat));
        }
        s.flags &= !ALLCHANNELS;
    } else if op[0] == b'+' && op.get(1) != Some(&b'@') {
        let name = &op[1..];
        match name.iter().rposition(|&c| c == b'|') {
            None => {
                let id = command_id(name).ok_or(RuleError::UnknownCommand)?;
                change_perm(s, id, true);
            }
            Some(bar) => {
                let (cmd, sub) = (&name[..bar], &name[bar + 1..]);
                let spec = table::lookup_full(cmd).ok_or(RuleError::UnknownCommand)?;
                if spec.name.contains('|') {
                    return Err(RuleError::SubcommandFirstArg);
                }
                if sub.is_empty() {
                    return Err(RuleError::Syntax);
                }
                if !spec.subs.is_empty() {
                    let id = command_id(name).ok_or(RuleError::UnknownCommand)?;
                    change_perm(s, id, true);
                } else {
                    let id = table::number_of(spec).ok_or(RuleError::UnknownCommand)?;
                    tracing::warn!(
                        "Deprecation warning: Allowing a first arg of an otherwise blocked command is a misuse of ACL and may get disabled in the future (offender: +{})",
                        String::from_utf8_lossy(name)
                    );
                    let list = s.firstargs.entry(id).or_default();
                    if !list.iter().any(|a| a.eq_ignore_ascii_case(sub)) {
                        list.push(Bytes::copy_from_slice(sub));
                    }
                }
            }
        }
    } else if op[0] == b'-' && op.get(1) != Some(&b'@') {
        let id = command_id(&op[1..]).ok_or(RuleError::UnknownCommand)?;
        change_perm(s, id, false);
    } else if (op[0] == b'+' || op[0] == b'-') && op.get(1) == Some(&b'@') {
        let flag = category(&op[2..]);
        if flag == 0 {
            return Err(RuleError::UnknownCommand);
        }
        if flag == u32::MAX {
            // Only "+@all" / "-@all" spelled with other case reach here.
            return set_selector(s, if op[0] == b'+' { b"+@all" } else { b"-@all" });
        }
        set_category(s, flag, op[0] == b'+');
    } else {
        return Err(RuleError::Syntax);
    }
    Ok(())
}

/// Joins selector rules spread over several arguments (`(+get`, `~key)`) into one
/// (Redis's `ACLMergeSelectorArguments`). Err: the index of an unmatched `(`.
pub(crate) fn merge_selector_args(args: &[Bytes]) -> Result<Vec<Bytes>, usize> {
    let mut out = Vec::with_capacity(args.len());
    let mut open: Option<(usize, Vec<u8>)> = None;
    for (j, op) in args.iter().enumerate() {
        let ends = op.last() == Some(&b')');
        if open.is_none() && op.first() == Some(&b'(') && !ends {
            open = Some((j, op.to_vec()));
            continue;
        }
        if let Some((_, sel)) = &mut open {
            sel.push(b' ');
            sel.extend_from_slice(op);
            if ends {
                if let Some((_, sel)) = open.take() {
                    out.push(Bytes::from(sel));
                }
            }
            continue;
        }
        out.push(op.clone());
    }
    match open {
        Some((j, _)) => Err(j),
        None => Ok(out),
    }
}

/// A rule as an error message may show it: a password given in clear is not
/// echoed (Redis shows the whole rule).
pub(crate) fn shown_rule(op: &[u8]) -> String {
    match op.first() {
        Some(b'>') | Some(b'<') => format!("{}(redacted)", op[0] as char),
        _ => String::from_utf8_lossy(op).into_owned(),
    }
}

/// ACL SETUSER's rules applied to a copy of the user (or a new one), all or none
/// (Redis's `ACLStringSetUser`). Returns the new version, or the error text.
pub(crate) fn apply_rules(
    base: Option<&User>,
    name: &Bytes,
    args: &[Bytes],
    pubsub_all: bool,
) -> Result<User, String> {
    let merged = merge_selector_args(args).map_err(|j| {
        format!(
            "Unmatched parenthesis in acl selector starting at '{}'.",
            shown_rule(&args[j])
        )
    })?;
    let mut u = match base {
        Some(b) => b.clone(),
        None => User::new(name.clone(), pubsub_all),
    };
    for op in &merged {
        if let Err(e) = set_user(&mut u, op, pubsub_all) {
            return Err(format!(
                "Error in ACL SETUSER modifier '{}': {}",
                shown_rule(op),
                e.text()
            ));
        }
    }
    u.refresh();
    Ok(u)
}

// ---------------------------------------------------------------------------
// Description

fn count_category(s: &Selector, flag: u32) -> (usize, usize) {
    let u = universe();
    let (mut on, mut off) = (0, 0);
    for (i, c) in u.cats.iter().enumerate() {
        if c & flag != 0 {
            if s.bit(i) {
                on += 1;
            } else {
                off += 1;
            }
        }
    }
    (on, off)
}

/// The command rules of a selector, starting with `+@all` or `-@all` (Redis's
/// `ACLDescribeSelectorCommandRules`: categories that fit best first, then single
/// commands, applied to a fake selector as they are emitted).
pub(crate) fn describe_commands(s: &Selector) -> String {
    let mut rules = String::new();
    let mut fake = Selector::new(0, false);
    let additive = !s.future_commands();
    if additive {
        rules.push_str("-@all ");
        let _ = set_selector(&mut fake, b"-@all");
    } else {
        rules.push_str("+@all ");
        let _ = set_selector(&mut fake, b"+@all");
    }
    let mut temp = s.clone();
    let mut applied = vec![false; cats::NAMES.len()];
    loop {
        let mut best = None;
        let (mut mindiff, mut maxsame) = (usize::MAX, 0);
        for (j, name) in cats::NAMES.iter().enumerate() {
            if applied[j] {
                continue;
            }
            let (on, off) = count_category(&temp, cats::bit(name));
            let (diff, same) = if additive { (off, on) } else { (on, off) };
            if same > diff && (diff < mindiff || (diff == mindiff && same > maxsame)) {
                best = Some(j);
                mindiff = diff;
                maxsame = same;
            }
        }
        let Some(j) = best else { break };
        let flag = cats::bit(cats::NAMES[j]);
        set_category(&mut fake, flag, additive);
        set_category(&mut temp, flag, !additive);
        rules.push_str(if additive { "+@" } else { "-@" });
        rules.push_str(cats::NAMES[j]);
        rules.push(' ');
        applied[j] = true;
    }
    let u = universe();
    for &p in &u.parents {
        single_command(s, &mut fake, &mut rules, p);
        for sub in u.subs[p].clone() {
            single_command(s, &mut fake, &mut rules, sub);
        }
    }
    rules.pop();
    rules
}

fn single_command(s: &Selector, fake: &mut Selector, rules: &mut String, id: usize) {
    let u = universe();
    let userbit = s.bit(id);
    if userbit != fake.bit(id) {
        rules.push(if userbit { '+' } else { '-' });
        rules.push_str(u.specs[id].name);
        rules.push(' ');
        change_perm(fake, id, userbit);
    }
    if !userbit {
        if let Some(args) = s.firstargs.get(&id) {
            for a in args {
                rules.push('+');
                rules.push_str(u.specs[id].name);
                rules.push('|');
                rules.push_str(&String::from_utf8_lossy(a));
                rules.push(' ');
            }
        }
    }
}

pub(crate) fn pattern_string(p: &KeyPattern) -> String {
    let prefix = match p.flags {
        PERM_READ => "%R~",
        PERM_WRITE => "%W~",
        _ => "~",
    };
    format!("{prefix}{}", String::from_utf8_lossy(&p.pattern))
}

/// Keys, channels and command rules of a selector (Redis's `ACLDescribeSelector`).
pub(crate) fn describe_selector(s: &Selector) -> String {
    let mut res = String::new();
    if s.flags & ALLKEYS != 0 {
        res.push_str("~* ");
    } else {
        for p in &s.patterns {
            res.push_str(&pattern_string(p));
            res.push(' ');
        }
    }
    if s.flags & ALLCHANNELS != 0 {
        res.push_str("&* ");
    } else {
        res.push_str("resetchannels ");
        for c in &s.channels {
            res.push('&');
            res.push_str(&String::from_utf8_lossy(c));
            res.push(' ');
        }
    }
    res.push_str(&describe_commands(s));
    res
}

/// A user as rules (Redis's `ACLDescribeUser`: flags, password digests, selectors).
pub(crate) fn describe_user(u: &User) -> String {
    let mut res = String::new();
    for (f, name) in uflags::NAMES {
        if u.flags & f != 0 {
            res.push_str(name);
            res.push(' ');
        }
    }
    for p in &u.passwords {
        res.push('#');
        res.push_str(&String::from_utf8_lossy(p));
        res.push(' ');
    }
    for s in &u.selectors {
        let d = describe_selector(s);
        if s.flags & ROOT != 0 {
            res.push_str(&d);
        } else {
            res.push_str(" (");
            res.push_str(&d);
            res.push(')');
        }
    }
    res
}

/// Whether the bitmap has every bit `+@all` sets (for tests).
#[cfg(test)]
fn all_set(s: &Selector) -> bool {
    (0..super::nbits()).all(|i| s.bit(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(rules: &str) -> User {
        let args: Vec<Bytes> = rules
            .split(' ')
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        apply_rules(None, &Bytes::from_static(b"u"), &args, false).unwrap()
    }

    fn cmds(rules: &str) -> String {
        describe_commands(&user(rules).selectors[0])
    }

    #[test]
    fn describes_back_as_redis_does() {
        assert_eq!(cmds("+@all -client|kill"), "+@all -client|kill");
        assert_eq!(cmds("+memory|doctor"), "-@all +memory|doctor");
        assert_eq!(cmds("+memory|doctor +memory"), "-@all +memory");
        assert_eq!(cmds("+@all +client|id"), "+@all");
        assert_eq!(cmds("+@all -memory"), "+@all -memory");
        assert_eq!(cmds("-@all +select|0"), "-@all +select|0");
        for c in cats::NAMES {
            assert_eq!(cmds(&format!("+@all -@{c}")), format!("+@all -@{c}"));
            assert_eq!(cmds(&format!("-@all +@{c}")), format!("-@all +@{c}"));
        }
        assert!(all_set(&user("+@all").selectors[0]));
    }

    #[test]
    fn rules_and_errors() {
        let u = user("on >pw ~app:* %R~ro:* &chan +@read");
        assert_eq!(u.passwords[0], hash_password(b"pw"));
        assert_eq!(
            describe_user(&u),
            format!(
                "on #{} ~app:* %R~ro:* resetchannels &chan {}",
                String::from_utf8_lossy(&hash_password(b"pw")),
                cmds("+@read")
            )
        );
        let e = |r: &str| {
            let args: Vec<Bytes> = r
                .split(' ')
                .map(|w| Bytes::copy_from_slice(w.as_bytes()))
                .collect();
            apply_rules(None, &Bytes::from_static(b"u"), &args, false).unwrap_err()
        };
        assert!(e("+config|get|x").contains("Allowing first-arg of a subcommand"));
        assert!(e("+config|asdf").contains("Unknown command or category name in ACL"));
        assert!(e("allkeys ~x").contains("Adding a pattern after the * pattern"));
        assert!(e("<secret").contains("'<(redacted)'"));
        assert!(e("(+get").contains("Unmatched parenthesis"));
        let u = user("(+get ~x) (+set ~y)");
        assert_eq!(u.selectors.len(), 3);
    }
}
