//! How ECS's values read in tables: ids out of ARNs, times as docker
//! shows them, resources as free/total, and `-` for what is not there.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::wire::{Failure, LogEvent, Resource};
use crate::commands::images::human_since;

/// What a table shows for a value that is not there.
pub const NONE: &str = "-";

/// The id at the end of an ARN (`…:task/default/ID` → `ID`), or what was
/// given if it is not an ARN.
pub fn id_of(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// `family:revision` of a task definition's ARN.
pub fn family_revision(arn: &str) -> &str {
    arn.split_once(":task-definition/").map_or(arn, |(_, f)| f)
}

/// An optional text, or `-`.
pub fn text(value: Option<&str>) -> String {
    value.filter(|v| !v.is_empty()).unwrap_or(NONE).to_string()
}

/// A JSON scalar as it reads (ECS writes sizes as numbers or strings).
pub fn scalar(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => NONE.to_string(),
    }
}

pub fn yes_no(value: Option<bool>) -> String {
    match value {
        Some(true) => "yes".into(),
        Some(false) => "no".into(),
        None => NONE.into(),
    }
}

/// ECS's times are seconds since the epoch, with a fraction.
fn system_time(epoch: f64) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(epoch).ok()?)
}

/// A time as RFC 3339 (UTC, to the second), or `-`.
pub fn time(epoch: Option<f64>) -> String {
    epoch.and_then(system_time).map_or_else(
        || NONE.into(),
        |t| humantime::format_rfc3339_seconds(t).to_string(),
    )
}

/// A time as docker's "5 minutes ago", or `-`.
pub fn ago(epoch: Option<f64>) -> String {
    match epoch.and_then(system_time) {
        Some(t) => human_since(Some(&humantime::format_rfc3339_seconds(t).to_string())),
        None => NONE.into(),
    }
}

/// The integer value of a resource (`CPU`, `MEMORY`) in ECS's list.
fn resource(list: &[Resource], name: &str) -> Option<i64> {
    list.iter()
        .find(|r| r.name.as_deref() == Some(name))
        .and_then(|r| r.integer_value)
}

/// `FREE/TOTAL` of a resource, from an instance's remaining and
/// registered resources.
pub fn free_total(remaining: &[Resource], registered: &[Resource], name: &str) -> String {
    let show = |v: Option<i64>| v.map_or_else(|| NONE.to_string(), |n| n.to_string());
    format!(
        "{}/{}",
        show(resource(remaining, name)),
        show(resource(registered, name))
    )
}

/// The ports a resource list holds (`PORTS`, `PORTS_UDP`), comma-separated.
pub fn ports(list: &[Resource], name: &str) -> String {
    let ports: Vec<&str> = list
        .iter()
        .filter(|r| r.name.as_deref() == Some(name))
        .flat_map(|r| r.string_set_value.iter().map(String::as_str))
        .collect();
    if ports.is_empty() {
        NONE.into()
    } else {
        ports.join(",")
    }
}

/// `ARN REASON DETAIL` of a failure, leaving out what it lacks.
pub fn failure(f: &Failure) -> String {
    [&f.arn, &f.reason, &f.detail]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A log line as printed: `NAME | ` first when several containers'
/// lines mix; one trailing newline of the message is the line's own.
pub fn log_line(event: &LogEvent, prefixed: bool) -> String {
    let message = event.message.as_deref().unwrap_or_default();
    let message = message.strip_suffix('\n').unwrap_or(message);
    match (prefixed, event.container.as_deref()) {
        (true, Some(name)) => format!("{name} | {message}"),
        _ => message.to_string(),
    }
}

/// `Label:  value` lines, the values aligned.
pub fn fields(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{:<width$}  {v}\n", format!("{k}:")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_revisions_come_out_of_arns() {
        assert_eq!(
            id_of("arn:aws:ecs:us-east-1:000000000000:task/default/0123abcd"),
            "0123abcd"
        );
        assert_eq!(id_of("0123abcd"), "0123abcd");
        assert_eq!(
            family_revision("arn:aws:ecs:us-east-1:000000000000:task-definition/web:3"),
            "web:3"
        );
        assert_eq!(family_revision("web:3"), "web:3");
    }

    #[test]
    fn values_read_as_text_or_a_dash() {
        assert_eq!(text(Some("bridge")), "bridge");
        assert_eq!(text(Some("")), "-");
        assert_eq!(text(None), "-");
        assert_eq!(scalar(Some(&serde_json::json!(256))), "256");
        assert_eq!(scalar(Some(&serde_json::json!("1 vCPU"))), "1 vCPU");
        assert_eq!(scalar(Some(&Value::Null)), "-");
        assert_eq!(scalar(None), "-");
        assert_eq!(yes_no(Some(true)), "yes");
        assert_eq!(yes_no(None), "-");
    }

    #[test]
    fn times_read_as_rfc3339_or_as_docker_s_ago() {
        assert_eq!(time(Some(1_440_938_160.25)), "2015-08-30T12:36:00Z");
        assert_eq!(time(None), "-");
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(time(Some(bad)), "-");
            assert_eq!(ago(Some(bad)), "-");
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(ago(Some(now.as_secs_f64() - 300.0)), "5 minutes ago");
        assert_eq!(ago(None), "-");
    }

    fn res(name: &str, n: i64, ports: &[&str]) -> Resource {
        Resource {
            name: Some(name.into()),
            integer_value: Some(n),
            string_set_value: ports.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn resources_read_as_free_over_total() {
        let registered = [res("CPU", 2048, &[]), res("MEMORY", 3900, &[])];
        let remaining = [
            res("CPU", 1024, &[]),
            res("MEMORY", 3836, &[]),
            res("PORTS", 0, &["22", "8080"]),
        ];
        assert_eq!(free_total(&remaining, &registered, "CPU"), "1024/2048");
        assert_eq!(free_total(&remaining, &registered, "MEMORY"), "3836/3900");
        assert_eq!(free_total(&[], &registered, "CPU"), "-/2048");
        assert_eq!(ports(&remaining, "PORTS"), "22,8080");
        assert_eq!(ports(&remaining, "PORTS_UDP"), "-");
    }

    #[test]
    fn failures_and_log_lines_read_as_printed() {
        let f = Failure {
            arn: Some("arn:aws:ecs:us-east-1:0:container-instance/default/i1".into()),
            reason: Some("RESOURCE:MEMORY".into()),
            detail: Some("needs 512 MiB, has 256".into()),
        };
        assert_eq!(
            failure(&f),
            "arn:aws:ecs:us-east-1:0:container-instance/default/i1 RESOURCE:MEMORY needs 512 MiB, has 256"
        );
        let missing = Failure {
            arn: Some("x".into()),
            reason: Some("MISSING".into()),
            detail: None,
        };
        assert_eq!(failure(&missing), "x MISSING");
        let event = LogEvent {
            timestamp: Some(1.0),
            container: Some("web".into()),
            stream: Some("stdout".into()),
            message: Some("listening on :80\n".into()),
        };
        assert_eq!(log_line(&event, true), "web | listening on :80");
        assert_eq!(log_line(&event, false), "listening on :80");
    }

    #[test]
    fn fields_align_their_values() {
        let out = fields(&[("Family", "web".into()), ("Network mode", "bridge".into())]);
        assert_eq!(out, "Family:        web\nNetwork mode:  bridge\n");
    }
}
