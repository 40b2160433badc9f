//! ECS task definitions: any input is accepted or refused with an ECS
//! exception, never a panic; an accepted definition, printed and registered
//! again, is accepted as the same definition.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(r) = estiba_ecs::taskdef::register(text) {
        let printed = serde_json::to_string(&r.definition).expect("a definition prints");
        let again = estiba_ecs::taskdef::register(&printed).expect("a printed definition registers");
        assert_eq!(again.definition, r.definition);
    }
});
