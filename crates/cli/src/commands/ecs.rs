//! `estiba taskdef …`, `estiba task …`, `estiba node …` and `estiba service …`: clients of the
//! ECS API a control plane serves (`estiba cluster serve`), signed and
//! configured as the AWS CLI is. They touch no local store.
//!
//! Tables by default; `--format json` prints the API's answer (for calls
//! that page or batch, the answers' lists joined into one answer of the
//! same shape). An error answer of the API fails the command with exit
//! code 1, printed as `estiba: <__type>: <message>`.

mod client;
mod node;
mod service;
mod show;
mod task;
mod taskdef;
mod wire;

use std::collections::HashSet;

use anyhow::Result;
use serde::Serialize;
use serde_json::{json, Value};

pub use client::ApiError;
use client::Client;

use crate::ecs_cli::{Format, NodeArgs, ServiceArgs, TaskArgs, TaskdefArgs};

/// A task definition as DescribeTaskDefinition answers it (`taskDefinition`),
/// with the client configured as the AWS CLI would be.
pub fn describe_task_definition(name: &str) -> Result<Value> {
    let api = crate::ecs_cli::ApiArgs {
        endpoint_url: None,
        profile: None,
        region: None,
        format: Format::Json,
    };
    let client = Client::new(&api)?;
    let answer = client.ecs("DescribeTaskDefinition", &json!({ "taskDefinition": name }))?;
    Ok(answer.get("taskDefinition").cloned().unwrap_or(Value::Null))
}

pub fn taskdef(args: TaskdefArgs) -> Result<u8> {
    taskdef::run(&args.api, args.command)
}

pub fn task(args: TaskArgs) -> Result<u8> {
    let client = Client::new(&args.api)?;
    task::run(
        &client,
        args.api.format,
        &args.cluster.cluster,
        args.command,
    )
}

pub fn node(args: NodeArgs) -> Result<u8> {
    let client = Client::new(&args.api)?;
    node::run(
        &client,
        args.api.format,
        &args.cluster.cluster,
        args.command,
    )
}

pub fn service(args: ServiceArgs) -> Result<u8> {
    let client = Client::new(&args.api)?;
    service::run(
        &client,
        args.api.format,
        &args.cluster.cluster,
        args.command,
    )
}

fn print_json(value: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints an answer as JSON, or runs `table` to show it.
fn output(format: Format, answer: &Value, table: impl FnOnce() -> Result<()>) -> Result<()> {
    match format {
        Format::Json => print_json(answer),
        Format::Table => table(),
    }
}

/// Every page of a List call: the `field` lists of its answers, following
/// `nextToken` until there is none (or it comes round again, which would
/// loop forever).
fn list_all(
    client: &Client,
    operation: &str,
    request: &impl Serialize,
    field: &str,
) -> Result<Vec<String>> {
    let mut body = serde_json::to_value(request)?;
    let mut all = Vec::new();
    let mut seen = HashSet::new();
    loop {
        let answer = client.ecs(operation, &body)?;
        if !answer[field].is_null() {
            all.extend(wire::read::<Vec<String>>(&answer[field], operation)?);
        }
        match answer.get("nextToken").and_then(Value::as_str) {
            Some(token) if !token.is_empty() && seen.insert(token.to_string()) => {
                body["nextToken"] = json!(token);
            }
            _ => return Ok(all),
        }
    }
}

/// The Describe calls' limit on the resources of one call.
const DESCRIBE_BATCH: usize = 100;

/// `ids` described a batch at a time through `describe`, the answers'
/// `field` and `failures` lists joined into one answer of their shape.
fn batched(
    ids: &[String],
    field: &str,
    size: usize,
    mut describe: impl FnMut(&[String]) -> Result<Value>,
) -> Result<Value> {
    let mut items = Vec::new();
    let mut failures = Vec::new();
    for chunk in ids.chunks(size) {
        let mut answer = describe(chunk)?;
        let mut take = |name: &str, into: &mut Vec<Value>| {
            if let Value::Array(list) = answer[name].take() {
                into.extend(list);
            }
        };
        take(field, &mut items);
        take("failures", &mut failures);
    }
    Ok(json!({ field: items, "failures": failures }))
}

/// Prints each failure on standard error; true if there was one.
fn report_failures(failures: &[wire::Failure]) -> bool {
    for f in failures {
        eprintln!("failure: {}", show::failure(f));
    }
    !failures.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_join_into_one_answer() {
        let ids: Vec<String> = (0..5).map(|i| i.to_string()).collect();
        let mut calls = Vec::new();
        let joined = batched(&ids, "tasks", 2, |chunk| {
            calls.push(chunk.len());
            let first = &chunk[0];
            Ok(json!({
                "tasks": chunk.iter().map(|id| json!({"taskArn": id})).collect::<Vec<_>>(),
                "failures": [{"arn": format!("f{first}"), "reason": "MISSING"}],
            }))
        })
        .unwrap();
        assert_eq!(calls, [2, 2, 1]);
        assert_eq!(joined["tasks"].as_array().unwrap().len(), 5);
        assert_eq!(joined["tasks"][4]["taskArn"], "4");
        assert_eq!(joined["failures"].as_array().unwrap().len(), 3);
        let none = batched(&[], "tasks", 2, |_| unreachable!()).unwrap();
        assert_eq!(none, json!({"tasks": [], "failures": []}));
    }
}
