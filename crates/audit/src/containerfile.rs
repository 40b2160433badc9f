//! Containerfile checks. The file is read leniently, as an auditor must:
//! every instruction Docker knows is accepted (the builder refuses some it
//! cannot run, such as ADD from a URL, which is exactly what an audit
//! looks for), heredocs are joined to their instruction, and each finding
//! names the line its instruction starts on.

use crate::catalog::TargetKind;
use crate::finding::{Finding, Location, Target};
use crate::shell::{self, Segment};
use crate::{secrets, Error, Result};

/// One instruction as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line the instruction starts on.
    pub line: usize,
    /// Upper case: `RUN`, `FROM`, ….
    pub keyword: String,
    /// Leading `--name=value` options (`--name` alone has an empty value).
    pub flags: Vec<(String, String)>,
    /// The rest, after the flags; heredoc bodies follow on new lines.
    pub args: String,
}

impl Instruction {
    fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The shell text of RUN, CMD, ENTRYPOINT or HEALTHCHECK's command:
    /// the exec form's words joined, so both forms are checked alike.
    fn shell_text(&self) -> String {
        match serde_json::from_str::<Vec<String>>(&self.args) {
            Ok(words) if self.args.trim_start().starts_with('[') => words.join(" "),
            _ => self.args.clone(),
        }
    }
}

/// The instructions from one FROM to the next.
#[derive(Debug)]
pub struct Stage {
    pub from: Instruction,
    pub image: String,
    pub alias: Option<String>,
    pub instructions: Vec<Instruction>,
}

const KEYWORDS: &[&str] = &[
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "MAINTAINER",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
];

/// Reads a Containerfile into its stages. `path` is for error messages.
pub fn parse(path: &str, text: &str) -> Result<Vec<Stage>> {
    let err = |line: usize, message: String| Error::Containerfile {
        path: path.to_string(),
        line,
        message,
    };
    let mut stages: Vec<Stage> = Vec::new();
    for (line, logical) in logical_lines(text).map_err(|(l, m)| err(l, m))? {
        let (word, rest) = logical
            .split_once(char::is_whitespace)
            .unwrap_or((&logical, ""));
        let keyword = word.to_ascii_uppercase();
        if !KEYWORDS.contains(&keyword.as_str()) {
            return Err(err(line, format!("unknown instruction {word:?}")));
        }
        let (flags, args) = flags(rest.trim());
        if args.trim().is_empty() && !matches!(keyword.as_str(), "CMD" | "ENTRYPOINT") {
            return Err(err(line, format!("{keyword} needs arguments")));
        }
        let instruction = Instruction {
            line,
            keyword,
            flags,
            args,
        };
        if instruction.keyword == "FROM" {
            let words: Vec<&str> = instruction.args.split_whitespace().collect();
            let (image, alias) = match words.as_slice() {
                [image] => (*image, None),
                [image, as_, alias] if as_.eq_ignore_ascii_case("as") => {
                    (*image, Some(alias.to_ascii_lowercase()))
                }
                _ => return Err(err(line, "expected FROM IMAGE [AS NAME]".into())),
            };
            stages.push(Stage {
                image: image.to_string(),
                alias,
                from: instruction,
                instructions: Vec::new(),
            });
        } else if let Some(stage) = stages.last_mut() {
            stage.instructions.push(instruction);
        } else if instruction.keyword != "ARG" {
            return Err(err(
                line,
                "the first instruction must be FROM (or ARG)".into(),
            ));
        }
    }
    if stages.is_empty() {
        return Err(err(1, "no FROM instruction".into()));
    }
    Ok(stages)
}

type Logical = Vec<(usize, String)>;

/// Joins continuations (a trailing backslash) and heredocs (`<<EOF` …
/// `EOF`), and drops comments and blank lines. Each logical line keeps the
/// number of the line it starts on.
fn logical_lines(text: &str) -> std::result::Result<Logical, (usize, String)> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((i, raw)) = lines.next() {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let start = i + 1;
        let mut acc = String::new();
        let mut current = raw.trim_end().to_string();
        loop {
            match current.strip_suffix('\\') {
                Some(body) => {
                    acc.push_str(body);
                    acc.push(' ');
                    // Comment lines inside a continuation are dropped, as
                    // Docker drops them.
                    let next = loop {
                        match lines.next() {
                            Some((_, l)) if l.trim_start().starts_with('#') => continue,
                            Some((_, l)) => break Some(l.trim_end().to_string()),
                            None => break None,
                        }
                    };
                    match next {
                        Some(l) => current = l,
                        None => break,
                    }
                }
                None => {
                    acc.push_str(&current);
                    break;
                }
            }
        }
        for word in heredoc_words(&acc) {
            let mut closed = false;
            for (_, l) in lines.by_ref() {
                if l.trim() == word {
                    closed = true;
                    break;
                }
                acc.push('\n');
                acc.push_str(l);
            }
            if !closed {
                return Err((start, format!("the heredoc <<{word} is never closed")));
            }
        }
        out.push((start, acc.trim().to_string()));
    }
    Ok(out)
}

/// The terminators of the heredocs an instruction opens (`<<EOF`,
/// `<<-EOF`, `<<"EOF"`), in order. Only RUN, COPY and ADD take them.
fn heredoc_words(line: &str) -> Vec<String> {
    let word = line.split_whitespace().next().unwrap_or_default();
    if !["RUN", "COPY", "ADD"].contains(&word.to_ascii_uppercase().as_str()) {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("<<") {
        rest = &rest[at + 2..];
        let body = rest.strip_prefix('-').unwrap_or(rest);
        let name: String = body
            .trim_start_matches(['"', '\''])
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.push(name);
        }
    }
    out
}

/// Leading `--flag[=value]` options.
fn flags(rest: &str) -> (Vec<(String, String)>, String) {
    let mut flags = Vec::new();
    let mut rest = rest.trim_start();
    while let Some(after) = rest.strip_prefix("--") {
        let (flag, tail) = after.split_once(char::is_whitespace).unwrap_or((after, ""));
        let (k, v) = flag.split_once('=').unwrap_or((flag, ""));
        flags.push((k.to_string(), v.to_string()));
        rest = tail.trim_start();
    }
    (flags, rest.to_string())
}

/// Audits a Containerfile's text. `path` names the target.
pub fn audit(path: &str, text: &str) -> Result<Vec<Finding>> {
    let stages = parse(path, text)?;
    let target = Target::new(TargetKind::Containerfile, path);
    let mut out = Vec::new();
    let aliases: Vec<&str> = stages.iter().filter_map(|s| s.alias.as_deref()).collect();
    for stage in &stages {
        check_from(&target, stage, &aliases, &mut out);
        for i in &stage.instructions {
            check_instruction(&target, i, &mut out);
        }
    }
    check_final_stage(&target, &stages, &mut out);
    Ok(out)
}

fn at(line: usize) -> Location {
    Location::Line { line }
}

/// ESB-F-004: the base's tag.
fn check_from(target: &Target, stage: &Stage, aliases: &[&str], out: &mut Vec<Finding>) {
    let image = stage.image.as_str();
    let earlier_stage = aliases.contains(&image.to_ascii_lowercase().as_str());
    // scratch is no image; `$BASE` is decided by build arguments.
    if earlier_stage || image == "scratch" || image.contains('$') {
        return;
    }
    let name = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') {
        return;
    }
    let message = match name.split_once(':') {
        None => format!("{image} has no tag, so it means latest"),
        Some((_, "latest")) => format!("{image} is the moving latest tag"),
        Some(_) => return,
    };
    out.push(Finding::new(
        "ESB-F-004",
        target,
        at(stage.from.line),
        message,
    ));
}

fn check_instruction(target: &Target, i: &Instruction, out: &mut Vec<Finding>) {
    match i.keyword.as_str() {
        "RUN" => check_run(target, i, out),
        "ADD" => check_add(target, i, out),
        "ENV" => check_env(target, i, out),
        "ARG" => check_arg(target, i, out),
        "EXPOSE" if i.args.split_whitespace().any(is_ssh_port) => {
            out.push(Finding::new("ESB-F-011", target, at(i.line), "EXPOSE 22"));
        }
        "WORKDIR" => {
            let dir = normalize_dir(&i.args);
            if SYSTEM_DIRS.contains(&dir.as_str()) {
                let m = format!("WORKDIR {dir} is a system directory");
                out.push(Finding::new("ESB-F-012", target, at(i.line), m));
            }
        }
        "VOLUME" => {
            let dirs = serde_json::from_str::<Vec<String>>(&i.args)
                .unwrap_or_else(|_| i.args.split_whitespace().map(String::from).collect());
            for dir in dirs.iter().map(|d| normalize_dir(d)) {
                let kernel = ["/proc", "/sys", "/dev"]
                    .iter()
                    .any(|k| dir == *k || dir.starts_with(&format!("{k}/")));
                if kernel || SYSTEM_DIRS.contains(&dir.as_str()) {
                    let m = format!("VOLUME {dir} is a system directory");
                    out.push(Finding::new("ESB-F-012", target, at(i.line), m));
                }
            }
        }
        _ => {}
    }
}

fn is_ssh_port(p: &str) -> bool {
    p == "22" || p.eq_ignore_ascii_case("22/tcp")
}

/// Directories whose contents the system relies on.
const SYSTEM_DIRS: &[&str] = &[
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib64",
    "/proc",
    "/sbin",
    "/sys",
    "/usr",
    "/usr/bin",
    "/usr/lib",
    "/usr/sbin",
];

fn normalize_dir(dir: &str) -> String {
    let d = dir.trim().trim_matches('"');
    let trimmed = d.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".into()
    } else {
        trimmed.to_string()
    }
}

fn check_run(target: &Target, i: &Instruction, out: &mut Vec<Finding>) {
    let text = i.shell_text();
    let segments = shell::segments(&text);
    let mut found = |id: &str, message: String| {
        out.push(Finding::new(id, target, at(i.line), message));
    };
    if segments.iter().any(|s| s.words.iter().any(|w| w == "sudo")) {
        found("ESB-F-005", "RUN calls sudo".into());
    }
    for s in &segments {
        let cmd = s.command();
        if is_apt_install(&cmd)
            && !cmd
                .iter()
                .any(|w| w == "--no-install-recommends" || w.contains("Install-Recommends=false"))
        {
            found(
                "ESB-F-006",
                format!("{} without --no-install-recommends", cmd.join(" ")),
            );
        }
        if let Some(flag) = unverified(&cmd) {
            found("ESB-F-009", format!("{} turns verification off", flag));
        }
    }
    for pair in segments.windows(2) {
        let (from, to) = (&pair[0], &pair[1]);
        let fetch = matches!(
            from.command().first().map(|w| base(w)),
            Some("curl" | "wget")
        );
        let runs = matches!(
            to.command().first().map(|w| base(w)),
            Some("sh" | "bash" | "zsh" | "ash" | "dash" | "ksh" | "python" | "python3" | "perl")
        );
        if to.piped && fetch && runs {
            found(
                "ESB-F-007",
                format!("{} | {}", base(&from.command()[0]), base(&to.command()[0])),
            );
        }
    }
    if let Some(update) = lone_update(&segments) {
        found(
            "ESB-F-010",
            format!("{update} with no install in the same RUN"),
        );
    }
}

/// A command's name without its directory.
fn base(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

fn is_apt_install(cmd: &[String]) -> bool {
    matches!(cmd.first().map(|w| base(w)), Some("apt-get" | "apt"))
        && cmd.iter().skip(1).any(|w| w == "install")
}

/// The flag by which a command turns off certificate or signature checks.
fn unverified(cmd: &[String]) -> Option<String> {
    let name = base(cmd.first()?);
    let args = &cmd[1..];
    let has = |flag: &str| {
        args.iter()
            .any(|w| w == flag || w.starts_with(&format!("{flag}=")))
    };
    let found = match name {
        "curl" => {
            let short_k = args
                .iter()
                .any(|w| w.starts_with('-') && !w.starts_with("--") && w.contains('k'));
            (short_k || has("--insecure")).then_some("curl -k")
        }
        "wget" => has("--no-check-certificate").then_some("wget --no-check-certificate"),
        "pip" | "pip3" => has("--trusted-host").then_some("pip --trusted-host"),
        "apk" => has("--allow-untrusted").then_some("apk --allow-untrusted"),
        "apt-get" | "apt" => {
            if has("--allow-unauthenticated") {
                Some("apt --allow-unauthenticated")
            } else {
                has("--force-yes").then_some("apt --force-yes")
            }
        }
        "yum" | "dnf" | "microdnf" | "tdnf" | "zypper" => {
            (has("--nogpgcheck") || has("--no-gpg-checks")).then_some("--nogpgcheck")
        }
        "rpm" => (has("--nosignature") || has("--nodigest")).then_some("rpm --nosignature"),
        "git" => args
            .iter()
            .any(|w| w.eq_ignore_ascii_case("http.sslVerify=false"))
            .then_some("git -c http.sslVerify=false"),
        "npm" | "yarn" => {
            let joined = args.join(" ");
            (joined.contains("strict-ssl false") || joined.contains("strict-ssl=false"))
                .then_some("npm strict-ssl false")
        }
        _ => None,
    };
    found.map(String::from)
}

/// An index update with no install, upgrade or add after it in the RUN.
pub(crate) fn lone_update(segments: &[Segment]) -> Option<String> {
    let mut pending: Option<String> = None;
    for s in segments {
        let cmd = s.command();
        let Some(name) = cmd.first().map(|w| base(w)) else {
            continue;
        };
        let sub: Vec<&str> = cmd[1..]
            .iter()
            .map(String::as_str)
            .filter(|w| !w.starts_with('-'))
            .collect();
        match (name, sub.first().copied()) {
            ("apt-get" | "apt", Some("update")) | ("apk", Some("update")) => {
                pending = Some(format!("{name} update"));
            }
            ("apt-get" | "apt", Some("install" | "upgrade" | "dist-upgrade" | "full-upgrade"))
            | ("apk", Some("add" | "upgrade")) => pending = None,
            _ => {}
        }
    }
    pending
}

fn check_add(target: &Target, i: &Instruction, out: &mut Vec<Finding>) {
    let words: Vec<String> = serde_json::from_str::<Vec<String>>(&i.args)
        .unwrap_or_else(|_| i.args.split_whitespace().map(String::from).collect());
    let Some((_, sources)) = words.split_last() else {
        return;
    };
    for source in sources {
        let remote = source.contains("://") || source.starts_with("git@");
        let message = if remote {
            if i.flag("checksum").is_some() {
                continue;
            }
            format!("ADD fetches {source} unverified")
        } else if source.starts_with("<<") {
            continue;
        } else if is_archive(source) {
            let m = format!("ADD unpacks {source}");
            out.push(Finding::new("ESB-F-014", target, at(i.line), m));
            continue;
        } else {
            format!("ADD {source} is a plain copy; COPY says so")
        };
        out.push(Finding::new("ESB-F-003", target, at(i.line), message));
    }
}

fn is_archive(source: &str) -> bool {
    const ENDINGS: &[&str] = &[
        ".tar",
        ".tar.gz",
        ".tgz",
        ".tar.bz2",
        ".tbz",
        ".tbz2",
        ".tar.xz",
        ".txz",
        ".tar.zst",
        ".tzst",
        ".tar.lz",
        ".tar.lzma",
    ];
    let s = source.to_ascii_lowercase();
    ENDINGS.iter().any(|e| s.ends_with(e))
}

fn check_env(target: &Target, i: &Instruction, out: &mut Vec<Finding>) {
    for (name, value) in env_pairs(&i.args) {
        if let Some(why) = secrets::assignment(&name, &value) {
            let m = format!("ENV {name}: {why}");
            out.push(Finding::new("ESB-F-008", target, at(i.line), m));
        }
        if let Some(why) = secrets::disables_verification(&name, &value) {
            let m = format!("ENV {name}={value} {why}");
            out.push(Finding::new("ESB-F-009", target, at(i.line), m));
        }
    }
}

fn check_arg(target: &Target, i: &Instruction, out: &mut Vec<Finding>) {
    let (name, default) = match i.args.split_once('=') {
        Some((n, d)) => (n.trim(), d.trim()),
        None => (i.args.trim(), ""),
    };
    // A build argument's value, given or defaulted, lands in the image's
    // history: a secret-named one is a finding even without a default.
    if secrets::secret_name(name) {
        let m = if default.is_empty() {
            format!("ARG {name}: build arguments are kept in the image's history")
        } else {
            format!("ARG {name} has a default, and is kept in the image's history")
        };
        out.push(Finding::new("ESB-F-008", target, at(i.line), m));
    } else if let Some(why) = secrets::assignment(name, default) {
        let m = format!("ARG {name}: {why}");
        out.push(Finding::new("ESB-F-008", target, at(i.line), m));
    }
}

/// ENV's `K=V K2="v 2"`, or the legacy `K V`.
fn env_pairs(args: &str) -> Vec<(String, String)> {
    let words = shell::words(args);
    if !words.first().is_some_and(|w| w.contains('=')) {
        let (k, v) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
        return vec![(k.to_string(), v.trim().trim_matches('"').to_string())];
    }
    words
        .into_iter()
        .filter_map(|w| {
            w.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// The checks on the final stage as a whole: its effective USER and
/// HEALTHCHECK, following `FROM earlier-stage` back.
fn check_final_stage(target: &Target, stages: &[Stage], out: &mut Vec<Finding>) {
    let Some(last) = stages.last() else {
        return;
    };
    let chain = stage_chain(stages);
    let latest = |keyword: &str| {
        chain
            .iter()
            .find_map(|s| s.instructions.iter().rev().find(|i| i.keyword == keyword))
    };
    match latest("USER") {
        None if last.image != "scratch" || chain.len() > 1 => out.push(Finding::new(
            "ESB-F-001",
            target,
            at(last.from.line),
            "the final stage never sets USER, so it runs as root",
        )),
        None => out.push(Finding::new(
            "ESB-F-001",
            target,
            at(last.from.line),
            "a scratch image with no USER runs as root",
        )),
        Some(user) if is_root(&user.args) => out.push(Finding::new(
            "ESB-F-002",
            target,
            at(user.line),
            format!("the last USER is {}", user.args.trim()),
        )),
        Some(_) => {}
    }
    let healthy =
        latest("HEALTHCHECK").is_some_and(|h| !h.args.trim().eq_ignore_ascii_case("none"));
    if !healthy {
        out.push(Finding::new(
            "ESB-F-013",
            target,
            at(last.from.line),
            "the final stage has no HEALTHCHECK",
        ));
    }
}

/// The final stage and the earlier stages it is built FROM, newest first.
fn stage_chain(stages: &[Stage]) -> Vec<&Stage> {
    let mut chain: Vec<&Stage> = Vec::new();
    let mut current = stages.last();
    while let Some(stage) = current {
        if chain.iter().any(|s| std::ptr::eq(*s, stage)) {
            break;
        }
        chain.push(stage);
        let base = stage.image.to_ascii_lowercase();
        let position = stages.iter().position(|s| std::ptr::eq(s, stage));
        current = stages[..position.unwrap_or(0)]
            .iter()
            .rev()
            .find(|s| s.alias.as_deref() == Some(base.as_str()));
    }
    chain
}

/// root, 0, root:GROUP and 0:GROUP (the user part decides).
pub fn is_root(user: &str) -> bool {
    let user = user.trim();
    let name = user.split(':').next().unwrap_or(user);
    name.is_empty() || name == "root" || name == "0"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(text: &str) -> Vec<&'static str> {
        let mut v: Vec<&str> = audit("Containerfile", text)
            .unwrap()
            .iter()
            .map(|f| f.rule.id)
            .collect();
        v.sort();
        v.dedup();
        v
    }

    #[test]
    fn a_careful_file_has_no_findings() {
        let text = "FROM debian:12.5@sha256:abcd AS build\n\
                    RUN apt-get update && apt-get install -y --no-install-recommends gcc \\\n\
                    \x20   && rm -rf /var/lib/apt/lists/*\n\
                    FROM build\n\
                    COPY app /app\n\
                    WORKDIR /app\n\
                    USER 10001\n\
                    HEALTHCHECK CMD [\"/app/check\"]\n\
                    CMD [\"/app/run\"]\n";
        assert_eq!(ids(text), Vec::<&str>::new());
    }

    #[test]
    fn each_unsafe_habit_names_its_rule_and_line() {
        let text = "FROM alpine\n\
                    ARG GITHUB_TOKEN\n\
                    ENV DB_PASSWORD=hunter2 NODE_TLS_REJECT_UNAUTHORIZED=0\n\
                    ADD https://example.com/x.sh /x.sh\n\
                    ADD notes.txt /notes.txt\n\
                    RUN curl -fsSLk https://example.com/i.sh | sh\n\
                    RUN sudo apt-get install -y vim\n\
                    RUN apt-get update\n\
                    EXPOSE 80 22\n\
                    WORKDIR /usr/bin\n\
                    VOLUME [\"/proc/x\"]\n\
                    USER root:root\n";
        let findings = audit("Containerfile", text).unwrap();
        let at = |id: &str| -> Vec<usize> {
            findings
                .iter()
                .filter(|f| f.rule.id == id)
                .map(|f| f.location.line())
                .collect()
        };
        assert_eq!(at("ESB-F-004"), [1]);
        assert_eq!(at("ESB-F-008"), [2, 3]);
        assert_eq!(at("ESB-F-009"), [3, 6]);
        assert_eq!(at("ESB-F-003"), [4, 5]);
        assert_eq!(at("ESB-F-007"), [6]);
        assert_eq!(at("ESB-F-005"), [7]);
        assert_eq!(at("ESB-F-006"), [7]);
        assert_eq!(at("ESB-F-010"), [8]);
        assert_eq!(at("ESB-F-011"), [9]);
        assert_eq!(at("ESB-F-012"), [10, 11]);
        assert_eq!(at("ESB-F-002"), [12]);
        assert_eq!(at("ESB-F-013"), [1]);
        assert!(at("ESB-F-001").is_empty());
    }

    #[test]
    fn root_in_every_spelling_and_a_missing_user() {
        for user in ["root", "0", "0:0", "root:wheel"] {
            let text = format!("FROM a:1\nHEALTHCHECK NONE\nUSER {user}\n");
            assert!(ids(&text).contains(&"ESB-F-002"), "{user}");
        }
        assert!(ids("FROM a:1\nUSER app\nUSER 0\n").contains(&"ESB-F-002"));
        assert!(!ids("FROM a:1\nUSER 0\nUSER app\n").contains(&"ESB-F-002"));
        assert!(ids("FROM a:1\n").contains(&"ESB-F-001"));
        // A stage inherits the USER of the stage it is built from.
        assert!(!ids("FROM a:1 AS base\nUSER app\nFROM base\nRUN true\n").contains(&"ESB-F-001"));
    }

    #[test]
    fn heredocs_and_continuations_keep_their_first_line() {
        let text = "FROM a:1\n\
                    # a comment\n\
                    RUN <<EOF\n\
                    apt-get update\n\
                    EOF\n\
                    RUN echo one \\\n\
                    # skipped\n\
                    \x20 && sudo true\n";
        let f = audit("Containerfile", text).unwrap();
        let line = |id: &str| {
            f.iter()
                .find(|f| f.rule.id == id)
                .map(|f| f.location.line())
        };
        assert_eq!(line("ESB-F-010"), Some(3));
        assert_eq!(line("ESB-F-005"), Some(6));
    }

    #[test]
    fn archives_checksums_stages_and_variables_are_not_findings() {
        let text = "ARG BASE=a:1\nFROM $BASE AS one\nFROM scratch\n\
                    ADD rootfs.tar.gz /\n\
                    ADD --checksum=sha256:00 https://e.com/f /f\n\
                    FROM one\nUSER app\n";
        let got = ids(text);
        assert!(!got.contains(&"ESB-F-003"), "{got:?}");
        assert!(!got.contains(&"ESB-F-004"), "{got:?}");
    }

    #[test]
    fn malformed_files_are_refused_with_their_line() {
        for (text, line, words) in [
            ("", 1, "no FROM"),
            ("RUN true\n", 1, "first instruction"),
            ("FROM a\nFRM b\n", 2, "unknown instruction"),
            ("FROM a\n\nRUN\n", 3, "needs arguments"),
            ("FROM a b c d\n", 1, "FROM IMAGE"),
            ("FROM a\nRUN <<EOF\ntrue\n", 2, "never closed"),
        ] {
            match audit("Containerfile", text) {
                Err(Error::Containerfile {
                    line: l, message, ..
                }) => {
                    assert_eq!(l, line, "{text:?}: {message}");
                    assert!(message.contains(words), "{text:?}: {message}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }
}
