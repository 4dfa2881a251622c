//! DEBUG subcommands that inspect or reload the dataset, and DEBUG PROTOCOL:
//! DIGEST, DIGEST-VALUE, PROTOCOL and LOADAOF. The rest of DEBUG is in `admin.rs`.

use crate::conn::{Conn, Step};
use crate::state::Inner;
use bytes::Bytes;
use redsnap_engine::cmd::is;
use redsnap_engine::digest;
use redsnap_engine::Reply;

/// Runs `argv` (DEBUG <sub> ...) when it is one of this file's subcommands.
pub(crate) fn run(conn: &mut Conn, inner: &mut Inner, argv: &[Bytes]) -> Option<Step> {
    let sub = &argv[1];
    let reply = if is(sub, "digest") && argv.len() == 2 {
        let d = digest::dataset_digest(&inner.store);
        Reply::Simple(Bytes::from(digest::hex(&d)))
    } else if is(sub, "digest-value") {
        // A debug command sees logically expired keys too (Redis does not use
        // lookupKey here).
        let db = &inner.store.dbs[conn.db];
        Reply::Array(
            argv[2..]
                .iter()
                .map(|k| {
                    let d = digest::value_digest(db.get(k));
                    Reply::Simple(Bytes::from(digest::hex(&d)))
                })
                .collect(),
        )
    } else if is(sub, "protocol") && argv.len() == 3 {
        if is(&argv[2], "push") && conn.resp3 {
            // A push is not the command's reply: a normal reply follows it, for
            // clients that discard pushes (as Redis does).
            return Some(Step::Many(vec![
                Reply::Push(vec![Reply::bulk_str("server-cpu-usage"), Reply::Int(42)]),
                Reply::bulk_str("Some real reply following the push reply"),
            ]));
        }
        protocol(&argv[2])
    } else if is(sub, "loadaof") && argv.len() == 2 {
        // Redis flushes its AOF, empties the dataset and loads the AOF back. redsnap's
        // equivalent: flush the append log and recover from the data directory (the
        // snapshot plus the log generations after it), without saving first.
        crate::persist::reload_locked(inner)
    } else {
        return None;
    };
    Some(reply.into())
}

/// DEBUG PROTOCOL <type>: one reply of each RESP type, as Redis's debug.c sends them.
fn protocol(name: &[u8]) -> Reply {
    let ints = || (0..3).map(Reply::Int).collect::<Vec<_>>();
    let n = name.to_ascii_lowercase();
    match n.as_slice() {
        b"string" => Reply::bulk_str("Hello World"),
        b"integer" => Reply::Int(12345),
        // Redis's literal, not pi.
        #[allow(clippy::approx_constant)]
        b"double" => Reply::Double(3.141),
        b"bignum" => Reply::BigNumber(Bytes::from_static(
            b"1234567999999999999999999999999999999",
        )),
        b"null" => Reply::Nil,
        b"array" => Reply::Array(ints()),
        b"set" => Reply::Set(ints()),
        b"map" => Reply::Map((0..3).map(|j| (Reply::Int(j), Reply::Bool(j == 1))).collect()),
        b"attrib" => Reply::Attribute(
            vec![(
                Reply::bulk_str("key-popularity"),
                Reply::Array(vec![Reply::bulk_str("key:123"), Reply::Int(90)]),
            )],
            Box::new(Reply::bulk_str("Some real reply following the attribute")),
        ),
        b"push" => Reply::err("ERR RESP2 is not supported by this command"),
        b"true" => Reply::Bool(true),
        b"false" => Reply::Bool(false),
        b"verbatim" => Reply::Verbatim("txt", Bytes::from_static(b"This is a verbatim\nstring")),
        _ => Reply::err("ERR Wrong protocol type name. Please use one of the following: string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false"),
    }
}
