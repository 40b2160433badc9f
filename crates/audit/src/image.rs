//! Image checks, Dockle's checkpoints and more: the config (user, health
//! check, environment, history) and the merged file system. Layers are
//! read as tar streams, bottom to top, and merged as the kernel's overlay
//! would show them: a whiteout removes a lower file, an opaque directory
//! hides everything below it, and a later layer's entry replaces an
//! earlier one. So a setuid bit that one layer adds and a later layer
//! removes is not a finding.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::catalog::TargetKind;
use crate::containerfile::is_root;
use crate::finding::{Finding, Location, Target};
use crate::shell;
use crate::{secrets, Error, Result};

/// Files larger than this are not read for private keys: keys are small,
/// and reading every large file would make an audit cost a full copy.
const KEY_SCAN_LIMIT: u64 = 64 * 1024;

/// An image older than this is reported (INFO).
const OLD: Duration = Duration::from_secs(90 * 24 * 3600);

/// What the image audit is given.
pub struct Input<'a> {
    /// The name it was asked for by (`busybox:1.36`, an id, a digest).
    pub name: String,
    /// The image's config (OCI or Docker's JSON).
    pub config: Value,
    /// Its layers, uncompressed tar streams, bottom to top.
    pub layers: Vec<Box<dyn Read + 'a>>,
    /// The time to judge the image's age by.
    pub now: SystemTime,
}

/// One file of the merged file system, as far as the checks need it.
#[derive(Clone, Debug)]
struct File {
    mode: u32,
    layer: usize,
    private_key: bool,
    /// For `etc/shadow`: the accounts whose password field is empty.
    empty_passwords: Vec<String>,
}

pub fn audit(input: Input<'_>) -> Result<Vec<Finding>> {
    let target = Target::new(TargetKind::Image, input.name.clone());
    let mut out = audit_config(&input.name, &input.config, input.now);
    let files = merge(&input.name, input.layers)?;
    file_checks(&target, &files, &mut out);
    Ok(out)
}

/// The checks that need only the image's config and name, not its
/// layers: cheap enough for every `estiba run`.
pub fn audit_config(name: &str, config: &Value, now: SystemTime) -> Vec<Finding> {
    let target = Target::new(TargetKind::Image, name);
    let mut out = Vec::new();
    config_checks(&target, config, now, &mut out);
    out
}

/// Where an image comes from, as the policy's trust checks see it.
#[derive(Clone, Copy, Debug)]
pub struct Provenance<'a> {
    /// The registry its name points at; None for a local name (built,
    /// imported or loaded here).
    pub registry: Option<&'a str>,
    /// True if a signature by a trusted key was verified when it was
    /// pulled.
    pub signed: bool,
}

/// The policy's trust checks: ESB-I-014 when `trusted_registries` is set
/// and the image's registry is not in it (a local image comes from no
/// registry, so it passes); ESB-I-015 when signatures are required and
/// none was verified.
pub fn trust(
    name: &str,
    from: Provenance<'_>,
    trusted_registries: &[String],
    require_signature: bool,
) -> Vec<Finding> {
    let target = Target::new(TargetKind::Image, name);
    let mut out = Vec::new();
    if let Some(registry) = from.registry {
        if !trusted_registries.is_empty() && !trusted_registries.iter().any(|t| t == registry) {
            out.push(Finding::new(
                "ESB-I-014",
                &target,
                Location::File,
                format!("{registry} is not a trusted registry"),
            ));
        }
    }
    if require_signature && !from.signed {
        let why = match from.registry {
            Some(_) => "no signature by a trusted key was verified when it was pulled",
            None => "it was not pulled from a registry, so no signature was verified",
        };
        out.push(Finding::new(
            "ESB-I-015",
            &target,
            Location::File,
            format!("{name}: {why}"),
        ));
    }
    out
}

/// The registry part of an image reference (`host[:port]/…`), as docker
/// reads it: a first component with a dot or a colon, or `localhost`.
pub fn registry_of(reference: &str) -> Option<&str> {
    let (first, _) = reference.split_once('/')?;
    (first.contains(['.', ':']) || first == "localhost").then_some(first)
}

fn field(f: &str) -> Location {
    Location::Config { field: f.into() }
}

fn config_checks(target: &Target, config: &Value, now: SystemTime, out: &mut Vec<Finding>) {
    let c = config.get("config").unwrap_or(&Value::Null);
    let user = c.get("User").and_then(Value::as_str).unwrap_or_default();
    if is_root(user) {
        let shown = if user.is_empty() { "unset" } else { user };
        out.push(Finding::new(
            "ESB-I-001",
            target,
            field("config.User"),
            format!("User is {shown}: the image runs as root"),
        ));
    }
    let test = c.pointer("/Healthcheck/Test").and_then(Value::as_array);
    let none = test.is_none_or(|t| t.first().and_then(Value::as_str) == Some("NONE"));
    if none {
        out.push(Finding::new(
            "ESB-I-002",
            target,
            field("config.Healthcheck"),
            "no HEALTHCHECK",
        ));
    }
    let env = c.get("Env").and_then(Value::as_array);
    for (i, e) in env.into_iter().flatten().enumerate() {
        let Some((k, v)) = e.as_str().and_then(|e| e.split_once('=')) else {
            continue;
        };
        if let Some(why) = secrets::assignment(k, v) {
            let m = format!("Env {k}: {why}");
            out.push(Finding::new(
                "ESB-I-006",
                target,
                field(&format!("config.Env[{i}]")),
                m,
            ));
        }
    }
    history_checks(target, config, out);
    name_checks(target, out);
    age_check(target, config, now, out);
}

fn history_checks(target: &Target, config: &Value, out: &mut Vec<Finding>) {
    let history = config.get("history").and_then(Value::as_array);
    for (i, h) in history.into_iter().flatten().enumerate() {
        let Some(step) = h.get("created_by").and_then(Value::as_str) else {
            continue;
        };
        let at = || field(&format!("history[{i}]"));
        let words = shell::words(step);
        if let Some(dest) = added_to(&words) {
            // A base image's root file system arrives as `ADD … in /`.
            if dest != "/" {
                let m = format!("a step used ADD (into {dest})");
                out.push(Finding::new("ESB-I-005", target, at(), m));
            }
        }
        let segments = shell::segments(history_command(step));
        if segments.iter().any(|s| s.words.iter().any(|w| w == "sudo")) {
            out.push(Finding::new("ESB-I-009", target, at(), "a step ran sudo"));
        }
        if let Some(update) = crate::containerfile::lone_update(&segments) {
            let m = format!("{update} with no install in the same step");
            out.push(Finding::new("ESB-I-003", target, at(), m));
        }
        for w in &words {
            let Some((k, v)) = w.split_once('=') else {
                continue;
            };
            if let Some(why) = secrets::assignment(k, v) {
                let m = format!("history sets {k}: {why}");
                out.push(Finding::new("ESB-I-006", target, at(), m));
            }
        }
    }
}

/// Where an ADD step put its files. Docker writes `/bin/sh -c #(nop) ADD
/// file:… in /dest`, BuildKit `ADD src /dest # buildkit`, and estiba the
/// instruction as written.
fn added_to(words: &[String]) -> Option<&str> {
    let p = words.iter().position(|w| w == "ADD")?;
    let rest: Vec<&str> = words[p + 1..]
        .iter()
        .map(String::as_str)
        .filter(|w| *w != "#" && *w != "buildkit" && !w.starts_with("--"))
        .collect();
    match rest.iter().position(|w| *w == "in") {
        Some(i) => rest.get(i + 1).copied(),
        None if rest.len() >= 2 => rest.last().copied(),
        None => None,
    }
}

/// The shell command a history step ran: Docker records RUN as
/// `/bin/sh -c CMD` (after `|N ARG=… ` when build arguments were set) and
/// other instructions as `/bin/sh -c #(nop) …`, BuildKit as `RUN /bin/sh
/// -c CMD # buildkit`, estiba as `RUN CMD`.
fn history_command(step: &str) -> &str {
    let body = match step.find(" -c ") {
        Some(i) => &step[i + 4..],
        None => step,
    };
    let body = body.trim_start();
    if body.starts_with("#(nop)") {
        return "";
    }
    let body = body.strip_suffix("# buildkit").unwrap_or(body);
    // estiba and buildah record the instruction as written.
    body.strip_prefix("RUN ").unwrap_or(body)
}

/// ESB-I-011: how the image was named. Ids and digests are exact.
fn name_checks(target: &Target, out: &mut Vec<Finding>) {
    let name = target.name.as_str();
    if name.contains('@') || name.starts_with("sha256:") || looks_like_id(name) {
        return;
    }
    let last = name.rsplit('/').next().unwrap_or(name);
    let message = match last.split_once(':') {
        None => format!("{name} has no tag, so it means latest"),
        Some((_, "latest")) => format!("{name} is the moving latest tag"),
        Some(_) => return,
    };
    out.push(Finding::new("ESB-I-011", target, field("name"), message));
}

fn looks_like_id(name: &str) -> bool {
    name.len() >= 12 && name.chars().all(|c| c.is_ascii_hexdigit())
}

fn age_check(target: &Target, config: &Value, now: SystemTime, out: &mut Vec<Finding>) {
    let Some(created) = config.get("created").and_then(Value::as_str) else {
        return;
    };
    let Ok(at) = humantime::parse_rfc3339_weak(
        created
            .trim_end_matches('Z')
            .split('.')
            .next()
            .unwrap_or(created),
    ) else {
        return;
    };
    if let Ok(age) = now.duration_since(at) {
        if age > OLD {
            let days = age.as_secs() / 86_400;
            let m = format!("built {days} days ago ({created})");
            out.push(Finding::new("ESB-I-012", target, field("created"), m));
        }
    }
}

/// Reads the layers into the merged file system.
fn merge(image: &str, layers: Vec<Box<dyn Read + '_>>) -> Result<BTreeMap<String, File>> {
    let mut files: BTreeMap<String, File> = BTreeMap::new();
    for (n, layer) in layers.into_iter().enumerate() {
        let bad = |e: std::io::Error| Error::Image {
            image: image.to_string(),
            message: format!("layer {}: {e}", n + 1),
        };
        let mut archive = tar::Archive::new(layer);
        for entry in archive.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            let raw = entry.path().map_err(bad)?.to_string_lossy().into_owned();
            let path = clean(&raw);
            let (dir, name) = match path.rsplit_once('/') {
                Some((d, n)) => (d.to_string(), n.to_string()),
                None => (String::new(), path.clone()),
            };
            if name == ".wh..wh..opq" {
                remove_under(&mut files, &dir, |f| f.layer < n);
                continue;
            }
            if let Some(hidden) = name.strip_prefix(".wh.") {
                let gone = if dir.is_empty() {
                    hidden.to_string()
                } else {
                    format!("{dir}/{hidden}")
                };
                files.remove(&gone);
                remove_under(&mut files, &gone, |_| true);
                continue;
            }
            let header = entry.header();
            let mode = header.mode().map_err(bad)?;
            let regular = header.entry_type().is_file();
            let is_dir = header.entry_type().is_dir();
            let size = header.size().map_err(bad)?;
            let mut file = File {
                mode,
                layer: n,
                private_key: false,
                empty_passwords: Vec::new(),
            };
            if regular && size <= KEY_SCAN_LIMIT {
                let mut body = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
                entry.read_to_end(&mut body).map_err(bad)?;
                file.private_key = secrets::private_key(&body);
                if path == "etc/shadow" {
                    file.empty_passwords = empty_passwords(&body);
                }
            }
            // A directory replaced by a file hides what was under it.
            if !is_dir {
                remove_under(&mut files, &path, |_| true);
            }
            files.insert(path, file);
        }
    }
    Ok(files)
}

/// A tar path as a merged-tree key: no leading `./` or `/`, no trailing `/`.
fn clean(raw: &str) -> String {
    let p = raw.trim_start_matches("./").trim_start_matches('/');
    p.trim_end_matches('/').to_string()
}

/// Removes the entries strictly under `dir` that `which` picks.
fn remove_under(files: &mut BTreeMap<String, File>, dir: &str, which: impl Fn(&File) -> bool) {
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let doomed: Vec<String> = files
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .filter(|(_, f)| which(f))
        .map(|(k, _)| k.clone())
        .collect();
    for k in doomed {
        files.remove(&k);
    }
}

fn empty_passwords(shadow: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(shadow)
        .lines()
        .filter_map(|l| {
            let mut fields = l.split(':');
            let user = fields.next()?;
            let password = fields.next()?;
            (!user.is_empty() && password.is_empty()).then(|| user.to_string())
        })
        .collect()
}

fn file_checks(target: &Target, files: &BTreeMap<String, File>, out: &mut Vec<Finding>) {
    let at = |p: &str| Location::Path {
        path: format!("/{p}"),
    };
    let mut caches: Vec<&str> = Vec::new();
    for (path, f) in files {
        if f.mode & 0o6000 != 0 {
            let bits = match f.mode & 0o6000 {
                0o6000 => "setuid and setgid",
                0o4000 => "setuid",
                _ => "setgid",
            };
            let m = format!("/{path} is {bits} ({:o})", f.mode & 0o7777);
            out.push(Finding::new("ESB-I-004", target, at(path), m));
        }
        if secrets::credential_file(path) {
            let m = format!("/{path} is a credential file");
            out.push(Finding::new("ESB-I-007", target, at(path), m));
        }
        if f.private_key {
            let m = format!("/{path} holds a private key");
            out.push(Finding::new("ESB-I-008", target, at(path), m));
        }
        for user in &f.empty_passwords {
            let m = format!("{user} has an empty password in /{path}");
            out.push(Finding::new("ESB-I-013", target, at(path), m));
        }
        if path == "usr/bin/sudo" || path == "bin/sudo" {
            out.push(Finding::new(
                "ESB-I-009",
                target,
                at(path),
                "sudo is installed",
            ));
        }
        let apt = path.starts_with("var/lib/apt/lists/")
            && !path.ends_with("/lock")
            && !path.contains("/partial");
        let apk = path.starts_with("var/cache/apk/");
        if (apt || apk) && !caches.iter().any(|c| path.starts_with(c)) {
            caches.push(if apt {
                "var/lib/apt/lists/"
            } else {
                "var/cache/apk/"
            });
        }
    }
    for c in caches {
        let dir = c.trim_end_matches('/');
        let m = format!("/{dir} still holds the package index");
        out.push(Finding::new("ESB-I-010", target, at(dir), m));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn trust_by_registry_and_signature() {
        let ids = |f: Vec<Finding>| f.iter().map(|f| f.rule.id).collect::<Vec<_>>();
        let trusted = vec!["reg.internal:5000".to_string()];
        let from = |registry, signed| Provenance { registry, signed };
        assert!(trust("a", from(Some("reg.internal:5000"), false), &trusted, false).is_empty());
        assert_eq!(
            ids(trust("a", from(Some("docker.io"), true), &trusted, true)),
            ["ESB-I-014"]
        );
        assert_eq!(
            ids(trust("a", from(None, false), &trusted, true)),
            ["ESB-I-015"]
        );
        assert!(trust("a", from(Some("x.io"), false), &[], false).is_empty());
        assert_eq!(
            registry_of("reg.internal:5000/app:1"),
            Some("reg.internal:5000")
        );
        assert_eq!(registry_of("localhost/app"), Some("localhost"));
        assert_eq!(registry_of("library/busybox:1"), None);
        assert_eq!(registry_of("busybox"), None);
    }

    /// A layer of (path, mode, content); a path ending in `/` is a directory.
    fn layer(entries: &[(&str, u32, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, mode, body) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(*mode);
            if path.ends_with('/') {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, path, std::io::empty()).unwrap();
            } else {
                h.set_size(body.len() as u64);
                b.append_data(&mut h, path, body.as_bytes()).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    fn ids_of(name: &str, config: Value, layers: Vec<Vec<u8>>) -> Vec<(&'static str, String)> {
        let input = Input {
            name: name.into(),
            config,
            layers: layers
                .into_iter()
                .map(|l| Box::new(std::io::Cursor::new(l)) as Box<dyn Read>)
                .collect(),
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        };
        audit(input)
            .unwrap()
            .into_iter()
            .map(|f| (f.rule.id, f.location.describe()))
            .collect()
    }

    #[test]
    fn a_setuid_bit_removed_by_a_later_layer_is_not_a_finding() {
        let lower = layer(&[
            ("bin/", 0o755, ""),
            ("bin/su", 0o4755, "x"),
            ("bin/once-suid", 0o4755, "x"),
            ("bin/once-sgid", 0o2755, "x"),
            ("gone/", 0o755, ""),
            ("gone/mount", 0o4755, "x"),
            ("opaque/", 0o755, ""),
            ("opaque/ping", 0o4755, "x"),
        ]);
        let upper = layer(&[
            ("bin/once-suid", 0o755, "x"),
            ("bin/once-sgid", 0o755, "x"),
            ("bin/.wh.nothing", 0o644, ""),
            ("gone/.wh.mount", 0o644, ""),
            ("opaque/.wh..wh..opq", 0o644, ""),
            ("opaque/mine", 0o2755, "x"),
        ]);
        let config = json!({"config": {"User": "app", "Healthcheck": {"Test": ["CMD", "true"]}}});
        let found = ids_of("app:1", config, vec![lower, upper]);
        let suid: Vec<&str> = found
            .iter()
            .filter(|(id, _)| *id == "ESB-I-004")
            .map(|(_, p)| p.as_str())
            .collect();
        assert_eq!(suid, ["/bin/su", "/opaque/mine"]);
    }

    #[test]
    fn dockles_checkpoints_on_config_and_files() {
        let config = json!({
            "created": "2020-01-01T00:00:00Z",
            "config": {"User": "0:0", "Env": ["PATH=/bin", "MYSQL_PASSWD=secret"]},
            "history": [
                {"created_by": "/bin/sh -c #(nop) ADD file:abc in / "},
                {"created_by": "/bin/sh -c apt-get update"},
                {"created_by": "/bin/sh -c #(nop) ADD file:def in /app "},
                {"created_by": "|1 API_TOKEN=abc /bin/sh -c sudo make"},
                {"created_by": "/bin/sh -c apk update && apk add curl"},
                {"created_by": "RUN apt-get update"},
                {"created_by": "ADD notes.txt /app/"}
            ]
        });
        let files = layer(&[
            ("app/credentials.json", 0o644, "{}"),
            (
                "root/.ssh/key",
                0o600,
                "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA",
            ),
            ("etc/shadow", 0o640, "root:*:1::::::\nguest::1::::::\n"),
            ("usr/bin/sudo", 0o4755, "x"),
            ("var/lib/apt/lists/deb.debian.org_dists", 0o644, "x"),
        ]);
        let found = ids_of("app", config, vec![files]);
        let has = |id: &str, at: &str| found.iter().any(|(i, l)| *i == id && l == at);
        assert!(has("ESB-I-001", "config.User"), "{found:?}");
        assert!(has("ESB-I-002", "config.Healthcheck"));
        assert!(has("ESB-I-003", "history[1]"));
        assert!(has("ESB-I-005", "history[2]"));
        assert!(!has("ESB-I-005", "history[0]"), "the base's ADD is exempt");
        assert!(has("ESB-I-006", "config.Env[1]"));
        assert!(has("ESB-I-006", "history[3]"));
        assert!(has("ESB-I-007", "/app/credentials.json"));
        assert!(has("ESB-I-008", "/root/.ssh/key"));
        assert!(has("ESB-I-009", "history[3]"));
        assert!(has("ESB-I-009", "/usr/bin/sudo"));
        assert!(has("ESB-I-010", "/var/lib/apt/lists"));
        assert!(has("ESB-I-011", "name"));
        assert!(has("ESB-I-012", "created"));
        assert!(has("ESB-I-013", "/etc/shadow"));
        assert!(!found
            .iter()
            .any(|(i, l)| *i == "ESB-I-003" && l == "history[4]"));
        assert!(has("ESB-I-003", "history[5]"), "estiba's own history form");
        assert!(has("ESB-I-005", "history[6]"));
    }

    #[test]
    fn a_careful_image_has_no_findings() {
        let config = json!({
            "created": "2027-01-01T00:00:00Z",
            "config": {"User": "10001:10001", "Env": ["PATH=/bin"],
                       "Healthcheck": {"Test": ["CMD", "/check"]}},
            "history": [{"created_by": "/bin/sh -c #(nop) ADD file:abc in / "}]
        });
        let files = layer(&[("bin/", 0o755, ""), ("bin/app", 0o755, "x")]);
        assert_eq!(ids_of("app:1.0", config, vec![files]), []);
    }

    #[test]
    fn a_damaged_layer_is_an_error_naming_it() {
        let input = Input {
            name: "x:1".into(),
            config: json!({}),
            layers: vec![Box::new(std::io::Cursor::new(vec![0xffu8; 1024]))],
            now: SystemTime::now(),
        };
        let e = audit(input).unwrap_err().to_string();
        assert!(e.contains("image x:1: layer 1"), "{e}");
    }
}
