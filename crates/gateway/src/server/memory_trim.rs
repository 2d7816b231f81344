//! Give freed heap memory back to the system every few seconds.
//!
//! Sessions come and go with buffers of many sizes; glibc's allocator keeps
//! the pages they freed inside its arenas, so under churn the process's RSS
//! creeps up while the bytes actually in use stay flat (measured in
//! docs/reliability.md, "Soak"). `malloc_trim` releases every whole free
//! page of every arena. Other allocators and C libraries return memory on
//! their own, so there it does nothing.

use std::time::Duration;

/// How often free pages are handed back.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(10);

pub async fn trim_loop() {
    let mut interval = tokio::time::interval(TRIM_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        interval.tick().await;
        // Walking the arenas takes a few milliseconds on a large heap: not
        // on a thread that serves connections.
        let _ = tokio::task::spawn_blocking(trim_now).await;
    }
}

/// Release the free pages now; returns whether any memory was released.
pub fn trim_now() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks the allocator's own free lists under
        // its locks; any argument is valid (0: keep no extra padding).
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn trimming_after_a_large_free_gives_pages_back() {
        // Many mid-sized blocks (below the mmap threshold, so they live in
        // the heap), the first of each pair freed: holes the allocator keeps.
        let mut blocks: Vec<Vec<u8>> = (0..4096).map(|i| vec![i as u8; 64 * 1024]).collect();
        for b in blocks.iter_mut().step_by(2) {
            *b = Vec::new();
        }
        let released = super::trim_now();
        drop(blocks);
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            assert!(released, "malloc_trim released nothing after 128 MiB of holes");
        }
    }
}
