//! The journal's files and the two ways to use them: append (any process
//! that causes an event) and follow (any process that wants them).

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use estiba_os::IoContext;

use crate::{Event, Result};

/// The current file, the one before it, and the lock writers hold.
const CURRENT: &str = "events.log";
const PREVIOUS: &str = "events.log.1";
const LOCK: &str = "events.lock";

/// The size past which the current file is rotated: the journal keeps at
/// most about twice this.
pub const DEFAULT_CAP: u64 = 8 << 20;

/// One store's journal, `<data>/events/`.
#[derive(Clone, Debug)]
pub struct Journal {
    dir: PathBuf,
    cap: u64,
}

/// Where a follower starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// With the oldest event kept.
    Beginning,
    /// With the next event written.
    End,
}

impl Journal {
    pub fn new(data: &Path) -> Journal {
        Journal {
            dir: data.join("events"),
            cap: DEFAULT_CAP,
        }
    }

    /// The same journal, rotated past `cap` bytes.
    pub fn with_cap(mut self, cap: u64) -> Journal {
        self.cap = cap.max(1);
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one event as a JSON line. Writers take the lock, so lines
    /// never interleave and rotation never races an append. If the last
    /// writer died mid-line, this one starts on a fresh line.
    pub fn append(&self, event: &Event) -> Result<()> {
        fs::create_dir_all(&self.dir).ctx("creating", &self.dir)?;
        let _lock = estiba_os::LockFile::exclusive(&self.dir.join(LOCK))?;
        let mut line = serde_json::to_vec(event)
            .map_err(std::io::Error::other)
            .ctx("encoding an event for", &self.dir)?;
        line.push(b'\n');
        let path = self.dir.join(CURRENT);
        let mut file = open_for_append(&path)?;
        let mut len = file.metadata().ctx("reading", &path)?.len();
        if len > 0 && len + line.len() as u64 > self.cap {
            fs::rename(&path, self.dir.join(PREVIOUS)).ctx("rotating", &path)?;
            file = open_for_append(&path)?;
            len = 0;
        }
        let mut last = [0u8];
        if len > 0
            && file.read_at(&mut last, len - 1).ctx("reading", &path)? == 1
            && last[0] != b'\n'
        {
            line.insert(0, b'\n');
        }
        Ok(file.write_all(&line).ctx("appending to", &path)?)
    }

    /// Appends, and logs instead of failing: an event that cannot be
    /// written must never fail the operation it describes.
    pub fn emit(&self, event: Event) {
        if let Err(e) = self.append(&event) {
            tracing::warn!(error = %e, action = %event.action, id = %event.actor.id, "could not journal an event");
        }
    }

    /// Every event kept, oldest first.
    pub fn read_all(&self) -> Vec<Event> {
        let mut out = Vec::new();
        for name in [PREVIOUS, CURRENT] {
            if let Ok(data) = fs::read(self.dir.join(name)) {
                out.extend(parse_lines(&data));
            }
        }
        out
    }

    /// A follower of this journal.
    pub fn follow(&self, start: Start) -> Result<Follower> {
        fs::create_dir_all(&self.dir).ctx("creating", &self.dir)?;
        let mut follower = Follower {
            dir: self.dir.clone(),
            file: None,
            pending: Vec::new(),
            queue: VecDeque::new(),
            notify: watch(&self.dir),
        };
        match start {
            Start::Beginning => {
                // No rotation between the two files: writers wait.
                let _lock = estiba_os::LockFile::shared(&self.dir.join(LOCK))?;
                if let Ok(data) = fs::read(self.dir.join(PREVIOUS)) {
                    follower.queue.extend(parse_lines(&data));
                }
                follower.open_current(false)?;
            }
            Start::End => follower.open_current(true)?,
        }
        Ok(follower)
    }
}

fn open_for_append(path: &Path) -> Result<File> {
    Ok(fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .ctx("opening", path)?)
}

/// The complete, well-formed events in `data`. A torn line (a writer
/// killed mid-line) does not parse, and is skipped.
fn parse_lines(data: &[u8]) -> Vec<Event> {
    data.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect()
}

/// An inotify descriptor watching the journal's directory, or None (then
/// the follower polls).
fn watch(dir: &Path) -> Option<OwnedFd> {
    use rustix::fs::inotify;
    let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK).ok()?;
    let flags =
        inotify::WatchFlags::MODIFY | inotify::WatchFlags::CREATE | inotify::WatchFlags::MOVED_TO;
    inotify::add_watch(&fd, dir, flags).ok()?;
    Some(fd)
}

/// Reads events as they are written, across rotations.
pub struct Follower {
    dir: PathBuf,
    /// The file being read and its inode.
    file: Option<(File, u64)>,
    /// Bytes of a line not yet complete.
    pending: Vec<u8>,
    queue: VecDeque<Event>,
    notify: Option<OwnedFd>,
}

impl Follower {
    /// Opens the current file, at its end or its start. A missing file is
    /// opened once a writer creates it.
    fn open_current(&mut self, at_end: bool) -> Result<()> {
        let path = self.dir.join(CURRENT);
        match File::open(&path) {
            Ok(mut f) => {
                let ino = f.metadata().ctx("reading", &path)?.ino();
                if at_end {
                    f.seek(SeekFrom::End(0)).ctx("reading", &path)?;
                }
                self.file = Some((f, ino));
                self.pending.clear();
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.file = None,
            Err(source) => {
                return Err(estiba_os::Error::Io {
                    op: "opening",
                    path,
                    source,
                }
                .into())
            }
        }
        Ok(())
    }

    /// Reads what is new: to the end of the file, then into the next file
    /// if the current one was rotated away.
    fn pump(&mut self) -> Result<()> {
        let path = self.dir.join(CURRENT);
        loop {
            // The inode before reading: if the file was rotated away, every
            // line of the old one is in it by now (writers append only to
            // the file at the path, under the lock), so the read below gets
            // them all before the switch.
            let now = fs::metadata(&path).ok().map(|m| m.ino());
            if let Some((file, _)) = &mut self.file {
                let mut buf = Vec::new();
                file.read_to_end(&mut buf).ctx("reading", &path)?;
                self.pending.extend_from_slice(&buf);
                if let Some(end) = self.pending.iter().rposition(|b| *b == b'\n') {
                    let complete: Vec<u8> = self.pending.drain(..=end).collect();
                    self.queue.extend(parse_lines(&complete));
                }
            }
            let ours = self.file.as_ref().map(|(_, ino)| *ino);
            if now.is_some() && now != ours {
                self.open_current(false)?;
                continue;
            }
            return Ok(());
        }
    }

    /// The next event, waiting at most `timeout`; None if none came.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Event>> {
        let deadline = Instant::now() + timeout;
        let mut backoff = Duration::from_millis(10);
        loop {
            if let Some(e) = self.queue.pop_front() {
                return Ok(Some(e));
            }
            self.pump()?;
            if let Some(e) = self.queue.pop_front() {
                return Ok(Some(e));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            // inotify wakes us at once; a timed poll catches anything it
            // cannot see. Without inotify, poll with a back-off.
            let wait = match &self.notify {
                Some(_) => left.min(Duration::from_secs(1)),
                None => left.min(backoff),
            };
            self.wait(wait);
            backoff = (backoff * 2).min(Duration::from_millis(250));
        }
    }

    fn wait(&self, wait: Duration) {
        match &self.notify {
            Some(fd) => {
                let mut fds = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
                let ts = rustix::event::Timespec {
                    tv_sec: i64::try_from(wait.as_secs()).unwrap_or(i64::MAX),
                    tv_nsec: i64::from(wait.subsec_nanos()),
                };
                let _ = rustix::event::poll(&mut fds, Some(&ts));
                // Drain: the content is not needed, only the wake-up.
                let mut buf = [0u8; 4096];
                while matches!(rustix::io::read(fd, &mut buf), Ok(n) if n > 0) {}
            }
            None => std::thread::sleep(wait),
        }
    }
}

impl Iterator for Follower {
    type Item = Result<Event>;

    /// Blocks until the next event.
    fn next(&mut self) -> Option<Result<Event>> {
        loop {
            match self.next_timeout(Duration::from_secs(3600)) {
                Ok(Some(e)) => return Some(Ok(e)),
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Action, Kind};

    fn event(i: usize) -> Event {
        Event::new(Kind::Container, Action::Start, format!("c{i}"))
    }

    #[test]
    fn appended_events_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        for i in 0..5 {
            j.append(&event(i)).unwrap();
        }
        let ids: Vec<String> = j.read_all().into_iter().map(|e| e.actor.id).collect();
        assert_eq!(ids, ["c0", "c1", "c2", "c3", "c4"]);
    }

    /// A writer killed mid-line leaves a torn line: it is skipped, and the
    /// next event still reads, for readers and for followers.
    #[test]
    fn a_torn_line_is_skipped_and_the_journal_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        j.append(&event(0)).unwrap();
        let mut follower = j.follow(Start::Beginning).unwrap();
        let whole = serde_json::to_vec(&event(1)).unwrap();
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(j.dir().join(CURRENT))
            .unwrap();
        f.write_all(&whole[..whole.len() / 2]).unwrap();
        j.append(&event(2)).unwrap();
        let ids: Vec<String> = j.read_all().into_iter().map(|e| e.actor.id).collect();
        assert_eq!(ids, ["c0", "c2"]);
        let followed: Vec<String> = (0..2)
            .map(|_| {
                follower
                    .next_timeout(Duration::from_secs(5))
                    .unwrap()
                    .unwrap()
                    .actor
                    .id
            })
            .collect();
        assert_eq!(followed, ["c0", "c2"]);
    }

    #[test]
    fn rotation_keeps_the_cap_and_followers_cross_it() {
        let dir = tempfile::tempdir().unwrap();
        let one = serde_json::to_vec(&event(10)).unwrap().len() as u64 + 1;
        let j = Journal::new(dir.path()).with_cap(one * 3);
        let mut follower = j.follow(Start::End).unwrap();
        for i in 10..20 {
            j.append(&event(i)).unwrap();
        }
        for name in [CURRENT, PREVIOUS] {
            assert!(fs::metadata(j.dir().join(name)).unwrap().len() <= one * 3);
        }
        // What is kept: the newest events, in order.
        let kept: Vec<String> = j.read_all().into_iter().map(|e| e.actor.id).collect();
        assert_eq!(kept.last().unwrap(), "c19");
        // A follower that kept up saw every one (it reads as it goes here,
        // once the writes are done it sees the files as they are).
        let mut seen = Vec::new();
        while let Some(e) = follower.next_timeout(Duration::from_millis(200)).unwrap() {
            seen.push(e.actor.id);
        }
        assert_eq!(seen.last().unwrap(), "c19");
        for pair in seen.windows(2) {
            assert!(pair[0] < pair[1], "out of order: {seen:?}");
        }
    }

    #[test]
    fn followers_wake_for_new_events_from_other_writers() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        let mut follower = j.follow(Start::End).unwrap();
        let writer = {
            let j = j.clone();
            std::thread::spawn(move || {
                for i in 0..20 {
                    j.append(&event(i)).unwrap();
                }
            })
        };
        let mut seen = 0;
        while seen < 20 {
            follower
                .next_timeout(Duration::from_secs(10))
                .unwrap()
                .expect("an event within the deadline");
            seen += 1;
        }
        writer.join().unwrap();
    }
}
