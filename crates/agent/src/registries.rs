//! Registry mirrors from a containers-registries.conf(5) file
//! (`--registries-conf FILE`), the format podman reads:
//!
//! ```toml
//! [[registry]]
//! prefix = "docker.io"
//! location = "docker.io"
//! [[registry.mirror]]
//! location = "127.0.0.1:5000"
//! ```
//!
//! An image whose `registry/repository` starts with a prefix is tried at
//! each mirror in order, then at the registry's location. Only these
//! fields are read; the rest of the format is accepted and ignored.

use std::path::Path;

use serde::Deserialize;

use crate::{Error, Result};

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Registries {
    #[serde(default)]
    registry: Vec<Entry>,
}

#[derive(Clone, Debug, Deserialize)]
struct Entry {
    prefix: Option<String>,
    location: Option<String>,
    #[serde(default)]
    mirror: Vec<Mirror>,
}

#[derive(Clone, Debug, Deserialize)]
struct Mirror {
    location: String,
}

impl Registries {
    pub fn load(path: &Path) -> Result<Registries> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Invalid(format!("--registries-conf {}: {e}", path.display())))?;
        Self::parse(&text)
            .map_err(|e| Error::Invalid(format!("--registries-conf {}: {e}", path.display())))
    }

    pub fn parse(text: &str) -> std::result::Result<Registries, String> {
        let r: Registries = toml::from_str(text).map_err(|e| e.to_string())?;
        if let Some(e) = r
            .registry
            .iter()
            .find(|e| e.prefix.is_none() && e.location.is_none())
        {
            return Err(format!(
                "a [[registry]] has neither prefix nor location: {e:?}"
            ));
        }
        Ok(r)
    }

    /// Where to pull `name` (`registry/repository[:tag]`, fully qualified)
    /// from, in order: its mirrors, then its location. Just `name` when no
    /// prefix matches. The longest matching prefix wins, as in podman.
    pub fn sources(&self, name: &str) -> Vec<String> {
        let best = self
            .registry
            .iter()
            .filter_map(|e| {
                let prefix = e.prefix.as_deref().or(e.location.as_deref())?;
                let rest = name.strip_prefix(prefix)?;
                (rest.is_empty() || rest.starts_with(['/', ':', '@'])).then_some((
                    prefix.len(),
                    e,
                    rest,
                ))
            })
            .max_by_key(|(len, _, _)| *len);
        let Some((_, entry, rest)) = best else {
            return vec![name.to_string()];
        };
        let mut out: Vec<String> = entry
            .mirror
            .iter()
            .map(|m| format!("{}{rest}", m.location))
            .collect();
        out.push(match &entry.location {
            Some(l) => format!("{l}{rest}"),
            None => name.to_string(),
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = r#"
unqualified-search-registries = ["docker.io"]

[[registry]]
prefix = "docker.io"
location = "docker.io"
[[registry.mirror]]
location = "127.0.0.1:5000/hub"
[[registry.mirror]]
location = "mirror.internal"

[[registry]]
prefix = "docker.io/library/special"
location = "special.example.com/images"
"#;

    #[test]
    fn mirrors_come_first_and_the_longest_prefix_wins() {
        let r = Registries::parse(CONF).unwrap();
        assert_eq!(
            r.sources("docker.io/library/nginx:latest"),
            [
                "127.0.0.1:5000/hub/library/nginx:latest",
                "mirror.internal/library/nginx:latest",
                "docker.io/library/nginx:latest",
            ]
        );
        assert_eq!(
            r.sources("docker.io/library/special:1"),
            ["special.example.com/images:1"]
        );
        assert_eq!(r.sources("quay.io/x/y:1"), ["quay.io/x/y:1"]);
        // A prefix matches whole path components only.
        assert_eq!(r.sources("docker.iox/a:1"), ["docker.iox/a:1"]);
    }

    #[test]
    fn bad_files_are_refused() {
        assert!(Registries::parse("[[registry]]\nmirror = 3\n").is_err());
        assert!(Registries::parse("[[registry]]\ninsecure = true\n").is_err());
        assert!(Registries::parse("not toml at all [").is_err());
    }
}
