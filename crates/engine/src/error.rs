/// Errors of the container lifecycle.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] estiba_store::Error),
    #[error(transparent)]
    Os(#[from] estiba_os::Error),
    #[error(transparent)]
    Events(#[from] estiba_events::Error),
    #[error(transparent)]
    Net(#[from] estiba_net::Error),
    #[error(transparent)]
    Runtime(#[from] estiba_runtime::Error),
    #[error(transparent)]
    Oci(#[from] estiba_oci::Error),
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    #[error("container reference {reference:?} is ambiguous: it matches {count} containers")]
    Ambiguous { reference: String, count: usize },
    #[error("the container name {name:?} is already in use by container {id}")]
    NameInUse { name: String, id: String },
    #[error("invalid {what} {value:?}: {why}")]
    Invalid {
        what: &'static str,
        value: String,
        why: String,
    },
    /// The admission policy refused the container.
    #[error("{0}")]
    Refused(String),
    #[error("container {id} is running: stop it first or use --force")]
    Running { id: String },
    #[error("container {name} is not running")]
    NotRunning { name: String },
    #[error("container {name} is already running")]
    AlreadyRunning { name: String },
    #[error("container {id} failed to start: {message}")]
    StartFailed {
        id: String,
        code: u8,
        message: String,
    },
    #[error("Containerfile line {line}: {message}")]
    Build { line: usize, message: String },
    #[error("container record {0:?} is malformed")]
    Record(std::path::PathBuf, #[source] serde_json::Error),
}

impl Error {
    /// docker's exit codes: 126/127 when the command cannot run, 125 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Runtime(e) => e.exit_code(),
            Error::StartFailed { code, .. } => *code,
            _ => 125,
        }
    }
}

estiba_os::io_context!(Error);
