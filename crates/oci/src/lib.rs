//! OCI image formats, as estiba reads them from untrusted sources.
//!
//! This crate owns the *shape* of images: digests, image references, media
//! types, and the safe unpacking of layer tarballs into a directory. It knows
//! nothing about where images are stored (that is `estiba-store`) or how
//! containers run (that is `estiba-runtime`).
//!
//! Everything here treats its input as hostile: references and digests are
//! validated against the specs' grammars, and [`unpack`] never writes outside
//! the directory it is given, whatever the layer says.
#![forbid(unsafe_code)]

mod compression;
mod digest;
mod error;
pub mod reference;
pub mod unpack;

pub use compression::{decompress, Compression};
pub use digest::{Algorithm, Digest, DigestReader, DigestWriter, Hasher};
pub use error::Error;
pub use reference::Reference;

/// Media types estiba writes or recognises.
pub mod media {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
