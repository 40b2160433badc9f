//! Where the registry keeps its content. The server speaks only to the
//! [`Storage`] trait, so a backend on an object store (the S3 API) can sit
//! beside the filesystem one. Methods block: the server calls them from
//! tokio's blocking pool.
//!
//! Two rules every backend keeps:
//! - a blob becomes visible only after its digest was verified, in one
//!   atomic step, so a crash never leaves a corrupt blob that is served;
//! - blobs are global and content-addressed (one copy across repositories);
//!   a repository holds links to them, which is what access control checks.

mod fs;

use std::collections::BTreeMap;
use std::io::{Read, Seek};
use std::time::SystemTime;

pub use fs::FsStorage;
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::Result;

/// An OCI content descriptor, as the referrers API lists them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A manifest's place in a repository.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestLink {
    pub media_type: String,
    pub size: u64,
    /// When it was pushed, RFC 3339: lifecycle policies sort by it.
    pub pushed: String,
}

/// A readable blob and its size.
pub struct BlobReader {
    pub reader: Box<dyn ReadSeek>,
    pub size: u64,
}

pub trait ReadSeek: Read + Seek + Send {}
impl<T: Read + Seek + Send> ReadSeek for T {}

pub trait Storage: Send + Sync + 'static {
    // Blobs, shared by all repositories.
    fn blob_size(&self, digest: &Digest) -> Result<Option<u64>>;
    fn open_blob(&self, digest: &Digest) -> Result<Option<BlobReader>>;
    /// Stores small content (a manifest) whose digest the caller computed.
    fn put_blob(&self, digest: &Digest, data: &[u8]) -> Result<()>;
    fn delete_blob(&self, digest: &Digest) -> Result<()>;
    /// Marks a blob as recently needed, so garbage collection spares it for
    /// its grace window.
    fn touch_blob(&self, digest: &Digest) -> Result<()>;
    /// Every blob and when it was last needed.
    fn blobs(&self) -> Result<Vec<(Digest, SystemTime)>>;
    /// When one blob was last needed; None if it is not there.
    fn blobs_last_used(&self, digest: &Digest) -> Result<Option<SystemTime>>;

    // Uploads: resumable, and kept across restarts.
    fn start_upload(&self, repo: &str) -> Result<String>;
    /// The repository an upload belongs to, or None if there is no such upload.
    fn upload_repo(&self, id: &str) -> Result<Option<String>>;
    fn upload_offset(&self, id: &str) -> Result<u64>;
    /// Appends to an upload; `start` (from Content-Range) must equal the
    /// current offset. Returns the new offset.
    fn append_upload(&self, id: &str, start: Option<u64>, data: &mut dyn Read) -> Result<u64>;
    /// Verifies the upload against `expected` and makes it a blob. Returns
    /// its size.
    fn finish_upload(&self, id: &str, expected: &Digest) -> Result<u64>;
    fn cancel_upload(&self, id: &str) -> Result<()>;
    /// Every upload and when it last changed.
    fn uploads(&self) -> Result<Vec<(String, SystemTime)>>;

    // Repositories.
    fn repositories(&self) -> Result<Vec<String>>;
    fn repository_exists(&self, repo: &str) -> Result<bool>;
    fn create_repository(&self, repo: &str) -> Result<()>;
    fn delete_repository(&self, repo: &str) -> Result<()>;
    fn link_blob(&self, repo: &str, digest: &Digest) -> Result<()>;
    fn blob_linked(&self, repo: &str, digest: &Digest) -> Result<bool>;
    fn unlink_blob(&self, repo: &str, digest: &Digest) -> Result<()>;
    /// Removes a repository's links to blobs that are gone; returns how many.
    fn prune_blob_links(&self, repo: &str) -> Result<usize>;

    fn put_manifest_link(&self, repo: &str, digest: &Digest, link: &ManifestLink) -> Result<()>;
    fn manifest_link(&self, repo: &str, digest: &Digest) -> Result<Option<ManifestLink>>;
    fn manifests(&self, repo: &str) -> Result<Vec<(Digest, ManifestLink)>>;
    fn delete_manifest_link(&self, repo: &str, digest: &Digest) -> Result<bool>;

    fn tag(&self, repo: &str, tag: &str) -> Result<Option<Digest>>;
    fn set_tag(&self, repo: &str, tag: &str, digest: &Digest) -> Result<()>;
    fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool>;
    /// Tags in lexical order.
    fn tags(&self, repo: &str) -> Result<Vec<String>>;

    fn add_referrer(&self, repo: &str, subject: &Digest, referrer: &Descriptor) -> Result<()>;
    fn remove_referrer(&self, repo: &str, subject: &Digest, referrer: &Digest) -> Result<()>;
    fn referrers(&self, repo: &str, subject: &Digest) -> Result<Vec<Descriptor>>;

    /// A repository's settings document (immutability, lifecycle, ...).
    fn repository_settings(&self, repo: &str) -> Result<Option<Vec<u8>>>;
    fn set_repository_settings(&self, repo: &str, data: &[u8]) -> Result<()>;
}
