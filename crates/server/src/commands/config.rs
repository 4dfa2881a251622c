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

const HELP: &[&str] = &[
    "GET <pattern>",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "SET <directive> <value>",
    "    Set the configuration <directive> to <value>.",
    "RESETSTAT",
    "    Reset statistics reported by the INFO command.",
    "REWRITE",
    "    Rewrite the configuration file.",
];

fn config(conn: &mut Conn, inner: &mut Inner, argv: &[Bytes]) -> Reply {
    let sub = &argv[1];
    if is(sub, "get") {
        config_get(inner, &argv[2..])
    } else if is(sub, "set") {
        config_set(conn, inner, argv)
    } else if is(sub, "resetstat") {
        super::info::reset_stats(conn, inner);
        Reply::ok()
    } else if is(sub, "rewrite") {
        match inner
            .config
            .rewrite(crate::acl::rewrite_lines(&conn.shared.acl))
        {
            Ok(()) => {
                tracing::warn!("CONFIG REWRITE executed with success.");
                Reply::ok()
            }
            Err(e) => {
                tracing::warn!("CONFIG REWRITE failed: {e}");
                Reply::error(format!("ERR {e}"))
            }
        }
    } else {
        super::command::help("config", HELP)
    }
}

/// CONFIG GET pattern [pattern ...]: every parameter once, under the name it was
/// asked by (exact names) or matched by (patterns).
fn config_get(inner: &Inner, patterns: &[Bytes]) -> Reply {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for pat in patterns {
        for (k, v) in inner.config.matching(pat) {
            if !pairs.iter().any(|(n, _)| n.eq_ignore_ascii_case(&k)) {
                pairs.push((k, v));
            }
        }
    }
    Reply::Map(
        pairs
            .into_iter()
            .map(|(k, v)| (Reply::bulk_str(&k), Reply::bulk_str(&v)))
            .collect(),
    )
}

/// CONFIG SET name value [name value ...], all or nothing (Redis's
/// `configSetCommand`): every value is validated and set on a copy of the
/// configuration, then applied; when applying one fails (a port that cannot be
/// bound, an append log that cannot be opened) every parameter goes back to its
/// previous value and the previous settings are applied again.
fn config_set(conn: &mut Conn, inner: &mut Inner, argv: &[Bytes]) -> Reply {
    if !argv.len().is_multiple_of(2) {
        return Reply::err(redsnap_engine::reply::ERR_SYNTAX);
    }
    let pairs: Vec<(&[u8], &[u8])> = argv[2..]
        .chunks(2)
        .map(|p| (&p[0][..], &p[1][..]))
        .collect();
    let old = inner.config.clone();
    let mut next = old.clone();
    let changes = match next.set_many(&pairs) {
        Ok(c) => c,
        Err(e) => return Reply::error(format!("ERR {e}")),
    };
    if changes.names.is_empty() {
        return Reply::ok();
    }
    let shared = conn.shared.clone();
    // The listening sockets first: the only apply step besides persistence that
    // can fail. It is prepared, and committed once everything else applied.
    let listen = match changes
        .names
        .iter()
        .find(|n| matches!(**n, "port" | "bind"))
    {
        Some(first) => match crate::listeners::prepare(&shared, &next, changes.contains("port")) {
            Ok(p) => Some(p),
            Err(e) => {
                return Reply::error(format!(
                    "ERR CONFIG SET failed (possibly related to argument '{first}') - {e}"
                ))
            }
        },
        None => None,
    };
    inner.config = next;
    if let Err(e) = crate::apply_config_change(&shared, inner, &old) {
        if let Some(p) = listen {
            p.abort(&shared);
        }
        inner.config = old;
        crate::apply_config(inner);
        return Reply::error(format!("ERR {e}"));
    }
    if let Some(p) = listen {
        p.commit(&shared);
    }
    if crate::publish_live(&shared, &inner.config) {
        // Idle connections re-read `timeout` (CONFIG SET acts on them at once).
        for c in inner.clients.values() {
            let _ = c.tx.send(crate::state::ConnMsg::TimeoutChanged);
        }
    }
    if inner.config.u64("maxmemory") != old.u64("maxmemory") {
        // Redis starts its eviction time proc when maxmemory changes: keys go now,
        // not at the next command (whose reply could wait on them).
        crate::perform_evictions(inner);
    }
    Reply::ok()
}
