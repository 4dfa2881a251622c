//! Users on disk: the `aclfile` (ACL LOAD / ACL SAVE, Redis's format: one
//! `user <name> <rules>` line per user) and `user` directives of the config file.

use super::rules::{self, set_user};
use super::{has_spaces, uflags, User};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Parses an ACL file's text into a new set of users (Redis's `ACLLoadFromFile`):
/// every line must be valid, else nothing is loaded and the errors (naming file and
/// line) are returned.
pub(crate) fn parse(
    filename: &str,
    text: &str,
    pubsub_all: bool,
) -> Result<BTreeMap<Bytes, Arc<User>>, String> {
    let mut users: BTreeMap<Bytes, User> = BTreeMap::new();
    let mut errors = String::new();
    for (i, raw) in text.split('\n').enumerate() {
        let linenum = i + 1;
        let line = raw.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
        if line.is_empty() {
            continue;
        }
        let argv: Vec<&str> = line.split(' ').collect();
        if argv[0] != "user" || argv.len() < 2 {
            errors.push_str(&format!(
                "{filename}:{linenum} should start with user keyword followed by the username. "
            ));
            continue;
        }
        let name = argv[1].as_bytes();
        if has_spaces(name) {
            errors.push_str(&format!(
                "'{filename}:{linenum}: username '{}' contains invalid characters. ",
                argv[1]
            ));
            continue;
        }
        if users.contains_key(name) {
            errors.push_str(&format!(
                "WARNING: Duplicate user '{}' found on line {linenum}. ",
                argv[1]
            ));
            continue;
        }
        let mut u = User::new(Bytes::copy_from_slice(name), pubsub_all);
        let ops: Vec<Bytes> = argv[2..]
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        let merged = match rules::merge_selector_args(&ops) {
            Ok(m) => m,
            Err(_) => {
                errors.push_str(&format!(
                    "{filename}:{linenum}: Unmatched parenthesis in selector definition."
                ));
                Vec::new()
            }
        };
        let mut syntax_error = false;
        for op in merged {
            let op = trim(&op);
            if let Err(e) = set_user(&mut u, op, pubsub_all) {
                if e == rules::RuleError::UnknownCommand {
                    errors.push_str(&format!(
                        "{filename}:{linenum}: Error in applying operation '{}': {}. ",
                        rules::shown_rule(op),
                        e.text()
                    ));
                } else if !syntax_error {
                    errors.push_str(&format!("{filename}:{linenum}: {}. ", e.text()));
                    syntax_error = true;
                }
            }
        }
        u.refresh();
        users.insert(u.name.clone(), u);
    }
    if !errors.is_empty() {
        errors.push_str("WARNING: ACL errors detected, no change to the previously active ACL rules was performed");
        return Err(errors);
    }
    let mut out: BTreeMap<Bytes, Arc<User>> =
        users.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
    out.entry(Bytes::from_static(b"default"))
        .or_insert_with(|| Arc::new(User::default_user()));
    Ok(out)
}

fn trim(op: &[u8]) -> &[u8] {
    let start = op
        .iter()
        .position(|c| !matches!(c, b'\t' | b'\r' | b'\n'))
        .unwrap_or(op.len());
    let end = op
        .iter()
        .rposition(|c| !matches!(c, b'\t' | b'\r' | b'\n'))
        .map_or(start, |e| e + 1);
    &op[start..end.max(start)]
}

/// The users as an ACL file (Redis's `ACLSaveToFile`).
pub(crate) fn render(users: &BTreeMap<Bytes, Arc<User>>) -> String {
    let mut out = String::new();
    for u in users.values() {
        out.push_str("user ");
        out.push_str(&String::from_utf8_lossy(&u.name));
        out.push(' ');
        out.push_str(&rules::describe_user(u));
        out.push('\n');
    }
    out
}

/// Writes the file through a temporary file and a rename, as Redis does.
pub(crate) fn save(path: &str, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = format!(
        "{path}.tmp-{}-{}",
        std::process::id(),
        redsnap_engine::now_ms()
    );
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// Validates a `user` directive of the config file (Redis's
/// `ACLAppendUserForLoading`): the error text when a rule is invalid.
pub(crate) fn validate_directive(args: &[String]) -> Result<(), String> {
    let Some((name, ops)) = args.split_first() else {
        return Err("wrong number of arguments for 'user'".into());
    };
    if has_spaces(name.as_bytes()) {
        return Err("Spaces not allowed in ACL usernames".into());
    }
    let ops: Vec<Bytes> = ops
        .iter()
        .map(|w| Bytes::copy_from_slice(w.as_bytes()))
        .collect();
    let merged = rules::merge_selector_args(&ops)
        .map_err(|_| "Unmatched parenthesis in acl selector".to_string())?;
    let mut u = User::new(Bytes::copy_from_slice(name.as_bytes()), false);
    for op in merged {
        set_user(&mut u, &op, false).map_err(|e| {
            format!(
                "Error in user declaration '{}': {}",
                rules::shown_rule(&op),
                e.text()
            )
        })?;
    }
    Ok(())
}

/// The users of the config file's `user` directives, on top of the current ones
/// (Redis's `ACLLoadConfiguredUsers`: `default` is reset, then given the rules).
pub(crate) fn apply_directives(
    users: &mut BTreeMap<Bytes, Arc<User>>,
    directives: &[Vec<String>],
    pubsub_all: bool,
) -> Result<(), String> {
    for d in directives {
        let Some((name, ops)) = d.split_first() else {
            continue;
        };
        let key = Bytes::copy_from_slice(name.as_bytes());
        let mut u = User::new(key.clone(), pubsub_all);
        if name == "default" {
            u = users
                .get(&key)
                .map(|u| (**u).clone())
                .unwrap_or_else(User::default_user);
            set_user(&mut u, b"reset", pubsub_all).map_err(|e| e.text().to_string())?;
        }
        let ops: Vec<Bytes> = ops
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        let merged = rules::merge_selector_args(&ops)
            .map_err(|_| format!("Unmatched parenthesis in the rules of the user '{name}'"))?;
        for op in merged {
            set_user(&mut u, &op, pubsub_all).map_err(|e| {
                format!(
                    "Error loading ACL rule '{}' for the user named '{name}': {}",
                    rules::shown_rule(&op),
                    e.text()
                )
            })?;
        }
        if u.has(uflags::DISABLED) {
            tracing::info!("The user '{name}' is disabled (there is no 'on' modifier in the user description). Make sure this is not a configuration error.");
        }
        u.refresh();
        users.insert(key, Arc::new(u));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_save_round_trip_and_errors() {
        let text = "user alice on allcommands allkeys &* >alice\nuser bob on -@all +@set +acl ~set* &* >bob\n\nuser default on nopass ~* &* +@all\n";
        let users = parse("users.acl", text, false).unwrap();
        assert_eq!(users.len(), 3);
        let saved = render(&users);
        let again = parse("users.acl", &saved, false).unwrap();
        assert_eq!(render(&again), saved);
        assert!(!saved.contains(">alice"));
        let e = parse("users.acl", "user alice on\nuser alice off\n", false).unwrap_err();
        assert!(e.contains("Duplicate user 'alice' found on line 2"), "{e}");
        let e = parse("users.acl", "user a on\nusr b\n", false).unwrap_err();
        assert!(
            e.contains("users.acl:2 should start with user keyword"),
            "{e}"
        );
        let e = parse("users.acl", "user a on +nosuchcmd\n", false).unwrap_err();
        assert!(
            e.contains("users.acl:1: Error in applying operation '+nosuchcmd'"),
            "{e}"
        );
        // A file without `default` gets the default one.
        let users = parse("f", "user a on\n", false).unwrap();
        assert!(users.contains_key(&b"default"[..]));
    }
}
