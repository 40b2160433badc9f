//! The operating-system helpers every estiba crate shares, in one place so
//! that each is written (and fixed) once:
//!
//! - `fs`: writes through a temp file and a rename (`write_atomic`,
//!   `write_private`), creation that never replaces (`create_exclusive`),
//!   and tree removal that never follows symlinks (`remove_tree`);
//! - `lock`: flock(2)-held lock files;
//! - `process`: a process named for good by its pid and start time;
//! - `random_hex` for ids and temp names, and `which` for PATH lookups.
//!
//! It knows nothing of images, containers or networks.
#![forbid(unsafe_code)]

pub mod fs;
pub mod lock;
pub mod process;

use std::path::PathBuf;

pub use fs::{create_exclusive, remove_tree, write_atomic, write_atomic_unsynced, write_private};
pub use lock::LockFile;
pub use process::ProcessId;

/// A failed file operation, with what was being done and to which path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} {path:?}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Names the operation and path of a failed I/O call. Crates whose errors
/// wrap `estiba_os::Error` use it instead of an I/O variant of their own.
pub trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T, E: Into<std::io::Error>> IoContext<T> for std::result::Result<T, E> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::Io {
            op,
            path: path.into(),
            source: e.into(),
        })
    }
}

/// Declares a crate's own `IoContext` (`.ctx(op, path)`), returning that
/// crate's `Result`: the error is an `estiba_os::Error`, which the crate's
/// error wraps (`Os(#[from] estiba_os::Error)`), so no crate keeps an I/O
/// variant or a conversion of its own. Invoke as
/// `estiba_os::io_context!(Error);` with the crate's error type.
#[macro_export]
macro_rules! io_context {
    ($error:ty) => {
        /// Names the operation and path of a failed I/O call.
        pub(crate) trait IoContext<T> {
            fn ctx(
                self,
                op: &'static str,
                path: impl Into<std::path::PathBuf>,
            ) -> std::result::Result<T, $error>;
        }

        impl<T, E: Into<std::io::Error>> IoContext<T> for std::result::Result<T, E> {
            fn ctx(
                self,
                op: &'static str,
                path: impl Into<std::path::PathBuf>,
            ) -> std::result::Result<T, $error> {
                Ok($crate::IoContext::ctx(self, op, path)?)
            }
        }
    };
}

/// Whether two byte strings are equal, in time that depends only on their
/// lengths: for secrets and signatures, where how long a compare took must
/// not tell how much of a guess was right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Random hex from the kernel (`bytes` random bytes, twice as many digits),
/// for ids and temp names.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    let mut filled = 0;
    while filled < bytes {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            // getrandom(2) fails only on a kernel without it (before 3.17)
            // or with bad arguments; there is no fallback worth trusting.
            Err(e) => panic!("getrandom failed: {e}"),
        }
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Finds an executable in `$PATH`, then in the sbin and bin directories an
/// unprivileged user's PATH often lacks.
pub fn which(name: &str) -> Option<PathBuf> {
    which_in(name, &std::env::var_os("PATH").unwrap_or_default())
}

fn which_in(name: &str, path: &std::ffi::OsStr) -> Option<PathBuf> {
    std::env::split_paths(path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(crate::constant_time_eq(b"abc", b"abc"));
        assert!(!crate::constant_time_eq(b"abc", b"abd"));
        assert!(!crate::constant_time_eq(b"abc", b"ab"));
        assert!(crate::constant_time_eq(b"", b""));
    }
    #[test]
    fn random_ids_have_the_asked_length_and_differ() {
        let (a, b) = (super::random_hex(16), super::random_hex(16));
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn which_searches_the_path_in_order() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::write(b.path().join("tool"), b"").unwrap();
        let path = std::env::join_paths([a.path(), b.path()]).unwrap();
        assert_eq!(super::which_in("tool", &path), Some(b.path().join("tool")));
        std::fs::write(a.path().join("tool"), b"").unwrap();
        assert_eq!(super::which_in("tool", &path), Some(a.path().join("tool")));
        assert!(super::which_in("surely-no-such-program-here", &path).is_none());
    }
}
