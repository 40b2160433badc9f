//! An interactive container's stdin: a FIFO in its run directory.
//!
//! The monitor opens the reading end for the container at each start; an
//! attach (the Docker API's, through [`Engine::attach_stdin`]) opens it to
//! write. A pipe made by the monitor could not be reached by anyone else,
//! which is why a FIFO. Without `StdinOnce` the monitor also holds a
//! writing end for the container's life, so stdin never reads an end; with
//! it, the end comes when the last attached writer closes.
//!
//! With a terminal (`-it`) the container's stdin is the terminal, so the
//! FIFO is the monitor's instead: it copies what arrives into the
//! terminal's master, as a keyboard would type it ([`copy_to_terminal`]).

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{Mode, OFlags};

use crate::error::IoContext;
use crate::{Engine, Error, Result};

/// Makes the FIFO unless it exists (0600: only the container's owner).
pub(crate) fn ensure(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ctx("creating", dir)?;
    }
    match rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    ) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(()),
        Err(e) => Err(std::io::Error::from(e)).ctx("creating the stdin FIFO", path),
    }
}

/// The container's end: read-only, blocking once opened (a plain open
/// would wait for a writer). With `hold`, a writing end is opened too and
/// kept across exec (this process, or the small monitor it becomes, ends
/// with the container).
pub(crate) fn open_for_container(path: &Path, hold: bool) -> Result<OwnedFd> {
    ensure(path)?;
    let read = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(std::io::Error::from)
    .ctx("opening the stdin FIFO", path)?;
    rustix::fs::fcntl_setfl(&read, OFlags::empty())
        .map_err(std::io::Error::from)
        .ctx("making the stdin FIFO blocking", path)?;
    if hold {
        // A reader exists, so this open does not wait.
        let write = rustix::fs::open(path, OFlags::WRONLY, Mode::empty())
            .map_err(std::io::Error::from)
            .ctx("holding the stdin FIFO open", path)?;
        std::mem::forget(write);
    }
    Ok(read)
}

/// The monitor's end for a container with a terminal: opened read-write,
/// so it never waits and never reads an end (it is its own writer), and
/// before the container starts, so input written that early is kept.
pub(crate) fn open_for_terminal(path: &Path) -> Result<OwnedFd> {
    ensure(path)?;
    rustix::fs::open(path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .map_err(std::io::Error::from)
        .ctx("opening the stdin FIFO", path)
}

/// Copies the FIFO into the terminal's master on a thread of its own, so
/// a container that does not read its terminal (a full input queue
/// blocks the write) never stalls the copying of its output. The thread
/// ends when the terminal goes (the write fails) or with the process.
pub(crate) fn copy_to_terminal(fifo: OwnedFd, master: &OwnedFd) -> Result<()> {
    let mut master = File::from(
        master
            .try_clone()
            .ctx("duplicating", Path::new("the terminal"))?,
    );
    let mut fifo = File::from(fifo);
    std::thread::spawn(move || std::io::copy(&mut fifo, &mut master));
    Ok(())
}

impl Engine {
    /// A writer into an interactive container's stdin (or, with a
    /// terminal, into what its monitor types on it). It is opened
    /// read-write, which never waits for the container's end and keeps
    /// what is written before the container starts in the pipe; drop it
    /// only once the container has started, or that is lost.
    pub fn attach_stdin(&self, wanted: &str) -> Result<File> {
        let r = self.find(wanted)?;
        if !r.options.interactive {
            return Err(Error::Invalid {
                what: "attach to stdin of",
                value: r.name,
                why: "the container was created without OpenStdin (-i)".into(),
            });
        }
        let path = self.dirs(&r.id).stdin_fifo();
        ensure(&path)?;
        let fd = rustix::fs::open(&path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
            .map_err(std::io::Error::from)
            .ctx("opening the stdin FIFO", &path)?;
        Ok(File::from(fd))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn what_is_written_before_the_reader_opens_is_read_and_then_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c/stdin");
        ensure(&path).unwrap();
        let mut writer = File::from(rustix::fs::open(&path, OFlags::RDWR, Mode::empty()).unwrap());
        writer.write_all(b"hi\n").unwrap();
        let mut reader = File::from(open_for_container(&path, false).unwrap());
        drop(writer);
        let mut got = String::new();
        reader.read_to_string(&mut got).unwrap();
        assert_eq!(got, "hi\n");
        ensure(&path).unwrap();
    }
}
