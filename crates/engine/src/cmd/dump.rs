//! dump commands.

use crate::table::CommandSpec;

pub const COMMANDS: &[CommandSpec] = &[];
