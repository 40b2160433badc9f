//! `--filter KEY=VALUE` and `--since`/`--until`, with docker's meaning:
//! values of one key are alternatives, different keys must all match.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::{Error, Event, Kind, Result};

/// The keys `--filter` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Container,
    Event,
    Type,
    Image,
    Network,
    Volume,
}

#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub since: Option<SystemTime>,
    pub until: Option<SystemTime>,
    terms: BTreeMap<Key, Vec<String>>,
}

impl Filter {
    /// Adds `KEY=VALUE`.
    pub fn add(&mut self, spec: &str) -> Result<()> {
        let bad = |why: &str| Error::Invalid {
            what: "filter",
            value: spec.to_string(),
            why: why.to_string(),
        };
        let (key, value) = spec
            .split_once('=')
            .filter(|(_, v)| !v.is_empty())
            .ok_or_else(|| bad("expected KEY=VALUE"))?;
        let key = match key {
            "container" => Key::Container,
            "event" => Key::Event,
            "type" => {
                value.parse::<Kind>()?;
                Key::Type
            }
            "image" => Key::Image,
            "network" => Key::Network,
            "volume" => Key::Volume,
            _ => {
                return Err(bad(
                    "the keys are container, event, type, image, network and volume",
                ))
            }
        };
        self.terms.entry(key).or_default().push(value.to_string());
        Ok(())
    }

    /// True if `e` is inside the time window and passes every key.
    pub fn matches(&self, e: &Event) -> bool {
        let t = e.at();
        if self.since.is_some_and(|s| t < s) || self.until.is_some_and(|u| t > u) {
            return false;
        }
        self.terms
            .iter()
            .all(|(key, values)| values.iter().any(|v| term(*key, v, e)))
    }

    /// True once no event can match any more.
    pub fn past_until(&self, now: SystemTime) -> bool {
        self.until.is_some_and(|u| now > u)
    }
}

/// A container by id (or prefix) or name, as the event's actor or as the
/// container a network event names.
fn names_container(e: &Event, wanted: &str) -> bool {
    let by_actor = e.kind == Kind::Container
        && (e.actor.id.starts_with(wanted) || e.attribute("name") == Some(wanted));
    let by_attribute = e
        .attribute("container")
        .is_some_and(|c| c.starts_with(wanted))
        || e.attribute("containerName") == Some(wanted);
    by_actor || by_attribute
}

fn term(key: Key, value: &str, e: &Event) -> bool {
    let actor_is = |kind: Kind| {
        e.kind == kind && (e.actor.id.starts_with(value) || e.attribute("name") == Some(value))
    };
    match key {
        Key::Container => names_container(e, value),
        Key::Event => e.action.name() == value || e.action.base() == value,
        Key::Type => e.kind.as_str() == value,
        Key::Image => actor_is(Kind::Image) || e.attribute("image") == Some(value),
        Key::Network => actor_is(Kind::Network),
        Key::Volume => actor_is(Kind::Volume),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Action;

    #[test]
    fn keys_and_alternatives() {
        let die = Event::new(Kind::Container, Action::Die, "abc123")
            .with("name", "web")
            .with("image", "busybox");
        let connect = Event::new(Kind::Network, Action::Connect, "net1")
            .with("name", "app")
            .with("container", "abc123")
            .with("containerName", "web");
        let mut f = Filter::default();
        f.add("container=web").unwrap();
        assert!(f.matches(&die) && f.matches(&connect));
        f.add("event=die").unwrap();
        assert!(f.matches(&die) && !f.matches(&connect));
        f.add("event=connect").unwrap();
        assert!(f.matches(&connect), "values of one key are alternatives");
        let mut f = Filter::default();
        f.add("type=network").unwrap();
        f.add("network=app").unwrap();
        assert!(f.matches(&connect) && !f.matches(&die));
        let mut f = Filter::default();
        f.add("image=busybox").unwrap();
        assert!(f.matches(&die));
        let health = Event::new(
            Kind::Container,
            Action::HealthStatus("healthy".into()),
            "abc",
        );
        let mut f = Filter::default();
        f.add("event=health_status").unwrap();
        assert!(f.matches(&health));
        for bad in ["container", "container=", "colour=red", "type=pod"] {
            assert!(Filter::default().add(bad).is_err(), "{bad}");
        }
        let f = Filter {
            since: Some(die.at() + std::time::Duration::from_secs(1)),
            ..Filter::default()
        };
        assert!(!f.matches(&die));
    }
}
