//! Exec: `POST /containers/{id}/exec` records what to run; `POST
//! /exec/{id}/start` runs it over the taken-over connection; `GET
//! /exec/{id}/json` tells its exit code.
//!
//! The command runs as a child `estiba exec` on this server's store: the
//! engine's exec hands the runtime its caller's stdio, and a child's stdio
//! can be pipes to the connection where the server's own cannot.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::error::{ApiError, ApiResult};
use crate::stream::{self, frame, Stream};
use crate::Api;

#[derive(Deserialize, Debug, Default, Clone)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    tty: bool,
    // The docker CLI sends null for what it was not given.
    #[serde(deserialize_with = "null_default")]
    cmd: Vec<String>,
    #[serde(deserialize_with = "null_default")]
    env: Vec<String>,
    #[serde(deserialize_with = "null_default")]
    user: String,
    #[serde(deserialize_with = "null_default")]
    working_dir: String,
    privileged: bool,
}

fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "PascalCase", default)]
struct StartBody {
    detach: bool,
}

#[derive(Clone, Debug)]
struct ExecRecord {
    container: String,
    spec: CreateBody,
    running: bool,
    exit_code: Option<i32>,
    pid: u32,
    /// With a terminal: its master, which a resize sizes.
    terminal: Option<Arc<std::os::fd::OwnedFd>>,
}

/// The execs of this server's life, by id (dockerd keeps them in memory too).
#[derive(Default)]
pub struct Execs(Mutex<HashMap<String, ExecRecord>>);

impl Execs {
    fn get(&self, id: &str) -> ApiResult<ExecRecord> {
        self.0
            .lock()
            .ok()
            .and_then(|m| m.get(id).cloned())
            .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut ExecRecord)) {
        if let Some(r) = self.0.lock().ok().as_mut().and_then(|m| m.get_mut(id)) {
            f(r);
        }
    }
}

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/containers/{id}/exec", post(create))
        .route("/exec/{id}/start", post(start))
        .route("/exec/{id}/json", get(inspect))
        .route("/exec/{id}/resize", post(resize))
}

async fn create(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let spec: CreateBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    if spec.cmd.is_empty() {
        return Err(ApiError::bad_request("No exec command specified"));
    }
    if spec.privileged {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "privileged exec is refused: an exec gets the container's own capabilities",
        ));
    }
    let r = api.engine.inspect(&id).await?;
    if r.state.status != estiba_engine::Status::Running {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            r.id
        )));
    }
    if r.state.paused {
        return Err(ApiError::conflict(format!(
            "Container {} is paused, unpause the container before exec",
            r.id
        )));
    }
    let exec_id = estiba_os::random_hex(32);
    if let Ok(mut m) = api.execs.0.lock() {
        m.insert(
            exec_id.clone(),
            ExecRecord {
                container: r.id,
                spec,
                running: false,
                exit_code: None,
                pid: 0,
                terminal: None,
            },
        );
    }
    Ok((StatusCode::CREATED, Json(json!({"Id": exec_id}))).into_response())
}

/// `estiba exec` on this server's store, with the record's options.
fn command(api: &Api, r: &ExecRecord) -> tokio::process::Command {
    let engine = api.engine.blocking();
    let mut c = tokio::process::Command::new(&engine.exe);
    c.env("ESTIBA_ROOT", &engine.data)
        .env("ESTIBA_RUNROOT", &engine.run)
        // Already in the user's namespace (rootless): nothing to join.
        .env_remove(estiba_runtime::userns::JOIN_ENV)
        .arg("--log-level")
        .arg(&engine.log_level)
        .arg("exec");
    if !r.spec.user.is_empty() {
        c.arg("--user").arg(&r.spec.user);
    }
    if !r.spec.working_dir.is_empty() {
        c.arg("--workdir").arg(&r.spec.working_dir);
    }
    for e in &r.spec.env {
        c.arg("--env").arg(e);
    }
    if r.spec.attach_stdin {
        c.arg("--interactive");
    }
    if r.spec.tty {
        c.arg("--tty");
    }
    c.arg(&r.container).arg("--").args(&r.spec.cmd);
    c.kill_on_drop(true);
    c
}

async fn start(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let record = api.execs.get(&id)?;
    if record.running || record.exit_code.is_some() {
        return Err(ApiError::conflict(format!("exec {id} has already run")));
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let start: StartBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        StartBody::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?
    };
    let mut cmd = command(&api, &record);
    let attach = !start.detach;
    if record.spec.tty && attach {
        let req = Request::from_parts(parts, axum::body::Body::empty());
        return start_with_terminal(api, id, record, cmd, req);
    }
    cmd.stdin(if attach && record.spec.attach_stdin {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(if attach {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stderr(if attach {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("starting exec: {e}"),
        )
    })?;
    let pid = child.id().unwrap_or(0);
    api.execs.update(&id, |r| {
        r.running = true;
        r.pid = pid;
    });
    tracing::info!(exec = %id, container = %record.container, "exec started");
    let busy = api.activity.busy();
    if start.detach {
        tokio::spawn(async move {
            let _busy = busy;
            finished(&api, &id, &mut child).await;
        });
        return Ok(StatusCode::OK.into_response());
    }
    let req = Request::from_parts(parts, axum::body::Body::empty());
    let (out, err, input) = (child.stdout.take(), child.stderr.take(), child.stdin.take());
    let (want_out, want_err) = (record.spec.attach_stdout, record.spec.attach_stderr);
    Ok(stream::hijack(req, false, move |conn| async move {
        let _busy = busy;
        let (mut read, mut write) = tokio::io::split(conn);
        if let Some(mut input) = input {
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut read, &mut input).await;
                let _ = input.shutdown().await;
            });
        }
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
        let readers = [
            out.map(|o| tokio::spawn(copy_framed(o, Stream::Stdout, want_out, tx.clone()))),
            err.map(|e| tokio::spawn(copy_framed(e, Stream::Stderr, want_err, tx.clone()))),
        ];
        drop(tx);
        while let Some(chunk) = rx.recv().await {
            if write.write_all(&chunk).await.is_err() {
                break;
            }
        }
        for r in readers.into_iter().flatten() {
            let _ = r.await;
        }
        finished(&api, &id, &mut child).await;
        let _ = write.shutdown().await;
    }))
}

/// A pseudo-terminal pair: the master for us, the slave for the child.
fn open_pty() -> std::io::Result<(std::fs::File, std::os::fd::OwnedFd)> {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname(&master, Vec::new())?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    Ok((std::fs::File::from(master), slave))
}

/// `exec -t`: the child's stdio is a terminal of ours, whose master is
/// copied raw (no framing) both ways over the connection.
fn start_with_terminal(
    api: Arc<Api>,
    id: String,
    record: ExecRecord,
    mut cmd: tokio::process::Command,
    req: Request,
) -> ApiResult<Response> {
    let failed = |e: std::io::Error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("making a terminal: {e}"),
        )
    };
    let (master, slave) = open_pty().map_err(failed)?;
    let dup = |fd: &std::os::fd::OwnedFd| fd.try_clone().map(Stdio::from).map_err(failed);
    cmd.stdin(dup(&slave)?)
        .stdout(dup(&slave)?)
        .stderr(Stdio::from(slave))
        // A group of its own, which a resize signals (`resize`).
        .process_group(0);
    let sized = Arc::new(std::os::fd::OwnedFd::from(
        master.try_clone().map_err(failed)?,
    ));
    let mut child = cmd.spawn().map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("starting exec: {e}"),
        )
    })?;
    api.execs.update(&id, |r| {
        r.running = true;
        r.pid = child.id().unwrap_or(0);
        r.terminal = Some(sized);
    });
    tracing::info!(exec = %id, container = %record.container, "exec started with a terminal");
    let busy = api.activity.busy();
    let writer = master.try_clone().map_err(failed)?;
    Ok(stream::hijack(req, true, move |conn| async move {
        let _busy = busy;
        let (mut read, mut write) = tokio::io::split(conn);
        let mut to_pty = tokio::fs::File::from_std(writer);
        let input = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut read, &mut to_pty).await;
        });
        let mut from_pty = tokio::fs::File::from_std(master);
        // The master reads EIO once the last holder of the slave is gone.
        let _ = tokio::io::copy(&mut from_pty, &mut write).await;
        finished(&api, &id, &mut child).await;
        input.abort();
        let _ = write.shutdown().await;
    }))
}

/// How long a resize waits for its exec to start, as dockerd does.
const RESIZE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The exec's terminal to `h` rows and `w` columns: set on our master,
/// then SIGWINCH to the exec's process group, whose runtime reads the new
/// size off its terminal and sets it on the container's. An exec without
/// a terminal has nothing to size.
async fn resize(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    Query(q): Query<crate::query::Query>,
) -> ApiResult<StatusCode> {
    let (rows, cols) = crate::query::window(&q)?;
    let deadline = tokio::time::Instant::now() + RESIZE_WAIT;
    let (master, pid) = loop {
        let r = api.execs.get(&id)?;
        if !r.spec.tty || r.exit_code.is_some() {
            return Ok(StatusCode::OK);
        }
        if let (true, Some(master)) = (r.running, r.terminal) {
            break (master, r.pid);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::conflict(format!("exec {id} has not started")));
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let size = rustix::termios::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let failed = |e: rustix::io::Errno| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("resizing exec {id}: {e}"),
        )
    };
    rustix::termios::tcsetwinsize(&*master, size).map_err(failed)?;
    if let Some(group) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        match rustix::process::kill_process_group(group, rustix::process::Signal::WINCH) {
            Ok(()) | Err(rustix::io::Errno::SRCH) => {}
            Err(e) => return Err(failed(e)),
        }
    }
    Ok(StatusCode::OK)
}

/// Waits for the exec's process and records its exit code.
async fn finished(api: &Api, id: &str, child: &mut tokio::process::Child) {
    let code = child
        .wait()
        .await
        .ok()
        .and_then(|s| s.code())
        .unwrap_or(126);
    api.execs.update(id, |r| {
        r.running = false;
        r.exit_code = Some(code);
        // The table outlives the exec: not its terminal.
        r.terminal = None;
    });
}

/// Copies one of the child's streams as frames (or drains it unwanted).
async fn copy_framed(
    mut from: impl AsyncRead + Unpin,
    stream: Stream,
    wanted: bool,
    tx: mpsc::Sender<Vec<u8>>,
) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) if wanted => {
                if tx.send(frame(stream, &buf[..n], false)).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
        }
    }
}

async fn inspect(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let r = api.execs.get(&id)?;
    Ok(Json(json!({
        "ID": id,
        "Running": r.running,
        "ExitCode": r.exit_code,
        "ContainerID": r.container,
        "Pid": r.pid,
        "OpenStdin": r.spec.attach_stdin,
        "OpenStdout": r.spec.attach_stdout,
        "OpenStderr": r.spec.attach_stderr,
        "ProcessConfig": {
            "tty": r.spec.tty,
            "entrypoint": r.spec.cmd.first(),
            "arguments": r.spec.cmd.get(1..).unwrap_or_default(),
            "user": r.spec.user,
            "privileged": false,
        },
    })))
}
