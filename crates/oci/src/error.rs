use std::path::PathBuf;

/// Errors of the OCI format layer. Messages never repeat their source: the
/// binary prints the whole chain once.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid digest {digest:?}: {why}")]
    InvalidDigest { digest: String, why: String },
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: String, actual: String },
    #[error("invalid image reference {reference:?}: {why}")]
    InvalidReference {
        reference: String,
        why: &'static str,
    },
    #[error("layer entry {path:?} would escape the root: {why}")]
    Escape { path: String, why: &'static str },
    #[error("layer entry {path:?}: unsupported type {kind}")]
    UnsupportedEntry { path: String, kind: String },
    #[error("unpacking layer entry {path:?}")]
    UnpackEntry {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading layer")]
    ReadLayer(#[source] std::io::Error),
    #[error("malformed JSON in {what}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}
