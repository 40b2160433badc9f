//! Task definition checks: CIS's container controls on ECS's fields. The
//! definition is first read as RegisterTaskDefinition reads it (so a file
//! the control plane would refuse is refused here, with its reason); the
//! checks then walk the JSON as written, so each finding carries a JSON
//! pointer and the line it is on.

use std::collections::HashMap;

use serde_json::Value;

use crate::catalog::TargetKind;
use crate::container::{beyond_default, engine_socket, sensitive_host_path};
use crate::finding::{Finding, Location, Target};
use crate::jsonpos;
use crate::{secrets, Error, Result};

/// What the caller adds to the file.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Registries images may come from (host or host:port; `docker.io`
    /// for Docker Hub's short names). Empty: ESB-T-014 is not checked.
    pub trusted_registries: Vec<String>,
}

/// Where the checks are, for building findings.
struct Ctx<'a> {
    target: Target,
    lines: HashMap<String, usize>,
    out: &'a mut Vec<Finding>,
}

impl Ctx<'_> {
    fn found(&mut self, id: &str, pointer: &str, message: String) {
        let line = self.line(pointer);
        self.out.push(Finding::new(
            id,
            &self.target,
            Location::Pointer {
                pointer: pointer.to_string(),
                line,
            },
            message,
        ));
    }

    /// The pointer's line, or its nearest ancestor's when the field is
    /// missing (a finding about an absent field points at its owner).
    fn line(&self, pointer: &str) -> usize {
        let mut p = pointer;
        loop {
            if let Some(l) = self.lines.get(p) {
                return *l;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return 1,
            }
        }
    }
}

/// Audits a task definition file's text.
pub fn audit(path: &str, text: &str, options: &Options) -> Result<Vec<Finding>> {
    estiba_ecs::taskdef::register(text).map_err(|e| Error::TaskDefinition {
        path: path.to_string(),
        message: e.to_string(),
    })?;
    let value: Value = serde_json::from_str(text).map_err(|e| Error::TaskDefinition {
        path: path.to_string(),
        message: e.to_string(),
    })?;
    // DescribeTaskDefinition's output wraps the definition.
    let (root, definition) = match value.get("taskDefinition") {
        Some(inner) if value.as_object().is_some_and(|o| o.len() == 1) => {
            ("/taskDefinition", inner)
        }
        _ => ("", &value),
    };
    let mut out = Vec::new();
    let mut ctx = Ctx {
        target: Target::new(TargetKind::TaskDefinition, path),
        lines: jsonpos::lines(text),
        out: &mut out,
    };
    task_level(&mut ctx, root, definition);
    let task_memory = definition.get("memory").is_some_and(|m| !m.is_null());
    let host_network = str_at(definition, "networkMode") == Some("host");
    let containers = definition
        .get("containerDefinitions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (i, c) in containers.iter().enumerate() {
        let at = format!("{root}/containerDefinitions/{i}");
        let name = str_at(c, "name").unwrap_or("?").to_string();
        let facts = Facts {
            at: &at,
            name: &name,
            task_memory,
            host_network,
        };
        container(&mut ctx, &facts, c, options);
    }
    Ok(out)
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn task_level(ctx: &mut Ctx<'_>, root: &str, d: &Value) {
    for (field, id, what) in [
        ("pidMode", "ESB-T-007", "process"),
        ("ipcMode", "ESB-T-008", "IPC"),
        ("networkMode", "ESB-T-009", "network"),
    ] {
        if str_at(d, field) == Some("host") {
            let m = format!("{field} is host: the task shares the host's {what} namespace");
            ctx.found(id, &format!("{root}/{field}"), m);
        }
    }
    let volumes = d.get("volumes").and_then(Value::as_array);
    for (k, v) in volumes.into_iter().flatten().enumerate() {
        let Some(source) = v.pointer("/host/sourcePath").and_then(Value::as_str) else {
            continue;
        };
        let at = format!("{root}/volumes/{k}/host/sourcePath");
        if engine_socket(source) {
            ctx.found(
                "ESB-T-006",
                &at,
                format!("{source} is a container engine's socket, or holds one"),
            );
        } else if sensitive_host_path(source) {
            ctx.found(
                "ESB-T-005",
                &at,
                format!("{source} is a sensitive host directory"),
            );
        }
    }
}

/// What a container's checks need from the task around it.
struct Facts<'a> {
    at: &'a str,
    name: &'a str,
    task_memory: bool,
    host_network: bool,
}

fn container(ctx: &mut Ctx<'_>, f: &Facts<'_>, c: &Value, options: &Options) {
    let (at, name) = (f.at, f.name);
    if c.get("privileged").and_then(Value::as_bool) == Some(true) {
        ctx.found(
            "ESB-T-001",
            &format!("{at}/privileged"),
            format!("{name} is privileged"),
        );
    }
    let user = str_at(c, "user");
    if f.host_network && user.is_none_or(crate::containerfile::is_root) {
        let m = format!(
            "{name} runs as {} under host networking",
            user.unwrap_or("root (unset)")
        );
        ctx.found("ESB-T-002", &format!("{at}/user"), m);
    }
    if c.get("readonlyRootFilesystem").and_then(Value::as_bool) != Some(true) {
        let m = format!("{name}'s root file system is writable");
        ctx.found("ESB-T-003", &format!("{at}/readonlyRootFilesystem"), m);
    }
    let added = c
        .pointer("/linuxParameters/capabilities/add")
        .and_then(Value::as_array);
    for (k, cap) in added.into_iter().flatten().enumerate() {
        let cap = cap.as_str().unwrap_or_default();
        if beyond_default(cap) {
            let m = format!("{name} adds {cap}");
            ctx.found(
                "ESB-T-004",
                &format!("{at}/linuxParameters/capabilities/add/{k}"),
                m,
            );
        }
    }
    // ECS refuses a container with neither memory nor memoryReservation
    // (without the task's memory); a reservation alone limits nothing.
    let limited = c.get("memory").is_some_and(|m| !m.is_null());
    if !limited && !f.task_memory {
        let m = format!("{name} has only a soft memory reservation, and the task no memory");
        ctx.found("ESB-T-010", &format!("{at}/memory"), m);
    }
    let essential = c.get("essential").and_then(Value::as_bool).unwrap_or(true);
    if essential && c.get("healthCheck").is_none_or(Value::is_null) {
        let m = format!("{name} is essential and has no healthCheck");
        ctx.found("ESB-T-011", &format!("{at}/healthCheck"), m);
    }
    let env = c.get("environment").and_then(Value::as_array);
    for (k, pair) in env.into_iter().flatten().enumerate() {
        let (Some(key), Some(value)) = (str_at(pair, "name"), str_at(pair, "value")) else {
            continue;
        };
        if let Some(why) = secrets::assignment(key, value) {
            let m = format!("{name}: environment {key}: {why}");
            ctx.found("ESB-T-012", &format!("{at}/environment/{k}/value"), m);
        }
    }
    if let Some(image) = str_at(c, "image") {
        image_checks(ctx, &format!("{at}/image"), name, image, options);
    }
    if c.get("logConfiguration").is_none_or(Value::is_null) {
        let m = format!("{name} has no logConfiguration");
        ctx.found("ESB-T-015", &format!("{at}/logConfiguration"), m);
    }
}

fn image_checks(ctx: &mut Ctx<'_>, at: &str, name: &str, image: &str, options: &Options) {
    if !image.contains('@') {
        ctx.found(
            "ESB-T-013",
            at,
            format!("{name}'s image {image} is named by tag"),
        );
    }
    if options.trusted_registries.is_empty() {
        return;
    }
    let registry = registry_of(image);
    let trusted = options
        .trusted_registries
        .iter()
        .any(|t| t.eq_ignore_ascii_case(&registry));
    if !trusted {
        let m = format!("{name}'s image comes from {registry}, which is not trusted");
        ctx.found("ESB-T-014", at, m);
    }
}

/// The registry part of an image reference, as Docker reads it: the first
/// component if it has a dot or a port or is localhost, else Docker Hub.
pub fn registry_of(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => {
            first.to_ascii_lowercase()
        }
        _ => "docker.io".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str, trusted: &[&str]) -> Vec<(String, String, usize)> {
        let options = Options {
            trusted_registries: trusted.iter().map(|s| s.to_string()).collect(),
        };
        audit("td.json", text, &options)
            .unwrap()
            .into_iter()
            .map(|f| match f.location {
                Location::Pointer { pointer, line } => (f.rule.id.to_string(), pointer, line),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    const BAD: &str = r#"{
  "family": "bad",
  "networkMode": "host",
  "pidMode": "host",
  "ipcMode": "host",
  "volumes": [
    {"name": "etc", "host": {"sourcePath": "/etc"}},
    {"name": "sock", "host": {"sourcePath": "/var/run/docker.sock"}},
    {"name": "data", "host": {"sourcePath": "/srv/data"}}
  ],
  "containerDefinitions": [
    {
      "name": "app",
      "image": "quay.io/acme/app:1.2", "memoryReservation": 64,
      "privileged": true,
      "linuxParameters": {"capabilities": {"add": ["NET_BIND_SERVICE", "SYS_ADMIN"]}},
      "environment": [
        {"name": "DATABASE_PASSWORD", "value": "hunter2"},
        {"name": "REGION", "value": "eu-west-1"},
        {"name": "ID", "value": "AKIAIOSFODNN7EXAMPLE"}
      ]
    }
  ]
}"#;

    #[test]
    fn every_control_is_found_with_its_pointer_and_line() {
        let got = run(BAD, &["registry.example.com"]);
        let find = |id: &str| -> Vec<(String, usize)> {
            got.iter()
                .filter(|(r, _, _)| r == id)
                .map(|(_, p, l)| (p.clone(), *l))
                .collect()
        };
        let c = "/containerDefinitions/0";
        assert_eq!(find("ESB-T-001"), [(format!("{c}/privileged"), 15)]);
        assert_eq!(find("ESB-T-002"), [(format!("{c}/user"), 12)]);
        assert_eq!(find("ESB-T-003").len(), 1);
        assert_eq!(
            find("ESB-T-004"),
            [(format!("{c}/linuxParameters/capabilities/add/1"), 16)]
        );
        assert_eq!(
            find("ESB-T-005"),
            [("/volumes/0/host/sourcePath".into(), 7)]
        );
        assert_eq!(
            find("ESB-T-006"),
            [("/volumes/1/host/sourcePath".into(), 8)]
        );
        assert_eq!(find("ESB-T-007"), [("/pidMode".into(), 4)]);
        assert_eq!(find("ESB-T-008"), [("/ipcMode".into(), 5)]);
        assert_eq!(find("ESB-T-009"), [("/networkMode".into(), 3)]);
        assert_eq!(find("ESB-T-010").len(), 1);
        assert_eq!(find("ESB-T-011").len(), 1);
        assert_eq!(
            find("ESB-T-012"),
            [
                (format!("{c}/environment/0/value"), 18),
                (format!("{c}/environment/2/value"), 20)
            ]
        );
        assert_eq!(find("ESB-T-013"), [(format!("{c}/image"), 14)]);
        assert_eq!(find("ESB-T-014"), [(format!("{c}/image"), 14)]);
        assert_eq!(find("ESB-T-015").len(), 1);
    }

    #[test]
    fn a_careful_definition_has_no_findings() {
        let good = r#"{"taskDefinition": {
          "family": "good", "networkMode": "awsvpc", "memory": "512", "cpu": "256",
          "requiresCompatibilities": ["FARGATE"],
          "containerDefinitions": [{
            "name": "app", "image": "registry.example.com/app@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "readonlyRootFilesystem": true, "user": "1000",
            "healthCheck": {"command": ["CMD", "/app/check"]},
            "environment": [{"name": "DB_PASSWORD_FILE", "value": "/run/secrets/db"}],
            "secrets": [{"name": "DB_PASSWORD", "valueFrom": "arn:aws:secretsmanager:us-east-1:1:secret:db"}],
            "logConfiguration": {"logDriver": "awslogs", "options": {}}
          }]}}"#;
        assert_eq!(run(good, &["registry.example.com"]), []);
    }

    #[test]
    fn a_definition_ecs_would_refuse_is_refused_with_ecss_reason() {
        for text in [
            "",
            "[]",
            "{\"family\": \"x\"}",
            "{\"family\": 3, \"containerDefinitions\": []}",
        ] {
            let e = audit("td.json", text, &Options::default()).unwrap_err();
            assert!(matches!(e, Error::TaskDefinition { .. }), "{text}: {e}");
            assert!(e.to_string().starts_with("td.json: "), "{e}");
        }
    }

    #[test]
    fn registries_are_read_as_docker_reads_them() {
        assert_eq!(registry_of("busybox"), "docker.io");
        assert_eq!(registry_of("library/busybox:1"), "docker.io");
        assert_eq!(registry_of("localhost/x"), "localhost");
        assert_eq!(registry_of("127.0.0.1:5000/x:1"), "127.0.0.1:5000");
    }
}
