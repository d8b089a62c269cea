//! Time, as a port so that tests can move it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch; a trait so tests can move time.
pub trait Clock: Send + Sync {
    fn now(&self) -> u64;

    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64 {
        self.now() * 1000
    }

    /// Microseconds since the Unix epoch.
    fn now_us(&self) -> u64 {
        self.now_ms() * 1000
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    fn now_ms(&self) -> u64 {
        self.now_us() / 1000
    }

    fn now_us(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64)
    }
}
