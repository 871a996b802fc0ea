//! What feeds the page: reflector stores of everything it shows, kept by
//! kube-runtime's watchers, and a probe of the API server. Each reports to
//! the monitor when its objects are whole or changed (the probe: when the
//! server answered), and when it fails.

use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Node, Pod, Secret, Service};
use kube::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use kube::runtime::watcher::Event;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use super::model::{Feed, Report};
use super::said_once;

/// What the page shows, as the watches keep it: on a lost connection, the last good data.
pub struct Stores {
    pub nodes: Store<Node>,
    pub pods: Store<Pod>,
    /// Metadata only: the page shows the Secrets' names, and their values never leave the API server.
    pub secrets: Store<PartialObjectMeta<Secret>>,
    pub deployments: Store<Deployment>,
    pub stateful_sets: Store<StatefulSet>,
    pub autoscalers: Store<HorizontalPodAutoscaler>,
    pub services: Store<Service>,
}

pub struct Watches {
    pub stores: Stores,
    /// Every feed a watch reports on.
    pub feeds: Vec<Feed>,
    pub tasks: Vec<JoinHandle<()>>,
}

/// Starts every watch (a failed one starts over after `every`) and the probe (asking `every` so often).
pub fn start(
    client: &kube::Client,
    namespace: &str,
    every: Duration,
    reports: &UnboundedSender<Report>,
) -> Watches {
    let mut spawner = Spawner {
        reports: reports.clone(),
        every,
        feeds: Vec::new(),
        tasks: Vec::new(),
    };
    spawner.probe(client.clone());
    let stores = Stores {
        nodes: spawner.reflect(Feed::Nodes, Api::all(client.clone())),
        pods: spawner.reflect(Feed::Pods, Api::namespaced(client.clone(), namespace)),
        secrets: spawner.reflect(Feed::Secrets, Api::namespaced(client.clone(), namespace)),
        deployments: spawner.reflect(
            Feed::Deployments,
            Api::namespaced(client.clone(), namespace),
        ),
        stateful_sets: spawner.reflect(
            Feed::StatefulSets,
            Api::namespaced(client.clone(), namespace),
        ),
        autoscalers: spawner.reflect(
            Feed::Autoscalers,
            Api::namespaced(client.clone(), namespace),
        ),
        services: spawner.reflect(Feed::Services, Api::namespaced(client.clone(), namespace)),
    };
    Watches {
        stores,
        feeds: spawner.feeds,
        tasks: spawner.tasks,
    }
}

struct Spawner {
    reports: UnboundedSender<Report>,
    every: Duration,
    feeds: Vec<Feed>,
    tasks: Vec<JoinHandle<()>>,
}

impl Spawner {
    /// Asks the API server its version every so often: a server shutting
    /// down refuses new requests at once, but keeps its watches open for a
    /// while (kube-apiserver's graceful shutdown, up to a minute).
    fn probe(&mut self, client: kube::Client) {
        let (reports, every) = (self.reports.clone(), self.every);
        self.feeds.push(Feed::ApiServer);
        self.tasks.push(tokio::spawn(async move {
            loop {
                let outcome = match client.apiserver_version().await {
                    Ok(_) => Ok(()),
                    Err(err) => Err(said_once(&err)),
                };
                let report = Report {
                    feed: Feed::ApiServer,
                    outcome,
                };
                if reports.send(report).is_err() {
                    return;
                }
                tokio::time::sleep(every).await;
            }
        }));
    }

    /// Follows the watch `start` makes, handing each event to `apply` (a
    /// store's writer: by hand rather than through `reflector()`, as the
    /// writer outlives the watcher). A failed watch starts over with a list
    /// after `every` (the store keeps its last data until that list is
    /// whole): the list's end is what says the connection is back, as a
    /// resumed watch says nothing until an object changes.
    fn follow<K, S>(
        &mut self,
        feed: Feed,
        start: impl Fn() -> S + Send + 'static,
        mut apply: impl FnMut(&Event<K>) + Send + 'static,
    ) where
        K: Send + 'static,
        S: Stream<Item = watcher::Result<Event<K>>> + Send + 'static,
    {
        let (reports, every) = (self.reports.clone(), self.every);
        self.feeds.push(feed);
        self.tasks.push(tokio::spawn(async move {
            loop {
                let mut events = std::pin::pin!(start());
                while let Some(event) = events.next().await {
                    let outcome = match event {
                        Ok(event) => {
                            apply(&event);
                            // A list's objects count once it is whole.
                            if matches!(event, Event::Init | Event::InitApply(_)) {
                                continue;
                            }
                            Ok(())
                        }
                        // The watcher lists again by itself; that list's end reports.
                        Err(watcher::Error::WatchError(status)) if status.code == 410 => continue,
                        Err(err) => Err(said_once(&err)),
                    };
                    let failed = outcome.is_err();
                    if reports.send(Report { feed, outcome }).is_err() {
                        return;
                    }
                    if failed {
                        break;
                    }
                }
                tokio::time::sleep(every).await;
            }
        }));
    }

    /// A store of `api`'s objects, kept by a watch that reports as `feed`.
    fn reflect<K>(&mut self, feed: Feed, api: Api<K>) -> Store<K>
    where
        K: kube::Resource<DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
    {
        let (store, mut writer) = reflector::store();
        self.follow(
            feed,
            move || watcher(api.clone(), watcher::Config::default()),
            move |event| writer.apply_watcher_event(event),
        );
        store
    }
}
