//! One system with everything counted: the runner, dynoxide and the simulator behind the proxies.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringback::config::Env;
use ringback_local::System;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use vapi_simulator::{Simulator, SimulatorConfig, SimulatorHandle, Timings};

use crate::common::{options, Api, WEBHOOK_PATH};
use crate::proxy::{Kind, ProxyHandle, Tally, Trace};
use crate::{QUIET_TIMEOUT, TABLES, VAPI_KEY};

pub struct Rig {
    pub sys: System,
    sim: SimulatorHandle,
    db: dynoxide::Database,
    dynamo: ProxyHandle,
    pub vapi: ProxyHandle,
    front: ProxyHandle,
    pub api: Api,
    pub env: Env,
    stop_db: oneshot::Sender<()>,
    db_served: JoinHandle<()>,
    trace: Trace,
}

impl Rig {
    pub async fn start() -> Self {
        // The store: dynoxide in memory, served on loopback, behind the DynamoDB proxy.
        let db = dynoxide::Database::memory().expect("dynoxide");
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind dynoxide");
        let db_url = format!("http://{}", listener.local_addr().expect("address"));
        let (stop_db, stopped) = oneshot::channel::<()>();
        let served_db = db.clone();
        let db_served = tokio::spawn(async move {
            let _ = dynoxide::server::serve_with_shutdown(listener, served_db, async move {
                let _ = stopped.await;
            })
            .await;
        });
        let trace = Trace::default();
        let dynamo = ProxyHandle::start(Kind::Dynamo, Some(db_url), trace.clone()).await;

        // Vapi: the simulator, at the test suite's pace, behind the Vapi proxy.
        let sim = Simulator::start(SimulatorConfig {
            timings: Timings::default().scaled(0.05),
            ..Default::default()
        })
        .await
        .expect("the simulator starts");
        let vapi = ProxyHandle::start(Kind::Vapi, Some(sim.base_url()), trace.clone()).await;

        // The runner, behind the front proxy: Vapi's webhooks and the client both go through it.
        let front = ProxyHandle::start(Kind::App, None, trace.clone()).await;
        let hook = format!("{}{WEBHOOK_PATH}", front.url);
        let opts = options(&[
            ("AWS_ENDPOINT_URL_DYNAMODB", dynamo.url.as_str()),
            ("VAPI_BASE_URL", vapi.url.as_str()),
            ("VAPI_API_KEY", VAPI_KEY),
            ("VAPI_WEBHOOK_URL", hook.as_str()),
        ]);
        let env = opts.env.clone();
        let sys = System::start(opts).await.expect("the system starts");
        front.set_upstream(&sys.base_url);
        let api = Api {
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(15))
                .build()
                .expect("reqwest client"),
            base: front.url.clone(),
        };
        Self {
            sys,
            sim,
            db,
            dynamo,
            vapi,
            front,
            api,
            env,
            stop_db,
            db_served,
            trace,
        }
    }

    /// Everything counted since the last call (the queue's counters are cumulative: the caller
    /// subtracts).
    pub fn take(&self) -> Counts {
        Counts {
            trace: std::mem::take(&mut *self.trace.lock().expect("lock")),
            dynamo: self.dynamo.take(),
            vapi: self.vapi.take(),
            app: self.front.take(),
            queue: queue_requests(&self.sys),
        }
    }

    /// Waits until the simulator has played the call out and the queue holds nothing.
    pub async fn wait_quiet(&self, call_id: &str) {
        let done = tokio::time::timeout(QUIET_TIMEOUT, self.sim.wait_call_finished(call_id)).await;
        assert_eq!(
            done,
            Ok(true),
            "the simulator did not finish call {call_id}"
        );
        let started = Instant::now();
        while self.sys.queue.depth() != Some((0, 0)) {
            assert!(
                started.elapsed() < QUIET_TIMEOUT,
                "the queue never drained: {:?}",
                self.sys.queue.depth()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Items left in each table, with DynamoDB's sizes: (count, largest, total bytes).
    pub fn stored(&self) -> BTreeMap<String, (usize, usize, usize)> {
        TABLES
            .iter()
            .map(|t| {
                let out = self
                    .db
                    .scan(dynoxide::actions::scan::ScanRequest {
                        table_name: (*t).to_owned(),
                        ..Default::default()
                    })
                    .expect("scan");
                let sizes: Vec<usize> = out
                    .items
                    .unwrap_or_default()
                    .iter()
                    .map(dynoxide::types::item_size)
                    .collect();
                let max = sizes.iter().copied().max().unwrap_or(0);
                ((*t).to_owned(), (sizes.len(), max, sizes.iter().sum()))
            })
            .collect()
    }

    pub async fn stop(self) {
        self.sys.stop().await;
        self.sim.shutdown().await;
        let _ = self.stop_db.send(());
        let _ = self.db_served.await;
        for p in [self.dynamo, self.vapi, self.front] {
            p.served.abort();
        }
    }
}

pub struct Counts {
    /// The requests in order: `<function> begins`, its DynamoDB and Vapi requests, `answers`.
    pub trace: Vec<String>,
    pub dynamo: Tally,
    pub vapi: Tally,
    pub app: Tally,
    pub queue: QueueRequests,
}

/// The queue's request counters, by value.
#[derive(Clone, Copy, Debug, Default)]
pub struct QueueRequests {
    pub sends: u64,
    pub receives: u64,
    pub deletes: u64,
    pub releases: u64,
}

pub fn queue_requests(sys: &System) -> QueueRequests {
    let q = sys.queue.requests();
    QueueRequests {
        sends: q.sends,
        receives: q.receives,
        deletes: q.deletes,
        releases: q.releases,
    }
}

impl QueueRequests {
    pub fn since(self, before: QueueRequests) -> QueueRequests {
        QueueRequests {
            sends: self.sends - before.sends,
            receives: self.receives - before.receives,
            deletes: self.deletes - before.deletes,
            releases: self.releases - before.releases,
        }
    }

    pub fn total(self) -> u64 {
        self.sends + self.receives + self.deletes + self.releases
    }
}
