//! Access keys for the ECR API: an id and a secret issued to an existing
//! registry user (`estiba registry key create USER`). SigV4 needs the
//! secret itself to sign the request again, so it is kept, owner-only, in
//! `auth/access-keys/<id>.json` under the registry's root, beside the
//! token key.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccessKey {
    pub id: String,
    pub secret: String,
    pub user: String,
    /// RFC 3339.
    pub created: String,
}

pub struct AccessKeys {
    dir: PathBuf,
}

/// AWS's shape: `AKIA` and 16 upper-case letters and digits.
fn new_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let bytes = hex::decode(estiba_os::random_hex(16)).unwrap_or_default();
    let tail: String = bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    format!("AKIA{tail}")
}

fn valid_id(id: &str) -> bool {
    id.len() == 20
        && id.starts_with("AKIA")
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

impl AccessKeys {
    pub fn new(root: &Path) -> AccessKeys {
        AccessKeys {
            dir: root.join("auth").join("access-keys"),
        }
    }

    /// Issues a key to `user` (who must exist: the caller checks).
    pub fn create(&self, user: &str) -> Result<AccessKey> {
        std::fs::create_dir_all(&self.dir).ctx("creating", &self.dir)?;
        let key = AccessKey {
            id: new_id(),
            secret: base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD_NO_PAD,
                hex::decode(estiba_os::random_hex(30)).unwrap_or_default(),
            ),
            user: user.to_string(),
            created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        };
        let data = serde_json::to_vec_pretty(&key).map_err(|e| Error::Malformed {
            what: "access key".into(),
            why: e.to_string(),
        })?;
        estiba_os::create_exclusive(&self.dir.join(format!("{}.json", key.id)), &data, 0o600)?;
        Ok(key)
    }

    /// The key with this id, if it was issued.
    pub fn get(&self, id: &str) -> Option<AccessKey> {
        if !valid_id(id) {
            return None;
        }
        let data = std::fs::read(self.dir.join(format!("{id}.json"))).ok()?;
        serde_json::from_slice(&data).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_issued_once_and_found_by_id_only() {
        let dir = tempfile::tempdir().unwrap();
        let keys = AccessKeys::new(dir.path());
        let k = keys.create("alice").unwrap();
        assert!(valid_id(&k.id), "{}", k.id);
        assert_eq!(keys.get(&k.id).unwrap().user, "alice");
        assert!(keys.get("AKIA../../etc/passwd").is_none());
        assert!(keys.get("AKIANOTISSUEDATALL00").is_none());
    }
}
