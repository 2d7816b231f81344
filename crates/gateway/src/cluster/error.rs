//! What can go wrong on the cluster bus, with stable codes.

/// A cluster operation that did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// NATS is not reachable now: local service continues, cross-instance
    /// work is refused.
    #[error("the cluster bus (NATS) is not connected")]
    Unavailable,
    /// The other instance did not answer in time.
    #[error("no answer from instance {instance} within {timeout_ms} ms")]
    Timeout { instance: String, timeout_ms: u64 },
    /// A message that could not be sent or read.
    #[error("cluster message: {0}")]
    Message(String),
}

impl ClusterError {
    /// Stable code, for logs and for the wire's error details.
    pub fn code(&self) -> &'static str {
        match self {
            ClusterError::Unavailable => "CLUSTER_UNAVAILABLE",
            ClusterError::Timeout { .. } => "CLUSTER_TIMEOUT",
            ClusterError::Message(_) => "CLUSTER_MESSAGE_INVALID",
        }
    }
}
