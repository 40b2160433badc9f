//! ECR's layer operations: whether layers are in a repository
//! (BatchCheckLayerAvailability), and the upload API that clients without
//! the distribution API push through (InitiateLayerUpload, UploadLayerPart,
//! CompleteLayerUpload; PutImage then names the manifest). They run on the
//! registry's own upload sessions and blob store, so a layer uploaded here
//! is the same blob a `docker push` would have left.

use base64::Engine as _;
use serde_json::{json, Value};

use super::{err, invalid, server_error, Call, Outcome, ACCOUNT};
use crate::auth::Action;
use crate::digest::Digest;
use crate::error::Code;
use estiba_aws::json::ErrorBody;

/// The part size InitiateLayerUpload suggests.
const PART_SIZE: u64 = 10 << 20;

/// ECR's largest part (LayerPartBlob, 20 MiB).
pub(super) const MAX_PART: usize = 20 << 20;

/// How large a request may be: an UploadLayerPart carries its part in
/// base64 (4/3 of it), every other call is small.
pub(super) fn body_limit(target: Option<&str>) -> usize {
    if target.is_some_and(|t| t.ends_with(".UploadLayerPart")) {
        MAX_PART / 3 * 4 + (1 << 20)
    } else {
        1 << 20
    }
}

/// A list of strings, 1 to `max` of them.
fn strings(c: &Call<'_>, field: &str, max: usize) -> Result<Vec<String>, ErrorBody> {
    let list = c
        .body
        .get(field)
        .and_then(Value::as_array)
        .ok_or_else(|| invalid(format!("{field} is required")))?;
    if list.is_empty() || list.len() > max {
        return Err(invalid(format!("{field} must name 1 to {max} digests")));
    }
    list.iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| invalid(format!("{field} must hold strings")))
        })
        .collect()
}

fn number(c: &Call<'_>, field: &str) -> Result<u64, ErrorBody> {
    c.body
        .get(field)
        .and_then(Value::as_u64)
        .ok_or_else(|| invalid(format!("{field} is required: a byte offset, 0 or more")))
}

/// The repository, which must exist, and the caller's right to `action`.
fn repository(c: &Call<'_>, action: Action) -> Result<String, ErrorBody> {
    let repo = c.repo_name()?;
    c.existing(&repo)?;
    c.need(&repo, action)?;
    Ok(repo)
}

pub(super) fn batch_check(c: &Call<'_>) -> Outcome {
    let repo = repository(c, Action::Pull)?;
    let s = c.storage();
    let (mut layers, mut failures) = (Vec::new(), Vec::new());
    for given in strings(c, "layerDigests", 100)? {
        let Ok(digest) = given.parse::<Digest>() else {
            failures.push(json!({
                "layerDigest": given,
                "failureCode": "InvalidLayerDigest",
                "failureReason": "Invalid layer digest",
            }));
            continue;
        };
        let size = if s.blob_linked(&repo, &digest).map_err(server_error)? {
            s.blob_size(&digest).map_err(server_error)?
        } else {
            None
        };
        match size {
            Some(size) => layers.push(json!({
                "layerDigest": given,
                "layerAvailability": "AVAILABLE",
                "layerSize": size,
            })),
            None => failures.push(json!({
                "layerDigest": given,
                "failureCode": "MissingLayerDigest",
                "failureReason": "Could not find the requested digest",
            })),
        }
    }
    Ok(json!({"layers": layers, "failures": failures}))
}

pub(super) fn initiate(c: &Call<'_>) -> Outcome {
    let repo = repository(c, Action::Push)?;
    let id = c.storage().start_upload(&repo).map_err(server_error)?;
    Ok(json!({"uploadId": id, "partSize": PART_SIZE}))
}

fn upload_not_found(id: &str) -> ErrorBody {
    err(
        "UploadNotFoundException",
        400,
        format!("Upload with id '{id}' is not found"),
    )
}

/// The request's upload, which must be one of `repo`'s.
fn upload<'c>(c: &'c Call<'_>, repo: &str) -> Result<&'c str, ErrorBody> {
    let id = c
        .str_field("uploadId")
        .ok_or_else(|| invalid("uploadId is required"))?;
    match c.storage().upload_repo(id) {
        Ok(Some(owner)) if owner == repo => Ok(id),
        Ok(_) => Err(upload_not_found(id)),
        Err(e) if e.code() == Some(Code::BlobUploadUnknown) => Err(upload_not_found(id)),
        Err(e) => Err(server_error(e)),
    }
}

fn bad_part(message: String) -> ErrorBody {
    err("InvalidLayerPartException", 400, message)
}

pub(super) fn upload_part(c: &Call<'_>) -> Outcome {
    let repo = repository(c, Action::Push)?;
    let id = upload(c, &repo)?;
    let first = number(c, "partFirstByte")?;
    let last = number(c, "partLastByte")?;
    let blob = c
        .str_field("layerPartBlob")
        .ok_or_else(|| invalid("layerPartBlob is required"))?;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .map_err(|e| invalid(format!("layerPartBlob is not base64: {e}")))?;
    if blob.len() > MAX_PART {
        return Err(invalid(format!(
            "layerPartBlob is {} bytes: a part holds at most {MAX_PART}",
            blob.len()
        )));
    }
    let s = c.storage();
    let at = s.upload_offset(id).map_err(server_error)?;
    let received = match at {
        0 => "nothing yet".to_string(),
        n => format!("the last valid byte received is {}", n - 1),
    };
    if first != at {
        return Err(bad_part(format!(
            "The part starts at byte {first}, but upload {id} expects byte {at} next ({received})"
        )));
    }
    if blob.is_empty() || last < first || last - first + 1 != blob.len() as u64 {
        return Err(bad_part(format!(
            "The part's bytes {first} to {last} do not match its {} bytes ({received})",
            blob.len()
        )));
    }
    let now = s
        .append_upload(id, Some(first), &mut blob.as_slice())
        .map_err(server_error)?;
    Ok(json!({
        "registryId": ACCOUNT,
        "repositoryName": repo,
        "uploadId": id,
        "lastByteReceived": now - 1,
    }))
}

pub(super) fn complete(c: &Call<'_>) -> Outcome {
    let repo = repository(c, Action::Push)?;
    let id = upload(c, &repo)?;
    let digests = strings(c, "layerDigests", 100)?;
    let [given] = digests.as_slice() else {
        return Err(invalid(
            "layerDigests must name the one layer the upload holds",
        ));
    };
    let digest: Digest = given.parse().map_err(|_| {
        err(
            "InvalidLayerException",
            400,
            format!("Invalid layer digest {given}"),
        )
    })?;
    let s = c.storage();
    if s.upload_offset(id).map_err(server_error)? == 0 {
        return Err(err(
            "EmptyUploadException",
            400,
            format!("Upload with id '{id}' is empty"),
        ));
    }
    if s.blob_linked(&repo, &digest).map_err(server_error)?
        && s.blob_size(&digest).map_err(server_error)?.is_some()
    {
        // Nothing is left to resume it: the layer is there already.
        s.cancel_upload(id).map_err(server_error)?;
        return Err(err(
            "LayerAlreadyExistsException",
            400,
            format!("Layer '{digest}' already exists in the repository with name '{repo}' in registry with id '{ACCOUNT}'"),
        ));
    }
    let _guard = c.app.gc_lock.blocking_read();
    match s.finish_upload(id, &digest) {
        Ok(_) => {}
        Err(e) if e.code() == Some(Code::DigestInvalid) => {
            return Err(err(
                "InvalidLayerException",
                400,
                format!("The layer's digest is not {digest}: {e}"),
            ))
        }
        Err(e) => return Err(server_error(e)),
    }
    s.link_blob(&repo, &digest).map_err(server_error)?;
    Ok(json!({
        "registryId": ACCOUNT,
        "repositoryName": repo,
        "uploadId": id,
        "layerDigest": digest.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_part_upload_may_be_large() {
        let part = body_limit(Some("AmazonEC2ContainerRegistry_V20150921.UploadLayerPart"));
        assert!(part >= MAX_PART / 3 * 4, "a whole part in base64 fits");
        assert_eq!(
            body_limit(Some("AmazonEC2ContainerRegistry_V20150921.PutImage")),
            1 << 20
        );
        assert_eq!(body_limit(None), 1 << 20);
    }
}
