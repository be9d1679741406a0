//! DynamoDB's expression language, the part the job store speaks: condition, key-condition
//! and filter expressions (comparisons, `BETWEEN`, `IN`, `AND`/`OR`/`NOT`, parentheses,
//! `attribute_exists`, `attribute_not_exists`, `begins_with`, `contains`, `size`) and update
//! expressions (`SET` with `+`, `-`, `if_not_exists`, `list_append`; `REMOVE`; `ADD`;
//! `DELETE`), over top-level attributes. Values are in DynamoDB's JSON wire form
//! (`{"S": "x"}`, `{"N": "1"}`, …), as the SDK sends them. What it does not know it refuses
//! (a `ValidationException`), so an expression the store starts to use cannot pass unread.

use serde_json::{Map, Value};
use std::cmp::Ordering;

/// An item: attribute name → wire value.
pub type Item = Map<String, Value>;

/// What the expression names: `#placeholders` and `:values`.
#[derive(Clone, Copy)]
pub struct Names<'a> {
    pub names: Option<&'a Map<String, Value>>,
    pub values: Option<&'a Map<String, Value>>,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Name(String),
    Value(String),
    Op(&'static str),
}

fn tokens(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let word = |i: &mut usize| {
        let start = *i;
        while *i < chars.len() && (chars[*i].is_ascii_alphanumeric() || chars[*i] == '_') {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        if let Some(op) = ["<>", "<=", ">="].into_iter().find(|op| *op == two) {
            out.push(Tok::Op(op));
            i += 2;
            continue;
        }
        if let Some(op) = ["(", ")", ",", "=", "<", ">", "+", "-", ".", "[", "]"]
            .into_iter()
            .find(|op| op.starts_with(c))
        {
            out.push(Tok::Op(op));
            i += 1;
            continue;
        }
        if c == '#' || c == ':' {
            i += 1;
            let w = word(&mut i);
            if w.is_empty() {
                return Err(format!("a lone {c:?} in {src:?}"));
            }
            out.push(if c == '#' {
                Tok::Name(w)
            } else {
                Tok::Value(w)
            });
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            out.push(Tok::Ident(word(&mut i)));
            continue;
        }
        return Err(format!("unexpected {c:?} in {src:?}"));
    }
    Ok(out)
}

/// An operand: an attribute, a value, or the size of an attribute.
#[derive(Clone, Debug)]
enum Operand {
    Path(String),
    Value(Value),
    Size(String),
}

#[derive(Clone, Debug)]
enum Cond {
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
    Exists(String),
    NotExists(String),
    BeginsWith(Operand, Operand),
    Contains(Operand, Operand),
    Compare(Operand, &'static str, Operand),
    Between(Operand, Operand, Operand),
    In(Operand, Vec<Operand>),
}

/// A `SET` right-hand side.
#[derive(Clone, Debug)]
enum SetValue {
    Operand(Operand),
    IfNotExists(String, Box<SetValue>),
    ListAppend(Box<SetValue>, Box<SetValue>),
    Plus(Box<SetValue>, Box<SetValue>),
    Minus(Box<SetValue>, Box<SetValue>),
}

#[derive(Clone, Debug)]
enum Action {
    Set(String, SetValue),
    Remove(String),
    Add(String, Value),
    Delete(String, Value),
}

struct Parser<'a> {
    toks: Vec<Tok>,
    at: usize,
    names: Names<'a>,
    src: &'a str,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str, names: Names<'a>) -> Result<Self, String> {
        Ok(Self {
            toks: tokens(src)?,
            at: 0,
            names,
            src,
        })
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at token {} of {:?}", self.at, self.src))
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn eat_keyword(&mut self, kw: &str) -> bool {
        let yes = self.keyword(kw);
        self.at += usize::from(yes);
        yes
    }

    fn eat_op(&mut self, op: &str) -> bool {
        let yes = matches!(self.peek(), Some(Tok::Op(o)) if *o == op);
        self.at += usize::from(yes);
        yes
    }

    fn expect_op(&mut self, op: &str) -> Result<(), String> {
        if self.eat_op(op) {
            Ok(())
        } else {
            self.err(&format!("expected {op:?}"))
        }
    }

    fn done(&self) -> Result<(), String> {
        if self.at == self.toks.len() {
            Ok(())
        } else {
            self.err("unexpected trailing input")
        }
    }

    /// A top-level attribute: a name or a `#placeholder` (nested paths are not spoken here).
    fn path(&mut self) -> Result<String, String> {
        let name = match self.peek().cloned() {
            Some(Tok::Ident(w)) => w,
            Some(Tok::Name(n)) => match self.names.names.and_then(|m| m.get(&format!("#{n}"))) {
                Some(Value::String(s)) => s.clone(),
                _ => return self.err(&format!("#{n} is not in ExpressionAttributeNames")),
            },
            _ => return self.err("expected an attribute"),
        };
        self.at += 1;
        if matches!(self.peek(), Some(Tok::Op("." | "["))) {
            return self.err("nested paths are not supported by the fake");
        }
        Ok(name)
    }

    fn value(&mut self) -> Result<Value, String> {
        match self.peek().cloned() {
            Some(Tok::Value(v)) => {
                self.at += 1;
                match self.names.values.and_then(|m| m.get(&format!(":{v}"))) {
                    Some(value) => Ok(value.clone()),
                    None => self.err(&format!(":{v} is not in ExpressionAttributeValues")),
                }
            }
            _ => self.err("expected a :value"),
        }
    }

    fn operand(&mut self) -> Result<Operand, String> {
        match self.peek() {
            Some(Tok::Value(_)) => Ok(Operand::Value(self.value()?)),
            Some(Tok::Ident(w))
                if w == "size" && self.toks.get(self.at + 1) == Some(&Tok::Op("(")) =>
            {
                self.at += 2;
                let p = self.path()?;
                self.expect_op(")")?;
                Ok(Operand::Size(p))
            }
            _ => Ok(Operand::Path(self.path()?)),
        }
    }

    fn condition(&mut self) -> Result<Cond, String> {
        let mut left = self.conjunction()?;
        while self.eat_keyword("OR") {
            left = Cond::Or(Box::new(left), Box::new(self.conjunction()?));
        }
        Ok(left)
    }

    fn conjunction(&mut self) -> Result<Cond, String> {
        let mut left = self.negation()?;
        while self.eat_keyword("AND") {
            left = Cond::And(Box::new(left), Box::new(self.negation()?));
        }
        Ok(left)
    }

    fn negation(&mut self) -> Result<Cond, String> {
        if self.eat_keyword("NOT") {
            return Ok(Cond::Not(Box::new(self.negation()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Cond, String> {
        if self.eat_op("(") {
            let c = self.condition()?;
            self.expect_op(")")?;
            return Ok(c);
        }
        let function = match self.peek() {
            Some(Tok::Ident(w)) if self.toks.get(self.at + 1) == Some(&Tok::Op("(")) => {
                Some(w.clone())
            }
            _ => None,
        };
        match function.as_deref() {
            Some(f @ ("attribute_exists" | "attribute_not_exists")) => {
                self.at += 2;
                let p = self.path()?;
                self.expect_op(")")?;
                return Ok(if f == "attribute_exists" {
                    Cond::Exists(p)
                } else {
                    Cond::NotExists(p)
                });
            }
            Some(f @ ("begins_with" | "contains")) => {
                self.at += 2;
                let a = self.operand()?;
                self.expect_op(",")?;
                let b = self.operand()?;
                self.expect_op(")")?;
                return Ok(if f == "begins_with" {
                    Cond::BeginsWith(a, b)
                } else {
                    Cond::Contains(a, b)
                });
            }
            Some("size") | None => {}
            Some(f) => return self.err(&format!("the function {f} is not supported by the fake")),
        }
        let left = self.operand()?;
        if self.eat_keyword("BETWEEN") {
            let low = self.operand()?;
            if !self.eat_keyword("AND") {
                return self.err("expected AND in BETWEEN");
            }
            return Ok(Cond::Between(left, low, self.operand()?));
        }
        if self.eat_keyword("IN") {
            self.expect_op("(")?;
            let mut list = vec![self.operand()?];
            while self.eat_op(",") {
                list.push(self.operand()?);
            }
            self.expect_op(")")?;
            return Ok(Cond::In(left, list));
        }
        let op = match self.peek() {
            Some(Tok::Op(op @ ("=" | "<>" | "<" | "<=" | ">" | ">="))) => *op,
            _ => return self.err("expected a comparison"),
        };
        self.at += 1;
        Ok(Cond::Compare(left, op, self.operand()?))
    }

    fn set_value(&mut self) -> Result<SetValue, String> {
        let left = self.set_term()?;
        if self.eat_op("+") {
            return Ok(SetValue::Plus(Box::new(left), Box::new(self.set_term()?)));
        }
        if self.eat_op("-") {
            return Ok(SetValue::Minus(Box::new(left), Box::new(self.set_term()?)));
        }
        Ok(left)
    }

    fn set_term(&mut self) -> Result<SetValue, String> {
        let function = match self.peek() {
            Some(Tok::Ident(w)) if self.toks.get(self.at + 1) == Some(&Tok::Op("(")) => {
                Some(w.clone())
            }
            _ => None,
        };
        match function.as_deref() {
            Some("if_not_exists") => {
                self.at += 2;
                let p = self.path()?;
                self.expect_op(",")?;
                let v = self.set_value()?;
                self.expect_op(")")?;
                Ok(SetValue::IfNotExists(p, Box::new(v)))
            }
            Some("list_append") => {
                self.at += 2;
                let a = self.set_value()?;
                self.expect_op(",")?;
                let b = self.set_value()?;
                self.expect_op(")")?;
                Ok(SetValue::ListAppend(Box::new(a), Box::new(b)))
            }
            Some(f) => self.err(&format!("the function {f} is not supported in SET")),
            None => Ok(SetValue::Operand(self.operand()?)),
        }
    }

    fn update(&mut self) -> Result<Vec<Action>, String> {
        let mut actions = Vec::new();
        let mut seen = Vec::new();
        while self.at < self.toks.len() {
            let clause = match self.peek() {
                Some(Tok::Ident(w)) => w.to_ascii_uppercase(),
                _ => return self.err("expected SET, REMOVE, ADD or DELETE"),
            };
            if seen.contains(&clause) {
                return self.err(&format!("{clause} appears twice"));
            }
            seen.push(clause.clone());
            self.at += 1;
            loop {
                let path = self.path()?;
                actions.push(match clause.as_str() {
                    "SET" => {
                        self.expect_op("=")?;
                        Action::Set(path, self.set_value()?)
                    }
                    "REMOVE" => Action::Remove(path),
                    "ADD" => Action::Add(path, self.value()?),
                    "DELETE" => Action::Delete(path, self.value()?),
                    other => return self.err(&format!("unknown clause {other}")),
                });
                if !self.eat_op(",") {
                    break;
                }
            }
        }
        if actions.is_empty() {
            return self.err("an empty update expression");
        }
        Ok(actions)
    }
}

/// A wire value's type tag and content.
fn typed(v: &Value) -> Option<(&str, &Value)> {
    let o = v.as_object()?;
    (o.len() == 1).then(|| o.iter().next().map(|(k, v)| (k.as_str(), v)))?
}

fn number(v: &Value) -> Option<f64> {
    match typed(v)? {
        ("N", Value::String(n)) => n.parse().ok(),
        _ => None,
    }
}

/// DynamoDB's ordering of two values of one scalar type (`None`: not comparable).
fn order(a: &Value, b: &Value) -> Option<Ordering> {
    match (typed(a)?, typed(b)?) {
        (("N", _), ("N", _)) => number(a)?.partial_cmp(&number(b)?),
        (("S", Value::String(x)), ("S", Value::String(y))) => Some(x.as_bytes().cmp(y.as_bytes())),
        (("B", Value::String(x)), ("B", Value::String(y))) => Some(x.cmp(y)),
        _ => None,
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (typed(a), typed(b)) {
        (Some(("N", _)), Some(("N", _))) => number(a) == number(b),
        (Some((ta, x)), Some((tb, y))) if ta == tb && ta.ends_with('S') && ta.len() == 2 => {
            let set = |v: &Value| {
                let mut s: Vec<String> = v
                    .as_array()
                    .map(|a| a.iter().map(|e| e.to_string()).collect())
                    .unwrap_or_default();
                s.sort();
                s
            };
            set(x) == set(y)
        }
        _ => a == b,
    }
}

fn size(v: &Value) -> Option<Value> {
    let n = match typed(v)? {
        ("S", Value::String(s)) => s.len(),
        ("B", Value::String(s)) => s.len() * 3 / 4,
        ("L" | "SS" | "NS" | "BS", Value::Array(a)) => a.len(),
        ("M", Value::Object(m)) => m.len(),
        _ => return None,
    };
    Some(serde_json::json!({ "N": n.to_string() }))
}

fn resolve(item: &Item, o: &Operand) -> Option<Value> {
    match o {
        Operand::Path(p) => item.get(p).cloned(),
        Operand::Value(v) => Some(v.clone()),
        Operand::Size(p) => size(item.get(p)?),
    }
}

fn holds(item: &Item, c: &Cond) -> bool {
    match c {
        Cond::And(a, b) => holds(item, a) && holds(item, b),
        Cond::Or(a, b) => holds(item, a) || holds(item, b),
        Cond::Not(a) => !holds(item, a),
        Cond::Exists(p) => item.contains_key(p),
        Cond::NotExists(p) => !item.contains_key(p),
        Cond::BeginsWith(a, b) => match (resolve(item, a), resolve(item, b)) {
            (Some(x), Some(y)) => match (typed(&x), typed(&y)) {
                (Some(("S", Value::String(x))), Some(("S", Value::String(y)))) => {
                    x.starts_with(y.as_str())
                }
                _ => false,
            },
            _ => false,
        },
        Cond::Contains(a, b) => match (resolve(item, a), resolve(item, b)) {
            (Some(x), Some(y)) => match (typed(&x), typed(&y)) {
                (Some(("S", Value::String(x))), Some(("S", Value::String(y)))) => {
                    x.contains(y.as_str())
                }
                (Some(("L" | "SS" | "NS", Value::Array(xs))), _) => {
                    let inner = typed(&y).map(|(_, v)| v.clone());
                    xs.iter().any(|e| equal(e, &y) || Some(e) == inner.as_ref())
                }
                _ => false,
            },
            _ => false,
        },
        Cond::Compare(a, op, b) => {
            let (x, y) = (resolve(item, a), resolve(item, b));
            match *op {
                "=" => matches!((&x, &y), (Some(x), Some(y)) if equal(x, y)),
                // A missing attribute is not equal to anything.
                "<>" => !matches!((&x, &y), (Some(x), Some(y)) if equal(x, y)),
                _ => match (x, y) {
                    (Some(x), Some(y)) => order(&x, &y).is_some_and(|o| match *op {
                        "<" => o == Ordering::Less,
                        "<=" => o != Ordering::Greater,
                        ">" => o == Ordering::Greater,
                        _ => o != Ordering::Less,
                    }),
                    _ => false,
                },
            }
        }
        Cond::Between(a, lo, hi) => {
            match (resolve(item, a), resolve(item, lo), resolve(item, hi)) {
                (Some(x), Some(l), Some(h)) => {
                    order(&x, &l).is_some_and(|o| o != Ordering::Less)
                        && order(&x, &h).is_some_and(|o| o != Ordering::Greater)
                }
                _ => false,
            }
        }
        Cond::In(a, list) => resolve(item, a).is_some_and(|x| {
            list.iter()
                .any(|o| resolve(item, o).is_some_and(|y| equal(&x, &y)))
        }),
    }
}

/// A parsed condition (or key-condition, or filter) expression.
pub struct Condition(Cond);

impl Condition {
    pub fn parse(src: &str, names: Names<'_>) -> Result<Condition, String> {
        let mut p = Parser::new(src, names)?;
        let c = p.condition()?;
        p.done()?;
        Ok(Condition(c))
    }

    /// Whether `item` (an empty one for an item that does not exist) meets it.
    pub fn holds(&self, item: &Item) -> bool {
        holds(item, &self.0)
    }

    /// For a key condition: the hash key's attribute and value, and the sort key's condition
    /// if any (`= v`, `begins_with`, `BETWEEN`, `<` …), checked by [`Condition::holds`].
    pub fn hash_key(&self) -> Option<(String, Value)> {
        fn find(c: &Cond) -> Option<(String, Value)> {
            match c {
                Cond::And(a, b) => find(a).or_else(|| find(b)),
                Cond::Compare(Operand::Path(p), "=", Operand::Value(v)) => {
                    Some((p.clone(), v.clone()))
                }
                _ => None,
            }
        }
        find(&self.0)
    }
}

/// A parsed update expression.
pub struct Update(Vec<Action>);

fn set_value(old: &Item, v: &SetValue) -> Result<Value, String> {
    match v {
        SetValue::Operand(o) => {
            resolve(old, o).ok_or_else(|| "an operand of SET names no value".into())
        }
        SetValue::IfNotExists(p, d) => match old.get(p) {
            Some(v) => Ok(v.clone()),
            None => set_value(old, d),
        },
        SetValue::ListAppend(a, b) => {
            let (a, b) = (set_value(old, a)?, set_value(old, b)?);
            match (typed(&a), typed(&b)) {
                (Some(("L", Value::Array(x))), Some(("L", Value::Array(y)))) => {
                    Ok(serde_json::json!({ "L": x.iter().chain(y).cloned().collect::<Vec<_>>() }))
                }
                _ => Err("list_append of a non-list".into()),
            }
        }
        SetValue::Plus(a, b) | SetValue::Minus(a, b) => {
            let (a, b) = (set_value(old, a)?, set_value(old, b)?);
            let (Some(x), Some(y)) = (number(&a), number(&b)) else {
                return Err("arithmetic on a non-number".into());
            };
            let r = if matches!(v, SetValue::Plus(..)) {
                x + y
            } else {
                x - y
            };
            Ok(serde_json::json!({ "N": format_number(r) }))
        }
    }
}

fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

impl Update {
    pub fn parse(src: &str, names: Names<'_>) -> Result<Update, String> {
        let mut p = Parser::new(src, names)?;
        let actions = p.update()?;
        p.done()?;
        Ok(Update(actions))
    }

    /// The attributes the update writes or removes.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|a| match a {
            Action::Set(p, _) | Action::Remove(p) | Action::Add(p, _) | Action::Delete(p, _) => {
                p.as_str()
            }
        })
    }

    /// `old` updated: every right-hand side reads the item as it was before.
    pub fn apply(&self, old: &Item) -> Result<Item, String> {
        let mut new = old.clone();
        for action in &self.0 {
            match action {
                Action::Set(p, v) => {
                    new.insert(p.clone(), set_value(old, v)?);
                }
                Action::Remove(p) => {
                    new.remove(p);
                }
                Action::Add(p, v) => {
                    let added = match (old.get(p), typed(v)) {
                        (None, _) => v.clone(),
                        (Some(cur), Some(("N", _))) => {
                            let (Some(x), Some(y)) = (number(cur), number(v)) else {
                                return Err(format!("ADD {p}: not a number"));
                            };
                            serde_json::json!({ "N": format_number(x + y) })
                        }
                        (Some(cur), Some((t @ ("SS" | "NS" | "BS"), Value::Array(more)))) => {
                            let Some((ct, Value::Array(have))) = typed(cur) else {
                                return Err(format!("ADD {p}: not a set"));
                            };
                            if ct != t {
                                return Err(format!("ADD {p}: a {t} to a {ct}"));
                            }
                            let mut all = have.clone();
                            for m in more {
                                if !all.contains(m) {
                                    all.push(m.clone());
                                }
                            }
                            serde_json::json!({ t: all })
                        }
                        _ => return Err(format!("ADD {p}: only numbers and sets")),
                    };
                    new.insert(p.clone(), added);
                }
                Action::Delete(p, v) => {
                    if let (Some(cur), Some((t, Value::Array(gone)))) = (old.get(p), typed(v))
                        && let Some((ct, Value::Array(have))) = typed(cur)
                    {
                        if ct != t {
                            return Err(format!("DELETE {p}: a {t} from a {ct}"));
                        }
                        let left: Vec<Value> =
                            have.iter().filter(|e| !gone.contains(e)).cloned().collect();
                        if left.is_empty() {
                            new.remove(p);
                        } else {
                            new.insert(p.clone(), serde_json::json!({ t: left }));
                        }
                    }
                }
            }
        }
        Ok(new)
    }
}

/// A projection: the attributes named, or every one.
pub fn project(item: &Item, projection: Option<&str>, names: Names<'_>) -> Result<Item, String> {
    let Some(src) = projection else {
        return Ok(item.clone());
    };
    let mut p = Parser::new(src, names)?;
    let mut keep = vec![p.path()?];
    while p.eat_op(",") {
        keep.push(p.path()?);
    }
    p.done()?;
    Ok(item
        .iter()
        .filter(|(k, _)| keep.contains(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn check(expr: &str, item: Value, values: Value) -> bool {
        let (names, values) = (map(json!({"#s": "status", "#o": "open"})), map(values));
        let n = Names {
            names: Some(&names),
            values: Some(&values),
        };
        Condition::parse(expr, n).unwrap().holds(&map(item))
    }

    #[test]
    fn conditions_compare_typed_values_and_a_missing_attribute_meets_only_not_equal() {
        let item = json!({"pk": {"S": "JOB#1"}, "n": {"N": "5"}, "planned": {"BOOL": false}, "status": {"S": "Active"}});
        assert!(check(
            "attribute_exists(pk) AND planned <> :yes",
            item.clone(),
            json!({":yes": {"BOOL": true}})
        ));
        assert!(check(
            "n < :t AND n >= :five",
            item.clone(),
            json!({":t": {"N": "10"}, ":five": {"N": "5.0"}})
        ));
        assert!(!check(
            "missing < :t",
            item.clone(),
            json!({":t": {"N": "10"}})
        ));
        assert!(check(
            "missing <> :t",
            item.clone(),
            json!({":t": {"N": "10"}})
        ));
        assert!(check(
            "attribute_not_exists(x) OR x < :t",
            item.clone(),
            json!({":t": {"N": "1"}})
        ));
        assert!(check(
            "#s IN (:a, :b)",
            item.clone(),
            json!({":a": {"S": "Failing"}, ":b": {"S": "Active"}})
        ));
        assert!(check(
            "NOT (#s IN (:a)) AND n BETWEEN :lo AND :hi",
            item.clone(),
            json!({":a": {"S": "Failing"}, ":lo": {"N": "1"}, ":hi": {"N": "5"}})
        ));
        assert!(
            !check("n = :s", item.clone(), json!({":s": {"S": "5"}})),
            "a number is not a string"
        );
        assert!(check(
            "begins_with(pk, :p)",
            item,
            json!({":p": {"S": "JOB#"}})
        ));
    }

    #[test]
    fn unknown_syntax_and_unnamed_placeholders_are_refused() {
        let none = Names {
            names: None,
            values: None,
        };
        assert!(Condition::parse("a.b = :v", none).is_err());
        assert!(Condition::parse("#x = a", none).is_err());
        assert!(Condition::parse("attribute_type(a, :t)", none).is_err());
        assert!(Condition::parse("a = b c", none).is_err());
        assert!(Update::parse("SET a = b SET c = d", none).is_err());
    }

    #[test]
    fn updates_read_the_old_item_and_add_append_and_remove() {
        let names = map(json!({"#o": "open"}));
        let values = map(
            json!({":one": {"N": "1"}, ":nil": {"L": []}, ":ev": {"L": [{"S": "e1"}]}, ":z": {"N": "0"}}),
        );
        let n = Names {
            names: Some(&names),
            values: Some(&values),
        };
        let u = Update::parse(
            "ADD done :one SET outbox = list_append(if_not_exists(outbox, :nil), :ev), total = if_not_exists(total, :z) + :one REMOVE #o",
            n,
        )
        .unwrap();
        let old = map(json!({"done": {"N": "41"}, "open": {"S": "OPEN"}, "total": {"N": "2"}}));
        let new = u.apply(&old).unwrap();
        assert_eq!(new["done"], json!({"N": "42"}));
        assert_eq!(new["outbox"], json!({"L": [{"S": "e1"}]}));
        assert_eq!(new["total"], json!({"N": "3"}));
        assert!(!new.contains_key("open"));
        let again = u.apply(&new).unwrap();
        assert_eq!(again["outbox"], json!({"L": [{"S": "e1"}, {"S": "e1"}]}));
        assert_eq!(again["total"], json!({"N": "4"}));
        let sized = Condition::parse(
            "size(outbox) = :two",
            Names {
                names: None,
                values: Some(&map(json!({":two": {"N": "2"}}))),
            },
        )
        .unwrap();
        assert!(sized.holds(&again));
    }
}
