//! `estiba audit`: runs the audit crate's checks over files and local
//! images, applies the ignore file, and prints the report.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{bail, Context as _, Result};
use estiba_audit::ignore::Ignore;
use estiba_audit::report::Report;
use estiba_audit::{Severity, Target, TargetKind};

use super::Context;
use crate::cli::{AuditArgs, AuditCommand, AuditPolicyCommand, AuditReportArgs};

pub fn run(ctx: &Context, args: AuditArgs) -> Result<u8> {
    let Some(command) = args.command else {
        return everything(ctx, &args.report);
    };
    match command {
        AuditCommand::Registry { url, report } => {
            let options = Options::from(&report)?;
            let mut r = Report::default();
            let findings =
                estiba_audit::registry::audit(&super::audit_registry::gather(ctx, &url)?);
            r.add(Target::new(TargetKind::Registry, url), findings);
            finish(r, &options)
        }
        AuditCommand::Cluster { data, report } => {
            let options = Options::from(&report)?;
            let mut r = Report::default();
            let facts = super::audit_host::gather_cluster(ctx, data);
            let findings = estiba_audit::cluster::audit(&facts);
            r.add(
                Target::new(TargetKind::Cluster, facts.data.clone()),
                findings,
            );
            finish(r, &options)
        }
        AuditCommand::Host { report } => {
            let options = Options::from(&report)?;
            let mut r = Report::default();
            let findings = estiba_audit::host::audit(&super::audit_host::gather(ctx));
            r.add(Target::new(TargetKind::Host, "host"), findings);
            finish(r, &options)
        }
        AuditCommand::Rules { format } => rules(&format),
        AuditCommand::Containerfile { files, report } => {
            let options = Options::from(&report)?;
            let mut r = Report::default();
            for file in &files {
                let (name, text) = read(file)?;
                let findings = estiba_audit::containerfile::audit(&name, &text)?;
                r.add(Target::new(TargetKind::Containerfile, name), findings);
            }
            finish(r, &options)
        }
        AuditCommand::Taskdef {
            files,
            trusted,
            report,
        } => {
            let options = Options::from(&report)?;
            let taskdef = estiba_audit::taskdef::Options {
                trusted_registries: trusted,
            };
            let mut r = Report::default();
            for file in &files {
                let (name, text) = if file.exists() || file.to_string_lossy().ends_with(".json") {
                    read(file)?
                } else {
                    // FAMILY[:REVISION], as the control plane holds it.
                    let name = file.to_string_lossy().into_owned();
                    let described = super::ecs::describe_task_definition(&name)?;
                    (name, format!("{described:#}"))
                };
                let findings = estiba_audit::taskdef::audit(&name, &text, &taskdef)?;
                r.add(Target::new(TargetKind::TaskDefinition, name), findings);
            }
            finish(r, &options)
        }
        AuditCommand::Container { containers, report } => {
            let options = Options::from(&report)?;
            let engine = ctx.engine()?;
            let mut r = Report::default();
            for wanted in &containers {
                let record = engine.find(wanted)?;
                let findings = audit_container(&engine, &record)?;
                r.add(
                    Target::new(TargetKind::Container, record.name.clone()),
                    findings,
                );
            }
            finish(r, &options)
        }
        AuditCommand::Policy(AuditPolicyCommand::Test { subject, trusted }) => {
            policy_test(ctx, &subject, trusted)
        }
        AuditCommand::Image { images, report } => {
            let options = Options::from(&report)?;
            let store = ctx.store()?;
            let mut r = Report::default();
            for image in &images {
                let findings = audit_image(&store, image)?;
                r.add(Target::new(TargetKind::Image, image.clone()), findings);
            }
            finish(r, &options)
        }
    }
}

/// A bare `estiba audit`: the host, every container and every image.
fn everything(ctx: &Context, report: &AuditReportArgs) -> Result<u8> {
    let options = Options::from(report)?;
    let mut r = Report::default();
    let findings = estiba_audit::host::audit(&super::audit_host::gather(ctx));
    r.add(Target::new(TargetKind::Host, "host"), findings);
    let engine = ctx.engine()?;
    for record in engine.list()? {
        let findings = audit_container(&engine, &record)?;
        r.add(
            Target::new(TargetKind::Container, record.name.clone()),
            findings,
        );
    }
    let store = ctx.store()?;
    for image in store.images()? {
        let name = image
            .names
            .first()
            .cloned()
            .unwrap_or_else(|| image.id.to_string());
        let findings = audit_image(&store, &name)?;
        r.add(Target::new(TargetKind::Image, name), findings);
    }
    finish(r, &options)
}

fn audit_container(
    engine: &estiba_engine::Engine,
    record: &estiba_engine::ContainerRecord,
) -> Result<Vec<estiba_audit::Finding>> {
    let config = serde_json::from_slice(&engine.store.read_blob(&record.image_id.parse()?)?)
        .unwrap_or_default();
    let mut facts = super::admission::facts(record, &config);
    facts.processes = processes(record);
    Ok(estiba_audit::container::audit(&facts))
}

/// The command names (/proc/PID/comm) running in a container; none when
/// it is not running.
fn processes(record: &estiba_engine::ContainerRecord) -> Vec<String> {
    if record.state.status != estiba_engine::Status::Running {
        return Vec::new();
    }
    estiba_engine::stats::processes(record)
        .iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).ok())
        .map(|comm| comm.trim().to_string())
        .collect()
}

/// `audit policy test`: the subject's findings, as the policy judges them.
/// Exits 1 when something would be refused.
fn policy_test(ctx: &Context, subject: &str, trusted: Vec<String>) -> Result<u8> {
    let Some(policy) = super::admission::load(ctx.policy.as_deref())? else {
        bail!("no policy: name one with --policy, or write /etc/estiba/policy.toml or $XDG_CONFIG_HOME/estiba/policy.toml");
    };
    let path = Path::new(subject);
    let findings = if path.is_file() {
        let (name, text) = read(path)?;
        if name.ends_with(".json") {
            let options = estiba_audit::taskdef::Options {
                trusted_registries: trusted,
            };
            estiba_audit::taskdef::audit(&name, &text, &options)?
        } else {
            estiba_audit::containerfile::audit(&name, &text)?
        }
    } else {
        audit_image(&ctx.store()?, subject)?
    };
    let verdict = policy.judge(
        &findings,
        &estiba_audit::policy::Subject {
            image: (!path.is_file()).then_some(subject),
            ..Default::default()
        },
    );
    for f in &verdict.refused {
        println!(
            "REFUSE  {:<9}  {}  [{}]",
            f.rule.id,
            f.message,
            f.location.describe()
        );
    }
    for f in &verdict.warned {
        println!(
            "WARN    {:<9}  {}  [{}]",
            f.rule.id,
            f.message,
            f.location.describe()
        );
    }
    let passed = findings.len() - verdict.refused.len() - verdict.warned.len();
    println!(
        "{} refused, {} warned, {} off or excepted",
        verdict.refused.len(),
        verdict.warned.len(),
        passed
    );
    Ok(u8::from(!verdict.refused.is_empty()))
}

/// A file's name as given (so SARIF's paths stay relative) and its text.
fn read(file: &Path) -> Result<(String, String)> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    Ok((file.display().to_string(), text))
}

fn audit_image(store: &estiba_store::Store, wanted: &str) -> Result<Vec<estiba_audit::Finding>> {
    let record = store.find_image(wanted)?;
    let config: serde_json::Value = serde_json::from_slice(&store.read_blob(&record.id)?)
        .with_context(|| format!("image {wanted}: its config is not JSON"))?;
    let mut layers: Vec<Box<dyn Read>> = Vec::new();
    for blob in &record.layer_blobs {
        let file = store.open_blob(blob)?;
        let (_, reader) = estiba_oci::decompress(file)
            .with_context(|| format!("image {wanted}: layer {blob}"))?;
        layers.push(reader);
    }
    let input = estiba_audit::image::Input {
        name: wanted.to_string(),
        config,
        layers,
        now: SystemTime::now(),
    };
    let mut findings = estiba_audit::image::audit(input)?;
    // Signed in its registry: an image named after a registry that no
    // pull verified a signature of. One built here is its owner's own.
    let registry = estiba_audit::image::registry_of(wanted);
    findings.extend(estiba_audit::image::trust(
        wanted,
        estiba_audit::image::Provenance {
            registry,
            signed: store.is_signed(&record.id),
        },
        &[],
        registry.is_some(),
    ));
    Ok(findings)
}

/// The report options, checked before any work.
struct Options {
    format: Format,
    severity: Severity,
    exit_code: u8,
    ignore: Ignore,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Table,
    Json,
    Sarif,
}

impl Options {
    fn from(a: &AuditReportArgs) -> Result<Options> {
        let format = match a.format.as_str() {
            "table" => Format::Table,
            "json" => Format::Json,
            "sarif" => Format::Sarif,
            other => bail!("--format {other:?}: the formats are table, json and sarif"),
        };
        let Some(severity) = Severity::parse(&a.severity) else {
            bail!(
                "--severity {:?}: the severities are info, low, medium, high and critical",
                a.severity
            );
        };
        let default = PathBuf::from(".estibaignore");
        let path = match &a.ignore_file {
            Some(p) => Some(p.clone()),
            None => default.exists().then_some(default),
        };
        let ignore = match path {
            Some(p) => {
                let text = std::fs::read_to_string(&p)
                    .with_context(|| format!("reading the ignore file {}", p.display()))?;
                Ignore::parse(&p.display().to_string(), &text)?
            }
            None => Ignore::default(),
        };
        Ok(Options {
            format,
            severity,
            exit_code: a.exit_code,
            ignore,
        })
    }
}

fn finish(mut report: Report, options: &Options) -> Result<u8> {
    let now = SystemTime::now();
    report.ignore(|f| options.ignore.covers(f, now));
    report
        .findings
        .retain(|f| f.rule.severity >= options.severity);
    let out = match options.format {
        Format::Table => report.table(std::io::stdout().is_terminal()),
        Format::Json => format!("{:#}\n", report.json()),
        Format::Sarif => format!("{:#}\n", report.sarif(env!("CARGO_PKG_VERSION"))),
    };
    print!("{out}");
    Ok(if report.fails(options.severity) {
        options.exit_code
    } else {
        0
    })
}

fn rules(format: &str) -> Result<u8> {
    match format {
        "table" => print!("{}", estiba_audit::report::rules_table()),
        "json" => println!("{:#}", serde_json::to_value(estiba_audit::RULES)?),
        other => bail!("--format {other:?}: the formats are table and json"),
    }
    Ok(0)
}
