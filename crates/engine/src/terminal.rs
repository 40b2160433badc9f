//! A detached container's terminal (`-t`): the runtime makes the
//! pseudo-terminal inside the container and sends its master end over a
//! unix socket (runc's `--console-socket`), as SCM_RIGHTS. The monitor
//! keeps the master: it reads the container's output from it, and while
//! it holds it the container's stdin stays open.
//!
//! Its window size comes through a FIFO beside the stdin one
//! (`ContainerDirs::resize_fifo`): [`Engine::resize`] writes `ROWS COLS`
//! lines, the monitor sets each on the master, and the kernel tells the
//! container's foreground processes (SIGWINCH).

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};

use crate::error::IoContext;
use crate::record::Status;
use crate::{Engine, Error, Result};

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

/// The monitor's end of the resize FIFO: read-write, so it never waits
/// for a writer and never reads an end.
pub(crate) fn open_resizes(path: &Path) -> Result<OwnedFd> {
    crate::stdin::ensure(path)?;
    rustix::fs::open(
        path,
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(std::io::Error::from)
    .ctx("opening the resize FIFO", path)
}

/// A `ROWS COLS` line as a window size; None if it is not one.
pub(crate) fn parse_size(line: &str) -> Option<rustix::termios::Winsize> {
    let mut words = line.split_ascii_whitespace();
    let rows: u16 = words.next()?.parse().ok()?;
    let cols: u16 = words.next()?.parse().ok()?;
    if words.next().is_some() {
        return None;
    }
    Some(rustix::termios::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    })
}

/// Sets each size that comes through the FIFO on the terminal's master,
/// on a thread that ends with the process.
pub(crate) fn follow_resizes(fifo: OwnedFd, master: &OwnedFd) -> Result<()> {
    use std::io::BufRead;
    let master = master
        .try_clone()
        .ctx("duplicating", Path::new("the terminal"))?;
    let lines = std::io::BufReader::new(std::fs::File::from(fifo));
    std::thread::spawn(move || {
        for line in lines.lines() {
            let Ok(line) = line else { break };
            if let Some(size) = parse_size(&line) {
                let _ = rustix::termios::tcsetwinsize(&master, size);
            }
        }
    });
    Ok(())
}

impl Engine {
    /// Sets a running container's terminal to `rows` × `cols` (the Docker
    /// API's resize). A container without a terminal has nothing to size.
    pub fn resize(&self, wanted: &str, rows: u16, cols: u16) -> Result<()> {
        let r = self.find(wanted)?;
        if r.state.status != Status::Running {
            return Err(Error::NotRunning { name: r.name });
        }
        if !r.options.tty {
            return Ok(());
        }
        let path = self.dirs(&r.id).resize_fifo();
        // Not blocking: no reader (a monitor of an older estiba) is ENXIO.
        let fd = rustix::fs::open(
            &path,
            rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| Error::Invalid {
            what: "resize",
            value: r.name.clone(),
            why: format!("its monitor takes no window sizes: {e}"),
        })?;
        // One short write: whole, as a FIFO keeps writes under PIPE_BUF.
        rustix::io::write(&fd, format!("{rows} {cols}\n").as_bytes())
            .map_err(std::io::Error::from)
            .ctx("writing the window size to", &path)?;
        Ok(())
    }
}

#[cfg(test)]
mod resize_tests {
    use super::*;

    #[test]
    fn sizes_are_two_numbers_on_a_line() {
        let s = parse_size("40 120").unwrap();
        assert_eq!((s.ws_row, s.ws_col), (40, 120));
        for bad in ["", "40", "40 x", "40 120 3", "-1 2", "70000 1"] {
            assert!(parse_size(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn a_size_written_into_the_fifo_reaches_the_terminal() {
        use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resize");
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let name = ptsname(&master, Vec::new()).unwrap();
        let slave = rustix::fs::open(
            name.as_c_str(),
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        follow_resizes(open_resizes(&path).unwrap(), &master).unwrap();
        let fd =
            rustix::fs::open(&path, rustix::fs::OFlags::WRONLY, rustix::fs::Mode::empty()).unwrap();
        rustix::io::write(&fd, b"33 101\n").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let size = rustix::termios::tcgetwinsize(&slave).unwrap();
            if (size.ws_row, size.ws_col) == (33, 101) {
                break;
            }
            assert!(Instant::now() < deadline, "the size never came");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
