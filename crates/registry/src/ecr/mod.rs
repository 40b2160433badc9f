//! The ECR API on the registry's own address: awsJson1.1 (`POST /` with
//! `X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.<Operation>`),
//! signed with SigV4 by an access key of a registry user (`keys.rs`), each
//! operation then judged by that user's registry policies: reading needs
//! pull, deleting images delete, and repository settings admin.
//!
//! Repositories, images, tag mutability, lifecycle policies (ECR's JSON
//! mapped onto the registry's engine, `lifecycle_json.rs`) with their
//! preview, tags, the authorization token `docker login` takes, and the
//! layer upload API (`layers.rs`).

pub mod keys;
mod layers;
pub mod lifecycle_json;
pub mod repository_policy;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use estiba_aws::json::ErrorBody;
use estiba_aws::sigv4;
use serde_json::{json, Value};

use crate::auth::{Action, Identity};
use crate::digest::Digest;
use crate::server::App;
use crate::settings::RepoSettings;
use crate::storage::Storage;

/// The service name in `X-Amz-Target`.
pub const TARGET_SERVICE: &str = "AmazonEC2ContainerRegistry_V20150921";
/// The one account estiba's registry is.
pub const ACCOUNT: &str = "000000000000";

/// Lifecycle previews by repository, as StartLifecyclePolicyPreview left them.
#[derive(Default)]
pub struct Previews(Mutex<HashMap<String, Value>>);

type Outcome = Result<Value, ErrorBody>;

fn err(exception: &str, status: u16, message: impl Into<String>) -> ErrorBody {
    ErrorBody::new(exception, status, message.into())
}

fn invalid(message: impl Into<String>) -> ErrorBody {
    err("InvalidParameterException", 400, message)
}

fn server_error(e: crate::Error) -> ErrorBody {
    err("ServerException", 500, e.to_string())
}

/// What one call knows: who, where, and the request's JSON.
struct Call<'a> {
    app: &'a App,
    who: Identity,
    region: String,
    host: String,
    body: Value,
    operation: String,
}

impl Call<'_> {
    fn str_field(&self, key: &str) -> Option<&str> {
        self.body.get(key).and_then(Value::as_str)
    }

    fn repo_name(&self) -> Result<String, ErrorBody> {
        let name = self
            .str_field("repositoryName")
            .ok_or_else(|| invalid("repositoryName is required"))?;
        crate::names::validate_name(name)
            .map_err(|e| invalid(format!("repositoryName {name:?}: {e}")))?;
        Ok(name.to_string())
    }

    fn arn(&self, repo: &str) -> String {
        format!("arn:aws:ecr:{}:{ACCOUNT}:repository/{repo}", self.region)
    }

    /// The caller may do `action` on `repo`, or AccessDeniedException.
    fn need(&self, repo: &str, action: Action) -> Result<(), ErrorBody> {
        if self.app.auth.allowed(&self.who, repo).contains(&action) {
            return Ok(());
        }
        Err(err(
            "AccessDeniedException",
            403,
            format!(
                "User: {} is not authorized to perform: ecr:{} on resource: {} ({} is not granted)",
                self.who.name(),
                self.operation,
                self.arn(repo),
                action.as_str()
            ),
        ))
    }

    fn storage(&self) -> &dyn Storage {
        self.app.storage.as_ref()
    }

    fn existing(&self, repo: &str) -> Result<RepoSettings, ErrorBody> {
        if !self
            .storage()
            .repository_exists(repo)
            .map_err(server_error)?
        {
            return Err(err(
                "RepositoryNotFoundException",
                400,
                format!("The repository with name '{repo}' does not exist in the registry with id '{ACCOUNT}'"),
            ));
        }
        RepoSettings::load(self.storage(), repo).map_err(server_error)
    }

    fn repository(&self, repo: &str, s: &RepoSettings) -> Value {
        json!({
            "repositoryArn": self.arn(repo),
            "registryId": ACCOUNT,
            "repositoryName": repo,
            "repositoryUri": format!("{}/{repo}", self.host),
            "createdAt": s.created_at.as_deref().map_or(0.0, epoch),
            "imageTagMutability": if s.immutable_tags { "IMMUTABLE" } else { "MUTABLE" },
            "imageScanningConfiguration": {"scanOnPush": s.scan_on_push},
            "encryptionConfiguration": {"encryptionType": "AES256"},
        })
    }
}

fn epoch(rfc3339: &str) -> f64 {
    humantime::parse_rfc3339_weak(rfc3339)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64())
}

fn respond(status: u16, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(estiba_aws::json::CONTENT_TYPE),
    );
    r
}

/// True if this request is for the ECR API rather than the distribution API.
pub fn is_ecr(req: &Request) -> bool {
    req.uri().path() == "/"
        && req
            .headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with(TARGET_SERVICE))
}

/// Serves one ECR call; returns who made it (for the access log).
pub async fn handle(app: Arc<App>, req: Request) -> (Option<String>, Response) {
    let (parts, body) = req.into_parts();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok());
    let body = match axum::body::to_bytes(body, layers::body_limit(target)).await {
        Ok(b) => b,
        Err(e) => {
            return (
                None,
                respond(400, invalid(format!("reading the request: {e}")).to_json()),
            )
        }
    };
    let app2 = Arc::clone(&app);
    let done = tokio::task::spawn_blocking(move || serve(&app2, &parts, &body)).await;
    match done {
        Ok((who, Ok(v))) => (who, respond(200, v.to_string())),
        Ok((who, Err(e))) => (who, respond(e.status, e.to_json())),
        Err(e) => (
            None,
            respond(
                500,
                server_error(crate::Error::Http(e.to_string())).to_json(),
            ),
        ),
    }
}

fn serve(app: &App, parts: &axum::http::request::Parts, body: &[u8]) -> (Option<String>, Outcome) {
    let target = match estiba_aws::json::target(
        parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok()),
        TARGET_SERVICE,
    ) {
        Ok(t) => t.operation.to_string(),
        Err(e) => return (None, Err(e)),
    };
    let (who, region) = match authenticate(app, parts, body) {
        Ok(x) => x,
        Err(e) => return (None, Err(e)),
    };
    let name = who.user.clone();
    let json: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => {
                return (
                    name,
                    Err(err(
                        "SerializationException",
                        400,
                        "the body must be a JSON object",
                    )),
                )
            }
            Err(e) => {
                return (
                    name,
                    Err(err(
                        "SerializationException",
                        400,
                        format!("the body is not JSON: {e}"),
                    )),
                )
            }
        }
    };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let call = Call {
        app,
        who,
        region,
        host,
        body: json,
        operation: target.clone(),
    };
    let outcome = operation(&call, &target);
    let outcome_word = if outcome.is_ok() { "ok" } else { "refused" };
    let repo = call.str_field("repositoryName").unwrap_or("-").to_string();
    app.audit.record(
        call.who.name(),
        "ecr",
        &format!("ecr:{target}"),
        &repo,
        "-",
        outcome_word,
    );
    (name, outcome)
}

/// The access key, its signature, its clock; the user behind the key.
fn authenticate(
    app: &App,
    parts: &axum::http::request::Parts,
    body: &[u8],
) -> Result<(Identity, String), ErrorBody> {
    let pairs: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let request = sigv4::Request {
        method: parts.method.as_str(),
        path_and_query: parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        headers: &pairs,
        body,
    };
    let key = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(sigv4::access_key_of)
        .and_then(|id| app.access_keys.get(id));
    let secret = key.as_ref().map(|k| k.secret.clone());
    let signed =
        sigv4::verify(&request, |_| secret, SystemTime::now()).map_err(|e| ErrorBody::from(&e))?;
    if signed.service != "ecr" {
        return Err(err(
            "InvalidSignatureException",
            403,
            format!(
                "Credential should be scoped to correct service: 'ecr', not '{}'.",
                signed.service
            ),
        ));
    }
    let key = key.ok_or_else(|| ErrorBody::from(&sigv4::AuthError::UnknownKey))?;
    let who = app.auth.identity_of(Some(&key.user));
    if who.user.is_none() {
        return Err(err(
            "AccessDeniedException",
            403,
            format!("the key's user {} no longer exists", key.user),
        ));
    }
    Ok((who, signed.region))
}

fn operation(c: &Call<'_>, op: &str) -> Outcome {
    match op {
        "GetAuthorizationToken" => authorization_token(c),
        "CreateRepository" => create_repository(c),
        "DescribeRepositories" => describe_repositories(c),
        "DeleteRepository" => delete_repository(c),
        "DescribeImages" => describe_images(c),
        "ListImages" => list_images(c),
        "BatchDeleteImage" => batch_delete_image(c),
        "PutImageTagMutability" => put_tag_mutability(c),
        "PutLifecyclePolicy" => put_lifecycle(c),
        "GetLifecyclePolicy" => get_lifecycle(c),
        "DeleteLifecyclePolicy" => delete_lifecycle(c),
        "StartLifecyclePolicyPreview" => start_preview(c),
        "GetLifecyclePolicyPreview" => get_preview(c),
        "TagResource" => tag_resource(c),
        "ListTagsForResource" => list_tags(c),
        "BatchGetImage" => batch_get_image(c),
        "PutImage" => put_image(c),
        "BatchCheckLayerAvailability" => layers::batch_check(c),
        "InitiateLayerUpload" => layers::initiate(c),
        "UploadLayerPart" => layers::upload_part(c),
        "CompleteLayerUpload" => layers::complete(c),
        "SetRepositoryPolicy" => set_policy(c),
        "GetRepositoryPolicy" => get_policy(c),
        "DeleteRepositoryPolicy" => delete_policy(c),
        other => Err(err(
            "UnknownOperationException",
            400,
            format!("Unknown operation {other}"),
        )),
    }
}

/// A base64 `AWS:<token>`: the token is the registry's own, signed for
/// logins only, naming the caller; `docker login -u AWS` presents it.
fn authorization_token(c: &Call<'_>) -> Outcome {
    let user = c.who.user.clone().unwrap_or_default();
    let (token, ttl) = c.app.auth.issue_login_token(&user).map_err(server_error)?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{token}"));
    let expires = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
        + ttl as f64;
    let scheme = if c.app.tls { "https" } else { "http" };
    Ok(json!({"authorizationData": [{
        "authorizationToken": encoded,
        "expiresAt": expires,
        "proxyEndpoint": format!("{scheme}://{}", c.host),
    }]}))
}

fn mutability(value: Option<&str>) -> Result<Option<bool>, ErrorBody> {
    match value {
        None => Ok(None),
        Some("MUTABLE") => Ok(Some(false)),
        Some("IMMUTABLE") => Ok(Some(true)),
        Some(other) => Err(invalid(format!(
            "imageTagMutability {other:?}: expected MUTABLE or IMMUTABLE"
        ))),
    }
}

fn exclusion_filters(c: &Call<'_>) -> Result<Vec<String>, ErrorBody> {
    let Some(list) = c.body.get("imageTagMutabilityExclusionFilters") else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or_else(|| invalid("imageTagMutabilityExclusionFilters must be a list"))?;
    list.iter()
        .map(|f| {
            match (
                f.get("filterType").and_then(Value::as_str),
                f.get("filter").and_then(Value::as_str),
            ) {
                (Some("WILDCARD"), Some(g)) if !g.is_empty() => Ok(g.to_string()),
                _ => Err(invalid(
                    "each exclusion filter is {\"filterType\": \"WILDCARD\", \"filter\": GLOB}",
                )),
            }
        })
        .collect()
}

fn create_repository(c: &Call<'_>) -> Outcome {
    let repo = c.repo_name()?;
    c.need(&repo, Action::Admin)?;
    let s = c.storage();
    if s.repository_exists(&repo).map_err(server_error)? {
        return Err(err(
            "RepositoryAlreadyExistsException",
            400,
            format!("The repository with name '{repo}' already exists in the registry with id '{ACCOUNT}'"),
        ));
    }
    let mut settings = RepoSettings {
        immutable_tags: mutability(c.str_field("imageTagMutability"))?.unwrap_or(false),
        mutable_tag_filters: exclusion_filters(c)?,
        scan_on_push: c
            .body
            .pointer("/imageScanningConfiguration/scanOnPush")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        created_at: Some(humantime::format_rfc3339_seconds(SystemTime::now()).to_string()),
        ..RepoSettings::default()
    };
    settings.tags = tags_of(c)?;
    s.create_repository(&repo).map_err(server_error)?;
    settings.save(s, &repo).map_err(server_error)?;
    Ok(json!({"repository": c.repository(&repo, &settings)}))
}

fn describe_repositories(c: &Call<'_>) -> Outcome {
    let wanted: Option<Vec<String>> = c
        .body
        .get("repositoryNames")
        .map(|v| {
            serde_json::from_value(v.clone())
                .map_err(|_| invalid("repositoryNames must be a list of names"))
        })
        .transpose()?;
    let mut out = Vec::new();
    match wanted {
        Some(names) => {
            for repo in names {
                let settings = c.existing(&repo)?;
                c.need(&repo, Action::Pull)?;
                out.push(c.repository(&repo, &settings));
            }
        }
        None => {
            for repo in c.storage().repositories().map_err(server_error)? {
                if c.app.auth.allowed(&c.who, &repo).contains(&Action::Pull) {
                    let settings = RepoSettings::load(c.storage(), &repo).map_err(server_error)?;
                    out.push(c.repository(&repo, &settings));
                }
            }
        }
    }
    Ok(json!({"repositories": out}))
}

fn delete_repository(c: &Call<'_>) -> Outcome {
    let repo = c.repo_name()?;
    let settings = c.existing(&repo)?;
    c.need(&repo, Action::Admin)?;
    let force = c
        .body
        .get("force")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let images = c.storage().manifests(&repo).map_err(server_error)?;
    if !images.is_empty() && !force {
        return Err(err(
            "RepositoryNotEmptyException",
            400,
            format!("The repository with name '{repo}' in registry with id '{ACCOUNT}' cannot be deleted because it still contains images"),
        ));
    }
    let shown = c.repository(&repo, &settings);
    c.storage().delete_repository(&repo).map_err(server_error)?;
    Ok(json!({"repository": shown}))
}

/// One image of a repository as ECR describes it.
struct Image {
    digest: Digest,
    tags: Vec<String>,
    link: crate::storage::ManifestLink,
    /// The size of the blobs it references.
    size: u64,
}

/// Each image: its digest, tags, pushed time, manifest media type and the
/// size of its blobs.
fn images(c: &Call<'_>, repo: &str) -> Result<Vec<Image>, ErrorBody> {
    let s = c.storage();
    let mut tags: HashMap<Digest, Vec<String>> = HashMap::new();
    for t in s.tags(repo).map_err(server_error)? {
        if let Some(d) = s.tag(repo, &t).map_err(server_error)? {
            tags.entry(d).or_default().push(t);
        }
    }
    let mut out = Vec::new();
    for (digest, link) in s.manifests(repo).map_err(server_error)? {
        let mut size = 0;
        if let Some(mut blob) = s.open_blob(&digest).map_err(server_error)? {
            let mut data = Vec::new();
            if std::io::Read::read_to_end(&mut blob.reader, &mut data).is_ok() {
                if let Ok(m) = crate::manifest::ParsedManifest::parse(&data, Some(&link.media_type))
                {
                    for b in &m.blobs {
                        size += s.blob_size(b).map_err(server_error)?.unwrap_or(0);
                    }
                }
            }
        }
        let tags = tags.remove(&digest).unwrap_or_default();
        out.push(Image {
            digest,
            tags,
            link,
            size,
        });
    }
    Ok(out)
}

/// ECR's scan status: COMPLETE once the audit's findings are stored as the
/// image's referrer (scan on push), else absent.
fn scan_status(c: &Call<'_>, repo: &str, digest: &Digest) -> Option<Value> {
    let found = c
        .storage()
        .referrers(repo, digest)
        .ok()?
        .iter()
        .any(|r| r.artifact_type.as_deref() == Some(crate::scan::FINDINGS_ARTIFACT));
    found.then(
        || json!({"status": "COMPLETE", "description": "The scan was completed successfully."}),
    )
}

fn describe_images(c: &Call<'_>) -> Outcome {
    let repo = c.repo_name()?;
    let settings = c.existing(&repo)?;
    c.need(&repo, Action::Pull)?;
    let mut details = Vec::new();
    for image in images(c, &repo)? {
        let mut v = json!({
            "registryId": ACCOUNT,
            "repositoryName": repo,
            "imageDigest": image.digest.to_string(),
            "imageSizeInBytes": image.size,
            "imagePushedAt": epoch(&image.link.pushed),
            "imageManifestMediaType": image.link.media_type,
        });
        if !image.tags.is_empty() {
            v["imageTags"] = json!(image.tags);
        }
        if settings.scan_on_push {
            if let Some(status) = scan_status(c, &repo, &image.digest) {
                v["imageScanStatus"] = status;
            }
        }
        details.push(v);
    }
    Ok(json!({"imageDetails": details}))
}

fn list_images(c: &Call<'_>) -> Outcome {
    let repo = c.repo_name()?;
    c.existing(&repo)?;
    c.need(&repo, Action::Pull)?;
    let filter = c.body.pointer("/filter/tagStatus").and_then(Value::as_str);
    let mut ids = Vec::new();
    for Image { digest, tags, .. } in images(c, &repo)? {
        let keep_tagged = !matches!(filter, Some("UNTAGGED"));
        let keep_untagged = !matches!(filter, Some("TAGGED"));
        if tags.is_empty() && keep_untagged {
            ids.push(json!({"imageDigest": digest.to_string()}));
        }
        if keep_tagged {
            for t in tags {
                ids.push(json!({"imageDigest": digest.to_string(), "imageTag": t}));
            }
        }
    }
    Ok(json!({"imageIds": ids}))
}

fn batch_delete_image(c: &Call<'_>) -> Outcome {
    let repo = c.repo_name()?;
    c.existing(&repo)?;
    c.need(&repo, Action::Delete)?;
    let ids = image_ids(c)?;
    let s = c.storage();
    let (mut deleted, mut failures) = (Vec::new(), Vec::new());
    for id in ids {
        let digest = match (
            id.get("imageDigest").and_then(Value::as_str),
            id.get("imageTag").and_then(Value::as_str),
        ) {
            (Some(d), _) => d.parse::<Digest>().ok(),
            (None, Some(t)) => s.tag(&repo, t).map_err(server_error)?,
            (None, None) => None,
        };
        let Some(digest) = digest else {
            failures.push(not_found(id));
            continue;
        };
        match id.get("imageTag").and_then(Value::as_str) {
            // By tag: the tag goes, and the image with its last tag.
            Some(tag) if id.get("imageDigest").is_none() => {
                s.delete_tag(&repo, tag).map_err(server_error)?;
                let still_tagged = s
                    .tags(&repo)
                    .map_err(server_error)?
                    .iter()
                    .any(|t| s.tag(&repo, t).ok().flatten().as_ref() == Some(&digest));
                if !still_tagged {
                    crate::server::delete_manifest(s, &repo, &digest).map_err(server_error)?;
                }
            }
            _ => {
                if !crate::server::delete_manifest(s, &repo, &digest).map_err(server_error)? {
                    failures.push(not_found(id));
                    continue;
                }
            }
        }
        let mut done = id.clone();
        done["imageDigest"] = json!(digest.to_string());
        deleted.push(done);
    }
    Ok(json!({"imageIds": deleted, "failures": failures}))
}

fn put_tag_mutability(c: &Call<'_>) -> Outcome {
    let repo = c.repo_name()?;
    let mut settings = c.existing(&repo)?;
    c.need(&repo, Action::Admin)?;
    let immutable = mutability(c.str_field("imageTagMutability"))?
        .ok_or_else(|| invalid("imageTagMutability is required"))?;
    settings.immutable_tags = immutable;
    settings.mutable_tag_filters = exclusion_filters(c)?;
    settings.save(c.storage(), &repo).map_err(server_error)?;
    Ok(json!({
        "registryId": ACCOUNT,
        "repositoryName": repo,
        "imageTagMutability": if immutable { "IMMUTABLE" } else { "MUTABLE" },
    }))
}

fn policy_text(c: &Call<'_>) -> Result<String, ErrorBody> {
    c.str_field("lifecyclePolicyText")
        .map(str::to_string)
        .ok_or_else(|| invalid("lifecyclePolicyText is required"))
}

fn put_lifecycle(c: &Call<'_>) -> Outcome {
    let repo = c.repo_name()?;
    let mut settings = c.existing(&repo)?;
    c.need(&repo, Action::Admin)?;
    let text = policy_text(c)?;
    let rules = lifecycle_json::parse(&text).map_err(invalid)?;
    settings.lifecycle = rules.into_iter().map(|(_, r)| r).collect();
    settings.ecr_lifecycle_policy = Some(text.clone());
    settings.save(c.storage(), &repo).map_err(server_error)?;
    Ok(json!({"registryId": ACCOUNT, "repositoryName": repo, "lifecyclePolicyText": text}))
}

fn lifecycle_not_found(repo: &str) -> ErrorBody {
    err(
        "LifecyclePolicyNotFoundException",
        400,
        format!("Lifecycle policy does not exist for the repository with name '{repo}' in the registry with id '{ACCOUNT}'"),
    )
}

fn get_lifecycle(c: &Call<'_>) -> Outcome {
    let repo = c.repo_name()?;
    let settings = c.existing(&repo)?;
    c.need(&repo, Action::Pull)?;
    let text = settings
        .ecr_lifecycle_policy
        .ok_or_else(|| lifecycle_not_found(&repo))?;
    Ok(json!({"registryId": ACCOUNT, "repositoryName": repo, "lifecyclePolicyText": text}))
}

fn delete_lifecycle(c: &Call<'_>) -> Outcome {
    let repo = c.repo_name()?;
    let mut settings = c.existing(&repo)?;
    c.need(&repo, Action::Admin)?;
    let text = settings
        .ecr_lifecycle_policy
        .take()
        .ok_or_else(|| lifecycle_not_found(&repo))?;
    settings.lifecycle.clear();
    settings.save(c.storage(), &repo).map_err(server_error)?;
    Ok(json!({"registryId": ACCOUNT, "repositoryName": repo, "lifecyclePolicyText": text}))
}

/// Plans the policy (the one given, else the repository's) now; the plan
/// is exactly what `estiba registry lifecycle run` would then remove.
fn start_preview(c: &Call<'_>) -> Outcome {
    let repo = c.repo_name()?;
    let settings = c.existing(&repo)?;
    c.need(&repo, Action::Pull)?;
    let text = match c.str_field("lifecyclePolicyText") {
        Some(t) => t.to_string(),
        None => settings
            .ecr_lifecycle_policy
            .clone()
            .ok_or_else(|| lifecycle_not_found(&repo))?,
    };
    let prioritized = lifecycle_json::parse(&text).map_err(invalid)?;
    let rules: Vec<_> = prioritized.iter().map(|(_, r)| r.clone()).collect();
    let planned = crate::lifecycle::plan_rules(c.storage(), &repo, &rules, SystemTime::now())
        .map_err(server_error)?;
    let pushed: HashMap<String, String> = c
        .storage()
        .manifests(&repo)
        .map_err(server_error)?
        .into_iter()
        .map(|(d, l)| (d.to_string(), l.pushed))
        .collect();
    let results: Vec<Value> = planned
        .iter()
        .map(|e| {
            let priority = prioritized
                .iter()
                .find(|(_, r)| rule_reason_matches(r, &e.reason))
                .map_or(0, |(p, _)| *p);
            json!({
                "imageTags": e.tags,
                "imageDigest": e.digest.to_string(),
                "imagePushedAt": pushed.get(&e.digest.to_string()).map_or(0.0, |p| epoch(p)),
                "action": {"type": "EXPIRE"},
                "appliedRulePriority": priority,
            })
        })
        .collect();
    let preview = json!({
        "registryId": ACCOUNT,
        "repositoryName": repo,
        "lifecyclePolicyText": text,
        "status": "COMPLETE",
        "previewResults": results,
        "summary": {"expiringImageTotalCount": results.len()},
    });
    if let Ok(mut m) = c.app.ecr_previews.0.lock() {
        m.insert(repo.clone(), preview);
    }
    Ok(
        json!({"registryId": ACCOUNT, "repositoryName": repo, "lifecyclePolicyText": text, "status": "IN_PROGRESS"}),
    )
}

/// Which rule a planned expiry came from, by the words the engine gives.
fn rule_reason_matches(rule: &crate::lifecycle::Rule, reason: &str) -> bool {
    match rule {
        crate::lifecycle::Rule::ExpireUntagged { .. } => reason.starts_with("untagged"),
        crate::lifecycle::Rule::KeepLast { prefix, .. } => {
            reason.contains(&format!("{prefix:?}")) || reason.contains(prefix.as_str())
        }
    }
}

fn get_preview(c: &Call<'_>) -> Outcome {
    let repo = c.repo_name()?;
    c.existing(&repo)?;
    c.need(&repo, Action::Pull)?;
    c.app
        .ecr_previews
        .0
        .lock()
        .ok()
        .and_then(|m| m.get(&repo).cloned())
        .ok_or_else(|| {
            err(
                "LifecyclePolicyPreviewNotFoundException",
                400,
                format!("There is no running or completed lifecycle policy preview for the repository with name '{repo}'"),
            )
        })
}

fn tags_of(c: &Call<'_>) -> Result<std::collections::BTreeMap<String, String>, ErrorBody> {
    let Some(list) = c.body.get("tags") else {
        return Ok(Default::default());
    };
    let list = list
        .as_array()
        .ok_or_else(|| invalid("tags must be a list"))?;
    list.iter()
        .map(|t| {
            match (
                t.get("Key").and_then(Value::as_str),
                t.get("Value").and_then(Value::as_str),
            ) {
                (Some(k), Some(v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
                _ => Err(invalid("each tag is {\"Key\": …, \"Value\": …}")),
            }
        })
        .collect()
}

/// The repository an ARN names, in this registry's account.
fn repo_of_arn(c: &Call<'_>) -> Result<String, ErrorBody> {
    let arn = c
        .str_field("resourceArn")
        .ok_or_else(|| invalid("resourceArn is required"))?;
    let repo = arn
        .split_once(&format!(":{ACCOUNT}:repository/"))
        .map(|(_, r)| r.to_string())
        .filter(|r| crate::names::validate_name(r).is_ok())
        .ok_or_else(|| {
            invalid(format!(
                "resourceArn {arn:?} is not a repository of account {ACCOUNT}"
            ))
        })?;
    Ok(repo)
}

fn tag_resource(c: &Call<'_>) -> Outcome {
    let repo = repo_of_arn(c)?;
    let mut settings = c.existing(&repo)?;
    c.need(&repo, Action::Admin)?;
    settings.tags.extend(tags_of(c)?);
    settings.save(c.storage(), &repo).map_err(server_error)?;
    Ok(json!({}))
}

fn list_tags(c: &Call<'_>) -> Outcome {
    let repo = repo_of_arn(c)?;
    let settings = c.existing(&repo)?;
    c.need(&repo, Action::Pull)?;
    let tags: Vec<Value> = settings
        .tags
        .iter()
        .map(|(k, v)| json!({"Key": k, "Value": v}))
        .collect();
    Ok(json!({"tags": tags}))
}

/// The manifest an `imageId` names, if it is in the repository.
fn resolve(
    c: &Call<'_>,
    repo: &str,
    id: &Value,
) -> Result<Option<(Digest, Option<String>)>, ErrorBody> {
    let s = c.storage();
    let tag = id
        .get("imageTag")
        .and_then(Value::as_str)
        .map(str::to_string);
    let digest = match (id.get("imageDigest").and_then(Value::as_str), &tag) {
        (Some(d), _) => d.parse::<Digest>().ok(),
        (None, Some(t)) => s.tag(repo, t).map_err(server_error)?,
        (None, None) => None,
    };
    Ok(match digest {
        Some(d) if s.manifest_link(repo, &d).map_err(server_error)?.is_some() => Some((d, tag)),
        _ => None,
    })
}

fn image_ids<'a>(c: &'a Call<'_>) -> Result<&'a Vec<Value>, ErrorBody> {
    c.body
        .get("imageIds")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("imageIds is required"))
}

fn not_found(id: &Value) -> Value {
    json!({"imageId": id, "failureCode": "ImageNotFound", "failureReason": "Requested image not found"})
}

fn batch_get_image(c: &Call<'_>) -> Outcome {
    let repo = c.repo_name()?;
    c.existing(&repo)?;
    c.need(&repo, Action::Pull)?;
    let ids = image_ids(c)?;
    let s = c.storage();
    let (mut images, mut failures) = (Vec::new(), Vec::new());
    for id in ids {
        let Some((digest, tag)) = resolve(c, &repo, id)? else {
            failures.push(not_found(id));
            continue;
        };
        let link = s.manifest_link(&repo, &digest).map_err(server_error)?;
        let mut data = Vec::new();
        if let Some(mut blob) = s.open_blob(&digest).map_err(server_error)? {
            std::io::Read::read_to_end(&mut blob.reader, &mut data)
                .map_err(|e| server_error(crate::Error::Http(e.to_string())))?;
        }
        let mut image_id = json!({"imageDigest": digest.to_string()});
        if let Some(t) = tag {
            image_id["imageTag"] = json!(t);
        }
        images.push(json!({
            "registryId": ACCOUNT,
            "repositoryName": repo,
            "imageId": image_id,
            "imageManifest": String::from_utf8_lossy(&data),
            "imageManifestMediaType": link.map(|l| l.media_type),
        }));
    }
    Ok(json!({"images": images, "failures": failures}))
}

/// PutImage: a manifest whose blobs are already in the repository, stored
/// as a push stores it (immutability, scan on push, referrers).
fn put_image(c: &Call<'_>) -> Outcome {
    let repo = c.repo_name()?;
    c.existing(&repo)?;
    c.need(&repo, Action::Push)?;
    let manifest = c
        .str_field("imageManifest")
        .ok_or_else(|| invalid("imageManifest is required"))?;
    let data = manifest.as_bytes().to_vec();
    let digest = Digest::compute(crate::digest::Algorithm::Sha256, &data);
    if let Some(given) = c.str_field("imageDigest") {
        if given != digest.to_string() {
            return Err(invalid(format!(
                "imageDigest {given} does not match the manifest's digest {digest}"
            )));
        }
    }
    let tags: Vec<String> = c
        .str_field("imageTag")
        .map(str::to_string)
        .into_iter()
        .collect();
    for t in &tags {
        crate::names::validate_tag(t).map_err(|e| invalid(e.to_string()))?;
    }
    let parsed =
        crate::manifest::ParsedManifest::parse(&data, c.str_field("imageManifestMediaType"))
            .map_err(|e| invalid(e.to_string()))?;
    let s = c.storage();
    if let Some(t) = tags.first() {
        if s.tag(&repo, t).map_err(server_error)?.as_ref() == Some(&digest) {
            return Err(err(
                "ImageAlreadyExistsException",
                400,
                format!("Image with digest '{digest}' and tag '{t}' already exists in the repository with name '{repo}'"),
            ));
        }
    }
    let _guard = c.app.gc_lock.blocking_read();
    crate::server::store_manifest(s, &repo, &digest, &parsed, &data, &tags).map_err(|e| match e
        .code()
    {
        Some(crate::Code::Denied) if e.to_string().contains("immutable") => {
            err("ImageTagAlreadyExistsException", 400, e.to_string())
        }
        Some(crate::Code::Denied) => err("AccessDeniedException", 403, e.to_string()),
        Some(crate::Code::ManifestBlobUnknown) => {
            err("LayersNotFoundException", 400, e.to_string())
        }
        _ => server_error(e),
    })?;
    let mut image_id = json!({"imageDigest": digest.to_string()});
    if let Some(t) = tags.first() {
        image_id["imageTag"] = json!(t);
    }
    Ok(json!({"image": {
        "registryId": ACCOUNT,
        "repositoryName": repo,
        "imageId": image_id,
        "imageManifest": manifest,
        "imageManifestMediaType": parsed.media_type,
    }}))
}

fn policy_not_found(repo: &str) -> ErrorBody {
    err(
        "RepositoryPolicyNotFoundException",
        400,
        format!("Repository policy does not exist for the repository with name '{repo}' in the registry with id '{ACCOUNT}'"),
    )
}

fn set_policy(c: &Call<'_>) -> Outcome {
    let repo = c.repo_name()?;
    let mut settings = c.existing(&repo)?;
    c.need(&repo, Action::Admin)?;
    let text = c
        .str_field("policyText")
        .ok_or_else(|| invalid("policyText is required"))?
        .to_string();
    let grants = repository_policy::parse(&text).map_err(invalid)?;
    settings.repository_policy = Some(crate::settings::RepositoryPolicy {
        text: text.clone(),
        grants,
    });
    settings.save(c.storage(), &repo).map_err(server_error)?;
    Ok(json!({"registryId": ACCOUNT, "repositoryName": repo, "policyText": text}))
}

fn get_policy(c: &Call<'_>) -> Outcome {
    let repo = c.repo_name()?;
    let settings = c.existing(&repo)?;
    c.need(&repo, Action::Pull)?;
    let p = settings
        .repository_policy
        .ok_or_else(|| policy_not_found(&repo))?;
    Ok(json!({"registryId": ACCOUNT, "repositoryName": repo, "policyText": p.text}))
}

fn delete_policy(c: &Call<'_>) -> Outcome {
    let repo = c.repo_name()?;
    let mut settings = c.existing(&repo)?;
    c.need(&repo, Action::Admin)?;
    let p = settings
        .repository_policy
        .take()
        .ok_or_else(|| policy_not_found(&repo))?;
    settings.save(c.storage(), &repo).map_err(server_error)?;
    Ok(json!({"registryId": ACCOUNT, "repositoryName": repo, "policyText": p.text}))
}
