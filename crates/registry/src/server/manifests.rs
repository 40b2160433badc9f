//! Manifest endpoints (GET, HEAD, PUT, DELETE by tag or digest), the tag
//! list, the catalog and the referrers API.

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::http::{header, Method};
use axum::response::Response;

use super::{respond, Ctx};
use crate::auth::{Action, Need};
use crate::digest::{Algorithm, Digest};
use crate::error::IoContext;
use crate::error::{Code, Error, Result};
use crate::manifest::{ParsedManifest, INDEX_OCI, MAX_MANIFEST_BYTES};
use crate::names::validate_tag;
use crate::settings::RepoSettings;
use crate::storage::{ManifestLink, Storage};

fn manifest_unknown(reference: &str) -> Error {
    Error::api(
        Code::ManifestUnknown,
        format!("manifest {reference} is unknown"),
    )
}

/// A tag or a digest. A reference that is neither is unknown on reads (the
/// conformance suite wants 404) and invalid on writes.
enum Reference {
    Tag(String),
    Digest(Digest),
}

fn parse_reference(reference: &str) -> Result<Reference> {
    if reference.contains(':') {
        return Ok(Reference::Digest(reference.parse()?));
    }
    validate_tag(reference)?;
    Ok(Reference::Tag(reference.to_string()))
}

/// The digest a reference names in `repo`, if the repo has it.
fn resolve(
    s: &dyn Storage,
    repo: &str,
    reference: &Reference,
) -> Result<Option<(Digest, ManifestLink)>> {
    let digest = match reference {
        Reference::Digest(d) => d.clone(),
        Reference::Tag(t) => match s.tag(repo, t)? {
            Some(d) => d,
            None => return Ok(None),
        },
    };
    Ok(s.manifest_link(repo, &digest)?.map(|l| (digest, l)))
}

pub async fn manifest(ctx: &Ctx, name: &str, reference: &str, body: Body) -> Result<Response> {
    match ctx.method {
        Method::GET | Method::HEAD => get(ctx, name, reference).await,
        Method::PUT => put(ctx, name, reference, body).await,
        Method::DELETE => delete(ctx, name, reference).await,
        _ => Err(Error::api(
            Code::Unsupported,
            "method not allowed on a manifest",
        )),
    }
}

async fn get(ctx: &Ctx, name: &str, reference: &str) -> Result<Response> {
    let parsed = match parse_reference(reference) {
        Ok(r) => r,
        Err(e) if e.code() == Some(Code::TagInvalid) => return Err(manifest_unknown(reference)),
        Err(e) => return Err(e),
    };
    let repo = name.to_string();
    let head = ctx.method == Method::HEAD;
    let found = ctx
        .app
        .blocking(move |s| {
            let Some((digest, link)) = resolve(s, &repo, &parsed)? else {
                return Ok(None);
            };
            let settings = RepoSettings::load(s, &repo)?;
            if settings.require_signature {
                crate::trust::require_signature(s, &repo, &digest, &link, &settings)?;
            }
            let data = if head {
                None
            } else {
                let mut blob = s.open_blob(&digest)?.ok_or_else(|| {
                    Error::api(
                        Code::ManifestUnknown,
                        format!("manifest {digest} lost its content"),
                    )
                })?;
                let mut data = Vec::with_capacity(usize::try_from(blob.size).unwrap_or(0));
                std::io::Read::read_to_end(&mut blob.reader, &mut data)
                    .ctx("reading", digest.to_string())?;
                Some(data)
            };
            Ok(Some((digest, link, data)))
        })
        .await?;
    let Some((digest, link, data)) = found else {
        return Err(manifest_unknown(reference));
    };
    let headers = [
        ("Content-Type", link.media_type.clone()),
        ("Docker-Content-Digest", digest.to_string()),
        ("Content-Length", link.size.to_string()),
        ("ETag", format!("\"{digest}\"")),
    ];
    match data {
        None => Ok(respond::empty(200, &headers)),
        Some(data) => {
            let mut r = Response::new(Body::from(data));
            respond::set_headers(&mut r, &headers);
            Ok(r)
        }
    }
}

async fn put(ctx: &Ctx, name: &str, reference: &str, body: Body) -> Result<Response> {
    let reference = parse_reference(reference)?;
    let data = axum::body::to_bytes(body, MAX_MANIFEST_BYTES)
        .await
        .map_err(|_| {
            Error::api(
                Code::TooLarge,
                format!("manifests are limited to {MAX_MANIFEST_BYTES} bytes"),
            )
        })?
        .to_vec();
    ctx.app
        .metrics
        .bytes_in
        .fetch_add(data.len() as u64, Ordering::Relaxed);
    let digest = match &reference {
        Reference::Digest(d) => {
            let actual = Digest::compute(d.algorithm(), &data);
            if actual != *d {
                return Err(Error::api(
                    Code::DigestInvalid,
                    format!("the manifest's digest is {actual}, not {d}"),
                ));
            }
            actual
        }
        Reference::Tag(_) => Digest::compute(Algorithm::Sha256, &data),
    };
    let content_type = ctx.header(header::CONTENT_TYPE).map(str::to_string);
    let manifest = ParsedManifest::parse(&data, content_type.as_deref())?;
    let mut tags: Vec<String> = ctx.params("tag").iter().map(|t| t.to_string()).collect();
    for t in &tags {
        validate_tag(t)?;
    }
    if let Reference::Tag(t) = &reference {
        tags.push(t.clone());
    }
    let _guard = ctx.app.gc_lock.read().await;
    let (repo, d, tags2) = (name.to_string(), digest.clone(), tags.clone());
    let size = data.len() as u64;
    let result = ctx
        .app
        .blocking(move |s| {
            store_manifest(s, &repo, &d, &manifest, &data, &tags2).map(|()| manifest)
        })
        .await;
    let target = match &reference {
        Reference::Tag(t) => format!("{t}@{digest}"),
        Reference::Digest(_) => digest.to_string(),
    };
    let manifest = match result {
        Ok(m) => m,
        Err(e) => {
            ctx.audit("push", name, &target, &e.to_string());
            return Err(e);
        }
    };
    ctx.audit("push", name, &target, "ok");
    tracing::debug!(repo = name, %digest, size, "manifest stored");
    let mut headers = vec![
        ("Location", format!("/v2/{name}/manifests/{digest}")),
        ("Docker-Content-Digest", digest.to_string()),
    ];
    if let Some(subject) = &manifest.subject {
        headers.push(("OCI-Subject", subject.to_string()));
    }
    for t in ctx.params("tag") {
        headers.push(("OCI-Tag", t.to_string()));
    }
    Ok(respond::empty(201, &headers))
}

/// Checks what the manifest references, then writes content, link,
/// referrer and tags, in that order: a crash part way leaves at most an
/// untagged manifest, never a tag to missing content.
pub(crate) fn store_manifest(
    s: &dyn Storage,
    repo: &str,
    digest: &Digest,
    manifest: &ParsedManifest,
    data: &[u8],
    tags: &[String],
) -> Result<()> {
    for blob in &manifest.blobs {
        // Touch first: garbage collection spares what was touched recently.
        s.touch_blob(blob)?;
        if !s.blob_linked(repo, blob)? || s.blob_size(blob)?.is_none() {
            return Err(Error::api(
                Code::ManifestBlobUnknown,
                format!("blob {blob} is not in repository {repo}"),
            ));
        }
    }
    for child in &manifest.manifests {
        s.touch_blob(child)?;
        if s.manifest_link(repo, child)?.is_none() {
            return Err(Error::api(
                Code::ManifestBlobUnknown,
                format!("manifest {child} is not in repository {repo}"),
            ));
        }
    }
    let settings = RepoSettings::load(s, repo)?;
    for tag in tags {
        if let Some(existing) = s.tag(repo, tag)? {
            if existing != *digest && settings.tag_is_immutable(tag) {
                return Err(Error::api(
                    Code::Denied,
                    format!(
                        "tag {tag} is immutable in repository {repo}: it already names {existing}"
                    ),
                ));
            }
        }
    }
    // Scanned before anything is written: a refused push leaves nothing.
    let name = match tags.first() {
        Some(t) => format!("{repo}:{t}"),
        None => format!("{repo}@{digest}"),
    };
    let scanned = if settings.scan_on_push {
        match crate::scan::scan(s, &name, data) {
            Ok(found) => found,
            // Blocking fails closed; a scan that only records does not
            // stand in the push's way.
            Err(e) if settings.block_on.is_empty() => {
                tracing::warn!(repo, %digest, error = %e, "scan on push");
                None
            }
            Err(e) => return Err(e),
        }
    } else {
        None
    };
    if let Some(why) = scanned
        .as_deref()
        .and_then(|f| crate::scan::refusal(f, &settings.block_on))
    {
        return Err(Error::api(Code::Denied, why));
    }
    s.put_blob(digest, data)?;
    let link = ManifestLink {
        media_type: manifest.media_type.clone(),
        size: data.len() as u64,
        pushed: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
    };
    s.put_manifest_link(repo, digest, &link)?;
    if let Some(subject) = &manifest.subject {
        s.add_referrer(
            repo,
            subject,
            &manifest.descriptor(digest, data.len() as u64),
        )?;
    }
    for tag in tags {
        s.set_tag(repo, tag, digest)?;
    }
    if let Some(findings) = scanned {
        let subject = manifest.descriptor(digest, data.len() as u64);
        crate::scan::store_findings(s, repo, &name, &subject, findings)?;
    }
    Ok(())
}

async fn delete(ctx: &Ctx, name: &str, reference: &str) -> Result<Response> {
    let parsed = parse_reference(reference)?;
    let repo = name.to_string();
    let result = ctx
        .app
        .blocking(move |s| match parsed {
            Reference::Tag(t) => s.delete_tag(&repo, &t),
            Reference::Digest(d) => delete_manifest(s, &repo, &d),
        })
        .await;
    match result {
        Ok(true) => {
            ctx.audit("delete", name, reference, "ok");
            Ok(respond::empty(202, &[]))
        }
        Ok(false) => Err(manifest_unknown(reference)),
        Err(e) => {
            ctx.audit("delete", name, reference, &e.to_string());
            Err(e)
        }
    }
}

/// Removes a manifest from a repository, with the tags that name it and its
/// entry in its subject's referrers.
pub(crate) fn delete_manifest(s: &dyn Storage, repo: &str, digest: &Digest) -> Result<bool> {
    let Some(link) = s.manifest_link(repo, digest)? else {
        return Ok(false);
    };
    for tag in s.tags(repo)? {
        if s.tag(repo, &tag)?.as_ref() == Some(digest) {
            s.delete_tag(repo, &tag)?;
        }
    }
    if let Some(mut blob) = s.open_blob(digest)? {
        let mut data = Vec::new();
        if std::io::Read::read_to_end(&mut blob.reader, &mut data).is_ok() {
            if let Ok(m) = ParsedManifest::parse(&data, Some(&link.media_type)) {
                if let Some(subject) = m.subject {
                    s.remove_referrer(repo, &subject, digest)?;
                }
            }
        }
    }
    s.delete_manifest_link(repo, digest)
}

/// Pagination by `n` and `last` over a sorted list, with a `Link` header
/// to the next page.
fn paginate(ctx: &Ctx, all: Vec<String>, path: &str) -> Result<(Vec<String>, Option<String>)> {
    let last = ctx.param("last");
    let mut items: Vec<String> = all
        .into_iter()
        .filter(|t| last.is_none_or(|l| t.as_str() > l))
        .collect();
    let Some(n) = ctx.param("n") else {
        return Ok((items, None));
    };
    let n: usize = n
        .parse()
        .map_err(|_| Error::api(Code::Unsupported, format!("n={n} is not a number")))?;
    if items.len() <= n {
        return Ok((items, None));
    }
    items.truncate(n);
    let link = items
        .last()
        .map(|l| format!("<{path}?n={n}&last={l}>; rel=\"next\""));
    Ok((items, link))
}

fn json_response(
    value: &serde_json::Value,
    content_type: &str,
    extra: &[(&str, String)],
) -> Response {
    let text = value.to_string();
    let mut r = Response::new(Body::from(text.clone()));
    let mut headers = vec![
        ("Content-Type", content_type.to_string()),
        ("Content-Length", text.len().to_string()),
    ];
    headers.extend(extra.iter().cloned());
    respond::set_headers(&mut r, &headers);
    r
}

/// `/v2/<name>/tags/list`
pub async fn tags(ctx: &Ctx, name: &str) -> Result<Response> {
    let repo = name.to_string();
    let found = ctx
        .app
        .blocking(move |s| {
            if !s.repository_exists(&repo)? {
                return Ok(None);
            }
            s.tags(&repo).map(Some)
        })
        .await?;
    let Some(all) = found else {
        return Err(Error::api(
            Code::NameUnknown,
            format!("repository {name} is unknown"),
        ));
    };
    let (tags, link) = paginate(ctx, all, &format!("/v2/{name}/tags/list"))?;
    let extra: Vec<(&str, String)> = link.into_iter().map(|l| ("Link", l)).collect();
    Ok(json_response(
        &serde_json::json!({"name": name, "tags": tags}),
        "application/json",
        &extra,
    ))
}

/// `/v2/_catalog`: the repositories this client may pull.
pub async fn catalog(ctx: &Ctx) -> Result<Response> {
    let all = ctx.app.blocking(|s| s.repositories()).await?;
    let visible: Vec<String> = all
        .into_iter()
        .filter(|r| {
            ctx.who.admin
                || ctx.app.auth.allowed(&ctx.who, r).contains(&Action::Pull)
                || ctx.may(Need::Repo(r.clone(), Action::Pull))
        })
        .collect();
    let (repos, link) = paginate(ctx, visible, "/v2/_catalog")?;
    let extra: Vec<(&str, String)> = link.into_iter().map(|l| ("Link", l)).collect();
    Ok(json_response(
        &serde_json::json!({"repositories": repos}),
        "application/json",
        &extra,
    ))
}

/// `/v2/<name>/referrers/<digest>`, filtered by `artifactType`.
pub async fn referrers(ctx: &Ctx, name: &str, digest: &str) -> Result<Response> {
    if ctx.method != Method::GET && ctx.method != Method::HEAD {
        return Err(Error::api(Code::Unsupported, "referrers are read with GET"));
    }
    let subject: Digest = digest.parse()?;
    let repo = name.to_string();
    let mut list = ctx
        .app
        .blocking(move |s| s.referrers(&repo, &subject))
        .await?;
    let mut extra = Vec::new();
    if let Some(wanted) = ctx.param("artifactType") {
        list.retain(|d| d.artifact_type.as_deref() == Some(wanted));
        extra.push(("OCI-Filters-Applied", "artifactType".to_string()));
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": INDEX_OCI,
        "manifests": list,
    });
    Ok(json_response(&index, INDEX_OCI, &extra))
}
