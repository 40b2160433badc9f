//! Seccomp profiles: Docker's profile format, resolved for this host's
//! architecture, kernel and the container's capabilities into the OCI form.
//!
//! The default profile is Docker's own (moby/profiles, Apache-2.0), carried in
//! `profiles/seccomp-default.json`.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::Error;

const DEFAULT_PROFILE: &str = include_str!("../profiles/seccomp-default.json");

/// Docker's profiles write `null` for empty lists.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerProfile {
    default_action: String,
    default_errno_ret: Option<u32>,
    #[serde(default, deserialize_with = "nullable")]
    arch_map: Vec<ArchMap>,
    #[serde(default, deserialize_with = "nullable")]
    syscalls: Vec<DockerRule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: String,
    #[serde(default, deserialize_with = "nullable")]
    sub_architectures: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerRule {
    names: Vec<String>,
    action: String,
    #[serde(default, deserialize_with = "nullable")]
    args: Vec<Value>,
    errno_ret: Option<u32>,
    #[serde(default, deserialize_with = "nullable")]
    includes: Filter,
    #[serde(default, deserialize_with = "nullable")]
    excludes: Filter,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default, deserialize_with = "nullable")]
    caps: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    arches: Vec<String>,
    min_kernel: Option<String>,
}

/// What a profile is resolved against.
pub struct Target<'a> {
    /// Go-style architecture name: `amd64`, `arm64`.
    pub arch: &'a str,
    /// `CAP_*` names the container holds.
    pub caps: &'a [String],
    /// The running kernel, `(major, minor)`.
    pub kernel: (u32, u32),
}

/// Docker's default profile, resolved for the native ABI only.
///
/// Docker also admits the 32-bit compat ABIs (x86 and x32 on amd64). estiba's
/// default filter does not: a compat syscall is refused (the process gets
/// SIGSYS). That closes the compat entry points, a recurring source of kernel
/// bugs, and the filter compiles in about half the time. Images with 32-bit
/// binaries can pass Docker's profile with `--security-opt seccomp=FILE`.
pub fn default_profile(target: &Target) -> Result<Value, Error> {
    let mut profile = resolve(DEFAULT_PROFILE, target)?;
    if let Some(arches) = profile["architectures"].as_array_mut() {
        arches.truncate(1);
    }
    Ok(profile)
}

/// Resolves a profile in Docker's format into an OCI `linux.seccomp` value. A
/// profile already in OCI form (it has `architectures`) passes through.
pub fn resolve(profile: &str, target: &Target) -> Result<Value, Error> {
    let raw: Value = serde_json::from_str(profile)
        .map_err(|e| Error::Seccomp(format!("is not valid JSON: {e}")))?;
    if raw.get("architectures").is_some() && raw.get("archMap").is_none() {
        return Ok(raw);
    }
    let p: DockerProfile =
        serde_json::from_value(raw).map_err(|e| Error::Seccomp(format!("is malformed: {e}")))?;
    let libseccomp_arch = match target.arch {
        "amd64" => "SCMP_ARCH_X86_64",
        "arm64" => "SCMP_ARCH_AARCH64",
        other => {
            return Err(Error::Seccomp(format!(
                "has no mapping for architecture {other}"
            )))
        }
    };
    let architectures: Vec<String> = p
        .arch_map
        .iter()
        .filter(|m| m.architecture == libseccomp_arch)
        .flat_map(|m| {
            std::iter::once(m.architecture.clone()).chain(m.sub_architectures.iter().cloned())
        })
        .collect();
    let mut syscalls = Vec::new();
    for rule in &p.syscalls {
        if !applies(rule, target) {
            continue;
        }
        let mut out = json!({ "names": rule.names, "action": rule.action });
        if !rule.args.is_empty() {
            out["args"] = Value::Array(rule.args.clone());
        }
        if let Some(errno) = rule.errno_ret {
            out["errnoRet"] = json!(errno);
        }
        syscalls.push(out);
    }
    let mut out = json!({
        "defaultAction": p.default_action,
        "architectures": architectures,
        "syscalls": syscalls,
    });
    if let Some(errno) = p.default_errno_ret {
        out["defaultErrnoRet"] = json!(errno);
    }
    Ok(out)
}

fn applies(rule: &DockerRule, t: &Target) -> bool {
    let has_cap = |c: &String| t.caps.contains(c);
    let inc = &rule.includes;
    let exc = &rule.excludes;
    let included = (inc.arches.is_empty() || inc.arches.iter().any(|a| a == t.arch))
        && inc.caps.iter().all(has_cap)
        && inc
            .min_kernel
            .as_deref()
            .is_none_or(|k| parse_kernel(k) <= t.kernel);
    let excluded = exc.arches.iter().any(|a| a == t.arch) || exc.caps.iter().any(has_cap);
    included && !excluded
}

/// `"6.1.0-18-amd64"` → `(6, 1)`.
pub fn parse_kernel(release: &str) -> (u32, u32) {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(profile: &Value) -> Vec<String> {
        profile["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| {
                r["names"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n.as_str().unwrap().to_string())
            })
            .collect()
    }

    #[test]
    fn default_profile_resolves_for_amd64_without_admin_caps() {
        let caps = vec!["CAP_CHOWN".to_string(), "CAP_SYS_CHROOT".to_string()];
        let p = default_profile(&Target {
            arch: "amd64",
            caps: &caps,
            kernel: (6, 1),
        })
        .unwrap();
        assert_eq!(p["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(
            p["architectures"],
            json!(["SCMP_ARCH_X86_64"]),
            "native ABI only"
        );
        let n = names(&p);
        assert!(n.contains(&"read".to_string()));
        assert!(
            n.contains(&"arch_prctl".to_string()),
            "amd64-only rule kept"
        );
        assert!(
            n.contains(&"chroot".to_string()),
            "CAP_SYS_CHROOT rule kept"
        );
        assert!(
            !n.contains(&"mount".to_string()),
            "mount needs CAP_SYS_ADMIN"
        );
        assert!(!n.contains(&"reboot".to_string()));
        assert!(!n.contains(&"s390_runtime_instr".to_string()));
        // clone3 answers ENOSYS so libc falls back to clone.
        let clone3 = p["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["names"][0] == "clone3")
            .unwrap();
        assert_eq!(clone3["errnoRet"], 38);
    }

    #[test]
    fn admin_caps_widen_the_profile() {
        let caps = vec!["CAP_SYS_ADMIN".to_string()];
        let p = default_profile(&Target {
            arch: "amd64",
            caps: &caps,
            kernel: (6, 1),
        })
        .unwrap();
        assert!(names(&p).contains(&"mount".to_string()));
    }

    #[test]
    fn a_profile_file_keeps_its_compat_architectures() {
        let t = Target {
            arch: "amd64",
            caps: &[],
            kernel: (6, 1),
        };
        let p = resolve(DEFAULT_PROFILE, &t).unwrap();
        assert_eq!(
            p["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
    }

    #[test]
    fn bad_profiles_are_refused() {
        let t = Target {
            arch: "amd64",
            caps: &[],
            kernel: (6, 1),
        };
        assert!(resolve("not json", &t).is_err());
        assert!(resolve(r#"{"syscalls": 3}"#, &t).is_err());
        assert!(resolve(
            r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#,
            &Target {
                arch: "mips",
                caps: &[],
                kernel: (6, 1)
            }
        )
        .is_err());
    }

    #[test]
    fn kernel_versions_parse() {
        assert_eq!(parse_kernel("6.18.44-fc-v595"), (6, 18));
        assert_eq!(parse_kernel("4.8"), (4, 8));
    }
}
