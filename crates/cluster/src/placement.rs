//! Placement, as the control plane uses the engine (`estiba-placement`):
//! what a task needs, and instances as the engine's nodes.

use std::collections::BTreeMap;

use estiba_ecs::taskdef::{NetworkMode, TaskDefinition};
pub use estiba_placement::{
    Constraint, ConstraintSpec, Miss, Node, Request, SpreadOn, Strategy, StrategySpec,
};

use crate::task::{InstanceRecord, InstanceStatus, Resources};

/// The resources a task takes on an instance: the task-level cpu and
/// memory if set, else the sum over its containers; and the host ports its
/// mappings bind (none under awsvpc, where the task has its own address).
pub fn need_of(d: &TaskDefinition) -> Resources {
    let task = |s: &Option<estiba_ecs::taskdef::Size>| match s {
        Some(estiba_ecs::taskdef::Size::Text(t)) => t.parse::<i64>().ok(),
        Some(estiba_ecs::taskdef::Size::Number(n)) => i64::try_from(*n).ok(),
        None => None,
    };
    let containers = &d.container_definitions;
    let cpu = task(&d.cpu).unwrap_or_else(|| containers.iter().filter_map(|c| c.cpu).sum());
    let memory = task(&d.memory).unwrap_or_else(|| {
        containers
            .iter()
            .filter_map(|c| c.memory.or(c.memory_reservation))
            .sum()
    });
    let mut need = Resources {
        cpu,
        memory,
        ..Resources::default()
    };
    let mode = d.network();
    for m in containers
        .iter()
        .flat_map(|c| c.port_mappings.iter().flatten())
    {
        let host = match mode {
            NetworkMode::Bridge => m.host_port.filter(|p| *p > 0),
            NetworkMode::Host => m.host_port.or(m.container_port),
            NetworkMode::Awsvpc | NetworkMode::None => None,
        };
        let Some(port) = host.and_then(|p| u16::try_from(p).ok()) else {
            continue;
        };
        match m.protocol.as_deref() {
            Some("udp") => need.ports_udp.push(port),
            _ => need.ports.push(port),
        }
    }
    need
}

/// An instance as the engine sees it: its record, whether its agent is
/// connected, and its live tasks by group.
#[derive(Clone, Debug)]
pub struct Live {
    pub record: InstanceRecord,
    pub connected: bool,
    pub groups: BTreeMap<String, u32>,
}

impl Node for Live {
    fn id(&self) -> &str {
        &self.record.id
    }
    fn remaining(&self) -> &Resources {
        &self.record.remaining
    }
    fn draining(&self) -> bool {
        self.record.status == InstanceStatus::Draining
    }
    fn connected(&self) -> bool {
        self.connected
    }
    fn attribute(&self, name: &str) -> Option<&str> {
        self.record
            .attribute(name)
            .map(|a| a.value.as_deref().unwrap_or_default())
    }
    fn agent_version(&self) -> &str {
        &self.record.agent_version
    }
    fn registered_at(&self) -> f64 {
        self.record.registered_at
    }
    fn groups(&self) -> &BTreeMap<String, u32> {
        &self.groups
    }
}

/// The strategies when none are given: ECS's default for services,
/// zones first, then instances. Among equals the seed decides.
pub fn default_strategies() -> Vec<Strategy> {
    vec![
        Strategy::Spread(SpreadOn::Attribute("ecs.availability-zone".into())),
        Strategy::Spread(SpreadOn::Instance),
    ]
}

/// A request's constraints and its task definition's, together (at most
/// ten in all), parsed.
pub fn constraints_of(
    request: &[ConstraintSpec],
    d: &TaskDefinition,
) -> Result<Vec<Constraint>, estiba_placement::Error> {
    let mut specs = request.to_vec();
    for c in d.placement_constraints.iter().flatten() {
        specs.push(ConstraintSpec {
            kind: c.kind.clone(),
            expression: c.expression.clone(),
        });
    }
    estiba_placement::constraints(&specs)
}

/// The strategies a request gives, or the default.
pub fn strategies_of(specs: &[StrategySpec]) -> Result<Vec<Strategy>, estiba_placement::Error> {
    let parsed = estiba_placement::strategies(specs)?;
    Ok(if parsed.is_empty() {
        default_strategies()
    } else {
        parsed
    })
}
