//! What Redis's `call()` records about each command it runs (see `Conn::call`): the
//! per-command counters of INFO commandstats, the error counters of INFO errorstats,
//! the latency histograms of INFO latencystats and LATENCY HISTOGRAM, the latency
//! monitor's `command` events, the slowlog and the MONITOR feed; and what
//! `processCommand` counts for a command it refuses (`rejected`).
//!
//! Cost per command when nobody reads them: the counters are a plain array indexed
//! by the command's number in the table (`table::number_of`, a hash of the spec's
//! address), a histogram update, and a few comparisons; nothing is allocated, no lock
//! is taken. The slowlog, the latency monitor and MONITOR cost something only when a
//! command is slow enough or a monitor is connected.

use crate::conn::Step;
use crate::hdr::Histogram;
use crate::state::Inner;
use bytes::Bytes;
use redsnap_engine::cmd::is;
use redsnap_engine::table::{self, flags, CommandSpec};
use redsnap_engine::Reply;
use std::collections::BTreeMap;

/// One command's (or subcommand's) INFO commandstats counters and histogram.
#[derive(Default)]
pub(crate) struct CmdStat {
    pub calls: u64,
    pub usec: u64,
    pub rejected: u64,
    pub failed: u64,
    /// Allocated at the first call recorded with `latency-tracking yes`.
    pub hist: Option<Box<Histogram>>,
}

/// Counters of every command, and of error replies by their code.
pub(crate) struct CallStats {
    /// Indexed by `table::number_of`.
    pub cmds: Box<[CmdStat]>,
    /// errorstat_<CODE>:count=, in code order (Redis keeps them in a radix tree).
    pub errors: BTreeMap<Box<[u8]>, u64>,
    pub total_error_replies: u64,
    /// `total_error_replies` at the last start or end of a call: a call during which
    /// it changed failed (Redis's `incrCommandStatsOnError`; errors of the calls it
    /// made, inside EXEC or a script, are theirs).
    pub boundary: u64,
    /// Set by a script whose error reply carries an error already counted when
    /// `redis.call` got it: the EVAL then counts a failed call but no new error reply
    /// (Redis's `ERR_REPLY_FLAG_NO_STATS_UPDATE`).
    pub precounted: bool,
}

impl Default for CallStats {
    fn default() -> Self {
        CallStats {
            cmds: table::numbered()
                .iter()
                .map(|_| CmdStat::default())
                .collect(),
            errors: BTreeMap::new(),
            total_error_replies: 0,
            boundary: 0,
            precounted: false,
        }
    }
}

impl CallStats {
    /// Counts an error reply: `text` is the reply's line without the `-` (`ERR ...`,
    /// `WRONGTYPE ...`). Its code is the first word when a space comes within 32
    /// bytes of the line, else ERR (Redis's `afterErrorReply`).
    pub fn count_error(&mut self, text: &[u8]) {
        self.total_error_replies += 1;
        let code = text[..text.len().min(31)]
            .iter()
            .position(|&c| c == b' ')
            .map_or(&b"ERR"[..], |sp| &text[..sp]);
        match self.errors.get_mut(code) {
            Some(n) => *n += 1,
            None => {
                self.errors.insert(code.into(), 1);
            }
        }
    }

    /// Counts an error given as Redis's `afterErrorReply` gets it: `-CODE msg`, or a
    /// bare message (code ERR).
    pub fn count_error_raw(&mut self, s: &[u8]) {
        match s.strip_prefix(b"-") {
            Some(text) => self.count_error(text),
            None => self.count_error(b"ERR"),
        }
    }

    /// CONFIG RESETSTAT.
    pub fn reset(&mut self) {
        *self = CallStats::default();
    }
}

/// Who ran a command: a client, or a script (Redis's `lua` client) on its behalf.
#[derive(Clone, Copy)]
pub(crate) struct Caller {
    pub id: u64,
    pub db: usize,
    pub script: bool,
}

/// A blocking command's call, finished when the client is served, times out or is
/// unblocked.
#[derive(Debug)]
pub(crate) struct PendingCall {
    pub spec: &'static CommandSpec,
    pub us: u64,
    pub argv: Vec<Bytes>,
}

/// The error a step replies with, if any.
fn step_error(step: &Step) -> Option<&Bytes> {
    match step {
        Step::Reply(Reply::Error(e))
        | Step::Close(Some(Reply::Error(e)))
        | Step::Sleep(_, Reply::Error(e)) => Some(e),
        _ => None,
    }
}

/// Records a call that ran for `us` microseconds and answered `step`.
pub(crate) fn record(
    inner: &mut Inner,
    who: Caller,
    real: &'static CommandSpec,
    argv: Vec<Bytes>,
    us: u64,
    step: &Step,
) {
    inner.stats.total_commands += 1;
    let precounted = std::mem::take(&mut inner.calls.precounted);
    let Some(n) = table::number_of(real) else {
        return;
    };
    let calls = &mut inner.calls;
    let mut failed = false;
    if let Some(e) = step_error(step) {
        // A precounted error is the script's failure, not a new error reply.
        failed = precounted;
        if !precounted {
            calls.count_error(e);
        }
    }
    failed |= calls.total_error_replies != calls.boundary;
    calls.boundary = calls.total_error_replies;
    let st = &mut calls.cmds[n];
    st.calls += 1;
    st.usec += us;
    st.failed += failed as u64;
    let threshold = inner.tun.latency_threshold_ms;
    if threshold > 0 && us / 1000 >= threshold {
        let event = if real.has(flags::FAST) {
            "fast-command"
        } else {
            "command"
        };
        inner.latency.add(event, us / 1000);
    }
    if !inner.monitors.is_empty() && !real.has(flags::SKIP_MONITOR | flags::ADMIN) {
        crate::commands::monitor::feed(inner, who, real, &argv);
    }
    if let Step::Block(..) = step {
        // Histogram and slowlog when it ends (`finish_blocked`).
        if let Some(b) = inner.blocked.get_mut(&who.id) {
            b.call = Some(Box::new(PendingCall {
                spec: real,
                us,
                argv,
            }));
        }
        return;
    }
    finish(inner, who, real, n, argv, us);
}

/// The latency histogram and the slowlog of a call that ended.
fn finish(
    inner: &mut Inner,
    who: Caller,
    real: &'static CommandSpec,
    n: usize,
    argv: Vec<Bytes>,
    us: u64,
) {
    if inner.tun.latency_tracking {
        inner.calls.cmds[n]
            .hist
            .get_or_insert_with(Default::default)
            .record(us.saturating_mul(1000).min(i64::MAX as u64) as i64);
    }
    crate::commands::slowlog::push_if_slow(inner, who, real, argv, us);
}

/// A blocked command ended with `reply` (served, or CLIENT UNBLOCK): its duration
/// (the call's, not the wait) goes to its histogram and the slowlog, an error reply
/// is counted, and `failed` counts a failed call.
pub(crate) fn finish_blocked(
    inner: &mut Inner,
    id: u64,
    db: usize,
    call: PendingCall,
    reply: &Reply,
    failed: bool,
) {
    let Some(n) = table::number_of(call.spec) else {
        return;
    };
    if let Reply::Error(e) = reply {
        inner.calls.count_error(e);
    }
    if failed {
        inner.calls.cmds[n].failed += 1;
    }
    let who = Caller {
        id,
        db,
        script: false,
    };
    finish(inner, who, call.spec, n, call.argv, call.us);
}

/// A command refused before it ran (`processCommand`'s `rejectCommand`): the error
/// reply is counted, and a rejected call for the command when it was found.
pub(crate) fn rejected(inner: &mut Inner, spec: Option<&'static CommandSpec>, err: &Reply) {
    if let Some(n) = spec.and_then(table::number_of) {
        inner.calls.cmds[n].rejected += 1;
    }
    if let Reply::Error(e) = err {
        inner.calls.count_error(e);
    }
}

/// A command a script may not run (Redis's `scriptCall` error path): the error
/// reply `msg` (`-CODE ...` or a bare message) is counted, and a rejected call of the
/// command when it exists; the error is the command's, not the script's.
pub(crate) fn script_rejected(inner: &mut Inner, cmd: Option<&'static CommandSpec>, msg: &[u8]) {
    let calls = &mut inner.calls;
    calls.count_error_raw(msg);
    calls.boundary = calls.total_error_replies;
    if let Some(n) = cmd.and_then(table::number_of) {
        calls.cmds[n].rejected += 1;
    }
}

/// The command a wrong arity is charged to: the subcommand when one was named (none
/// when it does not exist), else the command (Redis's `lookupCommand`).
pub(crate) fn arity_target(
    spec: &'static CommandSpec,
    argv: &[Bytes],
) -> Option<&'static CommandSpec> {
    if spec.subs.is_empty() || argv.len() < 2 {
        Some(spec)
    } else {
        table::lookup_sub(spec, &argv[1])
    }
}

/// Positions of the arguments Redis replaces with `(redacted)` in the slowlog and
/// MONITOR (`redactClientCommandArgument`): passwords of AUTH, HELLO AUTH, CONFIG SET
/// of sensitive parameters, MIGRATE AUTH/AUTH2, ACL SETUSER rules. Only what the
/// command had parsed when it redacted: an AUTH with too many arguments, or a HELLO
/// that failed before its AUTH option, shows its arguments.
pub(crate) fn redacted(real: &CommandSpec, argv: &[Bytes]) -> Vec<usize> {
    match real.name {
        "auth" if argv.len() <= 3 => (1..argv.len()).collect(),
        "hello" => {
            let mut out = Vec::new();
            if argv.len() >= 2 {
                match redsnap_engine::num::parse_i64(&argv[1]) {
                    Some(2 | 3) => {}
                    _ => return out,
                }
            }
            let mut j = 2;
            while j < argv.len() {
                let more = argv.len() - 1 - j;
                if is(&argv[j], "auth") && more >= 2 {
                    out.extend([j + 1, j + 2]);
                    j += 3;
                } else if is(&argv[j], "setname") && more >= 1 {
                    if crate::commands::client::valid_client_name(&argv[j + 1]).is_err() {
                        break;
                    }
                    j += 2;
                } else {
                    break;
                }
            }
            out
        }
        "config|set" if argv.len().is_multiple_of(2) => (2..argv.len())
            .step_by(2)
            .filter(|&i| {
                ["masterauth", "masteruser", "requirepass"]
                    .iter()
                    .any(|p| is(&argv[i], p))
            })
            .map(|i| i + 1)
            .collect(),
        "migrate" => {
            let mut out = Vec::new();
            let mut j = 6;
            while j < argv.len() {
                let more = argv.len() - 1 - j;
                if is(&argv[j], "auth") && more >= 1 {
                    out.push(j + 1);
                    j += 2;
                } else if is(&argv[j], "auth2") && more >= 2 {
                    out.extend([j + 1, j + 2]);
                    j += 3;
                } else if is(&argv[j], "copy") || is(&argv[j], "replace") {
                    j += 1;
                } else {
                    break;
                }
            }
            out
        }
        "acl|setuser" => (2..argv.len()).collect(),
        _ => Vec::new(),
    }
}

/// An argument as the slowlog and MONITOR show it.
pub(crate) fn shown_arg<'a>(argv: &'a [Bytes], hidden: &[usize], i: usize) -> &'a [u8] {
    if hidden.contains(&i) {
        b"(redacted)"
    } else {
        &argv[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<Bytes> {
        s.split(' ')
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    fn spec(name: &str) -> &'static CommandSpec {
        table::lookup_full(name.as_bytes()).unwrap()
    }

    #[test]
    fn error_codes_are_counted_as_redis_does() {
        let mut c = CallStats::default();
        c.count_error(b"ERR syntax error");
        c.count_error(b"WRONGTYPE Operation against a key");
        c.count_error(b"NOSPACEINTHISVERYLONGERRORCODEWORDISHERE x");
        c.count_error(b"OOM");
        c.count_error_raw(b"-NOSCRIPT No matching script");
        c.count_error_raw(b"Wrong number of args calling Redis command from script");
        let got: Vec<(String, u64)> = c
            .errors
            .iter()
            .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), *v))
            .collect();
        let want = [("ERR", 4), ("NOSCRIPT", 1), ("WRONGTYPE", 1)];
        assert_eq!(
            got,
            want.iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect::<Vec<_>>()
        );
        assert_eq!(c.total_error_replies, 6);
        c.reset();
        assert!(c.errors.is_empty());
        assert_eq!(c.total_error_replies, 0);
    }

    #[test]
    fn redaction_follows_what_the_command_parsed() {
        assert_eq!(redacted(spec("auth"), &args("auth p")), vec![1]);
        assert_eq!(redacted(spec("auth"), &args("auth u p")), vec![1, 2]);
        assert!(redacted(spec("auth"), &args("auth a b c")).is_empty());
        assert_eq!(
            redacted(spec("hello"), &args("hello 3 AUTH u p")),
            vec![3, 4]
        );
        assert_eq!(
            redacted(spec("hello"), &args("hello 2 setname x auth u p")),
            vec![5, 6]
        );
        assert!(redacted(spec("hello"), &args("hello 4 auth u p")).is_empty());
        assert!(redacted(spec("hello"), &args("hello 2 setname a\nb auth u p")).is_empty());
        assert!(redacted(spec("hello"), &args("hello 2 bogus auth u p")).is_empty());
        assert_eq!(
            redacted(
                spec("config|set"),
                &args("config set maxmemory 1 requirepass x MASTERAUTH y")
            ),
            vec![5, 7]
        );
        assert!(redacted(spec("config|set"), &args("config set requirepass")).is_empty());
        assert!(redacted(spec("get"), &args("get k")).is_empty());
        let auth = args("auth p");
        let shown: Vec<&[u8]> = (0..2).map(|i| shown_arg(&auth, &[1], i)).collect();
        assert_eq!(shown, vec![&b"auth"[..], b"(redacted)"]);
    }

    #[test]
    fn arity_errors_are_charged_to_the_named_subcommand() {
        let client = spec("client");
        assert!(std::ptr::eq(
            arity_target(client, &args("client list x y")).unwrap(),
            spec("client|list")
        ));
        assert!(arity_target(client, &args("client nosuch")).is_none());
        assert!(std::ptr::eq(
            arity_target(client, &args("client")).unwrap(),
            client
        ));
        assert!(std::ptr::eq(
            arity_target(spec("set"), &args("set k")).unwrap(),
            spec("set")
        ));
    }
}
