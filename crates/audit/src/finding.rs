//! Findings: a rule, the target it was found in, and where in it.

use serde::Serialize;

use crate::catalog::{Rule, TargetKind};

/// What was audited: a Containerfile or task definition by its path, an
/// image by its name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Target {
    pub kind: TargetKind,
    pub name: String,
}

impl Target {
    pub fn new(kind: TargetKind, name: impl Into<String>) -> Target {
        Target {
            kind,
            name: name.into(),
        }
    }

    /// Whether the target is a file in the repository (SARIF gives it a
    /// region) rather than something with a pseudo-path.
    pub fn is_file(&self) -> bool {
        matches!(
            self.kind,
            TargetKind::Containerfile | TargetKind::TaskDefinition
        )
    }
}

/// Where in the target a finding is.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Location {
    /// The file as a whole (a missing instruction).
    File,
    /// A line of the file, 1-based.
    Line { line: usize },
    /// A JSON pointer into a task definition, and the line it starts on.
    Pointer { pointer: String, line: usize },
    /// A field of an image's config, such as `config.User` or `history[3]`.
    Config { field: String },
    /// A file in the image's merged file system.
    Path { path: String },
}

impl Location {
    /// The line for SARIF's region; 1 when the location has none.
    pub fn line(&self) -> usize {
        match self {
            Location::Line { line } | Location::Pointer { line, .. } => *line,
            _ => 1,
        }
    }

    /// What the location says to a reader, for tables and fingerprints.
    pub fn describe(&self) -> String {
        match self {
            Location::File => String::new(),
            Location::Line { line } => format!("line {line}"),
            Location::Pointer { pointer, line } => format!("{pointer} (line {line})"),
            Location::Config { field } => field.clone(),
            Location::Path { path } => path.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Finding {
    pub rule: &'static Rule,
    pub target: Target,
    pub location: Location,
    /// What was found, in this case's own terms.
    pub message: String,
}

impl Finding {
    pub fn new(
        id: &str,
        target: &Target,
        location: Location,
        message: impl Into<String>,
    ) -> Finding {
        Finding {
            rule: crate::catalog::rule(id),
            target: target.clone(),
            location,
            message: message.into(),
        }
    }
}
