//! `estiba audit`: the corpus of Containerfiles and task definitions in
//! tests/fixtures/audit (each with the rules it must and must not yield),
//! SARIF checked against the SARIF 2.1.0 schema with python3-jsonschema
//! and against GitHub's required fields, the exit code, the ignore file,
//! bad input, and images built by estiba (the layer-merge case), as root
//! and as a fresh user.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{stderr, Estiba};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audit")
}

/// `estiba audit …` as this user, in `dir`: files need no store.
fn audit(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_estiba"))
        .arg("audit")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn json_of(out: &Output) -> Value {
    assert!(out.status.success(), "audit failed: {}", stderr(out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn rules_in(report: &Value) -> BTreeSet<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap().to_string())
        .collect()
}

fn kind_args(file: &str) -> Vec<&'static str> {
    if file.ends_with(".json") {
        vec!["taskdef", "--trust-registry", "registry.internal:5000"]
    } else {
        vec!["containerfile"]
    }
}

#[test]
fn every_corpus_item_yields_its_rules_and_none_it_must_not() {
    let dir = fixtures();
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let mut checked = 0;
    for (file, want) in expected.as_object().unwrap() {
        if file == "_" {
            continue;
        }
        let mut args = kind_args(file);
        args.extend([file.as_str(), "--format", "json"]);
        let got = rules_in(&json_of(&audit(&dir, &args)));
        for id in want["yields"].as_array().unwrap() {
            assert!(
                got.contains(id.as_str().unwrap()),
                "{file}: {id} missing from {got:?}"
            );
        }
        for id in want["not"].as_array().unwrap() {
            assert!(
                !got.contains(id.as_str().unwrap()),
                "{file}: {id} should not be in {got:?}"
            );
        }
        checked += 1;
    }
    // Every fixture is in the expectations, so none is silently unchecked.
    let files = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name() != "expected.json")
        .count();
    assert_eq!(checked, files);
}

/// Validates SARIF against the OASIS schema (tests/data, from
/// oasis-tcs/sarif-spec@e058381) with Debian's python3-jsonschema.
fn validate_sarif(sarif: &Path) {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sarif-schema-2.1.0.json");
    let script = "import json, sys, jsonschema\n\
                  schema = json.load(open(sys.argv[1]))\n\
                  jsonschema.Draft4Validator(schema).validate(json.load(open(sys.argv[2])))\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(schema)
        .arg(sarif)
        .output()
        .unwrap();
    assert!(out.status.success(), "SARIF invalid: {}", stderr(&out));
}

/// What GitHub code scanning requires beyond the schema.
fn github_fields(sarif: &Value) {
    assert!(sarif["$schema"].is_string());
    for run in sarif["runs"].as_array().unwrap() {
        let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
        for r in rules {
            for field in [
                "/id",
                "/shortDescription/text",
                "/fullDescription/text",
                "/help/text",
            ] {
                assert!(
                    r.pointer(field).is_some_and(Value::is_string),
                    "{field} in {r}"
                );
            }
            let s: f64 = r["properties"]["security-severity"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((0.0..=10.0).contains(&s));
        }
        assert!(run["automationDetails"]["id"]
            .as_str()
            .unwrap()
            .ends_with('/'));
        for result in run["results"].as_array().unwrap() {
            assert!(result["message"]["text"].is_string());
            assert!(result["partialFingerprints"]["primaryLocationLineHash"].is_string());
            let location = &result["locations"][0]["physicalLocation"];
            assert!(location["region"]["startLine"].as_u64().unwrap() >= 1);
            let uri = location["artifactLocation"]["uri"].as_str().unwrap();
            assert!(!uri.starts_with('/'), "{uri} must be relative");
        }
    }
}

#[test]
fn sarif_validates_against_the_schema_and_carries_githubs_fields() {
    if !common::require_tool("python3") {
        return;
    }
    let dir = fixtures();
    let work = tempfile::tempdir().unwrap();
    for (kind, file) in [
        ("containerfile", "no-user.Containerfile"),
        ("taskdef", "privileged.taskdef.json"),
    ] {
        let out = audit(&dir, &[kind, file, "--format", "sarif"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let path = work.path().join(format!("{kind}.sarif"));
        std::fs::write(&path, &out.stdout).unwrap();
        validate_sarif(&path);
        let sarif: Value = serde_json::from_slice(&out.stdout).unwrap();
        github_fields(&sarif);
        let first = &sarif["runs"][0]["results"][0]["locations"][0]["physicalLocation"];
        assert_eq!(first["artifactLocation"]["uri"], file);
    }
    // The same findings twice give the same fingerprints.
    let twice: Vec<Value> = (0..2)
        .map(|_| {
            serde_json::from_slice(
                &audit(
                    &dir,
                    &[
                        "containerfile",
                        "no-user.Containerfile",
                        "--format",
                        "sarif",
                    ],
                )
                .stdout,
            )
            .unwrap()
        })
        .collect();
    assert_eq!(
        twice[0]["runs"][0]["results"],
        twice[1]["runs"][0]["results"]
    );
}

#[test]
fn the_exit_code_severity_and_ignore_file_gate_a_run() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    std::fs::write(dir.join("Containerfile"), "FROM alpine:3.19\nUSER root\n").unwrap();
    let code = |args: &[&str]| audit(dir, args).status.code();
    assert_eq!(code(&["containerfile", "Containerfile"]), Some(0));
    assert_eq!(
        code(&["containerfile", "Containerfile", "--exit-code", "4"]),
        Some(4)
    );
    let high = [
        "containerfile",
        "Containerfile",
        "--exit-code",
        "4",
        "--severity",
        "critical",
    ];
    assert_eq!(code(&high), Some(0));
    // .estibaignore in the working directory is read by default.
    std::fs::write(
        dir.join(".estibaignore"),
        "hadolint:DL3002   # root for now\nESB-F-013 Containerfile exp:2999-01-01\n",
    )
    .unwrap();
    assert_eq!(
        code(&["containerfile", "Containerfile", "--exit-code", "4"]),
        Some(0)
    );
    let report = json_of(&audit(
        dir,
        &["containerfile", "Containerfile", "--format", "json"],
    ));
    assert_eq!(report["ignored"], 2);
    assert_eq!(report["score"], 100);
    // An expired entry ignores nothing.
    std::fs::write(dir.join(".estibaignore"), "ESB-F-002 * exp:2020-01-01\n").unwrap();
    assert_eq!(
        code(&["containerfile", "Containerfile", "--exit-code", "4"]),
        Some(4)
    );
    // The table names the rule and its references.
    std::fs::remove_file(dir.join(".estibaignore")).unwrap();
    let table = String::from_utf8(audit(dir, &["containerfile", "Containerfile"]).stdout).unwrap();
    assert!(
        table.contains("ESB-F-002") && table.contains("CIS 4.1") && table.contains("line 2"),
        "{table}"
    );
    // And the catalog lists itself.
    let rules: Value =
        serde_json::from_slice(&audit(dir, &["rules", "--format", "json"]).stdout).unwrap();
    let ids: Vec<&str> = rules
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"ESB-T-006") && ids.len() >= 40, "{ids:?}");
}

#[test]
fn bad_input_gets_a_clear_error_and_no_report() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let cases: &[(&str, &str, &[&str], &str)] = &[
        (
            "Containerfile",
            "FROM a:1\nRUNN true\n",
            &["containerfile"],
            "Containerfile: line 2: unknown instruction",
        ),
        ("Containerfile", "", &["containerfile"], "no FROM"),
        (
            "Containerfile",
            "FROM a:1\nRUN <<EOF\ntrue\n",
            &["containerfile"],
            "never closed",
        ),
        ("td.json", "{\"family\": ", &["taskdef"], "td.json: "),
        (
            "td.json",
            "{\"family\": \"x\", \"containerDefinitions\": [{\"name\": \"a\"}]}",
            &["taskdef"],
            "td.json: ",
        ),
        ("td.json", "[1, 2]", &["taskdef"], "td.json: "),
    ];
    for (file, text, kind, words) in cases {
        std::fs::write(dir.join(file), text).unwrap();
        let mut args = kind.to_vec();
        args.push(file);
        let out = audit(dir, &args);
        assert_eq!(out.status.code(), Some(125), "{text:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(words), "{text:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{text:?}: a report was printed");
    }
    std::fs::write(dir.join("Containerfile"), "FROM a:1\n").unwrap();
    for (ignore, words) in [
        ("ESB-Z-1\n", ".estibaignore: line 1: no rule"),
        ("\ncis:4.1 x exp:soon\n", "line 2: \"soon\" is not a date"),
    ] {
        std::fs::write(dir.join(".estibaignore"), ignore).unwrap();
        let out = audit(dir, &["containerfile", "Containerfile"]);
        assert_eq!(out.status.code(), Some(125));
        assert!(stderr(&out).contains(words), "{ignore:?}: {}", stderr(&out));
    }
    std::fs::remove_file(dir.join(".estibaignore")).unwrap();
    for args in [
        &["containerfile", "Containerfile", "--format", "xml"][..],
        &["containerfile", "Containerfile", "--severity", "urgent"][..],
        &["containerfile", "missing"][..],
    ] {
        let out = audit(dir, args);
        assert_eq!(out.status.code(), Some(125), "{args:?}");
        assert!(!stderr(&out).is_empty());
    }
}

const IMAGE: &str = r#"FROM busybox
RUN cp /bin/busybox /bin/keep-suid && chmod 4755 /bin/keep-suid \
 && cp /bin/busybox /bin/once-suid && chmod 4755 /bin/once-suid \
 && cp /bin/busybox /bin/once-sgid && chmod 2755 /bin/once-sgid
RUN chmod a-s /bin/once-suid /bin/once-sgid
ENV MYSQL_PASSWD=hunter2
COPY credentials.json /app/credentials.json
COPY deploy-key /home/app/.ssh/deploy-key
ADD notes.txt /app/
RUN echo 'guest::19000:0:99999:7:::' >> /etc/shadow
"#;

/// An image built by estiba with Dockle's checkpoints in it, and its
/// layer-merge case: setuid bits one layer adds and a later one removes.
fn images_are_audited_from_their_merged_layers(e: &Estiba) {
    let who = e.label();
    let ctx = e.scratch("ctx");
    std::fs::write(ctx.join("Containerfile"), IMAGE).unwrap();
    std::fs::write(ctx.join("credentials.json"), "{\"token\": \"x\"}").unwrap();
    std::fs::write(ctx.join("deploy-key"), "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n").unwrap();
    std::fs::write(ctx.join("notes.txt"), "notes").unwrap();
    if let Some(user) = e.user {
        let chown = Command::new("chown").arg("-R").arg(user).arg(&ctx).status();
        assert!(chown.unwrap().success());
    }
    let built = e.run(&["build", "-q", "-t", "audited:1", ctx.to_str().unwrap()]);
    assert!(built.status.success(), "[{who}] build: {}", stderr(&built));
    let out = e.run(&["audit", "image", "audited:1", "--format", "json"]);
    assert!(out.status.success(), "[{who}] audit: {}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let at = |id: &str| -> BTreeSet<String> {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["rule"] == id)
            .map(|f| {
                let l = &f["location"];
                l["path"]
                    .as_str()
                    .or(l["field"].as_str())
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    };
    let suid = at("ESB-I-004");
    assert!(suid.contains("/bin/keep-suid"), "[{who}] {suid:?}");
    assert!(
        !suid.contains("/bin/once-suid") && !suid.contains("/bin/once-sgid"),
        "[{who}] a bit removed by a later layer was flagged: {suid:?}"
    );
    assert!(at("ESB-I-001").contains("config.User"), "[{who}]");
    assert!(at("ESB-I-002").contains("config.Healthcheck"), "[{who}]");
    assert!(!at("ESB-I-006").is_empty(), "[{who}] the ENV secret");
    assert!(at("ESB-I-007").contains("/app/credentials.json"), "[{who}]");
    assert!(
        at("ESB-I-008").contains("/home/app/.ssh/deploy-key"),
        "[{who}]"
    );
    assert!(!at("ESB-I-005").is_empty(), "[{who}] ADD in the history");
    assert!(
        at("ESB-I-013").contains("/etc/shadow"),
        "[{who}] the empty password"
    );
    assert!(at("ESB-I-011").is_empty(), "[{who}] audited:1 is tagged");
    // By SARIF, with stable pseudo-paths for what is not a file.
    let out = e.run(&["audit", "image", "audited:1", "--format", "sarif"]);
    let sarif: Value = serde_json::from_slice(&out.stdout).unwrap();
    github_fields(&sarif);
    let uris: BTreeSet<&str> = sarif["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert!(
        uris.contains("estiba/image/audited:1/bin/keep-suid"),
        "[{who}] {uris:?}"
    );
    let missing = e.run(&["audit", "image", "no-such-image:1"]);
    assert_eq!(missing.status.code(), Some(125), "[{who}]");
    assert!(
        stderr(&missing).contains("no-such-image"),
        "[{who}] {}",
        stderr(&missing)
    );
}

root_and_rootless!(images_are_audited_from_their_merged_layers);

const POLICY: &str = r#"
default = "warn"
[rules]
"cis:5.5" = "enforce"       # privileged containers are refused
"ESB-C-004" = "enforce"     # and engine sockets bound in
"cis:4.6" = "off"

[[exceptions]]
rules = ["cis:5.5"]
images = ["ops/*"]
"#;

/// `estiba run` and `create` under a policy: refused with exit 125 naming
/// the rules, nothing created; a compliant container runs; a warned rule
/// logs and passes; exceptions by image; and the user's default file.
fn run_and_create_are_judged_by_the_policy(e: &Estiba) {
    let who = e.label();
    let dir = e.scratch("policy");
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let p = policy.to_str().unwrap();
    let refused = e.run(&[
        "--policy",
        p,
        "run",
        "--rm",
        "--privileged",
        "busybox",
        "true",
    ]);
    assert_eq!(
        refused.status.code(),
        Some(125),
        "[{who}] {}",
        stderr(&refused)
    );
    let why = stderr(&refused);
    assert!(
        why.contains("refused by policy: ESB-C-001") && why.contains("CIS 5.5"),
        "[{who}] {why}"
    );
    let sock_dir = dir.join("estiba.sock");
    std::fs::write(&sock_dir, "").unwrap();
    let bind = format!("{}:/run/estiba.sock", sock_dir.display());
    let created = e.run(&["--policy", p, "create", "-v", &bind, "busybox", "true"]);
    assert_eq!(
        created.status.code(),
        Some(125),
        "[{who}] {}",
        stderr(&created)
    );
    assert!(
        stderr(&created).contains("ESB-C-004"),
        "[{who}] {}",
        stderr(&created)
    );
    assert_eq!(
        e.ok(&["ps", "-aq"]).trim(),
        "",
        "[{who}] a refused container was left"
    );
    // Compliant: runs, and the warned rules are logged.
    let ok = e.run(&["--policy", p, "run", "--rm", "busybox", "echo", "admitted"]);
    assert!(ok.status.success(), "[{who}] {}", stderr(&ok));
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "admitted\n");
    assert!(
        stderr(&ok).contains("policy: ESB-C-010"),
        "[{who}] {}",
        stderr(&ok)
    );
    assert!(!stderr(&ok).contains("ESB-I-002"), "[{who}] cis:4.6 is off");
    // An exception by image lets a privileged container of ops/* through.
    e.ok(&["tag", "busybox", "ops/exporter:1"]);
    let ops = e.run(&[
        "--policy",
        p,
        "run",
        "--rm",
        "--privileged",
        "ops/exporter:1",
        "true",
    ]);
    assert!(ops.status.success(), "[{who}] {}", stderr(&ops));
    // ESTIBA_POLICY names the file too; the user's own file is the default.
    let mut by_env = e.cmd_env(
        &[("ESTIBA_POLICY", p)],
        &["run", "--rm", "--privileged", "busybox", "true"],
    );
    assert_eq!(by_env.output().unwrap().status.code(), Some(125), "[{who}]");
    let user_dir = e.path().join(".config/estiba");
    std::fs::create_dir_all(&user_dir).unwrap();
    std::fs::copy(&policy, user_dir.join("policy.toml")).unwrap();
    if let Some(user) = e.user {
        let chown = Command::new("chown")
            .arg("-R")
            .arg(user)
            .arg(e.path().join(".config"))
            .status();
        assert!(chown.unwrap().success());
    }
    let by_default = e.run(&["run", "--rm", "--privileged", "busybox", "true"]);
    assert_eq!(
        by_default.status.code(),
        Some(125),
        "[{who}] {}",
        stderr(&by_default)
    );
    // A broken policy is an error naming the file, not silence.
    std::fs::write(user_dir.join("policy.toml"), "default = \"sometimes\"\n").unwrap();
    let broken = e.run(&["run", "--rm", "busybox", "true"]);
    assert_eq!(broken.status.code(), Some(125), "[{who}]");
    assert!(
        stderr(&broken).contains("policy.toml"),
        "[{who}] {}",
        stderr(&broken)
    );
    std::fs::remove_file(user_dir.join("policy.toml")).unwrap();
    // `audit policy test` shows what would be refused, and exits 1.
    let test = e.run(&["--policy", p, "audit", "policy", "test", "busybox"]);
    assert_eq!(test.status.code(), Some(0), "[{who}] {}", stderr(&test));
    assert!(
        String::from_utf8_lossy(&test.stdout).contains("WARN    ESB-I-001"),
        "[{who}]"
    );
    let taskdef = fixtures().join("privileged.taskdef.json");
    let test = e.run(&[
        "--policy",
        p,
        "audit",
        "policy",
        "test",
        taskdef.to_str().unwrap(),
    ]);
    assert_eq!(test.status.code(), Some(1), "[{who}] {}", stderr(&test));
    assert!(
        String::from_utf8_lossy(&test.stdout).contains("REFUSE  ESB-T-001"),
        "[{who}]"
    );
    // And `audit container` judges a container as it was created.
    e.ok(&[
        "create", "--name", "held", "--pid", "host", "busybox", "sleep", "1",
    ]);
    let report: Value = serde_json::from_slice(
        &e.run(&["audit", "container", "held", "--format", "json"])
            .stdout,
    )
    .unwrap();
    assert!(rules_in(&report).contains("ESB-C-006"), "[{who}] {report}");
    e.ok(&["rm", "held"]);
}

root_and_rootless!(run_and_create_are_judged_by_the_policy);

#[test]
fn the_control_plane_refuses_task_definitions_its_policy_enforces() {
    if !common::require_root("the control plane") || !common::require_tool("/usr/bin/aws") {
        return;
    }
    let cp = common::cluster::ControlPlane::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("cluster-policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let set = cp.admin_cmd(&["policy", "set", policy.to_str().unwrap()]);
    assert!(set.status.success(), "{}", stderr(&set));
    let shown = cp.admin_cmd(&["policy", "show"]);
    assert_eq!(String::from_utf8_lossy(&shown.stdout), POLICY);
    let defs = |image: &str, privileged: bool| {
        serde_json::json!([{"name": "c", "image": image, "memory": 64, "privileged": privileged}])
            .to_string()
    };
    let register = |family: &str, defs: &str| {
        cp.aws(
            &cp.admin,
            &[
                "register-task-definition",
                "--family",
                family,
                "--container-definitions",
                defs,
            ],
        )
        .output()
        .unwrap()
    };
    let refused = register("bad", &defs("busybox", true));
    assert!(!refused.status.success());
    let why = stderr(&refused);
    assert!(
        why.contains("ClientException") && why.contains("ESB-T-001"),
        "{why}"
    );
    let families = cp.ecs(&["list-task-definition-families"]);
    assert_eq!(
        families["families"],
        serde_json::json!([]),
        "a refused definition was stored"
    );
    // Compliant, and excepted by image: both register.
    assert!(register("good", &defs("busybox", false)).status.success());
    assert!(register("ops", &defs("ops/exporter:1", true))
        .status
        .success());
    cp.ecs(&["create-cluster", "--cluster-name", "prod"]);
    // A stricter policy then refuses RunTask and CreateService for what
    // was registered before it.
    std::fs::write(&policy, "[rules]\n\"ESB-T-013\" = \"enforce\"\n").unwrap();
    assert!(cp
        .admin_cmd(&["policy", "set", policy.to_str().unwrap()])
        .status
        .success());
    let run = cp
        .aws(
            &cp.admin,
            &["run-task", "--cluster", "prod", "--task-definition", "good"],
        )
        .output()
        .unwrap();
    assert!(
        stderr(&run).contains("ClientException") && stderr(&run).contains("ESB-T-013"),
        "{}",
        stderr(&run)
    );
    let svc = cp
        .aws(
            &cp.admin,
            &[
                "create-service",
                "--cluster",
                "prod",
                "--service-name",
                "s",
                "--task-definition",
                "good",
                "--desired-count",
                "1",
            ],
        )
        .output()
        .unwrap();
    assert!(stderr(&svc).contains("ESB-T-013"), "{}", stderr(&svc));
    assert_eq!(
        cp.ecs(&["list-services", "--cluster", "prod"])["serviceArns"],
        serde_json::json!([])
    );
    // `audit taskdef FAMILY:REV` reads the definition through the ECS API.
    let described: Value =
        serde_json::from_str(&cp.estiba(&["audit", "taskdef", "ops:1", "--format", "json"]))
            .unwrap();
    let found = rules_in(&described);
    assert!(
        found.contains("ESB-T-001") && found.contains("ESB-T-013"),
        "{found:?}"
    );
    assert_eq!(described["targets"][0]["name"], "ops:1");
    // `audit cluster` finds this control plane among the host's processes.
    let out = Command::new(env!("CARGO_BIN_EXE_estiba"))
        .args(["audit", "cluster", "--data"])
        .arg(cp.data())
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let cluster = rules_in(&serde_json::from_slice(&out.stdout).unwrap());
    for id in ["ESB-K-001", "ESB-K-003", "ESB-K-007"] {
        assert!(cluster.contains(id), "{id}: {cluster:?}");
    }
    assert!(
        !cluster.contains("ESB-K-005") && !cluster.contains("ESB-K-006"),
        "{cluster:?}"
    );
    // A bad policy is refused, and the one in force stays.
    std::fs::write(&policy, "[rules]\n\"cis:0.0\" = \"enforce\"\n").unwrap();
    let bad = cp.admin_cmd(&["policy", "set", policy.to_str().unwrap()]);
    assert!(
        !bad.status.success() && stderr(&bad).contains("no rule"),
        "{}",
        stderr(&bad)
    );
    // Without a policy, nothing is refused: RunTask goes on to placement
    // (which finds no instances in this cluster without agents).
    assert!(cp.admin_cmd(&["policy", "rm"]).status.success());
    let run = cp
        .aws(
            &cp.admin,
            &["run-task", "--cluster", "prod", "--task-definition", "good"],
        )
        .output()
        .unwrap();
    let why = stderr(&run);
    assert!(
        !why.contains("policy") && why.contains("No Container Instances"),
        "{why}"
    );
}

/// `estiba audit host`: the facts, root's missing user namespace, a
/// credentials file and a store others may change; as root, a registry
/// listening without TLS, found through /proc.
fn the_host_audit_judges_modes_listeners_and_namespaces(e: &Estiba) {
    let who = e.label();
    e.ok(&["images"]);
    let host = |e: &Estiba| -> BTreeSet<String> {
        let out = e.run(&["audit", "host", "--format", "json"]);
        assert!(out.status.success(), "[{who}] {}", stderr(&out));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                format!(
                    "{} {}",
                    f["rule"].as_str().unwrap(),
                    f["message"].as_str().unwrap()
                )
            })
            .collect()
    };
    let has = |found: &BTreeSet<String>, prefix: &str| found.iter().any(|f| f.starts_with(prefix));
    let before = host(e);
    for fact in ["ESB-H-014", "ESB-H-015", "ESB-H-016"] {
        assert!(has(&before, fact), "[{who}] {before:?}");
    }
    assert_eq!(
        has(&before, "ESB-H-007"),
        e.user.is_none(),
        "[{who}] {before:?}"
    );
    assert!(!has(&before, "ESB-H-006"), "[{who}] {before:?}");
    // Registry passwords readable by others, and a store anyone may change.
    let docker = e.path().join(".docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(docker.join("config.json"), "{\"auths\": {}}").unwrap();
    let mode = |p: &Path, m: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    };
    mode(&docker.join("config.json"), 0o644);
    let data = e.path().join("data");
    mode(&data, 0o777);
    if let Some(user) = e.user {
        let chown = Command::new("chown")
            .arg("-R")
            .arg(user)
            .arg(&docker)
            .status();
        assert!(chown.unwrap().success());
    }
    let after = host(e);
    assert!(has(&after, "ESB-H-006"), "[{who}] {after:?}");
    assert!(
        after
            .iter()
            .any(|f| f.starts_with("ESB-H-001") && f.contains("777")),
        "[{who}] {after:?}"
    );
    mode(&data, 0o700);
    mode(&docker.join("config.json"), 0o600);
    let fixed = host(e);
    assert!(
        !has(&fixed, "ESB-H-006") && !has(&fixed, "ESB-H-001"),
        "[{who}] {fixed:?}"
    );
    if e.user.is_none() {
        let registry = common::registry::Registry::start(common::registry::OPEN);
        let found = host(e);
        let port = registry.addr.rsplit(':').next().unwrap();
        assert!(
            found.iter().any(|f| f.starts_with("ESB-H-011")
                && f.contains("registry serve")
                && f.contains(port)),
            "[{who}] {found:?}"
        );
    }
}

root_and_rootless!(without_busybox: the_host_audit_judges_modes_listeners_and_namespaces);

/// `estiba audit registry`: an open registry over plain HTTP (anonymous
/// push probed and read from its policy, release tags that can move, no
/// lifecycle), then its repository made immutable with a lifecycle.
#[test]
fn the_registry_audit_probes_and_reads_an_estiba_registry() {
    if !common::require_root("a registry and a store") {
        return;
    }
    let registry = common::registry::Registry::start(common::registry::OPEN);
    let e = Estiba::root().with_busybox();
    let dest = format!("{}/team/app:1.0", registry.addr);
    e.ok(&["push", "--tls-verify=false", "busybox", &dest]);
    let rules = |e: &Estiba| -> BTreeSet<String> {
        let out = e.run(&["audit", "registry", &registry.addr, "--format", "json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        rules_in(&serde_json::from_slice(&out.stdout).unwrap())
    };
    let lax = rules(&e);
    for id in ["ESB-R-001", "ESB-R-002", "ESB-R-003", "ESB-R-004"] {
        assert!(lax.contains(id), "{id} missing: {lax:?}");
    }
    assert!(
        !lax.contains("ESB-R-006"),
        "GC is scheduled by default: {lax:?}"
    );
    // The probe's upload was cancelled: it left no repository behind.
    let catalog: Value = reqwest::blocking::get(registry.url("/v2/_catalog"))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(catalog["repositories"], serde_json::json!(["team/app"]));
    let made = registry.admin(&[
        "repo",
        "create",
        "team/app",
        "--immutable-tags",
        "--expire-untagged-days",
        "30",
    ]);
    assert!(made.status.success(), "{}", stderr(&made));
    let careful = rules(&e);
    assert!(
        !careful.contains("ESB-R-003") && !careful.contains("ESB-R-004"),
        "{careful:?}"
    );
    assert!(
        careful.contains("ESB-R-001"),
        "the policy still lets anyone push"
    );
    let nothing = e.run(&["audit", "registry", "127.0.0.1:1"]);
    assert_eq!(nothing.status.code(), Some(125));
    assert!(
        stderr(&nothing).contains("no registry answers"),
        "{}",
        stderr(&nothing)
    );
}

/// Scan on push: a repository that scans refuses an image with a
/// critical finding (a private key in a layer), stores nothing of it,
/// and keeps a clean image's findings as a referrer artifact.
#[test]
fn scan_on_push_refuses_blocked_images_and_keeps_the_findings_of_the_rest() {
    if !common::require_root("a registry and a store") {
        return;
    }
    let registry = common::registry::Registry::start(common::registry::OPEN);
    let made = registry.admin(&[
        "repo",
        "create",
        "scanned",
        "--scan-on-push",
        "--block-on",
        "critical",
    ]);
    assert!(made.status.success(), "{}", stderr(&made));
    let bad = registry.admin(&[
        "repo",
        "create",
        "x",
        "--block-on",
        "urgent",
        "--scan-on-push",
    ]);
    assert!(
        !bad.status.success() && stderr(&bad).contains("urgent"),
        "{}",
        stderr(&bad)
    );
    let e = Estiba::root().with_busybox();
    let ctx = e.scratch("keyed");
    std::fs::write(
        ctx.join("Containerfile"),
        "FROM busybox\nCOPY deploy-key /root/.ssh/id_ed25519\n",
    )
    .unwrap();
    std::fs::write(
        ctx.join("deploy-key"),
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbg==\n-----END OPENSSH PRIVATE KEY-----\n",
    )
    .unwrap();
    e.ok(&["build", "-q", "-t", "keyed:1", ctx.to_str().unwrap()]);
    let keyed = format!("{}/scanned:keyed", registry.addr);
    e.ok(&["tag", "keyed:1", &keyed]);
    let refused = e.run(&["push", "--tls-verify=false", &keyed]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("ESB-I-008"),
        "{}",
        stderr(&refused)
    );
    let http = reqwest::blocking::Client::new();
    let tags: Value = http
        .get(registry.url("/v2/scanned/tags/list"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(
        tags["tags"].as_array().is_none_or(|t| t.is_empty()),
        "{tags}"
    );
    // A clean image goes in, and its findings sit beside it.
    let clean = format!("{}/scanned:1.0", registry.addr);
    e.ok(&["push", "--tls-verify=false", "busybox", &clean]);
    let head = http
        .head(registry.url("/v2/scanned/manifests/1.0"))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .unwrap();
    let digest = head.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_string();
    let referrers: Value = http
        .get(registry.url(&format!("/v2/scanned/referrers/{digest}")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let found = referrers["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["artifactType"] == "application/vnd.estiba.audit.findings.v1+json")
        .unwrap_or_else(|| panic!("no findings artifact: {referrers}"))
        .clone();
    let artifact: Value = http
        .get(registry.url(&format!(
            "/v2/scanned/manifests/{}",
            found["digest"].as_str().unwrap()
        )))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .unwrap()
        .json()
        .unwrap();
    let layer = artifact["layers"][0]["digest"].as_str().unwrap();
    let report: Value = http
        .get(registry.url(&format!("/v2/scanned/blobs/{layer}")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(rules_in(&report).contains("ESB-I-001"), "{report}");
    assert_eq!(report["targets"][0]["name"], "scanned:1.0");
}

/// The policy's trust settings at pull and run: a registry not named in
/// `trusted_registries` is refused (ESB-I-014); with `require_signature`
/// a pull must verify a cosign signature by one of `trusted_keys`, and
/// run starts only images so pulled (ESB-I-015); a warn rule passes and
/// says so.
#[test]
fn pull_and_run_need_a_trusted_registry_and_a_verified_signature() {
    if !common::require_root("a registry and a store") {
        return;
    }
    let registry = common::registry::Registry::start(common::registry::OPEN);
    let e = Estiba::root().with_busybox();
    let signed = format!("{}/team/app:signed", registry.addr);
    let unsigned = format!("{}/team/app:unsigned", registry.addr);
    e.ok(&["push", "--tls-verify=false", "busybox", &signed]);
    let ctx = e.scratch("other");
    std::fs::write(ctx.join("Containerfile"), "FROM busybox\nLABEL v=2\n").unwrap();
    e.ok(&["build", "-q", "-t", &unsigned, ctx.to_str().unwrap()]);
    e.ok(&["push", "--tls-verify=false", &unsigned]);
    let dir = e.scratch("trust");
    let keys = dir.join("cosign");
    e.ok(&["key", "generate", "--out", keys.to_str().unwrap()]);
    e.ok(&[
        "sign",
        "--tls-verify=false",
        "--key",
        &format!("{}.key", keys.display()),
        &signed,
    ]);
    let policy = |name: &str, body: &str| -> String {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        path.display().to_string()
    };
    let strict = policy(
        "strict.toml",
        &format!(
            "trusted_registries = [\"{}\"]\nrequire_signature = true\ntrusted_keys = [\"cosign.pub\"]\n",
            registry.addr
        ),
    );
    let refused_with = |out: &Output, id: &str| {
        assert_eq!(out.status.code(), Some(125), "{}", stderr(out));
        assert!(
            stderr(out).contains(&format!("refused by policy: {id}")),
            "{}",
            stderr(out)
        );
    };
    // A local image was never verified.
    let local = e.run(&["--policy", &strict, "run", "--rm", "busybox", "true"]);
    refused_with(&local, "ESB-I-015");

    let puller = Estiba::root();
    let pull = |policy: &str, image: &str| {
        puller.run(&["--policy", policy, "pull", "--tls-verify=false", image])
    };
    refused_with(&pull(&strict, &unsigned), "ESB-I-015");
    assert!(
        !puller.ok(&["images"]).contains("unsigned"),
        "a refused pull stored the image"
    );
    let ok = pull(&strict, &signed);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(
        puller.ok(&["--policy", &strict, "run", "--rm", &signed, "echo", "verified"]),
        "verified\n"
    );

    // Another registry trusted: the pull and the run are refused.
    let elsewhere = policy(
        "elsewhere.toml",
        "trusted_registries = [\"registry.internal:5000\"]\n",
    );
    refused_with(&pull(&elsewhere, &signed), "ESB-I-014");
    let run = puller.run(&["--policy", &elsewhere, "run", "--rm", &signed, "true"]);
    refused_with(&run, "ESB-I-014");

    // Warned of, not refused: the pull and the run pass and say why.
    let lax = policy(
        "lax.toml",
        "require_signature = true\ntrusted_keys = [\"cosign.pub\"]\n[rules]\n\"ESB-I-015\" = \"warn\"\n",
    );
    let warned = pull(&lax, &unsigned);
    assert!(warned.status.success(), "{}", stderr(&warned));
    assert!(
        stderr(&warned).contains("policy: ESB-I-015"),
        "{}",
        stderr(&warned)
    );
    let run = puller.run(&["--policy", &lax, "run", "--rm", &unsigned, "true"]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stderr(&run).contains("ESB-I-015"), "{}", stderr(&run));

    // A signature checked with a key of the user's own (`pull --key`)
    // does not vouch for the image under the policy's keys.
    let other = dir.join("other");
    e.ok(&["key", "generate", "--out", other.to_str().unwrap()]);
    e.ok(&[
        "sign",
        "--tls-verify=false",
        "--key",
        &format!("{}.key", other.display()),
        &unsigned,
    ]);
    let mine = format!("{}.pub", other.display());
    puller.ok(&["pull", "--tls-verify=false", "--key", &mine, &unsigned]);
    let run = puller.run(&["--policy", &strict, "run", "--rm", &unsigned, "true"]);
    refused_with(&run, "ESB-I-015");

    // `audit image`: signed in its registry, or not.
    let audited = |image: &str| {
        let out = puller.run(&["audit", "image", image, "--format", "json"]);
        rules_in(&json_of(&out))
    };
    assert!(!audited(&signed).contains("ESB-I-015"));
    assert!(audited(&unsigned).contains("ESB-I-015"));

    // A policy asking for signatures without keys is refused as a file.
    let keyless = policy("keyless.toml", "require_signature = true\n");
    let out = pull(&keyless, &signed);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("trusted_keys"), "{}", stderr(&out));
}
