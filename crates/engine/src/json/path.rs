//! JSONPath as RedisJSON 2.6 compiles and evaluates it (its `json_path` crate:
//! `grammar.pest` and `json_path.rs`), and the legacy dot paths it rewrites into
//! JSONPath (`redisjson.rs`, `Path::new`).
//!
//! Grammar (spaces allowed between tokens):
//! `$` then elements: `.name`, `..name`, `..*`, `..[...]`, `.*`, `[...]` (also
//! `.[...]`); right after `$` a bare `name` or `*`. Brackets hold an index list
//! (`1,-2`), a slice (`start:end:step`, each part optional, step > 0), a quoted
//! name list (`'a',"b"`), `*`, or a filter `?(...)`: terms `@...`, `$...`, numbers,
//! quoted strings, `true`, `false`, `null`, compared with `== != < <= > >= =~`,
//! joined by `&&` (binds tighter) and `||`, grouped by parentheses.

use super::value::JVal;

/// A path argument: the text the client gave and the JSONPath it stands for.
#[derive(Debug, Clone)]
pub struct PathArg {
    pub original: String,
    /// The JSONPath (a legacy path rewritten: `.` -> `$`, `.a` -> `$.a`, `a` -> `$.a`).
    pub fixed: String,
    pub legacy: bool,
}

impl PathArg {
    pub fn new(p: &str) -> PathArg {
        let b = p.as_bytes();
        let jsonpath = b.first() == Some(&b'$') && (b.len() < 2 || b[1] == b'.' || b[1] == b'[');
        if jsonpath {
            return PathArg {
                original: p.to_owned(),
                fixed: p.to_owned(),
                legacy: false,
            };
        }
        let fixed = if p == "." {
            "$".to_owned()
        } else if p.starts_with('.') {
            format!("${p}")
        } else {
            format!("$.{p}")
        };
        PathArg {
            original: p.to_owned(),
            fixed,
            legacy: true,
        }
    }

    pub fn is_root(&self) -> bool {
        self.fixed == "$"
    }
}

/// One step of a compiled query.
#[derive(Debug, Clone, PartialEq)]
pub enum Seg {
    /// `.name` (also a single quoted name in brackets when it stands alone).
    Key(String),
    /// `['a','b']`
    Keys(Vec<String>),
    /// `*` / `[*]`
    All,
    /// `[1,-1]`
    Indexes(Vec<i64>),
    /// `[start:end:step]`
    Range(Option<i64>, Option<i64>, usize),
    /// `..`: the rest applies to this node and every node below it.
    Descend,
    /// `[?(...)]`
    Filter(Box<Filter>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// A single term (true when it evaluates to exactly one value) or a comparison.
    Cmp(Term, Option<(Op, Term)>),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Re,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    Current(Vec<Seg>),
    Root(Vec<Seg>),
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    Null,
}

/// A compiled query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub segs: Vec<Seg>,
}

/// A compilation error: RedisJSON's text is `Error occurred on position N, ...`
/// with pest's expectation list; redsnap gives the position and a short reason.
#[derive(Debug, Clone, PartialEq)]
pub struct PathError {
    pub pos: usize,
    pub msg: &'static str,
    pub path: String,
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let shown = if self.pos >= self.path.len() {
            format!("\"{} <<<<----\"", self.path)
        } else {
            // (The position is a byte offset; cut at the char boundary at or before it.)
            let mut cut = self.pos;
            while !self.path.is_char_boundary(cut) {
                cut -= 1;
            }
            let (a, b) = self.path.split_at(cut);
            format!("\"{a} ---->>>> {b}\"")
        };
        write!(
            f,
            "Error occurred on position {}, {shown}, {}.",
            self.pos, self.msg
        )
    }
}

/// A path element of a match: an object member or an array position.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathElem {
    Key(String),
    Index(usize),
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    text: &'a str,
}

fn is_literal(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-_`~+#%$^/:".contains(&c)
}

impl<'a> Parser<'a> {
    fn err<T>(&self, msg: &'static str) -> Result<T, PathError> {
        Err(PathError {
            pos: self.pos,
            msg,
            path: self.text.to_owned(),
        })
    }
    fn ws(&mut self) {
        while self.s.get(self.pos) == Some(&b' ') {
            self.pos += 1;
        }
    }
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.pos).copied()
    }
    fn eat(&mut self, t: &str) -> bool {
        self.ws();
        if self.s[self.pos..].starts_with(t.as_bytes()) {
            self.pos += t.len();
            true
        } else {
            false
        }
    }
    fn literal(&mut self) -> Result<String, PathError> {
        self.ws();
        let start = self.pos;
        while self.s.get(self.pos).is_some_and(|&c| is_literal(c)) {
            self.pos += 1;
        }
        if self.pos == start {
            return self.err("expected one of the following: <string>, '*'");
        }
        Ok(self.text[start..self.pos].to_owned())
    }

    /// A signed integer as the grammar's `number` (no leading zeros).
    fn number(&mut self) -> Option<i64> {
        self.ws();
        let start = self.pos;
        let mut p = self.pos;
        if self.s.get(p) == Some(&b'-') {
            p += 1;
        }
        let d0 = p;
        match self.s.get(p) {
            Some(b'0') => p += 1,
            Some(c) if c.is_ascii_digit() => {
                while self.s.get(p).is_some_and(|c| c.is_ascii_digit()) {
                    p += 1;
                }
            }
            _ => return None,
        }
        let v = self.text[start..p].parse::<i64>().ok()?;
        let _ = d0;
        self.pos = p;
        Some(v)
    }

    fn quoted(&mut self) -> Result<Option<String>, PathError> {
        self.ws();
        let q = match self.s.get(self.pos) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => return Ok(None),
        };
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.s.get(self.pos) {
                None => return self.err("unterminated string"),
                Some(&c) if c == q => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => match self.s.get(self.pos + 1) {
                    Some(&c) if c == q || c == b'\\' => {
                        out.push(c);
                        self.pos += 2;
                    }
                    _ => return self.err("invalid escape in string"),
                },
                Some(&c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
        Ok(Some(String::from_utf8_lossy(&out).into_owned()))
    }

    /// Elements after `$` or `@`, until the end or something that is not one.
    fn elements(&mut self, first: bool) -> Result<Vec<Seg>, PathError> {
        let mut segs = Vec::new();
        if first {
            match self.peek() {
                Some(b'*') => {
                    self.pos += 1;
                    segs.push(Seg::All);
                }
                Some(c) if is_literal(c) => segs.push(Seg::Key(self.literal()?)),
                _ => {}
            }
        }
        loop {
            let save = self.pos;
            if self.eat("..") {
                segs.push(Seg::Descend);
                match self.peek() {
                    Some(b'*') => {
                        self.pos += 1;
                        segs.push(Seg::All);
                    }
                    Some(b'[') => {
                        self.pos += 1;
                        segs.push(self.bracket()?);
                    }
                    _ => segs.push(Seg::Key(self.literal()?)),
                }
            } else if self.eat(".") {
                match self.peek() {
                    Some(b'*') => {
                        self.pos += 1;
                        segs.push(Seg::All);
                    }
                    Some(b'[') => {
                        self.pos += 1;
                        segs.push(self.bracket()?);
                    }
                    _ => segs.push(Seg::Key(self.literal()?)),
                }
            } else if self.eat("[") {
                segs.push(self.bracket()?);
            } else {
                self.pos = save;
                return Ok(segs);
            }
        }
    }

    /// The inside of `[...]` (the `[` consumed), through the closing `]`.
    fn bracket(&mut self) -> Result<Seg, PathError> {
        let seg = if self.eat("*") {
            Seg::All
        } else if self.eat("?") {
            Seg::Filter(Box::new(self.filter()?))
        } else if let Some(s) = self.quoted()? {
            let mut keys = vec![s];
            while self.eat(",") {
                match self.quoted()? {
                    Some(s) => keys.push(s),
                    None => {
                        return self.err("expected one of the following: '<string>[,<string>,...]'")
                    }
                }
            }
            if keys.len() == 1 {
                Seg::Key(keys.remove(0))
            } else {
                Seg::Keys(keys)
            }
        } else {
            self.numbers()?
        };
        if !self.eat("]") {
            return self.err("expected ']'");
        }
        Ok(seg)
    }

    /// An index list or a slice.
    fn numbers(&mut self) -> Result<Seg, PathError> {
        let first = self.number();
        if self.eat(":") {
            let end = self.number();
            let mut step = 1usize;
            if self.eat(":") {
                self.ws();
                if self.s.get(self.pos).is_some_and(|c| c.is_ascii_digit()) {
                    match self.number() {
                        Some(n) if n > 0 => step = n as usize,
                        _ => return self.err("expected one of the following: ['start:end:steps']"),
                    }
                }
            }
            return Ok(Seg::Range(first, end, step));
        }
        let Some(first) = first else {
            return self.err("expected one of the following: '<number>[,<number>,...]', '<string>[,<string>,...]', '*', '[?(filter_expression)]'");
        };
        let mut list = vec![first];
        while self.eat(",") {
            match self.number() {
                Some(n) => list.push(n),
                None => return self.err("expected one of the following: '<number>'"),
            }
        }
        Ok(Seg::Indexes(list))
    }

    fn filter(&mut self) -> Result<Filter, PathError> {
        // OR of ANDs: && binds tighter, as RedisJSON evaluates.
        let mut left = self.and_chain()?;
        while self.eat("||") {
            let right = self.and_chain()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_chain(&mut self) -> Result<Filter, PathError> {
        let mut left = self.inner_filter()?;
        while self.eat("&&") {
            let right = self.inner_filter()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn inner_filter(&mut self) -> Result<Filter, PathError> {
        let save = self.pos;
        if self.eat("(") {
            // A parenthesised filter, unless what follows parses only as a term.
            let f = self.filter()?;
            if self.eat(")") {
                return Ok(f);
            }
            self.pos = save;
            return self.err("expected ')'");
        }
        let t = self.term()?;
        let op = if self.eat("==") {
            Some(Op::Eq)
        } else if self.eat("!=") {
            Some(Op::Ne)
        } else if self.eat("<=") {
            Some(Op::Le)
        } else if self.eat(">=") {
            Some(Op::Ge)
        } else if self.eat("<") {
            Some(Op::Lt)
        } else if self.eat(">") {
            Some(Op::Gt)
        } else if self.eat("=~") {
            Some(Op::Re)
        } else {
            None
        };
        match op {
            Some(op) => {
                let t2 = self.term()?;
                Ok(Filter::Cmp(t, Some((op, t2))))
            }
            None => Ok(Filter::Cmp(t, None)),
        }
    }

    fn term(&mut self) -> Result<Term, PathError> {
        if self.eat("@") {
            return Ok(Term::Current(self.elements(true)?));
        }
        if self.eat("$") {
            return Ok(Term::Root(self.elements(true)?));
        }
        if let Some(s) = self.quoted()? {
            return Ok(Term::Str(s));
        }
        if self.eat("true") {
            return Ok(Term::Bool(true));
        }
        if self.eat("false") {
            return Ok(Term::Bool(false));
        }
        if self.eat("null") {
            return Ok(Term::Null);
        }
        let start = self.pos;
        if let Some(i) = self.number() {
            if self.s.get(self.pos) == Some(&b'.')
                && self.s.get(self.pos + 1).is_some_and(|c| c.is_ascii_digit())
            {
                self.pos += 1;
                while self.s.get(self.pos).is_some_and(|c| c.is_ascii_digit()) {
                    self.pos += 1;
                }
                return match self.text[start..self.pos].parse::<f64>() {
                    Ok(f) => Ok(Term::Float(f)),
                    Err(_) => self.err("invalid number"),
                };
            }
            return Ok(Term::Int(i));
        }
        self.err("expected a filter term")
    }
}

/// Compiles a JSONPath (it must start with `$`).
pub fn compile(path: &str) -> Result<Query, PathError> {
    let mut p = Parser {
        s: path.as_bytes(),
        pos: 0,
        text: path,
    };
    if !p.eat("$") {
        return p.err("expected one of the following: '$'");
    }
    let segs = p.elements(true)?;
    p.ws();
    if p.pos != path.len() {
        return p.err("expected the end of the path");
    }
    Ok(Query { segs })
}

impl Query {
    /// A path naming at most one place: names and single indexes only (RedisJSON's
    /// `is_static`, which decides whether JSON.SET may create the last member).
    pub fn is_static(&self) -> bool {
        self.segs.iter().all(|s| match s {
            Seg::Key(_) => true,
            Seg::Indexes(v) => v.len() == 1,
            _ => false,
        })
    }

    /// Every match with its concrete path, in RedisJSON's order.
    pub fn select_paths<'v>(&self, root: &'v JVal) -> Vec<(Vec<PathElem>, &'v JVal)> {
        let mut out = Vec::new();
        let mut cur = Vec::new();
        walk(&self.segs, root, root, &mut cur, &mut Sink::Paths(&mut out));
        out
    }

    /// Every match (no paths).
    pub fn select<'v>(&self, root: &'v JVal) -> Vec<&'v JVal> {
        let mut out = Vec::new();
        let mut cur = Vec::new();
        walk(
            &self.segs,
            root,
            root,
            &mut cur,
            &mut Sink::Values(&mut out),
        );
        out
    }
}

enum Sink<'o, 'v> {
    Paths(&'o mut Vec<(Vec<PathElem>, &'v JVal)>),
    Values(&'o mut Vec<&'v JVal>),
}

impl<'v> Sink<'_, 'v> {
    fn tracks(&self) -> bool {
        matches!(self, Sink::Paths(_))
    }
    fn push(&mut self, path: &[PathElem], v: &'v JVal) {
        match self {
            Sink::Paths(o) => o.push((path.to_vec(), v)),
            Sink::Values(o) => o.push(v),
        }
    }
}

/// RedisJSON's `calc_abs_index`: negative from the end (clamped at 0), positive
/// clamped at the length.
fn abs_index(i: i64, n: usize) -> usize {
    if i >= 0 {
        (i as usize).min(n)
    } else {
        (i + n as i64).max(0) as usize
    }
}

fn step_into<'v>(
    rest: &[Seg],
    root: &'v JVal,
    child: &'v JVal,
    elem: impl FnOnce() -> PathElem,
    cur: &mut Vec<PathElem>,
    sink: &mut Sink<'_, 'v>,
) {
    if sink.tracks() {
        cur.push(elem());
        walk(rest, root, child, cur, sink);
        cur.pop();
    } else {
        walk(rest, root, child, cur, sink);
    }
}

fn walk<'v>(
    segs: &[Seg],
    root: &'v JVal,
    v: &'v JVal,
    cur: &mut Vec<PathElem>,
    sink: &mut Sink<'_, 'v>,
) {
    let Some((seg, rest)) = segs.split_first() else {
        sink.push(cur, v);
        return;
    };
    match seg {
        Seg::Key(k) => {
            if let JVal::Obj(o) = v {
                if let Some(c) = o.get(k) {
                    step_into(rest, root, c, || PathElem::Key(k.clone()), cur, sink);
                }
            }
        }
        Seg::Keys(ks) => {
            if let JVal::Obj(o) = v {
                for k in ks {
                    if let Some(c) = o.get(k) {
                        step_into(rest, root, c, || PathElem::Key(k.clone()), cur, sink);
                    }
                }
            }
        }
        Seg::All => match v {
            JVal::Obj(o) => {
                for (k, c) in o.iter() {
                    step_into(rest, root, c, || PathElem::Key(k.clone()), cur, sink);
                }
            }
            JVal::Arr(a) => {
                for (i, c) in a.iter().enumerate() {
                    step_into(rest, root, c, || PathElem::Index(i), cur, sink);
                }
            }
            _ => {}
        },
        Seg::Indexes(list) => {
            if let JVal::Arr(a) = v {
                for &i in list {
                    let i = abs_index(i, a.len());
                    if let Some(c) = a.get(i) {
                        step_into(rest, root, c, || PathElem::Index(i), cur, sink);
                    }
                }
            }
        }
        Seg::Range(start, end, step) => {
            if let JVal::Arr(a) = v {
                let n = a.len();
                let s = start.map_or(0, |s| abs_index(s, n));
                let e = end.map_or(n, |e| abs_index(e, n));
                if s < e {
                    for i in (s..e).step_by(*step) {
                        if let Some(c) = a.get(i) {
                            step_into(rest, root, c, || PathElem::Index(i), cur, sink);
                        }
                    }
                }
            }
        }
        Seg::Descend => {
            walk(rest, root, v, cur, sink);
            descend(rest, root, v, cur, sink);
        }
        Seg::Filter(f) => match v {
            JVal::Arr(a) => {
                for (i, c) in a.iter().enumerate() {
                    if eval_filter(f, root, c) {
                        step_into(rest, root, c, || PathElem::Index(i), cur, sink);
                    }
                }
            }
            JVal::Obj(o) => {
                for (k, c) in o.iter() {
                    if eval_filter(f, root, c) {
                        step_into(rest, root, c, || PathElem::Key(k.clone()), cur, sink);
                    }
                }
            }
            _ => {}
        },
    }
}

/// RedisJSON's `calc_full_scan`: for each child, apply the rest, then recurse.
fn descend<'v>(
    rest: &[Seg],
    root: &'v JVal,
    v: &'v JVal,
    cur: &mut Vec<PathElem>,
    sink: &mut Sink<'_, 'v>,
) {
    match v {
        JVal::Obj(o) => {
            for (k, c) in o.iter() {
                if sink.tracks() {
                    cur.push(PathElem::Key(k.clone()));
                }
                walk(rest, root, c, cur, sink);
                descend(rest, root, c, cur, sink);
                if sink.tracks() {
                    cur.pop();
                }
            }
        }
        JVal::Arr(a) => {
            for (i, c) in a.iter().enumerate() {
                if sink.tracks() {
                    cur.push(PathElem::Index(i));
                }
                walk(rest, root, c, cur, sink);
                descend(rest, root, c, cur, sink);
                if sink.tracks() {
                    cur.pop();
                }
            }
        }
        _ => {}
    }
}

/// A term's value in a filter.
enum TV<'a> {
    Int(i64),
    Float(f64),
    Str(&'a str),
    Bool(bool),
    Null,
    /// A container (comparable only by `==` / `!=` to another value).
    Other(&'a JVal),
    Invalid,
}

fn term_value<'a>(t: &'a Term, root: &'a JVal, cur: &'a JVal) -> TV<'a> {
    let from = |segs: &[Seg], base: &'a JVal| -> TV<'a> {
        let q = Query {
            segs: segs.to_vec(),
        };
        let r = q.select_from(root, base);
        if r.len() == 1 {
            value_tv(r[0])
        } else {
            TV::Invalid
        }
    };
    match t {
        Term::Current(segs) if segs.is_empty() => value_tv(cur),
        Term::Root(segs) if segs.is_empty() => value_tv(root),
        Term::Current(segs) => from(segs, cur),
        Term::Root(segs) => from(segs, root),
        Term::Int(i) => TV::Int(*i),
        Term::Float(f) => TV::Float(*f),
        Term::Str(s) => TV::Str(s),
        Term::Bool(b) => TV::Bool(*b),
        Term::Null => TV::Null,
    }
}

fn value_tv(v: &JVal) -> TV<'_> {
    match v {
        JVal::Int(i) => TV::Int(*i),
        JVal::Float(f) => TV::Float(*f),
        JVal::Str(s) => TV::Str(s),
        JVal::Bool(b) => TV::Bool(*b),
        JVal::Null => TV::Null,
        other => TV::Other(other),
    }
}

impl Query {
    fn select_from<'v>(&self, root: &'v JVal, base: &'v JVal) -> Vec<&'v JVal> {
        let mut out = Vec::new();
        let mut cur = Vec::new();
        walk(
            &self.segs,
            root,
            base,
            &mut cur,
            &mut Sink::Values(&mut out),
        );
        out
    }
}

fn compare(a: &TV, b: &TV) -> Option<std::cmp::Ordering> {
    use std::cmp::Ordering;
    match (a, b) {
        (TV::Int(x), TV::Int(y)) => Some(x.cmp(y)),
        (TV::Int(x), TV::Float(y)) => (*x as f64).partial_cmp(y).or(Some(Ordering::Equal)),
        (TV::Float(x), TV::Int(y)) => x.partial_cmp(&(*y as f64)).or(Some(Ordering::Equal)),
        (TV::Float(x), TV::Float(y)) => x.partial_cmp(y).or(Some(Ordering::Equal)),
        (TV::Str(x), TV::Str(y)) => Some(x.cmp(y)),
        (TV::Bool(x), TV::Bool(y)) => Some(x.cmp(y)),
        (TV::Null, TV::Null) => Some(Ordering::Equal),
        _ => None,
    }
}

fn eval_filter(f: &Filter, root: &JVal, cur: &JVal) -> bool {
    match f {
        Filter::And(a, b) => eval_filter(a, root, cur) && eval_filter(b, root, cur),
        Filter::Or(a, b) => eval_filter(a, root, cur) || eval_filter(b, root, cur),
        Filter::Cmp(t, None) => !matches!(term_value(t, root, cur), TV::Invalid),
        Filter::Cmp(t1, Some((op, t2))) => {
            let a = term_value(t1, root, cur);
            let b = term_value(t2, root, cur);
            match op {
                Op::Eq => tv_eq(&a, &b),
                Op::Ne => !tv_eq(&a, &b),
                Op::Lt => compare(&a, &b).is_some_and(|o| o.is_lt()),
                Op::Le => compare(&a, &b).is_some_and(|o| o.is_le()),
                Op::Gt => compare(&a, &b).is_some_and(|o| o.is_gt()),
                Op::Ge => compare(&a, &b).is_some_and(|o| o.is_ge()),
                Op::Re => match (&a, &b) {
                    (TV::Str(s), TV::Str(re)) => super::regex::is_match(re, s),
                    _ => false,
                },
            }
        }
    }
}

fn tv_eq(a: &TV, b: &TV) -> bool {
    match (a, b) {
        (TV::Other(x), TV::Other(y)) => x == y,
        _ => compare(a, b).is_some_and(|o| o.is_eq()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(s: &str) -> JVal {
        JVal::parse(s.as_bytes()).unwrap()
    }

    fn sel(path: &str, d: &JVal) -> String {
        let q = compile(path).unwrap();
        String::from_utf8(
            super::super::value::JVal::Arr(q.select(d).into_iter().cloned().collect()).to_json(),
        )
        .unwrap()
    }

    #[test]
    fn legacy_paths_are_rewritten() {
        let p = PathArg::new(".");
        assert!(p.legacy && p.fixed == "$");
        assert_eq!(PathArg::new(".a.b").fixed, "$.a.b");
        assert_eq!(PathArg::new("a").fixed, "$.a");
        assert_eq!(PathArg::new("[0]").fixed, "$.[0]");
        let p = PathArg::new("$.a");
        assert!(!p.legacy && p.fixed == "$.a");
        assert!(!PathArg::new("$").legacy);
        assert!(PathArg::new("$a").legacy);
    }

    #[test]
    fn parses_the_grammar() {
        assert_eq!(compile("$").unwrap().segs, vec![]);
        assert_eq!(
            compile("$.a[1].b").unwrap().segs,
            vec![
                Seg::Key("a".into()),
                Seg::Indexes(vec![1]),
                Seg::Key("b".into())
            ]
        );
        assert_eq!(
            compile("$..a").unwrap().segs,
            vec![Seg::Descend, Seg::Key("a".into())]
        );
        assert_eq!(compile("$[*]").unwrap().segs, vec![Seg::All]);
        assert_eq!(compile("$.*").unwrap().segs, vec![Seg::All]);
        assert_eq!(
            compile("$[1:-1:2]").unwrap().segs,
            vec![Seg::Range(Some(1), Some(-1), 2)]
        );
        assert_eq!(
            compile("$[:2]").unwrap().segs,
            vec![Seg::Range(None, Some(2), 1)]
        );
        assert_eq!(
            compile("$[ 1 , -2 ]").unwrap().segs,
            vec![Seg::Indexes(vec![1, -2])]
        );
        assert_eq!(
            compile("$['a','b c']").unwrap().segs,
            vec![Seg::Keys(vec!["a".into(), "b c".into()])]
        );
        assert!(compile("$[?(@.a > 1 && @.b == 'x' || @.c)]").is_ok());
        for bad in [
            "",
            "a",
            "$.",
            "$[",
            "$[1",
            "$[a]",
            "$..",
            "$[1:2:0]",
            "$.a b",
            "$[?(@.a >)]",
        ] {
            assert!(compile(bad).is_err(), "{bad}");
        }
        let e = compile("$.é").unwrap_err();
        assert!(e.to_string().starts_with("Error occurred on position 2"));
        let e = compile("$.a[").unwrap_err();
        assert_eq!(e.pos, 4);
        assert!(e.to_string().starts_with("Error occurred on position 4"));
    }

    #[test]
    fn selects_like_redisjson() {
        let d = doc(r#"{"a":1,"b":{"a":2,"c":[{"a":3},{"a":4,"x":true}]},"arr":[0,1,2,3,4,5]}"#);
        assert_eq!(sel("$..a", &d), "[1,2,3,4]");
        assert_eq!(sel("$.arr[-1]", &d), "[5]");
        assert_eq!(sel("$.arr[-10]", &d), "[0]");
        assert_eq!(sel("$.arr[10]", &d), "[]");
        assert_eq!(sel("$.arr[1:4]", &d), "[1,2,3]");
        assert_eq!(sel("$.arr[::2]", &d), "[0,2,4]");
        assert_eq!(sel("$.arr[-2:]", &d), "[4,5]");
        assert_eq!(sel("$.arr[0,2]", &d), "[0,2]");
        assert_eq!(sel("$.b.c[*].a", &d), "[3,4]");
        assert_eq!(sel("$.b.c[?(@.a > 3)].a", &d), "[4]");
        assert_eq!(sel("$.b.c[?(@.x)].a", &d), "[4]");
        assert_eq!(sel("$.arr[?(@ > 1 && @ < 4 || @ == 0)]", &d), "[0,2,3]");
        assert_eq!(sel("$.arr[?(@ >= $.a)]", &d), "[1,2,3,4,5]");
        assert_eq!(sel("$.*.a", &d), "[2]");
        assert_eq!(sel("$..[?(@.a==4)].x", &d), "[true]");
        let paths: Vec<_> = compile("$..a")
            .unwrap()
            .select_paths(&d)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(
            paths[1],
            vec![PathElem::Key("b".into()), PathElem::Key("a".into())]
        );
        assert_eq!(
            paths[3],
            vec![
                PathElem::Key("b".into()),
                PathElem::Key("c".into()),
                PathElem::Index(1),
                PathElem::Key("a".into())
            ]
        );
    }

    #[test]
    fn regex_filter() {
        let d = doc(r#"[{"n":"foo"},{"n":"Foo"},{"n":"bar"}]"#);
        assert_eq!(sel(r#"$[?(@.n =~ "^f")].n"#, &d), r#"["foo"]"#);
        assert_eq!(sel(r#"$[?(@.n =~ "(?i)^f")].n"#, &d), r#"["foo","Foo"]"#);
    }

    proptest::proptest! {
        /// Any text made of path characters compiles or fails cleanly, and a compiled
        /// query walks a document without panicking.
        #[test]
        fn random_paths_never_panic(p in "[$@.\\[\\]*?()'\"a-c0-9:,=<>!~&| -]{0,24}") {
            let d = doc(r#"{"a":[1,{"b":[2,3]},"c"],"b":{"a":{"c":1}},"c":null}"#);
            let _ = PathArg::new(&p);
            if let Ok(q) = compile(&p) {
                let _ = q.select_paths(&d);
                let _ = q.is_static();
            }
        }
    }
}
