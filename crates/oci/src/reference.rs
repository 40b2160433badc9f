//! Image references (`[registry/]repo[:tag][@digest]`), parsed with the
//! grammar of the distribution spec and shown in docker's familiar form
//! (`busybox:latest`, not `docker.io/library/busybox:latest`).

use std::fmt;
use std::str::FromStr;

use crate::{Digest, Error};

/// A validated image reference. The repository is kept in familiar form.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

const MAX_NAME: usize = 255;

impl Reference {
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag; `latest` when neither a tag nor a digest was given.
    pub fn tag(&self) -> Option<&str> {
        match (&self.tag, &self.digest) {
            (Some(t), _) => Some(t),
            (None, None) => Some("latest"),
            (None, Some(_)) => None,
        }
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The registry host: the first component when it looks like one (a
    /// '.', a ':', `localhost`, or an upper-case letter, as docker decides),
    /// else Docker Hub.
    pub fn domain(&self) -> &str {
        match self.repository.split_once('/') {
            Some((first, _)) if looks_like_domain(first) => first,
            _ => "docker.io",
        }
    }

    /// The repository's name on its registry: without the host, and with
    /// Docker Hub's `library/` for official images.
    pub fn path(&self) -> String {
        match self.repository.split_once('/') {
            Some((first, rest)) if looks_like_domain(first) => rest.to_string(),
            Some(_) => self.repository.clone(),
            None => format!("library/{}", self.repository),
        }
    }

    /// `repo:tag` with the default tag filled in, or `repo@digest`.
    pub fn canonical(&self) -> String {
        self.to_string()
    }

    /// A new reference to the same repository with another tag.
    pub fn with_tag(&self, tag: &str) -> Result<Self, Error> {
        validate_tag(tag)?;
        Ok(Reference {
            repository: self.repository.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        })
    }
}

fn invalid(reference: &str, why: &'static str) -> Error {
    Error::InvalidReference {
        reference: reference.to_string(),
        why,
    }
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn valid_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    first_ok && rest_ok && tag.len() <= 128
}

fn validate_tag(tag: &str) -> Result<(), Error> {
    if valid_tag(tag) {
        Ok(())
    } else {
        Err(invalid(tag, "a tag is [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"))
    }
}

/// A repository path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
pub fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let ch = b[i];
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            i += 1;
            continue;
        }
        // A separator: '.', '_', '__' or a run of '-'.
        let start = i;
        match ch {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if b.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while b.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || !b.get(i).is_some_and(|n| n.is_ascii_alphanumeric()) {
            return false;
        }
    }
    true
}

/// A registry host: `[A-Za-z0-9.-]+(:port)?`, recognised as the first
/// component when it has a '.', a ':' or is `localhost`.
fn looks_like_domain(c: &str) -> bool {
    c.contains('.')
        || c.contains(':')
        || c == "localhost"
        || c.bytes().any(|b| b.is_ascii_uppercase())
}

fn valid_domain(c: &str) -> bool {
    let (host, port) = match c.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (c, None),
    };
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
    };
    let host_ok = host.split('.').all(label_ok);
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if s.is_empty() {
            return Err(invalid(s, "empty"));
        }
        let (name_tag, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(d.parse::<Digest>()?)),
            None => (s, None),
        };
        // A ':' after the last '/' starts the tag; one before it is a port.
        let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_tag[last_slash..].find(':') {
            Some(i) => (
                &name_tag[..last_slash + i],
                Some(&name_tag[last_slash + i + 1..]),
            ),
            None => (name_tag, None),
        };
        if let Some(t) = tag {
            validate_tag(t)?;
        }
        if name.len() > MAX_NAME {
            return Err(invalid(s, "repository name longer than 255 characters"));
        }
        let mut parts: Vec<&str> = name.split('/').collect();
        // Only the first component can be a registry host: once docker.io
        // is dropped, what follows is path (it was once taken for a host,
        // unchecked: the fuzz target `reference` found it).
        let mut path_start = 0;
        if parts.len() > 1 && looks_like_domain(parts[0]) {
            if !valid_domain(parts[0]) {
                return Err(invalid(s, "invalid registry host"));
            }
            if parts[0] == "docker.io" || parts[0] == "index.docker.io" {
                parts.remove(0);
                if parts.len() > 1 && parts[0] == "library" {
                    parts.remove(0);
                }
                // Printed without docker.io, it would read as a host.
                if parts.len() > 1 && looks_like_domain(parts[0]) {
                    return Err(invalid(
                        s,
                        "a Docker Hub path cannot start with a host name",
                    ));
                }
            } else {
                path_start = 1;
            }
        }
        if parts[path_start..].iter().any(|c| !valid_component(c)) {
            return Err(invalid(
                s,
                "repository path components are lowercase [a-z0-9] joined by '.', '_', '__' or '-'",
            ));
        }
        Ok(Reference {
            repository: parts.join("/"),
            tag: tag.map(str::to_string),
            digest,
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repository)?;
        if let Some(t) = self.tag() {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Reference {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn after_docker_io_comes_a_path_not_a_host() {
        assert!("docker.io/reg.example:5000/app"
            .parse::<Reference>()
            .is_err());
        assert!("docker.io/77\0\nsha256:8oF.x/t"
            .parse::<Reference>()
            .is_err());
        assert!("docker.io/library/docker.io/app"
            .parse::<Reference>()
            .is_err());
        assert_eq!(parse("docker.io/team/app").to_string(), "team/app:latest");
    }

    #[test]
    fn familiar_forms() {
        assert_eq!(parse("busybox").to_string(), "busybox:latest");
        assert_eq!(
            parse("docker.io/library/busybox:1.35").to_string(),
            "busybox:1.35"
        );
        assert_eq!(parse("docker.io/foo/bar").to_string(), "foo/bar:latest");
        assert_eq!(
            parse("localhost:5000/team/app/api:v1").repository(),
            "localhost:5000/team/app/api"
        );
        assert_eq!(
            parse("localhost/busybox").to_string(),
            "localhost/busybox:latest"
        );
        let r = parse("busybox");
        assert_eq!(
            (r.domain(), r.path().as_str()),
            ("docker.io", "library/busybox")
        );
        let r = parse("localhost:5000/team/app:v1");
        assert_eq!(
            (r.domain(), r.path().as_str()),
            ("localhost:5000", "team/app")
        );
        let r = parse("Registry/team/app");
        assert_eq!((r.domain(), r.path().as_str()), ("Registry", "team/app"));
        assert_eq!(parse("team/app").domain(), "docker.io");
        let d = Digest::of(b"x");
        let r = parse(&format!("busybox@{d}"));
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest(), Some(&d));
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "Busybox",
            "busybox:",
            "busybox:-bad",
            "a//b",
            "/abs",
            "busybox@sha256:nothex",
            "../etc",
            "foo_-bar",
            "host:99999999/x",
            "a/",
            "bad..dots",
        ] {
            assert!(bad.parse::<Reference>().is_err(), "{bad:?} accepted");
        }
        let long = "a".repeat(256);
        assert!(long.parse::<Reference>().is_err());
    }
}
