//! The upstream faults of `upstream_faults`, a few cycles against the real
//! OpenClaw gateway (`openclaw gateway run`, ~15–20 s to start): frozen
//! (SIGSTOP to its process group) during a session and during handshakes,
//! then thawed; killed during a session, connected to while down, started
//! again. The real gateway behaves as the stand-in does: pongs keep a quiet
//! link, a frozen one is found by its missing pongs, every client gets 1012
//! or 1013 within the bound, and clawgate's files, tasks and links return
//! to their baseline.

use std::time::Duration;

use crate::common::clawgate_process::ClawgateProcess;
use crate::common::openclaw_upstream::OpenclawUpstream;
use crate::upstream_faults::{
    admission_unchecked, all_within, figures, front_config, lost, session_checked, settled, Outcome,
};

/// Both bounds; longer than the stand-in's (Node on a busy 2-core machine).
const BOUND_MS: u64 = 5_000;

fn assert_lost_with_error(outcomes: &[Outcome]) {
    for o in outcomes {
        assert!(matches!(o, Outcome::SessionLost { request_answered: Some(false) }), "{o:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_gateway_frozen_killed_and_restarted() {
    let mut upstream = OpenclawUpstream::start().await;
    let front = ClawgateProcess::start(&front_config(&upstream.url(), &upstream.token, BOUND_MS), None, true).await;
    let addr = front.addr;

    // A quiet session outlives the liveness bound: OpenClaw answers pings.
    let mut quiet = session_checked(addr, false).await;
    tokio::time::sleep(Duration::from_millis(2 * BOUND_MS)).await;
    assert_eq!(quiet.call("q1", "health", None).await["ok"], true, "a quiet live link is kept");

    // 1. Frozen during sessions: each pending request gets its error, then 1012.
    let second = session_checked(addr, false).await;
    upstream.freeze().await;
    let (outcomes, slowest) = all_within(vec![lost(quiet, "f1"), lost(second, "f2")]).await;
    assert_lost_with_error(&outcomes);
    eprintln!("frozen OpenClaw, sessions: 1012 after {slowest:?}");
    // 2. Frozen during handshakes: 1013 at the handshake bound.
    let (outcomes, slowest) = all_within(vec![admission_unchecked(addr), admission_unchecked(addr)]).await;
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::Unavailable)), "{outcomes:?}");
    eprintln!("frozen OpenClaw, handshakes: 1013 after {slowest:?}");
    upstream.signal(libc::SIGCONT);
    let mut c = session_checked(addr, false).await;
    assert_eq!(c.call("h1", "health", None).await["ok"], true, "thawed, it serves again");
    drop(c);
    let baseline = settled(&front, figures(&front).await).await;

    // 3. Killed during sessions: 1012.
    let sessions = vec![session_checked(addr, false).await, session_checked(addr, false).await];
    upstream.kill();
    let waits = sessions.into_iter().zip(["k1", "k2"]).map(|(c, id)| lost(c, id)).collect();
    let (outcomes, slowest) = all_within(waits).await;
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::SessionLost { .. })), "{outcomes:?}");
    eprintln!("killed OpenClaw, sessions: 1012 after {slowest:?}");
    // 4. Down: 1013 at once.
    let (outcomes, _) = all_within(vec![admission_unchecked(addr), admission_unchecked(addr)]).await;
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::Unavailable)), "{outcomes:?}");
    // 5. Started again: sessions work through the same clawgate.
    upstream.start_again().await;
    let mut c = session_checked(addr, false).await;
    assert_eq!(c.call("h2", "health", None).await["ok"], true, "restarted, it serves again");
    drop(c);

    let after = settled(&front, baseline).await;
    eprintln!("real OpenClaw faults: before {baseline:?}, after {after:?}");
    upstream.stop().await;
}
