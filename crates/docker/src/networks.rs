//! `/networks/…`: create, list, inspect, connect, disconnect, remove and
//! prune, on estiba's networks (bridges, as root and rootless).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use estiba_net::NetworkRecord;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::query;
use crate::Api;

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/networks", get(list))
        .route("/networks/create", post(create))
        .route("/networks/prune", post(prune))
        .route("/networks/{id}", get(inspect).delete(remove))
        .route("/networks/{id}/connect", post(connect))
        .route("/networks/{id}/disconnect", post(disconnect))
}

fn shape(n: &NetworkRecord, containers: Value) -> Value {
    json!({
        "Name": n.name, "Id": n.id, "Created": n.created, "Scope": "local", "Driver": "bridge",
        "EnableIPv6": false, "Internal": n.internal, "Attachable": true, "Ingress": false,
        "IPAM": {"Driver": "default", "Options": {}, "Config": [{"Subnet": n.subnet, "Gateway": n.gateway.to_string()}]},
        "ConfigFrom": {"Network": ""}, "ConfigOnly": false,
        "Containers": containers, "Options": {}, "Labels": {},
    })
}

fn body<T: for<'de> Deserialize<'de> + Default>(bytes: &[u8]) -> ApiResult<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
}

/// A network by name, id or id prefix.
fn find(api: &Api, wanted: &str) -> ApiResult<NetworkRecord> {
    let networks = api.engine.blocking().networks()?;
    let list = networks.list().map_err(estiba_engine::Error::from)?;
    list.iter()
        .find(|n| n.name == wanted || n.id == wanted)
        .or_else(|| {
            let mut by_prefix = list.iter().filter(|n| n.id.starts_with(wanted));
            match (by_prefix.next(), by_prefix.next()) {
                (Some(one), None) => Some(one),
                _ => None,
            }
        })
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("network {wanted} not found")))
}

async fn list(
    State(api): State<Arc<Api>>,
    Query(q): Query<query::Query>,
) -> ApiResult<Json<Vec<Value>>> {
    let filters = query::filters(
        &q,
        &["name", "id", "driver", "label", "type", "scope", "dangling"],
    )?;
    let networks = api.engine.blocking().networks()?;
    let names = filters.get("name");
    let ids = filters.get("id");
    Ok(Json(
        networks
            .list()
            .map_err(estiba_engine::Error::from)?
            .iter()
            .filter(|n| names.is_none_or(|w| w.iter().any(|w| n.name.contains(w.as_str()))))
            .filter(|n| ids.is_none_or(|w| w.iter().any(|w| n.id.starts_with(w.as_str()))))
            .map(|n| shape(n, json!({})))
            .collect(),
    ))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    name: String,
    driver: String,
    internal: bool,
    #[serde(rename = "IPAM")]
    ipam: Option<Ipam>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Ipam {
    config: Option<Vec<IpamPool>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct IpamPool {
    subnet: Option<String>,
    gateway: Option<String>,
}

async fn create(State(api): State<Arc<Api>>, bytes: Bytes) -> ApiResult<Response> {
    let b: CreateBody = body(&bytes)?;
    if b.name.is_empty() {
        return Err(ApiError::bad_request("network name is required (Name)"));
    }
    if !matches!(b.driver.as_str(), "" | "bridge") {
        return Err(ApiError::bad_request(format!(
            "network driver {:?} is not available: estiba has bridge networks",
            b.driver
        )));
    }
    if find(&api, &b.name).is_ok() {
        return Err(ApiError::conflict(format!(
            "network with name {} already exists",
            b.name
        )));
    }
    let pool = b
        .ipam
        .and_then(|i| i.config)
        .and_then(|c| c.into_iter().next())
        .unwrap_or_default();
    let net = api
        .call(move |e| {
            e.network_create(
                &b.name,
                pool.subnet.as_deref(),
                pool.gateway.as_deref(),
                b.internal,
                None,
                &[],
            )
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": net.id, "Warning": ""})),
    )
        .into_response())
}

async fn inspect(State(api): State<Arc<Api>>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let net = find(&api, &id)?;
    let detail = api.engine.blocking().network_inspect(&net.name)?;
    Ok(Json(shape(&net, detail["Containers"].clone())))
}

async fn remove(State(api): State<Arc<Api>>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let net = find(&api, &id)?;
    api.call(move |e| e.network_remove(&net.name))
        .await
        .map_err(|e| {
            if e.message.contains("in use") || e.message.contains("has") {
                ApiError::conflict(e.message)
            } else {
                e
            }
        })?;
    Ok(StatusCode::NO_CONTENT)
}

async fn prune(State(api): State<Arc<Api>>) -> ApiResult<Json<Value>> {
    let removed = api.call(|e| e.network_prune()).await?;
    Ok(Json(json!({"NetworksDeleted": removed})))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ConnectBody {
    container: String,
    endpoint_config: Option<crate::create::Endpoint>,
    /// Disconnect's `Force`: a disconnect never waits on the container.
    #[serde(rename = "Force")]
    _force: bool,
}

/// A connect or disconnect body, its network and its container.
async fn target(
    api: &Api,
    id: &str,
    bytes: &[u8],
) -> ApiResult<(ConnectBody, NetworkRecord, estiba_engine::ContainerRecord)> {
    let b: ConnectBody = body(bytes)?;
    let net = find(api, id)?;
    let r = api.engine.inspect(&b.container).await?;
    Ok((b, net, r))
}

async fn connect(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<StatusCode> {
    let (b, net, r) = target(&api, &id, &bytes).await?;
    let endpoint = b.endpoint_config.unwrap_or_default();
    let ip = estiba_engine::options::parse_ip(
        endpoint.ipam_config.and_then(|c| c.ipv4_address).as_deref(),
    )
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let extra = estiba_engine::record::ExtraNetwork {
        aliases: endpoint.aliases.unwrap_or_default(),
        ip,
    };
    api.call(move |e| e.network_connect(&net.name, &r.id, extra))
        .await?;
    Ok(StatusCode::OK)
}

async fn disconnect(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<StatusCode> {
    let (_, net, r) = target(&api, &id, &bytes).await?;
    api.call(move |e| e.network_disconnect(&net.name, &r.id))
        .await?;
    Ok(StatusCode::OK)
}
