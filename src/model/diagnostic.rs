//! What a build reports about the objects it read: which object, which field, why, and how
//! bad it is. Shared by every part of the model that reads objects.

use super::snapshot::ObjectRef;
use serde::Serialize;
use std::fmt;

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Something the object asks for is not done (its routes, or part of them, are off).
    Error,
    /// Something the object asks for is ignored, and the rest works (an unsupported
    /// annotation, a snippet).
    Warning,
}

/// A problem with one object: which object, which field, and why.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Diagnostic {
    pub object: ObjectRef,
    /// The field path, e.g. `spec.rules[0].http.paths[1].backend.service.port.name`.
    pub field: String,
    pub reason: String,
    pub severity: Severity,
}

impl Diagnostic {
    /// An error about `object`'s `field`.
    pub fn error(object: ObjectRef, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Diagnostic {
            object,
            field: field.into(),
            reason: reason.into(),
            severity: Severity::Error,
        }
    }

    /// A warning about `object`'s `field`.
    pub fn warning(object: ObjectRef, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(object, field, reason)
        }
    }

    pub fn is_warning(&self) -> bool {
        self.severity == Severity::Warning
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.object, self.field, self.reason)
    }
}
