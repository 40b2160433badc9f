//! The client side: `login`, `push`, `pull`, `sign` and `verify` against
//! any OCI registry. It speaks the token flow (a 401 with a Bearer
//! challenge, then the realm for a token) and Basic auth, over HTTPS, or
//! plain HTTP when TLS verification is off.

pub mod creds;
mod pull;
mod push;
pub mod refs;
mod sign;

use std::collections::HashMap;

pub use pull::{pull, PullOptions, Pulled};
pub use push::push;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
pub use sign::{sign, verify, Verified};

use crate::error::{Error, Result};
pub use refs::RemoteRef;

/// How transfers report progress: one entry per blob.
pub trait ProgressSink: Send + Sync {
    fn start(&self, id: &str, total: u64);
    fn advance(&self, id: &str, bytes: u64);
    fn finish(&self, id: &str, note: &str);
}

/// Progress nobody watches.
pub struct NoProgress;

impl ProgressSink for NoProgress {
    fn start(&self, _: &str, _: u64) {}
    fn advance(&self, _: &str, _: u64) {}
    fn finish(&self, _: &str, _: &str) {}
}

#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Off: accept any certificate, and plain HTTP.
    pub tls_verify: bool,
    /// Explicit credentials; otherwise the stored ones are used.
    pub creds: Option<(String, String)>,
    /// Blobs transferred at once.
    pub parallel: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            tls_verify: true,
            creds: None,
            parallel: 4,
        }
    }
}

#[derive(Clone, Debug)]
enum Challenge {
    None,
    Basic,
    Bearer { realm: String, service: String },
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    pub registry: String,
    creds: Option<(String, String)>,
    challenge: Challenge,
    tokens: tokio::sync::Mutex<HashMap<String, String>>,
    pub parallel: usize,
}

/// `key="value"` pairs of a challenge header.
fn challenge_params(value: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = value;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq]
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = &rest[eq + 1..];
        let (val, next) = if let Some(stripped) = after.strip_prefix('"') {
            match stripped.find('"') {
                Some(end) => (&stripped[..end], &stripped[end + 1..]),
                None => (stripped, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        out.insert(key, val.to_string());
        rest = next;
    }
    out
}

fn parse_challenge(headers: &HeaderMap) -> Challenge {
    let Some(value) = headers.get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()) else {
        return Challenge::None;
    };
    let lower = value.to_ascii_lowercase();
    if lower.starts_with("bearer") {
        let params = challenge_params(&value[6..]);
        Challenge::Bearer {
            realm: params.get("realm").cloned().unwrap_or_default(),
            service: params.get("service").cloned().unwrap_or_default(),
        }
    } else if lower.starts_with("basic") {
        Challenge::Basic
    } else {
        Challenge::None
    }
}

/// The registry's error message from a failed response.
pub(crate) async fn remote_error(url: &str, r: Response) -> Error {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            let e = v.get("errors")?.get(0)?.clone();
            Some(format!(
                "{}: {}",
                e.get("code")?.as_str()?,
                e.get("message").and_then(|m| m.as_str()).unwrap_or("")
            ))
        })
        .unwrap_or_else(|| text.chars().take(200).collect());
    Error::Remote {
        url: url.to_string(),
        status,
        message,
    }
}

pub(crate) fn http_err(e: reqwest::Error) -> Error {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    Error::Http(msg)
}

impl Client {
    /// Connects to a registry: pings `/v2/` over HTTPS (or HTTP when TLS
    /// verification is off and HTTPS does not answer) and learns how it
    /// wants clients to authenticate.
    pub async fn connect(registry: &str, opts: &ClientOptions) -> Result<Client> {
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(!opts.tls_verify)
            .user_agent(concat!("estiba/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(http_err)?;
        let creds = match &opts.creds {
            Some(c) => Some(c.clone()),
            None => creds::lookup(registry)?,
        };
        let mut last_err = None;
        let schemes: &[&str] = if opts.tls_verify {
            &["https"]
        } else {
            &["https", "http"]
        };
        for scheme in schemes {
            let base = format!("{scheme}://{registry}");
            match http.get(format!("{base}/v2/")).send().await {
                Ok(r) => {
                    let challenge = if r.status() == StatusCode::UNAUTHORIZED {
                        parse_challenge(r.headers())
                    } else {
                        Challenge::None
                    };
                    return Ok(Client {
                        http,
                        base,
                        registry: registry.to_string(),
                        creds,
                        challenge,
                        tokens: tokio::sync::Mutex::new(HashMap::new()),
                        parallel: opts.parallel.max(1),
                    });
                }
                Err(e) => last_err = Some(http_err(e)),
            }
        }
        Err(last_err.unwrap_or_else(|| Error::Http(format!("{registry} did not answer"))))
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// Checks the stored or given credentials, as `docker login` does.
    pub async fn login(&self) -> Result<()> {
        let Some((user, _)) = &self.creds else {
            return Err(Error::Auth("no credentials to log in with".into()));
        };
        match &self.challenge {
            Challenge::None => Ok(()),
            Challenge::Basic => {
                let r = self
                    .request(Method::GET, "/v2/", "")
                    .await?
                    .send()
                    .await
                    .map_err(http_err)?;
                if r.status().is_success() {
                    Ok(())
                } else {
                    Err(Error::Auth(format!(
                        "{}: login as {user} refused ({})",
                        self.registry,
                        r.status()
                    )))
                }
            }
            Challenge::Bearer { .. } => self.fetch_token("").await.map(drop),
        }
    }

    async fn fetch_token(&self, scope: &str) -> Result<String> {
        let Challenge::Bearer { realm, service } = &self.challenge else {
            return Err(Error::Auth("the registry does not use tokens".into()));
        };
        let mut query: Vec<(&str, &str)> = vec![("service", service.as_str())];
        for s in scope.split(' ').filter(|s| !s.is_empty()) {
            query.push(("scope", s));
        }
        if let Some((user, _)) = &self.creds {
            query.push(("account", user.as_str()));
        }
        let mut req = self.http.get(realm.as_str()).query(&query);
        if let Some((user, pass)) = &self.creds {
            req = req.basic_auth(user, Some(pass));
        }
        let r = req.send().await.map_err(http_err)?;
        if r.status() == StatusCode::UNAUTHORIZED {
            return Err(Error::Auth(format!(
                "{}: unauthorized: wrong user name or password",
                self.registry
            )));
        }
        if !r.status().is_success() {
            return Err(remote_error(realm, r).await);
        }
        let body: serde_json::Value = r.json().await.map_err(http_err)?;
        body.get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .ok_or_else(|| Error::Auth(format!("{realm} answered without a token")))
    }

    async fn auth_header(&self, scope: &str, fresh: bool) -> Result<Option<HeaderValue>> {
        match &self.challenge {
            Challenge::None => Ok(None),
            Challenge::Basic => Ok(self.creds.as_ref().and_then(|(u, p)| {
                use base64::Engine as _;
                let b = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
                HeaderValue::from_str(&format!("Basic {b}")).ok()
            })),
            Challenge::Bearer { .. } => {
                let mut tokens = self.tokens.lock().await;
                if fresh {
                    tokens.remove(scope);
                }
                let token = match tokens.get(scope) {
                    Some(t) => t.clone(),
                    None => {
                        let t = self.fetch_token(scope).await?;
                        tokens.insert(scope.to_string(), t.clone());
                        t
                    }
                };
                Ok(HeaderValue::from_str(&format!("Bearer {token}")).ok())
            }
        }
    }

    /// A request with credentials for `scope` (`repository:NAME:pull,push`).
    pub async fn request(&self, method: Method, path: &str, scope: &str) -> Result<RequestBuilder> {
        let mut req = self.http.request(method, self.url(path));
        if let Some(h) = self.auth_header(scope, false).await? {
            req = req.header(AUTHORIZATION, h);
        }
        Ok(req)
    }

    /// Sends a request without a streaming body; on a 401 (an expired
    /// token) it fetches a new token and tries once more.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        scope: &str,
        decorate: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response> {
        let r = decorate(self.request(method.clone(), path, scope).await?)
            .send()
            .await
            .map_err(http_err)?;
        if r.status() != StatusCode::UNAUTHORIZED || matches!(self.challenge, Challenge::None) {
            return Ok(r);
        }
        let mut req = self.http.request(method, self.url(path));
        if let Some(h) = self.auth_header(scope, true).await? {
            req = req.header(AUTHORIZATION, h);
        }
        decorate(req).send().await.map_err(http_err)
    }
}

pub(crate) use http_err as to_error;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let p = challenge_params(
            r#" realm="http://127.0.0.1:5000/token",service="estiba-registry",scope="repository:a:pull,push""#,
        );
        assert_eq!(p["realm"], "http://127.0.0.1:5000/token");
        assert_eq!(p["scope"], "repository:a:pull,push");
        assert_eq!(p["service"], "estiba-registry");
    }
}
