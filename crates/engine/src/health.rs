//! Health checks: the image's HEALTHCHECK or `--health-*` flags, run by the
//! container's monitor with `exec`, moving the container from `starting` to
//! `healthy` or `unhealthy` as docker does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::ops::ExecOptions;
use crate::{Engine, Error, Result};

/// How a container is checked; durations in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    /// docker's form: `["CMD-SHELL", "cmd"]` or `["CMD", "arg0", …]`.
    pub test: Vec<String>,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub retries: u32,
    pub start_period_ms: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthResult {
    pub start: String,
    pub end: String,
    pub exit_code: i32,
}

/// What `inspect` shows as `State.Health`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    pub status: String,
    pub failing_streak: u32,
    pub log: Vec<HealthResult>,
}

const DEFAULT: Duration = Duration::from_secs(30);

impl HealthConfig {
    /// The command to exec, or `None` when checks are disabled (`NONE`).
    pub fn command(&self) -> Option<Vec<String>> {
        match self.test.split_first() {
            Some((kind, rest)) if kind == "CMD-SHELL" => {
                Some(vec!["/bin/sh".into(), "-c".into(), rest.join(" ")])
            }
            Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => Some(rest.to_vec()),
            _ => None,
        }
    }

    /// The image config's `Healthcheck` (durations in nanoseconds), if any.
    pub fn from_image(config: &serde_json::Value) -> Option<Self> {
        let h = config.get("config")?.get("Healthcheck")?;
        let test: Vec<String> = serde_json::from_value(h.get("Test")?.clone()).ok()?;
        let ms = |key: &str| {
            h.get(key)
                .and_then(|v| v.as_u64())
                .map(|ns| ns / 1_000_000)
                .filter(|v| *v > 0)
        };
        Some(HealthConfig {
            test,
            interval_ms: ms("Interval").unwrap_or(DEFAULT.as_millis() as u64),
            timeout_ms: ms("Timeout").unwrap_or(DEFAULT.as_millis() as u64),
            retries: h
                .get("Retries")
                .and_then(|v| v.as_u64())
                .map_or(3, |r| r as u32),
            start_period_ms: ms("StartPeriod").unwrap_or(0),
        })
    }
}

/// The `--health-*` flags as given on the command line.
#[derive(Clone, Debug, Default)]
pub struct HealthFlags {
    pub cmd: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub retries: Option<u32>,
    pub start_period: Option<String>,
    pub disabled: bool,
}

impl HealthFlags {
    /// Merges the flags over the image's check.
    pub fn resolve(&self, image: Option<HealthConfig>) -> Result<Option<HealthConfig>> {
        from_flags(
            image,
            self.cmd.as_deref(),
            self.interval.as_deref(),
            self.timeout.as_deref(),
            self.retries,
            self.start_period.as_deref(),
            self.disabled,
        )
    }
}

/// `--health-*` flags over the image's check (flags win field by field).
pub fn from_flags(
    image: Option<HealthConfig>,
    cmd: Option<&str>,
    interval: Option<&str>,
    timeout: Option<&str>,
    retries: Option<u32>,
    start_period: Option<&str>,
    disabled: bool,
) -> Result<Option<HealthConfig>> {
    if disabled {
        return Ok(None);
    }
    let any_flag = cmd.is_some()
        || interval.is_some()
        || timeout.is_some()
        || retries.is_some()
        || start_period.is_some();
    let Some(mut h) = image.or_else(|| {
        any_flag.then(|| HealthConfig {
            test: vec![],
            interval_ms: DEFAULT.as_millis() as u64,
            timeout_ms: DEFAULT.as_millis() as u64,
            retries: 3,
            start_period_ms: 0,
        })
    }) else {
        return Ok(None);
    };
    let dur = |flag: &'static str, v: &str| -> Result<u64> {
        let d = humantime::parse_duration(v).map_err(|e| Error::Invalid {
            what: flag,
            value: v.to_string(),
            why: e.to_string(),
        })?;
        Ok(d.as_millis() as u64)
    };
    if let Some(c) = cmd {
        h.test = vec!["CMD-SHELL".into(), c.to_string()];
    }
    if let Some(v) = interval {
        h.interval_ms = dur("--health-interval", v)?.max(100);
    }
    if let Some(v) = timeout {
        h.timeout_ms = dur("--health-timeout", v)?.max(100);
    }
    if let Some(r) = retries {
        h.retries = r.max(1);
    }
    if let Some(v) = start_period {
        h.start_period_ms = dur("--health-start-period", v)?;
    }
    if h.command().is_none() {
        return Err(Error::Invalid {
            what: "health check",
            value: h.test.join(" "),
            why: "needs a command: --health-cmd".into(),
        });
    }
    Ok(Some(h))
}

fn now() -> String {
    humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
}

/// Runs one check: an `exec` that fails when it outlives the timeout.
fn run_one(engine: &Arc<Engine>, id: &str, command: &[String], timeout: Duration) -> i32 {
    let (tx, rx) = mpsc::channel();
    let (e, cid, cmd) = (Arc::clone(engine), id.to_string(), command.to_vec());
    std::thread::spawn(move || {
        let code = e.exec(
            &cid,
            &ExecOptions {
                command: cmd,
                ..ExecOptions::default()
            },
        );
        let _ = tx.send(code.map(i32::from).unwrap_or(-1));
    });
    rx.recv_timeout(timeout).unwrap_or(-1)
}

/// Records a check's result: healthy at once, unhealthy after `retries`
/// failures, failures during the start period not counted.
fn record(
    engine: &Engine,
    id: &str,
    config: &HealthConfig,
    code: i32,
    in_start_period: bool,
    begin: String,
) {
    let result = HealthResult {
        start: begin,
        end: now(),
        exit_code: code,
    };
    let changed = engine.records.update(id, |r| {
        let before = r.state.health.as_ref().map(|h| h.status.clone());
        let h = r.state.health.get_or_insert_with(|| Health {
            status: "starting".into(),
            ..Health::default()
        });
        if code == 0 {
            h.status = "healthy".into();
            h.failing_streak = 0;
        } else if !(in_start_period && h.status == "starting") {
            h.failing_streak += 1;
            if h.failing_streak >= config.retries {
                h.status = "unhealthy".into();
            }
        }
        h.log.push(result);
        let excess = h.log.len().saturating_sub(5);
        h.log.drain(..excess);
        let status = h.status.clone();
        (before.as_deref() != Some(status.as_str())).then(|| (status, r.clone()))
    });
    if let Ok(Some((status, r))) = changed {
        engine.container_event(estiba_events::Action::HealthStatus(status), &r);
    }
}

/// One check of a running container, as the small monitor asks for it
/// (`estiba internal-health ID`) at each interval.
pub fn check_once(engine: Engine, id: &str) -> Result<()> {
    let r = engine.records.load(id)?;
    let (Some(config), true) = (
        r.options.health.clone(),
        r.state.status == crate::Status::Running,
    ) else {
        return Ok(());
    };
    let Some(command) = config.command() else {
        return Ok(());
    };
    let started = r.state.started_at.as_deref().and_then(|t| {
        humantime::parse_rfc3339_weak(t.trim_end_matches('Z').split('.').next().unwrap_or(t)).ok()
    });
    let in_start_period = started.is_some_and(|t| {
        SystemTime::now()
            .duration_since(t)
            .unwrap_or(Duration::ZERO)
            < Duration::from_millis(config.start_period_ms)
    });
    let begin = now();
    let engine = Arc::new(engine);
    let code = run_one(
        &engine,
        id,
        &command,
        Duration::from_millis(config.timeout_ms),
    );
    record(&engine, id, &config, code, in_start_period, begin);
    Ok(())
}

/// Runs checks for one run of the container until `stop` is set (when the
/// monitor stays in estiba rather than the small monitor).
pub fn run_checks(engine: Engine, id: String, config: HealthConfig, stop: Arc<AtomicBool>) {
    let Some(command) = config.command() else {
        return;
    };
    let started = Instant::now();
    let _ = engine.records.update(&id, |r| {
        r.state.health = Some(Health {
            status: "starting".into(),
            ..Health::default()
        })
    });
    let engine = Arc::new(engine);
    loop {
        let deadline = Instant::now() + Duration::from_millis(config.interval_ms);
        while Instant::now() < deadline {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let begin = now();
        let code = run_one(
            &engine,
            &id,
            &command,
            Duration::from_millis(config.timeout_ms),
        );
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let in_start_period = started.elapsed() < Duration::from_millis(config.start_period_ms);
        record(&engine, &id, &config, code, in_start_period, begin);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_checks_and_flags_combine() {
        let config = serde_json::json!({"config": {"Healthcheck": {"Test": ["CMD", "true"], "Interval": 2_000_000_000u64, "Retries": 5}}});
        let image = HealthConfig::from_image(&config).unwrap();
        assert_eq!(
            (image.interval_ms, image.retries, image.timeout_ms),
            (2000, 5, 30_000)
        );
        assert_eq!(image.command().unwrap(), ["true"]);
        let h = from_flags(
            Some(image.clone()),
            Some("test -f /x"),
            Some("1s"),
            None,
            None,
            None,
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.command().unwrap(), ["/bin/sh", "-c", "test -f /x"]);
        assert_eq!((h.interval_ms, h.retries), (1000, 5));
        assert!(from_flags(Some(image), None, None, None, None, None, true)
            .unwrap()
            .is_none());
        assert!(from_flags(None, None, None, None, None, None, false)
            .unwrap()
            .is_none());
        assert!(from_flags(None, None, Some("soon"), None, None, None, false).is_err());
        assert!(
            from_flags(None, None, Some("1s"), None, None, None, false).is_err(),
            "interval without a command"
        );
    }
}
