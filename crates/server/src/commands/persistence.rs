//! Persistence commands: SAVE, BGSAVE, BGREWRITEAOF, LASTSAVE, SHUTDOWN (the work
//! itself is in `crate::persist`).

use super::Handler;
use crate::conn::{AsyncOp, Conn, Step};
use crate::state::{Inner, Shared, ShutdownRequest};
use bytes::Bytes;
use redsnap_engine::cmd::is;
use redsnap_engine::table::CommandSpec;
use redsnap_engine::Reply;
use std::sync::Arc;

pub(crate) const HANDLERS: &[(&str, Handler)] = &[
    ("save", save),
    ("bgsave", save),
    ("bgrewriteaof", save),
    ("lastsave", save),
    ("shutdown", shutdown),
];

fn save(conn: &mut Conn, inner: &mut Inner, spec: &'static CommandSpec, argv: &[Bytes]) -> Step {
    persist_command(&conn.shared.clone(), inner, spec.name, argv)
}

fn shutdown(_: &mut Conn, _: &mut Inner, _: &'static CommandSpec, argv: &[Bytes]) -> Step {
    let mut save = None;
    for a in &argv[1..] {
        if is(a, "nosave") {
            save = Some(false);
        } else if is(a, "save") {
            save = Some(true);
        } else if is(a, "now") || is(a, "force") {
        } else if is(a, "abort") {
            return Reply::err("ERR No shutdown in progress.").into();
        } else {
            return Reply::err("ERR syntax error").into();
        }
    }
    Step::Async(AsyncOp::Shutdown(ShutdownRequest { save }))
}

pub(crate) fn persist_command(
    shared: &Arc<Shared>,
    inner: &mut Inner,
    name: &str,
    argv: &[bytes::Bytes],
) -> Step {
    use redsnap_engine::Reply;
    match name {
        "lastsave" => Reply::Int(inner.lastsave as i64).into(),
        "bgsave" | "bgrewriteaof" => {
            if argv.len() > 2 || (argv.len() == 2 && !redsnap_engine::cmd::is(&argv[1], "schedule"))
            {
                return Reply::err("ERR syntax error").into();
            }
            if let Err(e) = crate::persist::append(inner) {
                return e.into();
            }
            match crate::persist::bgsave(shared, inner) {
                Ok(()) if name == "bgsave" => Reply::simple("Background saving started").into(),
                Ok(()) => Reply::simple("Background append only file rewriting started").into(),
                Err(e) if e.contains("already in progress") && argv.len() == 2 => {
                    Reply::simple("Background saving scheduled").into()
                }
                Err(e) => Reply::error(format!("ERR {e}")).into(),
            }
        }
        "save" => {
            if let Err(e) = crate::persist::append(inner) {
                return e.into();
            }
            match crate::persist::prepare_save(inner) {
                Ok(job) => Step::Async(AsyncOp::Save(job, false)),
                Err(e) => Reply::error(format!("ERR {e}")).into(),
            }
        }
        "debug-reload" => debug_reload(inner, argv),
        _ => Reply::error(format!("ERR unknown persistence command '{name}'")).into(),
    }
}

/// DEBUG RELOAD [MERGE] [NOFLUSH] [NOSAVE] (argv: DEBUG RELOAD ...): a SAVE, then
/// the dataset loaded back. NOSAVE loads what the data directory holds; NOFLUSH loads
/// it into the current dataset, where a key or library already present is an error
/// unless MERGE.
fn debug_reload(inner: &mut Inner, argv: &[bytes::Bytes]) -> Step {
    use redsnap_engine::Reply;
    let (mut save, mut flush, mut merge) = (true, true, false);
    for opt in argv.iter().skip(2) {
        if opt.eq_ignore_ascii_case(b"merge") {
            merge = true;
        } else if opt.eq_ignore_ascii_case(b"noflush") {
            flush = false;
        } else if opt.eq_ignore_ascii_case(b"nosave") {
            save = false;
        } else {
            return Reply::err(
                "ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.",
            )
            .into();
        }
    }
    if !save {
        return crate::persist::reload_into(inner, flush, merge).into();
    }
    // Loading the dataset just saved into itself (NOFLUSH) changes nothing with MERGE
    // and meets a duplicate at once without.
    let empty = inner.store.total_keys() == 0 && inner.store.libraries.is_empty();
    if !flush && !merge && !empty {
        return Reply::err("ERR Error trying to load the RDB dump").into();
    }
    if let Err(e) = crate::persist::append(inner) {
        return e.into();
    }
    match crate::persist::prepare_save(inner) {
        Ok(job) => Step::Async(AsyncOp::Save(job, flush)),
        Err(e) => Reply::error(format!("ERR {e}")).into(),
    }
}
