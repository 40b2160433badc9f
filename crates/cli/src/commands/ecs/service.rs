//! `estiba service create|ls|describe|update|scale|rm|events`: ECS's
//! service operations, with the flags turned into their JSON shapes.

use anyhow::{bail, Result};
use serde_json::{json, Map, Value};

use super::show::{self, family_revision, fields, id_of, scalar, text};
use super::{list_all, output, Client};
use crate::commands::images::tabulate;
use crate::ecs_cli::{DeploymentFlags, Format, ServiceCommand};

/// DescribeServices' limit on the services of one call.
const DESCRIBE_BATCH: usize = 10;

pub fn run(client: &Client, format: Format, cluster: &str, command: ServiceCommand) -> Result<u8> {
    match command {
        ServiceCommand::Create {
            name,
            task_definition,
            desired_count,
            daemon,
            launch_type,
            deployment,
        } => {
            let mut body = json!({
                "cluster": cluster,
                "serviceName": name,
                "taskDefinition": task_definition,
            });
            if daemon {
                body["schedulingStrategy"] = json!("DAEMON");
            } else {
                body["desiredCount"] = json!(desired_count.unwrap_or(0));
            }
            if let Some(l) = launch_type {
                body["launchType"] = json!(l.as_str());
            }
            apply(&mut body, &deployment, daemon)?;
            let answer = client.ecs("CreateService", &body)?;
            shown_arn(format, &answer)
        }
        ServiceCommand::Ls => {
            let arns = list_all(
                client,
                "ListServices",
                &json!({"cluster": cluster}),
                "serviceArns",
            )?;
            let answer = describe(client, cluster, &arns)?;
            output(format, &answer, || {
                print!("{}", list_table(&answer["services"]));
                Ok(())
            })?;
            Ok(0)
        }
        ServiceCommand::Describe { services } => {
            let answer = describe(client, cluster, &services)?;
            output(format, &answer, || {
                let shown: Vec<String> = list(&answer["services"])
                    .iter()
                    .map(service_table)
                    .collect();
                print!("{}", shown.join("\n"));
                Ok(())
            })?;
            Ok(u8::from(failed(&answer)))
        }
        ServiceCommand::Update {
            name,
            task_definition,
            desired_count,
            force_new_deployment,
            deployment,
        } => {
            let mut body = json!({"cluster": cluster, "service": name});
            if let Some(td) = task_definition {
                body["taskDefinition"] = json!(td);
            }
            if let Some(n) = desired_count {
                body["desiredCount"] = json!(n);
            }
            if force_new_deployment {
                body["forceNewDeployment"] = json!(true);
            }
            apply(&mut body, &deployment, false)?;
            let answer = client.ecs("UpdateService", &body)?;
            shown_arn(format, &answer)
        }
        ServiceCommand::Scale { name, count } => {
            let body = json!({"cluster": cluster, "service": name, "desiredCount": count});
            let answer = client.ecs("UpdateService", &body)?;
            shown_arn(format, &answer)
        }
        ServiceCommand::Rm { name, force } => {
            let body = json!({"cluster": cluster, "service": name, "force": force});
            let answer = client.ecs("DeleteService", &body)?;
            shown_arn(format, &answer)
        }
        ServiceCommand::Autoscale {
            name,
            min,
            max,
            target_cpu,
            target_memory,
            scale_out_cooldown,
            scale_in_cooldown,
            off,
        } => {
            let resource = format!("service/{}/{name}", id_of(cluster));
            let scope = json!({
                "ServiceNamespace": "ecs",
                "ResourceId": resource,
                "ScalableDimension": "ecs:service:DesiredCount",
            });
            if off {
                client.autoscaling("DeregisterScalableTarget", &scope)?;
                println!("{resource}: no longer scaled");
                return Ok(0);
            }
            let mut target = scope.clone();
            target["MinCapacity"] = json!(min);
            target["MaxCapacity"] = json!(max);
            let answer = client.autoscaling("RegisterScalableTarget", &target)?;
            let metrics = [
                ("cpu", "ECSServiceAverageCPUUtilization", target_cpu),
                (
                    "memory",
                    "ECSServiceAverageMemoryUtilization",
                    target_memory,
                ),
            ];
            for (short, metric, value) in metrics {
                let Some(value) = value else { continue };
                let mut policy = scope.clone();
                policy["PolicyName"] = json!(format!("estiba-{short}"));
                policy["PolicyType"] = json!("TargetTrackingScaling");
                policy["TargetTrackingScalingPolicyConfiguration"] = json!({
                    "TargetValue": value,
                    "PredefinedMetricSpecification": {"PredefinedMetricType": metric},
                    "ScaleOutCooldown": scale_out_cooldown,
                    "ScaleInCooldown": scale_in_cooldown,
                });
                client.autoscaling("PutScalingPolicy", &policy)?;
            }
            output(format, &answer, || {
                println!("{}", text(answer["ScalableTargetARN"].as_str()));
                Ok(())
            })?;
            Ok(0)
        }
        ServiceCommand::Events { name, count } => {
            let answer = describe(client, cluster, std::slice::from_ref(&name))?;
            let service = list(&answer["services"])
                .first()
                .cloned()
                .unwrap_or(Value::Null);
            output(format, &service["events"], || {
                for e in list(&service["events"]).iter().take(count) {
                    println!(
                        "{}  {}",
                        show::time(e["createdAt"].as_f64()),
                        text(e["message"].as_str())
                    );
                }
                Ok(())
            })?;
            Ok(u8::from(failed(&answer)))
        }
    }
}

fn list(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

fn failed(answer: &Value) -> bool {
    let failures = list(&answer["failures"]);
    for f in &failures {
        eprintln!(
            "failure: {} {}",
            text(f["arn"].as_str()),
            text(f["reason"].as_str())
        );
    }
    !failures.is_empty()
}

/// Prints the service's ARN, or the answer as JSON.
fn shown_arn(format: Format, answer: &Value) -> Result<u8> {
    output(format, answer, || {
        println!("{}", text(answer["service"]["serviceArn"].as_str()));
        Ok(())
    })?;
    Ok(0)
}

/// DescribeServices of `names`, ten at a time.
fn describe(client: &Client, cluster: &str, names: &[String]) -> Result<Value> {
    super::batched(names, "services", DESCRIBE_BATCH, |chunk| {
        client.ecs(
            "DescribeServices",
            &json!({"cluster": cluster, "services": chunk}),
        )
    })
}

/// `binpack:memory`, `spread:attribute:zone`, `random` → ECS's shape.
fn strategy(given: &str) -> Value {
    match given.split_once(':') {
        Some((kind, field)) => json!({"type": kind, "field": field}),
        None => json!({"type": given}),
    }
}

fn constraint(given: &str) -> Value {
    if given == "distinctInstance" {
        json!({"type": "distinctInstance"})
    } else {
        let expression = given.strip_prefix("memberOf:").unwrap_or(given);
        json!({"type": "memberOf", "expression": expression})
    }
}

/// The deployment and placement flags into a Create/UpdateService body.
fn apply(body: &mut Value, f: &DeploymentFlags, daemon: bool) -> Result<()> {
    let mut config = Map::new();
    if let Some(p) = f.min_healthy_percent {
        config.insert("minimumHealthyPercent".into(), json!(p));
    }
    if let Some(p) = f.max_percent {
        config.insert("maximumPercent".into(), json!(p));
    }
    if f.circuit_breaker {
        let mut cb = json!({"enable": true, "rollback": f.rollback});
        if let Some(n) = f.breaker_threshold {
            cb["thresholdConfiguration"] = json!({"type": "COUNT", "value": n});
        }
        config.insert("deploymentCircuitBreaker".into(), cb);
    }
    if let Some(d) = &f.deadline {
        let Ok(d) = humantime::parse_duration(d) else {
            bail!("--deadline {d}: not a duration such as 90s or 10m");
        };
        config.insert("progressDeadlineSeconds".into(), json!(d.as_secs()));
    }
    if !config.is_empty() {
        body["deploymentConfiguration"] = Value::Object(config);
    }
    if !f.strategies.is_empty() {
        if daemon {
            bail!("--placement-strategy: a DAEMON service places one task on each node");
        }
        body["placementStrategy"] = f.strategies.iter().map(|s| strategy(s)).collect();
    }
    if !f.constraints.is_empty() {
        body["placementConstraints"] = f.constraints.iter().map(|c| constraint(c)).collect();
    }
    if let Some(g) = f.health_check_grace_period {
        body["healthCheckGracePeriodSeconds"] = json!(g);
    }
    Ok(())
}

fn list_table(services: &Value) -> String {
    let mut rows = vec![[
        "SERVICE",
        "STATUS",
        "DESIRED",
        "RUNNING",
        "PENDING",
        "DEFINITION",
        "ROLLOUT",
    ]
    .map(String::from)];
    for s in list(services) {
        rows.push([
            text(s["serviceName"].as_str()),
            text(s["status"].as_str()),
            scalar(Some(&s["desiredCount"])),
            scalar(Some(&s["runningCount"])),
            scalar(Some(&s["pendingCount"])),
            text(s["taskDefinition"].as_str().map(family_revision)),
            text(s["deployments"][0]["rolloutState"].as_str()),
        ]);
    }
    tabulate(&rows)
}

fn service_table(s: &Value) -> String {
    let c = &s["deploymentConfiguration"];
    let mut out = fields(&[
        ("Service", text(s["serviceName"].as_str())),
        ("Status", text(s["status"].as_str())),
        ("Scheduling", text(s["schedulingStrategy"].as_str())),
        (
            "Definition",
            text(s["taskDefinition"].as_str().map(family_revision)),
        ),
        (
            "Tasks",
            format!(
                "{} desired, {} running, {} pending",
                scalar(Some(&s["desiredCount"])),
                scalar(Some(&s["runningCount"])),
                scalar(Some(&s["pendingCount"]))
            ),
        ),
        (
            "Deployment",
            format!(
                "min {}% healthy, max {}%, circuit breaker {}",
                scalar(Some(&c["minimumHealthyPercent"])),
                scalar(Some(&c["maximumPercent"])),
                if c["deploymentCircuitBreaker"]["enable"] == true {
                    "on"
                } else {
                    "off"
                }
            ),
        ),
    ]);
    let mut rows = vec![[
        "DEPLOYMENT",
        "STATUS",
        "DEFINITION",
        "DESIRED",
        "RUNNING",
        "PENDING",
        "FAILED",
        "ROLLOUT",
    ]
    .map(String::from)];
    for d in list(&s["deployments"]) {
        rows.push([
            text(d["id"].as_str()),
            text(d["status"].as_str()),
            text(d["taskDefinition"].as_str().map(family_revision)),
            scalar(Some(&d["desiredCount"])),
            scalar(Some(&d["runningCount"])),
            scalar(Some(&d["pendingCount"])),
            scalar(Some(&d["failedTasks"])),
            text(d["rolloutState"].as_str()),
        ]);
    }
    out.push('\n');
    out.push_str(&tabulate(&rows));
    let events = list(&s["events"]);
    if !events.is_empty() {
        out.push_str("\nLatest events:\n");
        for e in events.iter().take(5) {
            out.push_str(&format!(
                "  {}  {}\n",
                show::time(e["createdAt"].as_f64()),
                text(e["message"].as_str())
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_ecs_shapes() {
        let flags = DeploymentFlags {
            min_healthy_percent: Some(50),
            circuit_breaker: true,
            rollback: true,
            breaker_threshold: Some(2),
            deadline: Some("10m".into()),
            strategies: vec![
                "spread:attribute:zone".into(),
                "binpack:memory".into(),
                "random".into(),
            ],
            constraints: vec!["distinctInstance".into(), "attribute:zone == a".into()],
            ..DeploymentFlags::default()
        };
        let mut body = json!({});
        apply(&mut body, &flags, false).unwrap();
        assert_eq!(
            body,
            json!({
                "deploymentConfiguration": {
                    "minimumHealthyPercent": 50,
                    "deploymentCircuitBreaker": {"enable": true, "rollback": true,
                        "thresholdConfiguration": {"type": "COUNT", "value": 2}},
                    "progressDeadlineSeconds": 600,
                },
                "placementStrategy": [
                    {"type": "spread", "field": "attribute:zone"},
                    {"type": "binpack", "field": "memory"},
                    {"type": "random"},
                ],
                "placementConstraints": [
                    {"type": "distinctInstance"},
                    {"type": "memberOf", "expression": "attribute:zone == a"},
                ],
            })
        );
        let mut daemon = json!({});
        let spread = DeploymentFlags {
            strategies: vec!["random".into()],
            ..DeploymentFlags::default()
        };
        assert!(apply(&mut daemon, &spread, true).is_err());
    }
}
