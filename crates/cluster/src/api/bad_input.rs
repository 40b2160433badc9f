//! The ECS API's bad-input suite: each malformed body, out-of-range value
//! and wrong reference is answered with ECS's exception and a message that
//! says what is wrong, and changes nothing in the store.

use estiba_state::Store;

use super::{Caller, Server};

struct Fixture {
    _dir: tempfile::TempDir,
    server: std::sync::Arc<Server>,
    caller: Caller,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (server, caller) = super::fuzzing::seeded(dir.path()).await;
    Fixture {
        _dir: dir,
        server,
        caller,
    }
}

/// Operation, body, the exception expected, and words its message holds.
const CASES: &[(&str, &str, &str, &str)] = &[
    // Bodies that are not the operation's shape.
    ("RunTask", "not json", "SerializationException", ""),
    ("RunTask", "[]", "SerializationException", ""),
    (
        "RunTask",
        r#"{"taskDefinition": 5}"#,
        "SerializationException",
        "taskDefinition",
    ),
    (
        "RunTask",
        r#"{"taskDefinition": "web", "count": "two"}"#,
        "SerializationException",
        "count",
    ),
    (
        "RunTask",
        r#"{"taskDefinition": "web", "count": -1}"#,
        "InvalidParameterException",
        "count",
    ),
    (
        "ListTasks",
        r#"{"maxResults": 1.5}"#,
        "SerializationException",
        "maxResults",
    ),
    (
        "DescribeTasks",
        r#"{"tasks": "abc"}"#,
        "SerializationException",
        "tasks",
    ),
    // Values out of range.
    (
        "RunTask",
        r#"{"taskDefinition": "web", "count": 0}"#,
        "InvalidParameterException",
        "count",
    ),
    (
        "RunTask",
        r#"{"taskDefinition": "web", "count": 11}"#,
        "InvalidParameterException",
        "count",
    ),
    (
        "ListTasks",
        r#"{"maxResults": 0}"#,
        "InvalidParameterException",
        "maxResults",
    ),
    (
        "ListTasks",
        r#"{"maxResults": 101}"#,
        "InvalidParameterException",
        "maxResults",
    ),
    (
        "ListTaskDefinitions",
        r#"{"maxResults": 101}"#,
        "InvalidParameterException",
        "maxResults",
    ),
    (
        "ListTasks",
        r#"{"nextToken": "not-a-token"}"#,
        "InvalidParameterException",
        "nextToken",
    ),
    (
        "ListTasks",
        r#"{"desiredStatus": "SLEEPING"}"#,
        "InvalidParameterException",
        "desiredStatus",
    ),
    (
        "ListTasks",
        r#"{"launchType": "SPACESHIP"}"#,
        "InvalidParameterException",
        "launchType",
    ),
    (
        "DescribeTasks",
        r#"{"tasks": []}"#,
        "InvalidParameterException",
        "1 to 100",
    ),
    (
        "CreateCluster",
        r#"{"clusterName": "no spaces allowed"}"#,
        "InvalidParameterException",
        "Cluster name",
    ),
    (
        "CreateCluster",
        r#"{"clusterName": "~fargate"}"#,
        "InvalidParameterException",
        "Cluster name",
    ),
    // References to what does not exist.
    (
        "RunTask",
        r#"{"cluster": "nowhere", "taskDefinition": "web"}"#,
        "ClusterNotFoundException",
        "Cluster not found",
    ),
    (
        "RunTask",
        r#"{"taskDefinition": "nothing:1"}"#,
        "ClientException",
        "TaskDefinition not found",
    ),
    (
        "RunTask",
        r#"{"taskDefinition": "web:99"}"#,
        "ClientException",
        "TaskDefinition not found",
    ),
    (
        "RunTask",
        r#"{"taskDefinition": "arn:aws:s3:::bucket"}"#,
        "ClientException",
        "TaskDefinition not found",
    ),
    (
        "RunTask",
        r#"{"taskDefinition": "web", "overrides": {"containerOverrides": [{"name": "ghost", "command": ["x"]}]}}"#,
        "InvalidParameterException",
        "ghost",
    ),
    (
        "RunTask",
        r#"{"taskDefinition": "web", "placementStrategy": [{"type": "sideways"}]}"#,
        "InvalidParameterException",
        "sideways",
    ),
    (
        "RunTask",
        r#"{"taskDefinition": "web", "placementConstraints": [{"type": "memberOf", "expression": "attribute:x =="}]}"#,
        "InvalidParameterException",
        "",
    ),
    (
        "StopTask",
        r#"{"task": "0123456789abcdef0123456789abcdef"}"#,
        "InvalidParameterException",
        "not found",
    ),
    (
        "StopTask",
        r#"{}"#,
        "SerializationException",
        "missing field `task`",
    ),
    (
        "DescribeTaskDefinition",
        r#"{"taskDefinition": "nothing"}"#,
        "ClientException",
        "Unable to describe task definition",
    ),
    (
        "DeregisterTaskDefinition",
        r#"{"taskDefinition": "web"}"#,
        "ClientException",
        "revision",
    ),
    (
        "DeleteCluster",
        r#"{"cluster": "nowhere"}"#,
        "ClusterNotFoundException",
        "",
    ),
    (
        "TagResource",
        r#"{"resourceArn": "not-an-arn", "tags": [{"key": "a", "value": "b"}]}"#,
        "InvalidParameterException",
        "",
    ),
    (
        "UpdateContainerInstancesState",
        r#"{"containerInstances": ["x"], "status": "ASLEEP"}"#,
        "InvalidParameterException",
        "status",
    ),
    (
        "PutAttributes",
        r#"{"attributes": []}"#,
        "InvalidParameterException",
        "attributes",
    ),
    // Operations estiba does not serve are named.
    (
        "CreateService",
        "{}",
        "UnknownOperationException",
        "CreateService",
    ),
];

#[tokio::test]
async fn each_bad_request_gets_ecs_exception_and_changes_nothing() {
    let f = fixture().await;
    let before = f.server.db.store.revision().await.unwrap();
    let mut wrong = Vec::new();
    for (op, body, exception, words) in CASES {
        let got = f.server.call(&f.caller, op, body.as_bytes()).await;
        match got {
            Err(e) if e.0.exception == *exception && e.0.message.contains(words) => {}
            other => wrong.push(format!(
                "{op} {body}: wanted {exception} ({words}), got {other:?}"
            )),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(
        f.server.db.store.revision().await.unwrap(),
        before,
        "a refused request wrote to the store"
    );
}

/// The fuzz target's harness over the suite's cases and some noise: no
/// panic, and no refusal blamed on the server.
#[test]
fn the_fuzz_harness_answers_every_case_without_a_server_error() {
    for (op, body, _, _) in CASES {
        if let Some(pick) = super::fuzzing::OPERATIONS.iter().position(|o| o == op) {
            let mut data = vec![pick as u8];
            data.extend_from_slice(body.as_bytes());
            super::fuzzing::one_input(&data);
        }
    }
    for noise in [&b"\x0a{\"count\": 1e999}"[..], b"\x0e\xff\xfe", b"\x04{\"family\": \"\"}", b"\x16{\"resourceArn\": \"arn:aws:ecs:us-east-1:000000000000:task/default/x\", \"tags\": [{}]}"] {
        super::fuzzing::one_input(noise);
    }
}
