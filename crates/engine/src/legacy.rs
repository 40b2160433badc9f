//! Records written before the options were typed kept each flag as the
//! string the user gave. They are read by turning those strings into the
//! typed values, through the same parsers the CLI uses, before serde sees
//! the record: a container made by an older estiba keeps its mounts, ports,
//! egress rules, secrets and security options.

use serde_json::{Map, Value};

use crate::options::{parse_egress, parse_mount, parse_publish, parse_security_opts};
use crate::options::{parse_tmpfs, parse_volume, MountSpec};
use crate::secrets::parse_ref;
use crate::{Error, Result};

/// Upgrades a record's `Options` object in place; typed options pass
/// through unchanged.
pub(crate) fn upgrade(options: &mut Value) -> Result<()> {
    let Some(o) = options.as_object_mut() else {
        return Ok(());
    };
    upgrade_mounts(o)?;
    if let Some(publish) = strings(o, "publish") {
        o.insert("publish".into(), to_value(parse_publish(&publish)?)?);
    }
    if let Some(allow) = o.remove("egress_allow") {
        let allow: Vec<String> = serde_json::from_value(allow).unwrap_or_default();
        let egress = o.get("egress").and_then(Value::as_str).map(str::to_string);
        o.insert(
            "egress".into(),
            to_value(parse_egress(egress.as_deref(), &allow)?)?,
        );
    }
    if let Some(secrets) = strings(o, "secrets") {
        let refs = secrets
            .iter()
            .map(|s| parse_ref(s))
            .collect::<Result<Vec<_>>>()?;
        o.insert("secrets".into(), to_value(refs)?);
    }
    if let Some(opts) = o.remove("security_opt") {
        let opts: Vec<String> = serde_json::from_value(opts).unwrap_or_default();
        o.insert("security".into(), to_value(parse_security_opts(&opts)?)?);
    }
    Ok(())
}

/// `volumes` and `tmpfs` went into `mounts`, whose entries were `--mount`
/// strings.
fn upgrade_mounts(o: &mut Map<String, Value>) -> Result<()> {
    let volumes = take_strings(o, "volumes");
    let tmpfs = take_strings(o, "tmpfs");
    let mut mounts: Vec<MountSpec> = Vec::new();
    for v in &volumes {
        mounts.push(parse_volume(v)?);
    }
    for t in &tmpfs {
        mounts.push(parse_tmpfs(t)?);
    }
    let typed = match o.remove("mounts") {
        Some(Value::Array(entries)) => entries,
        _ => Vec::new(),
    };
    for entry in typed {
        mounts.push(match entry {
            Value::String(spec) => parse_mount(&spec)?,
            other => serde_json::from_value(other).map_err(invalid)?,
        });
    }
    o.insert("mounts".into(), to_value(mounts)?);
    Ok(())
}

/// The array at `key` if every entry is a string (the old form).
fn strings(o: &Map<String, Value>, key: &str) -> Option<Vec<String>> {
    let entries = o.get(key)?.as_array()?;
    if entries.is_empty() || !entries.iter().all(Value::is_string) {
        return None;
    }
    serde_json::from_value(Value::Array(entries.clone())).ok()
}

fn take_strings(o: &mut Map<String, Value>, key: &str) -> Vec<String> {
    o.remove(key)
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

fn to_value(v: impl serde::Serialize) -> Result<Value> {
    serde_json::to_value(v).map_err(invalid)
}

fn invalid(e: serde_json::Error) -> Error {
    Error::Invalid {
        what: "container record",
        value: String::new(),
        why: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::CreateOptions;
    use serde_json::json;

    #[test]
    fn old_string_options_become_typed_values() {
        let mut old = json!({
            "command": ["true"], "env": [], "read_only": false, "cap_add": [], "cap_drop": [],
            "security_opt": ["no-new-privileges=false", "seccomp=unconfined"],
            "privileged": false, "network": "app", "runtime": null,
            "restart": {"Name": "no"}, "auto_remove": false,
            "ip": "10.1.0.5", "publish": ["8080:80", "127.0.0.1:9000-9001:90-91/udp"],
            "egress": null, "egress_allow": ["10.0.0.0/8:443"],
            "add_hosts": ["db:10.0.0.9"], "dns": ["1.1.1.1"],
            "volumes": ["/srv:/data:ro", "cache:/cache"], "tmpfs": ["/run:size=1m"],
            "mounts": ["type=tmpfs,target=/t"], "stop_signal": "TERM",
            "secrets": ["token,target=/etc/token"],
        });
        upgrade(&mut old).unwrap();
        let o: CreateOptions = serde_json::from_value(old).unwrap();
        assert_eq!(o.mounts.len(), 4);
        assert!(matches!(
            &o.mounts[0],
            MountSpec::Bind {
                read_only: true,
                ..
            }
        ));
        assert!(
            matches!(&o.mounts[3], MountSpec::Tmpfs { destination, .. } if destination == "/t")
        );
        assert_eq!(o.publish.len(), 3, "a range is one mapping per port");
        assert_eq!(o.publish[2].container_port, 91);
        let egress = o.egress.unwrap();
        assert!(egress.deny && egress.allow.len() == 1);
        assert_eq!(o.secrets[0].target, "/etc/token");
        assert!(!o.security.no_new_privileges);
        assert_eq!(o.stop_signal, Some(nix::sys::signal::Signal::SIGTERM));
        assert_eq!(o.ip.unwrap().to_string(), "10.1.0.5");
        assert_eq!(o.add_hosts[0].to_string(), "db:10.0.0.9");
    }

    #[test]
    fn typed_options_pass_through_unchanged() {
        let o = CreateOptions {
            mounts: crate::options::parse_mounts(&["/a:/b".into()], &["/t".into()], &[]).unwrap(),
            publish: parse_publish(&["80".into()]).unwrap(),
            secrets: vec![parse_ref("s").unwrap()],
            stop_signal: Some(nix::sys::signal::Signal::SIGUSR1),
            ..CreateOptions::default()
        };
        let mut value = serde_json::to_value(&o).unwrap();
        let before = value.clone();
        upgrade(&mut value).unwrap();
        assert_eq!(value, before);
        let back: CreateOptions = serde_json::from_value(value).unwrap();
        assert_eq!(back.mounts, o.mounts);
        assert_eq!(back.publish, o.publish);
        assert_eq!(back.stop_signal, o.stop_signal);
    }

    #[test]
    fn a_bad_old_string_is_an_error_not_a_lost_mount() {
        let mut old = json!({"volumes": ["relative:/x:zz"]});
        assert!(upgrade(&mut old).is_err());
    }
}
