//! `demo hpa`: load at the gateway, bounded in rate and time, so that an
//! auditor sees the autoscalers scale out. The loop sends at most `rate`
//! requests a second, never more than [`MAX_IN_FLIGHT`] at once (a slow
//! gateway gets fewer requests, not a pile-up), and stops at the deadline
//! whatever is still in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use crate::error::Failure;

/// Requests waiting for an answer at most.
pub const MAX_IN_FLIGHT: usize = 64;

/// How long requests still in flight at the deadline may finish.
pub const DRAIN: Duration = Duration::from_secs(1);

/// The load to drive.
#[derive(Debug, Clone)]
pub struct Load {
    /// The full URL every request gets, e.g. `http://10.0.0.10:3000/api/movies`.
    pub url: String,
    /// Requests per second.
    pub rate: u32,
    pub duration: Duration,
    /// How long one request may take.
    pub request_timeout: Duration,
}

/// What the load did so far; read while it runs.
#[derive(Debug, Default)]
pub struct Tally {
    pub sent: AtomicU64,
    /// Answered with a 2xx status.
    pub ok: AtomicU64,
    /// Answered otherwise, or not in time.
    pub failed: AtomicU64,
    /// Not sent: [`MAX_IN_FLIGHT`] requests were still waiting.
    pub skipped: AtomicU64,
}

impl Tally {
    /// "sent 240: 238 ok, 2 failed", and those not answered (yet) or not sent when there are.
    pub fn summary(&self) -> String {
        let [sent, ok, failed, skipped] =
            [&self.sent, &self.ok, &self.failed, &self.skipped].map(|n| n.load(Ordering::Relaxed));
        let waiting = sent.saturating_sub(ok + failed);
        format!(
            "sent {sent}: {ok} ok, {failed} failed{}{}",
            match waiting {
                0 => String::new(),
                n => format!(", {n} unanswered"),
            },
            match skipped {
                0 => String::new(),
                n => format!(", {n} not sent (the gateway is slower than the rate)"),
            }
        )
    }
}

/// `60s`, `2m`, `1m30s` as a duration of at least a second.
pub fn parse_duration(flag: &str, text: &str) -> Result<Duration, Failure> {
    let parsed: k8s_openapi::jiff::SignedDuration = text.parse().map_err(|err| {
        Failure::Usage(format!(
            "{flag} {text}: not a duration like 30s, 2m or 1m30s ({err})"
        ))
    })?;
    match parsed.as_secs() {
        secs if secs > 0 => Ok(Duration::from_secs(secs.unsigned_abs())),
        _ => Err(Failure::Usage(format!(
            "{flag} {text}: must be at least one second"
        ))),
    }
}

/// Sends the load until its duration is over, counting into `tally`.
pub async fn drive(load: &Load, tally: Arc<Tally>) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(load.request_timeout)
        .build()?;
    let deadline = Instant::now().checked_add(load.duration).ok_or_else(|| {
        Failure::Usage(format!(
            "--duration {}s is past the clock's end",
            load.duration.as_secs()
        ))
    })?;
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / load.rate.max(1));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut requests = JoinSet::new();
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => break,
            _ = ticks.tick() => {}
        }
        while requests.try_join_next().is_some() {}
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tally.skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        tally.sent.fetch_add(1, Ordering::Relaxed);
        let request = client.get(&load.url).send();
        let tally = tally.clone();
        requests.spawn(async move {
            let ok = matches!(request.await, Ok(response) if response.status().is_success());
            let counter = if ok { &tally.ok } else { &tally.failed };
            counter.fetch_add(1, Ordering::Relaxed);
            drop(slot);
        });
    }
    // Bounded in time: what has not answered shortly after the deadline is given up.
    let _ = tokio::time::timeout(DRAIN, async {
        while requests.join_next().await.is_some() {}
    })
    .await;
    requests.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::get;
    use std::sync::atomic::AtomicUsize;

    /// A server on 127.0.0.1 that counts the requests it gets and answers with `status` after `delay`.
    async fn server(status: StatusCode, delay: Duration) -> (String, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let app = Router::new().route(
            "/api/movies",
            get(move || {
                counted.fetch_add(1, Ordering::Relaxed);
                async move {
                    tokio::time::sleep(delay).await;
                    status
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api/movies", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, hits)
    }

    fn load(url: &str, rate: u32, duration_ms: u64) -> Load {
        Load {
            url: url.into(),
            rate,
            duration: Duration::from_millis(duration_ms),
            request_timeout: Duration::from_secs(5),
        }
    }

    // Paused time: `drive` ticks and sleeps on tokio's clock (`Instant` here
    // is tokio's), which jumps from timer to timer, so the rate and the end
    // are exact whatever the machine's load.
    #[tokio::test(start_paused = true)]
    async fn the_load_keeps_to_its_rate_and_stops_by_itself() {
        let (url, hits) = server(StatusCode::OK, Duration::ZERO).await;
        let tally = Arc::new(Tally::default());
        let started = Instant::now();
        drive(&load(&url, 40, 1000), tally.clone()).await.unwrap();
        let took = started.elapsed();
        let sent = tally.sent.load(Ordering::Relaxed);
        // A tick every 25 ms from the start; the one at the deadline may or may not go.
        assert!((40..=41).contains(&sent), "40/s for 1s sent {sent}");
        assert_eq!(hits.load(Ordering::Relaxed) as u64, sent);
        assert_eq!(tally.ok.load(Ordering::Relaxed), sent);
        assert!(
            took >= Duration::from_secs(1) && took <= Duration::from_secs(1) + DRAIN,
            "took {took:?}"
        );
        assert_eq!(tally.summary(), format!("sent {sent}: {sent} ok, 0 failed"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_gateway_neither_piles_up_requests_nor_holds_the_end() {
        let (url, _) = server(StatusCode::OK, Duration::from_secs(30)).await;
        let tally = Arc::new(Tally::default());
        let started = Instant::now();
        drive(&load(&url, 200, 600), tally.clone()).await.unwrap();
        let took = started.elapsed();
        // The deadline, then the grace for the requests in flight, and no more.
        let end = Duration::from_millis(600) + DRAIN;
        assert!(
            took >= end && took < end + Duration::from_millis(10),
            "took {took:?}"
        );
        assert_eq!(tally.sent.load(Ordering::Relaxed), MAX_IN_FLIGHT as u64);
        assert!(tally.skipped.load(Ordering::Relaxed) > 0);
        assert_eq!(tally.ok.load(Ordering::Relaxed), 0);
        assert!(
            tally.summary().contains("64 unanswered"),
            "{}",
            tally.summary()
        );
    }

    #[tokio::test]
    async fn error_answers_count_as_failed() {
        let (url, _) = server(StatusCode::SERVICE_UNAVAILABLE, Duration::ZERO).await;
        let tally = Arc::new(Tally::default());
        drive(&load(&url, 20, 300), tally.clone()).await.unwrap();
        let sent = tally.sent.load(Ordering::Relaxed);
        assert!(sent > 0);
        assert_eq!(tally.failed.load(Ordering::Relaxed), sent);
        assert!(
            tally
                .summary()
                .starts_with(&format!("sent {sent}: 0 ok, {sent} failed"))
        );
    }

    #[test]
    fn durations_are_friendly_and_positive() {
        assert_eq!(
            parse_duration("--duration", "1m30s").unwrap(),
            Duration::from_secs(90)
        );
        assert!(matches!(
            parse_duration("--duration", "0s"),
            Err(Failure::Usage(_))
        ));
        let err = parse_duration("--duration", "soon").unwrap_err();
        assert!(err.to_string().contains("--duration soon"), "{err}");
    }
}
