//! The EVAL script cache (scripts compiled once, by SHA1, as in Redis) and SCRIPT
//! LOAD/EXISTS/FLUSH/KILL/HELP.

use super::vm::{Kind, Vm};
use super::SF_NO_WRITES;
use super::{error_reply_bytes, error_text, sha1_hex};
use super::{SF_ALLOW_CROSS_SLOT, SF_ALLOW_OOM, SF_ALLOW_STALE, SF_COMPAT, SF_NO_CLUSTER};
use crate::state::Inner;
use bytes::Bytes;
use mlua::{chunk::ChunkMode, RegistryKey};
use redsnap_engine::Reply;
use std::collections::HashMap;
use std::ffi::c_int;

struct Script {
    /// The compiled body, held in the registry (its index is what a run pushes).
    func: RegistryKey,
    flags: u32,
}

/// EVAL's Lua state and script cache.
pub struct Scripts {
    pub(super) vm: Vm,
    cache: HashMap<String, Script, ShaBuild>,
    /// DEBUG SET-DISABLE-DENY-SCRIPTS: scripts may call NOSCRIPT commands.
    pub allow_denied: bool,
}

/// Hashes a script's SHA1 (hex) by its first 16 characters (64 bits of the digest)
/// with the process's keyed SipHash: as safe against crafted collisions as hashing
/// all 40 (finding scripts whose digests share 64 bits is out of reach), in a third
/// of the time; the cache is read on every EVALSHA. Other keys (none are used) would
/// hash by the same prefix.
#[derive(Default, Clone)]
struct ShaBuild(std::hash::RandomState);

struct ShaHasher {
    sip: std::hash::DefaultHasher,
    prefix: [u8; 16],
    filled: usize,
}

impl std::hash::BuildHasher for ShaBuild {
    type Hasher = ShaHasher;
    fn build_hasher(&self) -> ShaHasher {
        ShaHasher {
            sip: self.0.build_hasher(),
            prefix: [0; 16],
            filled: 0,
        }
    }
}

impl std::hash::Hasher for ShaHasher {
    fn write(&mut self, bytes: &[u8]) {
        let k = bytes.len().min(self.prefix.len() - self.filled);
        self.prefix[self.filled..self.filled + k].copy_from_slice(&bytes[..k]);
        self.filled += k;
    }
    fn finish(&self) -> u64 {
        let mut sip = self.sip.clone();
        sip.write(&self.prefix[..self.filled]);
        sip.finish()
    }
}

impl Scripts {
    pub fn new() -> Scripts {
        Scripts {
            vm: Vm::new(Kind::Eval).expect("the Lua scripting state could not be created"),
            cache: HashMap::default(),
            allow_denied: false,
        }
    }

    pub(super) fn contains(&self, sha: &str) -> bool {
        self.cache.contains_key(sha)
    }

    /// A cached script's registry index and flags.
    pub(super) fn get(&self, sha: &str) -> Option<(c_int, u32)> {
        self.cache.get(sha).map(|s| (s.func.id(), s.flags))
    }

    /// The number of cached scripts (INFO `number_of_cached_scripts`).
    pub fn cached_count(&self) -> usize {
        self.cache.len()
    }

    /// Bytes the Lua state holds (INFO `used_memory_lua`).
    pub fn memory(&self) -> usize {
        self.vm.lua.used_memory()
    }

    /// Compiles a script body (once) and returns its SHA1; errors are replies.
    pub(super) fn create(&mut self, body: &[u8]) -> Result<String, Reply> {
        let sha = sha1_hex(body);
        if self.cache.contains_key(&sha) {
            return Ok(sha);
        }
        let (flags, shebang_len) = parse_shebang(body)?;
        let code = &body[shebang_len..];
        if code.first() == Some(&27) {
            return Err(Reply::err(
                "ERR Error compiling script (new function): user_script:1: unexpected symbol near 'char(27)'",
            ));
        }
        let lua = &self.vm.lua;
        let func = lua
            .load(code)
            .set_name("@user_script")
            .set_mode(ChunkMode::Text)
            .set_environment(self.vm.env.clone())
            .into_function()
            .map_err(|e| {
                let mut msg = b"ERR Error compiling script (new function): ".to_vec();
                msg.extend_from_slice(error_text(&e).as_bytes());
                error_reply_bytes(msg)
            })?;
        let func = lua
            .create_registry_value(func)
            .map_err(|e| Reply::error(format!("ERR Error compiling script: {}", error_text(&e))))?;
        self.cache.insert(sha.clone(), Script { func, flags });
        Ok(sha)
    }
}

impl Default for Scripts {
    fn default() -> Self {
        Scripts::new()
    }
}

/// Redis's evalExtractShebangFlags: returns the flags and the shebang length.
fn parse_shebang(body: &[u8]) -> Result<(u32, usize), Reply> {
    if !body.starts_with(b"#!") {
        return Ok((SF_COMPAT, 0));
    }
    let Some(end) = body.iter().position(|&c| c == b'\n') else {
        return Err(Reply::err("ERR Invalid script shebang"));
    };
    let line = String::from_utf8_lossy(&body[..end]).into_owned();
    let parts: Vec<&str> = line.split_whitespace().collect();
    if parts.is_empty() {
        return Err(Reply::err("ERR Invalid engine in script shebang"));
    }
    if parts[0] != "#!lua" {
        return Err(Reply::error(format!(
            "ERR Unexpected engine in script shebang: {}",
            parts[0]
        )));
    }
    let mut flags = 0;
    for p in &parts[1..] {
        let Some(list) = p.strip_prefix("flags=") else {
            return Err(Reply::error(format!("ERR Unknown lua shebang option: {p}")));
        };
        for f in list.split(',') {
            flags |= match f {
                "no-writes" => SF_NO_WRITES,
                "allow-oom" => SF_ALLOW_OOM,
                "allow-stale" => SF_ALLOW_STALE,
                "no-cluster" => SF_NO_CLUSTER,
                "allow-cross-slot-keys" => SF_ALLOW_CROSS_SLOT,
                "" => 0,
                other => {
                    return Err(Reply::error(format!(
                        "ERR Unexpected flag in script shebang: {other}"
                    )))
                }
            };
        }
    }
    Ok((flags, end))
}

pub(super) fn script_command(inner: &mut Inner, argv: &[Bytes]) -> Reply {
    let sub = String::from_utf8_lossy(&argv[1]).to_ascii_lowercase();
    match sub.as_str() {
        "help" if argv.len() == 2 => {
            let lines = [
                "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "DEBUG (YES|SYNC|NO)",
                "    Set the debug mode for subsequent scripts executed.",
                "EXISTS <sha1> [<sha1> ...]",
                "    Return information about the existence of the scripts in the script cache.",
                "FLUSH [ASYNC|SYNC]",
                "    Flush the Lua scripts cache. Very dangerous on replicas.",
                "    When called without the optional mode argument, the behavior is determined by the",
                "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
                "    * ASYNC: Asynchronously flush the scripts cache.",
                "    * SYNC: Synchronously flush the scripts cache.",
                "KILL",
                "    Kill the currently executing Lua script.",
                "LOAD <script>",
                "    Load a script into the scripts cache without executing it.",
                "HELP",
                "    Prints this help.",
            ];
            Reply::Array(
                lines
                    .iter()
                    .map(|l| Reply::Simple(Bytes::from_static(l.as_bytes())))
                    .collect(),
            )
        }
        "flush" => {
            let ok = argv.len() == 2
                || (argv.len() == 3
                    && (argv[2].eq_ignore_ascii_case(b"sync")
                        || argv[2].eq_ignore_ascii_case(b"async")));
            if !ok {
                return Reply::err("ERR SCRIPT FLUSH only support SYNC|ASYNC option");
            }
            let allow_denied = inner.scripts.allow_denied;
            inner.scripts = Scripts::new();
            inner.scripts.allow_denied = allow_denied;
            Reply::ok()
        }
        "exists" => Reply::Array(
            argv[2..]
                .iter()
                .map(|s| {
                    let sha = String::from_utf8_lossy(s).to_ascii_lowercase();
                    Reply::Int(inner.scripts.contains(&sha) as i64)
                })
                .collect(),
        ),
        "load" if argv.len() == 3 => match inner.scripts.create(&argv[2]) {
            Ok(sha) => Reply::Bulk(Bytes::from(sha)),
            Err(e) => e,
        },
        "kill" if argv.len() == 2 => Reply::err("NOTBUSY No scripts in execution right now."),
        _ => Reply::error(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try SCRIPT HELP.",
            String::from_utf8_lossy(&argv[1])
        )),
    }
}

/// Whether EVAL / EVALSHA may write, by the script's declared flags (Redis's
/// `evalGetCommandFlags`): None when the script declares none (the command's own
/// flags apply) or is unknown.
pub(crate) fn script_may_write(inner: &Inner, argv: &[Bytes], evalsha: bool) -> Option<bool> {
    let flags = if evalsha {
        let sha = std::str::from_utf8(argv.get(1)?).ok()?.to_ascii_lowercase();
        inner.scripts.get(&sha)?.1
    } else {
        parse_shebang(argv.get(1)?).ok()?.0
    };
    (flags & super::SF_COMPAT == 0).then_some(flags & super::SF_NO_WRITES == 0)
}
