use std::path::PathBuf;

use estiba_oci::Digest;

/// Errors of the image store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Oci(#[from] estiba_oci::Error),
    #[error(transparent)]
    Os(#[from] estiba_os::Error),
    #[error("blob {0} is not in the store")]
    MissingBlob(Digest),
    #[error("No such image: {0}")]
    NoSuchImage(String),
    #[error("image reference {reference:?} is ambiguous: it matches {count} images")]
    Ambiguous { reference: String, count: usize },
    #[error("image {id} is referenced by {names}; remove the names one by one or use --force")]
    ImageHasNames { id: String, names: String },
    #[error("archive {path:?} is not a docker-archive, oci-archive or OCI layout: {why}")]
    UnknownArchive { path: PathBuf, why: String },
    #[error("archive entry {0:?} is missing")]
    MissingEntry(String),
    #[error("{what} is malformed")]
    Malformed {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error(
        "layer {index} of image {image}: diff id {actual} does not match the config's {expected}"
    )]
    DiffIdMismatch {
        image: String,
        index: usize,
        expected: Digest,
        actual: Digest,
    },
    #[error("no manifest in the archive matches platform {0}")]
    NoPlatform(String),
}

estiba_os::io_context!(Error);
