//! The Docker Engine API over estiba's engine (`estiba system service`).
//!
//! docker, docker-compose and the Docker SDKs speak this API; estiba
//! answers it from the same library the CLI and the node agent use
//! (`estiba_engine::AsyncEngine`), so a container made through the socket
//! is the container `estiba ps` shows, judged by the same admission policy.
//! There is still no daemon holding containers: each runs under its own
//! monitor, and the server can stop (or time out when idle) without
//! touching them.
//!
//! A request goes: the version layer (`version.rs`: `/vX.Y` checked and
//! stripped, dockerd's headers added) → the router (`router`) → a handler
//! per resource (`containers.rs`, `exec.rs`, `images.rs`, `volumes.rs`,
//! `networks.rs`, `system.rs`) → the engine. Bodies are parsed by hand so a
//! malformed one gets Docker's 400 with what is wrong (`create.rs` for the
//! container config); errors are Docker's `{"message"}` (`error.rs`).
//! Attach and exec take over the connection (`stream.rs`).
#![forbid(unsafe_code)]

mod archive;
mod build;
mod containers;
mod create;
mod error;
mod exec;
mod images;
mod networks;
mod query;
mod registry;
mod stream;
mod system;
mod version;
mod volumes;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::DefaultBodyLimit;
use axum::Router;
use estiba_engine::AsyncEngine;
use estiba_events::{Event, Filter, Start};
use tokio::sync::mpsc;

pub use error::{ApiError, Error};

/// A `POST /containers/create` body and `name` as the engine's request, or
/// the 400 Docker gives (the bad-input suite's and fuzz target's entry).
pub fn parse_create(
    body: &[u8],
    name: Option<String>,
) -> Result<estiba_engine::CreateRequest, ApiError> {
    create::request(create::parse(body)?, name)
}
pub use version::{API_VERSION, MIN_API_VERSION};

/// What the handlers share.
pub struct Api {
    engine: AsyncEngine,
    execs: exec::Execs,
    activity: Arc<Activity>,
    pull_gate: Option<PullGate>,
}

/// The admission policy's judge of a pull, before it starts: the options
/// to pull with (the keys a signature must verify with), or the refusal.
pub type PullGate = Arc<
    dyn Fn(
            &estiba_registry::client::RemoteRef,
        ) -> Result<estiba_registry::client::PullOptions, String>
        + Send
        + Sync,
>;

impl Api {
    /// The API over `engine` (whose admission judges what is created),
    /// with `pull_gate` judging pulls.
    pub fn new(engine: estiba_engine::Engine, pull_gate: Option<PullGate>) -> Arc<Api> {
        Arc::new(Api {
            engine: AsyncEngine::new(engine),
            execs: exec::Execs::default(),
            activity: Arc::new(Activity::new()),
            pull_gate,
        })
    }

    /// Runs a blocking engine call on tokio's blocking pool.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&estiba_engine::Engine) -> estiba_engine::Result<T> + Send + 'static,
    ) -> error::ApiResult<T> {
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || f(engine.blocking()))
            .await
            .map_err(|e| {
                ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            })?
            .map_err(ApiError::from)
    }

    /// The container's exits (`die`, `destroy`) from now on. Subscribe
    /// before reading its state, or an exit in between is missed.
    fn exits(&self, container: &str) -> error::ApiResult<mpsc::Receiver<Event>> {
        let mut filter = Filter::default();
        for term in [
            format!("container={container}"),
            "event=die".into(),
            "event=destroy".into(),
        ] {
            filter
                .add(&term)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
        }
        self.engine
            .events(filter, Start::End)
            .map_err(ApiError::from)
    }
}

/// Requests and streams in progress, and when the last one ended: the
/// idle timeout counts from there.
pub struct Activity {
    busy: AtomicUsize,
    since: Mutex<Instant>,
}

/// Held while a request or a stream is in progress.
pub struct Busy(Arc<Activity>);

impl Activity {
    fn new() -> Activity {
        Activity {
            busy: AtomicUsize::new(0),
            since: Mutex::new(Instant::now()),
        }
    }

    pub fn busy(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::SeqCst);
        Busy(Arc::clone(self))
    }

    fn idle_for(&self) -> Option<Duration> {
        if self.busy.load(Ordering::SeqCst) > 0 {
            return None;
        }
        Some(self.since.lock().map(|t| t.elapsed()).unwrap_or_default())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if let Ok(mut t) = self.0.since.lock() {
            *t = Instant::now();
        }
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Every endpoint, on bare paths (the version layer strips `/vX.Y`).
pub fn router(api: Arc<Api>) -> Router {
    let activity = Arc::clone(&api.activity);
    Router::new()
        .merge(system::routes())
        .merge(containers::routes())
        .merge(exec::routes())
        .merge(images::routes())
        .merge(volumes::routes())
        .merge(networks::routes())
        .fallback(|| async { ApiError::not_found("page not found") })
        // Container configs and the like; build contexts will get their own.
        .layer(DefaultBodyLimit::max(1 << 20))
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let busy = activity.busy();
                async move {
                    let response = next.run(req).await;
                    drop(busy);
                    response
                }
            },
        ))
        .with_state(api)
}

/// Serves the API on a unix socket at `path` (made anew, with `mode`)
/// until a signal, or until no request has been in progress for `idle`.
pub async fn serve_unix(
    api: Arc<Api>,
    path: &Path,
    mode: u32,
    idle: Option<Duration>,
) -> Result<(), Error> {
    let listen_err = |op, source| Error::Listen {
        op,
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| listen_err("creating the directory of", e))?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(listen_err("removing the old socket", e)),
    }
    let listener =
        tokio::net::UnixListener::bind(path).map_err(|e| listen_err("listening on", e))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| listen_err("setting the mode of", e))?;
    tracing::info!(socket = %path.display(), "serving the Docker Engine API");
    let shutdown = shutdown(Arc::clone(&api.activity), idle);
    axum::serve(listener, versioned(api))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(Error::Serve)?;
    let _ = std::fs::remove_file(path);
    Ok(())
}

/// The router behind the version layer: an outer router with no routes
/// of its own sends every request through the layer (which strips
/// `/vX.Y`) to the API's router, which then routes the bare path.
fn versioned(api: Arc<Api>) -> Router {
    Router::new()
        .fallback_service(router(api))
        .layer(axum::middleware::from_fn(version::layer))
}

/// Resolves at a signal, or once nothing has been in progress for `idle`.
async fn shutdown(activity: Arc<Activity>, idle: Option<Duration>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return,
            _ = terminate() => return,
            _ = tick.tick() => {
                if let (Some(limit), Some(quiet)) = (idle, activity.idle_for()) {
                    if quiet >= limit {
                        tracing::info!("idle for {}s: exiting", limit.as_secs());
                        return;
                    }
                }
            }
        }
    }
}

/// The certificate and key the server shows, and the CA its clients'
/// certificates must chain to (dockerd's `--tlsverify`).
pub struct Tls {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
    pub ca: std::path::PathBuf,
}

fn server_config(tls: &Tls) -> Result<rustls::ServerConfig, Error> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad =
        |what: &Path, e: &dyn std::fmt::Display| Error::Tls(format!("{}: {e}", what.display()));
    let certs = CertificateDer::pem_file_iter(&tls.cert)
        .map_err(|e| bad(&tls.cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&tls.cert, &e))?;
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| bad(&tls.key, &e))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&tls.ca).map_err(|e| bad(&tls.ca, &e))? {
        roots
            .add(c.map_err(|e| bad(&tls.ca, &e))?)
            .map_err(|e| bad(&tls.ca, &e))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .map_err(|e| bad(&tls.ca, &e))?;
    rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| bad(&tls.cert, &e))
}

/// Serves the API over TCP with TLS, clients verified by their
/// certificates: without that, a TCP socket would hand the host to anyone
/// who reaches the port.
pub async fn serve_tcp(
    api: Arc<Api>,
    addr: std::net::SocketAddr,
    tls: &Tls,
    idle: Option<Duration>,
) -> Result<(), Error> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(server_config(tls)?));
    let handle = axum_server::Handle::new();
    let watcher = handle.clone();
    let activity = Arc::clone(&api.activity);
    tokio::spawn(async move {
        shutdown(activity, idle).await;
        watcher.graceful_shutdown(Some(Duration::from_secs(1)));
    });
    tracing::info!(%addr, "serving the Docker Engine API over TLS");
    axum_server::bind_rustls(addr, config)
        .handle(handle)
        .serve(versioned(api).into_make_service())
        .await
        .map_err(Error::Serve)
}

async fn terminate() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}
