//! AWS's protocol pieces that estiba's AWS-shaped APIs share (the ECS API
//! of the control plane now, the ECR API of the registry next).
//!
//! - `sigv4`: verifying Signature Version 4, with AWS's refusals
//!   (`InvalidSignatureException`, `UnrecognizedClientException`, a clock
//!   skew over five minutes);
//! - `json`: the awsJson1.1 protocol's targets and error bodies;
//! - `arn`: ARNs in AWS's shape.
#![forbid(unsafe_code)]

pub mod arn;
pub mod json;
pub mod sigv4;
