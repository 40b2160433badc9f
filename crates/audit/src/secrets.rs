//! What a secret looks like: by name (Dockle's word list, widened), by
//! value (AWS's key shapes), by file name and by file content (PEM and
//! OpenSSH private keys). One place, so images, Containerfiles and task
//! definitions judge alike.

use std::sync::LazyLock;

use regex::Regex;

static SECRET_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(PASS|PASSWD|PASSWORD|PWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL|AUTH_?KEY|_KEY$|^KEY$)")
        .unwrap_or_else(|e| panic!("the secret-name pattern: {e}"))
});

static AWS_ACCESS_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}$")
        .unwrap_or_else(|e| panic!("the access-key pattern: {e}"))
});

static AWS_SECRET_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[A-Za-z0-9/+]{40}$").unwrap_or_else(|e| panic!("the secret-key pattern: {e}"))
});

/// Whether a variable's name says it holds a secret. Names that point at
/// a secret rather than hold one (`…_FILE`, `…_PATH`) and public GPG key
/// ids are not.
pub fn secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    let points = ["_FILE", "_PATH", "_DIR", "_URL", "_ARN", "_NAME", "_ID"]
        .iter()
        .any(|s| upper.ends_with(s));
    let public = upper.starts_with("GPG_KEY") || upper.contains("PUBLIC") || upper == "PWD";
    !points && !public && SECRET_NAME.is_match(&upper)
}

/// Why `name=value` is a secret written in plain text, if it is: a
/// secret's name with a literal value, or a value shaped like an AWS key.
pub fn assignment(name: &str, value: &str) -> Option<String> {
    let value = value.trim().trim_matches(['"', '\'']);
    if AWS_ACCESS_KEY.is_match(value) {
        return Some("the value is an AWS access key id".into());
    }
    let reference = value.starts_with('$') || value.starts_with("arn:");
    if value.is_empty() || reference {
        return None;
    }
    if name.to_ascii_uppercase().contains("SECRET_ACCESS_KEY") && AWS_SECRET_KEY.is_match(value) {
        return Some("the value is an AWS secret access key".into());
    }
    secret_name(name).then(|| "the name says it holds a secret, and it has a value".into())
}

/// Why an environment variable turns TLS or signature checks off.
pub fn disables_verification(name: &str, value: &str) -> Option<&'static str> {
    let v = value.trim().trim_matches(['"', '\'']).to_ascii_lowercase();
    let off = v == "0" || v == "false" || v == "no";
    let on = v == "1" || v == "true" || v == "yes";
    match name {
        "PYTHONHTTPSVERIFY" | "NODE_TLS_REJECT_UNAUTHORIZED" | "CURL_SSL_VERIFY" if off => {
            Some("turns TLS verification off")
        }
        "NPM_CONFIG_STRICT_SSL" if off => Some("turns TLS verification off"),
        "GIT_SSL_NO_VERIFY" if on => Some("turns TLS verification off"),
        _ => None,
    }
}

/// File names that usually hold credentials (Dockle's list, and kin).
const CREDENTIAL_FILES: &[&str] = &[
    "credentials.json",
    "credentials",
    "id_rsa",
    "id_dsa",
    "id_ecdsa",
    "id_ed25519",
    ".env",
    ".npmrc",
    ".pypirc",
    ".netrc",
    ".git-credentials",
    ".dockercfg",
    "database.yml",
    "secrets.yml",
    "secrets.yaml",
    "settings.py",
    "wp-config.php",
    "htpasswd",
    ".htpasswd",
    "master.key",
];

const CREDENTIAL_EXTENSIONS: &[&str] = &[
    ".secret",
    ".ovpn",
    ".jks",
    ".keychain",
    ".keystore",
    ".p12",
    ".pfx",
    ".kdbx",
];

/// Whether a path in an image names a credential file. Docker's own
/// config (`.docker/config.json`) and AWS's (`.aws/credentials`) count.
pub fn credential_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let lower = name.to_ascii_lowercase();
    CREDENTIAL_FILES.contains(&lower.as_str())
        || CREDENTIAL_EXTENSIONS.iter().any(|e| lower.ends_with(e))
        || path.ends_with(".docker/config.json")
}

/// Whether a file's first bytes are a private key.
pub fn private_key(head: &[u8]) -> bool {
    const MARKERS: &[&[u8]] = &[
        b"-----BEGIN RSA PRIVATE KEY-----",
        b"-----BEGIN EC PRIVATE KEY-----",
        b"-----BEGIN DSA PRIVATE KEY-----",
        b"-----BEGIN PRIVATE KEY-----",
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----",
        b"-----BEGIN OPENSSH PRIVATE KEY-----",
        b"-----BEGIN PGP PRIVATE KEY BLOCK-----",
    ];
    MARKERS
        .iter()
        .any(|m| head.windows(m.len()).any(|w| w == *m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_values_and_pointers() {
        for name in [
            "DB_PASSWORD",
            "mysql_passwd",
            "API_KEY",
            "GITHUB_TOKEN",
            "SECRET",
            "AWS_SECRET_ACCESS_KEY",
        ] {
            assert!(secret_name(name), "{name}");
        }
        for name in [
            "PATH",
            "GPG_KEYS",
            "PASSWORD_FILE",
            "SSH_PUBLIC_KEY",
            "KEY_ID",
            "PWD",
            "HOME",
        ] {
            assert!(!secret_name(name), "{name}");
        }
        assert!(assignment("DB_PASSWORD", "hunter2").is_some());
        assert!(assignment("DB_PASSWORD", "").is_none());
        assert!(assignment("DB_PASSWORD", "${FROM_OUTSIDE}").is_none());
        assert!(assignment("X", "AKIAIOSFODNN7EXAMPLE").is_some());
        assert!(assignment("X", "hello").is_none());
        assert!(disables_verification("NPM_CONFIG_STRICT_SSL", "false").is_some());
        assert!(disables_verification("NPM_CONFIG_STRICT_SSL", "true").is_none());
        assert!(disables_verification("GIT_SSL_NO_VERIFY", "1").is_some());
        assert!(disables_verification("NODE_TLS_REJECT_UNAUTHORIZED", "1").is_none());
    }

    #[test]
    fn files_by_name_and_keys_by_content() {
        assert!(credential_file("app/credentials.json"));
        assert!(credential_file("root/.ssh/id_ed25519"));
        assert!(credential_file("root/.docker/config.json"));
        assert!(!credential_file("etc/passwd"));
        assert!(private_key(
            b"junk\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn"
        ));
        assert!(!private_key(b"-----BEGIN CERTIFICATE-----"));
    }
}
