//! A remote image reference: which registry, which repository, which tag
//! or digest.

use std::fmt;

use crate::error::{Error, Result};
use crate::names::validate_name;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteRef {
    /// `host[:port]`
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl RemoteRef {
    /// Parses `[host[:port]/]repo[:tag][@digest]` with the one reference
    /// grammar of `estiba-oci` (the image store's too). Without a registry
    /// host the reference means Docker Hub, as docker has it.
    pub fn parse(s: &str) -> Result<RemoteRef> {
        let bad = |why: String| Error::Config(format!("image reference {s:?}: {why}"));
        let r: estiba_oci::Reference = s
            .parse()
            .map_err(|e: estiba_oci::Error| bad(e.to_string()))?;
        let repository = r.path();
        validate_name(&repository).map_err(|e| bad(e.to_string()))?;
        Ok(RemoteRef {
            registry: r.domain().to_string(),
            repository,
            tag: r.tag().map(str::to_string),
            digest: r.digest().map(ToString::to_string),
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
        // An upper-case first component is a registry host, as for docker
        // and the image store.
        let r = RemoteRef::parse("Registry/team/app").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("Registry", "team/app")
        );
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
