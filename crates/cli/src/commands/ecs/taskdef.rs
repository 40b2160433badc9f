//! `estiba taskdef register|ls|describe`.

use std::io::Read as _;
use std::path::Path;

use anyhow::{Context as _, Result};
use serde_json::json;

use super::client::{Client, ECS_TARGET};
use super::show::{self, family_revision, scalar, text};
use super::wire::{self, DescribeTaskDefinition, ListTaskDefinitions, TaskDefinitionAnswer};
use super::{list_all, output};
use crate::commands::images::tabulate;
use crate::ecs_cli::{ApiArgs, Format, TaskdefCommand, TaskdefStatus};

pub fn run(api: &ApiArgs, command: TaskdefCommand) -> Result<u8> {
    let format = api.format;
    match command {
        TaskdefCommand::Register { file } => {
            // The file first: a typo in its name is the likelier mistake.
            let body = read_input(&file)?;
            register(&Client::new(api)?, format, &body)
        }
        TaskdefCommand::Ls { family, status } => {
            list(&Client::new(api)?, format, family.as_deref(), status)
        }
        TaskdefCommand::Describe { task_definition } => {
            describe(&Client::new(api)?, format, &task_definition)
        }
    }
}

/// A file's bytes, or standard input's for `-`.
fn read_input(file: &Path) -> Result<Vec<u8>> {
    if file == Path::new("-") {
        let mut body = Vec::new();
        std::io::stdin()
            .read_to_end(&mut body)
            .context("reading the task definition from standard input")?;
        return Ok(body);
    }
    std::fs::read(file).with_context(|| format!("reading {}", file.display()))
}

/// Sends the definition as it was written: the server validates it, and
/// says what it dropped or will not run.
fn register(client: &Client, format: Format, body: &[u8]) -> Result<u8> {
    let answer = client.call(&format!("{ECS_TARGET}.RegisterTaskDefinition"), body)?;
    let registered: TaskDefinitionAnswer = wire::read(&answer, "RegisterTaskDefinition")?;
    for w in registered.warnings.iter().chain(&registered.notes) {
        eprintln!("warning: {w}");
    }
    output(format, &answer, || {
        println!(
            "{}",
            text(registered.task_definition.task_definition_arn.as_deref())
        );
        Ok(())
    })?;
    Ok(0)
}

fn list(
    client: &Client,
    format: Format,
    family: Option<&str>,
    status: TaskdefStatus,
) -> Result<u8> {
    let request = ListTaskDefinitions {
        family_prefix: family,
        status: status.as_str(),
    };
    let arns = list_all(
        client,
        "ListTaskDefinitions",
        &request,
        "taskDefinitionArns",
    )?;
    output(format, &json!({ "taskDefinitionArns": arns }), || {
        let mut rows = vec![["FAMILY", "REVISION", "ARN"].map(String::from)];
        for arn in &arns {
            let (family, revision) = family_revision(arn)
                .rsplit_once(':')
                .unwrap_or((arn.as_str(), show::NONE));
            rows.push([family.to_string(), revision.to_string(), arn.clone()]);
        }
        print!("{}", tabulate(&rows));
        Ok(())
    })?;
    Ok(0)
}

fn describe(client: &Client, format: Format, name: &str) -> Result<u8> {
    let request = DescribeTaskDefinition {
        task_definition: name,
    };
    let answer = client.ecs("DescribeTaskDefinition", &request)?;
    let described: TaskDefinitionAnswer = wire::read(&answer, "DescribeTaskDefinition")?;
    output(format, &answer, || {
        print!("{}", table(&described));
        Ok(())
    })?;
    Ok(0)
}

/// A revision's settings, its containers, and what estiba warned of.
fn table(answer: &TaskDefinitionAnswer) -> String {
    let td = &answer.task_definition;
    let mut out = show::fields(&[
        ("ARN", text(td.task_definition_arn.as_deref())),
        ("Family", text(td.family.as_deref())),
        (
            "Revision",
            td.revision
                .map_or_else(|| show::NONE.into(), |r| r.to_string()),
        ),
        ("Status", text(td.status.as_deref())),
        ("Network mode", text(td.network_mode.as_deref())),
        ("CPU", scalar(td.cpu.as_ref())),
        ("Memory", scalar(td.memory.as_ref())),
    ]);
    let mut rows = vec![["CONTAINER", "IMAGE", "CPU", "MEMORY", "ESSENTIAL"].map(String::from)];
    for c in &td.container_definitions {
        let memory = c.memory.as_ref().or(c.memory_reservation.as_ref());
        rows.push([
            text(c.name.as_deref()),
            text(c.image.as_deref()),
            scalar(c.cpu.as_ref()),
            scalar(memory),
            // ECS's default: a container is essential unless it says not.
            show::yes_no(Some(c.essential.unwrap_or(true))),
        ]);
    }
    out.push('\n');
    out.push_str(&tabulate(&rows));
    if !answer.warnings.is_empty() {
        out.push_str("\nWarnings:\n");
        for w in &answer.warnings {
            out.push_str(&format!("  {w}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revision_shows_its_settings_containers_and_warnings() {
        let answer = json!({
            "taskDefinition": {
                "taskDefinitionArn": "arn:aws:ecs:us-east-1:000000000000:task-definition/web:2",
                "family": "web",
                "revision": 2,
                "status": "ACTIVE",
                "networkMode": "bridge",
                "memory": "512",
                "containerDefinitions": [
                    {"name": "nginx", "image": "nginx:1.27", "cpu": 256, "memory": 256},
                    {"name": "sidecar", "image": "busybox", "cpu": 0,
                     "memoryReservation": 64, "essential": false},
                ],
            },
            "warnings": ["logConfiguration awslogs: recorded, not run"],
        });
        let answer: TaskDefinitionAnswer = wire::read(&answer, "test").unwrap();
        let shown = table(&answer);
        let expected = "\
ARN:           arn:aws:ecs:us-east-1:000000000000:task-definition/web:2
Family:        web
Revision:      2
Status:        ACTIVE
Network mode:  bridge
CPU:           -
Memory:        512

CONTAINER   IMAGE        CPU   MEMORY   ESSENTIAL
nginx       nginx:1.27   256   256      yes
sidecar     busybox      0     64       no

Warnings:
  logConfiguration awslogs: recorded, not run
";
        assert_eq!(shown, expected);
    }
}
