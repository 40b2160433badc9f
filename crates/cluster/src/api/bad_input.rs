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
    // Services.
    (
        "CreateService",
        r#"{"serviceName": "s"}"#,
        "InvalidParameterException",
        "desiredCount is required",
    ),
    (
        "CreateService",
        r#"{"serviceName": "s", "taskDefinition": "web", "desiredCount": 5001}"#,
        "InvalidParameterException",
        "between 0 and 5000",
    ),
    (
        "CreateService",
        r#"{"serviceName": "s", "taskDefinition": "web", "desiredCount": -1}"#,
        "InvalidParameterException",
        "desiredCount",
    ),
    (
        "CreateService",
        r#"{"serviceName": "s", "taskDefinition": "web", "desiredCount": "2"}"#,
        "SerializationException",
        "desiredCount",
    ),
    (
        "CreateService",
        r#"{"serviceName": "has space", "taskDefinition": "web", "desiredCount": 1}"#,
        "InvalidParameterException",
        "serviceName",
    ),
    (
        "CreateService",
        r#"{"cluster": "nowhere", "serviceName": "s", "taskDefinition": "web", "desiredCount": 1}"#,
        "ClusterNotFoundException",
        "Cluster not found",
    ),
    (
        "CreateService",
        r#"{"serviceName": "s", "taskDefinition": "ghost", "desiredCount": 1}"#,
        "ClientException",
        "TaskDefinition not found",
    ),
    (
        "CreateService",
        r#"{"serviceName": "s", "taskDefinition": "web", "desiredCount": 2, "deploymentConfiguration": {"minimumHealthyPercent": 75, "maximumPercent": 100}}"#,
        "InvalidParameterException",
        "cannot make progress",
    ),
    (
        "CreateService",
        r#"{"serviceName": "s", "taskDefinition": "web", "desiredCount": 3, "deploymentConfiguration": {"minimumHealthyPercent": 100, "maximumPercent": 125}}"#,
        "InvalidParameterException",
        "cannot make progress",
    ),
    (
        "CreateService",
        r#"{"serviceName": "s", "taskDefinition": "web", "desiredCount": 1, "deploymentConfiguration": {"minimumHealthyPercent": 150}}"#,
        "InvalidParameterException",
        "minimumHealthyPercent",
    ),
    (
        "CreateService",
        r#"{"serviceName": "s", "taskDefinition": "web", "desiredCount": 1, "deploymentConfiguration": {"deploymentCircuitBreaker": {"enable": true}}}"#,
        "SerializationException",
        "rollback",
    ),
    (
        "CreateService",
        r#"{"serviceName": "s", "taskDefinition": "web", "desiredCount": 1, "placementConstraints": [{"type": "memberOf", "expression": "attribute:zone == a &&"}]}"#,
        "InvalidParameterException",
        "at character 23",
    ),
    (
        "CreateService",
        r#"{"serviceName": "s", "taskDefinition": "web", "desiredCount": 1, "placementConstraints": [{"type": "memberOf", "expression": "(attribute:zone == a"}]}"#,
        "InvalidParameterException",
        "expected ')'",
    ),
    (
        "CreateService",
        r#"{"serviceName": "s", "taskDefinition": "web", "desiredCount": 1, "placementConstraints": [{"type": "memberOf", "expression": "nodeName == a"}]}"#,
        "InvalidParameterException",
        "unknown subject",
    ),
    (
        "CreateService",
        r#"{"serviceName": "s", "taskDefinition": "web", "desiredCount": 1, "placementConstraints": [{"type": "memberOf", "expression": "attribute:a =~ '('"}]}"#,
        "InvalidParameterException",
        "regular expression",
    ),
    (
        "CreateService",
        r#"{"serviceName": "s", "taskDefinition": "web", "desiredCount": 1, "placementStrategy": [{"type": "spread", "field": "attribute:"}]}"#,
        "InvalidParameterException",
        "spread",
    ),
    (
        "CreateService",
        r#"{"serviceName": "s", "taskDefinition": "web", "schedulingStrategy": "DAEMON", "placementStrategy": [{"type": "random"}]}"#,
        "InvalidParameterException",
        "DAEMON",
    ),
    (
        "CreateService",
        r#"{"serviceName": "s", "taskDefinition": "web", "desiredCount": 1, "schedulingStrategy": "SOMETIMES"}"#,
        "InvalidParameterException",
        "schedulingStrategy",
    ),
    (
        "CreateService",
        r#"{"serviceName": "s", "taskDefinition": "web", "desiredCount": 1, "loadBalancers": [{"targetGroupArn": "x"}]}"#,
        "InvalidParameterException",
        "loadBalancers",
    ),
    (
        "CreateService",
        r#"{"serviceName": "s", "taskDefinition": "web", "desiredCount": 1, "deploymentController": {"type": "CODE_DEPLOY"}}"#,
        "InvalidParameterException",
        "CODE_DEPLOY",
    ),
    (
        "UpdateService",
        r#"{"service": "ghost", "desiredCount": 1}"#,
        "ServiceNotFoundException",
        "Service not found",
    ),
    (
        "UpdateService",
        r#"{"cluster": "nowhere", "service": "ghost"}"#,
        "ClusterNotFoundException",
        "",
    ),
    (
        "DeleteService",
        r#"{"service": "ghost"}"#,
        "ServiceNotFoundException",
        "",
    ),
    (
        "DescribeServices",
        r#"{"services": []}"#,
        "InvalidParameterException",
        "1 to 10",
    ),
    (
        "ListServices",
        r#"{"schedulingStrategy": "SOMETIMES"}"#,
        "InvalidParameterException",
        "schedulingStrategy",
    ),
    // Application Auto Scaling.
    (
        "AnyScaleFrontendService.RegisterScalableTarget",
        r#"{"ServiceNamespace": "ec2", "ResourceId": "service/default/web", "ScalableDimension": "ecs:service:DesiredCount", "MinCapacity": 1, "MaxCapacity": 2}"#,
        "ValidationException",
        "namespace",
    ),
    (
        "AnyScaleFrontendService.RegisterScalableTarget",
        r#"{"ServiceNamespace": "ecs", "ResourceId": "service/default/ghost", "ScalableDimension": "ecs:service:DesiredCount", "MinCapacity": 1, "MaxCapacity": 2}"#,
        "ValidationException",
        "doesn't exist",
    ),
    (
        "AnyScaleFrontendService.RegisterScalableTarget",
        r#"{"ServiceNamespace": "ecs", "ResourceId": "service/default/web", "ScalableDimension": "ecs:service:Memory"}"#,
        "ValidationException",
        "dimension",
    ),
    (
        "AnyScaleFrontendService.PutScalingPolicy",
        r#"{"PolicyName": "p", "ServiceNamespace": "ecs", "ResourceId": "service/default/ghost", "ScalableDimension": "ecs:service:DesiredCount", "PolicyType": "TargetTrackingScaling", "TargetTrackingScalingPolicyConfiguration": {"TargetValue": 50, "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"}}}"#,
        "ObjectNotFoundException",
        "No scalable target",
    ),
    (
        "AnyScaleFrontendService.PutScalingPolicy",
        r#"{"PolicyName": "p", "ServiceNamespace": "ecs", "ResourceId": "service/default/web", "ScalableDimension": "ecs:service:DesiredCount", "PolicyType": "StepScaling"}"#,
        "ValidationException",
        "StepScaling",
    ),
    (
        "AnyScaleFrontendService.PutScalingPolicy",
        r#"{"PolicyName": "p", "ServiceNamespace": "ecs", "ResourceId": "service/default/web", "ScalableDimension": "ecs:service:DesiredCount", "PolicyType": "TargetTrackingScaling", "TargetTrackingScalingPolicyConfiguration": {"TargetValue": -5, "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"}}}"#,
        "ValidationException",
        "TargetValue",
    ),
    (
        "AnyScaleFrontendService.DeleteScalingPolicy",
        r#"{"PolicyName": "p", "ServiceNamespace": "ecs", "ResourceId": "service/default/web", "ScalableDimension": "ecs:service:DesiredCount"}"#,
        "ObjectNotFoundException",
        "No scaling policy",
    ),
    (
        "AnyScaleFrontendService.DescribeScalableTargets",
        r#"{"ServiceNamespace": "ecs", "MaxResults": 51}"#,
        "ValidationException",
        "MaxResults",
    ),
    (
        "AnyScaleFrontendService.DescribeScalingPolicies",
        r#"{"ServiceNamespace": "ecs"#,
        "SerializationException",
        "",
    ),
    // Operations estiba does not serve are named.
    (
        "CreateTaskSet",
        "{}",
        "UnknownOperationException",
        "CreateTaskSet",
    ),
];

/// Refused updates of an existing service change nothing either.
#[tokio::test]
async fn bad_updates_of_a_service_change_nothing() {
    let f = fixture().await;
    let create = r#"{"serviceName": "api", "taskDefinition": "web", "desiredCount": 2}"#;
    f.server
        .call(&f.caller, "CreateService", create.as_bytes())
        .await
        .expect("a service");
    let before = f.server.db.store.revision().await.unwrap();
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "UpdateService",
            r#"{"service": "api", "desiredCount": 5001}"#,
            "InvalidParameterException",
            "desiredCount",
        ),
        (
            "UpdateService",
            r#"{"service": "api", "deploymentConfiguration": {"minimumHealthyPercent": 75, "maximumPercent": 100}}"#,
            "InvalidParameterException",
            "cannot make progress",
        ),
        (
            "UpdateService",
            r#"{"service": "api", "taskDefinition": "web:99"}"#,
            "ClientException",
            "TaskDefinition not found",
        ),
        (
            "UpdateService",
            r#"{"service": "api", "placementConstraints": [{"type": "memberOf", "expression": "attribute:zone in [a"}]}"#,
            "InvalidParameterException",
            "expected ',' or ']'",
        ),
        (
            "DeleteService",
            r#"{"service": "api"}"#,
            "InvalidParameterException",
            "scaled above 0",
        ),
        (
            "AnyScaleFrontendService.RegisterScalableTarget",
            r#"{"ServiceNamespace": "ecs", "ResourceId": "service/default/api", "ScalableDimension": "ecs:service:DesiredCount", "MinCapacity": 5, "MaxCapacity": 2}"#,
            "ValidationException",
            "cannot be more than MaxCapacity",
        ),
        (
            "AnyScaleFrontendService.RegisterScalableTarget",
            r#"{"ServiceNamespace": "ecs", "ResourceId": "service/default/api", "ScalableDimension": "ecs:service:DesiredCount", "MinCapacity": 1}"#,
            "ValidationException",
            "MaxCapacity are required",
        ),
        (
            "CreateService",
            r#"{"serviceName": "api", "taskDefinition": "web", "desiredCount": 1}"#,
            "InvalidParameterException",
            "not idempotent",
        ),
    ];
    for (op, body, exception, words) in cases {
        match f.server.call(&f.caller, op, body.as_bytes()).await {
            Err(e) if e.0.exception == *exception && e.0.message.contains(words) => {}
            other => panic!("{op} {body}: wanted {exception} ({words}), got {other:?}"),
        }
    }
    assert_eq!(f.server.db.store.revision().await.unwrap(), before);
}

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
