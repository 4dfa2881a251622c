//! Functions (Redis 7.0's `functions.c` and `function_lua.c`): libraries of Lua code
//! that register functions with `redis.register_function` when loaded (FUNCTION LOAD),
//! called by name with FCALL and FCALL_RO.
//!
//! Libraries load in their own Lua state (created at the first load), as in Redis: a
//! library's body runs once, in an environment that offers only `redis` with
//! `register_function`, `log`, the log levels and the version (every other name
//! raises "Script attempted to access nonexistent global variable"), under a 500 ms
//! limit ("FUNCTION LOAD timeout"). The functions it registers then run with the
//! globals EVAL scripts see, their KEYS and ARGV as arguments. Function names are
//! matched ignoring case, library names exactly.
//!
//! The dataset keeps each library's code (`Store::libraries`), which snapshots carry
//! and the append log's FUNCTION records change (a RESTORE is logged as the loads it
//! amounts to); after a restart or DEBUG RELOAD, [`Functions::rebuild`] compiles them.

use super::bridge::{error_table, status};
use super::eval::numkeys;
use super::vm::{self, Kind, RunCtx, Vm};
use super::{check_declared_flags, error_text, FLAG_NAMES, SF_ALLOW_OOM, SF_NO_WRITES};
use crate::conn::{Conn, Step};
use crate::state::{Inner, RunningFunction};
use bytes::Bytes;
use indexmap::IndexMap;
use mlua::{chunk::ChunkMode, Lua, MultiValue, RegistryKey, Table, Value};
use redsnap_engine::functions::{self as libs, parse_metadata, valid_name};
use redsnap_engine::table::CommandSpec;
use redsnap_engine::{now_ms, LogRecord, Reply};
use std::collections::HashMap;
use std::time::Duration;

/// FUNCTION LOAD's time limit for a library's body (Redis's LOAD_TIMEOUT_MS).
const LOAD_TIMEOUT: Duration = Duration::from_millis(500);

const BAD_NAME: &str = "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long";

/// A function a library registered.
struct Function {
    name: Bytes,
    desc: Option<Bytes>,
    flags: u32,
    /// The callback, held in the registry of the functions' Lua state.
    func: RegistryKey,
}

struct Library {
    name: Bytes,
    /// The whole code, first line included (what FUNCTION DUMP and LIST WITHCODE give).
    code: Bytes,
    functions: Vec<Function>,
}

/// The functions registered while a library loads (`redis.register_function`).
#[derive(Default)]
pub(super) struct LoadCell(parking_lot::Mutex<Option<Vec<Function>>>);

/// A set of libraries and the index of their functions (by lowercase name).
#[derive(Default)]
struct LibSet {
    libs: IndexMap<Bytes, Library>,
    funcs: HashMap<Vec<u8>, Bytes>,
}

impl LibSet {
    fn link(&mut self, lib: Library) {
        for f in &lib.functions {
            self.funcs
                .entry(f.name.to_ascii_lowercase())
                .or_insert_with(|| lib.name.clone());
        }
        self.libs.insert(lib.name.clone(), lib);
    }

    fn unlink(&mut self, name: &[u8]) -> Option<Library> {
        let lib = self.libs.shift_remove(name)?;
        for f in &lib.functions {
            let key = f.name.to_ascii_lowercase();
            if self.funcs.get(&key) == Some(&lib.name) {
                self.funcs.remove(&key);
            }
        }
        Some(lib)
    }

    fn find(&self, name: &[u8]) -> Option<&Function> {
        let lib = self.funcs.get(&name.to_ascii_lowercase())?;
        self.libs
            .get(lib)?
            .functions
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    fn function_count(&self) -> usize {
        self.libs.values().map(|l| l.functions.len()).sum()
    }

    /// The first function of `lib` whose name another library has.
    fn collision<'a>(&self, lib: &'a Library) -> Option<&'a Bytes> {
        lib.functions
            .iter()
            .find(|f| self.funcs.contains_key(&f.name.to_ascii_lowercase()))
            .map(|f| &f.name)
    }
}

/// The function libraries and their Lua state.
#[derive(Default)]
pub struct Functions {
    vm: Option<Vm>,
    set: LibSet,
}

impl Functions {
    /// Whether FCALL of `name` may write, by the function's flags (Redis's
    /// `fcallGetCommandFlags`): None when no function has that name (FCALL's own
    /// flags apply).
    pub(crate) fn may_write(&self, name: &[u8]) -> Option<bool> {
        self.set.find(name).map(|f| f.flags & SF_NO_WRITES == 0)
    }

    /// Number of libraries and of functions (FUNCTION STATS).
    pub fn counts(&self) -> (usize, usize) {
        (self.set.libs.len(), self.set.function_count())
    }

    /// Bytes the functions' Lua state holds (INFO `used_memory_vm_functions`).
    pub fn memory(&self) -> usize {
        self.vm.as_ref().map_or(0, |vm| vm.lua.used_memory())
    }

    fn vm(&mut self) -> Result<&Vm, String> {
        if self.vm.is_none() {
            let vm = Vm::new(Kind::Function)
                .map_err(|e| format!("could not create the functions' Lua state: {e}"))?;
            self.vm = Some(vm);
        }
        self.vm
            .as_ref()
            .ok_or_else(|| "no Lua state for functions".to_string())
    }

    /// Loads a library, replacing the one of its name (DEBUG RELOAD NOFLUSH MERGE).
    pub fn load_replace(&mut self, code: &Bytes) -> Result<Bytes, String> {
        let lib = compile(self.vm()?, code, None)?;
        let name = lib.name.clone();
        add(&mut self.set, lib, true)?;
        Ok(name)
    }

    /// Compiles the libraries of a dataset just loaded (startup, DEBUG RELOAD): every
    /// library compiled before is dropped. A library that does not load is logged
    /// and left out (its code stays in the dataset).
    pub fn rebuild(&mut self, libraries: &redsnap_engine::Libraries) {
        self.set = LibSet::default();
        self.vm = None;
        for (name, code) in libraries.iter() {
            let res = self.vm().and_then(|vm| compile(vm, code, None));
            match res.and_then(|lib| add(&mut self.set, lib, false)) {
                Ok(_) => {}
                Err(e) => tracing::error!(
                    library = %String::from_utf8_lossy(name),
                    "function library not loaded: {e}"
                ),
            }
        }
        if !libraries.is_empty() {
            tracing::info!(
                libraries = self.set.libs.len(),
                functions = self.set.function_count(),
                "function libraries loaded"
            );
        }
    }
}

/// Compiles a library and runs its body to collect the functions it registers
/// (Redis's `functionsCreateWithLibraryCtx` up to the engine's `create`). The
/// library's name, engine and body are checked here; collisions by the caller.
fn compile(vm: &Vm, code: &Bytes, timeout: Option<Duration>) -> Result<Library, String> {
    let meta = parse_metadata(code)?;
    if !valid_name(&meta.name) {
        return Err(BAD_NAME.into());
    }
    if !meta.engine.eq_ignore_ascii_case(b"lua") {
        return Err(format!(
            "Engine '{}' not found",
            String::from_utf8_lossy(&meta.engine)
        ));
    }
    let body = vm
        .lua
        .load(&code[meta.body_start..])
        .set_name("@user_function")
        .set_mode(ChunkMode::Text)
        .set_environment(vm.lib_env.clone())
        .into_function()
        .map_err(|e| format!("Error compiling function: {}", error_text(&e)))?;
    *vm.load.0.lock() = Some(Vec::new());
    let loaded = vm.run_library_body(body, timeout);
    let functions = vm.load.0.lock().take().unwrap_or_default();
    if let Err(msg) = loaded {
        return Err(format!(
            "Error registering functions: {}",
            String::from_utf8_lossy(&msg)
        ));
    }
    if functions.is_empty() {
        return Err("No functions registered".into());
    }
    Ok(Library {
        name: Bytes::from(meta.name),
        code: code.clone(),
        functions,
    })
}

/// Links a compiled library into `set` (replacing the one of its name when `replace`),
/// unless its name or one of its functions' is taken. Returns the replaced library.
fn add(set: &mut LibSet, lib: Library, replace: bool) -> Result<Option<Library>, String> {
    if !replace && set.libs.contains_key(&lib.name) {
        return Err(format!(
            "Library '{}' already exists",
            String::from_utf8_lossy(&lib.name)
        ));
    }
    let old = set.unlink(&lib.name);
    if let Some(f) = set.collision(&lib) {
        let err = format!("Function {} already exists", String::from_utf8_lossy(f));
        if let Some(old) = old {
            set.link(old);
        }
        return Err(err);
    }
    set.link(lib);
    Ok(old)
}

/// `redis.register_function(name, callback)` or `redis.register_function{...}`
/// (Redis's luaRegisterFunction): returns a status for the prelude's shim (0, or 1
/// and an error table to raise).
pub(super) fn register_function(
    lua: &Lua,
    load: &LoadCell,
    args: MultiValue,
) -> mlua::Result<(i32, Value)> {
    let raise = |msg: &str| Ok(status(true, error_table(lua, msg.as_bytes(), false)?));
    if load.0.lock().is_none() {
        return raise("redis.register_function can only be called on FUNCTION LOAD command");
    }
    let f = match args.len() {
        1 => named_args(lua, &args[0]),
        2 => positional_args(lua, &args[0], &args[1]),
        _ => Err("wrong number of arguments to redis.register_function"),
    };
    let f = match f {
        Ok(f) => f,
        Err(msg) => return raise(msg),
    };
    if !valid_name(&f.name) {
        return raise(BAD_NAME);
    }
    let mut guard = load.0.lock();
    let Some(registered) = guard.as_mut() else {
        return raise("redis.register_function can only be called on FUNCTION LOAD command");
    };
    if registered.iter().any(|g| g.name == f.name) {
        drop(guard);
        return raise("Function already exists in the library");
    }
    registered.push(f);
    Ok(status(false, Value::Nil))
}

/// What `lua_isstring` accepts (strings and numbers), as bytes.
fn string_arg(v: &Value) -> Option<Bytes> {
    super::value_text(v).map(Bytes::from)
}

fn positional_args(lua: &Lua, name: &Value, callback: &Value) -> Result<Function, &'static str> {
    let name =
        string_arg(name).ok_or("first argument to redis.register_function must be a string")?;
    let Value::Function(cb) = callback else {
        return Err("second argument to redis.register_function must be a function");
    };
    let func = lua
        .create_registry_value(cb.clone())
        .map_err(|_| "could not register the function")?;
    Ok(Function {
        name,
        desc: None,
        flags: 0,
        func,
    })
}

fn named_args(lua: &Lua, arg: &Value) -> Result<Function, &'static str> {
    let Value::Table(t) = arg else {
        return Err("calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).");
    };
    let (mut name, mut desc, mut func, mut flags) = (None, None, None, 0);
    for pair in t.clone().pairs::<Value, Value>() {
        let (k, v) = pair.map_err(|_| "could not read the named arguments")?;
        let key = string_arg(&k)
            .ok_or("named argument key given to redis.register_function is not a string")?;
        let key = key.to_ascii_lowercase();
        match key.as_slice() {
            b"function_name" => {
                name = Some(string_arg(&v).ok_or(
                    "function_name argument given to redis.register_function must be a string",
                )?)
            }
            b"description" => {
                desc = Some(string_arg(&v).ok_or(
                    "description argument given to redis.register_function must be a string",
                )?)
            }
            b"callback" => {
                let Value::Function(cb) = v else {
                    return Err(
                        "callback argument given to redis.register_function must be a function",
                    );
                };
                func = Some(
                    lua.create_registry_value(cb)
                        .map_err(|_| "could not register the function")?,
                );
            }
            b"flags" => {
                let Value::Table(ft) = v else {
                    return Err("flags argument to redis.register_function must be a table representing function flags");
                };
                flags = read_flags(&ft).ok_or("unknown flag given")?;
            }
            _ => return Err("unknown argument given to redis.register_function"),
        }
    }
    let name = name.ok_or("redis.register_function must get a function name argument")?;
    let func = func.ok_or("redis.register_function must get a callback argument")?;
    Ok(Function {
        name,
        desc,
        flags,
        func,
    })
}

/// The flags of `flags={...}` (names matched ignoring case); None on an unknown one.
fn read_flags(t: &Table) -> Option<u32> {
    let mut flags = 0;
    for j in 1.. {
        let v: Value = t.raw_get(j).ok()?;
        if v.is_nil() {
            break;
        }
        let s = string_arg(&v)?;
        let (bit, _) = FLAG_NAMES
            .iter()
            .find(|(_, n)| n.as_bytes().eq_ignore_ascii_case(&s))?;
        flags |= bit;
    }
    Some(flags)
}

/// FCALL / FCALL_RO (Redis's fcallCommandGeneric), from `Conn::execute`.
pub(crate) fn fcall(
    conn: &mut Conn,
    inner: &mut Inner,
    spec: &'static CommandSpec,
    argv: &[Bytes],
) -> Step {
    let ro = spec.name == "fcall_ro";
    let Some(f) = inner.functions.set.find(&argv[1]) else {
        return Reply::err("ERR Function not found").into();
    };
    let (func, fflags, fname) = (f.func.id(), f.flags, f.name.clone());
    let numkeys = match numkeys(argv, "ERR Bad number of keys provided") {
        Ok(n) => n,
        Err(e) => return e.into(),
    };
    let script_oom = !crate::perform_evictions(inner);
    if let Err(e) = check_declared_flags(inner, fflags, ro, script_oom) {
        return e.into();
    }
    let Some(vm) = inner.functions.vm.as_ref() else {
        return Reply::err("ERR Function not found").into();
    };
    let handle = vm.handle();
    let run = RunCtx {
        conn: conn as *mut Conn,
        inner: inner as *mut Inner,
        resp3: false,
        ro: ro || fflags & SF_NO_WRITES != 0,
        allow_oom: fflags & SF_ALLOW_OOM != 0,
        script_oom,
        dirty: false,
        repl: 3,
        function: true,
    };
    let (libraries, functions) = inner.functions.counts();
    let shared = conn.shared.clone();
    *shared.busy.current.lock() = Some(RunningFunction {
        name: fname.clone(),
        command: argv.to_vec(),
        libraries,
        functions,
    });
    let name = String::from_utf8_lossy(&fname);
    let keys = &argv[3..3 + numkeys];
    let reply = vm::run(
        conn,
        inner,
        handle,
        &name,
        func,
        keys,
        &argv[3 + numkeys..],
        run,
    );
    *shared.busy.current.lock() = None;
    reply.into()
}

/// FUNCTION <subcommand> (Redis's function*Command), from `Conn::execute`.
pub(crate) fn function_command(conn: &mut Conn, inner: &mut Inner, argv: &[Bytes]) -> Step {
    let sub = argv[1].to_ascii_lowercase();
    let reply = match sub.as_slice() {
        b"load" => load_command(conn, inner, argv),
        b"delete" => delete_command(conn, inner, argv),
        b"flush" => flush_command(conn, inner, argv),
        b"restore" => restore_command(conn, inner, argv),
        b"list" => list_command(inner, argv),
        b"dump" => Reply::Bulk(Bytes::from(libs::dump_payload(
            inner.functions.set.libs.values().map(|l| &l.code),
        ))),
        b"stats" => {
            let (l, f) = inner.functions.counts();
            stats_reply(None, l, f)
        }
        b"kill" => Reply::err("NOTBUSY No scripts in execution right now."),
        _ => help_reply(),
    };
    reply.into()
}

/// What dispatch checks of a write command that changes the libraries (the command
/// table's flags are the parent's, FUNCTION's): writes refused by the server state,
/// and DENYOOM for LOAD and RESTORE.
fn write_check(inner: &mut Inner, denyoom: bool) -> Result<(), Reply> {
    if let Some(r) = super::write_refusal(inner) {
        return Err(r);
    }
    if denyoom && !crate::perform_evictions(inner) {
        return Err(Reply::err(
            "OOM command not allowed when used memory > 'maxmemory'.",
        ));
    }
    Ok(())
}

/// Records a change of the libraries: the dirty counter and the append log.
fn logged(conn: &Conn, inner: &mut Inner, records: Vec<Vec<Bytes>>) {
    let store = &mut inner.store;
    store.effects.dirty += 1;
    if store.log_enabled {
        let time = now_ms();
        for argv in records {
            store.effects.log.push(LogRecord {
                db: conn.db,
                time,
                argv,
            });
        }
    }
}

fn function_argv(sub: &'static str, rest: &[&Bytes]) -> Vec<Bytes> {
    let mut argv = vec![
        Bytes::from_static(b"FUNCTION"),
        Bytes::from_static(sub.as_bytes()),
    ];
    argv.extend(rest.iter().map(|b| (*b).clone()));
    argv
}

fn err(msg: String) -> Reply {
    Reply::error(format!("ERR {msg}"))
}

fn load_command(conn: &Conn, inner: &mut Inner, argv: &[Bytes]) -> Reply {
    let mut replace = false;
    for a in &argv[2..argv.len() - 1] {
        if a.eq_ignore_ascii_case(b"replace") {
            replace = true;
        } else {
            return err(format!(
                "Unknown option given: {}",
                String::from_utf8_lossy(a)
            ));
        }
    }
    if let Err(e) = write_check(inner, true) {
        return e;
    }
    let code = &argv[argv.len() - 1];
    let fns = &mut inner.functions;
    // Checked before compiling, as Redis does (metadata errors come first).
    if let Ok(meta) = parse_metadata(code) {
        if valid_name(&meta.name) && !replace && fns.set.libs.contains_key(&meta.name[..]) {
            let engine_ok = meta.engine.eq_ignore_ascii_case(b"lua");
            if engine_ok {
                return err(format!(
                    "Library '{}' already exists",
                    String::from_utf8_lossy(&meta.name)
                ));
            }
        }
    }
    let res = fns
        .vm()
        .and_then(|vm| compile(vm, code, Some(LOAD_TIMEOUT)))
        .and_then(|lib| {
            let name = lib.name.clone();
            add(&mut fns.set, lib, replace).map(|_| name)
        });
    match res {
        Ok(name) => {
            inner.store.libraries.insert(name.clone(), code.clone());
            let mut rec = vec![Bytes::from_static(b"FUNCTION"), Bytes::from_static(b"LOAD")];
            if replace {
                rec.push(Bytes::from_static(b"REPLACE"));
            }
            rec.push(code.clone());
            logged(conn, inner, vec![rec]);
            Reply::Bulk(name)
        }
        Err(e) => err(e),
    }
}

fn delete_command(conn: &Conn, inner: &mut Inner, argv: &[Bytes]) -> Reply {
    if let Err(e) = write_check(inner, false) {
        return e;
    }
    if inner.functions.set.unlink(&argv[2]).is_none() {
        return Reply::err("ERR Library not found");
    }
    inner.store.libraries.remove(&argv[2]);
    logged(conn, inner, vec![function_argv("DELETE", &[&argv[2]])]);
    Reply::ok()
}

fn subcommand_syntax_error(argv: &[Bytes]) -> Reply {
    Reply::error(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try FUNCTION HELP.",
        String::from_utf8_lossy(&argv[1])
    ))
}

fn flush_command(conn: &Conn, inner: &mut Inner, argv: &[Bytes]) -> Reply {
    if argv.len() > 3 {
        return subcommand_syntax_error(argv);
    }
    if argv.len() == 3
        && !argv[2].eq_ignore_ascii_case(b"sync")
        && !argv[2].eq_ignore_ascii_case(b"async")
    {
        return Reply::err("ERR FUNCTION FLUSH only supports SYNC|ASYNC option");
    }
    if let Err(e) = write_check(inner, false) {
        return e;
    }
    // A new Lua state for the next load: the old one's memory goes with it.
    inner.functions = Functions::default();
    inner.store.libraries.clear();
    logged(conn, inner, vec![function_argv("FLUSH", &[])]);
    Reply::ok()
}

fn restore_command(conn: &Conn, inner: &mut Inner, argv: &[Bytes]) -> Reply {
    if argv.len() > 4 {
        return subcommand_syntax_error(argv);
    }
    let policy =
        match argv.get(3).map(|p| p.to_ascii_lowercase()) {
            None => b"append".to_vec(),
            Some(p) if matches!(p.as_slice(), b"append" | b"replace" | b"flush") => p,
            Some(_) => return Reply::err(
                "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
            ),
        };
    if let Err(e) = write_check(inner, true) {
        return e;
    }
    let budget = redsnap_engine::rdb::Budget::new(
        inner
            .store
            .config
            .proto_max_bulk_len
            .saturating_mul(4)
            .max(64 << 20),
    );
    let codes = match libs::parse_payload(&argv[2], budget) {
        Ok(c) => c,
        Err(e) => return err(e),
    };
    let fns = &mut inner.functions;
    let mut incoming = LibSet::default();
    for code in &codes {
        let res = fns.vm().and_then(|vm| compile(vm, code, None));
        if let Err(e) = res.and_then(|lib| add(&mut incoming, lib, false)) {
            return err(e);
        }
    }
    let flush = policy == b"flush";
    if flush {
        fns.set = incoming;
    } else if let Err(e) = join(&mut fns.set, incoming, policy == b"replace") {
        return err(e);
    }
    let mut records = Vec::new();
    if flush {
        inner.store.libraries.clear();
        records.push(function_argv("FLUSH", &[]));
    }
    for lib in inner.functions.set.libs.values() {
        if codes.contains(&lib.code) {
            inner
                .store
                .libraries
                .insert(lib.name.clone(), lib.code.clone());
            records.push(function_argv(
                "LOAD",
                &[&Bytes::from_static(b"REPLACE"), &lib.code],
            ));
        }
    }
    logged(conn, inner, records);
    Reply::ok()
}

/// Redis's libraryJoin: adds every library of `src` to `dst`, replacing those of the
/// same name when `replace`; on a collision nothing changes.
fn join(dst: &mut LibSet, src: LibSet, replace: bool) -> Result<(), String> {
    let mut old = Vec::new();
    let mut fail = None;
    for name in src.libs.keys() {
        if dst.libs.contains_key(name) {
            if !replace {
                fail = Some(format!(
                    "Library {} already exists",
                    String::from_utf8_lossy(name)
                ));
                break;
            }
            old.extend(dst.unlink(name));
        }
    }
    if fail.is_none() {
        fail = src
            .libs
            .values()
            .find_map(|lib| dst.collision(lib))
            .map(|f| format!("Function {} already exists", String::from_utf8_lossy(f)));
    }
    if let Some(e) = fail {
        for lib in old {
            dst.link(lib);
        }
        return Err(e);
    }
    for (_, lib) in src.libs {
        dst.link(lib);
    }
    Ok(())
}

fn list_command(inner: &Inner, argv: &[Bytes]) -> Reply {
    let (mut with_code, mut pattern) = (false, None);
    let mut i = 2;
    while i < argv.len() {
        let a = &argv[i];
        if !with_code && a.eq_ignore_ascii_case(b"withcode") {
            with_code = true;
        } else if pattern.is_none() && a.eq_ignore_ascii_case(b"libraryname") {
            if i + 1 >= argv.len() {
                return Reply::err("ERR library name argument was not given");
            }
            i += 1;
            pattern = Some(&argv[i]);
        } else {
            return err(format!("Unknown argument {}", String::from_utf8_lossy(a)));
        }
        i += 1;
    }
    let b = |s: &'static str| Reply::Bulk(Bytes::from_static(s.as_bytes()));
    let libs = inner
        .functions
        .set
        .libs
        .values()
        .filter(|l| pattern.is_none_or(|p| redsnap_engine::glob::glob_match(p, &l.name, true)));
    Reply::Array(
        libs.map(|l| {
            let functions = l
                .functions
                .iter()
                .map(|f| {
                    let flags = FLAG_NAMES
                        .iter()
                        .filter(|(bit, _)| f.flags & bit != 0)
                        .map(|(_, n)| Reply::Simple(Bytes::from_static(n.as_bytes())))
                        .collect();
                    Reply::Map(vec![
                        (b("name"), Reply::Bulk(f.name.clone())),
                        (
                            b("description"),
                            f.desc.clone().map_or(Reply::Nil, Reply::Bulk),
                        ),
                        (b("flags"), Reply::Set(flags)),
                    ])
                })
                .collect();
            let mut m = vec![
                (b("library_name"), Reply::Bulk(l.name.clone())),
                (b("engine"), b("LUA")),
                (b("functions"), Reply::Array(functions)),
            ];
            if with_code {
                m.push((b("library_code"), Reply::Bulk(l.code.clone())));
            }
            Reply::Map(m)
        })
        .collect(),
    )
}

/// FUNCTION STATS: the running function (if any: name, command, duration) and the
/// counts of the (only) engine. Also answered during a busy function (`busy.rs`).
pub(crate) fn stats_reply(
    running: Option<(&RunningFunction, u64)>,
    libraries: usize,
    functions: usize,
) -> Reply {
    let b = |s: &'static str| Reply::Bulk(Bytes::from_static(s.as_bytes()));
    let running = match running {
        None => Reply::Nil,
        Some((r, ms)) => Reply::Map(vec![
            (b("name"), Reply::Bulk(r.name.clone())),
            (
                b("command"),
                Reply::Array(r.command.iter().cloned().map(Reply::Bulk).collect()),
            ),
            (b("duration_ms"), Reply::Int(ms as i64)),
        ]),
    };
    Reply::Map(vec![
        (b("running_script"), running),
        (
            b("engines"),
            Reply::Map(vec![(
                b("LUA"),
                Reply::Map(vec![
                    (b("libraries_count"), Reply::Int(libraries as i64)),
                    (b("functions_count"), Reply::Int(functions as i64)),
                ]),
            )]),
        ),
    ])
}

fn help_reply() -> Reply {
    const HELP: &[&str] = &[
        "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "LOAD [REPLACE] <FUNCTION CODE>",
        "    Create a new library with the given library name and code.",
        "DELETE <LIBRARY NAME>",
        "    Delete the given library.",
        "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
        "    Return general information on all the libraries:",
        "    * Library name",
        "    * The engine used to run the Library",
        "    * Library description",
        "    * Functions list",
        "    * Library code (if WITHCODE is given)",
        "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
        "STATS",
        "    Return information about the current function running:",
        "    * Function name",
        "    * Command used to run the function",
        "    * Duration in MS that the function is running",
        "    If no function is running, return nil",
        "    In addition, returns a list of available engines.",
        "KILL",
        "    Kill the current running function.",
        "FLUSH [ASYNC|SYNC]",
        "    Delete all the libraries.",
        "    When called without the optional mode argument, the behavior is determined by the",
        "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
        "    * ASYNC: Asynchronously flush the libraries.",
        "    * SYNC: Synchronously flush the libraries.",
        "DUMP",
        "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
        "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
        "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
        "    control how to handle existing libraries (default APPEND):",
        "    * FLUSH: delete all existing libraries.",
        "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
        "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
        "      libraries with the new libraries (notice that even on this option there is a chance of failure",
        "      in case of functions name collision with another library).",
        "HELP",
        "    Prints this help.",
    ];
    Reply::Array(
        HELP.iter()
            .map(|l| Reply::Simple(Bytes::from_static(l.as_bytes())))
            .collect(),
    )
}
