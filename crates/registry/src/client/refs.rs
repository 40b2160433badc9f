//! A remote image reference: which registry, which repository, which tag
//! or digest.

use std::fmt;

use crate::error::{Error, Result};
use crate::names::{valid_tag, validate_name};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteRef {
    /// `host[:port]`
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

fn looks_like_registry(c: &str) -> bool {
    c.contains('.') || c.contains(':') || c == "localhost"
}

impl RemoteRef {
    /// Parses `host[:port]/repo[:tag][@digest]`. Without a registry host the
    /// reference means Docker Hub, as docker has it.
    pub fn parse(s: &str) -> Result<RemoteRef> {
        let bad = |why: &str| Error::Config(format!("image reference {s:?}: {why}"));
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                d.parse::<crate::digest::Digest>()
                    .map_err(|_| bad("the digest is invalid"))?;
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        let (registry, path) = match rest.split_once('/') {
            Some((first, path)) if looks_like_registry(first) => {
                (first.to_string(), path.to_string())
            }
            _ => ("docker.io".to_string(), rest.to_string()),
        };
        // A ':' after the last '/' starts the tag.
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), Some(tag.to_string())),
            _ => (path, None),
        };
        let repository = if registry == "docker.io" && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        validate_name(&repository).map_err(|e| bad(&e.to_string()))?;
        if let Some(t) = &tag {
            if !valid_tag(t) {
                return Err(bad("the tag is invalid"));
            }
        }
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_string())
        } else {
            tag
        };
        Ok(RemoteRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The tag, or else the digest: what `/manifests/` is asked for.
    pub fn reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// `registry/repository`, as cosign's `docker-reference` has it.
    pub fn docker_reference(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for RemoteRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
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

    #[test]
    fn references() {
        let r = RemoteRef::parse("localhost:5000/team/app:v1").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("localhost:5000", "team/app")
        );
        assert_eq!(r.reference(), "v1");
        let r = RemoteRef::parse("busybox").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let r = RemoteRef::parse(&format!("127.0.0.1:5000/a@{d}")).unwrap();
        assert_eq!(r.reference(), d);
        for bad in [
            "localhost:5000/A",
            "localhost:5000/a:b:c",
            "localhost:5000/a@sha256:1",
            "localhost:5000/../a",
        ] {
            assert!(RemoteRef::parse(bad).is_err(), "{bad}");
        }
    }
}
