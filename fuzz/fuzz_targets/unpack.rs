//! Any byte string as a layer: unpacking may fail, but must not panic and
//! must not write outside its destination.
#![no_main]

use estiba_oci::unpack::{unpack, Options, Whiteouts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let outer = tempfile::tempdir().expect("tempdir");
    let dest = outer.path().join("root");
    std::fs::create_dir(&dest).expect("mkdir");
    for whiteouts in [Whiteouts::Apply, Whiteouts::Overlay { userxattr: true }] {
        let _ = unpack(data, &dest, Options { whiteouts, rootless: true });
    }
    // Only `root` may exist beside the destination.
    let siblings: Vec<_> = std::fs::read_dir(outer.path()).expect("read_dir").collect();
    assert_eq!(siblings.len(), 1, "the layer wrote outside its root");
});
