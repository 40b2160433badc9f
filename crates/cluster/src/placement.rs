//! Placement, the base (the full engine comes with services): a task goes
//! only to an ACTIVE, connected instance with the CPU, memory and host
//! ports it needs and whose attributes meet its constraints. Filtering
//! says, per candidate, what it missed; the winner is then chosen by the
//! request's strategy. Reserving is the caller's compare-and-swap.

use estiba_ecs::taskdef::{NetworkMode, TaskDefinition};
use serde::Deserialize;

use crate::task::{InstanceRecord, InstanceStatus, Resources, Shortfall};

/// A placement constraint of a request or a task definition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConstraintSpec {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub expression: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StrategySpec {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub field: Option<String>,
}

/// `attribute:NAME OP VALUE` and `attribute:NAME exists`: the subset of
/// ECS's cluster query language the base placement evaluates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Constraint {
    DistinctInstance,
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
}

/// The attribute a subject names: `attribute:ecs.os-type` → `ecs.os-type`.
fn attribute_name(subject: &str) -> Result<String, String> {
    match subject.strip_prefix("attribute:") {
        Some(name) if !name.is_empty() => Ok(name.to_string()),
        _ => Err(format!(
            "{subject:?}: the subject must be attribute:NAME (the full query language comes with services)"
        )),
    }
}

fn parse_expression(expr: &str) -> Result<Constraint, String> {
    let words: Vec<&str> = expr.split_whitespace().collect();
    match words[..] {
        [subject, "==", value] => Ok(Constraint::Equals(attribute_name(subject)?, value.into())),
        [subject, "!=", value] => Ok(Constraint::NotEquals(
            attribute_name(subject)?,
            value.into(),
        )),
        [subject, "exists"] => Ok(Constraint::Exists(attribute_name(subject)?)),
        _ => Err(format!(
            "{expr:?}: expected attribute:NAME == VALUE, != VALUE, or exists"
        )),
    }
}

/// Checks and parses constraints: at most 10, of known types.
pub fn constraints(specs: &[ConstraintSpec]) -> Result<Vec<Constraint>, String> {
    if specs.len() > 10 {
        return Err("A task can have at most 10 placement constraints.".into());
    }
    specs
        .iter()
        .map(|c| match (c.kind.as_str(), c.expression.as_deref()) {
            ("distinctInstance", _) => Ok(Constraint::DistinctInstance),
            ("memberOf", Some(e)) => parse_expression(e)
                .map_err(|why| format!("Invalid placement constraint expression: {why}")),
            ("memberOf", None) => Err("A memberOf constraint needs an expression.".into()),
            (other, _) => Err(format!(
                "Unknown placement constraint type {other}: use distinctInstance or memberOf."
            )),
        })
        .collect()
}

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

/// Why a candidate was passed over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Miss {
    Draining,
    Disconnected,
    Short(Shortfall),
    Attribute(String),
    /// distinctInstance: another task of this request is there.
    Taken,
}

impl Miss {
    /// ECS's failure reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Miss::Short(s) => s.reason(),
            Miss::Attribute(_) => "ATTRIBUTE",
            Miss::Draining | Miss::Disconnected | Miss::Taken => "RESOURCE:INSTANCE",
        }
    }
}

impl std::fmt::Display for Miss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Miss::Draining => f.write_str("the instance is DRAINING"),
            Miss::Disconnected => f.write_str("its agent is not connected"),
            Miss::Short(s) => s.fmt(f),
            Miss::Attribute(why) => f.write_str(why),
            Miss::Taken => f.write_str("distinctInstance: it already has a task of this request"),
        }
    }
}

fn meets(instance: &InstanceRecord, c: &Constraint) -> Result<(), String> {
    let value = |name: &str| {
        instance
            .attribute(name)
            .map(|a| a.value.clone().unwrap_or_default())
    };
    match c {
        Constraint::DistinctInstance => Ok(()),
        Constraint::Equals(name, want) => match value(name) {
            Some(v) if &v == want => Ok(()),
            Some(v) => Err(format!("attribute {name} is {v:?}, not {want:?}")),
            None => Err(format!("attribute {name} is not set (wanted {want:?})")),
        },
        Constraint::NotEquals(name, avoid) => match value(name) {
            Some(v) if &v == avoid => Err(format!("attribute {name} is {v:?}")),
            _ => Ok(()),
        },
        Constraint::Exists(name) => match value(name) {
            Some(_) => Ok(()),
            None => Err(format!("attribute {name} is not set")),
        },
    }
}

/// One candidate, with whether its agent is connected and whether this
/// request already placed a task there.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    pub instance: &'a InstanceRecord,
    pub connected: bool,
    pub used_by_request: bool,
}

/// The filter stage: what fits, and what each other candidate missed.
pub fn filter<'a>(
    candidates: &[Candidate<'a>],
    need: &Resources,
    constraints: &[Constraint],
) -> (Vec<Candidate<'a>>, Vec<(&'a InstanceRecord, Miss)>) {
    let mut fits = Vec::new();
    let mut misses = Vec::new();
    for c in candidates {
        let miss = if c.instance.status == InstanceStatus::Draining {
            Some(Miss::Draining)
        } else if !c.connected {
            Some(Miss::Disconnected)
        } else if c.used_by_request && constraints.contains(&Constraint::DistinctInstance) {
            Some(Miss::Taken)
        } else if let Err(s) = c.instance.remaining.minus(need) {
            Some(Miss::Short(s))
        } else {
            constraints
                .iter()
                .find_map(|k| meets(c.instance, k).err())
                .map(Miss::Attribute)
        };
        match miss {
            Some(m) => misses.push((c.instance, m)),
            None => fits.push(*c),
        }
    }
    (fits, misses)
}

/// The score stage: the first strategy orders the candidates that fit
/// (binpack: least of the field left first; random; spread and the
/// default: most memory left first, so equal tasks spread out). Ties go by
/// instance id, so a layout is reproducible.
pub fn choose<'a>(
    mut fits: Vec<Candidate<'a>>,
    strategies: &[StrategySpec],
    seed: u64,
) -> Option<&'a InstanceRecord> {
    fits.sort_by(|a, b| a.instance.id.cmp(&b.instance.id));
    let first = strategies.first();
    match first.map(|s| (s.kind.as_str(), s.field.as_deref().unwrap_or("memory"))) {
        Some(("binpack", "cpu")) => fits.sort_by_key(|c| c.instance.remaining.cpu),
        Some(("binpack", _)) => fits.sort_by_key(|c| c.instance.remaining.memory),
        Some(("random", _)) if !fits.is_empty() => {
            let i = (seed % fits.len() as u64) as usize;
            fits.rotate_left(i);
        }
        _ => fits.sort_by_key(|c| std::cmp::Reverse(c.instance.remaining.memory)),
    }
    fits.first().map(|c| c.instance)
}

/// Checks a request's strategies: at most 5, of known types.
pub fn strategies(specs: &[StrategySpec]) -> Result<(), String> {
    if specs.len() > 5 {
        return Err("A task can have at most 5 placement strategies.".into());
    }
    for s in specs {
        match (s.kind.as_str(), s.field.as_deref()) {
            ("random", _) | ("spread", _) => {}
            ("binpack", None | Some("cpu" | "memory" | "CPU" | "MEMORY")) => {}
            ("binpack", Some(f)) => {
                return Err(format!("binpack's field must be cpu or memory, not {f}"))
            }
            (other, _) => {
                return Err(format!(
                    "Unknown placement strategy type {other}: use binpack, spread or random."
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::Attribute;

    fn instance(id: &str, memory: i64, zone: &str) -> InstanceRecord {
        InstanceRecord {
            id: id.into(),
            cluster: "default".into(),
            hostname: id.into(),
            address: "10.0.0.1".into(),
            status: InstanceStatus::Active,
            agent_version: "test".into(),
            registered: Resources::default(),
            remaining: Resources {
                cpu: 2048,
                memory,
                ports: vec![22],
                ports_udp: vec![],
            },
            attributes: vec![Attribute {
                name: "zone".into(),
                value: Some(zone.into()),
            }],
            registered_at: 0.0,
            version: 1,
            warnings: vec![],
        }
    }

    fn candidates(list: &[InstanceRecord]) -> Vec<Candidate<'_>> {
        list.iter()
            .map(|instance| Candidate {
                instance,
                connected: true,
                used_by_request: false,
            })
            .collect()
    }

    #[test]
    fn each_candidate_says_what_it_missed() {
        let mut draining = instance("c", 4096, "a");
        draining.status = InstanceStatus::Draining;
        let list = vec![instance("a", 512, "a"), instance("b", 4096, "b"), draining];
        let need = Resources {
            cpu: 128,
            memory: 1024,
            ports: vec![80],
            ports_udp: vec![],
        };
        let only_a = constraints(&[ConstraintSpec {
            kind: "memberOf".into(),
            expression: Some("attribute:zone == a".into()),
        }])
        .unwrap();
        let (fits, misses) = filter(&candidates(&list), &need, &only_a);
        assert!(fits.is_empty());
        let reasons: Vec<(&str, &str)> = misses
            .iter()
            .map(|(i, m)| (i.id.as_str(), m.reason()))
            .collect();
        assert_eq!(
            reasons,
            [
                ("a", "RESOURCE:MEMORY"),
                ("b", "ATTRIBUTE"),
                ("c", "RESOURCE:INSTANCE")
            ]
        );
        assert_eq!(
            misses[0].1.to_string(),
            "needs 1024 MiB of memory, 512 MiB free"
        );
    }

    #[test]
    fn the_default_spreads_and_binpack_packs() {
        let list = vec![instance("a", 1024, "a"), instance("b", 4096, "b")];
        let need = Resources::default();
        let (fits, _) = filter(&candidates(&list), &need, &[]);
        assert_eq!(choose(fits.clone(), &[], 0).unwrap().id, "b");
        let binpack = [StrategySpec {
            kind: "binpack".into(),
            field: Some("memory".into()),
        }];
        assert_eq!(choose(fits, &binpack, 0).unwrap().id, "a");
    }

    #[test]
    fn malformed_constraints_are_refused() {
        let bad = |e: &str| {
            constraints(&[ConstraintSpec {
                kind: "memberOf".into(),
                expression: Some(e.into()),
            }])
            .is_err()
        };
        assert!(bad("attribute:zone =="));
        assert!(bad("zone == a"));
        assert!(constraints(&vec![ConstraintSpec::default(); 11]).is_err());
        assert!(strategies(&[StrategySpec {
            kind: "pack".into(),
            field: None
        }])
        .is_err());
    }
}
