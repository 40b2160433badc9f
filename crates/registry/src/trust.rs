//! Signatures in cosign's format: a "simple signing" payload naming the
//! signed manifest's digest, signed with ECDSA P-256 (SHA-256, DER) or
//! Ed25519, stored as an OCI artifact whose `subject` is the signed
//! manifest, so the referrers API finds it. This is what
//! `cosign sign --registry-referrers-mode=oci-1-1 --new-bundle-format=false`
//! writes.

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::Deserialize;

use crate::digest::Digest;
use crate::error::IoContext;
use crate::error::{Code, Error, Result};
use crate::manifest::ParsedManifest;
use crate::settings::RepoSettings;
use crate::storage::{ManifestLink, Storage};

pub const SIGNATURE_ARTIFACT: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// SubjectPublicKeyInfo DER prefixes: what comes before the raw key.
const P256_SPKI_PREFIX: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
const ED25519_SPKI_PREFIX: &[u8] = &[
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

fn sig_err(why: impl Into<String>) -> Error {
    Error::Signature(why.into())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    EcdsaP256,
    Ed25519,
}

/// A public key from a PEM `PUBLIC KEY` (SPKI) block.
#[derive(Clone, Debug)]
pub struct PublicKey {
    kind: KeyKind,
    raw: Vec<u8>,
}

impl PublicKey {
    pub fn from_pem(text: &str) -> Result<PublicKey> {
        let block = pem::parse(text).map_err(|e| sig_err(format!("public key: {e}")))?;
        if block.tag() != "PUBLIC KEY" {
            return Err(sig_err(format!(
                "public key: a PEM \"PUBLIC KEY\" block was expected, not {:?}",
                block.tag()
            )));
        }
        let der = block.contents();
        if let Some(raw) = der.strip_prefix(P256_SPKI_PREFIX) {
            return Ok(PublicKey {
                kind: KeyKind::EcdsaP256,
                raw: raw.to_vec(),
            });
        }
        if let Some(raw) = der.strip_prefix(ED25519_SPKI_PREFIX) {
            return Ok(PublicKey {
                kind: KeyKind::Ed25519,
                raw: raw.to_vec(),
            });
        }
        Err(sig_err(
            "public key: only ECDSA P-256 and Ed25519 keys are supported",
        ))
    }

    pub fn to_pem(&self) -> String {
        let prefix = match self.kind {
            KeyKind::EcdsaP256 => P256_SPKI_PREFIX,
            KeyKind::Ed25519 => ED25519_SPKI_PREFIX,
        };
        let der = [prefix, &self.raw].concat();
        pem::encode(&pem::Pem::new("PUBLIC KEY", der))
    }

    pub fn verify(&self, message: &[u8], signature_b64: &str) -> bool {
        let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(signature_b64.trim()) else {
            return false;
        };
        let alg: &dyn signature::VerificationAlgorithm = match self.kind {
            KeyKind::EcdsaP256 => &signature::ECDSA_P256_SHA256_ASN1,
            KeyKind::Ed25519 => &signature::ED25519,
        };
        UnparsedPublicKey::new(alg, &self.raw)
            .verify(message, &sig)
            .is_ok()
    }
}

/// A private key from a PEM `PRIVATE KEY` (PKCS#8) block.
pub struct PrivateKey {
    inner: Signer,
}

enum Signer {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl PrivateKey {
    pub fn from_pem(text: &str) -> Result<PrivateKey> {
        let block = pem::parse(text).map_err(|e| sig_err(format!("private key: {e}")))?;
        if block.tag() != "PRIVATE KEY" {
            return Err(sig_err(format!(
                "private key: a PEM \"PRIVATE KEY\" (PKCS#8) block was expected, not {:?}",
                block.tag()
            )));
        }
        let der = block.contents();
        let rng = SystemRandom::new();
        if let Ok(k) =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, der, &rng)
        {
            return Ok(PrivateKey {
                inner: Signer::Ecdsa(k),
            });
        }
        if let Ok(k) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            return Ok(PrivateKey {
                inner: Signer::Ed25519(k),
            });
        }
        Err(sig_err(
            "private key: only ECDSA P-256 and Ed25519 PKCS#8 keys are supported",
        ))
    }

    /// A new key pair, as PKCS#8 PEM.
    pub fn generate(kind: KeyKind) -> Result<String> {
        let rng = SystemRandom::new();
        let doc = match kind {
            KeyKind::EcdsaP256 => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            }
            KeyKind::Ed25519 => Ed25519KeyPair::generate_pkcs8(&rng),
        }
        .map_err(|_| sig_err("generating a key failed"))?;
        Ok(pem::encode(&pem::Pem::new(
            "PRIVATE KEY",
            doc.as_ref().to_vec(),
        )))
    }

    pub fn public_key(&self) -> PublicKey {
        match &self.inner {
            Signer::Ecdsa(k) => PublicKey {
                kind: KeyKind::EcdsaP256,
                raw: k.public_key().as_ref().to_vec(),
            },
            Signer::Ed25519(k) => PublicKey {
                kind: KeyKind::Ed25519,
                raw: k.public_key().as_ref().to_vec(),
            },
        }
    }

    /// Signs `message`; standard base64, as cosign stores it.
    pub fn sign(&self, message: &[u8]) -> Result<String> {
        let sig = match &self.inner {
            Signer::Ecdsa(k) => k
                .sign(&SystemRandom::new(), message)
                .map_err(|_| sig_err("signing failed"))?
                .as_ref()
                .to_vec(),
            Signer::Ed25519(k) => k.sign(message).as_ref().to_vec(),
        };
        Ok(base64::engine::general_purpose::STANDARD.encode(sig))
    }
}

/// The simple-signing payload for `digest`, compact, as cosign writes it.
pub fn payload(docker_reference: &str, digest: &Digest) -> Vec<u8> {
    let value = serde_json::json!({
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest.to_string()},
            "type": "cosign container image signature",
        },
        "optional": null,
    });
    // serde_json keeps keys sorted, which is also cosign's order here.
    value.to_string().into_bytes()
}

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    digest: String,
}

/// True if `payload` is a simple-signing payload for `digest` and
/// `signature` verifies with one of `keys`.
pub fn check_signature(
    payload: &[u8],
    signature: &str,
    digest: &Digest,
    keys: &[PublicKey],
) -> bool {
    let Ok(p) = serde_json::from_slice::<Payload>(payload) else {
        return false;
    };
    p.critical.kind == "cosign container image signature"
        && p.critical.image.digest == digest.to_string()
        && keys.iter().any(|k| k.verify(payload, signature))
}

/// The signature layers of a signature artifact: (payload digest, signature).
#[derive(Deserialize)]
struct SigManifest {
    layers: Vec<SigLayer>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SigLayer {
    media_type: String,
    digest: String,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

pub fn signature_layers(manifest: &[u8]) -> Vec<(Digest, String)> {
    let Ok(m) = serde_json::from_slice::<SigManifest>(manifest) else {
        return Vec::new();
    };
    m.layers
        .into_iter()
        .filter(|l| l.media_type == SIMPLE_SIGNING)
        .filter_map(|l| {
            let sig = l.annotations.get(SIGNATURE_ANNOTATION)?.clone();
            Some((l.digest.parse().ok()?, sig))
        })
        .collect()
}

fn read_all(s: &dyn Storage, digest: &Digest) -> Result<Option<Vec<u8>>> {
    let Some(mut blob) = s.open_blob(digest)? else {
        return Ok(None);
    };
    let mut data = Vec::new();
    std::io::Read::read_to_end(&mut blob.reader, &mut data).ctx("reading", digest.to_string())?;
    Ok(Some(data))
}

/// True if a signature artifact in `repo` signs `digest` with a trusted key.
fn signed_in_repo(
    s: &dyn Storage,
    repo: &str,
    digest: &Digest,
    keys: &[PublicKey],
) -> Result<bool> {
    for referrer in s.referrers(repo, digest)? {
        if referrer.artifact_type.as_deref() != Some(SIGNATURE_ARTIFACT) {
            continue;
        }
        let Some(manifest) = read_all(s, &referrer.digest)? else {
            continue;
        };
        for (payload_digest, signature) in signature_layers(&manifest) {
            if let Some(payload) = read_all(s, &payload_digest)? {
                if check_signature(&payload, &signature, digest, keys) {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

/// The registry's `require_signature` policy: serve a manifest only if it,
/// or an index in the repository that lists it, carries a valid signature
/// by a trusted key. Signature artifacts themselves are always served:
/// verifiers must read them.
pub fn require_signature(
    s: &dyn Storage,
    repo: &str,
    digest: &Digest,
    link: &ManifestLink,
    settings: &RepoSettings,
) -> Result<()> {
    let keys: Vec<PublicKey> = settings
        .trusted_keys
        .iter()
        .filter_map(|k| PublicKey::from_pem(k).ok())
        .collect();
    let data = read_all(s, digest)?.unwrap_or_default();
    if let Ok(m) = ParsedManifest::parse(&data, Some(&link.media_type)) {
        if m.artifact_type.as_deref() == Some(SIGNATURE_ARTIFACT)
            || m.config_media_type.as_deref() == Some(SIGNATURE_ARTIFACT)
        {
            return Ok(());
        }
    }
    if signed_in_repo(s, repo, digest, &keys)? {
        return Ok(());
    }
    for (index, index_link) in s.manifests(repo)? {
        if index_link.media_type != crate::manifest::INDEX_OCI
            && index_link.media_type != crate::manifest::LIST_DOCKER
        {
            continue;
        }
        let Some(data) = read_all(s, &index)? else {
            continue;
        };
        let lists_it = ParsedManifest::parse(&data, Some(&index_link.media_type))
            .is_ok_and(|m| m.manifests.contains(digest));
        if lists_it && signed_in_repo(s, repo, &index, &keys)? {
            return Ok(());
        }
    }
    Err(Error::api(
        Code::Denied,
        format!("{repo}@{digest} has no valid signature by a key this repository trusts"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify_with_both_key_kinds() {
        let digest = Digest::sha256(b"manifest");
        for kind in [KeyKind::EcdsaP256, KeyKind::Ed25519] {
            let key = PrivateKey::from_pem(&PrivateKey::generate(kind).unwrap()).unwrap();
            let public = PublicKey::from_pem(&key.public_key().to_pem()).unwrap();
            let payload = payload("localhost:5000/app", &digest);
            let sig = key.sign(&payload).unwrap();
            assert!(check_signature(
                &payload,
                &sig,
                &digest,
                std::slice::from_ref(&public)
            ));
            // Another digest, a changed payload, another key: all refused.
            assert!(!check_signature(
                &payload,
                &sig,
                &Digest::sha256(b"other"),
                std::slice::from_ref(&public)
            ));
            let mut tampered = payload.clone();
            tampered[10] ^= 1;
            assert!(!check_signature(&tampered, &sig, &digest, &[public]));
            let stranger = PrivateKey::from_pem(&PrivateKey::generate(kind).unwrap()).unwrap();
            assert!(!check_signature(
                &payload,
                &sig,
                &digest,
                &[stranger.public_key()]
            ));
        }
    }

    #[test]
    fn payload_is_cosigns_simple_signing() {
        let d: Digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            .parse()
            .unwrap();
        assert_eq!(
            String::from_utf8(payload("r.example/a", &d)).unwrap(),
            r#"{"critical":{"identity":{"docker-reference":"r.example/a"},"image":{"docker-manifest-digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},"type":"cosign container image signature"},"optional":null}"#
        );
    }

    #[test]
    fn refuses_other_pem_blocks() {
        assert!(PublicKey::from_pem("garbage").is_err());
        assert!(PublicKey::from_pem(
            "-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\n"
        )
        .is_err());
    }
}
