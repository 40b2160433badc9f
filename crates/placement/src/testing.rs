//! A node for the engine's own tests.

use std::collections::BTreeMap;

use crate::{Node, Resources};

#[derive(Clone, Debug)]
pub struct TestNode {
    pub id: String,
    pub remaining: Resources,
    pub draining: bool,
    pub connected: bool,
    pub attributes: BTreeMap<String, String>,
    pub version: String,
    pub registered_at: f64,
    pub groups: BTreeMap<String, u32>,
}

impl TestNode {
    pub fn new(id: &str, cpu: i64, memory: i64) -> TestNode {
        TestNode {
            id: id.into(),
            remaining: Resources {
                cpu,
                memory,
                ..Resources::default()
            },
            draining: false,
            connected: true,
            attributes: BTreeMap::new(),
            version: "1.0.0".into(),
            registered_at: 0.0,
            groups: BTreeMap::new(),
        }
    }

    pub fn attr(mut self, name: &str, value: &str) -> TestNode {
        self.attributes.insert(name.into(), value.into());
        self
    }

    pub fn group(mut self, group: &str, n: u32) -> TestNode {
        self.groups.insert(group.into(), n);
        self
    }

    pub fn version(mut self, v: &str) -> TestNode {
        self.version = v.into();
        self
    }

    pub fn registered(mut self, date: &str) -> TestNode {
        self.registered_at = crate::query::parse_time(date).expect("a date");
        self
    }

    /// Counts a placed task in.
    pub fn take(&mut self, need: &Resources, group: &str) {
        self.remaining = self.remaining.minus(need).expect("it fits");
        *self.groups.entry(group.into()).or_default() += 1;
    }
}

impl Node for TestNode {
    fn id(&self) -> &str {
        &self.id
    }
    fn remaining(&self) -> &Resources {
        &self.remaining
    }
    fn draining(&self) -> bool {
        self.draining
    }
    fn connected(&self) -> bool {
        self.connected
    }
    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }
    fn agent_version(&self) -> &str {
        &self.version
    }
    fn registered_at(&self) -> f64 {
        self.registered_at
    }
    fn groups(&self) -> &BTreeMap<String, u32> {
        &self.groups
    }
}
