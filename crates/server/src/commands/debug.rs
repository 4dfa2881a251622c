//! DEBUG and the subcommands Redis's tools and test suite use.

use super::Handler;
use crate::conn::{Conn, Step};
use crate::state::Inner;
use bytes::Bytes;
use redsnap_engine::cmd::is;
use redsnap_engine::table::CommandSpec;
use redsnap_engine::Reply;
use std::time::Duration;

pub(crate) const HANDLERS: &[(&str, Handler)] = &[("debug", debug_cmd)];

fn debug_cmd(conn: &mut Conn, inner: &mut Inner, _: &'static CommandSpec, argv: &[Bytes]) -> Step {
    debug(conn, inner, argv)
}

fn debug(conn: &mut Conn, inner: &mut Inner, argv: &[Bytes]) -> Step {
    let allowed = match inner.config.str("enable-debug-command").as_str() {
        "yes" => true,
        "local" => inner
            .clients
            .get(&conn.id)
            .is_some_and(|c| c.addr.starts_with("127.0.0.1:") || c.addr.starts_with("[::1]:")),
        _ => false,
    };
    if !allowed {
        return Reply::err("ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.").into();
    }
    let sub = &argv[1];
    if is(sub, "sleep") {
        let secs = argv
            .get(2)
            .and_then(|a| redsnap_engine::num::parse_f64(a))
            .unwrap_or(0.0)
            .clamp(0.0, 3600.0);
        Step::Sleep(Duration::from_secs_f64(secs), Reply::ok())
    } else if is(sub, "set-active-expire") {
        inner.store.active_expire = argv.get(2).is_none_or(|a| &a[..] != b"0");
        Reply::ok().into()
    } else if is(sub, "set-disable-deny-scripts") && argv.len() == 3 {
        inner.scripts.allow_denied =
            redsnap_engine::num::parse_i64(&argv[2]).is_some_and(|v| v != 0);
        Reply::ok().into()
    } else if is(sub, "object") {
        let Some(key) = argv.get(2) else {
            return Reply::err("ERR syntax error").into();
        };
        let db = conn.db;
        match inner.store.dbs[db].get(key) {
            None => Reply::err("ERR no such key").into(),
            Some(e) => {
                let enc = redsnap_engine::Store::encoding_of(&inner.store.config, &e.obj);
                Reply::Simple(Bytes::from(format!("Value at:0x0 refcount:1 encoding:{enc} serializedlength:{} lru:0 lru_seconds_idle:0", e.value().mem_usage()))).into()
            }
        }
    } else if is(sub, "reload") {
        super::persistence::persist_command(&conn.shared.clone(), inner, "debug-reload", argv)
    } else if let Some(step) = crate::debug::run(conn, inner, argv) {
        step
    } else if is(sub, "jmap") || is(sub, "quicklist-packed-threshold") || is(sub, "change-repl-id")
    {
        Reply::ok().into()
    } else {
        Reply::error(format!(
            "ERR DEBUG subcommand '{}' is not supported by redsnap",
            String::from_utf8_lossy(sub)
        ))
        .into()
    }
}
