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
use crate::cli::{AuditCommand, AuditReportArgs};

pub fn run(ctx: &Context, command: AuditCommand) -> Result<u8> {
    match command {
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
                let (name, text) = read(file)?;
                let findings = estiba_audit::taskdef::audit(&name, &text, &taskdef)?;
                r.add(Target::new(TargetKind::TaskDefinition, name), findings);
            }
            finish(r, &options)
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
    Ok(estiba_audit::image::audit(input)?)
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
