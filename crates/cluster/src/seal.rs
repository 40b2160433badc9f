//! Sealing secrets before they reach the store: ChaCha20-Poly1305 under a
//! key file of the control plane's (`<data>/seal.key`, mode 0600). The
//! record's key is the associated data, so a sealed value copied under
//! another record's key does not open.
//!
//! Several control planes on one etcd share their data directory's key:
//! copy `seal.key` to each.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use serde::{Deserialize, Serialize};

use crate::{Error, IoContext, Result};

/// A sealed value as it is stored: hex nonce and ciphertext.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub nonce: String,
    pub ciphertext: String,
}

#[derive(Clone)]
pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer")
    }
}

impl Sealer {
    /// Opens the key in `data`, creating it on first use. Two first uses
    /// at once agree: the key is created beside and linked in, and a link
    /// never replaces.
    pub fn open(data: &Path) -> Result<Sealer> {
        let path = data.join("seal.key");
        if !path.exists() {
            std::fs::create_dir_all(data).ctx("creating", data)?;
            let key = estiba_os::random_hex(32);
            estiba_os::create_exclusive(&path, key.as_bytes(), 0o600)?;
        }
        let meta = std::fs::metadata(&path).ctx("reading", &path)?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(Error::KeyExposed(path));
        }
        let text = std::fs::read_to_string(&path).ctx("reading", &path)?;
        let bytes = hex::decode(text.trim())
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| Error::KeyInvalid(PathBuf::from(&path)))?;
        Ok(Sealer {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&bytes)),
        })
    }

    pub fn seal(&self, record: &str, plain: &[u8]) -> Result<Sealed> {
        let nonce = hex::decode(estiba_os::random_hex(12)).unwrap_or_default();
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: record.as_bytes(),
                },
            )
            .map_err(|_| Error::Unseal(format!("{record}: could not be sealed")))?;
        Ok(Sealed {
            nonce: hex::encode(nonce),
            ciphertext: hex::encode(ciphertext),
        })
    }

    pub fn open_sealed(&self, record: &str, sealed: &Sealed) -> Result<Vec<u8>> {
        let broken = || Error::Unseal(format!("{record}: damaged, or sealed for another record"));
        let nonce = hex::decode(&sealed.nonce)
            .ok()
            .filter(|n| n.len() == 12)
            .ok_or_else(broken)?;
        let ciphertext = hex::decode(&sealed.ciphertext).map_err(|_| broken())?;
        self.cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: record.as_bytes(),
                },
            )
            .map_err(|_| broken())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_under_their_record() {
        let dir = tempfile::tempdir().unwrap();
        let sealer = Sealer::open(dir.path()).unwrap();
        let sealed = sealer.seal("access-keys/A", b"secret").unwrap();
        assert!(!sealed.ciphertext.contains(&hex::encode(b"secret")));
        assert_eq!(
            sealer.open_sealed("access-keys/A", &sealed).unwrap(),
            b"secret"
        );
        assert!(sealer.open_sealed("access-keys/B", &sealed).is_err());
        // The same key opens again from the file.
        let again = Sealer::open(dir.path()).unwrap();
        assert_eq!(
            again.open_sealed("access-keys/A", &sealed).unwrap(),
            b"secret"
        );
    }

    #[test]
    fn a_key_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        Sealer::open(dir.path()).unwrap();
        let path = dir.path().join("seal.key");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Sealer::open(dir.path()),
            Err(Error::KeyExposed(_))
        ));
    }
}
