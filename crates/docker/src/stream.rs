//! Streams: Docker's multiplexed framing, connections taken over for
//! attach and exec (the HTTP upgrade the docker CLI asks for), and a
//! container's log followed as it grows.

use std::path::PathBuf;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use estiba_engine::logs::{self, LogLine};
use estiba_events::{Action, Event};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

/// Which stream a chunk belongs to, as the frame header's first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout = 1,
    Stderr = 2,
}

impl Stream {
    pub fn of(line: &LogLine) -> Stream {
        if line.stream == "stderr" {
            Stream::Stderr
        } else {
            Stream::Stdout
        }
    }
}

/// One frame: `[stream, 0, 0, 0, size as u32 big-endian]` then the bytes;
/// with a terminal there is no framing, only the bytes.
pub fn frame(stream: Stream, data: &[u8], tty: bool) -> Vec<u8> {
    if tty {
        return data.to_vec();
    }
    let mut out = Vec::with_capacity(8 + data.len());
    out.extend_from_slice(&[stream as u8, 0, 0, 0]);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// The content type of a container's output.
pub fn content_type(tty: bool) -> HeaderValue {
    HeaderValue::from_static(if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    })
}

/// The connection, once the client has switched protocols.
pub type Upgraded = TokioIo<hyper::upgrade::Upgraded>;

/// Answers an upgrade request with 101 and hands the raw connection to
/// `serve` once the client has it.
pub fn hijack<F, Fut>(mut req: Request, tty: bool, serve: F) -> Response
where
    F: FnOnce(Upgraded) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let wants_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"tcp"));
    if !wants_upgrade {
        return crate::error::ApiError::bad_request(
            "attach and exec start take over the connection: send Connection: Upgrade and Upgrade: tcp",
        )
        .into_response();
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => serve(TokioIo::new(upgraded)).await,
            Err(e) => tracing::warn!(error = %e, "the client did not take over the connection"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "tcp")
        .header(header::CONTENT_TYPE, content_type(tty))
        .body(Body::empty())
        .unwrap_or_default()
}

/// A body fed by a channel: what a streaming handler sends arrives as
/// chunks; dropping the sender ends it.
pub fn channel_body() -> (mpsc::Sender<Vec<u8>>, Body) {
    let (tx, rx) = mpsc::channel::<Vec<u8>>(64);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::io::Error>(chunk), rx))
    });
    (tx, Body::from_stream(stream))
}

/// A container's log from a point on, read as the monitor appends it.
///
/// The file is held open from the start: a `--rm` container that lives
/// for less than one poll has its directory removed right after its exit,
/// and what it wrote must still be read from the inode. A rotation (the
/// path names a new file) is followed once the held one is drained.
pub struct LogFollower {
    path: PathBuf,
    file: Option<std::fs::File>,
    offset: u64,
    /// Bytes read past the last complete line.
    partial: Vec<u8>,
}

impl LogFollower {
    fn open(path: &std::path::Path) -> Option<std::fs::File> {
        // Made empty if the monitor has not yet: it appends to the same file.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .ok()
    }

    /// From the end of what is written now.
    pub fn at_end(path: PathBuf) -> LogFollower {
        let file = Self::open(&path);
        let offset = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len());
        LogFollower {
            path,
            file,
            offset,
            partial: Vec::new(),
        }
    }

    /// Every line kept (the rotated file, then the current one), and a
    /// follower from the end of them.
    pub fn everything(path: PathBuf) -> (Vec<LogLine>, LogFollower) {
        let mut lines = logs::read_all(&path.with_extension("log.1"));
        let mut follower = LogFollower {
            file: Self::open(&path),
            path,
            offset: 0,
            partial: Vec::new(),
        };
        lines.extend(follower.next_lines());
        (lines, follower)
    }

    fn read_held(&mut self) -> Vec<LogLine> {
        use std::os::unix::fs::FileExt;
        let Some(file) = &self.file else {
            return Vec::new();
        };
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match file.read_at(&mut buf, self.offset) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    self.offset += n as u64;
                    self.partial.extend_from_slice(&buf[..n]);
                }
            }
        }
        let Some(end) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return Vec::new();
        };
        let complete: Vec<u8> = self.partial.drain(..=end).collect();
        complete
            .split(|b| *b == b'\n')
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect()
    }

    /// Lines appended since the last call.
    pub fn next_lines(&mut self) -> Vec<LogLine> {
        use std::os::unix::fs::MetadataExt;
        if self.file.is_none() {
            self.file = Self::open(&self.path);
        }
        let mut lines = self.read_held();
        let held = self
            .file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| m.ino());
        let current = std::fs::metadata(&self.path).ok().map(|m| m.ino());
        if current.is_some() && current != held {
            // Rotated: the held file is drained; go on with the new one.
            self.file = Self::open(&self.path);
            self.offset = 0;
            self.partial.clear();
            lines.extend(self.read_held());
        }
        lines
    }
}

/// Follows `follower` until `exits` reports the container's exit,
/// sending each line `render` keeps; the lines written before the exit
/// are sent too (the monitor writes the log before it journals the exit).
/// Returns early once the receiver of `tx` is gone.
pub async fn follow_until_exit(
    mut follower: LogFollower,
    mut exits: mpsc::Receiver<Event>,
    render: impl Fn(LogLine) -> Option<Vec<u8>>,
    tx: &mpsc::Sender<Vec<u8>>,
) {
    loop {
        let ended = tokio::select! {
            e = exits.recv() => e.is_none_or(|e| is_exit(&e)),
            () = tokio::time::sleep(Duration::from_millis(100)) => false,
        };
        for line in follower.next_lines() {
            if let Some(bytes) = render(line) {
                if tx.send(bytes).await.is_err() {
                    return;
                }
            }
        }
        if ended || tx.is_closed() {
            return;
        }
    }
}

/// The container stopped running: `die`, or `destroy` for one removed
/// without being seen to die.
pub fn is_exit(e: &Event) -> bool {
    matches!(e.action, Action::Die | Action::Destroy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_the_stream_and_the_size() {
        assert_eq!(
            frame(Stream::Stderr, b"hi\n", false),
            [2, 0, 0, 0, 0, 0, 0, 3, b'h', b'i', b'\n']
        );
        assert_eq!(frame(Stream::Stdout, b"hi", true), b"hi");
    }

    #[test]
    fn a_follower_reads_only_what_is_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        let mut w = logs::LogWriter::open(&path, 1 << 20).unwrap();
        w.write(0, b"old\n").unwrap();
        let mut f = LogFollower::at_end(path.clone());
        assert!(f.next_lines().is_empty());
        w.write(1, b"new\n").unwrap();
        let lines = f.next_lines();
        assert_eq!(lines.len(), 1);
        assert_eq!(Stream::of(&lines[0]), Stream::Stderr);
        let (all, _) = LogFollower::everything(path);
        assert_eq!(all.len(), 2);
    }
}
