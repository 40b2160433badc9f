//! The registry's users: `ROOT/auth/users.json`, owner-only, with argon2id
//! password hashes. Read at startup and again when the file changes, so
//! `estiba registry user add` works against a running server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct User {
    /// argon2id, in PHC string form.
    pub hash: String,
    #[serde(default)]
    pub admin: bool,
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct UsersFile {
    users: BTreeMap<String, User>,
}

pub struct Users {
    path: PathBuf,
    cache: Mutex<(Option<SystemTime>, BTreeMap<String, User>)>,
}

fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
}

impl Users {
    pub fn open(root: &Path) -> Result<Users> {
        let dir = root.join("auth");
        std::fs::create_dir_all(&dir).ctx("creating", &dir)?;
        set_owner_only(&dir, 0o700)?;
        Ok(Users {
            path: dir.join("users.json"),
            cache: Mutex::new((None, BTreeMap::new())),
        })
    }

    fn load(&self) -> BTreeMap<String, User> {
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.0 != modified || modified.is_none() {
            let users = std::fs::read(&self.path)
                .ok()
                .and_then(|d| serde_json::from_slice::<UsersFile>(&d).ok())
                .map(|f| f.users)
                .unwrap_or_default();
            *cache = (modified, users);
        }
        cache.1.clone()
    }

    pub fn get(&self, name: &str) -> Option<User> {
        self.load().remove(name)
    }

    pub fn names(&self) -> Vec<String> {
        self.load().into_keys().collect()
    }

    /// Checks a password; the work is argon2's, whatever the outcome.
    pub fn verify(&self, name: &str, password: &str) -> bool {
        let Some(user) = self.get(name) else {
            return false;
        };
        PasswordHash::new(&user.hash)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    }

    /// Adds or replaces a user.
    pub fn add(&self, name: &str, password: &str, admin: bool, groups: Vec<String>) -> Result<()> {
        if !valid_user_name(name) {
            return Err(Error::Auth(format!(
                "user name {name:?}: letters, digits, '.', '_', '-' and '@', at most 64"
            )));
        }
        if password.len() < 8 {
            return Err(Error::Auth(
                "the password must have at least 8 characters".into(),
            ));
        }
        let salt = SaltString::generate(&mut OsRng);
        let hash = Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| Error::Auth(format!("hashing the password: {e}")))?
            .to_string();
        let mut users = self.load();
        users.insert(
            name.to_string(),
            User {
                hash,
                admin,
                groups,
            },
        );
        self.save(users)
    }

    pub fn remove(&self, name: &str) -> Result<bool> {
        let mut users = self.load();
        let found = users.remove(name).is_some();
        if found {
            self.save(users)?;
        }
        Ok(found)
    }

    fn save(&self, users: BTreeMap<String, User>) -> Result<()> {
        let data =
            serde_json::to_vec_pretty(&UsersFile { users }).map_err(|e| Error::Malformed {
                what: "users".into(),
                why: e.to_string(),
            })?;
        Ok(estiba_os::write_private(&self.path, &data)?)
    }
}

pub(crate) fn set_owner_only(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).ctx("protecting", path)
}
