//! Where each record lives in the store. One prefix per kind, so a list is
//! a range and a watch is a prefix:
//!
//! ```text
//! clusters/<name>                       a cluster
//! families/<family>                     the family's last revision number
//! taskdefs/<family>/<revision:010>      one revision of a task definition
//! tags/<arn>                            a resource's tags
//! users/<name>                          a user and their policies
//! access-keys/<id>                      an access key, its secret sealed
//! secrets/<name>                        a cluster secret, its value sealed
//! join-tokens/<id>                      a join token's hash, on a lease (its TTL)
//! nodes/<instance>                      a joined node's credential hash and lease
//! instances/<cluster>/<instance>        a container instance
//! instances/~fargate/<instance>         the built-in FARGATE capacity: a cluster
//!                                       name ECS forbids, so no cluster lists it
//! connected/<instance>                  present while its agent heartbeats (a lease)
//! tasks/<cluster>/<task>                a task
//! services/<cluster>/<name>            a service: its deployments and events
//! leader                                the leading replica's id, on its lease
//! policy                                the cluster's admission policy (TOML)
//! usage/<instance>                      the node's tasks' last CPU and memory use,
//!                                       on its connection lease
//! scaling/targets/<resource>            a scalable target (Application Auto Scaling)
//! scaling/policies/<resource>/<name>    its scaling policies
//! scaling/activities/<resource>/<n>     what scaling did, in order
//! ```
//!
//! Revisions are zero-padded so that key order is revision order.
//!
//! What a node's agent has to do comes from the tasks themselves, through
//! the view of live tasks (`view.rs`). Stores written before that held an
//! `assigned/<instance>/<task>` key beside each task; nothing reads those
//! any more.

pub const CLUSTERS: &str = "clusters/";
pub const FAMILIES: &str = "families/";
pub const TASKDEFS: &str = "taskdefs/";
pub const TAGS: &str = "tags/";
pub const USERS: &str = "users/";
pub const ACCESS_KEYS: &str = "access-keys/";
pub const SECRETS: &str = "secrets/";
pub const JOIN_TOKENS: &str = "join-tokens/";
pub const NODES: &str = "nodes/";
pub const INSTANCES: &str = "instances/";
pub const CONNECTED: &str = "connected/";
pub const TASKS: &str = "tasks/";
pub const SERVICES: &str = "services/";
pub const LEADER: &str = "leader";
pub const POLICY: &str = "policy";
pub const USAGE: &str = "usage/";
pub const SCALING_TARGETS: &str = "scaling/targets/";
pub const SCALING_POLICIES: &str = "scaling/policies/";
pub const SCALING_ACTIVITIES: &str = "scaling/activities/";

pub fn usage(instance: &str) -> String {
    format!("{USAGE}{instance}")
}

pub fn scaling_target(resource: &str) -> String {
    format!("{SCALING_TARGETS}{resource}")
}

pub fn scaling_policies_of(resource: &str) -> String {
    format!("{SCALING_POLICIES}{resource}/")
}

pub fn scaling_policy(resource: &str, name: &str) -> String {
    format!("{SCALING_POLICIES}{resource}/{name}")
}

pub fn scaling_activities_of(resource: &str) -> String {
    format!("{SCALING_ACTIVITIES}{resource}/")
}

/// The pool of the control plane's built-in FARGATE capacity, kept where
/// a cluster's instances are but under a name no cluster can have.
pub const FARGATE_POOL: &str = "~fargate";

pub fn join_token(id: &str) -> String {
    format!("{JOIN_TOKENS}{id}")
}

pub fn node(instance: &str) -> String {
    format!("{NODES}{instance}")
}

pub fn instances_of(cluster: &str) -> String {
    format!("{INSTANCES}{cluster}/")
}

pub fn instance(cluster: &str, id: &str) -> String {
    format!("{INSTANCES}{cluster}/{id}")
}

pub fn connected(instance: &str) -> String {
    format!("{CONNECTED}{instance}")
}

pub fn tasks_of(cluster: &str) -> String {
    format!("{TASKS}{cluster}/")
}

pub fn task(cluster: &str, id: &str) -> String {
    format!("{TASKS}{cluster}/{id}")
}

pub fn services_of(cluster: &str) -> String {
    format!("{SERVICES}{cluster}/")
}

pub fn service(cluster: &str, name: &str) -> String {
    format!("{SERVICES}{cluster}/{name}")
}

pub fn cluster(name: &str) -> String {
    format!("{CLUSTERS}{name}")
}

pub fn family(name: &str) -> String {
    format!("{FAMILIES}{name}")
}

/// Every revision of a family.
pub fn taskdefs_of(family: &str) -> String {
    format!("{TASKDEFS}{family}/")
}

pub fn taskdef(family: &str, revision: u32) -> String {
    format!("{TASKDEFS}{family}/{revision:010}")
}

pub fn tags(arn: &str) -> String {
    format!("{TAGS}{arn}")
}

pub fn user(name: &str) -> String {
    format!("{USERS}{name}")
}

pub fn secret(name: &str) -> String {
    format!("{SECRETS}{name}")
}

pub fn access_key(id: &str) -> String {
    format!("{ACCESS_KEYS}{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_sort_as_numbers() {
        assert!(taskdef("web", 9) < taskdef("web", 10));
        assert!(taskdef("web", 10).starts_with(&taskdefs_of("web")));
        // A family that extends another's name is not among its revisions.
        assert!(!taskdef("web2", 1).starts_with(&taskdefs_of("web")));
    }
}
