//! `auth`, pull (`POST /images/create?fromImage=`) and push (`POST
//! /images/{name}/push`), through estiba's registry client. Credentials
//! come as Docker sends them: the body of `auth`, and the
//! `X-Registry-Auth` header (base64url JSON) of a pull or push; the
//! server keeps none of them.

use std::sync::Arc;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use estiba_registry::client::{self, Client, ClientOptions, RemoteRef};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::{stream, Api};

#[derive(Deserialize, Default)]
#[serde(default)]
struct AuthConfig {
    username: String,
    password: String,
    serveraddress: String,
}

/// Docker treats registries on loopback as plain HTTP unless they speak
/// TLS; so does this: HTTPS is tried first, then HTTP, for them only.
fn options(registry: &str, creds: Option<(String, String)>) -> ClientOptions {
    let host = registry.rsplit_once(':').map_or(registry, |(h, _)| h);
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    ClientOptions {
        tls_verify: !loopback,
        creds,
        ..ClientOptions::default()
    }
}

fn registry_error(e: estiba_registry::Error) -> ApiError {
    let message = e.to_string();
    let status = if message.contains("401")
        || message.contains("UNAUTHORIZED")
        || message.contains("DENIED")
    {
        StatusCode::UNAUTHORIZED
    } else if message.contains("404") || message.contains("UNKNOWN") {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    ApiError::new(status, message)
}

/// `POST /auth`: checks the credentials against the registry (its token
/// flow), as dockerd does; the CLI then stores them itself.
pub async fn auth(body: axum::body::Bytes) -> ApiResult<Json<Value>> {
    let a: AuthConfig = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    let server = a
        .serveraddress
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    if server.is_empty() || server.contains("index.docker.io") {
        return Err(ApiError::bad_request(
            "give the registry's address (docker login HOST:PORT): estiba has no default registry",
        ));
    }
    let opts = options(&server, Some((a.username, a.password)));
    let c = Client::connect(&server, &opts)
        .await
        .map_err(registry_error)?;
    c.login().await.map_err(|e| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            format!("login to {server} failed: {e}"),
        )
    })?;
    Ok(Json(
        json!({"Status": "Login Succeeded", "IdentityToken": ""}),
    ))
}

/// The credentials in `X-Registry-Auth`, if any.
fn header_creds(headers: &HeaderMap) -> ApiResult<Option<(String, String)>> {
    let Some(v) = headers.get("x-registry-auth").and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    if v.is_empty() {
        return Ok(None);
    }
    let trimmed = v.trim_end_matches('=');
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
        .map_err(|e| ApiError::bad_request(format!("X-Registry-Auth is not base64: {e}")))?;
    let a: AuthConfig = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("X-Registry-Auth is not JSON: {e}")))?;
    Ok((!a.username.is_empty()).then_some((a.username, a.password)))
}

fn progress_line(v: Value) -> Vec<u8> {
    let mut line = v.to_string().into_bytes();
    line.push(b'\n');
    line
}

fn error_line(e: &estiba_registry::Error) -> Value {
    error_text(&e.to_string())
}

fn error_text(message: &str) -> Value {
    json!({"errorDetail": {"message": message}, "error": message})
}

/// A JSON progress stream: `first` at once, then what `work` returns. The
/// registry client's futures are not Send, so `work` runs on a blocking
/// thread of its own, driven by this runtime.
fn streamed<F, Fut>(api: &Arc<Api>, first: Value, work: F) -> Response
where
    F: FnOnce(estiba_store::Store) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Vec<Value>>,
{
    let (tx, body) = stream::channel_body();
    let busy = api.activity.busy();
    let store = api.engine.blocking().store.clone();
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        handle.block_on(async move {
            let _busy = busy;
            let _ = tx.send(progress_line(first)).await;
            for line in work(store).await {
                let _ = tx.send(progress_line(line)).await;
            }
        })
    });
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `POST /images/create?fromImage=REPO&tag=TAG`.
pub async fn pull(
    api: Arc<Api>,
    headers: &HeaderMap,
    from: &str,
    tag: Option<&str>,
) -> ApiResult<Response> {
    let reference = match tag.filter(|t| !t.is_empty()) {
        Some(t) if t.starts_with("sha256:") => format!("{from}@{t}"),
        Some(t) => format!("{from}:{t}"),
        None => from.to_string(),
    };
    let src = RemoteRef::parse(&reference).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let pull_opts = match &api.pull_gate {
        Some(gate) => {
            gate(&src).map_err(|refusal| ApiError::new(StatusCode::FORBIDDEN, refusal))?
        }
        None => client::PullOptions::default(),
    };
    let opts = options(&src.registry, header_creds(headers)?);
    // Connecting first lets an unreachable registry be the request's error.
    let c = Client::connect(&src.registry, &opts)
        .await
        .map_err(registry_error)?;
    let first =
        json!({"status": format!("Pulling from {}", src.repository), "id": src.reference()});
    Ok(streamed(&api, first, move |store| async move {
        let pulled = client::pull(&c, &store, &src, &pull_opts, Arc::new(client::NoProgress)).await;
        match pulled {
            Ok(p) => {
                let mut lines = Vec::new();
                if let Some(why) = &p.unverified {
                    lines.push(json!({"status": estiba_audit::policy::unsigned_warned(why)}));
                }
                lines.push(json!({"status": format!("Digest: {}", p.digest)}));
                lines.push(
                    json!({"status": format!("Status: Downloaded newer image for {reference}")}),
                );
                lines
            }
            Err(estiba_registry::Error::Signature(why)) => {
                vec![error_text(&estiba_audit::policy::unsigned_refused(&why))]
            }
            Err(e) => vec![error_line(&e)],
        }
    }))
}

/// `POST /images/{name}/push?tag=TAG`.
pub async fn push(
    api: Arc<Api>,
    headers: &HeaderMap,
    name: &str,
    tag: Option<&str>,
) -> ApiResult<Response> {
    let reference = match tag.filter(|t| !t.is_empty()) {
        Some(t) => format!("{name}:{t}"),
        None => name.to_string(),
    };
    let record = api.engine.blocking().store.find_image(&reference)?;
    let dest = RemoteRef::parse(&reference).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let opts = options(&dest.registry, header_creds(headers)?);
    let c = Client::connect(&dest.registry, &opts)
        .await
        .map_err(registry_error)?;
    let first = json!({"status": format!("The push refers to repository [{}/{}]", dest.registry, dest.repository)});
    Ok(streamed(&api, first, move |store| async move {
        let pushed = client::push(
            &c,
            &store,
            &record.id.to_string(),
            &dest,
            Arc::new(client::NoProgress),
        )
        .await;
        match pushed {
            Ok(digest) => vec![
                json!({"status": format!("{}: digest: {digest} size: {}", dest.reference(), record.size)}),
                json!({"progressDetail": {}, "aux": {"Tag": dest.reference(), "Digest": digest, "Size": record.size}}),
            ],
            Err(e) => vec![error_line(&e)],
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_auth_headers_decode_in_both_alphabets() {
        let json = r#"{"username":"alice","password":"s3cr?t>","serveraddress":"127.0.0.1:5000"}"#;
        for encoded in [
            base64::engine::general_purpose::URL_SAFE.encode(json),
            base64::engine::general_purpose::STANDARD.encode(json),
        ] {
            let mut h = HeaderMap::new();
            h.insert("x-registry-auth", encoded.parse().unwrap());
            assert_eq!(
                header_creds(&h).unwrap(),
                Some(("alice".to_string(), "s3cr?t>".to_string()))
            );
        }
        let mut bad = HeaderMap::new();
        bad.insert("x-registry-auth", "!!!".parse().unwrap());
        assert!(header_creds(&bad).is_err());
        assert!(header_creds(&HeaderMap::new()).unwrap().is_none());
        assert!(!options("127.0.0.1:5000", None).tls_verify);
        assert!(options("registry.example:443", None).tls_verify);
    }
}
