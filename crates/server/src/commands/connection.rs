//! Connection commands: PING, ECHO, QUIT, SELECT, AUTH, HELLO, RESET.

use super::Handler;
use crate::conn::{ok, Conn, Step};
use crate::state::Inner;
use bytes::Bytes;
use redsnap_engine::cmd::is;
use redsnap_engine::table::CommandSpec;
use redsnap_engine::Reply;

pub(crate) const HANDLERS: &[(&str, Handler)] = &[
    ("ping", ping),
    ("echo", echo),
    ("quit", quit),
    ("select", select),
    ("auth", auth),
    ("hello", hello),
    ("reset", reset),
];

fn ping(conn: &mut Conn, _: &mut Inner, _: &'static CommandSpec, argv: &[Bytes]) -> Step {
    // The table's arity is -1 (as Redis's); more than one argument is refused here.
    if argv.len() > 2 {
        return redsnap_engine::reply::wrong_arity("ping").into();
    }
    if !conn.resp3 && conn.subscribed() > 0 {
        let msg = argv.get(1).cloned().unwrap_or_default();
        return Reply::Array(vec![Reply::bulk_str("pong"), Reply::Bulk(msg)]).into();
    }
    match argv.get(1) {
        Some(m) => Reply::Bulk(m.clone()).into(),
        None => Reply::simple("PONG").into(),
    }
}

fn echo(_: &mut Conn, _: &mut Inner, _: &'static CommandSpec, argv: &[Bytes]) -> Step {
    Reply::Bulk(argv[1].clone()).into()
}

fn quit(_: &mut Conn, _: &mut Inner, _: &'static CommandSpec, _: &[Bytes]) -> Step {
    Step::Close(Some(ok()))
}

fn select(conn: &mut Conn, inner: &mut Inner, _: &'static CommandSpec, argv: &[Bytes]) -> Step {
    let Some(i) = redsnap_engine::num::parse_i64(&argv[1]) else {
        return Reply::err("ERR value is not an integer or out of range").into();
    };
    if i < i32::MIN as i64 || i > i32::MAX as i64 {
        return Reply::err(
            "ERR value is out of range, value must between -2147483648 and 2147483647",
        )
        .into();
    }
    if i < 0 || i as usize >= inner.store.dbs.len() {
        return Reply::err("ERR DB index is out of range").into();
    }
    conn.db = i as usize;
    if let Some(c) = inner.clients.get_mut(&conn.id) {
        c.db = conn.db;
    }
    ok().into()
}

fn auth(conn: &mut Conn, inner: &mut Inner, _: &'static CommandSpec, argv: &[Bytes]) -> Step {
    let r = conn.auth_local(argv);
    conn.acl_after_auth(inner, &argv[0]);
    r.map_or_else(Step::from, |()| ok().into())
}

fn hello(conn: &mut Conn, inner: &mut Inner, _: &'static CommandSpec, argv: &[Bytes]) -> Step {
    let r = conn.hello(inner, argv);
    conn.acl_after_auth(inner, &argv[0]);
    r
}

fn reset(conn: &mut Conn, inner: &mut Inner, _: &'static CommandSpec, argv: &[Bytes]) -> Step {
    conn.reset(inner);
    conn.acl_after_auth(inner, &argv[0]);
    Reply::simple("RESET").into()
}

impl Conn {
    /// AUTH (Redis's `authCommand`; also answered during a busy script): the
    /// two-argument form authenticates as `default`.
    pub(crate) fn auth_local(&mut self, argv: &[Bytes]) -> Result<(), Reply> {
        match argv.len() {
            2 => {
                let d = self.shared.acl.default_user();
                if d.has(crate::acl::uflags::NOPASS) {
                    return Err(Reply::err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"));
                }
                self.authenticate(b"default", &argv[1])
            }
            3 => self.authenticate(&argv[1], &argv[2]),
            _ => Err(Reply::err("ERR syntax error")),
        }
    }

    pub(crate) fn hello(&mut self, inner: &mut Inner, argv: &[Bytes]) -> Step {
        let r = self.hello_local(argv);
        if let Some(c) = inner.clients.get_mut(&self.id) {
            c.name = self.name.clone();
            c.resp = if self.resp3 { 3 } else { 2 };
        }
        r.into()
    }

    /// HELLO on the connection's own state (also answered during a busy script).
    pub(crate) fn hello_local(&mut self, argv: &[Bytes]) -> Reply {
        let mut proto = if self.resp3 { 3 } else { 2 };
        let mut i = 1;
        if argv.len() > 1 {
            match redsnap_engine::num::parse_i64(&argv[1]) {
                Some(v) if v == 2 || v == 3 => proto = v,
                Some(_) => return Reply::err("NOPROTO unsupported protocol version"),
                None => {
                    return Reply::err("ERR Protocol version is not an integer or out of range")
                }
            }
            i = 2;
        }
        let mut setname = None;
        while i < argv.len() {
            if is(&argv[i], "auth") && i + 2 < argv.len() {
                let auth = [
                    Bytes::from_static(b"AUTH"),
                    argv[i + 1].clone(),
                    argv[i + 2].clone(),
                ];
                if let Err(e) = self.auth_local(&auth) {
                    return e;
                }
                i += 3;
            } else if is(&argv[i], "setname") && i + 1 < argv.len() {
                setname = Some(argv[i + 1].clone());
                i += 2;
            } else {
                return Reply::error(format!(
                    "ERR Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(&argv[i])
                ));
            }
        }
        if !self.authed && self.shared.live.requires_auth() {
            return Reply::err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
        }
        self.authed = true;
        if let Some(n) = setname {
            if let Err(e) = crate::commands::client::valid_client_name(&n) {
                return e;
            }
            self.name = n;
        }
        self.resp3 = proto == 3;
        Reply::Map(vec![
            (Reply::bulk_str("server"), Reply::bulk_str("redis")),
            (
                Reply::bulk_str("version"),
                Reply::bulk_str(crate::REDIS_VERSION),
            ),
            (Reply::bulk_str("proto"), Reply::Int(proto)),
            (Reply::bulk_str("id"), Reply::Int(self.id as i64)),
            (Reply::bulk_str("mode"), Reply::bulk_str("standalone")),
            (Reply::bulk_str("role"), Reply::bulk_str("master")),
            (Reply::bulk_str("modules"), Reply::Array(vec![])),
        ])
    }

    pub(crate) fn reset(&mut self, inner: &mut Inner) {
        self.reset_local();
        self.reset_shared(inner);
    }

    /// The connection's own half of RESET.
    pub(crate) fn reset_local(&mut self) {
        self.multi = None;
        self.multi_err = false;
        self.db = 0;
        self.resp3 = false;
        self.name = Bytes::new();
        // Back to the default user (Redis's `clientSetDefaultAuth`).
        self.user = self.shared.acl.default_user();
        self.user_epoch = self.shared.acl.epoch();
        self.authed = !self.shared.live.requires_auth();
    }

    /// The shared-state half of RESET: watches, subscriptions, CLIENT LIST fields.
    pub(crate) fn reset_shared(&mut self, inner: &mut Inner) {
        self.unwatch(inner);
        super::monitor::stop(inner, self.id);
        let chans: Vec<Bytes> = self.channels.iter().cloned().collect();
        let pats: Vec<Bytes> = self.patterns.iter().cloned().collect();
        for c in chans {
            self.remove_sub(inner, &c, false);
        }
        for p in pats {
            self.remove_sub(inner, &p, true);
        }
        let shard: Vec<Bytes> = self.shard_channels.iter().cloned().collect();
        for c in shard {
            self.remove_shard_sub(inner, &c);
        }
        crate::tracking::disable(inner, self.id);
        if let Some(c) = inner.clients.get_mut(&self.id) {
            c.db = 0;
            c.resp = 2;
            c.name = Bytes::new();
            c.sub = 0;
            c.psub = 0;
            c.ssub = 0;
            c.multi = -1;
            c.multi_mem = 0;
        }
    }
}
