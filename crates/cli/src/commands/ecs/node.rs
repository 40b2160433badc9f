//! `estiba node ls|describe|drain`: the cluster's container instances.

use anyhow::Result;
use serde_json::Value;

use super::show::{self, free_total, id_of, text, yes_no};
use super::wire::{
    self, ContainerInstance, DescribeContainerInstances, InstancesAnswer, ListContainerInstances,
    UpdateContainerInstancesState,
};
use super::{batched, list_all, output, report_failures, Client, DESCRIBE_BATCH};
use crate::commands::images::tabulate;
use crate::ecs_cli::{Format, NodeCommand};

/// UpdateContainerInstancesState's limit on the instances of one call.
const UPDATE_BATCH: usize = 10;

pub fn run(client: &Client, format: Format, cluster: &str, command: NodeCommand) -> Result<u8> {
    match command {
        NodeCommand::Ls => {
            let request = ListContainerInstances { cluster };
            let arns = list_all(
                client,
                "ListContainerInstances",
                &request,
                "containerInstanceArns",
            )?;
            let answer = describe(client, cluster, &arns)?;
            output(format, &answer, || {
                let nodes: InstancesAnswer = wire::read(&answer, "DescribeContainerInstances")?;
                print!("{}", list_table(&nodes.container_instances));
                Ok(())
            })?;
            Ok(0)
        }
        NodeCommand::Describe { instances } => {
            let answer = describe(client, cluster, &instances)?;
            let nodes: InstancesAnswer = wire::read(&answer, "DescribeContainerInstances")?;
            output(format, &answer, || {
                let shown: Vec<String> = nodes.container_instances.iter().map(node_table).collect();
                print!("{}", shown.join("\n"));
                Ok(())
            })?;
            Ok(u8::from(report_failures(&nodes.failures)))
        }
        NodeCommand::Drain { instances, undo } => {
            let status = if undo { "ACTIVE" } else { "DRAINING" };
            let answer = batched(&instances, "containerInstances", UPDATE_BATCH, |chunk| {
                let request = UpdateContainerInstancesState {
                    cluster,
                    container_instances: chunk,
                    status,
                };
                client.ecs("UpdateContainerInstancesState", &request)
            })?;
            let nodes: InstancesAnswer = wire::read(&answer, "UpdateContainerInstancesState")?;
            output(format, &answer, || {
                for n in &nodes.container_instances {
                    println!("{}", text(n.container_instance_arn.as_deref().map(id_of)));
                }
                Ok(())
            })?;
            Ok(u8::from(report_failures(&nodes.failures)))
        }
    }
}

/// DescribeContainerInstances of `ids`, a batch at a time.
fn describe(client: &Client, cluster: &str, ids: &[String]) -> Result<Value> {
    batched(ids, "containerInstances", DESCRIBE_BATCH, |chunk| {
        let request = DescribeContainerInstances {
            cluster,
            container_instances: chunk,
        };
        client.ecs("DescribeContainerInstances", &request)
    })
}

fn count(n: Option<i64>) -> String {
    n.map_or_else(|| show::NONE.into(), |n| n.to_string())
}

fn list_table(nodes: &[ContainerInstance]) -> String {
    let mut rows = vec![[
        "INSTANCE",
        "STATUS",
        "CONNECTED",
        "RUNNING",
        "PENDING",
        "CPU FREE/TOTAL",
        "MEMORY FREE/TOTAL",
        "ADDRESS",
    ]
    .map(String::from)];
    for n in nodes {
        let (free, total) = (&n.remaining_resources, &n.registered_resources);
        rows.push([
            text(n.container_instance_arn.as_deref().map(id_of)),
            text(n.status.as_deref()),
            yes_no(n.agent_connected),
            count(n.running_tasks_count),
            count(n.pending_tasks_count),
            free_total(free, total, "CPU"),
            free_total(free, total, "MEMORY"),
            text(n.estiba_address.as_deref()),
        ]);
    }
    tabulate(&rows)
}

/// One node's details, attributes and warnings.
fn node_table(n: &ContainerInstance) -> String {
    let (free, total) = (&n.remaining_resources, &n.registered_resources);
    let mut out = show::fields(&[
        ("Instance", text(n.container_instance_arn.as_deref())),
        ("Host", text(n.ec2_instance_id.as_deref())),
        ("Address", text(n.estiba_address.as_deref())),
        ("Status", text(n.status.as_deref())),
        ("Connected", yes_no(n.agent_connected)),
        ("Agent", text(n.version_info.agent_version.as_deref())),
        ("Registered", show::time(n.registered_at)),
        ("Running tasks", count(n.running_tasks_count)),
        ("Pending tasks", count(n.pending_tasks_count)),
        ("CPU free/total", free_total(free, total, "CPU")),
        ("Memory free/total", free_total(free, total, "MEMORY")),
        ("Ports in use", show::ports(free, "PORTS")),
        ("UDP ports in use", show::ports(free, "PORTS_UDP")),
    ]);
    if !n.attributes.is_empty() {
        let mut rows = vec![["ATTRIBUTE", "VALUE"].map(String::from)];
        for a in &n.attributes {
            rows.push([text(a.name.as_deref()), text(a.value.as_deref())]);
        }
        out.push('\n');
        out.push_str(&tabulate(&rows));
    }
    if !n.estiba_warnings.is_empty() {
        out.push_str("\nWarnings:\n");
        for w in &n.estiba_warnings {
            out.push_str(&format!("  {w}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn resources(cpu: i64, memory: i64) -> Value {
        json!([
            {"name": "CPU", "type": "INTEGER", "integerValue": cpu},
            {"name": "MEMORY", "type": "INTEGER", "integerValue": memory},
            {"name": "PORTS", "type": "STRINGSET", "stringSetValue": ["22"]},
        ])
    }

    fn node() -> Value {
        json!({
            "containerInstanceArn": "arn:aws:ecs:us-east-1:000000000000:container-instance/default/5e1c",
            "ec2InstanceId": "lab-1",
            "status": "ACTIVE",
            "agentConnected": true,
            "runningTasksCount": 2,
            "pendingTasksCount": 0,
            "versionInfo": {"agentVersion": "0.1.0"},
            "remainingResources": resources(1536, 3000),
            "registeredResources": resources(2048, 3900),
            "attributes": [{"name": "ecs.os-type", "value": "linux"}],
            "estibaAddress": "10.0.0.7",
            "estibaWarnings": ["memory and CPU limits are not enforced"],
        })
    }

    #[test]
    fn nodes_list_with_their_free_resources_and_address() {
        let answer: InstancesAnswer =
            wire::read(&json!({"containerInstances": [node()]}), "test").unwrap();
        assert_eq!(
            list_table(&answer.container_instances),
            "INSTANCE   STATUS   CONNECTED   RUNNING   PENDING   CPU FREE/TOTAL   MEMORY FREE/TOTAL   ADDRESS\n\
             5e1c       ACTIVE   yes         2         0         1536/2048        3000/3900           10.0.0.7\n"
        );
    }

    #[test]
    fn a_node_shows_its_attributes_and_warnings() {
        let n: ContainerInstance = wire::read(&node(), "test").unwrap();
        let shown = node_table(&n);
        assert!(shown.contains("Ports in use:       22\n"), "{shown}");
        assert!(shown.contains("ecs.os-type   linux\n"), "{shown}");
        assert!(
            shown.ends_with("Warnings:\n  memory and CPU limits are not enforced\n"),
            "{shown}"
        );
    }
}
