//! The awsJson1.1 protocol, which ECS speaks: `POST /` with
//! `X-Amz-Target: <Service>.<Operation>` and
//! `Content-Type: application/x-amz-json-1.1`; errors are
//! `{"__type": "…Exception", "message": "…"}` with the exception's status.

/// The content type of requests and responses.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// A request's target: the service's versioned name and the operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target<'a> {
    pub service: &'a str,
    pub operation: &'a str,
}

/// Parses `X-Amz-Target` for `service` (ECS's is
/// `AmazonEC2ContainerServiceV20141113`).
pub fn target<'a>(header: Option<&'a str>, service: &str) -> Result<Target<'a>, ErrorBody> {
    let header = header.ok_or_else(|| {
        ErrorBody::new(
            "UnknownOperationException",
            400,
            "Missing X-Amz-Target header".to_string(),
        )
    })?;
    match header.split_once('.') {
        Some((s, op)) if s == service && !op.is_empty() => Ok(Target {
            service: s,
            operation: op,
        }),
        _ => Err(ErrorBody::new(
            "UnknownOperationException",
            400,
            format!("Unknown operation {header}"),
        )),
    }
}

/// An error as awsJson1.1 sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorBody {
    pub exception: String,
    pub status: u16,
    pub message: String,
}

impl ErrorBody {
    pub fn new(exception: &str, status: u16, message: String) -> ErrorBody {
        ErrorBody {
            exception: exception.to_string(),
            status,
            message,
        }
    }

    /// The response body: `{"__type": …, "message": …}`.
    pub fn to_json(&self) -> String {
        serde_json::json!({"__type": self.exception, "message": self.message}).to_string()
    }
}

impl From<&crate::sigv4::AuthError> for ErrorBody {
    fn from(e: &crate::sigv4::AuthError) -> ErrorBody {
        ErrorBody::new(e.exception(), e.status(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ECS: &str = "AmazonEC2ContainerServiceV20141113";

    #[test]
    fn targets_name_the_service_and_operation() {
        let t = target(Some("AmazonEC2ContainerServiceV20141113.RunTask"), ECS).unwrap();
        assert_eq!(t.operation, "RunTask");
        for bad in [
            None,
            Some("RunTask"),
            Some("AmazonEC2ContainerRegistry_V20150921.ListImages"),
            Some(&format!("{ECS}.")[..]),
        ] {
            let e = target(bad, ECS).unwrap_err();
            assert_eq!(
                (e.exception.as_str(), e.status),
                ("UnknownOperationException", 400),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn errors_are_awsjson_bodies_that_parse() {
        let body = ErrorBody::new("ClientException", 400, "bad \"family\"\n".into()).to_json();
        assert_eq!(
            body,
            r#"{"__type":"ClientException","message":"bad \"family\"\n"}"#
        );
        let denied = ErrorBody::from(&crate::sigv4::AuthError::UnknownKey);
        assert_eq!(
            (denied.exception.as_str(), denied.status),
            ("UnrecognizedClientException", 403)
        );
    }
}
