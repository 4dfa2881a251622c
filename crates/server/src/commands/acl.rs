//! ACL (Redis's `aclCommand`) and the connection's side of ACL users: the
//! permission check on every command path, the log of denials, authentication.

use super::Handler;
use crate::acl::{self, check, file, rules, Context, Denied, Reason, User};
use crate::conn::{Conn, Step};
use crate::state::Inner;
use bytes::Bytes;
use redsnap_engine::cmd::is;
use redsnap_engine::table::{self, CommandSpec};
use redsnap_engine::Reply;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub(crate) const HANDLERS: &[(&str, Handler)] = &[("acl", acl_command)];

const HELP: &[&str] = &[
    "CAT [<category>]",
    "    List all commands that belong to <category>, or all command categories",
    "    when no category is specified.",
    "DELUSER <username> [<username> ...]",
    "    Delete a list of users.",
    "DRYRUN <username> <command> [<arg> ...]",
    "    Returns whether the user can execute the given command without executing the command.",
    "GETUSER <username>",
    "    Get the user's details.",
    "GENPASS [<bits>]",
    "    Generate a secure 256-bit user password. The optional `bits` argument can",
    "    be used to specify a different size.",
    "LIST",
    "    Show users details in config file format.",
    "LOAD",
    "    Reload users from the ACL file.",
    "LOG [<count> | RESET]",
    "    Show the ACL log entries.",
    "SAVE",
    "    Save the current config to the ACL file.",
    "SETUSER <username> <attribute> [<attribute> ...]",
    "    Create or modify a user with the specified attributes.",
    "USERS",
    "    List all the registered usernames.",
    "WHOAMI",
    "    Return the current connection username.",
];

fn bulk(s: impl Into<String>) -> Reply {
    Reply::Bulk(Bytes::from(s.into()))
}

fn acl_command(
    conn: &mut Conn,
    inner: &mut Inner,
    _: &'static CommandSpec,
    argv: &[Bytes],
) -> Step {
    let sub = &argv[1];
    let argc = argv.len();
    if is(sub, "setuser") && argc >= 3 {
        setuser(conn, inner, argv)
    } else if is(sub, "deluser") && argc >= 3 {
        deluser(conn, inner, argv)
    } else if is(sub, "getuser") && argc == 3 {
        match conn.shared.acl.user(&argv[2]) {
            Some(u) => getuser(&u).into(),
            None => Reply::Nil.into(),
        }
    } else if (is(sub, "list") || is(sub, "users")) && argc == 2 {
        let names = is(sub, "users");
        let st = conn.shared.acl.state.read();
        let out = st
            .users
            .values()
            .map(|u| {
                if names {
                    Reply::Bulk(u.name.clone())
                } else {
                    bulk(format!(
                        "user {} {}",
                        String::from_utf8_lossy(&u.name),
                        rules::describe_user(u)
                    ))
                }
            })
            .collect();
        Reply::Array(out).into()
    } else if is(sub, "whoami") && argc == 2 {
        Reply::Bulk(conn.user.name.clone()).into()
    } else if (is(sub, "load") || is(sub, "save")) && conn.shared.acl.state.read().file.is_empty() {
        Reply::err("ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.").into()
    } else if is(sub, "load") && argc == 2 {
        load(conn, inner)
    } else if is(sub, "save") && argc == 2 {
        let (path, text) = {
            let st = conn.shared.acl.state.read();
            (st.file.clone(), file::render(&st.users))
        };
        match file::save(&path, &text) {
            Ok(()) => Reply::ok().into(),
            Err(e) => {
                tracing::warn!("Writing ACL file for ACL SAVE: {e}");
                Reply::err("ERR There was an error trying to save the ACLs. Please check the server logs for more information").into()
            }
        }
    } else if is(sub, "cat") && argc == 2 {
        let names = redsnap_engine::cmdmeta::acl::NAMES;
        Reply::Array(names.iter().map(|n| bulk(*n)).collect()).into()
    } else if is(sub, "cat") && argc == 3 {
        let flag = redsnap_engine::cmdmeta::acl::by_name(&argv[2]);
        if flag == 0 {
            let n = &argv[2][..argv[2].len().min(128)];
            return Reply::error(format!(
                "ERR Unknown category '{}'",
                String::from_utf8_lossy(n)
            ))
            .into();
        }
        let u = acl::universe();
        let out = u
            .specs
            .iter()
            .zip(&u.cats)
            .filter(|(_, c)| *c & flag != 0)
            .map(|(s, _)| bulk(s.name))
            .collect();
        Reply::Array(out).into()
    } else if is(sub, "genpass") && (argc == 2 || argc == 3) {
        let mut bits = 256i64;
        if argc == 3 {
            match redsnap_engine::num::parse_i64(&argv[2]) {
                Some(b) => bits = b,
                None => return Reply::err("ERR value is not an integer or out of range").into(),
            }
        }
        if bits <= 0 || bits > 4096 {
            return Reply::err("ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096").into();
        }
        let chars = ((bits + 3) / 4) as usize;
        let hex: String = (0..chars)
            .map(|_| char::from(b"0123456789abcdef"[rand::random::<u8>() as usize % 16]))
            .collect();
        bulk(hex).into()
    } else if is(sub, "log") && (argc == 2 || argc == 3) {
        log_command(conn, argv)
    } else if is(sub, "dryrun") && argc >= 4 {
        dryrun(conn, argv).into()
    } else if is(sub, "help") && argc == 2 {
        super::command::help("acl", HELP).into()
    } else {
        super::subcommand_syntax_error("ACL", sub).into()
    }
}

fn setuser(conn: &mut Conn, inner: &mut Inner, argv: &[Bytes]) -> Step {
    let name = &argv[2];
    if acl::has_spaces(name) {
        return Reply::err("ERR Usernames can't contain spaces or null characters").into();
    }
    let acl = &conn.shared.acl;
    let mut close_me = false;
    {
        let mut st = acl.state.write();
        let pubsub_all = st.pubsub_default_all;
        let old = st.users.get(name).cloned();
        let new = match rules::apply_rules(old.as_deref(), name, &argv[3..], pubsub_all) {
            Ok(u) => u,
            Err(e) => return Reply::error(format!("ERR {e}")).into(),
        };
        if let Some(old) = &old {
            close_me = kill_pubsub_clients_if_needed(conn.id, inner, &new, old);
        }
        st.users.insert(name.clone(), Arc::new(new));
    }
    acl.changed(&conn.shared.live);
    if close_me {
        Step::Close(Some(Reply::ok()))
    } else {
        Reply::ok().into()
    }
}

/// Redis's `ACLKillPubsubClientsIfNeeded`: the user's subscribers that lose a
/// channel (plain or shard) or pattern are disconnected. Returns true when the
/// caller is one.
fn kill_pubsub_clients_if_needed(me: u64, inner: &Inner, new: &User, old: &User) -> bool {
    if new
        .selectors
        .iter()
        .any(|s| s.flags & acl::ALLCHANNELS != 0)
    {
        return false;
    }
    let upcoming: Vec<Bytes> = new
        .selectors
        .iter()
        .flat_map(|s| s.channels.iter().cloned())
        .collect();
    let superset = old.selectors.iter().all(|s| {
        s.flags & acl::ALLCHANNELS == 0 && s.channels.iter().all(|c| upcoming.contains(c))
    });
    if superset {
        return false;
    }
    let mut doomed = std::collections::HashSet::new();
    for (p, id) in &inner.patterns {
        if !check::channel_allowed(&upcoming, p, true) {
            doomed.insert(*id);
        }
    }
    for (ch, ids) in inner.channels.iter().chain(inner.shard_channels.iter()) {
        if !check::channel_allowed(&upcoming, ch, false) {
            doomed.extend(ids.iter().copied());
        }
    }
    let mut close_me = false;
    for id in doomed {
        if let Some(c) = inner.clients.get(&id) {
            if c.user != old.name {
                continue;
            }
            if id == me {
                close_me = true;
            } else {
                c.kill();
            }
        }
    }
    close_me
}

/// Disconnects the clients authenticated as one of `names` (true: the caller is
/// one, it closes after its reply, as Redis's CLIENT_CLOSE_AFTER_COMMAND).
fn kill_users_clients(me: u64, inner: &Inner, doomed: impl Fn(&[u8]) -> bool) -> bool {
    let mut close_me = false;
    for c in inner.clients.values() {
        if doomed(&c.user) {
            if c.id == me {
                close_me = true;
            } else {
                c.kill();
            }
        }
    }
    close_me
}

fn deluser(conn: &mut Conn, inner: &mut Inner, argv: &[Bytes]) -> Step {
    if argv[2..].iter().any(|n| &n[..] == b"default") {
        return Reply::err("ERR The 'default' user cannot be removed").into();
    }
    let acl = &conn.shared.acl;
    let mut deleted = Vec::new();
    {
        let mut st = acl.state.write();
        for n in &argv[2..] {
            if st.users.remove(n).is_some() {
                deleted.push(n.clone());
            }
        }
    }
    acl.changed(&conn.shared.live);
    let close_me = kill_users_clients(conn.id, inner, |u| deleted.iter().any(|d| d == u));
    let r = Reply::Int(deleted.len() as i64);
    if close_me {
        Step::Close(Some(r))
    } else {
        r.into()
    }
}

fn load(conn: &mut Conn, inner: &mut Inner) -> Step {
    let acl = &conn.shared.acl;
    let (path, pubsub_all) = {
        let st = acl.state.read();
        (st.file.clone(), st.pubsub_default_all)
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            return Reply::error(format!(
                "ERR Error loading ACLs, opening file '{path}': {}",
                crate::acl::file_error_text(&e)
            ))
            .into()
        }
    };
    let users = match file::parse(&path, &text, pubsub_all) {
        Ok(u) => u,
        Err(e) => return Reply::error(format!("ERR {e}")).into(),
    };
    acl.state.write().users = users;
    acl.changed(&conn.shared.live);
    // Every user but `default` was replaced: their clients are disconnected.
    let close_me = kill_users_clients(conn.id, inner, |u| u != b"default");
    if close_me {
        Step::Close(Some(Reply::ok()))
    } else {
        Reply::ok().into()
    }
}

fn selector_fields(s: &acl::Selector) -> Vec<(Reply, Reply)> {
    let keys = if s.flags & acl::ALLKEYS != 0 {
        "~*".to_string()
    } else {
        s.patterns
            .iter()
            .map(rules::pattern_string)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let channels = if s.flags & acl::ALLCHANNELS != 0 {
        "&*".to_string()
    } else {
        s.channels
            .iter()
            .map(|c| format!("&{}", String::from_utf8_lossy(c)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    vec![
        (bulk("commands"), bulk(rules::describe_commands(s))),
        (bulk("keys"), bulk(keys)),
        (bulk("channels"), bulk(channels)),
    ]
}

fn getuser(u: &User) -> Reply {
    let flags = acl::uflags::NAMES
        .iter()
        .filter(|(f, _)| u.flags & f != 0)
        .map(|(_, n)| bulk(*n))
        .collect();
    let mut fields = vec![
        (bulk("flags"), Reply::Set(flags)),
        (
            bulk("passwords"),
            Reply::Array(u.passwords.iter().map(|p| Reply::Bulk(p.clone())).collect()),
        ),
    ];
    fields.extend(selector_fields(&u.selectors[0]));
    let selectors = u.selectors[1..]
        .iter()
        .map(|s| Reply::Map(selector_fields(s)))
        .collect();
    fields.push((bulk("selectors"), Reply::Array(selectors)));
    Reply::Map(fields)
}

fn log_command(conn: &Conn, argv: &[Bytes]) -> Step {
    let mut count = 10i64;
    if argv.len() == 3 {
        if is(&argv[2], "reset") {
            conn.shared.acl.state.write().log.clear();
            return Reply::ok().into();
        }
        match redsnap_engine::num::parse_i64(&argv[2]) {
            Some(c) => count = c.max(0),
            None => return Reply::err("ERR value is not an integer or out of range").into(),
        }
    }
    let now = redsnap_engine::now_ms();
    let st = conn.shared.acl.state.read();
    let out = st
        .log
        .iter()
        .take(count as usize)
        .map(|e| {
            Reply::Map(vec![
                (bulk("count"), Reply::Int(e.count as i64)),
                (bulk("reason"), bulk(e.reason.name())),
                (bulk("context"), bulk(e.context.name())),
                (bulk("object"), Reply::Bulk(e.object.clone())),
                (bulk("username"), Reply::Bulk(e.username.clone())),
                (
                    bulk("age-seconds"),
                    Reply::Double(now.saturating_sub(e.ctime_ms) as f64 / 1000.0),
                ),
                (bulk("client-info"), bulk(e.cinfo.clone())),
            ])
        })
        .collect();
    Reply::Array(out).into()
}

fn dryrun(conn: &Conn, argv: &[Bytes]) -> Reply {
    let Some(u) = conn.shared.acl.user(&argv[2]) else {
        return Reply::error(format!(
            "ERR User '{}' not found",
            String::from_utf8_lossy(&argv[2])
        ));
    };
    let args = &argv[3..];
    let found = table::lookup(&args[0]).and_then(|spec| {
        if !spec.subs.is_empty() && args.len() >= 2 {
            table::lookup_sub(spec, &args[1])
        } else {
            Some(spec)
        }
    });
    let Some(cmd) = found else {
        return Reply::error(format!(
            "ERR Command '{}' not found",
            String::from_utf8_lossy(&args[0])
        ));
    };
    let n = args.len();
    if (cmd.arity > 0 && cmd.arity as usize != n) || (n as i64) < -(cmd.arity as i64) {
        return Reply::error(format!(
            "ERR wrong number of arguments for '{}' command",
            cmd.name
        ));
    }
    match check::check(&u, cmd, args) {
        Ok(()) => Reply::ok(),
        Err(d) => bulk(d.dryrun_text(cmd, args)),
    }
}

impl Conn {
    /// Takes the current version of this connection's user when any user changed.
    #[inline]
    fn acl_refresh(&mut self) {
        let epoch = self.shared.acl.epoch.load(Ordering::Acquire);
        if epoch != self.user_epoch {
            self.user_epoch = epoch;
            self.user = self
                .shared
                .acl
                .user(&self.user.name)
                .unwrap_or_else(User::nobody);
        }
    }

    /// The ACL check of a command about to run (or be queued): nothing for an
    /// unrestricted user (one flag test), else `check::check`.
    #[inline]
    pub(crate) fn acl_check(&mut self, spec: &CommandSpec, argv: &[Bytes]) -> Result<(), Denied> {
        self.acl_refresh();
        if self.user.unrestricted {
            return Ok(());
        }
        check::check(&self.user, spec, argv)
    }

    /// Records a denial in ACL LOG (Redis's `addACLLogEntry`).
    pub(crate) fn acl_denied(
        &self,
        inner: &Inner,
        d: Denied,
        ctx: Context,
        spec: &CommandSpec,
        argv: &[Bytes],
    ) {
        let e = check::entry(
            d.reason(),
            ctx,
            d.object(spec, argv),
            self.user.name.clone(),
            super::client::info_line(inner, self.id),
        );
        self.shared.acl.log(e);
    }

    /// A failed AUTH / HELLO AUTH (noted by `auth_local`) goes to the ACL log.
    pub(crate) fn acl_log_auth_failure(&mut self, inner: &Inner, argv0: &Bytes) {
        if let Some(name) = self.auth_failed.take() {
            let ctx = if self.multi.is_some() {
                Context::Multi
            } else {
                Context::Toplevel
            };
            let e = check::entry(
                Reason::Auth,
                ctx,
                argv0.clone(),
                name,
                super::client::info_line(inner, self.id),
            );
            self.shared.acl.log(e);
        }
    }

    /// Redis's `authCommand` / `ACLAuthenticateUser` on the connection's own state
    /// (also answered during a busy script). A failure is noted in `auth_failed`.
    pub(crate) fn authenticate(&mut self, user: &[u8], pass: &[u8]) -> Result<(), Reply> {
        match acl::check_credentials(&self.shared.acl, user, pass) {
            Some(u) => {
                self.authed = true;
                self.user_epoch = self.shared.acl.epoch();
                self.user = u;
                Ok(())
            }
            None => {
                self.auth_failed = Some(Bytes::copy_from_slice(user));
                Err(Reply::err(
                    "WRONGPASS invalid username-password pair or user is disabled.",
                ))
            }
        }
    }

    /// After AUTH/HELLO/RESET under the lock: CLIENT LIST's `user`, and the log of
    /// a failure.
    pub(crate) fn acl_after_auth(&mut self, inner: &mut Inner, argv0: &Bytes) {
        self.acl_log_auth_failure(inner, argv0);
        if let Some(c) = inner.clients.get_mut(&self.id) {
            if c.user != self.user.name {
                c.user = self.user.name.clone();
            }
        }
    }

    /// A script's `redis.call` (Redis's `scriptVerifyACL`): the error text, logged
    /// in the `lua` context.
    pub(crate) fn acl_check_script(
        &mut self,
        inner: &Inner,
        spec: &CommandSpec,
        argv: &[Bytes],
    ) -> Result<(), Vec<u8>> {
        match self.acl_check(spec, argv) {
            Ok(()) => Ok(()),
            Err(d) => {
                self.acl_denied(inner, d, Context::Lua, spec, argv);
                Err(format!("The user executing the script {}", d.script_message()).into_bytes())
            }
        }
    }

    /// SORT's BY (with a pattern) and GET read keys the arguments do not name: a
    /// restricted user needs read access to every key (Redis's `sortCommand`). The
    /// options are walked as SORT parses them; what it would refuse first is left to
    /// it.
    pub(crate) fn sort_acl_refusal(&self, spec: &CommandSpec, argv: &[Bytes]) -> Option<Reply> {
        let ro = spec.name == "sort_ro";
        let mut full: Option<bool> = None;
        let mut full_access =
            || *full.get_or_insert_with(|| check::full_read_access(&self.user, spec, argv));
        let mut j = 2;
        while j < argv.len() {
            let left = argv.len() - j - 1;
            let a = &argv[j];
            if is(a, "asc") || is(a, "desc") || is(a, "alpha") {
            } else if is(a, "limit") && left >= 2 {
                let int = |b: &Bytes| redsnap_engine::num::parse_i64(b).is_some();
                if !int(&argv[j + 1]) || !int(&argv[j + 2]) {
                    return None;
                }
                j += 2;
            } else if !ro && is(a, "store") && left >= 1 {
                j += 1;
            } else if is(a, "by") && left >= 1 {
                let p = &argv[j + 1];
                let p = &p[..p.iter().position(|&c| c == 0).unwrap_or(p.len())];
                if p.contains(&b'*') && !full_access() {
                    return Some(Reply::err(
                        "ERR BY option of SORT denied due to insufficient ACL permissions.",
                    ));
                }
                j += 1;
            } else if is(a, "get") && left >= 1 {
                if !full_access() {
                    return Some(Reply::err(
                        "ERR GET option of SORT denied due to insufficient ACL permissions.",
                    ));
                }
                j += 1;
            } else {
                return None;
            }
            j += 1;
        }
        None
    }
}
