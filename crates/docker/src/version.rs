//! API versions: `/vX.Y/…` and bare paths, as dockerd serves them.
//!
//! The prefix is checked and stripped before routing, so every handler
//! sees the bare path. Debian's docker CLI 20.10 speaks 1.41; the CLI from
//! version 25 on refuses servers below 1.44. Requests for versions newer
//! than 1.44 (up to [`MAX_ACCEPTED`]) get 1.44's shapes, which those
//! clients read.

use axum::extract::Request;
use axum::http::{HeaderValue, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// What `_ping` and `version` advertise, and what a client negotiates to.
pub const API_VERSION: &str = "1.44";
pub const MIN_API_VERSION: &str = "1.41";
/// The newest version a request may name.
pub const MAX_ACCEPTED: Version = Version(1, 51);
const MIN: Version = Version(1, 41);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u16, pub u16);

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// `/v1.41/containers/json` → (Some(1.41), `/containers/json`). A path
/// that does not start with `/v<digit>` is bare.
fn split(path: &str) -> Result<(Option<Version>, &str), ApiError> {
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok((None, path));
    };
    if !rest.starts_with(|c: char| c.is_ascii_digit()) {
        return Ok((None, path));
    }
    let (text, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let bad = || ApiError::bad_request(format!("invalid API version {text:?} in the path"));
    let (major, minor) = text.split_once('.').ok_or_else(bad)?;
    let version = Version(
        major.parse().map_err(|_| bad())?,
        minor.parse().map_err(|_| bad())?,
    );
    Ok((Some(version), if tail.is_empty() { "/" } else { tail }))
}

fn check(v: Version) -> Result<(), ApiError> {
    if v < MIN {
        return Err(ApiError::bad_request(format!(
            "client version {v} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        )));
    }
    if v > MAX_ACCEPTED {
        return Err(ApiError::bad_request(format!(
            "client version {v} is too new. Maximum supported API version is {MAX_ACCEPTED}"
        )));
    }
    Ok(())
}

/// The layer around the router: strips and checks the version, and puts
/// dockerd's headers on every answer.
pub async fn layer(mut req: Request, next: Next) -> Response {
    let mut response = match strip(&mut req) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    };
    let headers = response.headers_mut();
    headers.insert("api-version", HeaderValue::from_static(API_VERSION));
    headers.insert("docker-experimental", HeaderValue::from_static("false"));
    headers.insert("ostype", HeaderValue::from_static("linux"));
    headers.insert(
        "server",
        HeaderValue::from_static(concat!("estiba/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    response
}

fn strip(req: &mut Request) -> Result<(), ApiError> {
    let (version, bare) = split(req.uri().path())?;
    let Some(version) = version else {
        return Ok(());
    };
    check(version)?;
    let rewritten = match req.uri().query() {
        Some(q) => format!("{bare}?{q}"),
        None => bare.to_string(),
    };
    *req.uri_mut() = rewritten
        .parse::<Uri>()
        .map_err(|e| ApiError::bad_request(format!("invalid path: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_split_and_bare_paths_pass() {
        assert_eq!(
            split("/v1.41/containers/json").unwrap(),
            (Some(Version(1, 41)), "/containers/json")
        );
        assert_eq!(split("/_ping").unwrap(), (None, "/_ping"));
        assert_eq!(split("/volumes").unwrap(), (None, "/volumes"));
        assert_eq!(split("/v1.44").unwrap(), (Some(Version(1, 44)), "/"));
        assert!(split("/v1/containers/json").is_err());
        assert!(split("/v1.x/containers/json").is_err());
    }

    #[test]
    fn versions_outside_the_range_are_refused_with_the_range() {
        assert!(check(Version(1, 41)).is_ok());
        assert!(check(Version(1, 44)).is_ok());
        assert!(check(MAX_ACCEPTED).is_ok());
        let old = check(Version(1, 40)).unwrap_err();
        assert!(old.message.contains("too old") && old.message.contains("1.41"));
        let new = check(Version(1, 99)).unwrap_err();
        assert!(new.message.contains("too new"));
    }
}
