//! The ECS API as AWS serves it: awsJson1.1 (`POST /` with
//! `X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Operation>`), signed
//! with SigV4, authorized by the caller's IAM-style policies, and every
//! mutating call written to the audit log.
//!
//! A request goes: target → access key → signature → policy → operation
//! (`call`) → audit line → response. Each family of operations has a
//! module; each operation takes its typed request and answers JSON.

pub mod agent;
mod autoscaling;
#[cfg(test)]
mod bad_input;
mod clusters;
#[doc(hidden)]
pub mod fuzzing;
mod instances;
mod logs;
mod services;
mod tags;
mod taskdefs;
pub mod tasks;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use estiba_aws::json::{self, ErrorBody};
use estiba_aws::sigv4;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::Instrument;

use crate::audit::{Audit, Entry};
use crate::model::Db;
use crate::seal::Sealer;
use crate::{users, Error, Result};

/// ECS's service name in `X-Amz-Target`.
pub const ECS_TARGET: &str = "AmazonEC2ContainerServiceV20141113";
/// The prefix of Application Auto Scaling's operations on the same
/// endpoint.
pub const AUTOSCALING_TARGET: &str = "AnyScaleFrontendService.";
/// The prefix of estiba's own operations on the same endpoint.
pub const ESTIBA_TARGET: &str = "Estiba_V1.";

/// The IAM action a policy must allow for an operation.
fn action_of(operation: &str) -> String {
    match operation {
        "Estiba_V1.GetTaskLogs" => "logs:GetLogEvents".to_string(),
        op => match op.strip_prefix(AUTOSCALING_TARGET) {
            Some(aas) => format!("application-autoscaling:{aas}"),
            None => format!("ecs:{op}"),
        },
    }
}

/// The service a request must be signed for: Application Auto Scaling's
/// operations are signed for their own.
fn signing_service(operation: &str) -> &'static str {
    if operation.starts_with(AUTOSCALING_TARGET) {
        "application-autoscaling"
    } else {
        "ecs"
    }
}

/// The region and account the ARNs name.
#[derive(Clone, Debug)]
pub struct Settings {
    pub region: String,
    pub account: String,
    /// How often agents heartbeat; three missed make a node disconnected.
    pub heartbeat: std::time::Duration,
    /// How long a disconnected node's tasks wait before they are STOPPED.
    pub lost_grace: std::time::Duration,
    /// How long a service's task without health checks must run to count
    /// as healthy (ECS fixes it at 40 s).
    pub healthy_after: std::time::Duration,
    /// Mixed into every placement's seed: the same seed, the same layout.
    pub placement_seed: u64,
    /// The leader's lease: how soon another replica leads after it dies.
    pub leader_ttl: std::time::Duration,
    /// How often target-tracking scaling looks at the services' usage.
    pub autoscale_every: std::time::Duration,
}

impl Default for Settings {
    /// us-east-1 and the all-zero account, as local AWS stand-ins use; a
    /// heartbeat every 10 s, a minute's grace for a lost node, ECS's 40 s
    /// before a task without checks counts as healthy, and seed 0.
    fn default() -> Settings {
        Settings {
            region: "us-east-1".into(),
            account: "000000000000".into(),
            heartbeat: std::time::Duration::from_secs(10),
            lost_grace: std::time::Duration::from_secs(60),
            healthy_after: std::time::Duration::from_secs(40),
            placement_seed: 0,
            leader_ttl: std::time::Duration::from_secs(2),
            autoscale_every: std::time::Duration::from_secs(15),
        }
    }
}

/// The control plane's shared state.
#[derive(Debug)]
pub struct Server {
    pub db: Db,
    /// For calls to agents' APIs (task logs).
    pub http: reqwest::Client,
    pub sealer: Sealer,
    pub audit: Audit,
    pub settings: Settings,
    /// Live tasks, from a watch (`view::follow`, started by `serve`).
    pub view: crate::view::View,
    /// Whether this replica leads (`leader::campaign`, started by `serve`).
    pub leader: crate::leader::Leadership,
    /// The instances the last placement left (`tasks::place_many`).
    pub(crate) pools: tasks::PoolCache,
}

/// An answer the client sees as an ECS error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError(pub ErrorBody);

pub type Reply = std::result::Result<Value, ApiError>;

impl ApiError {
    pub fn new(exception: &str, status: u16, message: impl Into<String>) -> ApiError {
        ApiError(ErrorBody::new(exception, status, message.into()))
    }
    pub fn client(message: impl Into<String>) -> ApiError {
        ApiError::new("ClientException", 400, message)
    }
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new("InvalidParameterException", 400, message)
    }
    pub fn cluster_not_found() -> ApiError {
        ApiError::new("ClusterNotFoundException", 400, "Cluster not found.")
    }
}

impl From<ErrorBody> for ApiError {
    fn from(e: ErrorBody) -> ApiError {
        ApiError(e)
    }
}

impl From<estiba_ecs::Error> for ApiError {
    fn from(e: estiba_ecs::Error) -> ApiError {
        ApiError::new(e.exception.name(), 400, e.message)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        match e {
            Error::Invalid(m) => ApiError::invalid(m),
            Error::Conflict(m) => ApiError::client(m),
            other => {
                // The details stay in the server's log, not in the answer.
                tracing::error!("{other}");
                ApiError::new("ServerException", 500, "An internal error occurred.")
            }
        }
    }
}

impl From<estiba_state::Error> for ApiError {
    fn from(e: estiba_state::Error) -> ApiError {
        Error::from(e).into()
    }
}

/// Who made a request, and the policies they act under.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user: String,
    pub access_key: String,
    pub policies: Vec<crate::model::PolicyRef>,
}

impl Server {
    pub fn arn(&self, resource: impl Into<String>) -> String {
        estiba_aws::arn::Arn::new(
            "ecs",
            &self.settings.region,
            &self.settings.account,
            resource,
        )
        .to_string()
    }

    pub fn cluster_arn(&self, name: &str) -> String {
        self.arn(format!("cluster/{name}"))
    }

    /// The IAM ARN of a user, as `registeredBy` shows it.
    pub fn user_arn(&self, name: &str) -> String {
        format!("arn:aws:iam::{}:user/{name}", self.settings.account)
    }

    /// The operation itself, once the caller may make it.
    async fn call(&self, caller: &Caller, operation: &str, body: &[u8]) -> Reply {
        match operation {
            "CreateCluster" => clusters::create(self, parse(body)?).await,
            "DeleteCluster" => clusters::delete(self, parse(body)?).await,
            "DescribeClusters" => clusters::describe(self, parse(body)?).await,
            "ListClusters" => clusters::list(self, parse(body)?).await,
            "RegisterTaskDefinition" => taskdefs::register(self, caller, body).await,
            "DeregisterTaskDefinition" => taskdefs::deregister(self, parse(body)?).await,
            "DescribeTaskDefinition" => taskdefs::describe(self, parse(body)?).await,
            "ListTaskDefinitions" => taskdefs::list(self, parse(body)?).await,
            "ListTaskDefinitionFamilies" => taskdefs::families(self, parse(body)?).await,
            "DeleteTaskDefinitions" => taskdefs::delete(self, parse(body)?).await,
            "RunTask" => tasks::run(self, parse(body)?, false).await,
            "StartTask" => tasks::run(self, parse(body)?, true).await,
            "StopTask" => tasks::stop(self, parse(body)?).await,
            "DescribeTasks" => tasks::describe(self, parse(body)?).await,
            "ListTasks" => tasks::list(self, parse(body)?).await,
            "CreateService" => services::create(self, caller, parse(body)?).await,
            "UpdateService" => services::update(self, parse(body)?).await,
            "DeleteService" => services::delete(self, parse(body)?).await,
            "DescribeServices" => services::describe(self, parse(body)?).await,
            "ListServices" => services::list(self, parse(body)?).await,
            "ListContainerInstances" => instances::list(self, parse(body)?).await,
            "DescribeContainerInstances" => instances::describe(self, parse(body)?).await,
            "DeregisterContainerInstance" => instances::deregister(self, parse(body)?).await,
            "UpdateContainerInstancesState" => instances::update_state(self, parse(body)?).await,
            "PutAttributes" => instances::change_attributes(self, parse(body)?, true).await,
            "DeleteAttributes" => instances::change_attributes(self, parse(body)?, false).await,
            "ListAttributes" => instances::list_attributes(self, parse(body)?).await,
            "TagResource" => tags::tag(self, parse(body)?).await,
            "Estiba_V1.GetTaskLogs" => logs::get(self, parse(body)?).await,
            "UntagResource" => tags::untag(self, parse(body)?).await,
            "AnyScaleFrontendService.RegisterScalableTarget" => {
                autoscaling::register(self, parse(body)?).await
            }
            "AnyScaleFrontendService.DeregisterScalableTarget" => {
                autoscaling::deregister(self, parse(body)?).await
            }
            "AnyScaleFrontendService.DescribeScalableTargets" => {
                autoscaling::describe_targets(self, parse(body)?).await
            }
            "AnyScaleFrontendService.PutScalingPolicy" => {
                autoscaling::put_policy(self, parse(body)?).await
            }
            "AnyScaleFrontendService.DescribeScalingPolicies" => {
                autoscaling::describe_policies(self, parse(body)?).await
            }
            "AnyScaleFrontendService.DeleteScalingPolicy" => {
                autoscaling::delete_policy(self, parse(body)?).await
            }
            "AnyScaleFrontendService.DescribeScalingActivities" => {
                autoscaling::describe_activities(self, parse(body)?).await
            }
            "ListTagsForResource" => tags::list(self, parse(body)?).await,
            other => Err(ApiError::new(
                "UnknownOperationException",
                400,
                format!("estiba does not serve the ECS operation {other}"),
            )),
        }
    }

    /// The ARN a policy is checked against: the resource the request
    /// names, or `*` for calls that name none (List*, Register*).
    fn resource_of(&self, body: &Value) -> String {
        let field = |name: &str| body.get(name).and_then(Value::as_str);
        if let Some(arn) = field("resourceArn") {
            return arn.to_string();
        }
        let cluster = match field("cluster") {
            Some(c) => cluster_name(Some(c)).unwrap_or_else(|_| c.to_string()),
            None => "default".to_string(),
        };
        if let Some(service) = field("service").or(field("serviceName")) {
            return if service.starts_with("arn:") {
                service.to_string()
            } else {
                services::service_arn(self, &cluster, service)
            };
        }
        if let Some(td) = field("taskDefinition") {
            return if td.starts_with("arn:") {
                td.to_string()
            } else {
                self.arn(format!("task-definition/{td}"))
            };
        }
        match field("cluster").or(field("clusterName")) {
            Some(c) if c.starts_with("arn:") => c.to_string(),
            Some(c) => self.cluster_arn(c),
            None => "*".to_string(),
        }
    }
}

/// A request body as its operation's input. An empty body is `{}`. A
/// value of the wrong type is named by its path (`overrides.cpu: …`).
pub(crate) fn parse<T: DeserializeOwned>(body: &[u8]) -> std::result::Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let message = match path.as_str() {
            "." | "" => e.inner().to_string(),
            _ => format!("{path}: {}", e.inner()),
        };
        ApiError::new("SerializationException", 400, message)
    })
}

/// A cluster named by name or ARN; `default` when none is given.
pub(crate) fn cluster_name(given: Option<&str>) -> std::result::Result<String, ApiError> {
    let given = given.unwrap_or("default");
    let name = match given.strip_prefix("arn:") {
        Some(_) => {
            let arn: estiba_aws::arn::Arn = given
                .parse()
                .map_err(|e: estiba_aws::arn::NotAnArn| ApiError::invalid(e.to_string()))?;
            match arn.resource_parts() {
                ("cluster", name) => name.to_string(),
                _ => return Err(ApiError::invalid(format!("{given} is not a cluster ARN"))),
            }
        }
        None => given.to_string(),
    };
    Ok(name)
}

/// Describe* and List* read; everything else changes something and is
/// audited.
fn mutating(operation: &str) -> bool {
    let operation = operation
        .strip_prefix(AUTOSCALING_TARGET)
        .unwrap_or(operation);
    !(operation.starts_with("Describe")
        || operation.starts_with("List")
        || operation.starts_with("Estiba_V1.Get"))
}

fn respond(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, json::CONTENT_TYPE)], body).into_response()
}

fn error_response(e: &ErrorBody) -> Response {
    respond(e.status, e.to_json())
}

/// Checks who is calling: the access key, its signature, its clock.
async fn authenticate(
    server: &Server,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    service: &str,
) -> std::result::Result<Caller, ApiError> {
    let mut pairs: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    // HTTP/2 has no Host header: the client signed `:authority` as `host`.
    if !headers.contains_key(header::HOST) {
        if let Some(authority) = uri.authority() {
            pairs.push(("host".to_string(), authority.to_string()));
        }
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = sigv4::Request {
        method: method.as_str(),
        path_and_query: path,
        headers: &pairs,
        body,
    };
    let key_id = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(sigv4::access_key_of);
    let credential = match key_id {
        Some(id) => users::credential(&server.db, &server.sealer, id).await?,
        None => None,
    };
    let secret = credential.as_ref().map(|c| c.secret.clone());
    let signed = sigv4::verify(&request, |_| secret, SystemTime::now())
        .map_err(|e| ApiError(ErrorBody::from(&e)))?;
    if signed.service != service {
        return Err(ApiError::new(
            "InvalidSignatureException",
            403,
            format!(
                "Credential should be scoped to correct service: '{service}', not '{}'.",
                signed.service
            ),
        ));
    }
    let user = credential
        .map(|c| c.user)
        .ok_or(ApiError(ErrorBody::from(&sigv4::AuthError::UnknownKey)))?;
    Ok(Caller {
        user: user.name,
        access_key: signed.access_key,
        policies: user.policies,
    })
}

async fn handle(
    State(server): State<Arc<Server>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    // estiba's own operations (task logs) sit beside ECS's.
    let own = |h: &&str| h.starts_with(ESTIBA_TARGET) || h.starts_with(AUTOSCALING_TARGET);
    let target = match header.filter(own) {
        Some(own) => own.to_string(),
        None => match json::target(header, ECS_TARGET) {
            Ok(t) => t.operation.to_string(),
            Err(e) => return error_response(&e),
        },
    };
    let request_id = estiba_os::random_hex(16);
    let span = tracing::info_span!("ecs", request = %request_id, operation = %target);
    async move {
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let action = action_of(&target);
        let resource = server.resource_of(&value);
        let mut caller = None;
        let outcome = async {
            let service = signing_service(&target);
            let who = authenticate(&server, &method, &uri, &headers, &body, service).await?;
            let policies: Vec<_> = who
                .policies
                .iter()
                .filter_map(crate::model::PolicyRef::resolve)
                .collect();
            caller = Some(who.clone());
            if !estiba_aws::policy::evaluate(&policies, &action, &resource).allowed() {
                return Err(ApiError::new(
                    "AccessDeniedException",
                    400,
                    format!(
                        "User: {} is not authorized to perform: {action} on resource: {resource}",
                        server.user_arn(&who.user)
                    ),
                ));
            }
            server.call(&who, &target, &body).await
        }
        .await;
        if mutating(&target) || outcome.is_err() {
            // A refused signature still names the key it claimed.
            let claimed = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(sigv4::access_key_of)
                .unwrap_or("-");
            let (who, key) = caller
                .as_ref()
                .map_or(("-", claimed), |c| (c.user.as_str(), c.access_key.as_str()));
            let (verdict, message) = match &outcome {
                Ok(_) => ("allowed", None),
                Err(e) => (e.0.exception.as_str(), Some(e.0.message.as_str())),
            };
            server.audit.record(&Entry {
                time: crate::time::now(),
                user: who,
                access_key_id: key,
                remote: &remote.to_string(),
                action: &action,
                resource: &resource,
                outcome: verdict,
                message,
            });
        }
        match outcome {
            Ok(v) => {
                tracing::info!("done");
                respond(200, v.to_string())
            }
            Err(e) => {
                tracing::info!(exception = %e.0.exception, "refused: {}", e.0.message);
                error_response(&e.0)
            }
        }
    }
    .instrument(span)
    .await
}

/// Which replica leads, as this one sees it: its id, and whether it is
/// this one.
async fn leader(State(server): State<Arc<Server>>) -> Response {
    use estiba_state::Store;
    let current = match server
        .db
        .store
        .get(crate::keys::LEADER.as_bytes(), None)
        .await
    {
        Ok(kv) => kv.map(|kv| match crate::leader::Holder::parse(&kv.value) {
            Some(holder) => holder.replica,
            None => String::from_utf8_lossy(&kv.value).into_owned(),
        }),
        Err(e) => return error_response(&ApiError::from(e).0),
    };
    let body = serde_json::json!({
        "replica": server.leader.id,
        "leader": current,
        "leading": server.leader.fence().is_some(),
    });
    respond(200, body.to_string())
}

pub fn router(server: Arc<Server>) -> axum::Router {
    axum::Router::new()
        .route("/", axum::routing::post(handle))
        .route("/health", axum::routing::get(|| async { "ok" }))
        .route("/leader", axum::routing::get(leader))
        .nest("/agent/v1", agent::router())
        .with_state(server)
}

/// How many revisions of history the store keeps: enough for an agent's
/// watch to resume after a short absence (a longer one reads the whole
/// set again).
const HISTORY: i64 = 10_000;
const COMPACT_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// Compacts the store's history every five minutes, keeping the last
/// `HISTORY` revisions, so neither SQLite's file nor etcd's grows forever.
async fn compact_on_schedule(server: Arc<Server>) {
    use estiba_state::Store;
    loop {
        tokio::time::sleep(COMPACT_EVERY).await;
        let store = &server.db.store;
        match store.revision().await {
            Ok(rev) if rev > HISTORY => {
                if let Err(e) = store.compact(rev - HISTORY).await {
                    tracing::warn!("compacting the store: {e}");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("reading the store's revision: {e}"),
        }
    }
}

/// Where the control plane listens, and with which certificate.
#[derive(Clone, Debug)]
pub struct Listen {
    pub addr: SocketAddr,
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Where the other replicas reach this one (default: the address it
    /// listens on, unless that is unspecified, as 0.0.0.0 is).
    pub advertise: Option<SocketAddr>,
}

/// Serves until the process is stopped.
pub async fn serve(server: Arc<Server>, listen: Listen) -> Result<()> {
    let addr = listen.addr;
    let failed = |why: String| Error::Serve {
        addr: addr.to_string(),
        why,
    };
    // Listening before campaigning: a leader must be reachable at the
    // address it names, or the others' death watch cannot see it.
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| failed(e.to_string()))?;
    let bound = listener.local_addr().map_err(|e| failed(e.to_string()))?;
    let advertised = listen
        .advertise
        .or_else(|| (!bound.ip().is_unspecified()).then_some(bound));
    if let Some(a) = advertised {
        let _ = server.leader.addr.set(a);
    }
    use crate::leader::while_leading;
    tokio::spawn(crate::view::follow(Arc::clone(&server)));
    tokio::spawn(tasks::PoolCache::follow(Arc::clone(&server)));
    tokio::spawn(crate::leader::campaign(Arc::clone(&server)));
    tokio::spawn(while_leading(
        Arc::clone(&server),
        "the lost-node watcher",
        agent::watch_lost,
    ));
    tokio::spawn(while_leading(
        Arc::clone(&server),
        "the service scheduler",
        crate::service::scheduler::run,
    ));
    tokio::spawn(while_leading(
        Arc::clone(&server),
        "autoscaling",
        crate::service::autoscale::run,
    ));
    tokio::spawn(compact_on_schedule(Arc::clone(&server)));
    let service = router(server).into_make_service_with_connect_info::<SocketAddr>();
    match listen.tls {
        Some((cert, key)) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
                .await
                .map_err(|e| failed(format!("TLS certificate {}: {e}", cert.display())))?;
            tracing::info!(%addr, "serving the ECS API over HTTPS");
            axum_server::from_tcp_rustls(listener, config)
                .serve(service)
                .await
                .map_err(|e| failed(e.to_string()))
        }
        None => {
            let listener =
                tokio::net::TcpListener::from_std(listener).map_err(|e| failed(e.to_string()))?;
            tracing::info!(%addr, "serving the ECS API over HTTP");
            axum::serve(listener, service)
                .await
                .map_err(|e| failed(e.to_string()))
        }
    }
}
