//! `=~` in JSONPath filters: RedisJSON matches with the `regex` crate (unanchored
//! search, Rust syntax, an invalid pattern matches nothing). redsnap uses the same
//! engine's core, `regex-automata`, and keeps the last compiled pattern, since a
//! filter tests one pattern against every element of an array.

use regex_automata::meta::Regex;
use std::cell::RefCell;

thread_local! {
    static LAST: RefCell<Option<(String, Option<Regex>)>> = const { RefCell::new(None) };
}

/// Whether `pattern` matches somewhere in `s` (false for an invalid pattern).
pub fn is_match(pattern: &str, s: &str) -> bool {
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        let hit = matches!(&*last, Some((p, _)) if p == pattern);
        if !hit {
            let re = Regex::builder()
                .configure(Regex::config().nfa_size_limit(Some(1 << 20)))
                .build(pattern)
                .ok();
            *last = Some((pattern.to_owned(), re));
        }
        match &*last {
            Some((_, Some(re))) => re.is_match(s),
            _ => false,
        }
    })
}
