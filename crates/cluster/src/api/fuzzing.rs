//! One ECS API request from arbitrary bytes, for the fuzz target
//! (`fuzz/fuzz_targets/ecs_request.rs`) and the bad-input suite.
//!
//! The first byte picks an operation; the rest is its body. The request
//! goes to the operation as it would after authentication, against a
//! private control plane (SQLite in a temporary directory, one cluster and
//! one task definition) that no caller can reach otherwise. Any input is
//! answered, never a panic, and refused input is the client's fault (4xx),
//! never a ServerException.

use std::sync::OnceLock;

use super::{Caller, Server, Settings};

/// The operations the fuzzer reaches, by the first byte of its input.
pub const OPERATIONS: &[&str] = &[
    "CreateCluster",
    "DeleteCluster",
    "DescribeClusters",
    "ListClusters",
    "RegisterTaskDefinition",
    "DeregisterTaskDefinition",
    "DescribeTaskDefinition",
    "ListTaskDefinitions",
    "ListTaskDefinitionFamilies",
    "DeleteTaskDefinitions",
    "RunTask",
    "StartTask",
    "StopTask",
    "DescribeTasks",
    "ListTasks",
    "ListContainerInstances",
    "DescribeContainerInstances",
    "DeregisterContainerInstance",
    "UpdateContainerInstancesState",
    "PutAttributes",
    "DeleteAttributes",
    "ListAttributes",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
    "CreateService",
    "UpdateService",
    "DeleteService",
    "DescribeServices",
    "ListServices",
    "AnyScaleFrontendService.RegisterScalableTarget",
    "AnyScaleFrontendService.DeregisterScalableTarget",
    "AnyScaleFrontendService.DescribeScalableTargets",
    "AnyScaleFrontendService.PutScalingPolicy",
    "AnyScaleFrontendService.DescribeScalingPolicies",
    "AnyScaleFrontendService.DeleteScalingPolicy",
    "AnyScaleFrontendService.DescribeScalingActivities",
];

struct Private {
    runtime: tokio::runtime::Runtime,
    server: std::sync::Arc<Server>,
    caller: Caller,
}

fn private() -> &'static Private {
    static ONE: OnceLock<Private> = OnceLock::new();
    ONE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let dir = std::env::temp_dir().join(format!("estiba-fuzz-{}", estiba_os::random_hex(8)));
        let (server, caller) = runtime.block_on(seeded(&dir));
        Private {
            runtime,
            server,
            caller,
        }
    })
}

/// A control plane on SQLite in `dir` with the `default` cluster and the
/// task definition `web`, and a caller that is past authentication.
pub(crate) async fn seeded(dir: &std::path::Path) -> (std::sync::Arc<Server>, Caller) {
    let server = crate::open::server(dir, &crate::open::StoreSpec::Sqlite, Settings::default())
        .await
        .expect("a private control plane");
    let caller = Caller {
        user: "admin".into(),
        access_key: "AKIDADMIN".into(),
        policies: Vec::new(),
    };
    for (op, body) in [
        ("CreateCluster", r#"{"clusterName": "default"}"#),
        (
            "RegisterTaskDefinition",
            r#"{"family": "web", "containerDefinitions": [{"name": "app", "image": "busybox", "memory": 16}]}"#,
        ),
    ] {
        server
            .call(&caller, op, body.as_bytes())
            .await
            .expect("the fixture");
    }
    (server, caller)
}

/// Sends `body` to `operation`, as after authentication, and returns the
/// exception and status of a refusal.
pub fn request(operation: &str, body: &[u8]) -> Result<serde_json::Value, (String, u16, String)> {
    let p = private();
    p.runtime
        .block_on(p.server.call(&p.caller, operation, body))
        .map_err(|e| (e.0.exception, e.0.status, e.0.message))
}

/// The fuzz target's body: any bytes are answered, and a refusal is a 4xx.
pub fn one_input(data: &[u8]) {
    let Some((pick, body)) = data.split_first() else {
        return;
    };
    let operation = OPERATIONS[usize::from(*pick) % OPERATIONS.len()];
    if let Err((exception, status, message)) = request(operation, body) {
        assert!(
            status < 500,
            "{operation} {:?}: {exception} {status}: {message}",
            String::from_utf8_lossy(body)
        );
    }
}
