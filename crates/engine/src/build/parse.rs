//! Containerfile parsing: lines, continuations, comments, and the
//! instructions estiba builds. Every error names its line.

use serde_json::Value;

/// A command in shell form (`RUN make`) or exec form (`RUN ["make"]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Shell(String),
    Exec(Vec<String>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    From {
        image: String,
        alias: Option<String>,
    },
    Run(Command),
    Copy {
        from: Option<String>,
        chown: Option<String>,
        sources: Vec<String>,
        dest: String,
    },
    Add {
        chown: Option<String>,
        sources: Vec<String>,
        dest: String,
    },
    Env(Vec<(String, String)>),
    Arg {
        name: String,
        default: Option<String>,
    },
    Workdir(String),
    User(String),
    Cmd(Command),
    Entrypoint(Command),
    Expose(Vec<String>),
    Label(Vec<(String, String)>),
    /// `None` is `HEALTHCHECK NONE`.
    Healthcheck(Option<HealthSpec>),
    Volume(Vec<String>),
    StopSignal(String),
    Shell(Vec<String>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthSpec {
    pub test: Vec<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    pub retries: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line where the instruction starts.
    pub line: usize,
    pub kind: Kind,
    /// The instruction as written (continuations joined), for history and cache keys.
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
#[error("Containerfile line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

fn err(line: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        line,
        message: message.into(),
    }
}

/// Joins continuation lines and drops comments and blank lines.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_none()) {
            continue;
        }
        let (start, mut acc) = current.take().unwrap_or((i + 1, String::new()));
        if let Some(body) = raw.trim_end().strip_suffix('\\') {
            acc.push_str(body);
            acc.push(' ');
            current = Some((start, acc));
        } else {
            acc.push_str(raw);
            out.push((start, acc.trim().to_string()));
        }
    }
    if let Some((start, acc)) = current {
        out.push((start, acc.trim().to_string()));
    }
    out
}

fn command(line: usize, rest: &str) -> Result<Command, ParseError> {
    if rest.starts_with('[') {
        let v: Value = serde_json::from_str(rest)
            .map_err(|e| err(line, format!("malformed exec form: {e}")))?;
        let args: Vec<String> = serde_json::from_value(v)
            .map_err(|_| err(line, "the exec form is a JSON array of strings"))?;
        if args.is_empty() {
            return Err(err(line, "empty command"));
        }
        Ok(Command::Exec(args))
    } else if rest.is_empty() {
        Err(err(line, "missing command"))
    } else {
        Ok(Command::Shell(rest.to_string()))
    }
}

/// Splits on whitespace, keeping double-quoted words together (quotes removed).
fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() && !quoted => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// `K=V K2="v 2"`, or the legacy `K V` form for ENV.
fn pairs(line: usize, rest: &str, legacy: bool) -> Result<Vec<(String, String)>, ParseError> {
    let ws = words(rest);
    if legacy && !ws.first().is_some_and(|w| w.contains('=')) {
        let (k, v) = rest
            .split_once(char::is_whitespace)
            .ok_or_else(|| err(line, "expected KEY=VALUE or KEY VALUE"))?;
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    if ws.is_empty() {
        return Err(err(line, "expected KEY=VALUE"));
    }
    ws.into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(err(line, format!("{w:?} is not KEY=VALUE"))),
        })
        .collect()
}

/// Leading `--flag=value` options of COPY, ADD and HEALTHCHECK.
fn flags(rest: &str) -> (Vec<(String, String)>, String) {
    let mut flags = Vec::new();
    let mut rest = rest.trim();
    while let Some(after) = rest.strip_prefix("--") {
        let (flag, tail) = after.split_once(char::is_whitespace).unwrap_or((after, ""));
        let (k, v) = flag.split_once('=').unwrap_or((flag, ""));
        flags.push((k.to_string(), v.to_string()));
        rest = tail.trim_start();
    }
    (flags, rest.to_string())
}

fn sources_and_dest(line: usize, rest: &str) -> Result<(Vec<String>, String), ParseError> {
    let mut parts: Vec<String> = if rest.starts_with('[') {
        serde_json::from_str(rest).map_err(|e| err(line, format!("malformed JSON form: {e}")))?
    } else {
        words(rest)
    };
    if parts.len() < 2 {
        return Err(err(line, "needs at least one source and a destination"));
    }
    let dest = parts.pop().unwrap_or_default();
    Ok((parts, dest))
}

pub fn parse(text: &str) -> Result<Vec<Instruction>, ParseError> {
    let mut out = Vec::new();
    for (line, l) in logical_lines(text) {
        let (word, rest) = l.split_once(char::is_whitespace).unwrap_or((&l, ""));
        let rest = rest.trim();
        let kind = match word.to_ascii_uppercase().as_str() {
            "FROM" => {
                let w = words(rest);
                match w.as_slice() {
                    [image] => Kind::From {
                        image: image.clone(),
                        alias: None,
                    },
                    [image, as_, alias] if as_.eq_ignore_ascii_case("as") => Kind::From {
                        image: image.clone(),
                        alias: Some(alias.to_ascii_lowercase()),
                    },
                    _ => return Err(err(line, "expected FROM IMAGE [AS NAME]")),
                }
            }
            "RUN" => {
                let (f, rest) = flags(rest);
                if let Some((k, _)) = f.first() {
                    return Err(err(line, format!("RUN --{k} is not supported")));
                }
                Kind::Run(command(line, &rest)?)
            }
            "COPY" | "ADD" => {
                let (f, rest) = flags(rest);
                let (mut from, mut chown) = (None, None);
                for (k, v) in f {
                    match k.as_str() {
                        "from" if word.eq_ignore_ascii_case("COPY") => {
                            from = Some(v.to_ascii_lowercase())
                        }
                        "chown" => chown = Some(v),
                        other => {
                            return Err(err(line, format!("{word} --{other} is not supported")))
                        }
                    }
                }
                let (sources, dest) = sources_and_dest(line, &rest)?;
                if word.eq_ignore_ascii_case("COPY") {
                    Kind::Copy {
                        from,
                        chown,
                        sources,
                        dest,
                    }
                } else {
                    if sources.iter().any(|s| s.contains("://")) {
                        return Err(err(
                            line,
                            "ADD from a URL is not supported: download the file into the context",
                        ));
                    }
                    Kind::Add {
                        chown,
                        sources,
                        dest,
                    }
                }
            }
            "ENV" => Kind::Env(pairs(line, rest, true)?),
            "ARG" => {
                let (name, default) = match rest.split_once('=') {
                    Some((n, d)) => (n.to_string(), Some(words(d).join(" "))),
                    None => (rest.to_string(), None),
                };
                if name.is_empty() || name.contains(char::is_whitespace) {
                    return Err(err(line, "expected ARG NAME[=DEFAULT]"));
                }
                Kind::Arg { name, default }
            }
            "WORKDIR" if !rest.is_empty() => Kind::Workdir(rest.to_string()),
            "USER" if !rest.is_empty() => Kind::User(rest.to_string()),
            "CMD" => Kind::Cmd(command(line, rest)?),
            "ENTRYPOINT" => Kind::Entrypoint(command(line, rest)?),
            "EXPOSE" if !rest.is_empty() => Kind::Expose(words(rest)),
            "LABEL" => Kind::Label(pairs(line, rest, false)?),
            "VOLUME" if !rest.is_empty() => Kind::Volume(if rest.starts_with('[') {
                serde_json::from_str(rest)
                    .map_err(|e| err(line, format!("malformed JSON form: {e}")))?
            } else {
                words(rest)
            }),
            "STOPSIGNAL" if !rest.is_empty() => Kind::StopSignal(rest.to_string()),
            "SHELL" => Kind::Shell(match command(line, rest)? {
                Command::Exec(v) => v,
                Command::Shell(_) => return Err(err(line, "SHELL takes the JSON exec form")),
            }),
            "HEALTHCHECK" => {
                if rest.eq_ignore_ascii_case("none") {
                    Kind::Healthcheck(None)
                } else {
                    let (f, rest) = flags(rest);
                    let (cmd_word, cmd) =
                        rest.split_once(char::is_whitespace).unwrap_or((&rest, ""));
                    if !cmd_word.eq_ignore_ascii_case("cmd") {
                        return Err(err(
                            line,
                            "expected HEALTHCHECK [OPTIONS] CMD command, or HEALTHCHECK NONE",
                        ));
                    }
                    let test = match command(line, cmd.trim())? {
                        Command::Shell(s) => vec!["CMD-SHELL".to_string(), s],
                        Command::Exec(v) => std::iter::once("CMD".to_string()).chain(v).collect(),
                    };
                    let mut h = HealthSpec {
                        test,
                        interval: None,
                        timeout: None,
                        start_period: None,
                        retries: None,
                    };
                    for (k, v) in f {
                        match k.as_str() {
                            "interval" => h.interval = Some(v),
                            "timeout" => h.timeout = Some(v),
                            "start-period" => h.start_period = Some(v),
                            "retries" => {
                                h.retries = Some(
                                    v.parse()
                                        .map_err(|_| err(line, "--retries takes a number"))?,
                                )
                            }
                            other => {
                                return Err(err(
                                    line,
                                    format!("HEALTHCHECK --{other} is not supported"),
                                ))
                            }
                        }
                    }
                    Kind::Healthcheck(Some(h))
                }
            }
            "MAINTAINER" | "ONBUILD" => return Err(err(line, format!("{word} is not supported"))),
            _ => {
                return Err(err(
                    line,
                    format!("unknown or malformed instruction {word:?}"),
                ))
            }
        };
        if out.is_empty() && !matches!(kind, Kind::From { .. } | Kind::Arg { .. }) {
            return Err(err(line, "the first instruction must be FROM (or ARG)"));
        }
        out.push(Instruction {
            line,
            kind,
            text: l,
        });
    }
    if !out.iter().any(|i| matches!(i.kind, Kind::From { .. })) {
        return Err(err(1, "no FROM instruction"));
    }
    Ok(out)
}

/// Expands `$VAR`, `${VAR}`, `${VAR:-default}` and `${VAR:+alt}`; `\$` is a literal `$`.
pub fn expand(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'$') => {
                out.push('$');
                chars.next();
            }
            '$' if chars.peek() == Some(&'{') => {
                chars.next();
                let mut inner = String::new();
                for n in chars.by_ref() {
                    if n == '}' {
                        break;
                    }
                    inner.push(n);
                }
                let value = if let Some((name, default)) = inner.split_once(":-") {
                    lookup(name)
                        .filter(|v| !v.is_empty())
                        .unwrap_or_else(|| default.to_string())
                } else if let Some((name, alt)) = inner.split_once(":+") {
                    lookup(name)
                        .filter(|v| !v.is_empty())
                        .map(|_| alt.to_string())
                        .unwrap_or_default()
                } else {
                    lookup(&inner).unwrap_or_default()
                };
                out.push_str(&value);
            }
            '$' if chars
                .peek()
                .is_some_and(|n| n.is_ascii_alphabetic() || *n == '_') =>
            {
                let mut name = String::new();
                while let Some(n) = chars
                    .peek()
                    .copied()
                    .filter(|n| n.is_ascii_alphanumeric() || *n == '_')
                {
                    name.push(n);
                    chars.next();
                }
                out.push_str(&lookup(&name).unwrap_or_default());
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_multi_stage_file() {
        let file = "# syntax comment\nARG BASE=busybox\nFROM ${BASE} AS builder\nRUN echo a \\\n  && echo b\nCOPY --chown=1000:1000 a b /dst/\nFROM scratch\nCOPY --from=builder /x /y\nENV A=1 B=\"two words\"\nENV LEGACY value with spaces\nCMD [\"sh\", \"-c\", \"echo hi\"]\nHEALTHCHECK --interval=5s --retries=2 CMD wget -q localhost\nEXPOSE 80/tcp 443\nLABEL a=b\nUSER user\nWORKDIR /app\nSTOPSIGNAL SIGQUIT\nSHELL [\"/bin/sh\", \"-ec\"]\nVOLUME /data\n";
        let ins = parse(file).unwrap();
        assert_eq!(
            ins[1].kind,
            Kind::From {
                image: "${BASE}".into(),
                alias: Some("builder".into())
            }
        );
        assert_eq!(
            ins[2].kind,
            Kind::Run(Command::Shell("echo a    && echo b".into()))
        );
        assert_eq!(ins[2].line, 4);
        assert_eq!(
            ins[3].kind,
            Kind::Copy {
                from: None,
                chown: Some("1000:1000".into()),
                sources: vec!["a".into(), "b".into()],
                dest: "/dst/".into()
            }
        );
        assert_eq!(
            ins[5].kind,
            Kind::Copy {
                from: Some("builder".into()),
                chown: None,
                sources: vec!["/x".into()],
                dest: "/y".into()
            }
        );
        assert_eq!(
            ins[6].kind,
            Kind::Env(vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into())
            ])
        );
        assert_eq!(
            ins[7].kind,
            Kind::Env(vec![("LEGACY".into(), "value with spaces".into())])
        );
        assert_eq!(
            ins[8].kind,
            Kind::Cmd(Command::Exec(vec![
                "sh".into(),
                "-c".into(),
                "echo hi".into()
            ]))
        );
        match &ins[9].kind {
            Kind::Healthcheck(Some(h)) => {
                assert_eq!(h.test, ["CMD-SHELL", "wget -q localhost"]);
                assert_eq!((h.interval.as_deref(), h.retries), (Some("5s"), Some(2)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_name_the_line() {
        for (file, line) in [
            ("FROM busybox\nRUN [\"unterminated\"\n", 2),
            ("FROM busybox\n\nFROBNICATE now\n", 3),
            ("RUN echo before from\n", 1),
            ("FROM busybox\nCOPY onlyone\n", 2),
            ("FROM busybox\nADD https://example.com/x /x\n", 2),
            ("FROM busybox\nENV =\n", 2),
            ("", 1),
        ] {
            let e = parse(file).unwrap_err();
            assert_eq!(e.line, line, "{file:?}: {e}");
            assert!(e
                .to_string()
                .starts_with(&format!("Containerfile line {line}:")));
        }
    }

    #[test]
    fn variables_expand() {
        let env = |k: &str| match k {
            "A" => Some("1".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        assert_eq!(
            expand("x$A ${A}y ${B:-def} ${A:+alt} ${EMPTY:-e} \\$A", &env),
            "x1 1y def alt e $A"
        );
    }
}
