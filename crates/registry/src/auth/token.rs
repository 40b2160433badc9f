//! Bearer tokens: HS256 JWTs signed with a key that never leaves the
//! registry's root (`auth/token.key`, owner-only). The registry issues
//! and checks them itself, so a symmetric key is enough.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};

/// One entry of a token's `access` claim, as docker's token spec has it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    #[serde(default)]
    pub sub: Option<String>,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    #[serde(default)]
    pub access: Vec<Grant>,
}

/// The registry's token key, made on first use.
pub fn signing_key(root: &Path) -> Result<Vec<u8>> {
    let path = root.join("auth").join("token.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => hex::decode(text.trim()).map_err(|_| Error::Malformed {
            what: path.display().to_string(),
            why: "not hex".into(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = estiba_os::random_hex(32);
            // Never replaces: if another process won the race, its key is
            // the one, and tokens it signed stay valid.
            estiba_os::create_exclusive(&path, key.as_bytes(), 0o600)?;
            let text = std::fs::read_to_string(&path).ctx("reading", &path)?;
            hex::decode(text.trim()).map_err(|_| Error::Malformed {
                what: path.display().to_string(),
                why: "not hex".into(),
            })
        }
        Err(e) => Err(e).ctx("reading", &path),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn sign(
    key: &[u8],
    service: &str,
    user: Option<&str>,
    access: Vec<Grant>,
    ttl_secs: u64,
) -> Result<String> {
    let now = now();
    let claims = Claims {
        iss: service.to_string(),
        sub: Some(user.unwrap_or("").to_string()),
        aud: service.to_string(),
        exp: now + ttl_secs,
        nbf: now.saturating_sub(1),
        iat: now,
        jti: estiba_os::random_hex(16),
        access,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(key),
    )
    .map_err(|e| Error::Auth(format!("signing a token: {e}")))
}

pub fn verify(key: &[u8], service: &str, token: &str) -> Result<Claims> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&[service]);
    validation.set_issuer(&[service]);
    validation.leeway = 0;
    validation.validate_nbf = true;
    jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(key), &validation)
        .map(|d| d.claims)
        .map_err(|e| Error::Auth(format!("invalid token: {e}")))
}
