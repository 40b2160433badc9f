//! Pushed manifests: any bytes, any Content-Type. Parsing never panics, and
//! what it accepts names only valid digests and a known media type.
#![no_main]

use estiba_registry::manifest::ParsedManifest;
use libfuzzer_sys::fuzz_target;

const TYPES: [Option<&str>; 4] = [
    None,
    Some("application/vnd.oci.image.manifest.v1+json"),
    Some("application/vnd.oci.image.index.v1+json"),
    Some("application/json"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let content_type = TYPES[usize::from(selector) % TYPES.len()];
    if let Ok(m) = ParsedManifest::parse(body, content_type) {
        for d in m.blobs.iter().chain(&m.manifests).chain(&m.subject) {
            let again: estiba_registry::digest::Digest = d.to_string().parse().expect("digests print and parse");
            assert_eq!(&again, d);
        }
        assert!(m.media_type.starts_with("application/vnd."));
    }
});
