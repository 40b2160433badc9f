//! Request paths, repository names, tags, digests and remote references: no
//! panic, and nothing accepted can climb out of a directory.
#![no_main]

use estiba_registry::client::RemoteRef;
use estiba_registry::digest::Digest;
use estiba_registry::names::{valid_tag, validate_name};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if validate_name(text).is_ok() {
        assert!(!text.split('/').any(|c| c.is_empty() || c == "." || c == ".." || c.starts_with('_')));
    }
    if valid_tag(text) {
        assert!(!text.contains('/') && !text.starts_with('.'));
    }
    if let Ok(d) = text.parse::<Digest>() {
        assert_eq!(d.to_string(), text);
        assert!(!d.hex().contains('/'));
    }
    if let Ok(r) = RemoteRef::parse(text) {
        assert!(validate_name(&r.repository).is_ok());
    }
});
