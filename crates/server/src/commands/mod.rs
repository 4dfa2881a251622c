//! The server's own commands, by family: the handlers of every command in the one
//! command table (`redsnap_engine::table`) that the engine does not run itself
//! (connection, transactions, pub/sub, blocking, scripting, server administration,
//! persistence). A row of a family's `HANDLERS` names a table command and its
//! handler; `Conn::execute` runs the engine's handler when the table has one, and
//! the handler found here otherwise. A unit test checks that the two halves cover
//! the table exactly.

use crate::conn::{Conn, Step};
use crate::state::Inner;
use bytes::Bytes;
use redsnap_engine::table::CommandSpec;
use redsnap_engine::Reply;
use std::collections::HashMap;
use std::sync::OnceLock;

pub(crate) mod acl;
pub(crate) mod blocking;
pub(crate) mod client;
pub(crate) mod cluster;
pub(crate) mod command;
pub(crate) mod config;
pub(crate) mod connection;
pub(crate) mod debug;
pub(crate) mod info;
pub(crate) mod introspection;
pub(crate) mod latency;
pub(crate) mod lolwut;
pub(crate) mod memory;
pub(crate) mod migrate;
pub(crate) mod monitor;
pub(crate) mod persistence;
pub(crate) mod pubsub;
pub(crate) mod replication;
pub(crate) mod scripting;
pub(crate) mod slowlog;
pub(crate) mod stream;
pub(crate) mod transactions;

/// A server command handler: the connection that sent it, the server state (under
/// the lock), the table row, and the arguments (checked against the row's arity).
pub(crate) type Handler = fn(&mut Conn, &mut Inner, &'static CommandSpec, &[Bytes]) -> Step;

/// Every family's rows.
fn families() -> [&'static [(&'static str, Handler)]; 20] {
    [
        acl::HANDLERS,
        connection::HANDLERS,
        transactions::HANDLERS,
        pubsub::HANDLERS,
        blocking::HANDLERS,
        stream::HANDLERS,
        scripting::HANDLERS,
        client::HANDLERS,
        config::HANDLERS,
        introspection::HANDLERS,
        info::HANDLERS,
        monitor::HANDLERS,
        slowlog::HANDLERS,
        latency::HANDLERS,
        command::HANDLERS,
        cluster::HANDLERS,
        debug::HANDLERS,
        persistence::HANDLERS,
        replication::HANDLERS,
        migrate::HANDLERS,
    ]
}

fn map() -> &'static HashMap<&'static str, Handler> {
    static MAP: OnceLock<HashMap<&'static str, Handler>> = OnceLock::new();
    MAP.get_or_init(|| {
        families()
            .iter()
            .flat_map(|f| f.iter())
            .map(|&(name, h)| (name, h))
            .collect()
    })
}

/// Redis's `addReplyHelp`: the usage line, the given lines, then HELP.
pub(crate) fn help(command: &str, lines: &[&str]) -> Reply {
    let mut out = vec![Reply::Simple(Bytes::from(format!(
        "{command} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    )))];
    out.extend(
        lines
            .iter()
            .chain(&["HELP", "    Print this help."])
            .map(|l| Reply::Simple(Bytes::copy_from_slice(l.as_bytes()))),
    );
    Reply::Array(out)
}

/// Redis's `addReplySubcommandSyntaxError`.
pub(crate) fn subcommand_syntax_error(command: &str, sub: &[u8]) -> Reply {
    Reply::error(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try {command} HELP.",
        String::from_utf8_lossy(&sub[..sub.len().min(128)])
    ))
}

/// The server's handler of a table command the engine does not run.
pub(crate) fn handler(spec: &'static CommandSpec) -> Option<Handler> {
    map().get(spec.name).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use redsnap_engine::table;

    /// Every command of the table has exactly one handler: the engine's or the
    /// server's, never both, never none; and every server row names a table command.
    #[test]
    fn handlers_cover_the_table_exactly() {
        let mut seen = std::collections::HashSet::new();
        for f in families() {
            for (name, _) in f {
                assert!(seen.insert(*name), "{name} has two server handlers");
                let spec = table::lookup(name.as_bytes())
                    .unwrap_or_else(|| panic!("{name} is not in the command table"));
                assert!(spec.handler.is_none(), "{name} has an engine handler too");
            }
        }
        for spec in table::all() {
            if spec.handler.is_none() {
                assert!(
                    seen.contains(spec.name),
                    "{} has no handler in the engine or the server",
                    spec.name
                );
            }
        }
    }
}
