//! Building responses: the spec's error bodies, challenges, and headers.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;

use crate::auth::Denial;
use crate::error::{Code, Error};

pub fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// `{"errors":[{"code","message","detail"}]}` with the code's status.
pub fn error_body(code: &str, message: &str, status_code: u16) -> Response {
    let body = serde_json::json!({
        "errors": [{"code": code, "message": message, "detail": null}]
    });
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = status(status_code);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// A client error keeps its spec code; anything else is logged and is a 500
/// without internals in the body.
pub fn error(e: &Error) -> Response {
    match e {
        Error::Api { code, message } => error_body(code.as_str(), message, code.status()),
        other => {
            tracing::error!(error = %other, "request failed");
            error_body("UNKNOWN", "internal error; see the registry's log", 500)
        }
    }
}

/// 401 with a Bearer challenge, or 403.
pub fn denial(d: &Denial, realm: &str, service: &str) -> Response {
    match d {
        Denial::Challenge {
            scope,
            error,
            message,
        } => {
            let mut r = error_body(Code::Unauthorized.as_str(), message, 401);
            let mut value = format!("Bearer realm=\"{realm}\",service=\"{service}\"");
            if !scope.is_empty() {
                value.push_str(&format!(",scope=\"{scope}\""));
            }
            if let Some(error) = error {
                value.push_str(&format!(",error=\"{error}\""));
            }
            if let Ok(v) = HeaderValue::from_str(&value) {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            r
        }
        Denial::Forbidden { message, .. } => error_body(Code::Denied.as_str(), message, 403),
    }
}

/// A response with no body and the given headers.
pub fn empty(status_code: u16, headers: &[(&str, String)]) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status(status_code);
    set_headers(&mut r, headers);
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    r
}

pub fn set_headers(r: &mut Response, headers: &[(&str, String)]) {
    for (k, v) in headers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            r.headers_mut().append(name, value);
        }
    }
}
