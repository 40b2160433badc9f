//! Signing outgoing requests with Signature Version 4, through the aws-sigv4
//! crate (the SDKs' own signer), so estiba's clients sign exactly as the
//! AWS CLI does and `sigv4::verify` (or AWS) accepts them.

use std::time::SystemTime;

use aws_sigv4::http_request::{self, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

use crate::credentials::Credentials;
use crate::{Error, Result};

/// A request about to be sent, as the signature covers it.
#[derive(Clone, Copy, Debug)]
pub struct Outgoing<'a> {
    pub method: &'a str,
    /// The full URL the request goes to (`http://127.0.0.1:8440/`). Its
    /// host is signed as the `Host` header HTTP clients send: without the
    /// scheme's default port.
    pub url: &'a str,
    /// The headers to sign besides `Host` (`content-type`,
    /// `x-amz-target`); each must be sent exactly so.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// The headers to add to `request` so it is signed by `credentials` for
/// `region` and `service` at `time`: `authorization`, `x-amz-date`, and
/// `x-amz-security-token` when the credentials carry a session token.
pub fn signature_headers(
    request: &Outgoing<'_>,
    credentials: &Credentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<Vec<(String, String)>> {
    let failed = |e: &dyn std::fmt::Display| Error::Sign(e.to_string());
    let identity = aws_credential_types::Credentials::new(
        &credentials.access_key_id,
        &credentials.secret_access_key,
        credentials.session_token.clone(),
        None,
        "estiba",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| failed(&e))?
        .into();
    let signable = SignableRequest::new(
        request.method,
        request.url,
        request.headers.iter().copied(),
        SignableBody::Bytes(request.body),
    )
    .map_err(|e| failed(&e))?;
    let (instructions, _) = http_request::sign(signable, &params)
        .map_err(|e| failed(&e))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigv4::{self, AuthError};

    const KEY: &str = "AKIAESTIBATEST000001";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const TARGET: &str = "AmazonEC2ContainerServiceV20141113.ListTasks";

    fn credentials(token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: KEY.into(),
            secret_access_key: SECRET.into(),
            session_token: token.map(str::to_string),
        }
    }

    /// The headers as the server receives them: `Host` as HTTP clients
    /// send it, the signed ones, the signature's, and one nobody signed.
    fn sent(url: &str, host: &str, body: &[u8], creds: &Credentials) -> Vec<(String, String)> {
        let signed = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", TARGET),
        ];
        let request = Outgoing {
            method: "POST",
            url,
            headers: &signed,
            body,
        };
        let mut headers = vec![
            ("host".to_string(), host.to_string()),
            ("user-agent".to_string(), "estiba/test".to_string()),
        ];
        headers.extend(signed.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let now = SystemTime::now();
        headers.extend(signature_headers(&request, creds, "eu-west-1", "ecs", now).unwrap());
        headers
    }

    fn verify(headers: &[(String, String)], body: &[u8]) -> Result<sigv4::Signed, AuthError> {
        let request = sigv4::Request {
            method: "POST",
            path_and_query: "/",
            headers,
            body,
        };
        sigv4::verify(
            &request,
            |k| (k == KEY).then(|| SECRET.to_string()),
            SystemTime::now(),
        )
    }

    #[test]
    fn a_signed_request_verifies_and_a_changed_body_does_not() {
        let body = br#"{"cluster":"default"}"#;
        let headers = sent(
            "http://127.0.0.1:8440/",
            "127.0.0.1:8440",
            body,
            &credentials(None),
        );
        let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
        assert!(names.contains(&"authorization") && names.contains(&"x-amz-date"));
        assert!(!names.contains(&"x-amz-security-token"));
        let signed = verify(&headers, body).unwrap();
        assert_eq!(
            (
                signed.access_key.as_str(),
                signed.region.as_str(),
                signed.service.as_str()
            ),
            (KEY, "eu-west-1", "ecs")
        );
        assert_eq!(
            verify(&headers, br#"{"cluster":"other"}"#).unwrap_err(),
            AuthError::BadSignature
        );
    }

    #[test]
    fn a_session_token_is_sent_and_signed() {
        let body = b"{}";
        let creds = credentials(Some("FwoGZXIvYXdzEXAMPLE"));
        let headers = sent("http://127.0.0.1:8440/", "127.0.0.1:8440", body, &creds);
        assert!(headers
            .iter()
            .any(|(k, v)| k == "x-amz-security-token" && v == "FwoGZXIvYXdzEXAMPLE"));
        verify(&headers, body).unwrap();
        let swapped: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| match k.as_str() {
                "x-amz-security-token" => (k.clone(), "another".to_string()),
                _ => (k.clone(), v.clone()),
            })
            .collect();
        assert_eq!(verify(&swapped, body).unwrap_err(), AuthError::BadSignature);
    }

    #[test]
    fn a_default_port_is_signed_as_clients_send_the_host() {
        let body = b"{}";
        let headers = sent(
            "https://ecs.example/",
            "ecs.example",
            body,
            &credentials(None),
        );
        verify(&headers, body).unwrap();
        let headers = sent(
            "http://ecs.example:80/",
            "ecs.example",
            body,
            &credentials(None),
        );
        verify(&headers, body).unwrap();
    }
}
