//! AWS's protocol pieces that estiba's AWS-shaped APIs share (the ECS API
//! of the control plane now, the ECR API of the registry next).
//!
//! - `sigv4`: verifying Signature Version 4, with AWS's refusals
//!   (`InvalidSignatureException`, `UnrecognizedClientException`, a clock
//!   skew over five minutes);
//! - `json`: the awsJson1.1 protocol's targets and error bodies;
//! - `arn`: ARNs in AWS's shape;
//! - `policy`: IAM-style policies (actions and ARN globs; denied by
//!   default, an explicit Deny wins), and the built-in admin, operator and
//!   readonly ones. A `Condition` is refused rather than ignored: ignoring
//!   one on an Allow would grant more than was written;
//! - `client`: signing outgoing requests, as the SDKs sign them;
//! - `credentials`: the AWS CLI's conventions for credentials, region and
//!   endpoint (environment, `~/.aws/credentials`, `~/.aws/config`).
#![forbid(unsafe_code)]

pub mod arn;
pub mod client;
pub mod credentials;
pub mod json;
pub mod policy;
pub mod sigv4;

use std::path::PathBuf;

/// What a client of an AWS-shaped API can fail at before it sends
/// anything. (A server's refusals are `sigv4::AuthError`, which carry the
/// exception AWS answers with.)
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: {why}", path.display())]
    Ini {
        path: PathBuf,
        line: usize,
        why: String,
    },
    /// The AWS CLI's words for a profile named but found in neither file.
    #[error("The config profile ({0}) could not be found")]
    ProfileNotFound(String),
    #[error("Partial credentials found in {place}, missing: {missing}")]
    PartialCredentials {
        place: String,
        missing: &'static str,
    },
    #[error("profile {profile} gets its credentials through {setting}, which estiba does not run: give it aws_access_key_id and aws_secret_access_key")]
    UnsupportedCredentials {
        profile: String,
        setting: &'static str,
    },
    #[error("Unable to locate credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give profile {profile} keys in {file} (`estiba cluster user add` prints a key)")]
    NoCredentials { profile: String, file: String },
    #[error("signing the request: {0}")]
    Sign(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
