//! Maps a `/v2/...` path to an endpoint. Repository names have any number
//! of components, so the endpoint is read from the end of the path, where
//! its fixed words are.

use crate::error::Result;
use crate::names::validate_name;

#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags { name: String },
    /// `/v2/<name>/manifests/<reference>`
    Manifest { name: String, reference: String },
    /// `/v2/<name>/blobs/<digest>`
    Blob { name: String, digest: String },
    /// `/v2/<name>/blobs/uploads/`
    Uploads { name: String },
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload { name: String, id: String },
    /// `/v2/<name>/referrers/<digest>`
    Referrers { name: String, digest: String },
}

impl Route {
    pub fn name(&self) -> Option<&str> {
        match self {
            Route::Base | Route::Catalog => None,
            Route::Tags { name }
            | Route::Manifest { name, .. }
            | Route::Blob { name, .. }
            | Route::Uploads { name }
            | Route::Upload { name, .. }
            | Route::Referrers { name, .. } => Some(name),
        }
    }

    /// A label for metrics and logs, without names or digests.
    pub fn label(&self) -> &'static str {
        match self {
            Route::Base => "base",
            Route::Catalog => "catalog",
            Route::Tags { .. } => "tags",
            Route::Manifest { .. } => "manifest",
            Route::Blob { .. } => "blob",
            Route::Uploads { .. } | Route::Upload { .. } => "upload",
            Route::Referrers { .. } => "referrers",
        }
    }
}

/// Parses the path after `/v2/`. `None` means no such endpoint (404); an
/// invalid repository name is an error (NAME_INVALID).
pub fn parse(rest: &str) -> Result<Option<Route>> {
    if rest.is_empty() {
        return Ok(Some(Route::Base));
    }
    if rest == "_catalog" {
        return Ok(Some(Route::Catalog));
    }
    let segs: Vec<&str> = rest.split('/').collect();
    let n = segs.len();
    let name_of = |upto: usize| -> Result<String> {
        let name = segs[..upto].join("/");
        validate_name(&name)?;
        Ok(name)
    };
    let route = match segs.as_slice() {
        [.., "tags", "list"] if n >= 3 => Route::Tags {
            name: name_of(n - 2)?,
        },
        [.., "blobs", "uploads", ""] | [.., "blobs", "uploads"] => {
            let upto = if segs[n - 1].is_empty() { n - 3 } else { n - 2 };
            if upto == 0 {
                return Ok(None);
            }
            Route::Uploads {
                name: name_of(upto)?,
            }
        }
        [.., "blobs", "uploads", id] if n >= 4 => Route::Upload {
            name: name_of(n - 3)?,
            id: (*id).to_string(),
        },
        [.., "blobs", digest] if n >= 3 && !digest.is_empty() => Route::Blob {
            name: name_of(n - 2)?,
            digest: (*digest).to_string(),
        },
        [.., "manifests", reference] if n >= 3 && !reference.is_empty() => Route::Manifest {
            name: name_of(n - 2)?,
            reference: (*reference).to_string(),
        },
        [.., "referrers", digest] if n >= 3 && !digest.is_empty() => Route::Referrers {
            name: name_of(n - 2)?,
            digest: (*digest).to_string(),
        },
        _ => return Ok(None),
    };
    Ok(Some(route))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;

    fn route(p: &str) -> Route {
        parse(p).unwrap().unwrap()
    }

    #[test]
    fn multi_segment_names_and_fixed_words_in_names() {
        assert_eq!(route(""), Route::Base);
        assert_eq!(
            route("team/app/api/manifests/latest"),
            Route::Manifest {
                name: "team/app/api".into(),
                reference: "latest".into()
            }
        );
        assert_eq!(
            route("a/blobs/manifests/x"),
            Route::Manifest {
                name: "a/blobs".into(),
                reference: "x".into()
            }
        );
        assert_eq!(
            route("a/b/blobs/uploads/"),
            Route::Uploads { name: "a/b".into() }
        );
        assert_eq!(
            route("a/blobs/uploads/abc"),
            Route::Upload {
                name: "a".into(),
                id: "abc".into()
            }
        );
        assert_eq!(route("x/tags/list"), Route::Tags { name: "x".into() });
        assert_eq!(
            route("x/referrers/sha256:1"),
            Route::Referrers {
                name: "x".into(),
                digest: "sha256:1".into()
            }
        );
        assert!(parse("manifests/x").unwrap().is_none());
        assert!(parse("a/unknown/x").unwrap().is_none());
        for bad in ["../etc/manifests/x", "A/manifests/x", "a//b/tags/list"] {
            assert_eq!(
                parse(bad).unwrap_err().code(),
                Some(Code::NameInvalid),
                "{bad}"
            );
        }
    }
}
