//! Verifying AWS Signature Version 4 on requests to estiba's AWS-shaped
//! APIs (ECS now, ECR next). The server signs the request again, as the
//! client did, with the secret of the access key it names, through the
//! aws-sigv4 crate (the SDKs' own signer), and compares signatures.
//!
//! Only the headers the client listed in `SignedHeaders` are signed again,
//! and none is left out (the signer's default exclusions are for clients).

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

/// How far a request's time may be from ours, as AWS allows.
pub const MAX_SKEW: Duration = Duration::from_secs(5 * 60);

/// A refusal, with the exception AWS answers it with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("Missing Authentication Token")]
    Missing,
    #[error("{0}")]
    Incomplete(String),
    #[error("The security token included in the request is invalid.")]
    UnknownKey,
    #[error("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")]
    BadSignature,
    #[error("Signature expired: {request} is now earlier than {earliest} ({now} - 5 min.)")]
    Expired {
        request: String,
        earliest: String,
        now: String,
    },
    #[error("Signature not yet current: {request} is still later than {latest} ({now} + 5 min.)")]
    NotYetCurrent {
        request: String,
        latest: String,
        now: String,
    },
}

impl AuthError {
    /// The `__type` AWS's JSON protocols give it.
    pub fn exception(&self) -> &'static str {
        match self {
            AuthError::Missing => "MissingAuthenticationTokenException",
            AuthError::Incomplete(_) => "IncompleteSignatureException",
            AuthError::UnknownKey => "UnrecognizedClientException",
            AuthError::BadSignature
            | AuthError::Expired { .. }
            | AuthError::NotYetCurrent { .. } => "InvalidSignatureException",
        }
    }

    /// The HTTP status: 403, but 400 for a request that is not signed
    /// right in its form.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::Incomplete(_) => 400,
            _ => 403,
        }
    }
}

/// An incoming request, as the signature covers it.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path and query as received (`/`, `/v2/?a=b`).
    pub path_and_query: &'a str,
    /// Every header, names in any case.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl Request<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a verified request was signed for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    pub access_key: String,
    pub region: String,
    pub service: String,
}

/// The parts of `Authorization: AWS4-HMAC-SHA256 Credential=AK/DATE/REGION/SERVICE/aws4_request, SignedHeaders=a;b, Signature=HEX`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Authorization {
    access_key: String,
    date: String,
    region: String,
    service: String,
    signed_headers: Vec<String>,
    signature: String,
}

fn parse_authorization(value: &str) -> Result<Authorization, AuthError> {
    let incomplete = |what: &str| {
        AuthError::Incomplete(format!(
            "Authorization header requires '{what}' parameter. Authorization={value}"
        ))
    };
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ").ok_or_else(|| {
        AuthError::Incomplete(format!("Unsupported authorization scheme: {value}"))
    })?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',').map(str::trim) {
        match part.split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => {}
        }
    }
    let credential = credential.ok_or_else(|| incomplete("Credential"))?;
    let signed = signed.ok_or_else(|| incomplete("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| incomplete("Signature"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key, date, region, service, "aws4_request"] = scope[..] else {
        return Err(AuthError::Incomplete(format!(
            "Credential should be scoped to a valid region, and a service: {credential}"
        )));
    };
    Ok(Authorization {
        access_key: access_key.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers: signed.split(';').map(str::to_ascii_lowercase).collect(),
        signature: signature.to_string(),
    })
}

/// The access key id an `Authorization` header names (`Credential=AK/…`),
/// so the server can look its secret up before verifying.
pub fn access_key_of(authorization: &str) -> Option<&str> {
    let rest = authorization.strip_prefix("AWS4-HMAC-SHA256 ")?;
    rest.split(',')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("Credential="))
        .and_then(|c| c.split('/').next())
        .filter(|k| !k.is_empty())
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `20150830T123600Z` as a time.
pub fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// A time as `20150830T123600Z`.
pub fn format_amz_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // civil_from_days, the inverse of days_from_civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Checks a request's signature. `secret_of` gives the secret of an access
/// key (None: no such key). `now` is the server's clock.
pub fn verify(
    request: &Request<'_>,
    secret_of: impl FnOnce(&str) -> Option<String>,
    now: SystemTime,
) -> Result<Signed, AuthError> {
    let auth = parse_authorization(request.header("authorization").ok_or(AuthError::Missing)?)?;
    let date = request
        .header("x-amz-date")
        .ok_or_else(|| AuthError::Incomplete("Missing X-Amz-Date header".into()))?;
    let when = parse_amz_date(date)
        .ok_or_else(|| AuthError::Incomplete(format!("Invalid X-Amz-Date: {date}")))?;
    if !date.starts_with(&auth.date) {
        return Err(AuthError::Incomplete(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}'",
            auth.date,
            &date[..8]
        )));
    }
    check_skew(date, when, now)?;
    let secret = secret_of(&auth.access_key).ok_or(AuthError::UnknownKey)?;
    let expected = signature(request, &auth, &secret, when)?;
    if !estiba_os::constant_time_eq(expected.as_bytes(), auth.signature.as_bytes()) {
        return Err(AuthError::BadSignature);
    }
    Ok(Signed {
        access_key: auth.access_key,
        region: auth.region,
        service: auth.service,
    })
}

fn check_skew(date: &str, when: SystemTime, now: SystemTime) -> Result<(), AuthError> {
    if when + MAX_SKEW < now {
        return Err(AuthError::Expired {
            request: date.to_string(),
            earliest: format_amz_date(now - MAX_SKEW),
            now: format_amz_date(now),
        });
    }
    if when > now + MAX_SKEW {
        return Err(AuthError::NotYetCurrent {
            request: date.to_string(),
            latest: format_amz_date(now + MAX_SKEW),
            now: format_amz_date(now),
        });
    }
    Ok(())
}

/// The signature the client must have computed, made the same way.
fn signature(
    request: &Request<'_>,
    auth: &Authorization,
    secret: &str,
    when: SystemTime,
) -> Result<String, AuthError> {
    let token = request.header("x-amz-security-token").map(str::to_string);
    let identity = Credentials::new(&auth.access_key, secret, token, None, "estiba").into();
    let mut settings = SigningSettings::default();
    // Sign exactly what the client signed.
    settings.excluded_headers = Some(Vec::<Cow<'static, str>>::new());
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&auth.region)
        .name(&auth.service)
        .time(when)
        .settings(settings)
        .build()
        .map_err(|e| AuthError::Incomplete(e.to_string()))?
        .into();
    let headers = request
        .headers
        .iter()
        .filter(|(k, _)| {
            let k = k.to_ascii_lowercase();
            auth.signed_headers.contains(&k) && k != "x-amz-security-token"
        })
        .map(|(k, v)| (k.as_str(), v.as_str()));
    let host = request.header("host").unwrap_or("localhost");
    let uri = format!("http://{host}{}", request.path_and_query);
    let signable = SignableRequest::new(
        request.method,
        uri,
        headers,
        SignableBody::Bytes(request.body),
    )
    .map_err(|e| AuthError::Incomplete(e.to_string()))?;
    let signed = sign(signable, &params).map_err(|e| AuthError::Incomplete(e.to_string()))?;
    Ok(signed.signature().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AKIAESTIBATEST000001";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    /// A request signed as the SDKs sign an awsJson call.
    fn signed_request(when: SystemTime, body: &[u8]) -> Vec<(String, String)> {
        let mut headers = vec![
            ("host".to_string(), "127.0.0.1:8440".to_string()),
            (
                "content-type".to_string(),
                "application/x-amz-json-1.1".to_string(),
            ),
            (
                "x-amz-target".to_string(),
                "AmazonEC2ContainerServiceV20141113.ListClusters".to_string(),
            ),
            ("user-agent".to_string(), "aws-cli/2 test".to_string()),
        ];
        let identity = Credentials::new(KEY, SECRET, None, None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("ecs")
            .time(when)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let signable = SignableRequest::new(
            "POST",
            "http://127.0.0.1:8440/",
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        for (k, v) in instructions.headers() {
            headers.push((k.to_string(), v.to_string()));
        }
        headers
    }

    fn request<'a>(headers: &'a [(String, String)], body: &'a [u8]) -> Request<'a> {
        Request {
            method: "POST",
            path_and_query: "/",
            headers,
            body,
        }
    }

    fn secret(key: &str) -> Option<String> {
        (key == KEY).then(|| SECRET.to_string())
    }

    #[test]
    fn the_access_key_is_read_from_the_credential_scope() {
        let h = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/ecs/aws4_request, SignedHeaders=host, Signature=ab";
        assert_eq!(access_key_of(h), Some("AKIDEXAMPLE"));
        assert_eq!(access_key_of("Basic abc"), None);
        assert_eq!(access_key_of("AWS4-HMAC-SHA256 Credential=/x"), None);
    }

    #[test]
    fn a_request_signed_as_the_sdks_sign_it_verifies() {
        let now = SystemTime::now();
        let body = br#"{"maxResults": 10}"#;
        let headers = signed_request(now, body);
        let signed = verify(&request(&headers, body), secret, now).unwrap();
        assert_eq!(
            (
                signed.access_key.as_str(),
                signed.region.as_str(),
                signed.service.as_str()
            ),
            (KEY, "us-east-1", "ecs")
        );
    }

    #[test]
    fn tampering_unknown_keys_and_skew_are_refused_as_aws_refuses_them() {
        let now = SystemTime::now();
        let body = br#"{"maxResults": 10}"#;
        let headers = signed_request(now, body);
        let tampered = verify(&request(&headers, br#"{"maxResults": 11}"#), secret, now);
        assert_eq!(tampered, Err(AuthError::BadSignature));
        assert_eq!(
            AuthError::BadSignature.exception(),
            "InvalidSignatureException"
        );
        let stranger = verify(&request(&headers, body), |_| None, now);
        assert_eq!(stranger, Err(AuthError::UnknownKey));
        assert_eq!(
            AuthError::UnknownKey.exception(),
            "UnrecognizedClientException"
        );
        let later = now + Duration::from_secs(6 * 60);
        let expired = verify(&request(&headers, body), secret, later).unwrap_err();
        assert!(matches!(expired, AuthError::Expired { .. }), "{expired:?}");
        assert!(expired.to_string().starts_with("Signature expired: "));
        let earlier = now - Duration::from_secs(6 * 60);
        assert!(matches!(
            verify(&request(&headers, body), secret, earlier),
            Err(AuthError::NotYetCurrent { .. })
        ));
        let unsigned: Vec<(String, String)> = headers
            .iter()
            .filter(|(k, _)| k != "authorization")
            .cloned()
            .collect();
        assert_eq!(
            verify(&request(&unsigned, body), secret, now),
            Err(AuthError::Missing)
        );
    }

    #[test]
    fn malformed_authorization_headers_are_incomplete_signatures() {
        for bad in [
            "Basic abc",
            "AWS4-HMAC-SHA256 Credential=AK/20150830/us-east-1/ecs/aws4_request, SignedHeaders=host",
            "AWS4-HMAC-SHA256 Credential=AK/20150830/ecs, SignedHeaders=host, Signature=00",
        ] {
            let e = parse_authorization(bad).unwrap_err();
            assert_eq!(e.exception(), "IncompleteSignatureException", "{bad}");
        }
    }

    /// Requests of AWS's SigV4 test suite (as the aws-sigv4 crate ships
    /// it): the signatures AWS published verify.
    #[test]
    fn the_aws_test_suite_signatures_verify() {
        let at = parse_amz_date("20150830T123600Z").unwrap();
        let suite = [
            (
                "GET",
                None,
                "host;x-amz-date",
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            ),
            (
                "POST",
                None,
                "host;x-amz-date",
                "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
            ),
            (
                "POST",
                Some(("My-Header1", "value1")),
                "host;my-header1;x-amz-date",
                "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c",
            ),
        ];
        for (method, extra, signed, signature) in suite {
            let mut headers = vec![
                ("Host".to_string(), "example.amazonaws.com".to_string()),
                ("X-Amz-Date".to_string(), "20150830T123600Z".to_string()),
            ];
            if let Some((k, v)) = extra {
                headers.push((k.to_string(), v.to_string()));
            }
            headers.push((
                "Authorization".to_string(),
                format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders={signed}, Signature={signature}"),
            ));
            let request = Request {
                method,
                path_and_query: "/",
                headers: &headers,
                body: b"",
            };
            let known = |k: &str| (k == "AKIDEXAMPLE").then(|| SECRET.to_string());
            assert!(verify(&request, known, at).is_ok(), "{method} {signed}");
        }
    }

    #[test]
    fn amz_dates_round_trip() {
        let t = parse_amz_date("20150830T123600Z").unwrap();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            1_440_938_160
        );
        assert_eq!(format_amz_date(t), "20150830T123600Z");
        assert_eq!(
            format_amz_date(parse_amz_date("20240229T235959Z").unwrap()),
            "20240229T235959Z"
        );
        for bad in [
            "",
            "20150830123600Z",
            "20151330T123600Z",
            "2015083XT123600Z",
        ] {
            assert!(parse_amz_date(bad).is_none(), "{bad}");
        }
    }
}
