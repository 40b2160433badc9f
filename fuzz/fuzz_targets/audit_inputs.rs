//! The audit's parsers of files people write: the admission policy, the
//! ignore file, Containerfiles and task definitions. The first byte picks
//! one, the rest is its text. Invariants: no panic; a parsed policy
//! answers for every rule; every finding names a catalog rule and a line
//! within the file.
#![no_main]

use estiba_audit::ignore::Ignore;
use estiba_audit::policy::{Policy, Subject};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let lines = text.lines().count().max(1);
    match which % 4 {
        0 => {
            if let Ok(policy) = Policy::parse("policy.toml", text) {
                for rule in estiba_audit::RULES {
                    let _ = policy.action(rule);
                }
                let _ = policy.judge(&[], &Subject::default());
            }
        }
        1 => {
            let _ = Ignore::parse(".estibaignore", text);
        }
        2 => {
            if let Ok(findings) = estiba_audit::containerfile::audit("Containerfile", text) {
                for f in findings {
                    assert!(f.location.line() >= 1 && f.location.line() <= lines, "{f:?}");
                }
            }
        }
        _ => {
            let options = estiba_audit::taskdef::Options::default();
            if let Ok(findings) = estiba_audit::taskdef::audit("td.json", text, &options) {
                for f in findings {
                    assert!(f.location.line() >= 1 && f.location.line() <= lines, "{f:?}");
                }
            }
        }
    }
});
