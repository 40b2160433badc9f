//! The placement engine: where a task goes, and which task goes first when
//! a service shrinks.
//!
//! Placement runs in two stages, as ECS's does:
//! 1. **filter** ([`filter`]): a node is a candidate only if it is ACTIVE,
//!    its agent is connected, it has the CPU, memory and host ports the
//!    task needs, and every constraint holds on it (`distinctInstance`,
//!    `memberOf` in the cluster query language, `query.rs`). Each node
//!    that is passed over says what it missed.
//! 2. **score** ([`score`]): the strategies, up to five, order the
//!    candidates; each later strategy breaks the ties of those before it,
//!    and the seed breaks the last (a mix of it and the node id), so a
//!    seed gives one exact layout and equals are not always taken in the
//!    same order.
//!
//! The engine only reads. Reserving the winner's resources is the caller's
//! compare-and-swap in the store; the caller also counts what it placed
//! into the next round's nodes (their `groups` and `remaining`).
#![forbid(unsafe_code)]

pub mod query;
mod resources;
#[cfg(test)]
mod testing;

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

pub use query::Query;
pub use resources::{Resources, Shortfall};

/// ECS's limits: constraints of a task definition and a request together,
/// and strategies of a request or service.
pub const MAX_CONSTRAINTS: usize = 10;
pub const MAX_STRATEGIES: usize = 5;

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("Invalid placement constraint expression at character {at}: {why}")]
    Expression { at: usize, why: String },
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub(crate) fn expression(at: usize, why: impl Into<String>) -> Error {
        Error::Expression {
            at,
            why: why.into(),
        }
    }
}

/// What the engine needs to know of a node.
pub trait Node {
    fn id(&self) -> &str;
    fn remaining(&self) -> &Resources;
    fn draining(&self) -> bool;
    fn connected(&self) -> bool;
    /// A custom or built-in attribute's value ("" for one set without a
    /// value); None if the node lacks it.
    fn attribute(&self, name: &str) -> Option<&str>;
    fn agent_version(&self) -> &str;
    /// Epoch seconds.
    fn registered_at(&self) -> f64;
    /// Its tasks that run or are on their way, by task group.
    fn groups(&self) -> &BTreeMap<String, u32>;
    fn running_tasks(&self) -> u32 {
        self.groups().values().sum()
    }
    fn in_group(&self, group: &str) -> u32 {
        self.groups().get(group).copied().unwrap_or(0)
    }
}

/// A placement constraint as ECS's API spells it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConstraintSpec {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
}

/// A placement strategy as ECS's API spells it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StrategySpec {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Constraint {
    /// No two tasks of the group on one node.
    DistinctInstance,
    MemberOf(Query),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Cpu,
    Memory,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpreadOn {
    Instance,
    Attribute(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Fewest of the field left after placing first.
    Binpack(Field),
    /// Fewest tasks of the group on the node, or on the nodes sharing its
    /// value of an attribute, first.
    Spread(SpreadOn),
    /// Seeded: the same seed, the same order.
    Random,
}

/// Checks and parses constraints: at most [`MAX_CONSTRAINTS`], of known
/// types, with well-formed expressions.
pub fn constraints(specs: &[ConstraintSpec]) -> Result<Vec<Constraint>, Error> {
    if specs.len() > MAX_CONSTRAINTS {
        return Err(Error::Invalid(format!(
            "A task can have at most {MAX_CONSTRAINTS} placement constraints, counting the task definition's; {} were given.",
            specs.len()
        )));
    }
    specs
        .iter()
        .map(|c| match (c.kind.as_str(), c.expression.as_deref()) {
            ("distinctInstance", None) => Ok(Constraint::DistinctInstance),
            ("distinctInstance", Some(_)) => Err(Error::Invalid(
                "A distinctInstance constraint takes no expression.".into(),
            )),
            ("memberOf", Some(e)) => Query::parse(e).map(Constraint::MemberOf),
            ("memberOf", None) => Err(Error::Invalid(
                "A memberOf constraint needs an expression.".into(),
            )),
            (other, _) => Err(Error::Invalid(format!(
                "Unknown placement constraint type {other}: use distinctInstance or memberOf."
            ))),
        })
        .collect()
}

/// Checks and parses strategies: at most [`MAX_STRATEGIES`], of known
/// types and fields.
pub fn strategies(specs: &[StrategySpec]) -> Result<Vec<Strategy>, Error> {
    if specs.len() > MAX_STRATEGIES {
        return Err(Error::Invalid(format!(
            "At most {MAX_STRATEGIES} placement strategies can be given; {} were.",
            specs.len()
        )));
    }
    specs
        .iter()
        .map(|s| match (s.kind.as_str(), s.field.as_deref()) {
            ("random", None) => Ok(Strategy::Random),
            ("random", Some(f)) => Err(Error::Invalid(format!(
                "The random strategy takes no field, not {f}."
            ))),
            ("binpack", None | Some("memory" | "MEMORY")) => Ok(Strategy::Binpack(Field::Memory)),
            ("binpack", Some("cpu" | "CPU")) => Ok(Strategy::Binpack(Field::Cpu)),
            ("binpack", Some(f)) => Err(Error::Invalid(format!(
                "binpack's field must be cpu or memory, not {f}."
            ))),
            ("spread", None | Some("instanceId" | "host")) => {
                Ok(Strategy::Spread(SpreadOn::Instance))
            }
            ("spread", Some(f)) => match f.strip_prefix("attribute:") {
                Some(name) if !name.is_empty() => {
                    Ok(Strategy::Spread(SpreadOn::Attribute(name.to_string())))
                }
                _ => Err(Error::Invalid(format!(
                    "spread's field must be instanceId, host or attribute:NAME, not {f}."
                ))),
            },
            (other, _) => Err(Error::Invalid(format!(
                "Unknown placement strategy type {other}: use binpack, spread or random."
            ))),
        })
        .collect()
}

/// One task to place.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub need: &'a Resources,
    /// Its task group (`service:NAME`, `family:NAME`, or the caller's):
    /// what distinctInstance and spread count.
    pub group: &'a str,
    pub constraints: &'a [Constraint],
    pub strategies: &'a [Strategy],
    pub seed: u64,
}

/// Why a node was passed over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Miss {
    Draining,
    Disconnected,
    Short(Shortfall),
    /// A memberOf expression is false there: the node's values.
    Attribute(String),
    /// distinctInstance: a task of the group is there already.
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
            Miss::Taken => f.write_str("distinctInstance: a task of this group is already there"),
        }
    }
}

/// What a node missed, if anything: the cheapest checks first.
pub fn check(node: &dyn Node, req: &Request<'_>) -> Option<Miss> {
    if node.draining() {
        return Some(Miss::Draining);
    }
    if !node.connected() {
        return Some(Miss::Disconnected);
    }
    if let Err(s) = node.remaining().fits(req.need) {
        return Some(Miss::Short(s));
    }
    req.constraints.iter().find_map(|c| match c {
        Constraint::DistinctInstance => (node.in_group(req.group) > 0).then_some(Miss::Taken),
        Constraint::MemberOf(q) => (!q.holds(node)).then(|| Miss::Attribute(q.explain(node))),
    })
}

/// The filter stage: the nodes that fit, and what each other one missed.
pub type Filtered<'a, N> = (Vec<&'a N>, Vec<(&'a N, Miss)>);

pub fn filter<'a, N: Node>(nodes: &'a [N], req: &Request<'_>) -> Filtered<'a, N> {
    let mut fits = Vec::new();
    let mut misses = Vec::new();
    for n in nodes {
        match check(n, req) {
            None => fits.push(n),
            Some(m) => misses.push((n, m)),
        }
    }
    (fits, misses)
}

/// A node id's hash, the part of [`mix`] that does not depend on the seed
/// (FNV-1a).
fn id_hash(id: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A stable 64-bit mix of the seed and a node id's hash: random's order.
fn mix_hashed(seed: u64, id_hash: u64) -> u64 {
    // splitmix64's finalizer, so nearby seeds give unrelated orders.
    let mut h = id_hash ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// A stable 64-bit mix of the seed and a node's id.
fn mix(seed: u64, id: &str) -> u64 {
    mix_hashed(seed, id_hash(id))
}

fn field(r: &Resources, f: Field) -> i64 {
    match f {
        Field::Cpu => r.cpu,
        Field::Memory => r.memory,
    }
}

/// What scoring needs of each node, taken once over the nodes a placer is
/// made for and kept current by [`Placer::placed`], so that scoring a node
/// reads numbers, not strings: its id's hash, its tasks of the request's
/// group, and for each spread over an attribute, the node's value (as an
/// index) and the group's tasks per value (fit or not: a zone's tasks
/// count though its nodes are full).
#[derive(Clone, Debug)]
pub struct Placer {
    id_hashes: Vec<u64>,
    in_group: Vec<u32>,
    spreads: Vec<Option<Spread>>,
}

#[derive(Clone, Debug)]
struct Spread {
    value_of: Vec<usize>,
    tasks: Vec<u32>,
}

impl Spread {
    fn new<N: Node>(nodes: &[N], attribute: &str, group: &str) -> Spread {
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut tasks: Vec<u32> = Vec::new();
        let mut value_of = Vec::with_capacity(nodes.len());
        for n in nodes {
            let value = n.attribute(attribute).unwrap_or_default();
            let i = *index.entry(value).or_insert_with(|| {
                tasks.push(0);
                tasks.len() - 1
            });
            tasks[i] += n.in_group(group);
            value_of.push(i);
        }
        Spread { value_of, tasks }
    }
}

/// How many feasible nodes a placement scores: all of them up to 100;
/// beyond, a share that shrinks as clusters grow (50% less one point per
/// 125 nodes, at least 5%, at least 100 nodes), as kube-scheduler's
/// percentageOfNodesToScore does. The scan starts at a seeded node, so
/// which nodes are scored follows the seed.
pub fn nodes_to_score(n: usize) -> usize {
    if n <= 100 {
        return n;
    }
    let percent = 50usize.saturating_sub(n / 125).max(5);
    (n * percent / 100).max(100)
}

impl Placer {
    /// A placer for `all`, the nodes every later call is given, in the
    /// same order, with requests of the same group and strategies.
    pub fn new<N: Node>(all: &[N], req: &Request<'_>) -> Placer {
        let spreads = req
            .strategies
            .iter()
            .map(|s| match s {
                Strategy::Spread(SpreadOn::Attribute(a)) => Some(Spread::new(all, a, req.group)),
                _ => None,
            })
            .collect();
        Placer {
            id_hashes: all.iter().map(|n| id_hash(n.id())).collect(),
            in_group: all.iter().map(|n| n.in_group(req.group)).collect(),
            spreads,
        }
    }

    /// Counts a task just placed on node `i` (the caller counts it into
    /// the node's own groups).
    pub fn placed(&mut self, i: usize) {
        if let Some(n) = self.in_group.get_mut(i) {
            *n += 1;
        }
        for s in self.spreads.iter_mut().flatten() {
            if let Some(&v) = s.value_of.get(i) {
                s.tasks[v] += 1;
            }
        }
    }

    /// Node `i`'s key: each strategy's (lower is better), fixed-size so
    /// that scoring allocates nothing (unused places are 0 for every
    /// node), and the seeded tie-breaker.
    fn key<N: Node>(&self, i: usize, n: &N, req: &Request<'_>) -> ([i64; MAX_STRATEGIES], u64) {
        let mut keys = [0i64; MAX_STRATEGIES];
        let each = req
            .strategies
            .iter()
            .zip(&self.spreads)
            .map(|(s, spread)| match s {
                Strategy::Binpack(f) => field(n.remaining(), *f) - field(req.need, *f),
                Strategy::Spread(SpreadOn::Instance) => i64::from(self.in_group[i]),
                Strategy::Spread(SpreadOn::Attribute(_)) => spread
                    .as_ref()
                    .map_or(0, |s| i64::from(s.tasks[s.value_of[i]])),
                // Reinterpreted, not truncated: the order is what matters.
                Strategy::Random => mix_hashed(req.seed, self.id_hashes[i]) as i64,
            });
        for (slot, k) in keys.iter_mut().zip(each) {
            *slot = k;
        }
        (keys, mix_hashed(req.seed, self.id_hashes[i]))
    }

    /// The index of the best node among those scored (see
    /// [`nodes_to_score`]), or each node's miss when none fits.
    pub fn best<N: Node>(
        &self,
        nodes: &[N],
        req: &Request<'_>,
    ) -> Result<usize, Vec<(usize, Miss)>> {
        let n = nodes.len();
        debug_assert_eq!(
            n,
            self.id_hashes.len(),
            "a placer scores the nodes it was made for"
        );
        if n == 0 {
            return Err(Vec::new());
        }
        let quota = nodes_to_score(n);
        let start = (req.seed % n as u64) as usize;
        let mut winner: Option<(usize, ([i64; MAX_STRATEGIES], u64))> = None;
        let mut misses = Vec::new();
        let mut scored = 0;
        for step in 0..n {
            let i = if quota == n { step } else { (start + step) % n };
            let node = &nodes[i];
            if let Some(m) = check(node, req) {
                misses.push((i, m));
                continue;
            }
            let k = self.key(i, node, req);
            let better = match &winner {
                None => true,
                Some((j, w)) => k.cmp(w).then_with(|| node.id().cmp(nodes[*j].id())).is_lt(),
            };
            if better {
                winner = Some((i, k));
            }
            scored += 1;
            if scored >= quota {
                break;
            }
        }
        winner.map(|(i, _)| i).ok_or(misses)
    }
}

/// The score stage: the candidates best first, ordered by each strategy
/// in turn (lowest key first), then by the seed, then by id.
pub fn score<'a, N: Node>(all: &'a [N], fits: &[&'a N], req: &Request<'_>) -> Vec<&'a N> {
    let scorer = Placer::new(all, req);
    let mut keyed: Vec<([i64; MAX_STRATEGIES], u64, &'a N)> = all
        .iter()
        .enumerate()
        .filter(|(_, n)| fits.iter().any(|f| std::ptr::eq(*f, *n)))
        .map(|(i, n)| {
            let (k, t) = scorer.key(i, n, req);
            (k, t, n)
        })
        .collect();
    keyed.sort_by(|(ka, ta, a), (kb, tb, b)| {
        ka.cmp(kb).then(ta.cmp(tb)).then_with(|| a.id().cmp(b.id()))
    });
    keyed.into_iter().map(|(_, _, n)| n).collect()
}

/// Filter, then score: the best node (the first `score` would give, found
/// in one pass), or what every node missed.
pub fn place<'a, N: Node>(nodes: &'a [N], req: &Request<'_>) -> Result<&'a N, Vec<(&'a N, Miss)>> {
    best(nodes, req)
        .map(|i| &nodes[i])
        .map_err(|misses| misses.into_iter().map(|(i, m)| (&nodes[i], m)).collect())
}

/// The index of the best node (every node scored up to 100 of them; see
/// [`nodes_to_score`]), or each node's miss by index.
pub fn best<N: Node>(nodes: &[N], req: &Request<'_>) -> Result<usize, Vec<(usize, Miss)>> {
    Placer::new(nodes, req).best(nodes, req)
}

/// Scale-in: the nodes that hold tasks of `group`, the one to take a task
/// from first. Spread takes from where the group is densest (the node, or
/// the attribute value), binpack from the node with the most of the field
/// free, random by the seed, as ECS does.
pub fn scale_in_order<'a, N: Node>(
    nodes: &'a [N],
    group: &str,
    strategies: &[Strategy],
    seed: u64,
) -> Vec<&'a N> {
    let spreads: Vec<Option<Spread>> = strategies
        .iter()
        .map(|s| match s {
            Strategy::Spread(SpreadOn::Attribute(a)) => Some(Spread::new(nodes, a, group)),
            _ => None,
        })
        .collect();
    let mut keyed: Vec<(Vec<i64>, &'a N)> = nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.in_group(group) > 0)
        .map(|(i, n)| {
            let key = strategies
                .iter()
                .zip(&spreads)
                .map(|(s, spread)| match s {
                    Strategy::Binpack(f) => field(n.remaining(), *f),
                    Strategy::Spread(SpreadOn::Instance) => i64::from(n.in_group(group)),
                    Strategy::Spread(SpreadOn::Attribute(_)) => spread
                        .as_ref()
                        .map_or(0, |s| i64::from(s.tasks[s.value_of[i]])),
                    Strategy::Random => mix(seed, n.id()) as i64,
                })
                .collect::<Vec<i64>>();
            (key, n)
        })
        .collect();
    // Highest key first; ties by id, so the order is reproducible.
    keyed.sort_by(|(ka, a), (kb, b)| kb.cmp(ka).then_with(|| a.id().cmp(b.id())));
    keyed.into_iter().map(|(_, n)| n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestNode;

    fn spec(kind: &str, field: Option<&str>) -> StrategySpec {
        StrategySpec {
            kind: kind.into(),
            field: field.map(Into::into),
        }
    }

    fn member_of(e: &str) -> ConstraintSpec {
        ConstraintSpec {
            kind: "memberOf".into(),
            expression: Some(e.into()),
        }
    }

    /// Places `n` tasks of `group` one by one, counting each into its node,
    /// and returns the node ids in order.
    fn place_many(
        nodes: &mut [TestNode],
        n: usize,
        strategies: &[Strategy],
        cons: &[Constraint],
    ) -> Vec<String> {
        let need = Resources {
            cpu: 128,
            memory: 256,
            ..Resources::default()
        };
        let mut out = Vec::new();
        for i in 0..n {
            let req = Request {
                need: &need,
                group: "service:web",
                constraints: cons,
                strategies,
                seed: i as u64,
            };
            let Ok(winner) = place(nodes, &req) else {
                break;
            };
            let id = winner.id().to_string();
            let n = nodes.iter_mut().find(|n| n.id == id).unwrap();
            n.take(&need, "service:web");
            out.push(id);
        }
        out
    }

    fn nodes() -> Vec<TestNode> {
        vec![
            TestNode::new("a", 4096, 2048).attr("zone", "1"),
            TestNode::new("b", 4096, 4096).attr("zone", "1"),
            TestNode::new("c", 4096, 1024).attr("zone", "2"),
        ]
    }

    fn counts(ids: &[String]) -> BTreeMap<&str, usize> {
        let mut m = BTreeMap::new();
        for id in ids {
            *m.entry(id.as_str()).or_default() += 1;
        }
        m
    }

    #[test]
    fn spread_by_instance_keeps_counts_within_one() {
        let mut list = nodes();
        let s = strategies(&[spec("spread", Some("instanceId"))]).unwrap();
        let placed = place_many(&mut list, 6, &s, &[]);
        assert_eq!(
            counts(&placed).values().copied().collect::<Vec<_>>(),
            [2, 2, 2]
        );
    }

    #[test]
    fn spread_by_attribute_balances_zones_then_the_next_strategy_breaks_ties() {
        let mut list = nodes();
        let s = strategies(&[
            spec("spread", Some("attribute:zone")),
            spec("spread", Some("instanceId")),
        ])
        .unwrap();
        let placed = place_many(&mut list, 4, &s, &[]);
        // Zones 1 and 2 alternate; within zone 1, a and b take turns.
        assert_eq!(placed, ["a", "c", "b", "c"]);
    }

    #[test]
    fn binpack_fills_one_node_before_the_next() {
        let mut list = nodes();
        let s = strategies(&[spec("binpack", Some("memory"))]).unwrap();
        let placed = place_many(&mut list, 8, &s, &[]);
        // c has the least memory: it fills first (4 × 256), then a, then b.
        assert_eq!(&placed[..4], ["c", "c", "c", "c"]);
        assert_eq!(&placed[4..8], ["a", "a", "a", "a"]);
    }

    #[test]
    fn random_is_the_same_for_the_same_seed() {
        let s = strategies(&[spec("random", None)]).unwrap();
        let first = place_many(&mut nodes(), 6, &s, &[]);
        let again = place_many(&mut nodes(), 6, &s, &[]);
        assert_eq!(first, again);
        assert!(
            counts(&first).len() > 1,
            "random uses more than one node: {first:?}"
        );
    }

    #[test]
    fn distinct_instance_and_member_of_are_binding() {
        let cons = constraints(&[ConstraintSpec {
            kind: "distinctInstance".into(),
            expression: None,
        }])
        .unwrap();
        let placed = place_many(&mut nodes(), 5, &[], &cons);
        assert_eq!(counts(&placed).len(), 3);
        assert_eq!(placed.len(), 3, "a fourth has nowhere to go");
        let cons = constraints(&[member_of("attribute:zone == 1")]).unwrap();
        let placed = place_many(&mut nodes(), 6, &[], &cons);
        assert!(placed.iter().all(|id| id != "c"), "{placed:?}");
    }

    #[test]
    fn each_node_passed_over_says_what_it_missed() {
        let mut list = nodes();
        list[0].draining = true;
        list[1].connected = false;
        let need = Resources {
            cpu: 0,
            memory: 2048,
            ..Resources::default()
        };
        let cons = constraints(&[member_of("attribute:zone == 1")]).unwrap();
        let req = Request {
            need: &need,
            group: "g",
            constraints: &cons,
            strategies: &[],
            seed: 0,
        };
        let misses = place(&list, &req).unwrap_err();
        let why: Vec<String> = misses
            .iter()
            .map(|(n, m)| format!("{}: {} {m}", n.id(), m.reason()))
            .collect();
        assert_eq!(
            why,
            [
                "a: RESOURCE:INSTANCE the instance is DRAINING",
                "b: RESOURCE:INSTANCE its agent is not connected",
                "c: RESOURCE:MEMORY needs 2048 MiB of memory, 1024 MiB free",
            ]
        );
        let mut c = TestNode::new("c", 4096, 4096).attr("zone", "2");
        c.connected = true;
        let misses = place(std::slice::from_ref(&c), &req).unwrap_err();
        assert_eq!(
            misses[0].1.to_string(),
            "memberOf(attribute:zone == 1) is false here: attribute:zone is \"2\""
        );
    }

    #[test]
    fn the_one_pass_choice_is_the_first_of_the_full_order() {
        let mut list: Vec<TestNode> = (0..40)
            .map(|i| {
                TestNode::new(&format!("n{i:02}"), 4096, 512 + (i % 7) * 256)
                    .attr("zone", &format!("{}", i % 3))
            })
            .collect();
        for (i, n) in list.iter_mut().enumerate().filter(|(i, _)| i % 4 == 0) {
            n.groups.insert("g".into(), (i % 5) as u32);
        }
        let need = Resources::default();
        for specs in [
            vec![
                spec("spread", Some("attribute:zone")),
                spec("binpack", Some("memory")),
            ],
            vec![spec("random", None)],
            vec![spec("spread", Some("instanceId"))],
            vec![],
        ] {
            let strategies = strategies(&specs).unwrap();
            for seed in 0..20 {
                let req = Request {
                    need: &need,
                    group: "g",
                    constraints: &[],
                    strategies: &strategies,
                    seed,
                };
                let (fits, _) = filter(&list, &req);
                let first = score(&list, &fits, &req)[0].id().to_string();
                assert_eq!(
                    place(&list, &req).unwrap().id(),
                    first,
                    "{specs:?} seed {seed}"
                );
            }
        }
    }

    #[test]
    fn scale_in_takes_from_the_densest_node_first() {
        let mut list = nodes();
        let need = Resources::default();
        list[1].take(&need, "service:web");
        list[1].take(&need, "service:web");
        list[2].take(&need, "service:web");
        let spread = strategies(&[spec("spread", Some("instanceId"))]).unwrap();
        let order: Vec<&str> = scale_in_order(&list, "service:web", &spread, 0)
            .iter()
            .map(|n| n.id())
            .collect();
        assert_eq!(order, ["b", "c"]);
        let binpack = strategies(&[spec("binpack", Some("memory"))]).unwrap();
        let order: Vec<&str> = scale_in_order(&list, "service:web", &binpack, 0)
            .iter()
            .map(|n| n.id())
            .collect();
        assert_eq!(order, ["b", "c"], "b has the most memory free");
    }

    #[test]
    fn bad_specs_are_refused_with_a_reason() {
        assert!(constraints(&vec![member_of("attribute:a exists"); 11]).is_err());
        assert!(strategies(&vec![spec("random", None); 6]).is_err());
        assert!(strategies(&[spec("pack", None)]).is_err());
        assert!(strategies(&[spec("binpack", Some("disk"))]).is_err());
        assert!(strategies(&[spec("spread", Some("attribute:"))]).is_err());
        let err = constraints(&[member_of("attribute:zone ==")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Invalid placement constraint expression at character 18: expected a value, found the end"
        );
    }
}
