//! The HTTP server: the distribution API under `/v2/`, the token endpoint,
//! `/health` and `/metrics`. Every request goes through [`dispatch`], which
//! finds the endpoint, checks access, and counts and logs the outcome.

mod blobs;
mod manifests;
mod respond;
mod route;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::response::Response;
use base64::Engine as _;

use crate::audit::Audit;
use crate::auth::{Action, Auth, Denial, Identity, Need};
use crate::config::Config;
use crate::error::IoContext;
use crate::error::{Code, Error, Result};
use crate::metrics::Metrics;
use crate::storage::{FsStorage, Storage};
pub(crate) use manifests::{delete_manifest, store_manifest};
use route::Route;

/// Everything a request may touch.
pub struct App {
    pub storage: Arc<dyn Storage>,
    pub auth: Auth,
    pub audit: Audit,
    pub metrics: Metrics,
    /// Held shared by pushes while they check and reference blobs, and
    /// briefly exclusively by garbage collection for each blob it removes.
    pub gc_lock: tokio::sync::RwLock<()>,
    pub config: Config,
    pub tls: bool,
    /// The ECR API's access keys, and its lifecycle previews.
    pub access_keys: crate::ecr::keys::AccessKeys,
    pub ecr_previews: crate::ecr::Previews,
}

impl App {
    pub fn open(root: &Path, config: Config) -> Result<Arc<App>> {
        std::fs::create_dir_all(root).ctx("creating", root)?;
        let storage: Arc<dyn Storage> = Arc::new(FsStorage::open(root)?);
        let audit_path = config
            .audit_log
            .clone()
            .unwrap_or_else(|| root.join("audit.log"));
        let grants = repository_grants(Arc::clone(&storage));
        Ok(Arc::new(App {
            storage,
            auth: Auth::new(root, config.auth.clone(), config.policy.clone())?
                .with_repository_grants(grants),
            audit: Audit::open(&audit_path)?,
            metrics: Metrics::default(),
            gc_lock: tokio::sync::RwLock::new(()),
            tls: config.tls.is_some(),
            access_keys: crate::ecr::keys::AccessKeys::new(root),
            ecr_previews: crate::ecr::Previews::default(),
            config,
        }))
    }

    /// Runs blocking storage work off the async threads.
    pub async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&dyn Storage) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let storage = Arc::clone(&self.storage);
        tokio::task::spawn_blocking(move || f(storage.as_ref()))
            .await
            .map_err(|e| Error::Http(format!("a storage task failed: {e}")))?
    }
}

/// The grants of a repository's own (ECR) policy, from its settings.
fn repository_grants(storage: Arc<dyn Storage>) -> crate::auth::RepositoryGrants {
    Box::new(move |repo| {
        crate::settings::RepoSettings::load(storage.as_ref(), repo)
            .ok()
            .and_then(|s| s.repository_policy)
            .map(|p| p.grants)
            .unwrap_or_default()
    })
}

/// What a handler sees of a request.
pub struct Ctx {
    pub app: Arc<App>,
    pub who: Identity,
    pub remote: String,
    pub method: Method,
    pub headers: HeaderMap,
    pub query: Vec<(String, String)>,
    pub authorization: Option<String>,
}

impl Ctx {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn params(&self, key: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn audit(&self, action: &str, repository: &str, target: &str, outcome: &str) {
        self.app.audit.record(
            self.who.name(),
            &self.remote,
            action,
            repository,
            target,
            outcome,
        );
    }

    /// Whether this request's credentials also grant `need`.
    /// Whether the policies let the caller do this, judged from who they
    /// are rather than what their token names: a token only lists what the
    /// client thought to ask for.
    pub fn identity_may(&self, need: &Need) -> bool {
        self.app.auth.permits(&self.who, need)
    }

    pub fn may(&self, need: Need) -> bool {
        self.app
            .auth
            .authorize(self.authorization.as_deref(), &[need])
            .is_ok()
    }
}

pub fn router(app: Arc<App>) -> axum::Router {
    axum::Router::new().fallback(dispatch).with_state(app)
}

/// Serves until the process is stopped. TLS when the config names a
/// certificate and key.
pub async fn serve(app: Arc<App>, addr: SocketAddr) -> Result<()> {
    let service = router(Arc::clone(&app)).into_make_service_with_connect_info::<SocketAddr>();
    crate::gc::spawn_schedules(&app);
    match app.config.tls.clone() {
        Some(tls) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
                .await
                .map_err(|e| {
                    Error::Config(format!(
                        "TLS certificate {} and key {}: {e}",
                        tls.cert.display(),
                        tls.key.display()
                    ))
                })?;
            tracing::info!(%addr, "serving the registry over TLS");
            axum_server::bind_rustls(addr, config)
                .serve(service)
                .await
                .map_err(|e| Error::Http(format!("serving on {addr}: {e}")))
        }
        None => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| Error::Http(format!("binding {addr}: {e}")))?;
            tracing::info!(%addr, "serving the registry over plain HTTP");
            axum::serve(listener, service)
                .await
                .map_err(|e| Error::Http(format!("serving on {addr}: {e}")))
        }
    }
}

async fn dispatch(
    State(app): State<Arc<App>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let (label, who, response) = match path.as_str() {
        "/" if crate::ecr::is_ecr(&req) => {
            let (who, r) = crate::ecr::handle(Arc::clone(&app), req).await;
            ("ecr", who, r)
        }
        "/health" => ("health", None, health(&app).await),
        "/metrics" => {
            let n = app.blocking(|s| Ok(s.uploads()?.len())).await.unwrap_or(0);
            let mut r = Response::new(Body::from(app.metrics.render(n)));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            ("metrics", None, r)
        }
        "/token" => ("token", None, token(&app, &remote.to_string(), req).await),
        p if p == "/v2" || p.starts_with("/v2/") => {
            let rest = p.strip_prefix("/v2").unwrap_or("").trim_start_matches('/');
            match route::parse(rest) {
                Ok(Some(route)) => {
                    let label = route.label();
                    let (who, r) = v2(Arc::clone(&app), remote.to_string(), route, req).await;
                    (label, who, r)
                }
                Ok(None) => (
                    "unknown",
                    None,
                    respond::error_body("NOT_FOUND", "no such endpoint", 404),
                ),
                Err(e) => ("invalid", None, respond::error(&e)),
            }
        }
        _ => (
            "unknown",
            None,
            respond::error_body("NOT_FOUND", "no such endpoint", 404),
        ),
    };
    let status = response.status().as_u16();
    app.metrics.request(label, method.as_str(), status);
    if let Some(n) = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if method != Method::HEAD {
            app.metrics
                .bytes_out
                .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        }
    }
    tracing::info!(
        target: "estiba_registry::access",
        remote = %remote,
        method = %method,
        path = %path,
        status,
        user = who.as_deref().unwrap_or("-"),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    response
}

async fn health(app: &Arc<App>) -> Response {
    match app.blocking(|s| s.repositories().map(drop)).await {
        Ok(()) => respond::empty(200, &[]),
        Err(e) => respond::error(&e),
    }
}

/// The base URL clients reached us on, for the token realm.
fn realm(app: &App, headers: &HeaderMap, uri: &axum::http::Uri) -> String {
    if let Some(r) = app.auth.configured_realm() {
        return r.to_string();
    }
    // HTTP/2 carries the host in the URI's authority, not a Host header.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    let scheme = if app.tls { "https" } else { "http" };
    format!("{scheme}://{host}/token")
}

fn parse_query(req: &Request) -> Vec<(String, String)> {
    req.uri()
        .query()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// What a `/v2/` request needs, by endpoint and method.
fn needs(route: &Route, method: &Method) -> Vec<Need> {
    let Some(name) = route.name() else {
        return match route {
            Route::Catalog => vec![Need::Catalog],
            _ => vec![],
        };
    };
    let action = match (route, method) {
        (_, &Method::GET | &Method::HEAD) if !matches!(route, Route::Upload { .. }) => Action::Pull,
        (Route::Manifest { .. } | Route::Blob { .. }, &Method::DELETE) => Action::Delete,
        _ => Action::Push,
    };
    vec![Need::Repo(name.to_string(), action)]
}

/// The scope a challenge names: what the request needs, and for an upload
/// that asks for a mount, `pull` on the target and on the source too, as
/// distribution does. Only `needs` is enforced; a token without the source
/// gets an upload instead of the mount.
fn asks(route: &Route, method: &Method, query: &[(String, String)], needs: Vec<Need>) -> Vec<Need> {
    let mut out = needs;
    let param = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.as_str());
    if let (Route::Uploads { .. }, &Method::POST, Some(_)) = (route, method, param("mount")) {
        if let Some(name) = route.name() {
            out.insert(0, Need::Repo(name.to_string(), Action::Pull));
        }
        if let Some(from) = param("from").filter(|f| crate::names::validate_name(f).is_ok()) {
            out.push(Need::Repo(from.to_string(), Action::Pull));
        }
    }
    out
}

async fn v2(
    app: Arc<App>,
    remote: String,
    route: Route,
    req: Request,
) -> (Option<String>, Response) {
    let method = req.method().clone();
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let wanted = needs(&route, &method);
    let query = parse_query(&req);
    // `/v2/` always asks for credentials when none came: clients decide
    // from this one answer whether to authenticate at all.
    let decision = if route == Route::Base && authorization.is_none() {
        Err(Denial::Challenge {
            scope: String::new(),
            error: None,
            message: "authentication required".into(),
        })
    } else {
        app.auth.authorize(authorization.as_deref(), &wanted)
    };
    let who = match decision {
        Ok(who) => who,
        Err(mut d) => {
            // A challenge names everything the request could use, so a
            // token client asks for it all at once (a mount's source too).
            if let Denial::Challenge { scope, .. } = &mut d {
                if !scope.is_empty() {
                    *scope = Need::scope(&asks(&route, &method, &query, wanted));
                }
            }
            let who = match &d {
                Denial::Forbidden { who, .. } => who.clone(),
                Denial::Challenge { .. } => "anonymous".to_string(),
            };
            if route != Route::Base {
                let target = format!("{} {}", method, req.uri().path());
                app.audit.record(
                    &who,
                    &remote,
                    "auth",
                    route.name().unwrap_or(""),
                    &target,
                    "denied",
                );
            }
            return (
                Some(who),
                respond::denial(
                    &d,
                    &realm(&app, req.headers(), req.uri()),
                    app.auth.service(),
                ),
            );
        }
    };
    // Every decision is audited, reads included (as CloudTrail's data
    // events would be); only the unauthenticated `/v2/` ping is not.
    if route != Route::Base || authorization.is_some() {
        let target = format!("{} {}", method, req.uri().path());
        app.audit.record(
            who.name(),
            &remote,
            "auth",
            route.name().unwrap_or(""),
            &target,
            "allowed",
        );
    }
    let user = who.user.clone();
    let (parts, body) = req.into_parts();
    let ctx = Ctx {
        query,
        app,
        who,
        remote,
        method: parts.method.clone(),
        headers: parts.headers,
        authorization,
    };
    let result = match route {
        Route::Base => Ok(respond::empty(
            200,
            &[("Docker-Distribution-API-Version", "registry/2.0".into())],
        )),
        Route::Catalog => manifests::catalog(&ctx).await,
        Route::Tags { name } => manifests::tags(&ctx, &name).await,
        Route::Manifest { name, reference } => {
            manifests::manifest(&ctx, &name, &reference, body).await
        }
        Route::Referrers { name, digest } => manifests::referrers(&ctx, &name, &digest).await,
        Route::Blob { name, digest } => blobs::blob(&ctx, &name, &digest).await,
        Route::Uploads { name } => blobs::start_upload(&ctx, &name, body).await,
        Route::Upload { name, id } => blobs::upload(&ctx, &name, &id, body).await,
    };
    let response = result.unwrap_or_else(|e| respond::error(&e));
    (Some(user.unwrap_or_else(|| "anonymous".into())), response)
}

/// The token endpoint: Basic credentials (or none, for anonymous access)
/// in, a signed token granting what the policies allow out.
async fn token(app: &Arc<App>, remote: &str, req: Request) -> Response {
    // containerd tries an OAuth2 POST first and falls back to GET on 405.
    if req.method() != Method::GET {
        return respond::error_body(
            Code::Unsupported.as_str(),
            "the token endpoint takes GET",
            405,
        );
    }
    let query = parse_query(&req);
    let scopes: Vec<String> = query
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.clone())
        .collect();
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let who = match authorization {
        None => Identity::default(),
        Some(h) if h.len() > 6 && h[..6].eq_ignore_ascii_case("basic ") => {
            let encoded = h[6..].to_string();
            let app2 = Arc::clone(app);
            // argon2 takes tens of milliseconds: not on an async thread.
            let found = tokio::task::spawn_blocking(move || app2.auth.basic(&encoded))
                .await
                .ok()
                .flatten();
            match found {
                Some(who) => who,
                None => {
                    let name = basic_user(h).unwrap_or_default();
                    app.audit.record(
                        &name,
                        remote,
                        "token",
                        "",
                        &scopes.join(" "),
                        "denied: wrong credentials",
                    );
                    let mut r = respond::error_body(
                        Code::Unauthorized.as_str(),
                        "wrong user name or password",
                        401,
                    );
                    respond::set_headers(
                        &mut r,
                        &[("WWW-Authenticate", "Basic realm=\"estiba\"".into())],
                    );
                    return r;
                }
            }
        }
        Some(_) => {
            return respond::error_body(Code::Unauthorized.as_str(), "use Basic credentials", 401)
        }
    };
    match app.auth.issue_token(&who, &scopes) {
        Ok((token, ttl)) => {
            app.audit
                .record(who.name(), remote, "token", "", &scopes.join(" "), "issued");
            let body = serde_json::json!({
                "token": token,
                "access_token": token,
                "expires_in": ttl,
                "issued_at": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            });
            let mut r = Response::new(Body::from(body.to_string()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            r
        }
        Err(e) => respond::error(&e),
    }
}

fn basic_user(h: &str) -> Option<String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(h.get(6..)?.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    Some(text.split_once(':')?.0.to_string())
}
