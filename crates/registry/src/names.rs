//! The spec's grammar for repository names and tags. Names are validated
//! before they touch the filesystem, so `..`, absolute paths and odd
//! characters never reach a path.

use crate::error::{Code, Error, Result};

/// The longest repository name accepted (docker's limit).
pub const MAX_NAME_LEN: usize = 255;

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`
pub fn validate_name(name: &str) -> Result<()> {
    let invalid = |why: &str| {
        Error::api(
            Code::NameInvalid,
            format!("invalid repository name {name:?}: {why}"),
        )
    };
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(invalid("it must have 1 to 255 characters"));
    }
    for component in name.split('/') {
        if !valid_component(component) {
            return Err(invalid(
                "each path component is lowercase letters and digits, joined by '.', '_', '__' or dashes",
            ));
        }
    }
    Ok(())
}

use estiba_oci::reference::valid_component;
/// The one grammar of `estiba-oci`'s references, which the image store
/// parses with too.
pub use estiba_oci::reference::valid_tag;

pub fn validate_tag(tag: &str) -> Result<()> {
    if valid_tag(tag) {
        Ok(())
    } else {
        Err(Error::api(
            Code::TagInvalid,
            format!("invalid tag {tag:?}: letters, digits, '_', '.' and '-', at most 128, not starting with '.' or '-'"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_grammar() {
        for good in ["a", "team/app/api", "a.b_c__d---e/f0", "library/busybox"] {
            validate_name(good).unwrap();
        }
        for bad in [
            "",
            "A",
            "a//b",
            "/a",
            "a/",
            "..",
            "a/../b",
            "a/./b",
            "a___b",
            "a-",
            "-a",
            "a..b",
            "a b",
            "a\0b",
            &"a".repeat(256),
        ] {
            assert_eq!(
                validate_name(bad).unwrap_err().code(),
                Some(Code::NameInvalid),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn tags_follow_the_grammar() {
        assert!(valid_tag("latest") && valid_tag("_x") && valid_tag("v1.2-rc_3"));
        assert!(valid_tag(&"a".repeat(128)));
        for bad in ["", ".a", "-a", "a/b", "a:b", &"a".repeat(129), "sha256:abc"] {
            assert!(!valid_tag(bad), "{bad:?}");
        }
    }
}
