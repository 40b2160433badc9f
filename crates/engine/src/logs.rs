//! Container logs in docker's json-file format, one JSON object per line:
//! `{"log":"text\n","stream":"stdout","time":"2026-11-27T08:00:00.000000000Z"}`.
//! The monitor writes them with a size cap and one rotated file; `logs`
//! reads them back.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Rotate when the current file passes this size (docker's max-size).
pub const MAX_LOG_BYTES: u64 = 10 << 20;

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct LogLine {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// Appends lines to `container.log`, moving it to `container.log.1` when full.
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    max: u64,
    /// Partial lines per stream (stdout, stderr), flushed at a newline.
    pending: [Vec<u8>; 2],
}

impl LogWriter {
    pub fn open(path: &Path, max: u64) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            path: path.to_path_buf(),
            file,
            size,
            max,
            pending: [Vec::new(), Vec::new()],
        })
    }

    /// Takes a chunk read from the container's stdout (0) or stderr (1).
    pub fn write(&mut self, stream: usize, data: &[u8]) -> std::io::Result<()> {
        self.pending[stream].extend_from_slice(data);
        while let Some(pos) = self.pending[stream].iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending[stream].drain(..=pos).collect();
            self.emit(stream, &line)?;
        }
        // A very long line is cut rather than held in memory.
        if self.pending[stream].len() >= 16 * 1024 {
            let line = std::mem::take(&mut self.pending[stream]);
            self.emit(stream, &line)?;
        }
        Ok(())
    }

    /// Writes out what is left of unterminated lines.
    pub fn flush(&mut self) -> std::io::Result<()> {
        for stream in 0..2 {
            if !self.pending[stream].is_empty() {
                let line = std::mem::take(&mut self.pending[stream]);
                self.emit(stream, &line)?;
            }
        }
        Ok(())
    }

    fn emit(&mut self, stream: usize, line: &[u8]) -> std::io::Result<()> {
        let record = LogLine {
            log: String::from_utf8_lossy(line).into_owned(),
            stream: if stream == 0 { "stdout" } else { "stderr" }.to_string(),
            time: humantime::format_rfc3339_nanos(SystemTime::now()).to_string(),
        };
        let mut data = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
        data.push(b'\n');
        if self.size + data.len() as u64 > self.max && self.size > 0 {
            self.rotate()?;
        }
        self.file.write_all(&data)?;
        self.size += data.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        fs::rename(&self.path, self.path.with_extension("log.1"))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// All log lines, oldest first (the rotated file, then the current one).
pub fn read_all(path: &Path) -> Vec<LogLine> {
    let mut out = Vec::new();
    for p in [path.with_extension("log.1"), path.to_path_buf()] {
        if let Ok(f) = File::open(&p) {
            out.extend(
                BufReader::new(f)
                    .lines()
                    .map_while(Result::ok)
                    .filter_map(|l| serde_json::from_str(&l).ok()),
            );
        }
    }
    out
}

/// Reads lines appended to the current file after `offset`; returns them and
/// the new offset. A rotation (the file shrank) restarts from its beginning.
pub fn read_from(path: &Path, offset: u64) -> (Vec<LogLine>, u64) {
    use std::io::{Seek, SeekFrom};
    let Ok(mut f) = File::open(path) else {
        return (Vec::new(), offset);
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = if len < offset { 0 } else { offset };
    if f.seek(SeekFrom::Start(start)).is_err() {
        return (Vec::new(), offset);
    }
    let mut reader = BufReader::new(f);
    let mut lines = Vec::new();
    let mut pos = start;
    let mut buf = String::new();
    loop {
        buf.clear();
        match reader.read_line(&mut buf) {
            Ok(0) | Err(_) => break,
            // A line still being written has no newline yet: leave it.
            Ok(_) if !buf.ends_with('\n') => break,
            Ok(n) => {
                pos += n as u64;
                if let Ok(l) = serde_json::from_str(&buf) {
                    lines.push(l);
                }
            }
        }
    }
    (lines, pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_and_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        let mut w = LogWriter::open(&path, 300).unwrap();
        w.write(0, b"hello\nwor").unwrap();
        w.write(1, b"oops\n").unwrap();
        w.write(0, b"ld\n").unwrap();
        let lines = read_all(&path);
        let text: Vec<(&str, &str)> = lines
            .iter()
            .map(|l| (l.stream.as_str(), l.log.as_str()))
            .collect();
        assert_eq!(
            text,
            [
                ("stdout", "hello\n"),
                ("stderr", "oops\n"),
                ("stdout", "world\n")
            ]
        );
        for i in 0..10 {
            w.write(0, format!("line {i}\n").as_bytes()).unwrap();
        }
        assert!(path.with_extension("log.1").exists(), "rotated");
        assert!(fs::metadata(&path).unwrap().len() <= 300);
        let (tail, _) = read_from(&path, 0);
        assert_eq!(tail.last().unwrap().log, "line 9\n");
    }
}
