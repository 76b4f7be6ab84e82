//! Label selectors: Kubernetes' `labels.Parse` grammar, matching, canonical rendering and
//! conversion from `metav1.LabelSelector`.
//!
//! Grammar (whitespace — space, tab, CR, LF — separates tokens and is otherwise ignored):
//!
//! ```text
//! selector    ::= "" | requirement ("," requirement)*
//! requirement ::= ["!"] KEY
//!               | KEY ("=" | "==" | "!=" | ">" | "<") [VALUE]
//!               | KEY ("in" | "notin") "(" [VALUE] ("," [VALUE])* ")"
//! ```
//!
//! KEY is a qualified name (`[dns-subdomain "/"] name`), VALUE a label value; both are validated
//! with Kubernetes' messages. Errors carry the exact text upstream returns (HTTP 400 at the API).

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as metav1;

use super::SelectorError;
use super::validation::{BadValue, aggregate, field_invalid, label_key_errors, label_value_errors};

/// A set of labels, as stored in `metadata.labels`.
pub type Labels = BTreeMap<String, String>;

/// The operator of one label requirement (`selection.Operator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `key=value`: the label exists and equals the value.
    Equals,
    /// `key==value`: same as [`Operator::Equals`], kept distinct for rendering.
    DoubleEquals,
    /// `key!=value`: the label is absent or differs.
    NotEquals,
    /// `key in (a,b)`: the label exists and is one of the values.
    In,
    /// `key notin (a,b)`: the label is absent or none of the values.
    NotIn,
    /// `key`: the label exists.
    Exists,
    /// `!key`: the label does not exist.
    DoesNotExist,
    /// `key>n`: the label exists, parses as an `i64` and is greater than `n`.
    GreaterThan,
    /// `key<n`: the label exists, parses as an `i64` and is less than `n`.
    LessThan,
}

impl Operator {
    /// The operator's name as Kubernetes spells it (`=`, `==`, `!=`, `in`, `notin`, `exists`,
    /// `!`, `gt`, `lt`).
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => "in",
            Operator::NotIn => "notin",
            Operator::Exists => "exists",
            Operator::DoesNotExist => "!",
            Operator::GreaterThan => "gt",
            Operator::LessThan => "lt",
        }
    }
}

/// One requirement of a label selector: a key, an operator and its values.
///
/// Constructed only through validation ([`Requirement::new`] or parsing), so keys and values are
/// always valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

/// Go's `strconv.ParseInt(s, 10, 64)`: optional sign, ASCII digits, in range.
fn parse_go_i64(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i64>().ok()
}

impl Requirement {
    /// Builds a validated requirement, with the checks and messages of Kubernetes'
    /// `labels.NewRequirement`: the key must be a qualified name; `in`/`notin` need at least one
    /// value; `=`, `==`, `!=` exactly one; exists/does-not-exist none; `gt`/`lt` exactly one
    /// integer; every value must be a valid label value. Several problems are reported together
    /// (`[a, b]`).
    pub fn new(
        key: impl Into<String>,
        operator: Operator,
        values: Vec<String>,
    ) -> Result<Self, SelectorError> {
        Self::build(key.into(), operator, values, false)
    }

    /// `nil_values` selects Go's rendering of a nil slice in the error messages (what
    /// `LabelSelectorAsSelector` passes for an absent `values` list).
    fn build(
        key: String,
        operator: Operator,
        values: Vec<String>,
        nil_values: bool,
    ) -> Result<Self, SelectorError> {
        let mut errs = Vec::new();
        let key_errs = label_key_errors(&key);
        if !key_errs.is_empty() {
            errs.push(field_invalid(
                "key",
                BadValue::Str(&key),
                &key_errs.join("; "),
            ));
        }
        let vals = BadValue::StrList {
            values: &values,
            nil: nil_values && values.is_empty(),
        };
        match operator {
            Operator::In | Operator::NotIn => {
                if values.is_empty() {
                    errs.push(field_invalid(
                        "values",
                        vals,
                        "for 'in', 'notin' operators, values set can't be empty",
                    ));
                }
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals => {
                if values.len() != 1 {
                    errs.push(field_invalid(
                        "values",
                        vals,
                        "exact-match compatibility requires one single value",
                    ));
                }
            }
            Operator::Exists | Operator::DoesNotExist => {
                if !values.is_empty() {
                    errs.push(field_invalid(
                        "values",
                        vals,
                        "values set must be empty for exists and does not exist",
                    ));
                }
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(field_invalid(
                        "values",
                        vals,
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if parse_go_i64(v).is_none() {
                        errs.push(field_invalid(
                            &format!("values[{i}]"),
                            BadValue::Str(v),
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
        }
        for (i, v) in values.iter().enumerate() {
            let verrs = label_value_errors(v);
            if !verrs.is_empty() {
                errs.push(field_invalid(
                    &format!("values[{i}][{key}]"),
                    BadValue::Str(v),
                    &verrs.join("; "),
                ));
            }
        }
        match aggregate(errs) {
            Some(msg) => Err(SelectorError::new(msg)),
            None => Ok(Requirement {
                key,
                operator,
                values,
            }),
        }
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values in the order given (parsed requirements have them sorted and de-duplicated).
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether `labels` satisfy this requirement (Kubernetes' `Requirement.Matches`): `in`/`=`
    /// need the label present with one of the values; `notin`/`!=` match an absent label;
    /// `gt`/`lt` need the label to parse as an integer.
    pub fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                value.is_some_and(|v| self.values.contains(v))
            }
            Operator::NotIn | Operator::NotEquals => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(have), [want]) =
                    (value.and_then(|v| parse_go_i64(v)), self.values.as_slice())
                else {
                    return false;
                };
                let Some(want) = parse_go_i64(want) else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    /// Kubernetes' `Requirement.String()`: `!key`, `key`, `key=v`, `key==v`, `key!=v`, `key>v`,
    /// `key<v`, `key in (a,b)`, `key notin (a,b)` with the values sorted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let (op, parens) = match self.operator {
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
            Operator::Equals => ("=", false),
            Operator::DoubleEquals => ("==", false),
            Operator::NotEquals => ("!=", false),
            Operator::GreaterThan => (">", false),
            Operator::LessThan => ("<", false),
            Operator::In => (" in ", true),
            Operator::NotIn => (" notin ", true),
        };
        f.write_str(op)?;
        if parens {
            f.write_str("(")?;
        }
        let mut sorted: Vec<&str> = self.values.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        f.write_str(&sorted.join(","))?;
        if parens {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A parsed label selector: the AND of its requirements, kept sorted by key.
///
/// The empty selector ([`LabelSelector::everything`]) matches every label set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// The selector that matches everything (no requirements).
    pub fn everything() -> Self {
        Self::default()
    }

    /// Parses the string form of a selector (Kubernetes' `labels.Parse`), e.g.
    /// `environment in (production, qa),tier notin (frontend),!canary,app=web`.
    ///
    /// The empty (or all-whitespace) string yields [`LabelSelector::everything`]. Requirements
    /// are sorted by key (stably); `in`/`notin` value sets are sorted and de-duplicated. Errors
    /// carry Kubernetes' exact message (for example `unable to parse requirement: <nil>:
    /// Invalid value: "a b": ...` or `found ',', expected: identifier after ','`).
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let tokens = lex(s);
        let mut parser = Parser { tokens, pos: 0 };
        let mut requirements = parser.parse()?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements })
    }

    /// Builds a selector from already validated requirements (sorted by key here).
    pub fn from_requirements(mut requirements: Vec<Requirement>) -> Self {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        LabelSelector { requirements }
    }

    /// Whether the selector has no requirements (and so matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether every requirement matches `labels`.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// If the first requirement on `label` pins it to a single value (`=`, `==` or a one-value
    /// `in`), that value (Kubernetes' `RequiresExactMatch`).
    pub fn requires_exact_match(&self, label: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == label)?;
        match (r.operator, r.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [v]) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for LabelSelector {
    /// The canonical string form: requirements (sorted by key) joined with `,`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for LabelSelector {
    type Err = SelectorError;

    /// Same as [`LabelSelector::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<&metav1::LabelSelector> for LabelSelector {
    type Error = SelectorError;

    /// Kubernetes' `metav1.LabelSelectorAsSelector`: `matchLabels` become `key=value`
    /// requirements and `matchExpressions` use the operators `In`, `NotIn`, `Exists`,
    /// `DoesNotExist` (anything else: `"Foo" is not a valid label selector operator`), each
    /// validated like [`Requirement::new`]. An empty selector matches everything.
    fn try_from(sel: &metav1::LabelSelector) -> Result<Self, Self::Error> {
        let mut reqs = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            reqs.push(Requirement::build(
                k.clone(),
                Operator::Equals,
                vec![v.clone()],
                false,
            )?);
        }
        for expr in sel.match_expressions.iter().flatten() {
            let op = match expr.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(SelectorError::new(format!(
                        "{} is not a valid label selector operator",
                        super::quote::go_quote(other)
                    )));
                }
            };
            let values = expr.values.clone().unwrap_or_default();
            reqs.push(Requirement::build(expr.key.clone(), op, values, true)?);
        }
        Ok(LabelSelector::from_requirements(reqs))
    }
}

// ---------------------------------------------------------------------------------------------
// Lexer: byte-oriented like upstream. A NUL byte reads as "end of input" at that point, exactly
// as the Go lexer's `read()` does; multi-byte UTF-8 sequences are never split because all
// delimiters are ASCII.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn keyword(s: &[u8]) -> Option<Tok> {
    Some(match s {
        b")" => Tok::ClosedPar,
        b"," => Tok::Comma,
        b"!" => Tok::DoesNotExist,
        b"==" => Tok::DoubleEquals,
        b"=" => Tok::Equals,
        b">" => Tok::GreaterThan,
        b"in" => Tok::In,
        b"<" => Tok::LessThan,
        b"!=" => Tok::NotEquals,
        b"notin" => Tok::NotIn,
        b"(" => Tok::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    /// The next byte, or 0 at the end (without advancing).
    fn read(&mut self) -> u8 {
        match self.s.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                b
            }
            None => 0,
        }
    }

    fn unread(&mut self) {
        self.pos = self.pos.saturating_sub(1);
    }

    fn lex(&mut self) -> (Tok, String) {
        let mut ch = self.read();
        while is_whitespace(ch) {
            ch = self.read();
        }
        if ch == 0 {
            return (Tok::EndOfString, String::new());
        }
        self.unread();
        if is_special(ch) {
            self.scan_special()
        } else {
            self.scan_identifier()
        }
    }

    fn scan_identifier(&mut self) -> (Tok, String) {
        let start = self.pos;
        let mut end = start;
        loop {
            let ch = self.read();
            if ch == 0 {
                break;
            }
            if is_special(ch) || is_whitespace(ch) {
                self.unread();
                break;
            }
            end = self.pos;
        }
        let bytes = &self.s[start..end];
        let lit = String::from_utf8_lossy(bytes).into_owned();
        match keyword(bytes) {
            Some(tok) => (tok, lit),
            None => (Tok::Identifier, lit),
        }
    }

    fn scan_special(&mut self) -> (Tok, String) {
        let start = self.pos;
        let mut last: Option<(Tok, usize)> = None;
        loop {
            let ch = self.read();
            if ch == 0 {
                break;
            }
            if !is_special(ch) {
                self.unread();
                break;
            }
            match keyword(&self.s[start..self.pos]) {
                Some(tok) => last = Some((tok, self.pos)),
                None if last.is_some() => {
                    self.unread();
                    break;
                }
                None => {}
            }
        }
        match last {
            Some((tok, end)) => (
                tok,
                String::from_utf8_lossy(&self.s[start..end]).into_owned(),
            ),
            // Unreachable in practice (every special byte alone is a token); kept total.
            None => (Tok::EndOfString, String::new()),
        }
    }
}

fn lex(s: &str) -> Vec<(Tok, String)> {
    let mut lexer = Lexer {
        s: s.as_bytes(),
        pos: 0,
    };
    let mut out = Vec::new();
    loop {
        let item = lexer.lex();
        let end = item.0 == Tok::EndOfString;
        out.push(item);
        if end {
            return out;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parser.

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    KeyAndOperator,
    Values,
}

struct Parser {
    tokens: Vec<(Tok, String)>,
    pos: usize,
}

const BINARY_OPERATORS: &str = "in, notin, =, ==, !=, gt, lt";

fn err(msg: String) -> SelectorError {
    SelectorError::new(msg)
}

impl Parser {
    fn peek(&self, ctx: Ctx) -> (Tok, String) {
        let (tok, lit) = self
            .tokens
            .get(self.pos)
            .cloned()
            .unwrap_or((Tok::EndOfString, String::new()));
        match (ctx, tok) {
            (Ctx::Values, Tok::In | Tok::NotIn) => (Tok::Identifier, lit),
            _ => (tok, lit),
        }
    }

    fn next(&mut self, ctx: Ctx) -> (Tok, String) {
        let item = self.peek(ctx);
        // Never run past the final EndOfString token.
        if self.pos + 1 < self.tokens.len() {
            self.pos += 1;
        }
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut reqs = Vec::new();
        loop {
            let (tok, lit) = self.peek(Ctx::Values);
            match tok {
                Tok::Identifier | Tok::DoesNotExist => {
                    let r = self.parse_requirement().map_err(|e| {
                        err(format!("unable to parse requirement: {}", e.message()))
                    })?;
                    reqs.push(r);
                    let (t, l) = self.next(Ctx::Values);
                    match t {
                        Tok::EndOfString => return Ok(reqs),
                        Tok::Comma => {
                            let (t2, l2) = self.peek(Ctx::Values);
                            if t2 != Tok::Identifier && t2 != Tok::DoesNotExist {
                                return Err(err(format!(
                                    "found '{l2}', expected: identifier after ','"
                                )));
                            }
                        }
                        _ => {
                            return Err(err(format!(
                                "found '{l}', expected: ',' or 'end of string'"
                            )));
                        }
                    }
                }
                Tok::EndOfString => return Ok(reqs),
                _ => {
                    return Err(err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    )));
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, SelectorError> {
        // Key, with the operator inferred for `key` and `!key`.
        let mut op = None;
        let (mut tok, mut lit) = self.next(Ctx::Values);
        if tok == Tok::DoesNotExist {
            op = Some(Operator::DoesNotExist);
            (tok, lit) = self.next(Ctx::Values);
        }
        if tok != Tok::Identifier {
            return Err(err(format!("found '{lit}', expected: identifier")));
        }
        let key = lit;
        let key_errs = label_key_errors(&key);
        if !key_errs.is_empty() {
            return Err(err(field_invalid(
                "<nil>",
                BadValue::Str(&key),
                &key_errs.join("; "),
            )));
        }
        let (la, _) = self.peek(Ctx::Values);
        if matches!(la, Tok::EndOfString | Tok::Comma) && op.is_none() {
            op = Some(Operator::Exists);
        }
        if let Some(op) = op {
            return Requirement::build(key, op, Vec::new(), false);
        }

        let (tok, lit) = self.next(Ctx::KeyAndOperator);
        let op = match tok {
            Tok::In => Operator::In,
            Tok::Equals => Operator::Equals,
            Tok::DoubleEquals => Operator::DoubleEquals,
            Tok::GreaterThan => Operator::GreaterThan,
            Tok::LessThan => Operator::LessThan,
            Tok::NotIn => Operator::NotIn,
            Tok::NotEquals => Operator::NotEquals,
            _ => return Err(err(format!("found '{lit}', expected: {BINARY_OPERATORS}"))),
        };
        let values = match op {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        Requirement::build(key, op, values, false)
    }

    /// `( [v] (, [v])* )`; the result is sorted and de-duplicated like Go's `sets.String.List()`.
    fn parse_values(&mut self) -> Result<Vec<String>, SelectorError> {
        let (tok, lit) = self.next(Ctx::Values);
        if tok != Tok::OpenPar {
            return Err(err(format!("found '{lit}' expected: '('")));
        }
        let (tok, lit) = self.peek(Ctx::Values);
        let mut set: Vec<String> = match tok {
            Tok::Identifier | Tok::Comma => {
                let s = self.parse_identifiers_list()?;
                let (t, _) = self.next(Ctx::Values);
                if t != Tok::ClosedPar {
                    return Err(err(format!("found '{lit}', expected: ')'")));
                }
                s
            }
            Tok::ClosedPar => {
                self.next(Ctx::Values);
                vec![String::new()]
            }
            _ => {
                return Err(err(format!(
                    "found '{lit}', expected: ',', ')' or identifier"
                )));
            }
        };
        set.sort_unstable();
        set.dedup();
        Ok(set)
    }

    fn parse_identifiers_list(&mut self) -> Result<Vec<String>, SelectorError> {
        let mut s: Vec<String> = Vec::new();
        loop {
            let (tok, lit) = self.next(Ctx::Values);
            match tok {
                Tok::Identifier => {
                    s.push(lit);
                    let (t2, l2) = self.peek(Ctx::Values);
                    match t2 {
                        Tok::Comma => continue,
                        Tok::ClosedPar => return Ok(s),
                        _ => return Err(err(format!("found '{l2}', expected: ',' or ')'"))),
                    }
                }
                Tok::Comma => {
                    if s.is_empty() {
                        s.push(String::new());
                    }
                    let (t2, _) = self.peek(Ctx::Values);
                    if t2 == Tok::ClosedPar {
                        s.push(String::new());
                        return Ok(s);
                    }
                    if t2 == Tok::Comma {
                        s.push(String::new());
                    }
                }
                _ => return Err(err(format!("found '{lit}', expected: ',', or identifier"))),
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<Vec<String>, SelectorError> {
        let (tok, _) = self.peek(Ctx::Values);
        if matches!(tok, Tok::EndOfString | Tok::Comma) {
            return Ok(vec![String::new()]);
        }
        let (tok, lit) = self.next(Ctx::Values);
        if tok == Tok::Identifier {
            Ok(vec![lit])
        } else {
            Err(err(format!("found '{lit}', expected: identifier")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse_ok(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn parses_upstream_valid_cases() {
        // From upstream TestSelectorParse / TestToString.
        let cases = [
            ("", ""),
            ("x=a,y=b,z=c", "x=a,y=b,z=c"),
            ("x!=a,y=b", "x!=a,y=b"),
            ("x=,z= ", "x=,z="),
            ("x= ,z= ", "x=,z="),
            ("!x", "!x"),
            ("x>1", "x>1"),
            ("x<7", "x<7"),
            (
                "x in (abc,def),y notin (mno)",
                "x in (abc,def),y notin (mno)",
            ),
            ("x in (def, abc)", "x in (abc,def)"),
            (
                "x in (foo,,baz),y,z notin ()",
                "x in (,baz,foo),y,z notin ()",
            ),
            ("w in (),x", "w in (),x"),
            ("x notin (a,b,c)", "x notin (a,b,c)"),
            ("  x  ==  a  ", "x==a"),
            ("z=c,x=a,y=b", "x=a,y=b,z=c"),
            ("x in (in),y=notin", "x in (in),y=notin"),
            ("x in (a,a,b)", "x in (a,b)"),
            ("x in (,)", "x in ()"),
            ("x in (a,)", "x in (,a)"),
            ("example.com/a=b", "example.com/a=b"),
            ("x\t=\na", "x=a"),
        ];
        for (input, want) in cases {
            assert_eq!(parse_ok(input).to_string(), want, "input {input:?}");
        }
        assert!(parse_ok("").is_empty());
        assert!(parse_ok("   ").is_empty());
    }

    #[test]
    fn rejects_upstream_invalid_cases() {
        let cases = [
            ("x=a||y=b", "unable to parse requirement: "),
            ("x==a==b", "found '==', expected: ',' or 'end of string'"),
            ("!x=a", "found '=', expected: ',' or 'end of string'"),
            (
                "x<a",
                "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, the value must be an integer",
            ),
            ("x>1,z<5,x", "never"),
            ("a,", "found '', expected: identifier after ','"),
            (
                ",a",
                "found ',', expected: !, identifier, or 'end of string'",
            ),
            (
                "x in a",
                "unable to parse requirement: found 'a' expected: '('",
            ),
            (
                "x in (a b)",
                "unable to parse requirement: found 'b', expected: ',' or ')'",
            ),
            (
                "x in (a",
                "unable to parse requirement: found '', expected: ',' or ')'",
            ),
            (
                "x in ((",
                "unable to parse requirement: found '(', expected: ',', ')' or identifier",
            ),
            (
                "x in (a,=)",
                "unable to parse requirement: found '=', expected: ',', or identifier",
            ),
            (
                "x y",
                "unable to parse requirement: found 'y', expected: in, notin, =, ==, !=, gt, lt",
            ),
            (
                "x=(",
                "unable to parse requirement: found '(', expected: identifier",
            ),
            (
                "!",
                "unable to parse requirement: found '', expected: identifier",
            ),
            (
                "!!x",
                "unable to parse requirement: found '!', expected: identifier",
            ),
            (
                "x!y",
                "unable to parse requirement: found '!', expected: in, notin, =, ==, !=, gt, lt",
            ),
        ];
        for (input, want) in cases {
            let got = LabelSelector::parse(input);
            if want == "never" {
                assert!(got.is_ok(), "{input:?}: {got:?}");
                continue;
            }
            let e = got.expect_err(input);
            assert!(
                e.message().starts_with(want),
                "input {input:?}: got {:?}, want prefix {want:?}",
                e.message()
            );
        }
    }

    #[test]
    fn invalid_key_and_value_messages() {
        let e = LabelSelector::parse("-x=a").unwrap_err();
        assert_eq!(
            e.message(),
            "unable to parse requirement: <nil>: Invalid value: \"-x\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        );
        let e = LabelSelector::parse("x=-a").unwrap_err();
        assert!(
            e.message().starts_with(
                "unable to parse requirement: values[0][x]: Invalid value: \"-a\": a valid label must be an empty string"
            ),
            "{}",
            e.message()
        );
        let long = "a".repeat(64);
        let e = LabelSelector::parse(&format!("x in ({long},-b)")).unwrap_err();
        assert!(
            e.message()
                .starts_with("unable to parse requirement: [values[0][x]: Invalid value: \"-b\""),
            "{}",
            e.message()
        );
        assert!(e.message().contains(&format!(
            "values[1][x]: Invalid value: \"{long}\": must be no more than 63 characters"
        )));
        assert!(e.message().ends_with(']'));
    }

    #[test]
    fn matching_follows_kubernetes() {
        let l = labels(&[("x", "a"), ("n", "5")]);
        let cases = [
            ("", true),
            ("x=a", true),
            ("x==a", true),
            ("x=b", false),
            ("x!=a", false),
            ("x!=b", true),
            ("y!=a", true),
            ("y=a", false),
            ("x", true),
            ("y", false),
            ("!y", true),
            ("!x", false),
            ("x in (a,b)", true),
            ("x in (b)", false),
            ("y in (a)", false),
            ("x notin (a)", false),
            ("y notin (a)", true),
            ("x notin (b)", true),
            ("n>4", true),
            ("n>5", false),
            ("n<6", true),
            ("x>1", false),
            ("y<1", false),
            ("x=a,n>1", true),
            ("x=a,n>9", false),
            ("y=", false),
        ];
        for (sel, want) in cases {
            assert_eq!(parse_ok(sel).matches(&l), want, "{sel}");
        }
        assert!(parse_ok("y notin ()").matches(&labels(&[("y", "z")])));
        assert!(!parse_ok("y in ()").matches(&labels(&[("y", "z")])));
        assert!(parse_ok("y in ()").matches(&labels(&[("y", "")])));
    }

    #[test]
    fn nul_byte_ends_lexing_like_go() {
        // Go's lexer reads NUL as end of input: after whitespace it ends the token stream.
        assert_eq!(parse_ok("x \u{0} y=z").to_string(), "x");
        assert!(LabelSelector::parse("x\u{0}y").is_err());
    }

    #[test]
    fn non_ascii_is_an_invalid_key_not_a_panic() {
        let e = LabelSelector::parse("é=1").unwrap_err();
        assert!(e.message().contains("\"é\""), "{}", e.message());
    }

    #[test]
    fn requires_exact_match() {
        let s = parse_ok("a=1,b in (2),c in (3,4),d!=5");
        assert_eq!(s.requires_exact_match("a"), Some("1"));
        assert_eq!(s.requires_exact_match("b"), Some("2"));
        assert_eq!(s.requires_exact_match("c"), None);
        assert_eq!(s.requires_exact_match("d"), None);
        assert_eq!(s.requires_exact_match("e"), None);
    }

    #[test]
    fn new_requirement_validation() {
        let e = Requirement::new("x", Operator::In, vec![]).unwrap_err();
        assert_eq!(
            e.message(),
            "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"
        );
        let e = Requirement::new("x", Operator::Equals, vec!["a".into(), "b".into()]).unwrap_err();
        assert_eq!(
            e.message(),
            "values: Invalid value: []string{\"a\", \"b\"}: exact-match compatibility requires one single value"
        );
        let e = Requirement::new("x", Operator::Exists, vec!["a".into()]).unwrap_err();
        assert_eq!(
            e.message(),
            "values: Invalid value: []string{\"a\"}: values set must be empty for exists and does not exist"
        );
        let e = Requirement::new("", Operator::Exists, vec![]).unwrap_err();
        assert!(
            e.message().starts_with(
                "key: Invalid value: \"\": name part must be non-empty; name part must consist"
            ),
            "{}",
            e.message()
        );
        let r = Requirement::new("x", Operator::NotIn, vec!["b".into(), "a".into()]).unwrap();
        assert_eq!(r.to_string(), "x notin (a,b)");
        assert_eq!(r.values(), ["b", "a"]);
    }

    #[test]
    fn from_metav1_label_selector() {
        use metav1::LabelSelectorRequirement as R;
        let sel = metav1::LabelSelector {
            match_labels: Some(
                [
                    ("b".to_string(), "2".to_string()),
                    ("a".to_string(), "1".to_string()),
                ]
                .into(),
            ),
            match_expressions: Some(vec![
                R {
                    key: "c".into(),
                    operator: "In".into(),
                    values: Some(vec!["z".into(), "y".into()]),
                },
                R {
                    key: "d".into(),
                    operator: "NotIn".into(),
                    values: Some(vec!["q".into()]),
                },
                R {
                    key: "e".into(),
                    operator: "Exists".into(),
                    values: None,
                },
                R {
                    key: "f".into(),
                    operator: "DoesNotExist".into(),
                    values: Some(vec![]),
                },
            ]),
        };
        let s = LabelSelector::try_from(&sel).unwrap();
        assert_eq!(s.to_string(), "a=1,b=2,c in (y,z),d notin (q),e,!f");
        assert!(s.matches(&labels(&[("a", "1"), ("b", "2"), ("c", "y"), ("e", "")])));
        assert!(!s.matches(&labels(&[
            ("a", "1"),
            ("b", "2"),
            ("c", "y"),
            ("e", ""),
            ("f", "")
        ])));

        assert!(
            LabelSelector::try_from(&metav1::LabelSelector::default())
                .unwrap()
                .is_empty()
        );

        let bad_op = metav1::LabelSelector {
            match_expressions: Some(vec![R {
                key: "c".into(),
                operator: "Gt".into(),
                values: None,
            }]),
            ..Default::default()
        };
        assert_eq!(
            LabelSelector::try_from(&bad_op).unwrap_err().message(),
            "\"Gt\" is not a valid label selector operator"
        );
        let empty_in = metav1::LabelSelector {
            match_expressions: Some(vec![R {
                key: "c".into(),
                operator: "In".into(),
                values: None,
            }]),
            ..Default::default()
        };
        assert_eq!(
            LabelSelector::try_from(&empty_in).unwrap_err().message(),
            "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty"
        );
        let bad_label = metav1::LabelSelector {
            match_labels: Some([("a".to_string(), "-".to_string())].into()),
            ..Default::default()
        };
        assert!(
            LabelSelector::try_from(&bad_label)
                .unwrap_err()
                .message()
                .starts_with("values[0][a]: Invalid value: \"-\": a valid label")
        );
    }
}
