//! Stream commands for the differential test (issue 15): XADD (NOMKSTREAM,
//! MAXLEN/MINID with `=` and `~`, LIMIT, explicit, partial and out-of-order
//! IDs), XRANGE, XREVRANGE, XLEN, XDEL, XTRIM, XSETID, XREAD without BLOCK,
//! XGROUP (CREATE with MKSTREAM and ENTRIESREAD, SETID, CREATECONSUMER,
//! DELCONSUMER, DESTROY), XREADGROUP without BLOCK (`>`, history, NOACK), XACK,
//! XPENDING (summary, extended, IDLE, per consumer), XCLAIM (every option),
//! XAUTOCLAIM and XINFO STREAM [FULL]/GROUPS/CONSUMERS.
//!
//! What depends on the clock is kept out or masked: IDs are always explicit
//! (`ms-seq`, `ms-*` or `ms`; never `*`, whose value is the current time), the
//! millisecond part grows from a counter kept by the generator, and idle times
//! are only asked for as "0" (everything) or "one hour" (only what an `IDLE` or
//! `TIME` option pushed into the past), so both servers make the same choice.
//! Replies that carry a time (XPENDING's idle, XINFO's `idle`, `seen-time` and
//! delivery times) are compared with those integers masked
//! ([`mask_stream_times`]), as is XINFO STREAM's `radix-tree-nodes`: redsnap
//! keeps its own node structure and reports an estimate (`rax_nodes` in crates/engine/src/cmd/stream_info.rs).

use super::{b, Gen, R};

/// Stream keys are `q0`..`q3`.
const KIND: &str = "q";

/// An idle time no entry reaches during a run unless an option set it.
const ONE_HOUR_MS: &str = "3600000";

impl Gen {
    /// The next millisecond part: grows by 0-3 per call, so most explicit IDs
    /// are accepted and some are equal to or below the top (XADD's error).
    fn stream_ms(&mut self) -> u64 {
        self.clock += self.n(0, 3) as u64;
        self.clock
    }

    /// An ID near the recent ones (ranges, XDEL, XACK, XCLAIM, SETID).
    fn stream_id(&mut self) -> Vec<u8> {
        let back = self.n(0, 12) as u64;
        let ms = self.clock.saturating_sub(back);
        match self.n(0, 9) {
            0 => b(&ms.to_string()),
            1 => b(self.pick(&[
                "0",
                "0-0",
                "0-1",
                "x",
                "1-x",
                "-1",
                "18446744073709551615-18446744073709551615",
            ])),
            _ => b(&format!("{ms}-{}", self.n(0, 2))),
        }
    }

    /// A range bound: `-`, `+`, an ID or an exclusive `(ID`.
    fn stream_bound(&mut self) -> Vec<u8> {
        match self.n(0, 5) {
            0 => b("-"),
            1 => b("+"),
            2 => {
                let mut v = b("(");
                v.extend(self.stream_id());
                v
            }
            _ => self.stream_id(),
        }
    }

    fn stream_group(&mut self) -> Vec<u8> {
        b(self.pick(&["g1", "g1", "g2", "g3"]))
    }

    fn stream_consumer(&mut self) -> Vec<u8> {
        b(self.pick(&["c1", "c1", "c2", "c3"]))
    }

    fn stream_count(&mut self) -> Vec<u8> {
        b(self.pick(&["0", "1", "2", "3", "5", "10", "100", "-1", "x"]))
    }

    /// `MAXLEN|MINID [=|~] threshold [LIMIT n]` (XADD and XTRIM).
    fn stream_trim(&mut self, a: &mut Vec<Vec<u8>>) {
        let minid = self.chance(0.35);
        a.push(b(if minid { "MINID" } else { "MAXLEN" }));
        let approx = match self.n(0, 2) {
            0 => None,
            1 => Some("="),
            _ => Some("~"),
        };
        if let Some(op) = approx {
            a.push(b(op));
        }
        if minid {
            a.push(self.stream_id());
        } else {
            a.push(b(
                self.pick(&["0", "1", "2", "3", "5", "10", "50", "-1", "x"])
            ));
        }
        if self.chance(0.2) {
            a.push(b("LIMIT"));
            a.push(b(self.pick(&["0", "1", "10", "100", "-1"])));
        }
    }

    fn stream_fields(&mut self, a: &mut Vec<Vec<u8>>) {
        for _ in 0..self.n(1, 3) {
            a.push(b(self.pick(&["f1", "f2", "f3", "name", "n"])));
            a.push(self.val());
        }
        if self.chance(0.02) {
            a.pop(); // an odd number of arguments
        }
    }

    fn xadd(&mut self) -> Vec<Vec<u8>> {
        let mut a = vec![b("XADD"), self.key(KIND)];
        if self.chance(0.1) {
            a.push(b("NOMKSTREAM"));
        }
        if self.chance(0.3) {
            self.stream_trim(&mut a);
        }
        let ms = self.stream_ms();
        let id = match self.n(0, 9) {
            0..=4 => format!("{ms}-{}", self.n(0, 2)),
            5..=7 => format!("{ms}-*"),
            8 => ms.to_string(),
            _ => self.pick(&["0-0", "0-*", "1-1", "x-1", "1-x"]).to_string(),
        };
        a.push(b(&id));
        self.stream_fields(&mut a);
        a
    }

    /// `STREAMS k1 [k2] id1 [id2]` for XREAD and XREADGROUP.
    fn stream_streams(&mut self, a: &mut Vec<Vec<u8>>, group: bool) {
        a.push(b("STREAMS"));
        let n = self.n(1, 2);
        for _ in 0..n {
            a.push(self.key(KIND));
        }
        for _ in 0..n {
            let id = match self.n(0, 5) {
                0 if group => b(">"),
                1 if group => b(">"),
                0 | 1 => b("$"),
                2 => b("0"),
                _ => self.stream_id(),
            };
            a.push(id);
        }
        if self.chance(0.02) {
            a.pop(); // unbalanced
        }
    }

    fn xgroup(&mut self) -> Vec<Vec<u8>> {
        let key = self.key(KIND);
        let group = self.stream_group();
        match self.n(0, 9) {
            0..=3 => {
                let mut a = vec![b("XGROUP"), b("CREATE"), key, group];
                a.push(match self.n(0, 3) {
                    0 => b("$"),
                    1 => b("0"),
                    _ => self.stream_id(),
                });
                if self.chance(0.6) {
                    a.push(b("MKSTREAM"));
                }
                if self.chance(0.2) {
                    a.push(b("ENTRIESREAD"));
                    a.push(b(self.pick(&["0", "1", "3", "100", "-1", "-2"])));
                }
                a
            }
            4 | 5 => {
                let mut a = vec![b("XGROUP"), b("SETID"), key, group];
                a.push(if self.chance(0.3) {
                    b("$")
                } else {
                    self.stream_id()
                });
                if self.chance(0.3) {
                    a.push(b("ENTRIESREAD"));
                    a.push(b(self.pick(&["0", "2", "5", "-1"])));
                }
                a
            }
            6 | 7 => vec![
                b("XGROUP"),
                b("CREATECONSUMER"),
                key,
                group,
                self.stream_consumer(),
            ],
            8 => vec![
                b("XGROUP"),
                b("DELCONSUMER"),
                key,
                group,
                self.stream_consumer(),
            ],
            _ => vec![b("XGROUP"), b("DESTROY"), key, group],
        }
    }

    fn xclaim(&mut self) -> Vec<Vec<u8>> {
        let mut a = vec![
            b("XCLAIM"),
            self.key(KIND),
            self.stream_group(),
            self.stream_consumer(),
            b(self.pick(&["0", "0", "0", ONE_HOUR_MS, "-1"])),
        ];
        for _ in 0..self.n(1, 3) {
            a.push(self.stream_id());
        }
        for _ in 0..self.n(0, 3) {
            match self.n(0, 5) {
                0 => {
                    a.push(b("IDLE"));
                    a.push(b(self.pick(&["0", "7200000", "100"])));
                }
                1 => {
                    a.push(b("TIME"));
                    a.push(b(self.pick(&["1", "1000"])));
                }
                2 => {
                    a.push(b("RETRYCOUNT"));
                    a.push(b(self.pick(&["0", "5", "-1"])));
                }
                3 => a.push(b("FORCE")),
                4 => a.push(b("JUSTID")),
                _ => {
                    a.push(b("LASTID"));
                    a.push(self.stream_id());
                }
            }
        }
        a
    }

    fn xinfo(&mut self) -> Vec<Vec<u8>> {
        match self.n(0, 4) {
            0 | 1 => {
                let mut a = vec![b("XINFO"), b("STREAM"), self.key(KIND)];
                if self.chance(0.5) {
                    a.push(b("FULL"));
                    if self.chance(0.5) {
                        a.push(b("COUNT"));
                        a.push(b(self.pick(&["0", "1", "2", "5"])));
                    }
                }
                a
            }
            2 | 3 => vec![b("XINFO"), b("GROUPS"), self.key(KIND)],
            _ => vec![
                b("XINFO"),
                b("CONSUMERS"),
                self.key(KIND),
                self.stream_group(),
            ],
        }
    }

    /// One stream command; true when its reply carries times to mask.
    pub(super) fn stream_command(&mut self) -> (Vec<Vec<u8>>, bool) {
        let mut masked = false;
        let a = match self.n(0, 29) {
            0..=6 => self.xadd(),
            7 | 8 => {
                let rev = self.chance(0.4);
                let mut a = vec![
                    b(if rev { "XREVRANGE" } else { "XRANGE" }),
                    self.key(KIND),
                    self.stream_bound(),
                    self.stream_bound(),
                ];
                if self.chance(0.4) {
                    a.push(b("COUNT"));
                    a.push(self.stream_count());
                }
                a
            }
            9 => vec![b("XLEN"), self.key(KIND)],
            10 => {
                let mut a = vec![b("XDEL"), self.key(KIND)];
                for _ in 0..self.n(1, 3) {
                    a.push(self.stream_id());
                }
                a
            }
            11 => {
                let mut a = vec![b("XTRIM"), self.key(KIND)];
                self.stream_trim(&mut a);
                a
            }
            12 => {
                let mut a = vec![b("XREAD")];
                if self.chance(0.5) {
                    a.push(b("COUNT"));
                    a.push(self.stream_count());
                }
                self.stream_streams(&mut a, false);
                a
            }
            13..=15 => self.xgroup(),
            16..=18 => {
                let mut a = vec![
                    b("XREADGROUP"),
                    b("GROUP"),
                    self.stream_group(),
                    self.stream_consumer(),
                ];
                if self.chance(0.5) {
                    a.push(b("COUNT"));
                    a.push(self.stream_count());
                }
                if self.chance(0.15) {
                    a.push(b("NOACK"));
                }
                self.stream_streams(&mut a, true);
                a
            }
            19 | 20 => {
                let mut a = vec![b("XACK"), self.key(KIND), self.stream_group()];
                for _ in 0..self.n(1, 3) {
                    a.push(self.stream_id());
                }
                a
            }
            21 | 22 => {
                let mut a = vec![b("XPENDING"), self.key(KIND), self.stream_group()];
                if self.chance(0.6) {
                    masked = true;
                    if self.chance(0.3) {
                        a.push(b("IDLE"));
                        a.push(b(self.pick(&["0", ONE_HOUR_MS, "-1"])));
                    }
                    a.push(self.stream_bound());
                    a.push(self.stream_bound());
                    a.push(self.stream_count());
                    if self.chance(0.4) {
                        a.push(self.stream_consumer());
                    }
                }
                a
            }
            23 | 24 => self.xclaim(),
            25 => {
                let mut a = vec![
                    b("XAUTOCLAIM"),
                    self.key(KIND),
                    self.stream_group(),
                    self.stream_consumer(),
                    b(self.pick(&["0", "0", ONE_HOUR_MS])),
                    self.stream_bound(),
                ];
                if self.chance(0.5) {
                    a.push(b("COUNT"));
                    a.push(b(self.pick(&["1", "2", "10", "0", "-1"])));
                }
                if self.chance(0.3) {
                    a.push(b("JUSTID"));
                }
                a
            }
            26 | 27 => {
                masked = true;
                self.xinfo()
            }
            28 => {
                let mut a = vec![b("XSETID"), self.key(KIND), self.stream_id()];
                if self.chance(0.3) {
                    a.push(b("ENTRIESADDED"));
                    a.push(b(self.pick(&["0", "5", "100", "-1"])));
                }
                if self.chance(0.3) {
                    a.push(b("MAXDELETEDID"));
                    a.push(self.stream_id());
                }
                a
            }
            _ => vec![b("TYPE"), self.key(KIND)],
        };
        (a, masked)
    }
}

/// Field names whose values are times (or redsnap's estimate of Redis's radix
/// tree node count): masked in maps and in RESP2's flat key/value arrays.
const MASKED_FIELDS: &[&[u8]] = &[b"idle", b"seen-time", b"delivery-time", b"radix-tree-nodes"];

fn masked_name(r: &R) -> bool {
    matches!(r, R::Bulk(Some(k)) | R::Simple(k) if MASKED_FIELDS.contains(&k.as_slice()))
}

fn is_id(r: &R) -> bool {
    matches!(r, R::Bulk(Some(v)) if v.contains(&b'-') && v.iter().all(|c| c.is_ascii_digit() || *c == b'-'))
}

/// The reply with its clock-dependent integers replaced by 0: idle and delivery
/// times in XPENDING's extended form (`[id, consumer, idle, count]`), in XINFO
/// STREAM FULL's pending lists (`[id, consumer, time, count]` and
/// `[id, time, count]`) and the [`MASKED_FIELDS`] of XINFO's maps.
pub(super) fn mask_stream_times(r: &R) -> R {
    match r {
        R::Arr(Some(v)) => {
            let mut v: Vec<R> = v.iter().map(mask_stream_times).collect();
            let n = v.len();
            if n == 4
                && is_id(&v[0])
                && matches!(v[1], R::Bulk(Some(_)))
                && matches!((&v[2], &v[3]), (R::Int(_), R::Int(_)))
            {
                v[2] = R::Int(0);
            } else if n == 3 && is_id(&v[0]) && matches!((&v[1], &v[2]), (R::Int(_), R::Int(_))) {
                v[1] = R::Int(0);
            } else if n.is_multiple_of(2) {
                for i in (0..n).step_by(2) {
                    if masked_name(&v[i]) && matches!(v[i + 1], R::Int(_)) {
                        v[i + 1] = R::Int(0);
                    }
                }
            }
            R::Arr(Some(v))
        }
        R::Map(m) => R::Map(
            m.iter()
                .map(|(k, v)| {
                    let v = if masked_name(k) && matches!(v, R::Int(_)) {
                        R::Int(0)
                    } else {
                        mask_stream_times(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        R::Set(v) => R::Set(v.iter().map(mask_stream_times).collect()),
        R::Push(v) => R::Push(v.iter().map(mask_stream_times).collect()),
        other => other.clone(),
    }
}

#[test]
fn masking_touches_only_times() {
    let id = |s: &str| R::Bulk(Some(b(s)));
    let pending = R::Arr(Some(vec![R::Arr(Some(vec![
        id("5-1"),
        id("c1"),
        R::Int(1234),
        R::Int(2),
    ]))]));
    assert_eq!(
        mask_stream_times(&pending),
        R::Arr(Some(vec![R::Arr(Some(vec![
            id("5-1"),
            id("c1"),
            R::Int(0),
            R::Int(2)
        ]))]))
    );
    let consumer = R::Arr(Some(vec![
        id("name"),
        id("c1"),
        id("pending"),
        R::Int(3),
        id("idle"),
        R::Int(99),
    ]));
    assert_eq!(
        mask_stream_times(&consumer),
        R::Arr(Some(vec![
            id("name"),
            id("c1"),
            id("pending"),
            R::Int(3),
            id("idle"),
            R::Int(0)
        ]))
    );
    // An entry ([id, [field, value]]) and a summary are left alone.
    let summary = R::Arr(Some(vec![R::Int(2), id("1-0"), id("3-0"), R::Arr(None)]));
    assert_eq!(mask_stream_times(&summary), summary);
}
