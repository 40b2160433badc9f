//! A detached container's terminal (`-t`): the runtime makes the
//! pseudo-terminal inside the container and sends its master end over a
//! unix socket (runc's `--console-socket`), as SCM_RIGHTS. The monitor
//! keeps the master: it reads the container's output from it, and while
//! it holds it the container's stdin stays open.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};

use crate::error::IoContext;
use crate::{Error, Result};

/// The socket the runtime connects to, and the thread that takes the
/// master from it.
pub struct ConsoleSocket {
    /// Where it is, for removing it.
    path: PathBuf,
    /// Its name in its directory, for a runtime started there: a unix
    /// socket's path is at most 107 bytes, and a bundle's can be longer.
    pub name: PathBuf,
    done: Arc<AtomicBool>,
    receiver: JoinHandle<std::io::Result<OwnedFd>>,
}

/// How long the runtime has to send the master once `create` runs.
const WAIT: Duration = Duration::from_secs(30);

impl ConsoleSocket {
    /// Listens at `<dir>/console.sock`.
    pub fn listen(dir: &Path) -> Result<ConsoleSocket> {
        use std::os::fd::AsRawFd;
        let name = PathBuf::from("console.sock");
        let path = dir.join(&name);
        let _ = std::fs::remove_file(&path);
        // Bound through the directory's descriptor, whatever its length.
        let flags =
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC;
        let dirfd = rustix::fs::open(dir, flags, rustix::fs::Mode::empty()).ctx("opening", dir)?;
        let short = format!("/proc/self/fd/{}/{}", dirfd.as_raw_fd(), name.display());
        let listener = UnixListener::bind(&short).ctx("listening on", &path)?;
        drop(dirfd);
        listener.set_nonblocking(true).ctx("listening on", &path)?;
        let done = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&done);
        let receiver = std::thread::spawn(move || receive(&listener, &stop));
        Ok(ConsoleSocket {
            path,
            name,
            done,
            receiver,
        })
    }

    /// The master, once the runtime's `create` has returned: it sent it
    /// before that. After a failed `create`, call `abandon` instead.
    pub fn master(self) -> Result<OwnedFd> {
        let got = self.receiver.join();
        let _ = std::fs::remove_file(&self.path);
        match got {
            Ok(Ok(fd)) => Ok(fd),
            Ok(Err(e)) => Err(Error::Invalid {
                what: "terminal",
                value: self.path.display().to_string(),
                why: format!("the runtime sent no terminal: {e}"),
            }),
            Err(_) => Err(Error::Invalid {
                what: "terminal",
                value: self.path.display().to_string(),
                why: "the receiving thread panicked".into(),
            }),
        }
    }

    /// Stops waiting for a master that will not come.
    pub fn abandon(self) {
        self.done.store(true, Ordering::Relaxed);
        let _ = self.receiver.join();
        let _ = std::fs::remove_file(&self.path);
    }
}

fn receive(listener: &UnixListener, done: &AtomicBool) -> std::io::Result<OwnedFd> {
    let deadline = Instant::now() + WAIT;
    let stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if done.load(Ordering::Relaxed) || Instant::now() > deadline {
                    return Err(std::io::ErrorKind::TimedOut.into());
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(e),
        }
    };
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(WAIT))?;
    // runc sends the terminal's name as the payload, the master as the fd.
    let mut name = [0u8; 4096];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut ancillary = RecvAncillaryBuffer::new(&mut space);
    rustix::net::recvmsg(
        &stream,
        &mut [std::io::IoSliceMut::new(&mut name)],
        &mut ancillary,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    for message in ancillary.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = message {
            if let Some(fd) = fds.next() {
                return Ok(fd);
            }
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        "a message without a descriptor",
    ))
}
