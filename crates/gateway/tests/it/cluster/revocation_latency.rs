//! How long a device-token revocation made on instance `a` takes to close
//! the device's session on instance `b`: over NATS alone (no instance
//! listens to PostgreSQL), over PostgreSQL's notifications alone (NATS
//! down), and with both. It prints the figures and asserts nothing about
//! time; docs/benchmarks.md ("Revocation propagation") records a run with
//! `CLAWGATE_REVOCATIONS=50` (5 by default, to keep the suite short).

use crate::cluster::store_changes::{revocation_delays, slow_poll, summary};
use crate::common::cluster::Instances;

fn count() -> usize {
    std::env::var("CLAWGATE_REVOCATIONS").ok().and_then(|n| n.parse().ok()).filter(|n| *n > 0).unwrap_or(5)
}

#[tokio::test]
async fn revocation_propagation_is_measured_over_each_path() {
    let n = count();
    let cluster = Instances::start_with(3, slow_poll(false)).await;
    let nats_alone = revocation_delays(&cluster, n).await;
    cluster.stop().await;

    let mut cluster = Instances::start_with(3, slow_poll(true)).await;
    cluster.nats.stop();
    cluster.wait_connected(false).await;
    let postgres_alone = revocation_delays(&cluster, n).await;
    cluster.nats.start_again();
    cluster.wait_connected(true).await;
    let both = revocation_delays(&cluster, n).await;
    cluster.stop().await;

    eprintln!("revocation on a → session closed on b (device.token.revoke sent → close frame received):");
    eprintln!("  NATS alone (no LISTEN):   {}", summary(&nats_alone));
    eprintln!("  PostgreSQL NOTIFY alone:  {}", summary(&postgres_alone));
    eprintln!("  both:                     {}", summary(&both));
}
