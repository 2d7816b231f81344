//! The cluster's NATS subjects, one table: everything an instance publishes
//! or listens to lives under `clawgate.<cluster name>.` (docs/cluster.md).

/// What crosses instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// The store changed (a revocation, removal, rotation, approval…):
    /// every instance re-checks its sessions now instead of at its next poll.
    StoreChanged,
    /// `device.pair.requested|resolved`, for pairing operators everywhere.
    PairEvents,
    /// Each instance's sessions, published on change and as a heartbeat.
    /// Per instance: `presence.<instance>`.
    Presence,
    /// The node ids (and what each node shows in `node.list`) connected to
    /// each instance, published on change and as a heartbeat. Per instance:
    /// `nodes.<instance>`.
    Nodes,
    /// `node.invoke` for a node held by the instance named last
    /// (request/reply). Per instance: `invoke.<instance>`.
    Invoke,
}

impl Subject {
    pub const ALL: [Subject; 5] =
        [Subject::StoreChanged, Subject::PairEvents, Subject::Presence, Subject::Nodes, Subject::Invoke];

    /// The subject's token after the cluster prefix.
    pub fn token(self) -> &'static str {
        match self {
            Subject::StoreChanged => "store.changed",
            Subject::PairEvents => "pair.events",
            Subject::Presence => "presence",
            Subject::Nodes => "nodes",
            Subject::Invoke => "invoke",
        }
    }
}

/// The subjects of one cluster.
#[derive(Debug, Clone)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    pub fn new(cluster_name: &str) -> Subjects {
        Subjects { prefix: format!("clawgate.{cluster_name}") }
    }

    /// The subject every instance shares.
    pub fn shared(&self, subject: Subject) -> String {
        format!("{}.{}", self.prefix, subject.token())
    }

    /// The subject of one instance (`presence.<instance>`, `nodes.<instance>`, `invoke.<instance>`).
    pub fn of_instance(&self, subject: Subject, instance: &str) -> String {
        format!("{}.{}.{instance}", self.prefix, subject.token())
    }

    /// Every instance's subject of this kind (`presence.*`, `nodes.*`).
    pub fn every_instance(&self, subject: Subject) -> String {
        format!("{}.{}.*", self.prefix, subject.token())
    }

    /// The JetStream key-value bucket of failed-credential counters.
    pub fn failures_bucket(&self) -> String {
        format!("{}_failures", self.prefix.replace('.', "_"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_sit_under_the_cluster_prefix_and_are_distinct() {
        let s = Subjects::new("prod");
        assert_eq!(s.shared(Subject::StoreChanged), "clawgate.prod.store.changed");
        assert_eq!(s.of_instance(Subject::Invoke, "b"), "clawgate.prod.invoke.b");
        assert_eq!(s.every_instance(Subject::Presence), "clawgate.prod.presence.*");
        assert_eq!(s.failures_bucket(), "clawgate_prod_failures");
        let mut tokens: Vec<_> = Subject::ALL.iter().map(|s| s.token()).collect();
        tokens.dedup();
        assert_eq!(tokens.len(), Subject::ALL.len());
    }
}
