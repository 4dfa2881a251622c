//! CONFIG GET, SET, RESETSTAT, REWRITE, HELP (the parameters themselves live in
//! `crate::config`).

use super::Handler;
use crate::conn::{Conn, Step};
use crate::state::Inner;
use bytes::Bytes;
use redsnap_engine::cmd::is;
use redsnap_engine::table::CommandSpec;
use redsnap_engine::Reply;

pub(crate) const HANDLERS: &[(&str, Handler)] = &[("config", config_cmd)];

fn config_cmd(conn: &mut Conn, inner: &mut Inner, _: &'static CommandSpec, argv: &[Bytes]) -> Step {
    config(conn, inner, argv).into()
}

fn config(conn: &mut Conn, inner: &mut Inner, argv: &[Bytes]) -> Reply {
    let sub = &argv[1];
    if is(sub, "get") {
        let mut pairs = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for pat in &argv[2..] {
            for (k, v) in inner.config.matching(pat) {
                if seen.insert(k) {
                    pairs.push((Reply::bulk_str(k), Reply::bulk_str(&v)));
                }
            }
        }
        let _ = conn;
        Reply::Map(pairs)
    } else if is(sub, "set") {
        if !argv.len().is_multiple_of(2) {
            return Reply::err("ERR wrong number of arguments for 'config|set' command");
        }
        let mut next = inner.config.clone();
        for pair in argv[2..].chunks(2) {
            let name = String::from_utf8_lossy(&pair[0]).into_owned();
            let value = String::from_utf8_lossy(&pair[1]).into_owned();
            if let Err(e) = next.set_runtime(&name, &value) {
                return Reply::error(format!("ERR {e}"));
            }
        }
        let old = std::mem::replace(&mut inner.config, next);
        let shared = conn.shared.clone();
        if let Err(e) = crate::apply_config_change(&shared, inner, &old) {
            inner.config = old;
            crate::apply_config(inner);
            return Reply::error(format!("ERR {e}"));
        }
        crate::publish_live(&shared, &inner.config);
        if inner.config.u64("maxmemory") != old.u64("maxmemory") {
            // Redis starts its eviction time proc when maxmemory changes: keys go
            // now, not at the next command (whose reply could wait on them).
            crate::perform_evictions(inner);
        }
        Reply::ok()
    } else if is(sub, "resetstat") {
        super::info::reset_stats(conn, inner);
        Reply::ok()
    } else if is(sub, "rewrite") {
        Reply::err("ERR The server is running without a config file")
    } else {
        Reply::Array(vec![Reply::bulk_str("CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are: GET, SET, RESETSTAT, REWRITE.")])
    }
}
