//! One run: ringback's real services over its real DynamoDB adapters (embedded dynoxide, through
//! the SDK over loopback), every port behind a fault injector, Vapi and SQS as models, all in
//! virtual time. Events (a client's request, a webhook, a queue message coming due, the cleanup's
//! schedule) start tasks; tasks due at the same instant run concurrently, interleaved at their
//! port calls by the seeded generator, which also decides every fault.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringback::adapters::dynamodb::{
    ensure_events_table, ensure_tables, CallsTable, EventsTable, ProvidersAndLogs,
};
use ringback::config::{DeploymentId, Timing};
use ringback::domain::push::SigningSecret;
use ringback::metrics::Metrics;
use ringback::service::cleanup::{CleanupService, Reconcile};
use ringback::service::enrichment::EnrichmentService;
use ringback::service::initiate::InitiatorService;
use ringback::service::push::PushService;
use ringback::service::status::StatusService;
use ringback::service::webhook::WebhookService;
use ringback::vapi::{CallSettings, WebhookAuth};
use tokio::sync::mpsc;

use crate::actors::Watch;
use crate::bus::BusModel;
use crate::clients::Client;
use crate::clock::{Ms, SimClock, MINUTE, SECOND};
use crate::inject::{FaultyEvents, FaultySink, FaultyStore};
use crate::receiver::ReceiverModel;
use crate::rng::Rng;
use crate::sched::{Fault, Gates, Msg, Op, TaskId, TASK, TURN};
use crate::sqs::{QueuePort, Sqs};
use crate::trace::Trace;
use crate::vapi::{Hook, VapiModel, Weather};

pub const SECRET: &str = "sim-webhook-secret";
pub const TOKEN: &str = "sim-api-token";
pub const PHONE_NUMBER_ID: &str = "pn-ringback";
/// This deployment's identity (`DEPLOYMENT_ID`); the other one is `vapi::OTHER_DEPLOYMENT`.
pub const DEPLOYMENT_ID: &str = "ringback-sim-stack";
pub const TABLES: (&str, &str, &str) = ("calls", "providers", "logs");
pub const EVENTS_TABLE: &str = "events";
/// The call index (`CALL_INDEX_TABLE`): every call's listing summary.
pub const INDEX_TABLE: &str = "call-index";
/// Signs pushed events (Standard Webhooks' own example secret).
pub const CALLBACK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// Pushes retry quickly enough to end within a run, slowly enough to outlast most outages.
const CALLBACK_RETRY_DELAYS: [u64; 6] = [5, 30, 120, 600, 1800, 3600];
/// The deployed schedule of the cleanup (template.yaml: rate(5 minutes)).
pub const CLEANUP_EVERY: Ms = 5 * MINUTE;
/// `in_doubt_after` as deployed (wiring.rs).
pub const IN_DOUBT_AFTER: Ms = 30 * SECOND;

/// Something that happens at an instant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Event {
    /// Client `n` sends its call request (first time or again).
    Request(usize),
    /// The watcher polls a call the way a client does.
    Poll(String),
    /// Vapi sends a webhook.
    Hook(Hook),
    /// The event source mapping receives what is visible on the queue.
    Receive,
    Cleanup,
    /// Lambda retrying a failed asynchronous invocation of the cleanup (try 2 or 3).
    CleanupRetry(u32),
    /// An operator redrives the dead-letter queue.
    Redrive,
    /// The storm is over (an outage ended): an operator (or an alarm's message-move task)
    /// redrives the enrichment dead-letter queue at once, while the failed workers' claims may
    /// still run. Each redriven job must then finish its call within one enrichment delay plus
    /// one visibility timeout.
    Recovered,
    /// A call is placed outside ringback; only its webhooks tell ringback.
    Elsewhere,
    /// Another deployment places this many calls on ringback's own number, in one millisecond.
    Foreign(usize),
    /// Bad input of kind `n`, which must never get a 5xx.
    BadInput(u32),
    /// An operator replays a settled call (`POST /calls/{id}/replay`).
    Replay(String),
    /// An operator redelivers a call's pushed events (`POST /callbacks/{eventId}/redeliver`).
    Redeliver(String),
    /// An operator erases a call (`DELETE /calls/{id}`, with `?vapi=true` or not), at any point
    /// of its life; tried again until it answers 200 (the `u32` counts its 404s).
    Erase(String, u32),
    /// An operator reads `GET /stats`, storm or not.
    Stats,
}

pub type TaskFuture = Pin<Box<dyn Future<Output = TaskOut> + Send>>;

/// What a task came to.
#[derive(Debug)]
pub enum TaskOut {
    Http(http::StatusCode, http::HeaderMap, serde_json::Value),
    /// An enrichment message handled; `failed`: reported as a batch item failure.
    Message {
        failed: bool,
    },
    Done,
    /// It returned an error.
    Failed,
    /// Its process died (the future was dropped at an await point).
    Crashed,
}

/// How unkind a run is: faults at the ports until `storm_end`, and Vapi's weather throughout.
#[derive(Debug, Clone, Copy)]
pub struct Storm {
    pub fault_rate: f64,
    pub storm_end: Ms,
    pub duplicate_delivery: f64,
    pub late_send: Ms,
    /// A window in which every call to one dependency fails (an outage, not a blip): long
    /// enough to dead-letter messages and exhaust Vapi's webhook retries.
    pub outage: Option<(Ms, Ms, Outage)>,
    /// The outage hangs instead of failing: a call to it never answers, and the function's
    /// timeout kills the worker (its claim then stays live for the lease).
    pub outage_kills: bool,
    /// A Vapi outage that ends the moment the first enrichment job is dead-lettered, and the
    /// storm with it: the operator's redrive then meets the failed worker's claim.
    pub recover_at_dead_letter: bool,
    /// The enrichment queue's visibility timeout: the template's 180 s, or a short one as the
    /// local runner has.
    pub visibility: Ms,
    /// The claim lease capped to the visibility timeout, as the local runner does; otherwise the
    /// default 60 s, which outlives a short visibility (a deployment whose queue was changed
    /// under it): then only a released claim or a deferred job gets a redrive through soon.
    pub lease_capped: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    Vapi,
    Store,
    Queue,
    Bus,
}

impl Outage {
    fn hits(self, op: Op) -> bool {
        match self {
            Outage::Vapi => op.is_vapi(),
            Outage::Queue => op == Op::QueueSend,
            Outage::Bus => op == Op::BusPublish,
            Outage::Store => {
                !op.is_vapi()
                    && !matches!(
                        op,
                        Op::QueueSend | Op::Dying | Op::CallbackPost | Op::BusPublish
                    )
            }
        }
    }
}

pub struct Services {
    pub webhook: WebhookService,
    pub initiator: InitiatorService,
    pub status: StatusService,
    pub enrichment: EnrichmentService,
    pub cleanup: CleanupService,
    pub replay: ringback::service::replay::ReplayService,
    pub redeliver: ringback::service::redeliver::Redelivery,
    pub events: Arc<dyn ringback::ports::PushStore>,
    pub erase: Arc<ringback::service::erase::EraseService>,
    pub stats: ringback::stats::StatsService,
}

pub struct World {
    pub rng: Rng,
    pub clock: Arc<SimClock>,
    pub trace: Trace,
    pub storm: Storm,
    pub events: BTreeMap<(Ms, u64), Event>,
    seq: u64,
    pub services: Arc<Services>,
    pub vapi: Arc<VapiModel>,
    pub receiver: Arc<ReceiverModel>,
    /// The deployment's event bus, in the runs that have one.
    pub bus: Option<Arc<BusModel>>,
    /// Every record state that landed: what events may carry.
    pub committed: Arc<Mutex<crate::inject::Committed>>,
    pub sqs: Arc<Mutex<Sqs>>,
    /// The push queue: delivery jobs, consumed by an event source of their own.
    pub push_sqs: Arc<Mutex<Sqs>>,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub clients: Vec<Client>,
    pub watch: Watch,
    /// Faults by port call and kind.
    pub faults: BTreeMap<(Op, Fault), u32>,
    /// Tasks started, and of them the ones whose process died.
    pub tasks: u64,
    pub crashes: u64,
    /// Operator actions started: replays, redeliveries.
    pub operated: (u64, u64),
    /// Calls the watcher saw vanish before they settled (their record expired): each must be
    /// revived and settle.
    pub expired: u64,
    /// Deliveries Vapi made with a body over the webhook's `MAX_WEBHOOK_BYTES` (call id, kind):
    /// their 413 is the documented answer, and the enrichment gets the data from `GET /call`.
    pub oversized: BTreeSet<(String, String)>,
    /// Enrichment and watchdog jobs redriven at recovery: (call id, when).
    pub recovery_redrives: Vec<(String, Ms)>,
    pub violations: Vec<String>,
    /// Erased calls: when the erase first answered 200.
    pub erased: BTreeMap<String, Ms>,
    /// Every pushed event a push job read (call, event, when).
    pub event_reads: Arc<Mutex<Vec<(String, String, Ms)>>>,
    /// When the event source mapping next receives (a `Receive` event is then due).
    pub receive_due: Option<Ms>,
    /// The run goes on at least until then: two cleanup runs after the last call another
    /// deployment placed became old enough to be listed.
    pub foreign_until: Ms,
    pub next_batch: u64,
    /// Per batch, each message's outcome (`None`: its process died).
    pub batch_results: BTreeMap<u64, Vec<(String, Option<bool>)>>,
    /// Per batch, the queue it came from.
    pub batch_queue: BTreeMap<u64, Arc<Mutex<Sqs>>>,
    rx: mpsc::UnboundedReceiver<Msg>,
    next_task: TaskId,
    _db: tokio::task::JoinHandle<()>,
}

fn dynamo_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    let conf = aws_sdk_dynamodb::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .http_client(ringback::adapters::https_client())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("sim", "sim", None, None, "faultsim"))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

impl World {
    pub async fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let clock = Arc::new(SimClock::new());
        let trace = Trace::new(clock.clone());

        let db = dynoxide::Database::memory().expect("in-memory dynoxide");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let endpoint = format!("http://{}", listener.local_addr().expect("an address"));
        let server = tokio::spawn(dynoxide::server::serve_on(listener, db));
        let dynamo = dynamo_client(&endpoint);
        let (calls, providers, logs) = TABLES;
        ensure_tables(&dynamo, calls, providers, logs)
            .await
            .expect("tables created");
        ringback::adapters::dynamodb::ensure_call_index_table(&dynamo, INDEX_TABLE)
            .await
            .expect("call index table created");
        ensure_events_table(&dynamo, EVENTS_TABLE)
            .await
            .expect("events table created");

        // A fifth of the runs are calm; the others storm at one of three strengths.
        let fault_rate = *rng.pick(&[0.0, 0.02, 0.05, 0.10, 0.10]);
        let stormy = fault_rate > 0.0;
        // Half the deployments also publish to an event bus: every settle then owes an event.
        let has_bus = rng.chance(0.5);
        let outage = (stormy && rng.chance(0.5)).then(|| {
            let from = rng.secs(0, 600);
            let mut menu = vec![Outage::Vapi, Outage::Store, Outage::Queue];
            if has_bus {
                menu.push(Outage::Bus);
            }
            let what = *rng.pick(&menu);
            // A store or bus outage stays shorter than the records' TTL (30 min) less the quiet
            // time before a write: a longer one lets records expire unfinished (they are then
            // rebuilt from Vapi, or their event is lost with them). Vapi and the queue may be
            // out longer: long enough to dead-letter.
            let longest = if matches!(what, Outage::Store | Outage::Bus) {
                900
            } else {
                2400
            };
            (from, from + rng.secs(300, longest), what)
        });
        let storm = Storm {
            fault_rate,
            storm_end: if stormy {
                outage.map_or(20 * MINUTE, |(_, to, _)| to.max(20 * MINUTE))
            } else {
                0
            },
            duplicate_delivery: if stormy { 0.1 } else { 0.0 },
            late_send: if stormy { rng.secs(0, 60) } else { 0 },
            outage,
            outage_kills: rng.chance(0.5),
            recover_at_dead_letter: rng.chance(0.5),
            visibility: *rng.pick(&[180 * SECOND, 20 * SECOND]),
            lease_capped: rng.chance(0.5),
        };
        let weather = if stormy {
            Weather {
                // Some runs lose most webhooks: the watchdog and the cleanup must find the calls.
                drop: *rng.pick(&[0.05, 0.15, 0.6]),
                duplicate: 0.15,
                late: 0.1,
                slow_analysis: 0.2,
                awkward: 0.15,
                big: 0.08,
                oldest_first: false,
            }
        } else {
            Weather {
                awkward: 0.05,
                big: 0.03,
                ..Weather::default()
            }
        };
        let weather = Weather {
            oldest_first: rng.chance(0.5),
            ..weather
        };
        // Vapi's largest page, or a small one so that bursts of calls in one millisecond
        // overflow it.
        let list_page = *rng.pick(&[100, 1000]);

        let (tx, rx) = mpsc::unbounded_channel();
        let gates = Gates {
            tx,
            order: Arc::new(std::sync::Mutex::new(Rng::new(rng.next_u64()))),
        };
        let ttl = Duration::from_secs(1800);
        let table = Arc::new(
            CallsTable::new(dynamo.clone(), calls.into(), ttl, clock.clone())
                .with_index(INDEX_TABLE.into()),
        );
        let faulty = FaultyStore {
            inner: table.clone(),
            gates: gates.clone(),
            committed: Default::default(),
        };
        let committed = faulty.committed.clone();
        // The reconciliation's cursor items live in the calls table, behind the same faults.
        let cursors = Arc::new(FaultyStore {
            inner: table,
            gates: gates.clone(),
            committed: committed.clone(),
        });
        // As deployed: each record write carries its listing summary when that changes.
        let index =
            ringback::adapters::dynamodb::CallIndexTable::new(dynamo.clone(), INDEX_TABLE.into());
        let store = Arc::new(ringback::search::IndexedCalls::new(
            faulty,
            Some(Arc::new(index) as Arc<dyn ringback::search::CallIndex>),
        ));
        let sink = Arc::new(FaultySink {
            inner: ProvidersAndLogs::new(
                dynamo.clone(),
                providers.into(),
                logs.into(),
                clock.clone(),
            ),
            gates: gates.clone(),
        });
        let sqs = Arc::new(Mutex::new(Sqs::new()));
        sqs.lock().unwrap().jitter = storm.late_send;
        sqs.lock().unwrap().visibility = storm.visibility;
        let queue = Arc::new(QueuePort {
            sqs: sqs.clone(),
            gates: gates.clone(),
            clock: clock.clone(),
            trace: trace.clone(),
        });
        // Push jobs ride a queue of their own (template.yaml `PushQueue`), behind the same faults.
        let push_sqs = Arc::new(Mutex::new(Sqs::named("p")));
        push_sqs.lock().unwrap().jitter = storm.late_send;
        let push_queue = Arc::new(QueuePort {
            sqs: push_sqs.clone(),
            gates: gates.clone(),
            clock: clock.clone(),
            trace: trace.clone(),
        });
        let vapi = Arc::new(VapiModel::new(
            seed,
            weather,
            gates.clone(),
            clock.clone(),
            trace.clone(),
        ));
        let receiver = Arc::new(ReceiverModel {
            gates: gates.clone(),
            log: Mutex::new(Vec::new()),
            clock: clock.clone(),
        });
        let bus = has_bus.then(|| {
            Arc::new(BusModel {
                gates: gates.clone(),
                log: Mutex::new(Vec::new()),
            })
        });
        // Jitter from a counter: deterministic per seed, spread over [-1, 1].
        let jitter_seq = Arc::new(std::sync::atomic::AtomicU64::new(seed));
        let events = Arc::new(FaultyEvents {
            inner: EventsTable::new(
                dynamo.clone(),
                EVENTS_TABLE.into(),
                Duration::from_secs(7 * 86_400),
                clock.clone(),
            ),
            gates: gates.clone(),
            reads: Arc::default(),
            clock: clock.clone(),
        });
        let event_reads = events.reads.clone();
        let erase = Arc::new(ringback::service::erase::EraseService {
            store: store.clone(),
            index: Some(Arc::new(crate::inject::FaultyIndex {
                inner: ringback::adapters::dynamodb::CallIndexTable::new(
                    dynamo.clone(),
                    INDEX_TABLE.into(),
                ),
                gates: gates.clone(),
            })),
            archive: Some(events.clone()),
            sink: sink.clone(),
            vapi: vapi.clone(),
            clock: clock.clone(),
            metrics: Metrics::off(),
            lifetime: ringback::domain::erase::tombstone_lifetime(
                Duration::from_secs(7 * 86_400),
                ttl,
            ),
            placing: Duration::from_millis(IN_DOUBT_AFTER as u64),
            // The key's lifetime in a deployment; here the longest any client keeps retrying (its
            // give-up bound past the storm), so Vapi's copy is deleted in these runs too.
            vapi_after: Duration::from_millis(
                (storm.storm_end + crate::check::LEARN_BOUND + crate::clients::GIVE_UP_AFTER)
                    as u64,
            ),
        });
        let push = Arc::new(PushService {
            store: events.clone(),
            queue: push_queue.clone(),
            sender: receiver.clone(),
            secret: Some(SigningSecret::parse(CALLBACK_SECRET).expect("a valid secret")),
            bus: bus.clone().map(|b| b as Arc<dyn ringback::ports::EventBus>),
            clock: clock.clone(),
            retry_delays: CALLBACK_RETRY_DELAYS.map(Duration::from_secs).to_vec(),
            hosts: ringback::domain::callback_host::CallbackHosts::Deployment,
            jitter: Arc::new(move || {
                let n = jitter_seq
                    .fetch_add(0x9e37_79b9_7f4a_7c15, std::sync::atomic::Ordering::Relaxed);
                (n % 2001) as f64 / 1000.0 - 1.0
            }),
            metrics: Metrics::off(),
        });
        let timing = if storm.lease_capped {
            Timing::default().cap_claim_lease(Duration::from_millis(storm.visibility as u64))
        } else {
            Timing::default()
        };
        let services = Arc::new(Services {
            webhook: WebhookService {
                store: store.clone(),
                queue: queue.clone(),
                clock: clock.clone(),
                auth: WebhookAuth::new([SECRET.to_owned()], "x-vapi-signature"),
                max_bytes: 1 << 20,
                timing: timing.clone(),
                metrics: Metrics::off(),
                archive: Some(events.clone()),
            },
            initiator: InitiatorService {
                store: store.clone(),
                idempotency: store.clone(),
                queue: queue.clone(),
                vapi: vapi.clone(),
                clock: clock.clone(),
                settings: CallSettings {
                    phone_number_id: PHONE_NUMBER_ID.into(),
                    assistant_id: None,
                    webhook_url: "https://ringback.example.com/api/v1/vapi/webhook".into(),
                    webhook_secret: Some(SECRET.into()),
                    deployment_id: DeploymentId::parse(DEPLOYMENT_ID).expect("a valid id"),
                },
                timing: timing.clone(),
                // A repeat answers at once: the clients retry in virtual time instead.
                idempotency_wait: Duration::ZERO,
                in_doubt_after: Duration::from_millis(IN_DOUBT_AFTER as u64),
                metrics: Metrics::off(),
                callbacks: ringback::service::initiate::Callbacks::On {
                    hosts: ringback::domain::callback_host::CallbackHosts::Deployment,
                },
            },
            status: StatusService {
                store: store.clone(),
            },
            enrichment: EnrichmentService {
                store: store.clone(),
                queue: queue.clone(),
                vapi: vapi.clone(),
                sink: sink.clone(),
                clock: clock.clone(),
                timing: timing.clone(),
                poison: None,
                push: Some(push.clone()),
                metrics: Metrics::off(),
            },
            cleanup: CleanupService {
                revive: Some(ringback::service::cleanup::Revive {
                    index: Arc::new(crate::inject::FaultyIndex {
                        inner: ringback::adapters::dynamodb::CallIndexTable::new(
                            dynamo.clone(),
                            INDEX_TABLE.into(),
                        ),
                        gates: gates.clone(),
                    }),
                    ttl,
                }),
                reconcile: Some(Reconcile {
                    page: list_page,
                    ..Reconcile::new(
                        vapi.clone(),
                        PHONE_NUMBER_ID,
                        DeploymentId::parse(DEPLOYMENT_ID).expect("a valid id"),
                        ttl,
                        cursors,
                    )
                }),
                store: store.clone(),
                queue: queue.clone(),
                sink,
                clock: clock.clone(),
                timing: timing.clone(),
                page_size: 100,
                metrics: Metrics::off(),
                push: Some(push.clone()),
                erase: Some(erase.clone()),
            },
            stats: ringback::stats::StatsService {
                index: Arc::new(crate::inject::FaultyIndex {
                    inner: ringback::adapters::dynamodb::CallIndexTable::new(
                        dynamo.clone(),
                        INDEX_TABLE.into(),
                    ),
                    gates: gates.clone(),
                }),
                store: store.clone(),
                pushes: Some(events.clone()),
                queues: Some(Arc::new(crate::sqs::QueueGaugePort {
                    sqs: sqs.clone(),
                    gates: gates.clone(),
                    clock: clock.clone(),
                })),
                clock: clock.clone(),
            },
            erase,
            replay: ringback::service::replay::ReplayService {
                store: store.clone(),
                archive: events.clone(),
                queue: queue.clone(),
                clock: clock.clone(),
                timing: timing.clone(),
            },
            redeliver: ringback::service::redeliver::Redelivery {
                store: events.clone(),
                queue: push_queue.clone(),
                clock: clock.clone(),
            },
            events: events.clone(),
        });

        let mut world = World {
            rng,
            clock,
            trace,
            storm,
            events: BTreeMap::new(),
            seq: 0,
            services,
            vapi,
            receiver,
            bus,
            committed,
            sqs,
            push_sqs,
            dynamo,
            clients: Vec::new(),
            watch: Watch::default(),
            faults: BTreeMap::new(),
            tasks: 0,
            crashes: 0,
            operated: (0, 0),
            expired: 0,
            oversized: BTreeSet::new(),
            recovery_redrives: Vec::new(),
            violations: Vec::new(),
            erased: BTreeMap::new(),
            event_reads,
            receive_due: None,
            foreign_until: 0,
            next_batch: 0,
            batch_results: BTreeMap::new(),
            batch_queue: BTreeMap::new(),
            rx,
            next_task: 1,
            _db: server,
        };
        world.cast();
        world
    }

    /// Who does what when: clients and their requests, calls placed elsewhere, bad input, and
    /// the cleanup's schedule.
    fn cast(&mut self) {
        let providers = [self.rng.uuid(), self.rng.uuid()];
        let n = self.rng.range(1, 4) as usize;
        for i in 0..n {
            let at = self.rng.range(0, 600) as Ms * SECOND;
            let provider = self.rng.pick(&providers).clone();
            let client = Client::new(i, &mut self.rng, provider);
            self.trace.note(format!(
                "cast: client {i} ({}) sends at {:.0}s",
                client.name,
                at as f64 / 1000.0
            ));
            self.clients.push(client);
            self.at(at, Event::Request(i));
        }
        self.watch.providers = providers.to_vec();
        if self.rng.chance(0.3) {
            let at = self.rng.range(0, 600) as Ms * SECOND;
            self.at(at, Event::Elsewhere);
        }
        if self.rng.chance(0.5) {
            // Another deployment shares the number: bursts of calls, one large burst (more
            // than a small page of calls created in one millisecond).
            for burst in 0..self.rng.range(2, 15) {
                let at = self.rng.range(0, 900) as Ms * SECOND + self.rng.below(1000) as Ms;
                let n = if burst == 0 {
                    self.rng.range(150, 400)
                } else {
                    self.rng.range(1, 40)
                };
                self.at(at, Event::Foreign(n as usize));
                self.foreign_until = self.foreign_until.max(at + MINUTE + 2 * CLEANUP_EVERY);
            }
        }
        for _ in 0..self.rng.range(0, 3) {
            let at = self.rng.range(0, 900) as Ms * SECOND;
            let kind = self.rng.below(crate::clients::BAD_INPUTS) as u32;
            self.at(at, Event::BadInput(kind));
        }
        self.at(CLEANUP_EVERY, Event::Cleanup);
        if self.storm.storm_end > 0 {
            let at = self.storm.storm_end + self.rng.secs(0, 10);
            self.at(at, Event::Recovered);
            self.at(self.storm.storm_end + 30 * MINUTE, Event::Redrive);
        }
    }

    pub fn at(&mut self, t: Ms, e: Event) {
        self.seq += 1;
        self.events.insert((t.max(self.clock.ms()), self.seq), e);
    }

    pub fn storming(&self) -> bool {
        self.clock.ms() < self.storm.storm_end
    }

    /// The fault a port call meets: none once the storm is over.
    fn decide(&mut self, op: Op) -> Option<Fault> {
        let now = self.clock.ms();
        if let Some((from, to, what)) = self.storm.outage {
            if (from..to).contains(&now) && what.hits(op) {
                let hangs = self.storm.outage_kills && what == Outage::Vapi;
                return Some(if hangs {
                    Fault::Crash
                } else {
                    Fault::FailBefore
                });
            }
        }
        if op == Op::Dying || !self.storming() || !self.rng.chance(self.storm.fault_rate) {
            return None;
        }
        use Fault::*;
        let mut menu: Vec<Fault> = vec![FailBefore, Crash, Slow];
        if op.writes() {
            menu.extend([LoseAnswer, LandCrash]);
        }
        if op.conditional() {
            menu.push(LandConflict);
        }
        if op.is_vapi() {
            menu.extend([RateLimited, Unreachable, LoseAnswer]);
        }
        if op == Op::CallbackPost {
            menu.extend([RateLimited, Unreachable]);
        }
        Some(*self.rng.pick(&menu))
    }

    /// Runs tasks to their end, one at a time between port calls, in the order and with the
    /// faults the generator picks. Returns each task's outcome and the faults it met.
    pub async fn run_tasks<K>(&mut self, specs: Vec<(K, TaskFuture)>) -> Vec<(K, TaskOut, u32)> {
        let mut handles = BTreeMap::new();
        let mut kinds = BTreeMap::new();
        let mut met: BTreeMap<TaskId, u32> = BTreeMap::new();
        for (kind, fut) in specs {
            let id = self.next_task;
            self.next_task += 1;
            self.tasks += 1;
            let tx = self.vapi.gates.tx.clone();
            handles.insert(
                id,
                tokio::spawn(TASK.scope(
                    id,
                    TURN.scope(Arc::new(tokio::sync::Mutex::new(())), async move {
                        let out = fut.await;
                        let _ = tx.send(Msg::Done);
                        out
                    }),
                )),
            );
            kinds.insert(id, kind);
        }
        let mut running = handles.len();
        let mut parked = Vec::new();
        let mut crashed = BTreeSet::new();
        loop {
            while running > 0 {
                match self.rx.recv().await.expect("the world holds a sender") {
                    Msg::Parked { task, op, reply } => parked.push((task, op, reply)),
                    Msg::Done => {}
                }
                running -= 1;
            }
            if parked.is_empty() {
                break;
            }
            let (task, op, reply) =
                parked.swap_remove(self.rng.below(parked.len() as u64) as usize);
            let fault = self.decide(op);
            if op == Op::Dying || fault == Some(Fault::Crash) {
                if let Some(f) = fault {
                    *self.faults.entry((op, f)).or_default() += 1;
                    *met.entry(task).or_default() += 1;
                }
                self.trace.note(format!("task {task} dies at {op:?}"));
                handles[&task].abort();
                crashed.insert(task);
                continue;
            }
            if let Some(f) = fault {
                *self.faults.entry((op, f)).or_default() += 1;
                *met.entry(task).or_default() += 1;
                self.trace.note(format!("task {task}: {op:?} meets {f:?}"));
                if f == Fault::Slow {
                    let to = self.clock.ms() + self.rng.range(1, 20) as Ms * SECOND;
                    self.clock.advance_to(to);
                }
            }
            let _ = reply.send(fault);
            running += 1;
        }
        let mut out = Vec::new();
        for (id, handle) in handles {
            let kind = kinds.remove(&id).expect("a kind per task");
            let result = if crashed.contains(&id) {
                self.crashes += 1;
                let _ = handle.await;
                TaskOut::Crashed
            } else {
                handle.await.unwrap_or(TaskOut::Crashed)
            };
            out.push((kind, result, met.get(&id).copied().unwrap_or(0)));
        }
        out
    }
}
