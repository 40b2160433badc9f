//! Secrets: small files given to containers at `/run/secrets/NAME`.
//!
//! At rest a secret is sealed with ChaCha20-Poly1305 under a key file that
//! only its owner can read (`<data>/secrets/key`, mode 0600). A container
//! gets it on a tmpfs that exists only in the mount namespace of the process
//! holding the container, bind-mounted read-only: never in an environment
//! variable, the record, `inspect`, the logs, or on disk in clear.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use serde::{Deserialize, Serialize};

use crate::error::IoContext;
use crate::record::ContainerRecord;
use crate::{Error, Result};

/// docker's limit on a secret's size.
pub const MAX_SECRET: usize = 500 * 1024;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecretMeta {
    pub id: String,
    pub name: String,
    pub created_at: String,
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    meta: SecretMeta,
    nonce: String,
    ciphertext: String,
}

/// A secret a container asked for: `NAME[,target=PATH]` or `source=NAME,target=PATH`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecretRef {
    pub name: String,
    /// Absolute path in the container.
    pub target: String,
}

pub fn parse_ref(spec: &str) -> Result<SecretRef> {
    let bad = |why: &str| Error::Invalid {
        what: "--secret",
        value: spec.to_string(),
        why: why.to_string(),
    };
    let (mut name, mut target) = (None, None);
    for field in spec.split(',') {
        match field.split_once('=') {
            None if name.is_none() => name = Some(field.to_string()),
            Some(("source" | "src", v)) => name = Some(v.to_string()),
            Some(("target" | "dst", v)) => target = Some(v.to_string()),
            _ => return Err(bad("expected NAME[,target=PATH]")),
        }
    }
    let name = name
        .filter(|n| valid_name(n))
        .ok_or_else(|| bad("a secret name is [a-zA-Z0-9][a-zA-Z0-9_.-]*"))?;
    let target = match target {
        None => format!("/run/secrets/{name}"),
        Some(t) if t.starts_with('/') => t,
        Some(t) => format!("/run/secrets/{t}"),
    };
    if target.split('/').any(|c| c == "..") {
        return Err(bad("the target may not contain '..'"));
    }
    Ok(SecretRef { name, target })
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && name.len() <= 64
}

/// Creates the key exclusively: if another process got there first, its
/// key is the one. Two first `secret create`s can thus never each seal
/// with a key of their own, and a key once in place is never replaced.
fn create_key(path: &Path) -> Result<()> {
    estiba_os::create_exclusive(path, estiba_os::random_hex(32).as_bytes(), 0o600)?;
    Ok(())
}

#[derive(Clone, Debug)]
pub struct Secrets {
    root: PathBuf,
}

impl Secrets {
    pub fn new(data: &Path) -> Self {
        Secrets {
            root: data.join("secrets"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(format!("{name}.json"))
    }

    /// The sealing key, created on first use; refused if others could read it.
    fn cipher(&self) -> Result<ChaCha20Poly1305> {
        let path = self.root.join("key");
        fs::create_dir_all(&self.root).ctx("creating", &self.root)?;
        fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700))
            .ctx("securing", &self.root)?;
        if !path.exists() {
            create_key(&path)?;
        }
        let meta = fs::metadata(&path).ctx("reading", &path)?;
        if meta.mode() & 0o077 != 0 || meta.uid() != rustix::process::geteuid().as_raw() {
            return Err(Error::Invalid {
                what: "secret key file",
                value: path.display().to_string(),
                why: "must be owned by this user with mode 0600".into(),
            });
        }
        let hex_key = fs::read_to_string(&path).ctx("reading", &path)?;
        let key = hex::decode(hex_key.trim())
            .ok()
            .filter(|k| k.len() == 32)
            .ok_or_else(|| Error::Invalid {
                what: "secret key file",
                value: path.display().to_string(),
                why: "is corrupt".into(),
            })?;
        Ok(ChaCha20Poly1305::new(Key::from_slice(&key)))
    }

    pub fn create(&self, name: &str, data: &[u8]) -> Result<SecretMeta> {
        if !valid_name(name) {
            return Err(Error::Invalid {
                what: "secret name",
                value: name.to_string(),
                why: "names are [a-zA-Z0-9][a-zA-Z0-9_.-]*".into(),
            });
        }
        if data.len() > MAX_SECRET {
            return Err(Error::Invalid {
                what: "secret",
                value: name.to_string(),
                why: format!("is larger than {MAX_SECRET} bytes"),
            });
        }
        let cipher = self.cipher()?;
        if self.path(name).exists() {
            return Err(Error::Invalid {
                what: "secret",
                value: name.to_string(),
                why: "already exists".into(),
            });
        }
        let (nonce_hex, ciphertext) = seal_with(&cipher, data, name)?;
        let meta = SecretMeta {
            id: estiba_os::random_hex(12),
            name: name.to_string(),
            created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        };
        let sealed = Sealed {
            meta: meta.clone(),
            nonce: nonce_hex,
            ciphertext,
        };
        let json = serde_json::to_vec(&sealed).map_err(|e| Error::Record(self.path(name), e))?;
        estiba_os::write_atomic(&self.path(name), &json)?;
        Ok(meta)
    }

    fn load(&self, name: &str) -> Result<Sealed> {
        let path = self.path(name);
        let data = fs::read(&path).map_err(|_| Error::Invalid {
            what: "secret",
            value: name.to_string(),
            why: "no such secret".into(),
        })?;
        serde_json::from_slice(&data).map_err(|e| Error::Record(path, e))
    }

    pub fn list(&self) -> Vec<SecretMeta> {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut out: Vec<SecretMeta> = entries
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_string_lossy()
                    .strip_suffix(".json")
                    .map(str::to_string)
            })
            .filter_map(|n| self.load(&n).ok().map(|s| s.meta))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    pub fn remove(&self, name: &str, users: &[ContainerRecord]) -> Result<()> {
        self.load(name)?;
        if let Some(user) = users
            .iter()
            .find(|r| r.options.secrets.iter().any(|s| s.name == name))
        {
            return Err(Error::Invalid {
                what: "secret",
                value: name.to_string(),
                why: format!("in use by container {}", user.name),
            });
        }
        fs::remove_file(self.path(name)).ctx("removing", self.path(name))
    }

    /// The secret's content, for the tmpfs of a starting container only.
    pub fn reveal(&self, name: &str) -> Result<Vec<u8>> {
        let sealed = self.load(name)?;
        open_with(&self.cipher()?, &sealed.nonce, &sealed.ciphertext, name)
    }

    /// Seals a value that is kept elsewhere (an encrypted volume's key),
    /// as `NONCE:CIPHERTEXT` in hex.
    pub fn seal(&self, data: &[u8], what: &str) -> Result<String> {
        let (nonce, ciphertext) = seal_with(&self.cipher()?, data, what)?;
        Ok(format!("{nonce}:{ciphertext}"))
    }

    /// Opens what [`Secrets::seal`] sealed.
    pub fn unseal(&self, sealed: &str, what: &str) -> Result<Vec<u8>> {
        let (nonce, ciphertext) = sealed.trim().split_once(':').unwrap_or(("", ""));
        open_with(&self.cipher()?, nonce, ciphertext, what)
    }
}

/// Encrypts under a fresh nonce; returns both in hex.
fn seal_with(cipher: &ChaCha20Poly1305, data: &[u8], what: &str) -> Result<(String, String)> {
    let nonce_hex = estiba_os::random_hex(12);
    let nonce_bytes = hex::decode(&nonce_hex).unwrap_or_default();
    let ciphertext = cipher
        .encrypt(Nonce::from_slice(&nonce_bytes), data)
        .map_err(|_| Error::Invalid {
            what: "secret",
            value: what.to_string(),
            why: "could not be sealed".into(),
        })?;
    Ok((nonce_hex, hex::encode(ciphertext)))
}

/// Decrypts and checks a sealed value given in hex.
fn open_with(
    cipher: &ChaCha20Poly1305,
    nonce: &str,
    ciphertext: &str,
    what: &str,
) -> Result<Vec<u8>> {
    let bad = |why: &str| Error::Invalid {
        what: "secret",
        value: what.to_string(),
        why: why.into(),
    };
    let nonce = hex::decode(nonce).ok().filter(|n| n.len() == 12);
    let ciphertext = hex::decode(ciphertext).ok();
    let (Some(nonce), Some(ciphertext)) = (nonce, ciphertext) else {
        return Err(bad("is corrupt"));
    };
    cipher
        .decrypt(Nonce::from_slice(&nonce), ciphertext.as_ref())
        .map_err(|_| bad("failed its integrity check"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many first `secret create`s at once, each in a fresh store: every
    /// secret must still open afterwards. With a shared `key.tmp`, the
    /// losers' secrets were sealed with a key that no longer existed.
    #[test]
    fn concurrent_first_creates_share_one_key() {
        for _round in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
            let threads: Vec<_> = (0..8)
                .map(|i| {
                    let (root, barrier) = (dir.path().to_path_buf(), barrier.clone());
                    std::thread::spawn(move || {
                        let secrets = Secrets::new(&root);
                        barrier.wait();
                        secrets.create(&format!("s{i}"), format!("value {i}").as_bytes())
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap().unwrap();
            }
            let secrets = Secrets::new(dir.path());
            for i in 0..8 {
                assert_eq!(
                    secrets.reveal(&format!("s{i}")).unwrap(),
                    format!("value {i}").as_bytes()
                );
            }
            let leftovers: Vec<_> = fs::read_dir(dir.path().join("secrets"))
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
                .collect();
            assert!(leftovers.is_empty(), "{leftovers:?}");
        }
    }

    #[test]
    fn sealed_at_rest_and_revealed_intact() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = Secrets::new(dir.path());
        secrets
            .create("db-password", b"hunter2-correct-horse")
            .unwrap();
        let on_disk = fs::read(dir.path().join("secrets/db-password.json")).unwrap();
        assert!(!String::from_utf8_lossy(&on_disk).contains("hunter2"));
        assert_eq!(
            secrets.reveal("db-password").unwrap(),
            b"hunter2-correct-horse"
        );
        assert_eq!(
            fs::metadata(dir.path().join("secrets/key")).unwrap().mode() & 0o777,
            0o600
        );
        assert!(
            secrets.create("db-password", b"x").is_err(),
            "no silent overwrite"
        );
        assert!(secrets.create("../x", b"x").is_err());
        // Tampering is detected.
        let mut sealed: serde_json::Value = serde_json::from_slice(&on_disk).unwrap();
        let ct = sealed["ciphertext"]
            .as_str()
            .unwrap()
            .replacen('0', "1", 1)
            .replacen('a', "b", 1);
        sealed["ciphertext"] = ct.into();
        fs::write(
            dir.path().join("secrets/db-password.json"),
            sealed.to_string(),
        )
        .unwrap();
        assert!(secrets.reveal("db-password").is_err());
        assert_eq!(parse_ref("db").unwrap().target, "/run/secrets/db");
        assert_eq!(
            parse_ref("source=db,target=/etc/pw").unwrap().target,
            "/etc/pw"
        );
        assert!(parse_ref("db,target=../../x").is_err());
    }
}
