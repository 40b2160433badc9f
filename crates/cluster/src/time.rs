//! Time as ECS's JSON carries it: epoch seconds, as a number with
//! fractions (awsJson1.1 timestamps).

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in epoch seconds with milliseconds.
pub fn now() -> f64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_millis() as f64) / 1000.0
}
