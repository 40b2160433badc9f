//! Docker's errors: a status code and `{"message": …}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Why serving stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} {path}: {source}")]
    Listen {
        op: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("serving the Docker API: {0}")]
    Serve(#[source] std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
}

/// A refused request, as Docker answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

pub type ApiResult<T> = std::result::Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    pub fn not_implemented(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("{what} is not implemented by estiba's Docker API yet"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // 304 carries no body, as Docker sends it.
        if self.status == StatusCode::NOT_MODIFIED {
            return self.status.into_response();
        }
        let body = serde_json::json!({ "message": self.message });
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<estiba_engine::Error> for ApiError {
    fn from(e: estiba_engine::Error) -> ApiError {
        use estiba_engine::Error as E;
        let status = match &e {
            E::NoSuchContainer(_) | E::Store(estiba_store::Error::NoSuchImage(_)) => {
                StatusCode::NOT_FOUND
            }
            E::NameInUse { .. } | E::Running { .. } | E::NotRunning { .. } => StatusCode::CONFLICT,
            E::Store(estiba_store::Error::ImageHasNames { .. }) => StatusCode::CONFLICT,
            E::AlreadyRunning { .. } => StatusCode::NOT_MODIFIED,
            E::Invalid { .. }
            | E::Ambiguous { .. }
            | E::Store(estiba_store::Error::Ambiguous { .. } | estiba_store::Error::Invalid(_))
            | E::Events(_)
            | E::Oci(_) => StatusCode::BAD_REQUEST,
            E::Refused(_) => StatusCode::FORBIDDEN,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, start_failure_words(&e))
    }
}

impl From<estiba_store::Error> for ApiError {
    fn from(e: estiba_store::Error) -> ApiError {
        ApiError::from(estiba_engine::Error::Store(e))
    }
}

/// The docker CLI picks `run`'s exit code from the words of a failed
/// start: "executable file not found" gives 127, "permission denied" 126.
fn start_failure_words(e: &estiba_engine::Error) -> String {
    // The whole chain: the outer error alone often only says where.
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        source = s.source();
    }
    match e.exit_code() {
        127 if !message.contains("executable file not found") => {
            format!("{message}: executable file not found in $PATH")
        }
        126 if !message.contains("permission denied") => format!("{message}: permission denied"),
        _ => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_get_dockers_statuses() {
        let status = |e| ApiError::from(e).status;
        assert_eq!(
            status(estiba_engine::Error::NoSuchContainer("x".into())),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status(estiba_engine::Error::AlreadyRunning { name: "x".into() }),
            StatusCode::NOT_MODIFIED
        );
        assert_eq!(
            status(estiba_engine::Error::NameInUse {
                name: "x".into(),
                id: "y".into()
            }),
            StatusCode::CONFLICT
        );
        let missing = ApiError::from(estiba_engine::Error::StartFailed {
            id: "c".into(),
            code: 127,
            message: "nope: not found".into(),
        });
        assert!(missing.message.contains("executable file not found"));
    }
}
