//! Calls to the ECS API: awsJson1.1 (`POST` with `X-Amz-Target`), signed
//! with SigV4 as the AWS CLI signs them, with the credentials, region and
//! endpoint the AWS CLI would use.

use std::fmt;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Context as _, Result};
use estiba_aws::client::{signature_headers, Outgoing};
use estiba_aws::credentials::{self, Credentials, Flags};
use serde::Serialize;
use serde_json::Value;

use crate::ecs_cli::ApiArgs;

/// ECS's service name in `X-Amz-Target`.
pub const ECS_TARGET: &str = "AmazonEC2ContainerServiceV20141113";
/// estiba's own operations on the same endpoint (GetTaskLogs).
pub const ESTIBA_TARGET: &str = "Estiba_V1";
/// What requests are signed for, estiba's own operations too.
const SERVICE: &str = "ecs";
/// Application Auto Scaling's prefix in `X-Amz-Target`, on the same
/// endpoint, and the service its requests are signed for.
pub const AUTOSCALING_TARGET: &str = "AnyScaleFrontendService";
const AUTOSCALING_SERVICE: &str = "application-autoscaling";

/// An error answer of the API (`{"__type": …, "message": …}`), shown as
/// `<__type>: <message>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub exception: String,
    pub message: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.exception, self.message)
    }
}

impl std::error::Error for ApiError {}

pub struct Client {
    http: reqwest::blocking::Client,
    url: reqwest::Url,
    credentials: Credentials,
    region: String,
}

impl Client {
    pub fn new(api: &ApiArgs) -> Result<Client> {
        let flags = Flags {
            profile: api.profile.clone(),
            region: api.region.clone(),
            endpoint_url: api.endpoint_url.clone(),
        };
        let resolved = credentials::resolve(&flags, SERVICE, |k| std::env::var(k).ok())?;
        let endpoint = &resolved.endpoint;
        let url = reqwest::Url::parse(endpoint)
            .with_context(|| format!("endpoint {endpoint}: not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            bail!("endpoint {endpoint}: not an http:// or https:// URL");
        }
        let mut builder = reqwest::blocking::Client::builder()
            .user_agent(concat!("estiba/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            // Longer than the longest long poll (GetTaskLogs waits 20 s).
            .timeout(Duration::from_secs(60));
        // The AWS CLI's and SDKs' way to trust a private CA.
        if let Some(bundle) = std::env::var_os("AWS_CA_BUNDLE").filter(|b| !b.is_empty()) {
            let path = std::path::PathBuf::from(bundle);
            let pem = std::fs::read(&path)
                .with_context(|| format!("AWS_CA_BUNDLE {}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("AWS_CA_BUNDLE {}", path.display()))?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().context("setting up the HTTP client")?;
        Ok(Client {
            http,
            url,
            credentials: resolved.credentials,
            region: resolved.region,
        })
    }

    /// An ECS operation with a typed request.
    pub fn ecs(&self, operation: &str, request: &impl Serialize) -> Result<Value> {
        self.call(
            &format!("{ECS_TARGET}.{operation}"),
            &serde_json::to_vec(request)?,
        )
    }

    /// An Application Auto Scaling operation.
    pub fn autoscaling(&self, operation: &str, request: &impl Serialize) -> Result<Value> {
        self.call_for(
            &format!("{AUTOSCALING_TARGET}.{operation}"),
            &serde_json::to_vec(request)?,
            AUTOSCALING_SERVICE,
        )
    }

    /// One call: `target` is `Service.Operation`, `body` goes unchanged.
    pub fn call(&self, target: &str, body: &[u8]) -> Result<Value> {
        self.call_for(target, body, SERVICE)
    }

    fn call_for(&self, target: &str, body: &[u8], service: &str) -> Result<Value> {
        let signed = [
            ("content-type", estiba_aws::json::CONTENT_TYPE),
            ("x-amz-target", target),
        ];
        let outgoing = Outgoing {
            method: "POST",
            url: self.url.as_str(),
            headers: &signed,
            body,
        };
        let signature = signature_headers(
            &outgoing,
            &self.credentials,
            &self.region,
            service,
            SystemTime::now(),
        )?;
        let mut request = self.http.post(self.url.clone()).body(body.to_vec());
        for (k, v) in signed {
            request = request.header(k, v);
        }
        for (k, v) in &signature {
            request = request.header(k.as_str(), v.as_str());
        }
        let response = request.send().map_err(|e| self.unreachable(e))?;
        let status = response.status().as_u16();
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = response
            .bytes()
            .with_context(|| format!("reading the answer of {}", self.url))?;
        decode(status, error_type.as_deref(), &bytes)
    }

    /// A failure to get an answer, said plainly: a refused connection is
    /// the common case (no control plane there).
    fn unreachable(&self, e: reqwest::Error) -> anyhow::Error {
        if e.is_connect() {
            anyhow!(
                "cannot reach the ECS API at {}: {} (is `estiba cluster serve` there? see --endpoint-url)",
                self.url,
                root_cause(&e)
            )
        } else if e.is_timeout() {
            anyhow!("the ECS API at {} did not answer in time", self.url)
        } else {
            anyhow::Error::new(e)
        }
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// An answer as JSON, or the API's error. An empty success is `{}`.
fn decode(status: u16, error_type: Option<&str>, body: &[u8]) -> Result<Value> {
    let value = if body.iter().all(u8::is_ascii_whitespace) {
        Some(Value::Object(Default::default()))
    } else {
        serde_json::from_slice::<Value>(body).ok()
    };
    if (200..300).contains(&status) {
        return value
            .ok_or_else(|| anyhow!("the ECS API answered with no JSON: {}", snippet(body)));
    }
    let field = |v: &Value, names: &[&str]| {
        names
            .iter()
            .find_map(|n| v.get(*n).and_then(Value::as_str).map(str::to_string))
    };
    let exception = value
        .as_ref()
        .and_then(|v| field(v, &["__type", "code"]))
        .or_else(|| error_type.map(str::to_string));
    match exception {
        Some(exception) => Err(ApiError {
            exception: shape_name(&exception).to_string(),
            message: value
                .as_ref()
                .and_then(|v| field(v, &["message", "Message"]))
                .unwrap_or_default(),
        }
        .into()),
        None => bail!("the ECS API answered HTTP {status}: {}", snippet(body)),
    }
}

/// An error's name without the namespace or URI awsJson1.1 allows
/// around it (`aws.ecs#ClientException:http://…`).
fn shape_name(raw: &str) -> &str {
    let name = raw.rsplit('#').next().unwrap_or(raw);
    name.split(':').next().unwrap_or(name)
}

/// The start of a body that is not the JSON expected, for the message.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(e: anyhow::Error) -> ApiError {
        e.downcast::<ApiError>().unwrap()
    }

    #[test]
    fn error_answers_become_api_errors() {
        let e = decode(
            400,
            None,
            br#"{"__type":"ClientException","message":"Unable to describe task definition."}"#,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "ClientException: Unable to describe task definition."
        );
        let e = decode(
            400,
            None,
            br#"{"__type":"com.amazonaws.ecs#ClusterNotFoundException:http://internal","Message":"Cluster not found."}"#,
        );
        assert_eq!(
            api_error(e.unwrap_err()),
            ApiError {
                exception: "ClusterNotFoundException".into(),
                message: "Cluster not found.".into(),
            }
        );
        let e = decode(403, Some("AccessDeniedException"), b"{}").unwrap_err();
        assert_eq!(api_error(e).exception, "AccessDeniedException");
    }

    #[test]
    fn answers_that_are_not_the_apis_say_what_came() {
        assert_eq!(decode(200, None, b"").unwrap(), serde_json::json!({}));
        let e = decode(502, None, b"<html>Bad Gateway</html>").unwrap_err();
        assert!(e.downcast_ref::<ApiError>().is_none());
        assert_eq!(
            e.to_string(),
            "the ECS API answered HTTP 502: <html>Bad Gateway</html>"
        );
        let e = decode(200, None, "x".repeat(300).as_bytes()).unwrap_err();
        assert!(e.to_string().ends_with("x…"), "{e}");
    }
}
