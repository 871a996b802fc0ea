use std::time::Duration;

/// Waits that double from 100 ms up to 5 s between attempts to reach a
/// server that is away, so a restart is noticed quickly without hammering it.
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: Self::FIRST }
    }
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const LONGEST: Duration = Duration::from_secs(5);

    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(Self::LONGEST);
    }

    /// After a success, the next failure starts from the shortest wait.
    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}
