//! Keyspace notifications (Redis 7.0 `notify.c`): the event classes of
//! `notify-keyspace-events`, their text form, and the events commands record.
//!
//! Commands call [`crate::Cx::notify`] at the point where Redis calls
//! `notifyKeyspaceEvent`; the call tests the class against one flags word of the
//! engine configuration and, only when the class is enabled, appends a [`KeyEvent`]
//! to the store's effects. The engine does no I/O: the server publishes the events
//! on `__keyspace@<db>__:<key>` / `__keyevent@<db>__:<event>` after the command.

use bytes::Bytes;

/// `K`: publish on `__keyspace@<db>__:<key>` (the message is the event name).
pub const KEYSPACE: u32 = 1 << 0;
/// `E`: publish on `__keyevent@<db>__:<event>` (the message is the key).
pub const KEYEVENT: u32 = 1 << 1;
/// `g`: generic commands (DEL, EXPIRE, RENAME, ...).
pub const GENERIC: u32 = 1 << 2;
/// `$`: string commands.
pub const STRING: u32 = 1 << 3;
/// `l`: list commands.
pub const LIST: u32 = 1 << 4;
/// `s`: set commands.
pub const SET: u32 = 1 << 5;
/// `h`: hash commands.
pub const HASH: u32 = 1 << 6;
/// `z`: sorted set commands.
pub const ZSET: u32 = 1 << 7;
/// `x`: a key expired (lazily on access, or by the active expiry cycle).
pub const EXPIRED: u32 = 1 << 8;
/// `e`: a key was evicted under `maxmemory`.
pub const EVICTED: u32 = 1 << 9;
/// `t`: stream commands (redsnap has no streams: accepted, never emitted).
pub const STREAM: u32 = 1 << 10;
/// `m`: a read found no key ("keymiss"; excluded from `A`, as in Redis).
pub const KEY_MISS: u32 = 1 << 11;
/// `d`: module events: the JSON commands' (`json.set`, `json.del`, ...), as RedisJSON raises them.
pub const MODULE: u32 = 1 << 13;
/// `n`: a key was created ("new"; excluded from `A`, as in Redis).
pub const NEW: u32 = 1 << 14;
/// `A`: alias for `g$lshzxetd`.
pub const ALL: u32 =
    GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// Redis's `keyspaceEventsStringToFlags`: None for a character that names no class.
pub fn parse(classes: &[u8]) -> Option<u32> {
    let mut flags = 0;
    for &c in classes {
        flags |= match c {
            b'A' => ALL,
            b'g' => GENERIC,
            b'$' => STRING,
            b'l' => LIST,
            b's' => SET,
            b'h' => HASH,
            b'z' => ZSET,
            b'x' => EXPIRED,
            b'e' => EVICTED,
            b'K' => KEYSPACE,
            b'E' => KEYEVENT,
            b't' => STREAM,
            b'm' => KEY_MISS,
            b'd' => MODULE,
            b'n' => NEW,
            _ => return None,
        };
    }
    Some(flags)
}

/// Redis's `keyspaceEventsFlagsToString` (what CONFIG GET answers).
pub fn render(flags: u32) -> String {
    let mut s = String::new();
    if flags & ALL == ALL {
        s.push('A');
    } else {
        for (bit, c) in [
            (GENERIC, 'g'),
            (STRING, '$'),
            (LIST, 'l'),
            (SET, 's'),
            (HASH, 'h'),
            (ZSET, 'z'),
            (EXPIRED, 'x'),
            (EVICTED, 'e'),
            (STREAM, 't'),
            (MODULE, 'd'),
            (NEW, 'n'),
        ] {
            if flags & bit != 0 {
                s.push(c);
            }
        }
    }
    for (bit, c) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (KEY_MISS, 'm')] {
        if flags & bit != 0 {
            s.push(c);
        }
    }
    s
}

/// Every class letter of `flags`, never `A` (which would hide `n`, as Redis's
/// rendering does): parsing it gives `flags` back. What the configuration stores.
pub fn render_exact(flags: u32) -> String {
    // Without the 'A' shortcut, Redis's rendering lists every class it holds.
    if flags & ALL == ALL {
        let mut s = render(flags & !GENERIC);
        s.insert(0, 'g');
        s
    } else {
        render(flags)
    }
}

/// The error CONFIG SET gives for a character [`parse`] refuses.
pub const ERR_INVALID_CLASS: &str = "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.";

/// One keyspace event, in the order the command raised it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEvent {
    pub db: usize,
    /// The event name (Redis's exact text: "set", "lpush", "expired", ...).
    pub event: &'static str,
    pub key: Bytes,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::testutil::run;
    use crate::store::Store;

    fn names(s: &mut Store) -> Vec<String> {
        s.effects
            .events
            .drain(..)
            .map(|e| format!("{} {}", e.event, String::from_utf8_lossy(&e.key)))
            .collect()
    }

    #[test]
    fn events_are_recorded_only_for_enabled_classes() {
        let mut s = Store::default();
        run(&mut s, &["rpush", "l", "a"]);
        run(&mut s, &["set", "k", "v", "px", "1"]);
        run(&mut s, &["get", "k"]);
        run(&mut s, &["del", "k", "l"]);
        // Off (the default): nothing recorded, nothing allocated.
        assert!(s.effects.events.is_empty());
        assert_eq!(s.effects.events.capacity(), 0);
        // Classes without K or E publish nothing: nothing recorded either.
        s.config.notify_keyspace_events = parse(b"A").unwrap_or(0);
        run(&mut s, &["set", "k", "v"]);
        assert!(s.effects.events.is_empty());
        // Only the enabled classes, in Redis's order (the push, then the pop,
        // then the emptied source's deletion).
        s.config.notify_keyspace_events = parse(b"Klgn").unwrap_or(0);
        run(&mut s, &["set", "s", "v"]);
        run(&mut s, &["rpush", "src", "a"]);
        run(&mut s, &["lmove", "src", "dst", "left", "right"]);
        assert_eq!(
            names(&mut s),
            [
                "new s",
                "new src",
                "rpush src",
                "new dst",
                "rpush dst",
                "lpop src",
                "del src"
            ]
        );
        // Lazy expiry raises "expired" before the command's own events.
        s.config.notify_keyspace_events = parse(b"KA").unwrap_or(0);
        run(&mut s, &["set", "e", "v", "px", "1"]);
        names(&mut s);
        s.exec(0, 5000, &crate::cmd::testutil::argv(&["lpush", "e", "x"]));
        assert_eq!(names(&mut s), ["expired e", "lpush e"]);
    }

    #[test]
    fn parse_and_render_like_redis() {
        // The renderings the Redis suite checks (unit/pubsub).
        for (input, shown) in [
            ("gKE", "gKE"),
            ("$lshzxeKE", "$lshzxeKE"),
            ("KA", "AK"),
            ("EA", "AE"),
            ("", ""),
            ("Ex", "xE"),
            ("AKEmn", "AKEm"),
            ("nE", "nE"),
            ("td", "td"),
            ("g$lshzxetd", "A"),
            ("gg", "g"),
        ] {
            let f = parse(input.as_bytes()).unwrap_or(u32::MAX);
            assert_eq!(render(f), shown, "{input}");
        }
        // The exact form keeps what 'A' hides.
        for input in ["AKEmn", "An", "A", "KEA", "", "nd"] {
            let f = parse(input.as_bytes()).unwrap_or(u32::MAX);
            assert_eq!(parse(render_exact(f).as_bytes()), Some(f), "{input}");
            assert!(!render_exact(f).contains('A'), "{input}");
        }
        // 'A' does not include 'n' (new) and 'm' (keymiss).
        assert_eq!(parse(b"A").map(|f| f & (NEW | KEY_MISS)), Some(0));
        for bad in ["a", "KEX", " ", "K E", "L"] {
            assert_eq!(parse(bad.as_bytes()), None, "{bad}");
        }
    }
}
