/// Errors of the runtime layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op}")]
    Sys {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid {what} {value:?}: {why}")]
    InvalidOption {
        what: &'static str,
        value: String,
        why: String,
    },
    #[error("seccomp profile {0}")]
    Seccomp(String),
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoSuchUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    NoSuchGroup(String),
    #[error("OCI runtime {runtime} failed to {op}: {message}")]
    Runtime {
        runtime: String,
        op: &'static str,
        message: String,
    },
    #[error("no OCI runtime found: install runc, or pass --runtime PATH")]
    NoRuntime,
    #[error("{0}: executable file not found in $PATH")]
    CommandNotFound(String),
    #[error("{0}: permission denied")]
    CommandNotExecutable(String),
    #[error("user namespace setup: {0}")]
    UserNamespace(String),
    #[error(transparent)]
    Oci(#[from] estiba_oci::Error),
    #[error(transparent)]
    Os(#[from] estiba_os::Error),
}

impl Error {
    /// The exit code docker uses for this failure: 127 when the command is not
    /// found, 126 when it cannot be invoked, 125 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::CommandNotFound(_) => 127,
            Error::CommandNotExecutable(_) => 126,
            _ => 125,
        }
    }
}

estiba_os::io_context!(Error);

/// Names the system call that failed, for errors that have no path.
pub(crate) trait SysContext<T> {
    fn sys(self, op: &'static str) -> Result<T, Error>;
}

impl<T, E: Into<std::io::Error>> SysContext<T> for Result<T, E> {
    fn sys(self, op: &'static str) -> Result<T, Error> {
        self.map_err(|e| Error::Sys {
            op,
            source: e.into(),
        })
    }
}
