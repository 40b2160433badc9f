//! The local image store.
//!
//! Layout under the store root (`/var/lib/estiba` as root,
//! `$XDG_DATA_HOME/estiba` rootless):
//!
//! ```text
//! blobs/sha256/<hex>   content-addressed blobs: manifests, configs, layers
//! ingest/              temp files; a blob is renamed out only once verified
//! layers/<diff-id>/    one unpacked copy of each layer, shared by all images
//! images.json          image records and their names, replaced atomically
//! signed/<id-hex>      images whose cosign signature a pull verified (the
//!                      manifest digest it signed), for the policy at run
//! lock                 flock: shared by writers of content, exclusive for prune
//! ```
//!
//! Crash safety comes from ordering: blobs and layers become visible only by
//! rename after their digest is verified, and an image becomes visible only
//! when `images.json` is replaced after all of its content is in place. A
//! `kill -9` leaves at most unreferenced files, which `prune` removes.
//!
//! The store does not know about containers; the runtime asks it for the layer
//! directories of an image and stacks them.
#![forbid(unsafe_code)]

mod archive;
mod blobs;
mod error;
mod index;
mod layers;
mod load;
mod lock;
mod save;

use std::path::{Path, PathBuf};

pub use error::Error;
pub use index::ImageRecord;
pub use load::{host_arch, Loaded};
pub use save::Pruned;

use error::IoContext;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The image store rooted at one directory.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
    rootless: bool,
    /// The engine's journal, beside the store (`<data>/events`): image
    /// events are journaled where they happen.
    events: estiba_events::Journal,
}

impl Store {
    /// Opens (creating if needed) the store at `root`. `rootless` selects the
    /// overlay whiteout format usable inside a user namespace and skips device
    /// nodes.
    pub fn open(root: &Path, rootless: bool) -> Result<Self> {
        for dir in ["blobs/sha256", "ingest", "layers"] {
            let p = root.join(dir);
            std::fs::create_dir_all(&p).ctx("creating", &p)?;
        }
        Ok(Store {
            root: root.to_path_buf(),
            rootless,
            events: estiba_events::Journal::new(root.parent().unwrap_or(root)),
        })
    }

    /// Journals an event about an image (`pull`, `push`, …): by id, with
    /// its name.
    pub fn image_event(
        &self,
        action: estiba_events::Action,
        id: &estiba_oci::Digest,
        name: Option<&str>,
    ) {
        let mut e = estiba_events::Event::new(estiba_events::Kind::Image, action, id.to_string());
        if let Some(name) = name {
            e = e.with("name", name);
        }
        self.events.emit(e);
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn rootless(&self) -> bool {
        self.rootless
    }
}
