//! ECR's lifecycle-policy and repository-policy JSON: any text is taken or
//! refused with a message, never a panic; a taken lifecycle policy has its
//! rules in priority order.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(rules) = estiba_registry::ecr::lifecycle_json::parse(text) {
        assert!(rules.windows(2).all(|w| w[0].0 < w[1].0));
    }
    let _ = estiba_registry::ecr::repository_policy::parse(text);
});
