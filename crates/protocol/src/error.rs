//! The error shape of a failed response, and the top-level error codes
//! (as OpenClaw defines them). Finer causes travel in `details.code`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorShape {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    #[serde(default, rename = "retryAfterMs", skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// Top-level `code` values of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    NotPaired,
    InvalidRequest,
    Forbidden,
    ApprovalNotFound,
    Unavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotPaired => "NOT_PAIRED",
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::ApprovalNotFound => "APPROVAL_NOT_FOUND",
            ErrorCode::Unavailable => "UNAVAILABLE",
        }
    }
}

impl ErrorShape {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorShape {
            code: code.as_str().to_owned(),
            message: message.into(),
            details: None,
            retryable: None,
            retry_after_ms: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// `details.code`, the fine-grained cause clients branch on.
    pub fn details_code(&self) -> Option<&str> {
        self.details.as_ref()?.get("code")?.as_str()
    }
}
