//! TagResource, UntagResource, ListTagsForResource; and the tags other
//! operations take and show. A resource's tags live beside it, under
//! `tags/<arn>`.

use serde::Deserialize;
use serde_json::json;

use super::{ApiError, Reply, Server};
use crate::model::{ClusterRecord, Tag};
use crate::{keys, Result};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagRequest {
    resource_arn: String,
    tags: Vec<Tag>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UntagRequest {
    resource_arn: String,
    tag_keys: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListRequest {
    resource_arn: String,
}

/// ECS's limits: 50 tags, keys of 1–128 and values of up to 256
/// characters, and the `aws:` prefix kept for AWS.
pub fn check(tags: &[Tag]) -> std::result::Result<(), ApiError> {
    if tags.len() > 50 {
        return Err(ApiError::invalid("A resource can have at most 50 tags."));
    }
    for t in tags {
        if t.key.is_empty() || t.key.chars().count() > 128 {
            return Err(ApiError::invalid(format!(
                "Tag key {:?} must be 1 to 128 characters.",
                t.key
            )));
        }
        if t.value.chars().count() > 256 {
            return Err(ApiError::invalid(format!(
                "The value of tag {:?} must be at most 256 characters.",
                t.key
            )));
        }
        if t.key.to_ascii_lowercase().starts_with("aws:") {
            return Err(ApiError::invalid(format!(
                "Tag key {:?}: the aws: prefix is reserved.",
                t.key
            )));
        }
    }
    Ok(())
}

pub async fn of(server: &Server, arn: &str) -> Result<Vec<Tag>> {
    Ok(server
        .db
        .get::<Vec<Tag>>(&keys::tags(arn))
        .await?
        .map(|v| v.value)
        .unwrap_or_default())
}

/// Changes a resource's tags with `f`, by compare-and-swap.
async fn update(server: &Server, arn: &str, f: impl Fn(&mut Vec<Tag>)) -> Result<Vec<Tag>> {
    let key = keys::tags(arn);
    loop {
        let current = server.db.get::<Vec<Tag>>(&key).await?;
        let rev = current.as_ref().map_or(0, |c| c.mod_revision);
        let mut tags = current.map(|c| c.value).unwrap_or_default();
        f(&mut tags);
        if server.db.swap(&key, rev, &tags).await? {
            return Ok(tags);
        }
    }
}

/// Adds tags, replacing the values of keys already there.
pub async fn merge(server: &Server, arn: &str, new: &[Tag]) -> std::result::Result<(), ApiError> {
    let merged = update(server, arn, |tags| {
        for t in new {
            tags.retain(|old| old.key != t.key);
            tags.push(t.clone());
        }
    })
    .await?;
    if merged.len() > 50 {
        // Put back what was there: the limit holds for the result.
        update(server, arn, |tags| {
            tags.retain(|old| !new.iter().any(|t| t.key == old.key));
        })
        .await?;
        return Err(ApiError::invalid("A resource can have at most 50 tags."));
    }
    Ok(())
}

/// Checks that the ARN names a resource estiba keeps.
async fn exists(server: &Server, arn: &str) -> std::result::Result<(), ApiError> {
    let parsed: estiba_aws::arn::Arn = arn
        .parse()
        .map_err(|e: estiba_aws::arn::NotAnArn| ApiError::invalid(e.to_string()))?;
    let found = match parsed.resource_parts() {
        ("cluster", name) => {
            let c = server.db.get::<ClusterRecord>(&keys::cluster(name)).await?;
            if c.is_none() {
                return Err(ApiError::cluster_not_found());
            }
            true
        }
        ("task-definition", td) => super::taskdefs::find(server, td).await?.is_some(),
        _ => false,
    };
    if found {
        Ok(())
    } else {
        Err(ApiError::new(
            "ResourceNotFoundException",
            400,
            "The specified resource could not be found.",
        ))
    }
}

pub async fn tag(server: &Server, req: TagRequest) -> Reply {
    check(&req.tags)?;
    exists(server, &req.resource_arn).await?;
    merge(server, &req.resource_arn, &req.tags).await?;
    Ok(json!({}))
}

pub async fn untag(server: &Server, req: UntagRequest) -> Reply {
    exists(server, &req.resource_arn).await?;
    update(server, &req.resource_arn, |tags| {
        tags.retain(|t| !req.tag_keys.contains(&t.key));
    })
    .await?;
    Ok(json!({}))
}

pub async fn list(server: &Server, req: ListRequest) -> Reply {
    exists(server, &req.resource_arn).await?;
    Ok(json!({"tags": of(server, &req.resource_arn).await?}))
}
