/// What can go wrong in an audit: the input, never the findings.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: line {line}: {message}")]
    Containerfile {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    TaskDefinition { path: String, message: String },
    #[error("image {image}: {message}")]
    Image { image: String, message: String },
    #[error("{path}: line {line}: {message}")]
    Ignore {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Policy { path: String, message: String },
    #[error("no rule is named {0:?} (estiba's id, or cis:ID, owasp:ID, dockle:ID, trivy:ID, hadolint:ID)")]
    UnknownRule(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
