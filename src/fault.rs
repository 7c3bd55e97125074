//! Debug-only fault injection, so tests of the real binary can put it in states that
//! are hard to reach from outside (a wedged database writer). Compiled to nothing in
//! release builds: `cfg(debug_assertions)` only, and read from one environment
//! variable, `PRINTFARMD_TEST_FAULT`.
//!
//! `PRINTFARMD_TEST_FAULT=block-writer:<file>`: while `<file>` exists, the JobCreator's
//! thread blocks when it answers the watchdog's ping (a wedged writer); the test
//! creates the file to wedge it and removes it to let it go.

/// The environment variable naming the fault.
pub const FAULT_ENV: &str = "PRINTFARMD_TEST_FAULT";

/// Longest a blocked writer stays blocked, so a test that forgets its flag file does
/// not leave a daemon hanging for ever.
#[cfg(debug_assertions)]
const MAX_BLOCK: std::time::Duration = std::time::Duration::from_secs(120);

/// Blocks the calling thread while the `block-writer` flag file exists (debug builds
/// with the fault set only).
#[cfg(debug_assertions)]
pub fn block_writer_while_flagged() {
    use std::path::PathBuf;
    use std::sync::OnceLock;
    static FLAG: OnceLock<Option<PathBuf>> = OnceLock::new();
    let flag = FLAG.get_or_init(|| {
        std::env::var(FAULT_ENV)
            .ok()
            .and_then(|v| v.strip_prefix("block-writer:").map(PathBuf::from))
    });
    let Some(flag) = flag else { return };
    let started = std::time::Instant::now();
    let mut logged = false;
    while flag.exists() && started.elapsed() < MAX_BLOCK {
        if !logged {
            tracing::warn!(flag = %flag.display(), "test fault: the job writer is blocked");
            logged = true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn block_writer_while_flagged() {}
