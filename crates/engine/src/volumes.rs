//! Named volumes: directories under `<data>/volumes/<name>/_data` that
//! outlive their containers. A new volume is filled from the image's content
//! at its mount point on first use, as docker does. An encrypted volume's
//! `_data` is the plaintext view of its ciphertext, there only while a
//! container uses it (`crypt.rs`).

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use serde::{Deserialize, Serialize};

use crate::crypt::{self, Encryption, Layout};
use crate::error::IoContext;
use crate::record::ContainerRecord;
use crate::secrets::Secrets;
use crate::{Error, Result};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Volume {
    pub name: String,
    pub driver: String,
    pub mountpoint: PathBuf,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
}

#[derive(Clone, Debug)]
pub struct Volumes {
    root: PathBuf,
    events: estiba_events::Journal,
    /// Seals encrypted volumes' keys.
    secrets: Secrets,
}

/// How old a `.new-*` directory must be to count as a crashed create's.
const ABANDONED: std::time::Duration = std::time::Duration::from_secs(600);

/// docker's volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() >= 2
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

impl Volumes {
    pub fn new(data: &Path) -> Self {
        Volumes {
            root: data.join("volumes"),
            events: estiba_events::Journal::new(data),
            secrets: Secrets::new(data),
        }
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub fn get(&self, name: &str) -> Result<Volume> {
        let path = self.dir(name).join("volume.json");
        let data = fs::read(&path).map_err(|_| Error::Invalid {
            what: "volume",
            value: name.to_string(),
            why: "no such volume".into(),
        })?;
        serde_json::from_slice(&data).map_err(|e| Error::Record(path, e))
    }

    /// Creates the volume; returns it and whether it is new.
    pub fn create(&self, name: &str) -> Result<(Volume, bool)> {
        self.create_with(name, None)
    }

    /// Creates the volume, encrypted if asked; an existing volume is
    /// returned as it is, unless it lacks the encryption asked for.
    pub fn create_with(
        &self,
        name: &str,
        encryption: Option<Encryption>,
    ) -> Result<(Volume, bool)> {
        if !valid_name(name) {
            return Err(Error::Invalid {
                what: "volume name",
                value: name.to_string(),
                why: "names are [a-zA-Z0-9][a-zA-Z0-9_.-]+".into(),
            });
        }
        if let Ok(v) = self.get(name) {
            if encryption.is_some() && v.encryption.is_none() {
                return Err(Error::Invalid {
                    what: "volume",
                    value: name.to_string(),
                    why: "exists, unencrypted".into(),
                });
            }
            return Ok((v, false));
        }
        let dir = self.dir(name);
        let volume = Volume {
            name: name.to_string(),
            driver: "local".into(),
            mountpoint: dir.join("_data"),
            created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            encryption,
        };
        // Made whole under a temporary name, then renamed into place: a
        // crash leaves no half-made volume, and of two racing creates the
        // second finds the first's (rename onto a full directory fails).
        fs::create_dir_all(&self.root).ctx("creating", &self.root)?;
        self.sweep_abandoned();
        let tmp = self
            .root
            .join(format!(".new-{name}-{}", estiba_os::random_hex(4)));
        let made = self.fill(&tmp, &volume);
        let placed = made.and_then(|()| {
            // A directory without its volume.json was left half-made by a
            // crash of an older estiba, which made `_data` first: no
            // container was ever given it.
            if dir.is_dir() && !dir.join("volume.json").exists() {
                estiba_os::remove_tree(&dir).ctx("removing", &dir)?;
            }
            match fs::rename(&tmp, &dir) {
                Err(_) if self.get(name).is_ok() => Ok(false),
                other => other.ctx("creating", &dir).map(|()| true),
            }
        });
        let _ = estiba_os::remove_tree(&tmp);
        if !placed? {
            return Ok((self.get(name)?, false));
        }
        self.event(estiba_events::Action::Create, name);
        Ok((volume, true))
    }

    /// Removes what creates that crashed left (`.new-*` directories older
    /// than [`ABANDONED`]: a create in progress takes milliseconds).
    fn sweep_abandoned(&self) {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return;
        };
        for e in entries.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > ABANDONED);
            if old && e.file_name().to_string_lossy().starts_with(".new-") {
                let _ = estiba_os::remove_tree(&e.path());
            }
        }
    }

    /// Writes a new volume's files into `dir`.
    fn fill(&self, dir: &Path, volume: &Volume) -> Result<()> {
        fs::create_dir_all(dir.join("_data")).ctx("creating", dir)?;
        if let Some(enc) = &volume.encryption {
            crypt::init(&Layout::new(dir), enc, &self.secrets)?;
        }
        let json = serde_json::to_vec_pretty(volume)
            .map_err(|e| Error::Record(dir.join("volume.json"), e))?;
        Ok(estiba_os::write_atomic(&dir.join("volume.json"), &json)?)
    }

    /// Opens the encrypted volumes a container mounts, for this process
    /// (which holds the container). Call from the mount namespace that
    /// later commands and monitors share.
    pub fn open_for(&self, r: &ContainerRecord) -> Result<()> {
        for v in self.encrypted_of(r) {
            crypt::open(&Layout::new(&self.dir(&v.name)), &self.secrets, &v.name)?;
        }
        Ok(())
    }

    /// This process no longer holds the container: closes its encrypted
    /// volumes that no other container holds.
    pub fn close_for(&self, r: &ContainerRecord) {
        for v in self.encrypted_of(r) {
            let _ = crypt::close(&Layout::new(&self.dir(&v.name)));
        }
    }

    fn encrypted_of(&self, r: &ContainerRecord) -> Vec<Volume> {
        r.options
            .mounts
            .iter()
            .filter_map(|m| match m {
                crate::options::MountSpec::Volume { name, .. } => self.get(name).ok(),
                _ => None,
            })
            .filter(|v| v.encryption.is_some())
            .collect()
    }

    /// Refuses to hand out an encrypted volume's directory while its
    /// plaintext is not mounted there: what a container wrote would
    /// land on the disk in clear.
    pub fn ready(&self, v: &Volume) -> Result<()> {
        if v.encryption.is_some() && !crypt::is_open(&Layout::new(&self.dir(&v.name))) {
            return Err(Error::Invalid {
                what: "encrypted volume",
                value: v.name.clone(),
                why: "is not open".into(),
            });
        }
        Ok(())
    }

    pub fn list(&self) -> Vec<Volume> {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return Vec::new();
        };
        // Not the `.new-*` directories of creates in progress.
        let mut out: Vec<Volume> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| valid_name(n))
            .filter_map(|n| self.get(&n).ok())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Removes a volume no container uses (unless `force`).
    pub fn remove(&self, name: &str, users: &[ContainerRecord], force: bool) -> Result<()> {
        let volume = self.get(name)?;
        if let Some(user) = users.iter().find(|r| uses(r, name)) {
            if !force {
                return Err(Error::Invalid {
                    what: "volume",
                    value: name.to_string(),
                    why: format!("in use by container {}", user.name),
                });
            }
        }
        if volume.encryption.is_some() {
            let layout = Layout::new(&self.dir(name));
            if crypt::in_use(&layout) && !force {
                return Err(Error::Invalid {
                    what: "volume",
                    value: name.to_string(),
                    why: "is open for a running container".into(),
                });
            }
            crypt::shut(&layout);
            if crypt::is_open(&layout) {
                return Err(Error::Invalid {
                    what: "volume",
                    value: name.to_string(),
                    why: "could not be closed".into(),
                });
            }
            // The key first: without it the ciphertext is noise, even
            // if removing the rest fails half-way.
            fs::remove_file(layout.key()).ctx("removing", layout.key())?;
        }
        estiba_os::remove_tree(&self.dir(name)).ctx("removing", self.dir(name))?;
        self.event(estiba_events::Action::Destroy, name);
        Ok(())
    }

    fn event(&self, action: estiba_events::Action, name: &str) {
        self.events.emit(
            estiba_events::Event::new(estiba_events::Kind::Volume, action, name)
                .with("driver", "local"),
        );
    }
}

/// Whether a container mounts the named volume.
pub fn uses(r: &ContainerRecord, name: &str) -> bool {
    r.options
        .mounts
        .iter()
        .any(|m| matches!(m, crate::options::MountSpec::Volume { name: n, .. } if n == name))
}

/// Copies the image's content at `container_path` (resolved inside `rootfs`,
/// so a symlink in the image cannot point the copy at the host) into an
/// empty volume, keeping owners, modes and symlinks.
pub fn populate(rootfs: &Path, container_path: &str, volume: &Path) -> Result<()> {
    let root = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx("opening", rootfs)?;
    let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let Ok(src) = rustix::fs::openat2(
        &root,
        container_path.trim_start_matches('/'),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        how,
    ) else {
        return Ok(()); // nothing there in the image
    };
    let src_path = PathBuf::from(format!("/proc/self/fd/{}", src.as_raw_fd()));
    copy_tree(&src_path, volume)?;
    // The volume's root takes the owner and mode of the image's directory.
    let meta = fs::metadata(&src_path).ctx("reading", &src_path)?;
    fs::set_permissions(volume, meta.permissions()).ctx("setting mode", volume)?;
    std::os::unix::fs::lchown(volume, Some(meta.uid()), Some(meta.gid()))
        .ctx("setting owner", volume)
}

fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    for entry in fs::read_dir(src).ctx("reading", src)? {
        let entry = entry.ctx("reading", src)?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let meta = fs::symlink_metadata(&from).ctx("reading", &from)?;
        let kind = meta.file_type();
        if kind.is_symlink() {
            let target = fs::read_link(&from).ctx("reading", &from)?;
            std::os::unix::fs::symlink(target, &to).ctx("creating", &to)?;
        } else if kind.is_dir() {
            fs::create_dir(&to).ctx("creating", &to)?;
            copy_tree(&from, &to)?;
            fs::set_permissions(&to, meta.permissions()).ctx("setting mode", &to)?;
        } else if kind.is_file() {
            fs::copy(&from, &to).ctx("copying", &to)?;
        } else {
            continue; // devices, fifos and sockets stay in the image
        }
        std::os::unix::fs::lchown(&to, Some(meta.uid()), Some(meta.gid()))
            .ctx("setting owner", &to)?;
    }
    Ok(())
}

/// True if the directory has no entries.
pub fn is_empty(dir: &Path) -> bool {
    fs::read_dir(dir)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_crashed_create_left_is_swept_by_the_next_create() {
        let dir = tempfile::tempdir().unwrap();
        let volumes = Volumes::new(dir.path());
        let left = dir.path().join("volumes/.new-x-0001");
        let busy = dir.path().join("volumes/.new-y-0002");
        for d in [&left, &busy] {
            fs::create_dir_all(d.join("_data")).unwrap();
        }
        let long_ago = std::time::SystemTime::now() - ABANDONED * 2;
        fs::File::open(&left)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        volumes.create("data").unwrap();
        assert!(!left.exists(), "an abandoned create is swept");
        assert!(busy.exists(), "one that may be in progress stays");
    }

    #[test]
    fn created_whole_once_and_listed_without_creates_in_progress() {
        let dir = tempfile::tempdir().unwrap();
        let volumes = Volumes::new(dir.path());
        // Half made by an older estiba's crash: no volume.json.
        fs::create_dir_all(dir.path().join("volumes/data/_data")).unwrap();
        fs::create_dir_all(dir.path().join("volumes/.new-x-0000/_data")).unwrap();
        fs::write(dir.path().join("volumes/.new-x-0000/volume.json"), b"{}").unwrap();
        let (v, new) = volumes.create("data").unwrap();
        assert!(new && v.mountpoint.is_dir());
        assert!(!volumes.create("data").unwrap().1);
        let names: Vec<String> = volumes.list().into_iter().map(|v| v.name).collect();
        assert_eq!(names, ["data"]);
        assert!(volumes.create(".hidden").is_err());
    }
}
