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

fn valid_component(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = c.as_bytes();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    // Between alphanumeric runs: one '.', one or two '_', or any dashes.
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`
pub fn valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    matches!(bytes.first(), Some(&b) if word(b))
        && bytes.len() <= 128
        && bytes[1..]
            .iter()
            .all(|&b| word(b) || b == b'.' || b == b'-')
}

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
