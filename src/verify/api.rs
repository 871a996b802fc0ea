//! The audit's requests through the gateway: a movie posted and listed, an
//! order posted and listed, then the exercise's resilience point — with
//! billing-app stopped, an order is still answered 200, is not listed, and
//! lands once billing-app is back.
//!
//! A gateway that cannot be reached fails the first check with what to try,
//! and the others are skipped: on a real cluster an unreachable gateway is a
//! finding the auditor must see, never a silent pass.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use super::billing::BillingControl;
use super::{Check, Section, Status};
use crate::reporter::Reporter;

pub const MOVIE_POST: &str = "POST /api/movies/ creates a movie";
pub const MOVIE_GET: &str = "GET /api/movies/ lists it";
pub const ORDER_POST: &str = "POST /api/billing/ is answered 200";
pub const ORDER_LISTED: &str = "GET /api/billing lists the order";
pub const BILLING_STOPPED: &str = "billing-app stopped (scaled to 0)";
pub const ORDER_WHILE_STOPPED: &str =
    "POST /api/billing/ while billing-app is stopped is answered 200";
pub const ORDER_NOT_LISTED: &str = "the order is not listed while billing-app is stopped";
pub const BILLING_RESTORED: &str = "billing-app restored to its replica count";
pub const ORDER_LANDS: &str = "the order lands once billing-app is back";
pub const API_CHECKS: [&str; 9] = [
    MOVIE_POST,
    MOVIE_GET,
    ORDER_POST,
    ORDER_LISTED,
    BILLING_STOPPED,
    ORDER_WHILE_STOPPED,
    ORDER_NOT_LISTED,
    BILLING_RESTORED,
    ORDER_LANDS,
];

/// How long an accepted order may take to appear in billing-app's list.
const ORDER_DEADLINE: Duration = Duration::from_secs(60);
const POLL_EVERY: Duration = Duration::from_millis(500);
/// How long an interrupted verify waits for billing-app to be back.
const RESTORE_ON_DROP: Duration = Duration::from_secs(30);

const HINT_BILLING: &str = "billing-app consumes billing_queue into billing-db: see `orchestrator logs billing-app` and `orchestrator logs api-gateway`";

/// Runs the API checks against the gateway at `gateway` (or fails the first
/// with the reason there is none). billing-app's replica count is restored
/// whatever happens, also when this future is dropped (see [`Restore`]).
pub async fn run(
    gateway: Result<&str, &str>,
    billing: &dyn BillingControl,
    reporter: &dyn Reporter,
) -> Vec<Check> {
    let mut checks = Checks::new(reporter);
    let url = match gateway {
        Ok(url) => url,
        Err(why) => {
            checks.push(failed(MOVIE_POST, Vec::new(), why));
            return checks.skip_rest("there is no gateway to send requests to");
        }
    };
    let gateway = Gateway::new(url);
    let tag = crate::state::random_hex(4);

    let title = format!("verify-{tag}");
    let movie = json!({"title": title, "description": "posted by orchestrator verify"});
    let clock = Instant::now();
    match gateway
        .first_send(Method::POST, "/api/movies/", &movie)
        .await
    {
        Err(err) if err.is_connect() || err.is_timeout() => {
            let reason = format!(
                "the gateway at {url} did not answer: {err}; is api-gateway Ready (`orchestrator status`), and is its \
                 LoadBalancer address reachable from this host? Else pass --gateway-url"
            );
            checks.push(failed(MOVIE_POST, Vec::new(), &reason).took(clock));
            return checks.skip_rest("the gateway did not answer");
        }
        sent => {
            let check = judge(MOVIE_POST, sent, |reply| {
                (reply.json["title"] != title).then(|| "the answer is not the created movie".into())
            });
            checks.push(check.took(clock));
        }
    }
    let clock = Instant::now();
    let listed = gateway.send(Method::GET, "/api/movies/", None).await;
    let check = judge(MOVIE_GET, listed, |reply| {
        let found = reply
            .json
            .as_array()
            .is_some_and(|movies| movies.iter().any(|m| m["title"] == title));
        (!found).then(|| format!("the list holds no movie titled {title}"))
    });
    checks.push(check.took(clock));

    // Orders no one else makes: a user id from this run, the audit's amount.
    let user_id = u32::from_str_radix(&tag, 16).unwrap_or(0) % 900_000_000 + 100_000_000;
    let first = Order { user_id, items: 5 };
    let (accepted, check) = gateway.post(ORDER_POST, first).await;
    checks.push(check);
    if !accepted {
        return checks.skip_rest(
            "the gateway did not accept an order: stopping billing-app would prove nothing",
        );
    }
    checks.push(gateway.wait_for(ORDER_LISTED, first, ORDER_DEADLINE).await);

    reporter.progress(Section::Api.title(), "stopping billing-app");
    let clock = Instant::now();
    let found = match billing.replicas().await {
        Ok(0) => Err("billing-app runs 0 replicas: start it (`kubectl scale statefulset billing-app --replicas=1`) and verify again".to_string()),
        Ok(n) => Ok(n),
        Err(err) => Err(format!("cannot read billing-app's replica count: {err:#}")),
    };
    let replicas = match found {
        Ok(n) => n,
        Err(why) => {
            checks.push(failed(BILLING_STOPPED, Vec::new(), &why).took(clock));
            return checks.skip_rest("billing-app could not be stopped");
        }
    };
    let restore = Restore {
        billing,
        replicas,
        armed: true,
    };
    if let Err(err) = billing.scale(0).await {
        checks.push(failed(BILLING_STOPPED, Vec::new(), &format!("{err:#}")).took(clock));
        checks.push(restore.restore(clock).await);
        return checks.skip_rest("billing-app could not be stopped");
    }
    let stopped = format!("billing-app scaled from {replicas} to 0 replicas; none left");
    checks.push(passed(BILLING_STOPPED, vec![stopped]).took(clock));

    let second = Order { user_id, items: 7 };
    let (accepted, check) = gateway.post(ORDER_WHILE_STOPPED, second).await;
    checks.push(check);
    let clock = Instant::now();
    let listed = gateway.send(Method::GET, "/api/billing", None).await;
    let check = match listed {
        Ok(reply) if reply.status == 200 && second.in_list(&reply.json) => failed(
            ORDER_NOT_LISTED,
            vec![reply.evidence],
            "the order is listed although billing-app is stopped: is another billing-app running?",
        ),
        Ok(reply) if reply.status == 200 || reply.status >= 500 => {
            passed(ORDER_NOT_LISTED, vec![reply.evidence])
        }
        Ok(reply) => failed(
            ORDER_NOT_LISTED,
            vec![reply.evidence],
            "expected the list without the order, or 503 while billing-app is down",
        ),
        Err(err) => failed(
            ORDER_NOT_LISTED,
            Vec::new(),
            &format!("GET /api/billing: {err}"),
        ),
    };
    checks.push(check.took(clock));

    reporter.progress(Section::Api.title(), "restarting billing-app");
    let restored = restore.restore(Instant::now()).await;
    let back = restored.status == Status::Passed;
    checks.push(restored);
    if !accepted {
        checks.push(Check::skipped(
            Section::Api,
            ORDER_LANDS,
            "no order was accepted while billing-app was stopped",
        ));
    } else if !back {
        checks.push(Check::skipped(
            Section::Api,
            ORDER_LANDS,
            "billing-app did not come back",
        ));
    } else {
        checks.push(gateway.wait_for(ORDER_LANDS, second, ORDER_DEADLINE).await);
    }
    checks.checks
}

/// The checks so far, each reported as it is added.
struct Checks<'a> {
    checks: Vec<Check>,
    reporter: &'a dyn Reporter,
}

impl<'a> Checks<'a> {
    fn new(reporter: &'a dyn Reporter) -> Self {
        Checks {
            checks: Vec::new(),
            reporter,
        }
    }

    fn push(&mut self, check: Check) {
        let mark = match check.status {
            Status::Passed => "ok",
            Status::Failed => "FAILED",
            Status::Skipped => "skipped",
        };
        self.reporter
            .progress(Section::Api.title(), &format!("{}: {mark}", check.name));
        self.checks.push(check);
    }

    /// The checks not run yet, skipped with `why`, all in their order.
    fn skip_rest(mut self, why: &str) -> Vec<Check> {
        let position = |name: &str| API_CHECKS.iter().position(|n| *n == name);
        let missing: Vec<&str> = API_CHECKS
            .into_iter()
            .filter(|name| !self.checks.iter().any(|c| c.name == *name))
            .collect();
        self.checks.extend(
            missing
                .into_iter()
                .map(|name| Check::skipped(Section::Api, name, why)),
        );
        self.checks.sort_by_key(|c| position(&c.name));
        self.checks
    }
}

fn failed(name: &str, evidence: Vec<String>, reason: &str) -> Check {
    Check::failed(Section::Api, name, evidence, vec![reason.to_string()])
}

fn passed(name: &str, evidence: Vec<String>) -> Check {
    Check::passed(Section::Api, name, evidence)
}

/// A check of one exchange: it needs a 200, then `problem` judges the body.
fn judge(
    name: &str,
    sent: reqwest::Result<Reply>,
    problem: impl Fn(&Reply) -> Option<String>,
) -> Check {
    match sent {
        Err(err) => failed(name, Vec::new(), &format!("the request failed: {err}")),
        Ok(reply) if reply.status != 200 => {
            let why = format!("expected 200, got {}", reply.status);
            failed(name, vec![reply.evidence], &why)
        }
        Ok(reply) => match problem(&reply) {
            Some(why) => failed(name, vec![reply.evidence], &why),
            None => passed(name, vec![reply.evidence]),
        },
    }
}

/// One of verify's orders, recognised in billing-app's list by its user id
/// and item count (the amount is always the audit's 180).
#[derive(Debug, Clone, Copy)]
struct Order {
    user_id: u32,
    items: u32,
}

impl Order {
    fn in_list(&self, list: &Value) -> bool {
        let number = |v: &Value| match v {
            Value::String(s) => s.trim().parse::<f64>().ok(),
            other => other.as_f64(),
        };
        list.as_array().is_some_and(|orders| {
            orders.iter().any(|o| {
                number(&o["user_id"]) == Some(f64::from(self.user_id))
                    && number(&o["number_of_items"]) == Some(f64::from(self.items))
                    && number(&o["total_amount"]) == Some(180.0)
            })
        })
    }
}

struct Gateway {
    url: String,
    http: reqwest::Client,
}

/// An answer, and the line that shows the exchange as evidence.
struct Reply {
    status: u16,
    json: Value,
    evidence: String,
}

/// How long the first request may wait for the gateway to take connections.
const GATEWAY_SETTLE: Duration = Duration::from_secs(20);

impl Gateway {
    fn new(url: &str) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .build()
            .expect("a plain HTTP client builds");
        Gateway {
            url: url.trim_end_matches('/').to_string(),
            http,
        }
    }

    /// The first request, sent again while the connection is refused (so
    /// never received) for up to [`GATEWAY_SETTLE`]: right after a rollout the
    /// node's proxy rules (kube-proxy, K3s's ServiceLB) can trail the gateway
    /// pod's readiness by a few seconds (seen on a real kubelet: verify run
    /// just after deploy found the NodePort closed, seconds later it answered).
    async fn first_send(&self, method: Method, path: &str, body: &Value) -> reqwest::Result<Reply> {
        let started = Instant::now();
        loop {
            match self.send(method.clone(), path, Some(body)).await {
                Err(err) if err.is_connect() && started.elapsed() < GATEWAY_SETTLE => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                sent => return sent,
            }
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> reqwest::Result<Reply> {
        let url = format!("{}{path}", self.url);
        let mut request = self.http.request(method.clone(), &url);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        let sent = body.map_or(String::new(), |b| format!(" {b}"));
        let answer = if text.trim().is_empty() {
            "(no body)".to_string()
        } else {
            shorten(&text)
        };
        Ok(Reply {
            status,
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
            evidence: format!("{method} {url}{sent} -> {status} {answer}"),
        })
    }

    /// Posts the order as the audit does; whether it was accepted (200), and the check.
    async fn post(&self, name: &str, order: Order) -> (bool, Check) {
        let clock = Instant::now();
        let body = json!({
            "user_id": order.user_id.to_string(),
            "number_of_items": order.items.to_string(),
            "total_amount": "180",
        });
        let posted = self.send(Method::POST, "/api/billing/", Some(&body)).await;
        let accepted = posted.as_ref().is_ok_and(|r| r.status == 200);
        (accepted, judge(name, posted, |_| None).took(clock))
    }

    /// Asks billing-app's list through the gateway until it shows `order`.
    async fn wait_for(&self, name: &str, order: Order, deadline: Duration) -> Check {
        let clock = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let last = self.send(Method::GET, "/api/billing", None).await;
            if let Ok(reply) = &last
                && reply.status == 200
                && order.in_list(&reply.json)
            {
                let evidence = vec![
                    reply.evidence.clone(),
                    format!(
                        "order user_id {} number_of_items {} listed after {:.1}s ({attempts} request(s))",
                        order.user_id,
                        order.items,
                        clock.elapsed().as_secs_f64()
                    ),
                ];
                return passed(name, evidence).took(clock);
            }
            if clock.elapsed() >= deadline {
                let (evidence, answer) = match last {
                    Ok(reply) => (vec![reply.evidence], format!("{}", reply.status)),
                    Err(err) => (Vec::new(), err.to_string()),
                };
                let problem = format!(
                    "order user_id {} number_of_items {} not listed after {}s; last answer: {answer}",
                    order.user_id,
                    order.items,
                    deadline.as_secs()
                );
                return Check::judged(Section::Api, name, evidence, vec![problem], HINT_BILLING)
                    .took(clock);
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
}

/// A body cut for a line of evidence.
fn shorten(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(160) {
        Some((at, _)) => format!("{}... ({} bytes)", &text[..at], text.len()),
        None => text.to_string(),
    }
}

/// Puts billing-app back to the replica count verify found.
///
/// On the normal path [`Restore::restore`] does it. When the future running
/// the checks is dropped instead — Ctrl-C: `main` selects between the command
/// and the signal, drops the command and shuts the runtime down without
/// waiting for spawned tasks — `Drop` restores it, blocking, on a thread of its
/// own with a runtime of its own. Catching Ctrl-C in the command would race
/// with `main`'s own handler (both are woken by the same signal, and
/// `select!` picks a ready branch at random); the drop guard runs whichever
/// wins, and also when the checks end early for any other reason.
struct Restore<'a> {
    billing: &'a dyn BillingControl,
    replicas: i32,
    armed: bool,
}

impl Restore<'_> {
    async fn restore(mut self, clock: Instant) -> Check {
        self.armed = false;
        let replicas = self.replicas;
        let check = match self.billing.scale(replicas).await {
            Ok(()) => passed(
                BILLING_RESTORED,
                vec![format!(
                    "billing-app scaled back to {replicas} replica(s), all Ready"
                )],
            ),
            Err(err) => failed(
                BILLING_RESTORED,
                Vec::new(),
                &format!(
                    "{err:#}; restore it with `kubectl scale statefulset billing-app --replicas={replicas}`"
                ),
            ),
        };
        check.took(clock)
    }
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (billing, replicas) = (self.billing, self.replicas);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                // Bounded: the user is waiting, and Ctrl-C no longer ends the process.
                let restored = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(anyhow::Error::from)
                    .and_then(|runtime| {
                        runtime.block_on(async {
                            tokio::time::timeout(RESTORE_ON_DROP, billing.scale(replicas))
                                .await
                                .unwrap_or_else(|_| {
                                    Err(anyhow::anyhow!(
                                        "not ready within {}s",
                                        RESTORE_ON_DROP.as_secs()
                                    ))
                                })
                        })
                    });
                match restored {
                    Ok(()) => eprintln!("billing-app restored to {replicas} replica(s)"),
                    Err(err) => eprintln!(
                        "billing-app was asked back to {replicas} replica(s): {err:#}; \
                         check with `kubectl get statefulset billing-app`, or run \
                         `kubectl scale statefulset billing-app --replicas={replicas}`"
                    ),
                }
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_are_recognised_with_strings_or_numbers() {
        let order = Order {
            user_id: 123456789,
            items: 7,
        };
        let list = json!([
            {"id": 1, "user_id": 3, "number_of_items": 5, "total_amount": "180.00"},
            {"id": 2, "user_id": 123456789, "number_of_items": 7, "total_amount": 180},
        ]);
        assert!(order.in_list(&list));
        assert!(
            !Order {
                user_id: 123456789,
                items: 5
            }
            .in_list(&list)
        );
        let strings =
            json!([{"user_id": "123456789", "number_of_items": "7", "total_amount": "180.00"}]);
        assert!(order.in_list(&strings));
        assert!(!order.in_list(&json!({"error": "billing-app is unavailable"})));
    }

    #[tokio::test]
    async fn the_first_request_waits_for_a_gateway_that_is_not_listening_yet() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = closed.local_addr().unwrap();
        drop(closed);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let listener = tokio::net::TcpListener::bind(address).await.unwrap();
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await;
            let body = r#"{"id":1}"#;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(answer.as_bytes()).await.unwrap();
        });
        let gateway = Gateway::new(&format!("http://{address}"));
        let reply = gateway
            .first_send(Method::POST, "/api/movies/", &json!({"title": "t"}))
            .await
            .expect("answered once it listens");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json["id"], 1);
    }

    #[test]
    fn long_bodies_are_cut() {
        assert_eq!(shorten(" {} "), "{}");
        let long = "x".repeat(200);
        assert_eq!(
            shorten(&long),
            format!("{}... (200 bytes)", "x".repeat(160))
        );
    }
}
