//! ARNs as AWS writes them: `arn:aws:ecs:us-east-1:000000000000:task/default/ID`.

use std::fmt;

/// `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Arn {
    pub partition: String,
    pub service: String,
    pub region: String,
    pub account: String,
    /// `task/CLUSTER/ID`, `cluster/NAME`, `task-definition/FAMILY:REV`, …
    pub resource: String,
}

impl Arn {
    /// An ARN in the `aws` partition.
    pub fn new(service: &str, region: &str, account: &str, resource: impl Into<String>) -> Arn {
        Arn {
            partition: "aws".into(),
            service: service.into(),
            region: region.into(),
            account: account.into(),
            resource: resource.into(),
        }
    }

    /// The resource's type (`task`) and the rest (`CLUSTER/ID`).
    pub fn resource_parts(&self) -> (&str, &str) {
        self.resource
            .split_once('/')
            .unwrap_or((self.resource.as_str(), ""))
    }
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:{}:{}:{}:{}",
            self.partition, self.service, self.region, self.account, self.resource
        )
    }
}

/// Why a string is not an ARN.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an ARN (arn:partition:service:region:account:resource)")]
pub struct NotAnArn(pub String);

impl std::str::FromStr for Arn {
    type Err = NotAnArn;

    fn from_str(s: &str) -> Result<Arn, NotAnArn> {
        let bad = || NotAnArn(s.to_string());
        let mut parts = s.splitn(6, ':');
        if parts.next() != Some("arn") {
            return Err(bad());
        }
        let mut next = || parts.next().ok_or_else(bad);
        let (partition, service, region, account, resource) =
            (next()?, next()?, next()?, next()?, next()?);
        if partition.is_empty() || service.is_empty() || resource.is_empty() {
            return Err(bad());
        }
        Ok(Arn {
            partition: partition.into(),
            service: service.into(),
            region: region.into(),
            account: account.into(),
            resource: resource.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_print_and_parse_as_aws_writes_them() {
        let task = Arn::new("ecs", "us-east-1", "000000000000", "task/default/0123abcd");
        let text = task.to_string();
        assert_eq!(
            text,
            "arn:aws:ecs:us-east-1:000000000000:task/default/0123abcd"
        );
        let back: Arn = text.parse().unwrap();
        assert_eq!(back, task);
        assert_eq!(back.resource_parts(), ("task", "default/0123abcd"));
        let def: Arn = "arn:aws:ecs:eu-west-1:1:task-definition/web:3"
            .parse()
            .unwrap();
        assert_eq!(
            def.resource, "task-definition/web:3",
            "colons in the resource stay"
        );
        for bad in [
            "",
            "arn",
            "arn:aws:ecs",
            "urn:aws:ecs:r:a:x",
            "arn::ecs:r:a:x",
            "arn:aws:ecs:r:a:",
        ] {
            assert!(bad.parse::<Arn>().is_err(), "{bad}");
        }
    }
}
