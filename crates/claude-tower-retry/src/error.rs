//! Errors of this crate's configuration.

use std::fmt;

/// A retry or timeout setting is out of range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidConfig {
    message: String,
}

impl InvalidConfig {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid retry configuration: {}", self.message)
    }
}

impl std::error::Error for InvalidConfig {}
