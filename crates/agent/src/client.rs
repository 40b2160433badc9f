//! The agent API's client. With several control-plane URLs, each call
//! goes to the first that answers; a refusal (4xx) is final, a failure to
//! connect tries the next.

use std::time::Duration;

use estiba_cluster::wire::{
    AgentError, Assignments, Heartbeat, HeartbeatReply, RegisterRequest, Registered, Report,
    TaskSecrets,
};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Error, Result};

/// Longer than the control plane's long poll (25 s).
const POLL_TIMEOUT: Duration = Duration::from_secs(40);

#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    servers: Vec<String>,
    credential: Option<String>,
}

impl Client {
    /// A client of the control plane at `servers`. `ca_cert` is a PEM
    /// file of the certificate authority an `https://` control plane's
    /// certificate must chain to, when it is not a public one.
    pub fn new(servers: Vec<String>, ca_cert: Option<&std::path::Path>) -> Result<Client> {
        if servers.is_empty() {
            return Err(Error::Invalid("--server names no control plane".into()));
        }
        let mut builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(3));
        if let Some(path) = ca_cert {
            let bad = |why: String| Error::Invalid(format!("--ca-cert {}: {why}", path.display()));
            let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(e.to_string()))?;
            if certs.is_empty() {
                return Err(bad("holds no PEM certificate".into()));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| Error::Invalid(format!("an HTTP client: {e}")))?;
        let servers = servers
            .into_iter()
            .map(|s| s.trim_end_matches('/').to_string())
            .collect();
        Ok(Client {
            http,
            servers,
            credential: None,
        })
    }

    pub fn with_credential(mut self, credential: String) -> Client {
        self.credential = Some(credential);
        self
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<Option<T>> {
        let mut last = None;
        for server in &self.servers {
            let url = format!("{server}/agent/v1/{path}");
            let mut req = self.http.request(method.clone(), &url).timeout(timeout);
            if let Some(c) = &self.credential {
                req = req.bearer_auth(c);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    last = Some(Error::ControlPlane {
                        url: url.clone(),
                        why: with_causes(&e),
                    });
                    continue;
                }
            };
            let status = resp.status();
            if status == StatusCode::NO_CONTENT {
                return Ok(None);
            }
            let bytes = resp.bytes().await.map_err(|e| Error::ControlPlane {
                url: url.clone(),
                why: with_causes(&e),
            })?;
            if status.is_client_error() {
                let message = serde_json::from_slice::<AgentError>(&bytes)
                    .map(|e| e.message)
                    .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
                return Err(Error::Refused(format!("{status}: {message}")));
            }
            if !status.is_success() {
                last = Some(Error::ControlPlane {
                    url,
                    why: format!("answered {status}"),
                });
                continue;
            }
            return serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| Error::Json {
                    what: format!("the answer of {url}"),
                    source,
                });
        }
        Err(last.unwrap_or_else(|| Error::Invalid("no control plane".into())))
    }

    fn expect<T>(v: Option<T>, what: &str) -> Result<T> {
        v.ok_or_else(|| Error::Refused(format!("{what}: an empty answer")))
    }

    pub async fn register(&self, req: &RegisterRequest) -> Result<Registered> {
        let v = self
            .call(Method::POST, "register", Some(req), Duration::from_secs(10))
            .await?;
        Self::expect(v, "register")
    }

    pub async fn heartbeat(&self, beat: &Heartbeat) -> Result<HeartbeatReply> {
        let v = self
            .call(
                Method::POST,
                "heartbeat",
                Some(beat),
                Duration::from_secs(10),
            )
            .await?;
        Self::expect(v, "heartbeat")
    }

    /// The node's tasks that changed after `after` (0: all of them).
    pub async fn assignments(&self, after: i64) -> Result<Assignments> {
        let v = self
            .call::<(), _>(
                Method::GET,
                &format!("assignments?after={after}"),
                None,
                POLL_TIMEOUT,
            )
            .await?;
        Self::expect(v, "assignments")
    }

    /// The secrets of a task placed on this node.
    pub async fn secrets(&self, cluster: &str, task: &str) -> Result<TaskSecrets> {
        let v = self
            .call::<(), _>(
                Method::GET,
                &format!("secrets?cluster={cluster}&task={task}"),
                None,
                Duration::from_secs(10),
            )
            .await?;
        Self::expect(v, "secrets")
    }

    pub async fn report(&self, report: &Report) -> Result<()> {
        self.call::<_, serde_json::Value>(
            Method::POST,
            "report",
            Some(report),
            Duration::from_secs(10),
        )
        .await?;
        Ok(())
    }
}

/// An error with its causes, which reqwest's own message leaves out (a
/// certificate the agent does not trust is only in the chain).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}
