//! One event, in the JSON shape of `docker events --format '{{json .}}'`:
//! `{"Type":"container","Action":"die","Actor":{"ID":…,"Attributes":{…}},
//! "scope":"local","time":…,"timeNano":…}`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// What the event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Container,
    Image,
    Network,
    Volume,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Container => "container",
            Kind::Image => "image",
            Kind::Network => "network",
            Kind::Volume => "volume",
        }
    }
}

impl std::str::FromStr for Kind {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<Kind> {
        match s {
            "container" => Ok(Kind::Container),
            "image" => Ok(Kind::Image),
            "network" => Ok(Kind::Network),
            "volume" => Ok(Kind::Volume),
            other => Err(crate::Error::Invalid {
                what: "event type",
                value: other.to_string(),
                why: "expected container, image, network or volume".into(),
            }),
        }
    }
}

/// What happened, with docker's names. Actions this version does not know
/// (a journal written by a newer one) are kept as they are.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    // containers (and `Create`/`Destroy` for volumes)
    Create,
    Start,
    /// The container's init exited; `exitCode` is an attribute.
    Die,
    /// The kernel's OOM killer ended a process of the container.
    Oom,
    Kill,
    Stop,
    Restart,
    /// `health_status: healthy` and the like.
    HealthStatus(String),
    Destroy,
    /// A process started with `exec`; user and command are attributes.
    ExecStart,
    // images
    Pull,
    Push,
    Tag,
    Untag,
    Delete,
    Load,
    Import,
    // networks
    Connect,
    Disconnect,
    Other(String),
}

impl Action {
    /// The name docker prints.
    pub fn name(&self) -> String {
        let fixed = match self {
            Action::Create => "create",
            Action::Start => "start",
            Action::Die => "die",
            Action::Oom => "oom",
            Action::Kill => "kill",
            Action::Stop => "stop",
            Action::Restart => "restart",
            Action::HealthStatus(s) => return format!("health_status: {s}"),
            Action::Destroy => "destroy",
            Action::ExecStart => "exec_start",
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Tag => "tag",
            Action::Untag => "untag",
            Action::Delete => "delete",
            Action::Load => "load",
            Action::Import => "import",
            Action::Connect => "connect",
            Action::Disconnect => "disconnect",
            Action::Other(s) => return s.clone(),
        };
        fixed.to_string()
    }

    /// The name without its detail: `health_status` for every health change.
    pub fn base(&self) -> String {
        let name = self.name();
        match name.split_once(':') {
            Some((base, _)) => base.to_string(),
            None => name,
        }
    }

    fn parse(s: &str) -> Action {
        if let Some(status) = s.strip_prefix("health_status: ") {
            return Action::HealthStatus(status.to_string());
        }
        match s {
            "create" => Action::Create,
            "start" => Action::Start,
            "die" => Action::Die,
            "oom" => Action::Oom,
            "kill" => Action::Kill,
            "stop" => Action::Stop,
            "restart" => Action::Restart,
            "destroy" => Action::Destroy,
            "exec_start" => Action::ExecStart,
            "pull" => Action::Pull,
            "push" => Action::Push,
            "tag" => Action::Tag,
            "untag" => Action::Untag,
            "delete" => Action::Delete,
            "load" => Action::Load,
            "import" => Action::Import,
            "connect" => Action::Connect,
            "disconnect" => Action::Disconnect,
            other => Action::Other(other.to_string()),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Action::parse(&String::deserialize(d)?))
    }
}

/// Who the event is about: an id, and attributes such as `name`, `image`
/// and `exitCode`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes", default)]
    pub attributes: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    #[serde(rename = "Type")]
    pub kind: Kind,
    #[serde(rename = "Action")]
    pub action: Action,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    /// Always `local`: events of this machine.
    #[serde(default = "local")]
    pub scope: String,
    /// Seconds since the epoch.
    pub time: u64,
    /// Nanoseconds since the epoch.
    #[serde(rename = "timeNano")]
    pub time_nano: u64,
}

fn local() -> String {
    "local".into()
}

impl Event {
    /// An event that happens now.
    pub fn new(kind: Kind, action: Action, id: impl Into<String>) -> Event {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let time_nano = u64::try_from(nanos).unwrap_or(u64::MAX);
        Event {
            kind,
            action,
            actor: Actor {
                id: id.into(),
                attributes: BTreeMap::new(),
            },
            scope: local(),
            time: time_nano / 1_000_000_000,
            time_nano,
        }
    }

    /// Adds an attribute (`name`, `image`, `exitCode`, …).
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Event {
        self.actor.attributes.insert(key.to_string(), value.into());
        self
    }

    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.actor.attributes.get(key).map(String::as_str)
    }

    pub fn at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.time_nano)
    }

    /// docker's text form:
    /// `2026-12-01T09:00:00.000000000Z container die 3f2a… (exitCode=0, name=web)`.
    pub fn to_line(&self) -> String {
        let when = humantime::format_rfc3339_nanos(self.at());
        let attrs: Vec<String> = self
            .actor
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut line = format!(
            "{when} {} {} {}",
            self.kind.as_str(),
            self.action,
            self.actor.id
        );
        if !attrs.is_empty() {
            line.push_str(&format!(" ({})", attrs.join(", ")));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_in_dockers_shape() {
        let e = Event::new(Kind::Container, Action::Die, "abc")
            .with("exitCode", "3")
            .with("name", "web");
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["Type"], "container");
        assert_eq!(json["Action"], "die");
        assert_eq!(json["Actor"]["ID"], "abc");
        assert_eq!(json["Actor"]["Attributes"]["exitCode"], "3");
        assert_eq!(json["scope"], "local");
        assert_eq!(json["time"].as_u64().unwrap(), e.time_nano / 1_000_000_000);
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(back, e);
        let health = Event::new(
            Kind::Container,
            Action::HealthStatus("healthy".into()),
            "abc",
        );
        let text = serde_json::to_string(&health).unwrap();
        assert!(
            text.contains(r#""Action":"health_status: healthy""#),
            "{text}"
        );
        assert_eq!(
            serde_json::from_str::<Event>(&text).unwrap().action.base(),
            "health_status"
        );
        let future: Event =
            serde_json::from_str(&text.replace("health_status: healthy", "rename")).unwrap();
        assert_eq!(future.action, Action::Other("rename".into()));
        assert!(e
            .to_line()
            .contains("container die abc (exitCode=3, name=web)"));
    }
}
