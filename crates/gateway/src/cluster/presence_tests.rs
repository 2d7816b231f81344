use serde_json::json;

use super::*;
use crate::config::cluster::ClusterConfig;

fn instance(name: &str, boot: &str) -> Arc<Cluster> {
    Cluster::new(ClusterConfig::new("nats://127.0.0.1:4222", name, "test").unwrap(), boot)
}

fn message(from: &Cluster, entries: Vec<Value>) -> Vec<u8> {
    from.encode(&PresenceMessage { entries: entries.as_slice(), heartbeat_ms: 1000 }).unwrap()
}

fn subject_of(c: &Cluster) -> String {
    c.subjects().of_instance(Subject::Presence, c.instance())
}

fn entry(host: &str) -> Value {
    json!({"host": host, "ip": "10.0.0.1", "mode": "ui", "ts": 5, "roles": ["operator"], "scopes": ["operator.read"]})
}

#[test]
fn a_peers_entries_are_read_and_reshaped_and_its_own_skipped() {
    let (a, b) = (instance("a", "boot-a"), instance("b", "boot-b"));
    let mut odd = entry("laptop");
    odd["extra"] = json!({"nested": [1, 2, 3]});
    let heard = read(&a, &subject_of(&b), &message(&b, vec![odd])).unwrap().unwrap();
    assert_eq!((heard.instance.as_str(), heard.boot.as_str()), ("b", "boot-b"));
    assert_eq!(heard.entries, vec![entry("laptop")], "fields clawgate does not render are dropped");
    assert_eq!(heard.heartbeat, Duration::from_secs(1));
    assert!(read(&a, &subject_of(&a), &message(&a, vec![entry("self")])).unwrap().is_none());
}

#[test]
fn malformed_oversized_or_misaddressed_messages_are_refused_with_a_stable_code() {
    let (a, b, c) = (instance("a", "1"), instance("b", "2"), instance("c", "3"));
    let too_many = message(&b, (0..=MAX_ENTRIES_PER_INSTANCE).map(|_| json!({"ts": 1})).collect());
    let too_big = vec![b' '; MAX_MESSAGE_BYTES + 1];
    let wrong_type = b.encode(&json!({"entries": [{"ts": "soon"}], "heartbeatMs": 1000})).unwrap();
    let cases: Vec<(String, Vec<u8>)> = vec![
        (subject_of(&b), b"not json".to_vec()),
        (subject_of(&b), b"{\"from\":\"b\"}".to_vec()),
        (subject_of(&b), wrong_type),
        (subject_of(&b), too_many),
        (subject_of(&b), too_big),
        // b speaking on c's subject.
        (subject_of(&c), message(&b, vec![entry("x")])),
    ];
    for (subject, payload) in cases {
        let err = read(&a, &subject, &payload).unwrap_err();
        assert_eq!(err.code(), "CLUSTER_MESSAGE_INVALID", "{err}");
    }
}

#[test]
fn peers_replace_restart_leave_and_expire() {
    let registry = Arc::new(Registry::default());
    let mut peers = Peers::default();
    let t0 = Instant::now();
    let heard = |boot: &str, hosts: &[&str]| Heard {
        instance: "b".into(),
        boot: boot.into(),
        entries: hosts.iter().map(|h| entry(h)).collect(),
        heartbeat: Duration::from_secs(1),
    };
    assert!(peers.hear(heard("1", &["x", "y"]), t0, &registry), "a newcomer");
    assert_eq!(registry.presence().len(), 2);
    assert!(registry.local_presence().is_empty());
    let version = registry.presence_version();
    assert!(!peers.hear(heard("1", &["x", "y"]), t0, &registry));
    assert_eq!(registry.presence_version(), version, "a heartbeat with the same list is no change");
    // Restarted: its new list replaces the old one at once.
    assert!(peers.hear(heard("2", &["z"]), t0, &registry));
    assert_eq!(*registry.presence(), vec![entry("z")]);
    assert!(registry.presence_version() > version);
    // Leaving: an empty list.
    peers.hear(heard("2", &[]), t0, &registry);
    assert!(registry.presence().is_empty());
    // Silent for three heartbeats: dropped, and new again when heard.
    peers.hear(heard("2", &["z"]), t0, &registry);
    peers.expire(t0 + Duration::from_millis(2_900), &registry);
    assert_eq!(registry.presence().len(), 1);
    peers.expire(t0 + Duration::from_millis(3_100), &registry);
    assert!(registry.presence().is_empty());
    assert!(peers.hear(heard("2", &["z"]), t0 + Duration::from_secs(4), &registry));
}

#[test]
fn the_number_of_instances_kept_is_bounded() {
    let registry = Arc::new(Registry::default());
    let mut peers = Peers::default();
    let now = Instant::now();
    for i in 0..MAX_INSTANCES + 5 {
        let heard = Heard {
            instance: format!("i{i}"),
            boot: "1".into(),
            entries: vec![entry("h")],
            heartbeat: Duration::from_secs(1),
        };
        peers.hear(heard, now, &registry);
    }
    assert_eq!(registry.presence().len(), MAX_INSTANCES);
}

#[test]
fn a_list_too_long_for_one_message_is_cut_to_fit() {
    let local: Vec<Value> = (0..100).map(|i| entry(&format!("host-{i}"))).collect();
    assert_eq!(fitting(&local, MAX_MESSAGE_BYTES).len(), 100);
    let one = local[0].to_string().len() + 1;
    let cut = fitting(&local, 1024 + 10 * one);
    assert!(cut.len() >= 9 && cut.len() <= 10, "{}", cut.len());
    let many: Vec<Value> = (0..MAX_ENTRIES_PER_INSTANCE + 10).map(|_| json!({"ts": 1})).collect();
    assert_eq!(fitting(&many, usize::MAX).len(), MAX_ENTRIES_PER_INSTANCE);
}
