//! AWS's protocol pieces that estiba's AWS-shaped APIs share (the ECS API
//! of the control plane now, the ECR API of the registry next).
//!
//! - `sigv4`: verifying Signature Version 4, with AWS's refusals
//!   (`InvalidSignatureException`, `UnrecognizedClientException`, a clock
//!   skew over five minutes).
#![forbid(unsafe_code)]

pub mod sigv4;
