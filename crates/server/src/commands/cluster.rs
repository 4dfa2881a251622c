//! CLUSTER, READONLY, READWRITE, ASKING: redsnap runs standalone, and answers them
//! as Redis does with `cluster-enabled no`.

use super::Handler;
use crate::conn::{Conn, Step};
use crate::state::Inner;
use bytes::Bytes;
use redsnap_engine::table::CommandSpec;
use redsnap_engine::Reply;

pub(crate) const HANDLERS: &[(&str, Handler)] = &[
    ("cluster", disabled),
    ("readonly", disabled),
    ("readwrite", disabled),
    ("asking", disabled),
];

fn disabled(_: &mut Conn, _: &mut Inner, _: &'static CommandSpec, _: &[Bytes]) -> Step {
    Reply::err("ERR This instance has cluster support disabled").into()
}
