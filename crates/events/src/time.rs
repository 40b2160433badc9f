//! The time forms `--since` and `--until` take, as docker's do: seconds
//! since the epoch (`1733043600`, `1733043600.5`), an RFC 3339 time, or a
//! duration before now (`10m`, `1h30m`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Error, Result};

pub fn parse(value: &str, now: SystemTime) -> Result<SystemTime> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Ok(UNIX_EPOCH + Duration::from_secs_f64(secs));
        }
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(v) {
        return Ok(t);
    }
    if let Ok(ago) = humantime::parse_duration(v) {
        return Ok(now.checked_sub(ago).unwrap_or(UNIX_EPOCH));
    }
    Err(Error::Invalid {
        what: "time",
        value: value.to_string(),
        why: "expected seconds since the epoch, an RFC 3339 time or a duration such as 10m".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(
            parse("999400", now).unwrap(),
            UNIX_EPOCH + Duration::from_secs(999_400)
        );
        assert_eq!(
            parse("10m", now).unwrap(),
            UNIX_EPOCH + Duration::from_secs(999_400)
        );
        assert_eq!(
            parse("1970-01-12T13:46:40Z", now).unwrap(),
            UNIX_EPOCH + Duration::from_secs(1_000_000)
        );
        assert!(parse("yesterday-ish", now).is_err());
        assert!(parse("-5", now).is_err());
    }
}
