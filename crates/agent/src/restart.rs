//! A container's `restartPolicy`, as ECS's agent applies it: an exited
//! container is started again in place, without replacing the task,
//! unless its exit code is ignored or it ran less than the attempt period
//! since it last started or was restarted (so a container that keeps
//! failing at once ends the task instead of looping).

use estiba_ecs::taskdef::ContainerDefinition;
use serde_json::Value;

/// ECS's default attempt period.
pub const DEFAULT_PERIOD_SECS: f64 = 300.0;

#[derive(Clone, Debug, PartialEq)]
pub struct RestartPolicy {
    pub ignored_exit_codes: Vec<i64>,
    pub attempt_period_secs: f64,
}

impl RestartPolicy {
    /// The container's enabled policy, if it has one.
    pub fn of(def: &ContainerDefinition) -> Option<RestartPolicy> {
        let p = def.restart_policy.as_ref()?;
        if p.get("enabled").and_then(Value::as_bool) != Some(true) {
            return None;
        }
        let ignored_exit_codes = p
            .get("ignoredExitCodes")
            .and_then(Value::as_array)
            .map(|codes| codes.iter().filter_map(Value::as_i64).collect())
            .unwrap_or_default();
        let attempt_period_secs = p
            .get("restartAttemptPeriod")
            .and_then(Value::as_f64)
            .unwrap_or(DEFAULT_PERIOD_SECS);
        Some(RestartPolicy {
            ignored_exit_codes,
            attempt_period_secs,
        })
    }

    /// Whether a container that exited with `code`, `ran_secs` after it
    /// last started (or was restarted), is started again.
    pub fn restarts(&self, code: i32, ran_secs: f64) -> bool {
        !self.ignored_exit_codes.contains(&i64::from(code)) && ran_secs >= self.attempt_period_secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(policy: Value) -> ContainerDefinition {
        serde_json::from_value(serde_json::json!({
            "name": "a", "image": "x", "restartPolicy": policy,
        }))
        .unwrap()
    }

    #[test]
    fn exits_restart_after_the_period_unless_ignored() {
        let p = RestartPolicy::of(&def(serde_json::json!({
            "enabled": true, "ignoredExitCodes": [0], "restartAttemptPeriod": 60,
        })))
        .unwrap();
        assert!(p.restarts(3, 61.0));
        assert!(!p.restarts(3, 59.0), "failed too soon after its start");
        assert!(!p.restarts(0, 600.0), "an ignored exit code");
        let default = RestartPolicy::of(&def(serde_json::json!({"enabled": true}))).unwrap();
        assert_eq!(default.attempt_period_secs, 300.0);
        assert!(RestartPolicy::of(&def(serde_json::json!({"enabled": false}))).is_none());
    }
}
