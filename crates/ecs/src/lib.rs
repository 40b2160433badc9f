//! ECS's shapes, as AWS defines them, for the control plane and the CLI.
//!
//! - `taskdef`: task definitions in every form real files come in (plain,
//!   wrapped in `{"taskDefinition": …}`, with explicit nulls, with the
//!   output-only fields of describe-task-definition), normalized (cpu and
//!   memory strings) and validated by ECS's rules, each refusal an ECS
//!   exception with its message.
#![forbid(unsafe_code)]

pub mod taskdef;

/// The exception names ECS answers with (the `__type` of its errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exception {
    /// The request is wrong (ECS's answer to most validation failures).
    Client,
    /// A parameter is out of its range or malformed.
    InvalidParameter,
}

impl Exception {
    pub fn name(self) -> &'static str {
        match self {
            Exception::Client => "ClientException",
            Exception::InvalidParameter => "InvalidParameterException",
        }
    }
}

/// A refusal, as ECS words it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", exception.name())]
pub struct Error {
    pub exception: Exception,
    pub message: String,
}

impl Error {
    pub fn client(message: impl Into<String>) -> Error {
        Error {
            exception: Exception::Client,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Error {
        Error {
            exception: Exception::InvalidParameter,
            message: message.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
