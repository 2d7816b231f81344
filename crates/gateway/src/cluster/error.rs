//! What can go wrong on the cluster bus, with stable codes.

/// A cluster operation that did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// NATS is not reachable now: local service continues, cross-instance
    /// work is refused.
    #[error("the cluster bus (NATS) is not connected")]
    Unavailable,
    /// The instance asked is not listening on the bus (stopped, or cut
    /// off from NATS).
    #[error("instance {instance} is not answering on the cluster bus")]
    InstanceGone { instance: String },
    /// The other instance did not answer in time.
    #[error("no answer from instance {instance} within {timeout_ms} ms")]
    Timeout { instance: String, timeout_ms: u64 },
    /// A message larger than the NATS server takes (its `max_payload`).
    #[error("a message of {size} bytes is larger than the cluster bus takes ({max} bytes)")]
    TooLarge { size: usize, max: usize },
    /// A message that could not be sent or read.
    #[error("cluster message: {0}")]
    Message(String),
}

impl ClusterError {
    /// Stable code, for logs and for the wire's error details.
    pub fn code(&self) -> &'static str {
        match self {
            ClusterError::Unavailable | ClusterError::InstanceGone { .. } => "CLUSTER_UNAVAILABLE",
            ClusterError::Timeout { .. } => "CLUSTER_TIMEOUT",
            ClusterError::TooLarge { .. } => "CLUSTER_MESSAGE_TOO_LARGE",
            ClusterError::Message(_) => "CLUSTER_MESSAGE_INVALID",
        }
    }
}
