//! `estiba task run|ls|describe|stop|logs`.

use std::io::Write as _;

use anyhow::Result;
use serde_json::Value;

use super::client::{Client, ESTIBA_TARGET};
use super::show::{self, ago, family_revision, id_of, scalar, text};
use super::wire::{
    self, DescribeTasks, GetTaskLogs, ListTasks, LogsAnswer, RunTask, StopTask, StopTaskAnswer,
    Task, TasksAnswer,
};
use super::{batched, list_all, output, report_failures, DESCRIBE_BATCH};
use crate::commands::images::tabulate;
use crate::ecs_cli::{Format, TaskCommand, TaskRunArgs};

/// How long a `-f` poll asks the server to wait for new lines.
const FOLLOW_WAIT_SECONDS: u32 = 20;

pub fn run(client: &Client, format: Format, cluster: &str, command: TaskCommand) -> Result<u8> {
    match command {
        TaskCommand::Run(args) => run_tasks(client, format, cluster, &args),
        TaskCommand::Ls {
            family,
            desired_status,
        } => {
            let request = ListTasks {
                cluster,
                family: family.as_deref(),
                desired_status: desired_status.as_str(),
            };
            let arns = list_all(client, "ListTasks", &request, "taskArns")?;
            let answer = describe(client, cluster, &arns)?;
            output(format, &answer, || {
                let tasks: TasksAnswer = wire::read(&answer, "DescribeTasks")?;
                print!("{}", list_table(&tasks.tasks));
                Ok(())
            })?;
            Ok(0)
        }
        TaskCommand::Describe { tasks } => {
            let answer = describe(client, cluster, &tasks)?;
            let described: TasksAnswer = wire::read(&answer, "DescribeTasks")?;
            output(format, &answer, || {
                let shown: Vec<String> = described.tasks.iter().map(task_table).collect();
                print!("{}", shown.join("\n"));
                Ok(())
            })?;
            Ok(u8::from(report_failures(&described.failures)))
        }
        TaskCommand::Stop { task, reason } => {
            let request = StopTask {
                cluster,
                task: &task,
                reason: reason.as_deref(),
            };
            let answer = client.ecs("StopTask", &request)?;
            let stopped: StopTaskAnswer = wire::read(&answer, "StopTask")?;
            output(format, &answer, || {
                println!("{}", text(stopped.task.task_arn.as_deref()));
                Ok(())
            })?;
            Ok(0)
        }
        TaskCommand::Logs {
            task,
            container,
            follow,
        } => logs(client, format, cluster, &task, container.as_deref(), follow),
    }
}

fn run_tasks(client: &Client, format: Format, cluster: &str, args: &TaskRunArgs) -> Result<u8> {
    let request = RunTask {
        cluster,
        task_definition: &args.task_definition,
        count: args.count,
        started_by: args.started_by.as_deref(),
        launch_type: args.launch_type.map(|l| l.as_str()),
    };
    let answer = client.ecs("RunTask", &request)?;
    let ran: TasksAnswer = wire::read(&answer, "RunTask")?;
    output(format, &answer, || {
        for t in &ran.tasks {
            println!("{}", text(t.task_arn.as_deref()));
        }
        Ok(())
    })?;
    report_failures(&ran.failures);
    // Some tasks started is a success, as for ECS: the failures say why
    // the others did not.
    Ok(u8::from(ran.tasks.is_empty()))
}

/// DescribeTasks of `ids`, a batch at a time.
fn describe(client: &Client, cluster: &str, ids: &[String]) -> Result<Value> {
    batched(ids, "tasks", DESCRIBE_BATCH, |chunk| {
        let request = DescribeTasks {
            cluster,
            tasks: chunk,
        };
        client.ecs("DescribeTasks", &request)
    })
}

fn list_table(tasks: &[Task]) -> String {
    let mut rows = vec![[
        "TASK",
        "DEFINITION",
        "LAST",
        "DESIRED",
        "INSTANCE",
        "STARTED",
    ]
    .map(String::from)];
    for t in tasks {
        rows.push([
            text(t.task_arn.as_deref().map(id_of)),
            text(t.task_definition_arn.as_deref().map(family_revision)),
            text(t.last_status.as_deref()),
            text(t.desired_status.as_deref()),
            text(t.container_instance_arn.as_deref().map(id_of)),
            ago(t.started_at),
        ]);
    }
    tabulate(&rows)
}

/// One task's details and its containers.
fn task_table(t: &Task) -> String {
    let mut rows = vec![
        ("Task", text(t.task_arn.as_deref())),
        (
            "Definition",
            text(t.task_definition_arn.as_deref().map(family_revision)),
        ),
        ("Last status", text(t.last_status.as_deref())),
        ("Desired status", text(t.desired_status.as_deref())),
        ("Health", text(t.health_status.as_deref())),
        (
            "Instance",
            text(t.container_instance_arn.as_deref().map(id_of)),
        ),
        ("Launch type", text(t.launch_type.as_deref())),
        ("Started by", text(t.started_by.as_deref())),
        ("Group", text(t.group.as_deref())),
        ("CPU", scalar(t.cpu.as_ref())),
        ("Memory", scalar(t.memory.as_ref())),
        ("Created", show::time(t.created_at)),
        ("Started", show::time(t.started_at)),
    ];
    if t.stopping_at.is_some() || t.stopped_at.is_some() {
        rows.push(("Stopped", show::time(t.stopped_at)));
        rows.push(("Stop code", text(t.stop_code.as_deref())));
        rows.push(("Stopped reason", text(t.stopped_reason.as_deref())));
    }
    let mut out = show::fields(&rows);
    let mut containers =
        vec![["CONTAINER", "IMAGE", "STATUS", "EXIT", "HEALTH", "REASON"].map(String::from)];
    for c in &t.containers {
        containers.push([
            text(c.name.as_deref()),
            text(c.image.as_deref()),
            text(c.last_status.as_deref()),
            c.exit_code
                .map_or_else(|| show::NONE.into(), |e| e.to_string()),
            text(c.health_status.as_deref()),
            text(c.reason.as_deref()),
        ]);
    }
    out.push('\n');
    out.push_str(&tabulate(&containers));
    out
}

/// The task as DescribeTasks has it now, with its failure if it has none.
fn current(client: &Client, cluster: &str, task: &str) -> Result<TasksAnswer> {
    let answer = describe(client, cluster, &[task.to_string()])?;
    wire::read(&answer, "DescribeTasks")
}

/// Whether the task is over: STOPPED, or gone.
fn stopped(client: &Client, cluster: &str, task: &str) -> Result<bool> {
    let found = current(client, cluster, task)?;
    Ok(found
        .tasks
        .first()
        .is_none_or(|t| t.last_status.as_deref() == Some("STOPPED")))
}

/// Prints the task's log lines; with `follow`, keeps asking for more
/// (the server holds each call open up to `wait` seconds) until the task
/// is STOPPED and nothing is left to read.
fn logs(
    client: &Client,
    format: Format,
    cluster: &str,
    task: &str,
    container: Option<&str>,
    mut follow: bool,
) -> Result<u8> {
    let id = id_of(task);
    let mut found = current(client, cluster, task)?;
    let Some(known) = found.tasks.pop() else {
        if !report_failures(&found.failures) {
            eprintln!("failure: {task} MISSING");
        }
        return Ok(1);
    };
    // Names tell lines apart only when several containers' lines mix.
    let prefixed = container.is_none() && known.containers.len() > 1;
    let mut token: Option<String> = None;
    let mut caught_up = false;
    loop {
        let request = GetTaskLogs {
            cluster,
            task: id,
            container,
            next_token: token.as_deref(),
            wait: (follow && caught_up).then_some(FOLLOW_WAIT_SECONDS),
        };
        let body = serde_json::to_vec(&request)?;
        let answer = client.call(&format!("{ESTIBA_TARGET}.GetTaskLogs"), &body)?;
        let page: LogsAnswer = wire::read(&answer, "GetTaskLogs")?;
        match print_events(format, &answer, &page, prefixed) {
            // The reader is gone (`| head`): that ends the logs, quietly.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(0),
            other => other?,
        }
        let moved = page.next_token.is_some() && page.next_token != token;
        token = page.next_token.or(token);
        if !page.events.is_empty() && moved {
            continue;
        }
        // Caught up: without -f that is all; with it, wait for more
        // unless the task is over.
        if !follow {
            return Ok(0);
        }
        caught_up = true;
        if page.events.is_empty() && stopped(client, cluster, task)? {
            // One last read, without waiting: lines written as it stopped.
            follow = false;
        }
    }
}

/// Lines of the stdout stream to standard output, of stderr to standard
/// error, as `docker logs` keeps them; `--format json` prints each event
/// of the answer as it came, one JSON line each.
fn print_events(
    format: Format,
    answer: &Value,
    page: &LogsAnswer,
    prefixed: bool,
) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    if format == Format::Json {
        for event in answer["events"].as_array().into_iter().flatten() {
            writeln!(out, "{event}")?;
        }
        return out.flush();
    }
    for event in &page.events {
        let line = show::log_line(event, prefixed);
        if event.stream.as_deref() == Some("stderr") {
            out.flush()?;
            writeln!(std::io::stderr(), "{line}")?;
        } else {
            writeln!(out, "{line}")?;
        }
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tasks_list_by_id_definition_status_and_instance() {
        let answer = json!({"tasks": [
            {
                "taskArn": "arn:aws:ecs:us-east-1:000000000000:task/default/7f3a",
                "taskDefinitionArn": "arn:aws:ecs:us-east-1:000000000000:task-definition/web:3",
                "lastStatus": "PENDING",
                "desiredStatus": "RUNNING",
                "containerInstanceArn": "arn:aws:ecs:us-east-1:000000000000:container-instance/default/c41",
            },
        ]});
        let tasks: TasksAnswer = wire::read(&answer, "test").unwrap();
        assert_eq!(
            list_table(&tasks.tasks),
            "TASK   DEFINITION   LAST      DESIRED   INSTANCE   STARTED\n\
             7f3a   web:3        PENDING   RUNNING   c41        -\n"
        );
    }

    #[test]
    fn a_stopped_task_shows_why_and_its_containers_exits() {
        let task: Task = wire::read(
            &json!({
                "taskArn": "arn:aws:ecs:us-east-1:0:task/default/7f3a",
                "lastStatus": "STOPPED",
                "stoppedAt": 1_440_938_160.0,
                "stopCode": "EssentialContainerExited",
                "stoppedReason": "Essential container in task exited",
                "containers": [{"name": "web", "image": "nginx", "lastStatus": "STOPPED", "exitCode": 137}],
            }),
            "test",
        )
        .unwrap();
        let shown = task_table(&task);
        assert!(
            shown.contains("Stopped:         2015-08-30T12:36:00Z\n"),
            "{shown}"
        );
        assert!(
            shown.contains("Stopped reason:  Essential container in task exited\n"),
            "{shown}"
        );
        assert!(
            shown.ends_with("web         nginx   STOPPED   137    -        -\n"),
            "{shown}"
        );
        let running: Task = wire::read(&json!({"lastStatus": "RUNNING"}), "test").unwrap();
        assert!(!task_table(&running).contains("Stop code"));
    }

    #[test]
    fn logs_requests_send_every_field() {
        let request = GetTaskLogs {
            cluster: "default",
            task: "7f3a",
            container: None,
            next_token: Some("t1"),
            wait: Some(FOLLOW_WAIT_SECONDS),
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({"cluster": "default", "task": "7f3a", "container": null, "nextToken": "t1", "wait": 20})
        );
    }
}
