//! ECS's cluster query language, the expressions of `memberOf`
//! constraints:
//!
//! ```text
//! expr    := term (("||" | "or") term)*
//! term    := factor (("&&" | "and") factor)*
//! factor  := ("!" | "not") factor | "(" expr ")" | test
//! test    := subject op [arg]
//! subject := attribute:NAME | agentConnected | agentVersion | ec2InstanceId
//!          | registeredAt | runningTasksCount | task:group
//! op      := == | equals | != | not_equals | > | greater_than | >= | greater_than_equal
//!          | < | less_than | <= | less_than_equal | exists | !exists | not_exists
//!          | in | !in | not_in | =~ | matches | !~ | not_matches
//! arg     := literal | "[" literal ("," literal)* "]"     literals may be 'quoted'
//! ```
//!
//! Parsing checks everything that can be checked without a node (operator
//! and subject fit, regular expressions compile, dates and versions parse)
//! and names the character where an error is. Evaluation asks a [`Node`].

use std::cmp::Ordering;
use std::fmt;

use crate::{Error, Node};

/// What a test looks at on a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    Attribute(String),
    AgentConnected,
    AgentVersion,
    InstanceId,
    RegisteredAt,
    RunningTasksCount,
    TaskGroup,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Exists,
    NotExists,
    In,
    NotIn,
    Matches,
    NotMatches,
}

/// A test's argument, parsed for its subject and operator.
#[derive(Clone, Debug)]
pub enum Arg {
    None,
    Text(String),
    List(Vec<String>),
    /// registeredAt's: epoch seconds.
    Time(f64),
    /// agentVersion's, for ordering: its numeric parts.
    Version(Vec<u64>),
    /// `=~` and `!~`: anchored, as Java's `matches` is.
    Pattern(regex::Regex),
}

#[derive(Clone, Debug)]
pub struct Test {
    pub subject: Subject,
    pub op: Op,
    pub arg: Arg,
}

/// A parsed expression.
#[derive(Clone, Debug)]
pub enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Test(Test),
}

/// The expression as the user wrote it, and what it parsed to.
#[derive(Clone, Debug)]
pub struct Query {
    pub source: String,
    pub expr: Expr,
}

impl PartialEq for Query {
    fn eq(&self, other: &Query) -> bool {
        self.source == other.source
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Attribute(name) => write!(f, "attribute:{name}"),
            Subject::AgentConnected => f.write_str("agentConnected"),
            Subject::AgentVersion => f.write_str("agentVersion"),
            Subject::InstanceId => f.write_str("ec2InstanceId"),
            Subject::RegisteredAt => f.write_str("registeredAt"),
            Subject::RunningTasksCount => f.write_str("runningTasksCount"),
            Subject::TaskGroup => f.write_str("task:group"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    /// `!`, `&&`, `||` and the symbolic operators.
    Symbol(&'static str),
    Word(String),
    Quoted(String),
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::LParen => f.write_str("'('"),
            Token::RParen => f.write_str("')'"),
            Token::LBracket => f.write_str("'['"),
            Token::RBracket => f.write_str("']'"),
            Token::Comma => f.write_str("','"),
            Token::Symbol(s) => write!(f, "'{s}'"),
            Token::Word(w) => write!(f, "'{w}'"),
            Token::Quoted(q) => write!(f, "'{q}' (quoted)"),
        }
    }
}

/// Longest first, so `==` is not read as `=` `=`.
const SYMBOLS: [&str; 11] = [
    "==", "!=", ">=", "<=", "=~", "!~", "&&", "||", ">", "<", "!",
];

/// Characters that end a bare word.
fn ends_word(c: char) -> bool {
    c.is_whitespace() || "()[],'=!<>&|".contains(c)
}

/// Tokens with the character (1-based) each starts at.
fn lex(src: &str) -> Result<Vec<(usize, Token)>, Error> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let at = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let single = match c {
            '(' => Some(Token::LParen),
            ')' => Some(Token::RParen),
            '[' => Some(Token::LBracket),
            ']' => Some(Token::RBracket),
            ',' => Some(Token::Comma),
            _ => None,
        };
        if let Some(t) = single {
            out.push((at, t));
            i += 1;
            continue;
        }
        if c == '\'' {
            let rest = &chars[i + 1..];
            let Some(len) = rest.iter().position(|&c| c == '\'') else {
                return Err(Error::expression(at, "this quote is never closed"));
            };
            out.push((at, Token::Quoted(rest[..len].iter().collect())));
            i += len + 2;
            continue;
        }
        let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
        if let Some(sym) = SYMBOLS.iter().find(|s| rest.starts_with(*s)) {
            out.push((at, Token::Symbol(sym)));
            i += sym.chars().count();
            continue;
        }
        if c == '=' || c == '&' || c == '|' {
            return Err(Error::expression(
                at,
                format!("'{c}' is not an operator (did you mean '{c}{c}'?)"),
            ));
        }
        let len = chars[i..]
            .iter()
            .position(|&c| ends_word(c))
            .unwrap_or(chars.len() - i);
        out.push((at, Token::Word(chars[i..i + len].iter().collect())));
        i += len;
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    next: usize,
    /// Where the input ends, for errors about what is missing.
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next).map(|(_, t)| t)
    }

    fn at(&self) -> usize {
        self.tokens.get(self.next).map_or(self.end, |(at, _)| *at)
    }

    fn bump(&mut self) -> Option<(usize, Token)> {
        let t = self.tokens.get(self.next).cloned();
        self.next += 1;
        t
    }

    fn found(&self) -> String {
        self.peek()
            .map_or_else(|| "the end".to_string(), |t| t.to_string())
    }

    fn fail<T>(&self, expected: &str) -> Result<T, Error> {
        Err(Error::expression(
            self.at(),
            format!("expected {expected}, found {}", self.found()),
        ))
    }

    fn is_keyword(&self, words: &[&str]) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if words.contains(&w.as_str()))
    }

    fn expr(&mut self) -> Result<Expr, Error> {
        let mut left = self.term()?;
        while matches!(self.peek(), Some(Token::Symbol("||"))) || self.is_keyword(&["or"]) {
            self.bump();
            left = Expr::Or(Box::new(left), Box::new(self.term()?));
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Expr, Error> {
        let mut left = self.factor()?;
        while matches!(self.peek(), Some(Token::Symbol("&&"))) || self.is_keyword(&["and"]) {
            self.bump();
            left = Expr::And(Box::new(left), Box::new(self.factor()?));
        }
        Ok(left)
    }

    fn factor(&mut self) -> Result<Expr, Error> {
        if matches!(self.peek(), Some(Token::Symbol("!"))) || self.is_keyword(&["not"]) {
            self.bump();
            return Ok(Expr::Not(Box::new(self.factor()?)));
        }
        if self.peek() == Some(&Token::LParen) {
            self.bump();
            let inner = self.expr()?;
            if self.peek() != Some(&Token::RParen) {
                return self.fail("')'");
            }
            self.bump();
            return Ok(inner);
        }
        self.test().map(Expr::Test)
    }

    fn subject(&mut self) -> Result<Subject, Error> {
        let at = self.at();
        let Some(Token::Word(word)) = self.peek().cloned() else {
            return self.fail("a subject (attribute:NAME, task:group, agentVersion, …)");
        };
        let subject = match word.as_str() {
            "agentConnected" => Subject::AgentConnected,
            "agentVersion" => Subject::AgentVersion,
            "ec2InstanceId" => Subject::InstanceId,
            "registeredAt" => Subject::RegisteredAt,
            "runningTasksCount" => Subject::RunningTasksCount,
            "task:group" => Subject::TaskGroup,
            w => match w.strip_prefix("attribute:") {
                Some(name) if !name.is_empty() => Subject::Attribute(name.to_string()),
                _ => {
                    return Err(Error::expression(
                        at,
                        format!(
                            "unknown subject '{w}': use attribute:NAME, agentConnected, agentVersion, ec2InstanceId, registeredAt, runningTasksCount or task:group"
                        ),
                    ))
                }
            },
        };
        self.bump();
        Ok(subject)
    }

    fn op(&mut self) -> Result<Op, Error> {
        let negated = matches!(self.peek(), Some(Token::Symbol("!")));
        let start = self.next;
        if negated {
            self.bump();
        }
        let op = match (negated, self.peek()) {
            (false, Some(Token::Symbol(s))) => match *s {
                "==" => Some(Op::Eq),
                "!=" => Some(Op::Ne),
                ">" => Some(Op::Gt),
                ">=" => Some(Op::Ge),
                "<" => Some(Op::Lt),
                "<=" => Some(Op::Le),
                "=~" => Some(Op::Matches),
                "!~" => Some(Op::NotMatches),
                _ => None,
            },
            (false, Some(Token::Word(w))) => match w.as_str() {
                "equals" => Some(Op::Eq),
                "not_equals" => Some(Op::Ne),
                "greater_than" => Some(Op::Gt),
                "greater_than_equal" => Some(Op::Ge),
                "less_than" => Some(Op::Lt),
                "less_than_equal" => Some(Op::Le),
                "exists" => Some(Op::Exists),
                "not_exists" => Some(Op::NotExists),
                "in" => Some(Op::In),
                "not_in" => Some(Op::NotIn),
                "matches" => Some(Op::Matches),
                "not_matches" => Some(Op::NotMatches),
                _ => None,
            },
            (true, Some(Token::Word(w))) => match w.as_str() {
                "exists" => Some(Op::NotExists),
                "in" => Some(Op::NotIn),
                _ => None,
            },
            _ => None,
        };
        match op {
            Some(op) => {
                self.bump();
                Ok(op)
            }
            None => {
                self.next = start;
                self.fail("an operator (==, !=, >, >=, <, <=, exists, in, not_in, =~, !~)")
            }
        }
    }

    fn literal(&mut self) -> Result<String, Error> {
        match self.peek().cloned() {
            Some(Token::Word(w)) | Some(Token::Quoted(w)) => {
                self.bump();
                Ok(w)
            }
            _ => self.fail("a value"),
        }
    }

    fn list(&mut self) -> Result<Vec<String>, Error> {
        if self.peek() != Some(&Token::LBracket) {
            return Ok(vec![self.literal()?]);
        }
        self.bump();
        let mut items = vec![self.literal()?];
        loop {
            match self.peek() {
                Some(Token::Comma) => {
                    self.bump();
                    items.push(self.literal()?);
                }
                Some(Token::RBracket) => {
                    self.bump();
                    return Ok(items);
                }
                _ => return self.fail("',' or ']'"),
            }
        }
    }

    fn test(&mut self) -> Result<Test, Error> {
        let subject = self.subject()?;
        let op_at = self.at();
        let op = self.op()?;
        let arg_at = self.at();
        let ordering = matches!(op, Op::Gt | Op::Ge | Op::Lt | Op::Le);
        let refuse = |why: String| Err(Error::expression(op_at, why));
        if ordering && matches!(subject, Subject::TaskGroup | Subject::AgentConnected) {
            return refuse(format!("{subject} cannot be ordered: use ==, != or in"));
        }
        if matches!(op, Op::Exists | Op::NotExists)
            && !matches!(subject, Subject::Attribute(_) | Subject::TaskGroup)
        {
            return refuse(format!(
                "{subject} always exists: exists applies to attribute:NAME and task:group"
            ));
        }
        let arg = match op {
            Op::Exists | Op::NotExists => Arg::None,
            Op::In | Op::NotIn => Arg::List(self.list()?),
            Op::Matches | Op::NotMatches => {
                let pattern = self.literal()?;
                regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
                    .size_limit(1 << 20)
                    .build()
                    .map(Arg::Pattern)
                    .map_err(|e| {
                        Error::expression(
                            arg_at,
                            format!("'{pattern}' is not a regular expression: {e}"),
                        )
                    })?
            }
            _ => {
                let text = self.literal()?;
                match (&subject, ordering) {
                    (Subject::RegisteredAt, _) => Arg::Time(parse_time(&text).ok_or_else(|| {
                        Error::expression(
                            arg_at,
                            format!("'{text}' is not a date (2018-06-18, 2018-06-18T22:28:28, with Z or +00:00)"),
                        )
                    })?),
                    (Subject::AgentVersion, true) => {
                        Arg::Version(parse_version(&text).ok_or_else(|| {
                            Error::expression(arg_at, format!("'{text}' is not a version such as 1.14.5"))
                        })?)
                    }
                    (Subject::RunningTasksCount, _) if text.parse::<f64>().is_err() => {
                        return Err(Error::expression(arg_at, format!("'{text}' is not a number")))
                    }
                    _ => Arg::Text(text),
                }
            }
        };
        Ok(Test { subject, op, arg })
    }
}

impl Query {
    /// Parses an expression; an error names the character it is at.
    pub fn parse(source: &str) -> Result<Query, Error> {
        let tokens = lex(source)?;
        let end = source.chars().count() + 1;
        let mut p = Parser {
            tokens,
            next: 0,
            end,
        };
        if p.peek().is_none() {
            return Err(Error::expression(1, "the expression is empty"));
        }
        let expr = p.expr()?;
        if p.peek().is_some() {
            return p.fail("'&&', '||' or the end");
        }
        Ok(Query {
            source: source.to_string(),
            expr,
        })
    }

    pub fn holds(&self, node: &dyn Node) -> bool {
        eval(&self.expr, node)
    }

    /// The values on `node` of each subject the expression names: what a
    /// failure explains itself with.
    pub fn explain(&self, node: &dyn Node) -> String {
        let mut subjects = Vec::new();
        collect(&self.expr, &mut subjects);
        let parts: Vec<String> = subjects
            .iter()
            .map(|s| match value_of(s, node) {
                Some(v) => format!("{s} is {v:?}"),
                None => format!("{s} is not set"),
            })
            .collect();
        format!(
            "memberOf({}) is false here: {}",
            self.source,
            parts.join(", ")
        )
    }
}

fn collect<'a>(e: &'a Expr, out: &mut Vec<&'a Subject>) {
    match e {
        Expr::Or(a, b) | Expr::And(a, b) => {
            collect(a, out);
            collect(b, out);
        }
        Expr::Not(a) => collect(a, out),
        Expr::Test(t) => {
            if !out.contains(&&t.subject) {
                out.push(&t.subject);
            }
        }
    }
}

fn eval(e: &Expr, node: &dyn Node) -> bool {
    match e {
        Expr::Or(a, b) => eval(a, node) || eval(b, node),
        Expr::And(a, b) => eval(a, node) && eval(b, node),
        Expr::Not(a) => !eval(a, node),
        Expr::Test(t) => test(t, node),
    }
}

/// A subject's value on a node, for explanations (task:group: the groups).
fn value_of(s: &Subject, node: &dyn Node) -> Option<String> {
    match s {
        Subject::Attribute(name) => node.attribute(name).map(str::to_string),
        Subject::AgentConnected => Some(node.connected().to_string()),
        Subject::AgentVersion => Some(node.agent_version().to_string()),
        Subject::InstanceId => Some(node.id().to_string()),
        Subject::RegisteredAt => Some(node.registered_at().to_string()),
        Subject::RunningTasksCount => Some(node.running_tasks().to_string()),
        Subject::TaskGroup => {
            let groups: Vec<&str> = node.groups().keys().map(String::as_str).collect();
            (!groups.is_empty()).then(|| groups.join(","))
        }
    }
}

/// Numbers compare as numbers, anything else as text (ECS's rule for
/// attribute values).
fn compare_text(a: &str, b: &str) -> Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        _ => a.cmp(b),
    }
}

fn ordered(op: Op, o: Ordering) -> bool {
    match op {
        Op::Gt => o == Ordering::Greater,
        Op::Ge => o != Ordering::Less,
        Op::Lt => o == Ordering::Less,
        Op::Le => o != Ordering::Greater,
        _ => false,
    }
}

/// A test on one value (absent: the node has no such attribute).
fn test_value(t: &Test, value: Option<&str>) -> bool {
    match (&t.op, &t.arg, value) {
        (Op::Exists, _, v) => v.is_some(),
        (Op::NotExists, _, v) => v.is_none(),
        (Op::Eq, Arg::Text(want), Some(v)) => v == want,
        (Op::Ne, Arg::Text(want), v) => v != Some(want.as_str()),
        (Op::In, Arg::List(l), Some(v)) => l.iter().any(|x| x == v),
        (Op::NotIn, Arg::List(l), v) => v.is_none_or(|v| !l.iter().any(|x| x == v)),
        (Op::Matches, Arg::Pattern(re), Some(v)) => re.is_match(v),
        (Op::NotMatches, Arg::Pattern(re), v) => v.is_none_or(|v| !re.is_match(v)),
        (op @ (Op::Gt | Op::Ge | Op::Lt | Op::Le), Arg::Text(want), Some(v)) => {
            ordered(*op, compare_text(v, want))
        }
        _ => false,
    }
}

fn test(t: &Test, node: &dyn Node) -> bool {
    match &t.subject {
        Subject::Attribute(name) => test_value(t, node.attribute(name)),
        Subject::InstanceId => test_value(t, Some(node.id())),
        Subject::AgentConnected => {
            test_value(t, Some(if node.connected() { "true" } else { "false" }))
        }
        Subject::RunningTasksCount => test_value(t, Some(&node.running_tasks().to_string())),
        Subject::AgentVersion => match &t.arg {
            Arg::Version(want) => parse_version(node.agent_version())
                .is_some_and(|have| ordered(t.op, have.cmp(want))),
            _ => test_value(t, Some(node.agent_version())),
        },
        Subject::RegisteredAt => match &t.arg {
            Arg::Time(want) => {
                let o = node
                    .registered_at()
                    .partial_cmp(want)
                    .unwrap_or(Ordering::Equal);
                match t.op {
                    Op::Eq => o == Ordering::Equal,
                    Op::Ne => o != Ordering::Equal,
                    op => ordered(op, o),
                }
            }
            _ => false,
        },
        // The node's groups are a set: `==` holds if one of them is the
        // value, `!=` if none is, `exists` if the node runs any task.
        Subject::TaskGroup => {
            let groups = node.groups();
            let any = |t: &Test| groups.keys().any(|g| test_value(t, Some(g)));
            match t.op {
                Op::Exists => !groups.is_empty(),
                Op::NotExists => groups.is_empty(),
                Op::Ne | Op::NotIn | Op::NotMatches => {
                    let positive = Test {
                        subject: Subject::TaskGroup,
                        op: match t.op {
                            Op::Ne => Op::Eq,
                            Op::NotIn => Op::In,
                            _ => Op::Matches,
                        },
                        arg: t.arg.clone(),
                    };
                    !any(&positive)
                }
                _ => any(t),
            }
        }
    }
}

/// `1.14.5`, `v1.14.5` or `1.14.5-rc1` → [1, 14, 5].
pub fn parse_version(s: &str) -> Option<Vec<u64>> {
    let core = s.trim_start_matches('v');
    let core = core.split(['-', '+']).next()?;
    core.split('.').map(|p| p.parse().ok()).collect()
}

/// Days from 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// ECS's date forms as epoch seconds: `2018-06-18`, `2018-06-18T22:28:28`,
/// with `Z` or `±HH:MM`; no zone means UTC.
pub fn parse_time(s: &str) -> Option<f64> {
    let num = |t: &str| t.parse::<i64>().ok();
    let (date, rest) = s.split_at(s.find('T').unwrap_or(s.len()));
    let mut d = date.split('-');
    let (y, m, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    if d.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let mut secs = days_from_civil(y, m, day) * 86_400;
    if let Some(time) = rest.strip_prefix('T') {
        let (clock, offset) = match time.find(['Z', '+', '-']) {
            Some(i) => time.split_at(i),
            None => (time, ""),
        };
        let mut c = clock.split(':');
        let (h, mi) = (num(c.next()?)?, num(c.next()?)?);
        let sec = c.next().map_or(Some(0.0), |x| x.parse::<f64>().ok())?;
        if c.next().is_some() || !(0..24).contains(&h) || !(0..60).contains(&mi) {
            return None;
        }
        secs += h * 3600 + mi * 60;
        let shift = match offset {
            "" | "Z" => 0,
            o => {
                let sign = if o.starts_with('-') { -1 } else { 1 };
                let mut p = o[1..].split(':');
                let (oh, om) = (num(p.next()?)?, num(p.next().unwrap_or("0"))?);
                sign * (oh * 3600 + om * 60)
            }
        };
        return Some((secs - shift) as f64 + sec);
    } else if !rest.is_empty() {
        return None;
    }
    Some(secs as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestNode;

    fn node() -> TestNode {
        TestNode::new("i-a", 2048, 4096)
            .attr("ecs.instance-type", "t2.micro")
            .attr("zone", "a")
            .attr("gpu", "")
            .group("service:web", 2)
            .version("1.20.3")
            .registered("2024-03-01T12:00:00Z")
    }

    fn holds(e: &str) -> bool {
        Query::parse(e)
            .unwrap_or_else(|e| panic!("{e}"))
            .holds(&node())
    }

    #[test]
    fn the_documented_examples_hold_as_ecs_says() {
        assert!(holds("attribute:ecs.instance-type =~ t2.*"));
        assert!(
            !holds("attribute:ecs.instance-type =~ t2"),
            "matches is anchored"
        );
        assert!(holds("not(task:group == database)"));
        assert!(holds("ec2InstanceId in ['i-a','i-b']"));
        assert!(!holds("agentVersion < 1.14.5"));
        assert!(holds("agentVersion >= 1.9.10"));
        assert!(holds("attribute:zone == a && task:group == service:web"));
        assert!(holds("attribute:zone == b || attribute:zone in [a, c]"));
        assert!(holds("attribute:zone != b and attribute:gpu exists"));
        assert!(holds("attribute:missing !exists"));
        assert!(holds("attribute:missing not_in [x]"));
        assert!(!holds("attribute:missing == x"));
        assert!(holds(
            "!(attribute:zone == b) && (task:group != service:db)"
        ));
        assert!(holds("task:group =~ service:.*"));
        assert!(holds("task:group exists"));
        assert!(holds("registeredAt >= 2024-03-01"));
        assert!(holds("registeredAt < 2024-03-01T13:00:00+00:00"));
        assert!(holds("registeredAt > 2024-03-01T13:00:00+02:00"));
        assert!(holds("runningTasksCount == 2"));
        assert!(holds("runningTasksCount less_than 3"));
        assert!(holds("attribute:zone equals 'a'"));
        assert!(holds("agentConnected == true"));
    }

    #[test]
    fn errors_name_the_character_they_are_at() {
        let at = |e: &str| match Query::parse(e) {
            Err(Error::Expression { at, why }) => (at, why),
            other => panic!("{e}: {other:?}"),
        };
        assert_eq!(at("attribute:zone ==").0, 18);
        assert_eq!(at("zone == a").0, 1);
        assert_eq!(at("attribute:zone = a").0, 16);
        assert_eq!(at("attribute:zone == a &&").0, 23);
        assert_eq!(at("(attribute:zone == a").0, 21);
        assert_eq!(at("attribute:zone == a)").0, 20);
        assert_eq!(at("attribute:zone in [a, b").0, 24);
        assert_eq!(at("attribute:zone =~ '('").0, 19);
        assert_eq!(at("attribute:zone == 'a").0, 19);
        assert_eq!(at("registeredAt > yesterday").0, 16);
        assert_eq!(at("agentVersion > new").0, 16);
        assert_eq!(at("task:group > a").0, 12);
        assert_eq!(at("agentVersion exists").0, 14);
        assert_eq!(at("").0, 1);
        let (at_char, why) = at("attribute:zone === a");
        assert_eq!(at_char, 18);
        assert!(why.contains("'=' is not an operator"), "{why}");
        let (_, why) = at("nodeName == a");
        assert!(why.contains("unknown subject 'nodeName'"), "{why}");
    }

    #[test]
    fn a_failure_explains_itself_with_the_nodes_values() {
        let q = Query::parse("attribute:zone == b && attribute:rack exists").unwrap();
        assert_eq!(
            q.explain(&node()),
            "memberOf(attribute:zone == b && attribute:rack exists) is false here: attribute:zone is \"a\", attribute:rack is not set"
        );
    }

    #[test]
    fn dates_and_versions_parse_in_ecs_forms() {
        assert_eq!(parse_time("1970-01-02"), Some(86_400.0));
        assert_eq!(
            parse_time("2018-06-18T22:28:28Z"),
            parse_time("2018-06-18T22:28:28")
        );
        assert_eq!(
            parse_time("2018-06-18T22:28:28+01:00").map(|t| t + 3600.0),
            parse_time("2018-06-18T22:28:28Z")
        );
        assert_eq!(parse_time("2018-13-01"), None);
        assert_eq!(parse_time("2018-06-18Tnoon"), None);
        assert_eq!(parse_version("v1.14.5-rc1"), Some(vec![1, 14, 5]));
        assert_eq!(parse_version("one"), None);
    }
}
