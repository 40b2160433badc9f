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
//!   one on an Allow would grant more than was written.
#![forbid(unsafe_code)]

pub mod arn;
pub mod json;
pub mod policy;
pub mod sigv4;
