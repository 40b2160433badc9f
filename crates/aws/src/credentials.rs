//! Credentials, region and endpoint, resolved as the AWS CLI resolves
//! them, so a user's `~/.aws` setup (and the variables CI sets) work with
//! estiba's clients unchanged:
//!
//! - credentials: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and
//!   `AWS_SESSION_TOKEN`), unless a profile was given with `--profile`;
//!   else the profile (`--profile`, `AWS_PROFILE`, `default`) from
//!   `~/.aws/credentials` (`AWS_SHARED_CREDENTIALS_FILE`) or
//!   `~/.aws/config` (`AWS_CONFIG_FILE`);
//! - region: `--region`, `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's
//!   `region`, else us-east-1;
//! - endpoint: `--endpoint-url`, `AWS_ENDPOINT_URL_<SERVICE>`,
//!   `AWS_ENDPOINT_URL`, the profile's `endpoint_url`, else estiba's
//!   control plane on this host. `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`
//!   (or the profile's `ignore_configured_endpoint_urls`) skips the
//!   variables and the profile.
//!
//! A profile's settings are its `[profile NAME]` section of the config
//! file (`[default]` for the default one), overridden key by key by its
//! `[NAME]` section of the credentials file, as botocore merges them.
//! The environment comes in as a lookup function, so nothing here reads
//! the process's own.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The region requests are signed for when nothing names one.
pub const DEFAULT_REGION: &str = "us-east-1";
/// The endpoint when nothing names one: `estiba cluster serve`'s default
/// address.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:8440";

/// An access key, with the session token of temporary credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

/// The key id only: secrets stay out of logs and error messages.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// What the command line gave (`--profile`, `--region`,
/// `--endpoint-url`); None defers to the environment and the files.
#[derive(Clone, Debug, Default)]
pub struct Flags {
    pub profile: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

/// Who calls, and where.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub profile: String,
    pub credentials: Credentials,
    pub region: String,
    pub endpoint: String,
}

/// One section's settings, keys lowercased.
type Settings = BTreeMap<String, String>;
/// An INI file's sections by name.
type Sections = BTreeMap<String, Settings>;

/// Resolves credentials, region and endpoint for `service` (its endpoint
/// variable is `AWS_ENDPOINT_URL_<SERVICE>`, `ECS` for `ecs`). `env` looks
/// a variable up; an empty value counts as unset, as in the AWS CLI.
pub fn resolve(
    flags: &Flags,
    service: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Resolved> {
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    let named = flags.profile.clone().or_else(|| var("AWS_PROFILE"));
    let name = named.clone().unwrap_or_else(|| "default".to_string());
    let files = Files::locate(&var);
    let profile = files.profile(&name)?;
    // As in the AWS CLI, an explicit `--profile` outranks the
    // environment's keys (AWS_PROFILE does not).
    let from_env = match flags.profile {
        Some(_) => None,
        None => env_credentials(&var)?,
    };
    let credentials = match (from_env, &profile) {
        (Some(c), _) => c,
        (None, Some(p)) => profile_credentials(&name, p, &files)?,
        (None, None) if named.is_some() => return Err(Error::ProfileNotFound(name)),
        (None, None) => return Err(files.no_credentials(&name)),
    };
    let setting = |key: &str| profile.as_ref().and_then(|p| setting(p, key));
    let region = flags
        .region
        .clone()
        .or_else(|| var("AWS_REGION"))
        .or_else(|| var("AWS_DEFAULT_REGION"))
        .or_else(|| setting("region"))
        .unwrap_or_else(|| DEFAULT_REGION.to_string());
    let endpoint = flags
        .endpoint_url
        .clone()
        .or_else(|| configured_endpoint(service, &var, &setting))
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
    Ok(Resolved {
        profile: name,
        credentials,
        region,
        endpoint,
    })
}

/// The endpoint the environment or the profile names, unless they are to
/// be ignored.
fn configured_endpoint(
    service: &str,
    var: &impl Fn(&str) -> Option<String>,
    setting: &impl Fn(&str) -> Option<String>,
) -> Option<String> {
    let ignore = var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .or_else(|| setting("ignore_configured_endpoint_urls"))
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if ignore {
        return None;
    }
    let service_var = format!(
        "AWS_ENDPOINT_URL_{}",
        service.to_ascii_uppercase().replace([' ', '-'], "_")
    );
    var(&service_var)
        .or_else(|| var("AWS_ENDPOINT_URL"))
        .or_else(|| setting("endpoint_url"))
}

fn setting(settings: &Settings, key: &str) -> Option<String> {
    settings.get(key).filter(|v| !v.is_empty()).cloned()
}

fn env_credentials(var: &impl Fn(&str) -> Option<String>) -> Result<Option<Credentials>> {
    match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(Some(Credentials {
            access_key_id,
            secret_access_key,
            session_token: var("AWS_SESSION_TOKEN"),
        })),
        (Some(_), None) => Err(Error::PartialCredentials {
            place: "env".into(),
            missing: "AWS_SECRET_ACCESS_KEY",
        }),
        // A secret alone is no key: the AWS CLI passes on to the profile.
        (None, _) => Ok(None),
    }
}

/// Settings that get credentials in ways estiba does not run, with the
/// name the refusal gives them.
const UNSUPPORTED: [(&str, &str); 5] = [
    ("credential_process", "credential_process"),
    ("role_arn", "role_arn (AssumeRole)"),
    ("sso_session", "sso_session (IAM Identity Center)"),
    ("sso_start_url", "sso_start_url (IAM Identity Center)"),
    ("web_identity_token_file", "web_identity_token_file"),
];

fn profile_credentials(name: &str, p: &Settings, files: &Files) -> Result<Credentials> {
    let partial = |missing| Error::PartialCredentials {
        place: format!("profile {name}"),
        missing,
    };
    match (
        setting(p, "aws_access_key_id"),
        setting(p, "aws_secret_access_key"),
    ) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(Credentials {
            access_key_id,
            secret_access_key,
            session_token: setting(p, "aws_session_token"),
        }),
        (Some(_), None) => Err(partial("aws_secret_access_key")),
        (None, Some(_)) => Err(partial("aws_access_key_id")),
        (None, None) => match UNSUPPORTED.iter().find(|(k, _)| p.contains_key(*k)) {
            Some((_, setting)) => Err(Error::UnsupportedCredentials {
                profile: name.to_string(),
                setting,
            }),
            None => Err(files.no_credentials(name)),
        },
    }
}

/// Where the shared files are.
struct Files {
    credentials: Option<PathBuf>,
    config: Option<PathBuf>,
}

impl Files {
    fn locate(var: &impl Fn(&str) -> Option<String>) -> Files {
        let home = var("HOME");
        let path = |variable: &str, file: &str| match var(variable) {
            Some(p) => Some(expand_home(&p, home.as_deref())),
            None => home.as_ref().map(|h| Path::new(h).join(".aws").join(file)),
        };
        Files {
            credentials: path("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
            config: path("AWS_CONFIG_FILE", "config"),
        }
    }

    /// The profile's settings from both files; None if neither has it.
    fn profile(&self, name: &str) -> Result<Option<Settings>> {
        let config = read_sections(self.config.as_deref())?;
        let credentials = read_sections(self.credentials.as_deref())?;
        let from_config = config
            .get(&format!("profile {name}"))
            .or_else(|| config.get(name).filter(|_| name == "default"));
        let from_credentials = credentials.get(name);
        if from_config.is_none() && from_credentials.is_none() {
            return Ok(None);
        }
        let mut merged = from_config.cloned().unwrap_or_default();
        merged.extend(from_credentials.cloned().unwrap_or_default());
        Ok(Some(merged))
    }

    fn no_credentials(&self, profile: &str) -> Error {
        let file = self.credentials.as_ref().map_or_else(
            || "~/.aws/credentials".to_string(),
            |p| p.display().to_string(),
        );
        Error::NoCredentials {
            profile: profile.to_string(),
            file,
        }
    }
}

/// `~/x` under the home directory, as botocore expands the files' paths.
fn expand_home(path: &str, home: Option<&str>) -> PathBuf {
    match (path.strip_prefix('~'), home) {
        (Some(""), Some(h)) => PathBuf::from(h),
        (Some(rest), Some(h)) if rest.starts_with('/') => Path::new(h).join(&rest[1..]),
        _ => PathBuf::from(path),
    }
}

/// A file's sections; a file that does not exist has none.
fn read_sections(path: Option<&Path>) -> Result<Sections> {
    let Some(path) = path else {
        return Ok(Sections::new());
    };
    match std::fs::read_to_string(path) {
        Ok(text) => parse_ini(&text, path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Sections::new()),
        Err(source) => Err(Error::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The shared files' INI dialect, as botocore's parser reads it:
/// `[section]` headers (inner whitespace collapsed, so `[profile  a]` is
/// `profile a`), `key = value` or `key: value` (keys lowercased), and
/// whole-line `#` or `;` comments. The indented lines under a key with no
/// value are the config file's nested settings (`s3 =`), which nothing
/// here reads: they are skipped.
fn parse_ini(text: &str, path: &Path) -> Result<Sections> {
    let bad = |line: usize, why: &str| Error::Ini {
        path: path.to_path_buf(),
        line: line + 1,
        why: why.to_string(),
    };
    let mut sections = Sections::new();
    let mut current: Option<String> = None;
    let mut nested = false;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if nested && raw.starts_with([' ', '\t']) {
            continue;
        }
        nested = false;
        if let Some(header) = line.strip_prefix('[') {
            let name = header
                .strip_suffix(']')
                .ok_or_else(|| bad(n, "a section header must end with ]"))?;
            let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
            sections.entry(name.clone()).or_default();
            current = Some(name);
            continue;
        }
        let section = current
            .as_ref()
            .and_then(|c| sections.get_mut(c))
            .ok_or_else(|| bad(n, "a setting comes before any [section]"))?;
        let at = line
            .find(['=', ':'])
            .ok_or_else(|| bad(n, "expected key = value"))?;
        let (key, value) = (line[..at].trim(), line[at + 1..].trim());
        nested = value.is_empty();
        section.insert(key.to_ascii_lowercase(), value.to_string());
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A home directory with `.aws/credentials` and `.aws/config`, and an
    /// environment naming it.
    struct Home {
        dir: tempfile::TempDir,
        env: HashMap<String, String>,
    }

    const CREDENTIALS: &str = "\
# keys from `estiba cluster user add`
[default]
aws_access_key_id = AKIADEFAULT
aws_secret_access_key = secret-default

[dev]
AWS_ACCESS_KEY_ID=AKIADEV
aws_secret_access_key=secret/dev+x=
aws_session_token = token-dev
";

    const CONFIG: &str = "\
[default]
region = eu-west-1
; the cluster on the lab machine
[profile  dev]
region: ap-south-1
endpoint_url = http://10.0.0.5:8440
s3 =
    max_concurrent_requests = 20
output = json
[dev]
region = not-read-here
";

    impl Home {
        fn new() -> Home {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir(dir.path().join(".aws")).unwrap();
            std::fs::write(dir.path().join(".aws/credentials"), CREDENTIALS).unwrap();
            std::fs::write(dir.path().join(".aws/config"), CONFIG).unwrap();
            let home = dir.path().display().to_string();
            Home {
                dir,
                env: HashMap::from([("HOME".to_string(), home)]),
            }
        }

        fn with(mut self, vars: &[(&str, &str)]) -> Home {
            for (k, v) in vars {
                self.env.insert(k.to_string(), v.to_string());
            }
            self
        }

        fn resolve(&self, flags: &Flags) -> Result<Resolved> {
            resolve(flags, "ecs", |k| self.env.get(k).cloned())
        }
    }

    fn profile(name: &str) -> Flags {
        Flags {
            profile: Some(name.into()),
            ..Flags::default()
        }
    }

    const ENV_KEYS: [(&str, &str); 3] = [
        ("AWS_ACCESS_KEY_ID", "AKIAENV"),
        ("AWS_SECRET_ACCESS_KEY", "secret-env"),
        ("AWS_SESSION_TOKEN", "token-env"),
    ];

    #[test]
    fn the_default_profile_gives_keys_and_region() {
        let r = Home::new().resolve(&Flags::default()).unwrap();
        assert_eq!(r.profile, "default");
        assert_eq!(
            r.credentials,
            Credentials {
                access_key_id: "AKIADEFAULT".into(),
                secret_access_key: "secret-default".into(),
                session_token: None,
            }
        );
        assert_eq!(r.region, "eu-west-1");
        assert_eq!(r.endpoint, DEFAULT_ENDPOINT);
    }

    #[test]
    fn the_environment_keys_come_first_unless_a_profile_flag_is_given() {
        let home = Home::new().with(&ENV_KEYS).with(&[("AWS_PROFILE", "dev")]);
        let r = home.resolve(&Flags::default()).unwrap();
        assert_eq!(r.credentials.access_key_id, "AKIAENV");
        assert_eq!(r.credentials.session_token.as_deref(), Some("token-env"));
        // AWS_PROFILE still picks the profile's region and endpoint.
        assert_eq!(
            (r.profile.as_str(), r.region.as_str()),
            ("dev", "ap-south-1")
        );
        let r = home.resolve(&profile("dev")).unwrap();
        assert_eq!(
            r.credentials,
            Credentials {
                access_key_id: "AKIADEV".into(),
                secret_access_key: "secret/dev+x=".into(),
                session_token: Some("token-dev".into()),
            }
        );
    }

    #[test]
    fn the_profile_comes_from_the_flag_then_aws_profile_then_default() {
        let home = Home::new().with(&[("AWS_PROFILE", "dev")]);
        assert_eq!(home.resolve(&Flags::default()).unwrap().profile, "dev");
        let r = home.resolve(&profile("default")).unwrap();
        assert_eq!(r.credentials.access_key_id, "AKIADEFAULT");
        // An empty variable is unset.
        let home = Home::new().with(&[("AWS_PROFILE", "")]);
        assert_eq!(home.resolve(&Flags::default()).unwrap().profile, "default");
    }

    #[test]
    fn the_region_comes_from_the_flag_the_variables_the_profile_then_us_east_1() {
        let mut home = Home::new().with(&[
            ("AWS_REGION", "us-west-2"),
            ("AWS_DEFAULT_REGION", "ca-central-1"),
        ]);
        let flag = Flags {
            region: Some("sa-east-1".into()),
            ..Flags::default()
        };
        assert_eq!(home.resolve(&flag).unwrap().region, "sa-east-1");
        assert_eq!(home.resolve(&Flags::default()).unwrap().region, "us-west-2");
        home.env.remove("AWS_REGION");
        assert_eq!(
            home.resolve(&Flags::default()).unwrap().region,
            "ca-central-1"
        );
        home.env.remove("AWS_DEFAULT_REGION");
        assert_eq!(home.resolve(&Flags::default()).unwrap().region, "eu-west-1");
        // A profile only in the credentials file has no region.
        std::fs::remove_file(home.dir.path().join(".aws/config")).unwrap();
        assert_eq!(
            home.resolve(&Flags::default()).unwrap().region,
            DEFAULT_REGION
        );
    }

    #[test]
    fn the_endpoint_comes_from_the_flag_the_variables_the_profile_then_estiba() {
        let mut home = Home::new().with(&[
            ("AWS_ENDPOINT_URL_ECS", "http://ecs.local:1"),
            ("AWS_ENDPOINT_URL", "http://all.local:2"),
        ]);
        let flag = Flags {
            profile: Some("dev".into()),
            endpoint_url: Some("http://flag.local:3".into()),
            ..Flags::default()
        };
        assert_eq!(home.resolve(&flag).unwrap().endpoint, "http://flag.local:3");
        let dev = profile("dev");
        assert_eq!(home.resolve(&dev).unwrap().endpoint, "http://ecs.local:1");
        home.env.remove("AWS_ENDPOINT_URL_ECS");
        assert_eq!(home.resolve(&dev).unwrap().endpoint, "http://all.local:2");
        home.env.remove("AWS_ENDPOINT_URL");
        assert_eq!(home.resolve(&dev).unwrap().endpoint, "http://10.0.0.5:8440");
        assert_eq!(
            home.resolve(&Flags::default()).unwrap().endpoint,
            DEFAULT_ENDPOINT
        );
        let home = home.with(&[
            ("AWS_ENDPOINT_URL", "http://all.local:2"),
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
        ]);
        assert_eq!(home.resolve(&dev).unwrap().endpoint, DEFAULT_ENDPOINT);
        assert_eq!(home.resolve(&flag).unwrap().endpoint, "http://flag.local:3");
    }

    #[test]
    fn the_files_can_be_elsewhere() {
        let home = Home::new();
        let other = home.dir.path().join("other");
        std::fs::write(
            &other,
            "[default]\naws_access_key_id = AKIAOTHER\naws_secret_access_key = s\n",
        )
        .unwrap();
        std::fs::write(
            home.dir.path().join("cfg"),
            "[default]\nregion = me-south-1\n",
        )
        .unwrap();
        let home = home.with(&[
            ("AWS_SHARED_CREDENTIALS_FILE", other.to_str().unwrap()),
            ("AWS_CONFIG_FILE", "~/cfg"),
        ]);
        let r = home.resolve(&Flags::default()).unwrap();
        assert_eq!(
            (r.credentials.access_key_id.as_str(), r.region.as_str()),
            ("AKIAOTHER", "me-south-1")
        );
    }

    #[test]
    fn keys_in_the_config_file_count_and_the_credentials_file_overrides_them() {
        let home = Home::new();
        std::fs::write(
            home.dir.path().join(".aws/config"),
            "[profile cfg]\naws_access_key_id = AKIACFG\naws_secret_access_key = s\nregion = eu-north-1\n\
             [profile both]\naws_access_key_id = AKIAOLD\naws_secret_access_key = old\n",
        )
        .unwrap();
        std::fs::write(
            home.dir.path().join(".aws/credentials"),
            "[both]\naws_access_key_id = AKIANEW\naws_secret_access_key = new\n",
        )
        .unwrap();
        let r = home.resolve(&profile("cfg")).unwrap();
        assert_eq!(
            (r.credentials.access_key_id.as_str(), r.region.as_str()),
            ("AKIACFG", "eu-north-1")
        );
        let r = home.resolve(&profile("both")).unwrap();
        assert_eq!(r.credentials.secret_access_key, "new");
    }

    #[test]
    fn missing_and_partial_credentials_are_refused_as_the_aws_cli_refuses_them() {
        let home = Home::new();
        let e = home.resolve(&profile("nope")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "The config profile (nope) could not be found"
        );
        let e = Home::new()
            .with(&[("AWS_PROFILE", "nope")])
            .resolve(&Flags::default())
            .unwrap_err();
        assert!(matches!(e, Error::ProfileNotFound(_)), "{e}");
        let e = Home::new()
            .with(&[("AWS_ACCESS_KEY_ID", "AKIA")])
            .resolve(&Flags::default())
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Partial credentials found in env, missing: AWS_SECRET_ACCESS_KEY"
        );
        let empty = tempfile::tempdir().unwrap();
        let nowhere = HashMap::from([("HOME", empty.path().display().to_string())]);
        let e = resolve(&Flags::default(), "ecs", |k| nowhere.get(k).cloned()).unwrap_err();
        assert!(matches!(e, Error::NoCredentials { .. }), "{e}");
        assert!(e.to_string().contains(".aws/credentials"), "{e}");
        // No HOME at all: no files, but the environment's keys still do.
        let bare = HashMap::from(ENV_KEYS);
        let r = resolve(&Flags::default(), "ecs", |k| {
            bare.get(k).map(|v| v.to_string())
        });
        assert_eq!(r.unwrap().credentials.access_key_id, "AKIAENV");
    }

    #[test]
    fn profiles_that_get_keys_elsewhere_are_refused_by_name() {
        let home = Home::new();
        std::fs::write(
            home.dir.path().join(".aws/config"),
            "[profile sso]\nsso_session = corp\nregion = us-east-2\n\
             [profile half]\naws_access_key_id = AKIAHALF\n",
        )
        .unwrap();
        let e = home.resolve(&profile("sso")).unwrap_err();
        assert!(matches!(e, Error::UnsupportedCredentials { .. }), "{e}");
        assert!(e.to_string().contains("sso_session"), "{e}");
        let e = home.resolve(&profile("half")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Partial credentials found in profile half, missing: aws_secret_access_key"
        );
    }

    #[test]
    fn ini_files_parse_as_botocore_reads_them() {
        let path = Path::new("config");
        let s = parse_ini(CONFIG, path).unwrap();
        let dev = &s["profile dev"];
        assert_eq!(dev["region"], "ap-south-1");
        assert_eq!(dev["endpoint_url"], "http://10.0.0.5:8440");
        assert_eq!(dev["s3"], "");
        assert_eq!(dev["output"], "json");
        assert!(!dev.contains_key("max_concurrent_requests"));
        let creds = parse_ini(CREDENTIALS, path).unwrap();
        assert_eq!(creds["dev"]["aws_access_key_id"], "AKIADEV");
        for (bad, line) in [
            ("region = x\n", 1),
            ("[default]\n\n[broken\n", 3),
            ("[default]\njust words\n", 2),
        ] {
            match parse_ini(bad, path) {
                Err(Error::Ini { line: l, .. }) => assert_eq!(l, line, "{bad:?}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let c = Credentials {
            access_key_id: "AKIAVISIBLE".into(),
            secret_access_key: "hidden-secret".into(),
            session_token: Some("hidden-token".into()),
        };
        let shown = format!("{c:?}");
        assert!(shown.contains("AKIAVISIBLE"), "{shown}");
        assert!(!shown.contains("hidden"), "{shown}");
    }

    #[test]
    fn home_is_expanded_in_file_variables() {
        assert_eq!(expand_home("~/a/b", Some("/h")), PathBuf::from("/h/a/b"));
        assert_eq!(expand_home("~", Some("/h")), PathBuf::from("/h"));
        assert_eq!(
            expand_home("~other/x", Some("/h")),
            PathBuf::from("~other/x")
        );
        assert_eq!(expand_home("~/x", None), PathBuf::from("~/x"));
    }
}
