//! Finding calls (`ringback::search`) against a real-protocol DynamoDB (dynoxide): the summaries
//! written beside the records, every filter paged to the end, time bounds, what a failed or lost
//! write leaves, and the HTTP answers for bad parameters.

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use http::{HeaderMap, HeaderValue, StatusCode};
use ringback::adapters::dynamodb::{summary_version, CallIndexTable, CallsTable};
use ringback::api;
use ringback::config::ApiAuth;
use ringback::domain::{CallRecord, DataStatus, Outcome};
use ringback::ports::{CallStore, StoreError};
use ringback::search::{
    CallIndex, CallSummary, Cursor, Filter, IndexedCalls, SearchQuery, SearchService,
};
use serde_json::Value;
use support::ManualClock;

const TTL: Duration = Duration::from_secs(1800);
const TOKEN: &str = "test-token";

struct Rig {
    client: Client,
    calls: String,
    index_table: String,
    index: Arc<CallIndexTable>,
    clock: Arc<ManualClock>,
    _db: support::DynamoGuard,
}

impl Rig {
    async fn start() -> Self {
        let (client, db) = support::dynamo().await;
        let t = support::tables(&client).await;
        let index_table = support::call_index_table(&client).await;
        Self {
            index: Arc::new(CallIndexTable::new(client.clone(), index_table.clone())),
            clock: ManualClock::at("2026-12-02T10:00:00Z"),
            client,
            calls: t.calls,
            index_table,
            _db: db,
        }
    }

    /// A store as one process (one Lambda) has it: its own memory of what it read.
    fn store(&self) -> IndexedCalls<CallsTable> {
        IndexedCalls::new(self.table(), Some(self.index.clone() as Arc<dyn CallIndex>))
    }

    fn table(&self) -> CallsTable {
        CallsTable::new(
            self.client.clone(),
            self.calls.clone(),
            TTL,
            self.clock.clone(),
        )
        .with_index(self.index_table.clone())
    }

    async fn version(&self, id: &str) -> Option<u64> {
        summary_version(&self.client, &self.index_table, id)
            .await
            .expect("GetItem")
    }

    /// Every page of a query, in order, as ids; fails on a repeated call.
    async fn all_pages(&self, mut q: SearchQuery) -> (Vec<String>, usize) {
        let mut ids = Vec::new();
        let mut pages = 0;
        loop {
            let page = self.index.search(&q).await.expect("a page");
            pages += 1;
            assert!(page.calls.len() <= q.limit as usize);
            ids.extend(page.calls.into_iter().map(|c| c.call_id));
            match page.next {
                // Through its text form, as a client holds it.
                Some(c) => {
                    q.cursor = Some(Cursor::decode(&c.encode(&q.filter), &q.filter).unwrap())
                }
                None => break,
            }
            assert!(pages < 1000, "the cursor does not advance");
        }
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "a call listed twice: {ids:?}");
        (ids, pages)
    }
}

fn record(id: &str, created: &str) -> CallRecord {
    let mut r = CallRecord::new(id, created);
    r.result.provider.name = Some(format!("Provider of {id}"));
    r.result.provider.phone = Some("+14155550123".into());
    r
}

fn query(filter: Filter, limit: u32) -> SearchQuery {
    SearchQuery {
        filter,
        limit,
        ..SearchQuery::default()
    }
}

#[tokio::test]
async fn every_filter_pages_through_its_calls_newest_first_each_once() {
    let rig = Rig::start().await;
    let store = rig.store();
    // 60 calls over 30 instants, two per instant (ties broken by id), in a shuffled write order;
    // every third for service request A, every fourth for provider P, settled in turn.
    let mut expected: Vec<(String, String, usize)> = Vec::new();
    for i in (0..60usize).map(|i| (i * 37) % 60) {
        let created = format!("2026-12-02T10:{:02}:00.000Z", i / 2);
        let id = format!("call-{i:02}");
        let mut r = record(&id, &created);
        if i % 3 == 0 {
            r.result.service_request_id = Some("sr-A".into());
        }
        if i % 4 == 0 {
            r.result.provider_id = Some("prov-P".into());
        }
        let v = store.put(&r, None, None).await.expect("create");
        match i % 5 {
            0 => {
                r.result.data_status = DataStatus::Complete;
                r.result.status = Some(Outcome::Completed);
            }
            1 => {
                r.result.data_status = DataStatus::FetchFailed;
                r.result.status = Some(Outcome::NoAnswer);
            }
            2 => r.result.data_status = DataStatus::Partial,
            _ => {}
        }
        store.put(&r, Some(v), None).await.expect("update");
        expected.push((created, id, i));
    }
    expected.sort_by(|a, b| (&b.0, &b.1).cmp(&(&a.0, &a.1)));
    let ids_where = |keep: &dyn Fn(usize) -> bool| -> Vec<String> {
        expected
            .iter()
            .filter(|(_, _, i)| keep(*i))
            .map(|(_, id, _)| id.clone())
            .collect()
    };

    let cases: Vec<(Filter, Vec<String>)> = vec![
        (Filter::All, ids_where(&|_| true)),
        (
            Filter::ServiceRequest("sr-A".into()),
            ids_where(&|i| i % 3 == 0),
        ),
        (
            Filter::Provider("prov-P".into()),
            ids_where(&|i| i % 4 == 0),
        ),
        (
            Filter::DataStatus(DataStatus::Complete),
            ids_where(&|i| i % 5 == 0),
        ),
        (
            Filter::DataStatus(DataStatus::Pending),
            ids_where(&|i| i % 5 >= 3),
        ),
        (
            Filter::Outcome(Outcome::NoAnswer),
            ids_where(&|i| i % 5 == 1),
        ),
        (Filter::Outcome(Outcome::Voicemail), vec![]),
        (Filter::ServiceRequest("sr-unknown".into()), vec![]),
    ];
    for (filter, want) in cases {
        for limit in [1, 7, 100] {
            let (got, pages) = rig.all_pages(query(filter.clone(), limit)).await;
            assert_eq!(got, want, "{filter:?}, pages of {limit}");
            assert!(
                pages <= want.len() / limit as usize + 1,
                "{filter:?}: {pages} pages of {limit} for {} calls",
                want.len()
            );
        }
    }

    // A summary shows what the record says, without phone numbers.
    let page = rig
        .index
        .search(&query(Filter::ServiceRequest("sr-A".into()), 1))
        .await
        .unwrap();
    let newest = &page.calls[0];
    assert_eq!(newest.call_id, "call-57");
    assert_eq!(newest.created_at, "2026-12-02T10:28:00.000Z");
    assert_eq!(newest.provider_name.as_deref(), Some("Provider of call-57"));
    assert_eq!(newest.data_status, DataStatus::Partial);
    let json = serde_json::to_string(newest).unwrap();
    assert!(!json.contains("+1415"), "{json}");
}

#[tokio::test]
async fn since_and_until_bound_created_at_inclusively() {
    let rig = Rig::start().await;
    let store = rig.store();
    for minute in 0..10 {
        let created = format!("2026-12-02T10:{minute:02}:00.000Z");
        store
            .put(&record(&format!("m{minute}"), &created), None, None)
            .await
            .unwrap();
    }
    let q = SearchQuery::parse([
        ("since", "2026-12-02T10:03:00Z"),
        ("until", "2026-12-02T11:05:00+01:00"),
        ("limit", "2"),
    ])
    .unwrap();
    let (ids, _) = rig.all_pages(q).await;
    assert_eq!(ids, ["m5", "m4", "m3"]);
    let q = SearchQuery::parse([("until", "2026-12-01")]).unwrap();
    assert_eq!(rig.all_pages(q).await.0, Vec::<String>::new());
    let q = SearchQuery::parse([("since", "2026-12-02T10:09:00.001Z")]).unwrap();
    assert_eq!(rig.all_pages(q).await.0, Vec::<String>::new());
}

#[tokio::test]
async fn the_summary_is_written_only_when_a_searchable_field_changes() {
    let rig = Rig::start().await;
    let store = rig.store();
    let mut r = record("c1", "2026-12-02T10:00:00.000Z");
    let v1 = store.put(&r, None, None).await.unwrap();
    assert_eq!(rig.version("c1").await, Some(1));

    // The transcript and callStatus are not searchable: no summary write.
    let got = store.get("c1").await.unwrap().unwrap();
    r.result.transcript = Some("AI: hello".into());
    let v2 = store.put(&r, Some(got.version), None).await.unwrap();
    assert_eq!((v1, v2), (1, 2));
    assert_eq!(
        rig.version("c1").await,
        Some(1),
        "an unchanged summary is not rewritten"
    );

    // A status change is; another process (no memory of the record) always writes.
    r.result.data_status = DataStatus::Partial;
    let v3 = store.put(&r, Some(v2), None).await.unwrap();
    assert_eq!(rig.version("c1").await, Some(v3));
    let other = rig.store();
    r.result.fetch_attempts = 1;
    let v4 = other.put(&r, Some(v3), None).await.unwrap();
    assert_eq!(rig.version("c1").await, Some(v4));

    // A summary is never replaced by one written for an older version.
    let mut stale = CallSummary::of(&r.result);
    stale.data_status = DataStatus::Pending;
    rig.index.upsert(&stale, 2, false).await.unwrap();
    let page = rig
        .index
        .search(&query(Filter::DataStatus(DataStatus::Partial), 10))
        .await
        .unwrap();
    assert_eq!(page.calls.len(), 1);
    assert_eq!(rig.version("c1").await, Some(v4));
}

/// The calls table, with its next record write failing before it lands (a crash, an outage).
struct FailNextPut(AtomicBool);

#[async_trait]
impl support::Hooks for FailNextPut {
    async fn put(&self, _record: &CallRecord) -> Option<Result<u64, StoreError>> {
        self.0
            .swap(false, Ordering::SeqCst)
            .then(|| Err(StoreError::Unavailable("the process died here".into())))
    }
}

#[tokio::test]
async fn a_write_that_fails_changes_neither_the_record_nor_its_listing() {
    let rig = Rig::start().await;
    let store = IndexedCalls::new(
        support::Hooked::new(rig.table(), FailNextPut(AtomicBool::new(true))),
        Some(rig.index.clone() as Arc<dyn CallIndex>),
    );
    let mut r = record("c-crash", "2026-12-02T10:00:00.000Z");
    r.result.service_request_id = Some("sr-crash".into());
    let err = store.put(&r, None, None).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(store.get("c-crash").await.unwrap().is_none(), "no record");
    let by_sr = query(Filter::ServiceRequest("sr-crash".into()), 5);
    assert!(
        rig.all_pages(by_sr.clone()).await.0.is_empty(),
        "no listing"
    );

    // The retry (a webhook redelivered, a job re-driven) writes both in one request.
    let v = store.put(&r, None, None).await.unwrap();
    assert_eq!(rig.all_pages(by_sr.clone()).await.0, ["c-crash"]);
    r.result.data_status = DataStatus::Complete;
    r.result.status = Some(Outcome::Voicemail);
    store.fail_next_put();
    assert!(store.put(&r, Some(v), None).await.is_err());
    // Never ahead of its record: it says what the record says.
    let page = rig.index.search(&by_sr).await.unwrap();
    assert_eq!(page.calls[0].data_status, DataStatus::Pending);
    let got = store.get("c-crash").await.unwrap().unwrap();
    assert_eq!(got.record.result.data_status, DataStatus::Pending);
    r.result.data_status = DataStatus::FetchFailed;
    r.result.status = Some(Outcome::NoAnswer);
    store.put(&r, Some(got.version), None).await.unwrap();
    let page = rig.index.search(&by_sr).await.unwrap();
    assert_eq!(page.calls[0].data_status, DataStatus::FetchFailed);
    assert_eq!(page.calls[0].status, Some(Outcome::NoAnswer));
}

trait FailNext {
    fn fail_next_put(&self);
}

impl FailNext for IndexedCalls<support::Hooked<FailNextPut>> {
    fn fail_next_put(&self) {
        self.inner().hooks.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn the_loser_of_a_race_writes_no_summary() {
    let rig = Rig::start().await;
    let (a, b) = (rig.store(), rig.store());
    let r = record("c-race", "2026-12-02T10:00:00.000Z");
    a.put(&r, None, None).await.unwrap();
    let seen_a = a.get("c-race").await.unwrap().unwrap();
    let seen_b = b.get("c-race").await.unwrap().unwrap();
    // B wins with "complete"; A, which read the same version, then writes "fetching" and loses.
    let mut won = seen_b.record.clone();
    won.result.data_status = DataStatus::Complete;
    won.result.status = Some(Outcome::Completed);
    b.put(&won, Some(seen_b.version), None).await.unwrap();
    let mut lost = seen_a.record.clone();
    lost.result.data_status = DataStatus::Fetching;
    let err = a.put(&lost, Some(seen_a.version), None).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict));
    let complete = rig
        .index
        .search(&query(Filter::DataStatus(DataStatus::Complete), 5))
        .await
        .unwrap();
    assert_eq!(complete.calls.len(), 1, "the winner's summary stands");
    let fetching = rig
        .index
        .search(&query(Filter::DataStatus(DataStatus::Fetching), 5))
        .await
        .unwrap();
    assert!(fetching.calls.is_empty(), "{fetching:?}");
}

#[tokio::test]
async fn a_call_stays_findable_after_its_record_expires() {
    let rig = Rig::start().await;
    let store = rig.store();
    let mut r = record("c-old", "2026-12-02T10:00:00.000Z");
    r.result.service_request_id = Some("sr-old".into());
    store.put(&r, None, None).await.unwrap();
    rig.clock.advance(TTL + Duration::from_secs(1));
    assert!(
        store.get("c-old").await.unwrap().is_none(),
        "the record expired"
    );
    let (ids, _) = rig
        .all_pages(query(Filter::ServiceRequest("sr-old".into()), 20))
        .await;
    assert_eq!(ids, ["c-old"]);
}

/// The index's items as stored, for checks DynamoDB would make (dynoxide does not check the size of
/// an index's keys).
async fn stored_summary(
    rig: &Rig,
    id: &str,
) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    rig.client
        .get_item()
        .table_name(&rig.index_table)
        .key(
            "callId",
            aws_sdk_dynamodb::types::AttributeValue::S(id.into()),
        )
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem")
        .item
        .expect("the summary was written")
}

#[tokio::test]
async fn a_call_with_ids_of_any_size_is_written_and_listed() {
    let rig = Rig::start().await;
    let store = rig.store();
    // The longest call id ringback takes (256 characters), each a four-byte character: its sort
    // key (`{createdAt}#{id}`) is 1,049 bytes, past DynamoDB's 1,024 for a sort key.
    let long_id = "\u{1F4DE}".repeat(256);
    let mut r = record(&long_id, "2026-12-02T10:00:00.000Z");
    // Metadata Vapi hands back as it was given: index keys past what DynamoDB takes (2,048 bytes),
    // and a provider name that alone would pass an item's 400 KB.
    r.result.provider_id = Some("p".repeat(3000));
    r.result.service_request_id = Some("sr-long".into());
    r.result.provider.name = Some("n".repeat(500 * 1024));
    store
        .put(&r, None, None)
        .await
        .expect("the record and its summary are written");

    let item = stored_summary(&rig, &long_id).await;
    for (key, limit) in [
        ("sortKey", 1024),
        ("providerId", 2048),
        ("serviceRequestId", 2048),
    ] {
        if let Some(v) = item.get(key) {
            let len = v.as_s().unwrap().len();
            assert!(
                len <= limit,
                "{key} is {len} bytes, DynamoDB refuses over {limit}"
            );
        }
    }
    let (ids, _) = rig.all_pages(query(Filter::All, 20)).await;
    assert_eq!(ids, std::slice::from_ref(&long_id), "listed like any call");
    let (ids, _) = rig
        .all_pages(query(Filter::ServiceRequest("sr-long".into()), 20))
        .await;
    assert_eq!(
        ids,
        std::slice::from_ref(&long_id),
        "found by its service request"
    );
    let page = rig.index.search(&query(Filter::All, 20)).await.unwrap();
    let shown = &page.calls[0];
    assert!(shown.provider_id.as_deref().unwrap().starts_with("ppp"));
    assert!(shown.provider_name.as_deref().unwrap().len() < 8 * 1024);
    assert_eq!(
        store
            .get(&long_id)
            .await
            .unwrap()
            .unwrap()
            .record
            .result
            .provider_id,
        r.result.provider_id,
        "the record keeps it whole"
    );
}

fn auth_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap(),
    );
    h
}

async fn get(svc: Option<&SearchService>, headers: &HeaderMap, q: &str) -> (StatusCode, Value) {
    let auth = ApiAuth::Token(TOKEN.into());
    let resp = api::list_calls(svc, &auth, headers, Some(q)).await;
    let status = resp.status();
    let body: Value = serde_json::from_slice(resp.body()).expect("a JSON body");
    (status, body)
}

#[tokio::test]
async fn the_route_answers_bad_parameters_with_400_naming_them_and_pages_with_its_cursor() {
    let rig = Rig::start().await;
    let store = rig.store();
    for i in 0..5 {
        let mut r = record(&format!("h{i}"), &format!("2026-12-02T10:0{i}:00.000Z"));
        r.result.service_request_id = Some("sr h+1".into());
        store.put(&r, None, None).await.unwrap();
    }
    let svc = SearchService {
        index: rig.index.clone(),
    };
    let h = auth_headers();
    for (q, param) in [
        ("limit=0", "limit"),
        ("limit=1000", "limit"),
        ("limit=-1", "limit"),
        ("since=tomorrow", "since"),
        ("until=2026-02-30", "until"),
        ("status=finished", "status"),
        ("status=", "status"),
        ("serviceRequestId=a&providerId=b", "providerId"),
        ("serviceRequestId=a&serviceRequestId=b", "serviceRequestId"),
        ("order=asc", "order"),
        ("cursor=%FF%FE", "cursor"),
        ("cursor=djEuMDAwMDAwMDAueA", "cursor"),
        ("since=2026-12-03&until=2026-12-02", "since"),
    ] {
        let (status, body) = get(Some(&svc), &h, q).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {body}");
        assert_eq!(body["error"]["code"], "invalid_payload", "{q}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(param), "{q}: {message}");
    }

    // Paging over HTTP: form-encoded filter, each cursor handed back as it came.
    let mut seen = Vec::new();
    let mut q = "serviceRequestId=sr+h%2B1&limit=2".to_owned();
    loop {
        let (status, body) = get(Some(&svc), &h, &q).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["success"], true);
        for c in body["data"]["calls"].as_array().unwrap() {
            seen.push(c["callId"].as_str().unwrap().to_owned());
            assert!(c.get("providerPhone").is_none() && c.get("transcript").is_none());
        }
        let Some(cursor) = body["data"]["nextCursor"].as_str() else {
            break;
        };
        // A cursor from this listing, used for another, or altered: 400.
        let (status, _) = get(Some(&svc), &h, &format!("status=pending&cursor={cursor}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let mut altered = cursor.to_owned();
        altered.insert(3, 'x');
        let (status, _) = get(
            Some(&svc),
            &h,
            &format!("serviceRequestId=sr+h%2B1&cursor={altered}"),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        q = format!("serviceRequestId=sr+h%2B1&limit=2&cursor={cursor}");
    }
    assert_eq!(seen, ["h4", "h3", "h2", "h1", "h0"]);

    let (status, body) = get(Some(&svc), &HeaderMap::new(), "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = get(None, &h, "").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn calls_with_the_longest_multibyte_ids_page_through_their_cursors() {
    let rig = Rig::start().await;
    let store = rig.store();
    // The longest ids a call may have (256 characters), in 2- and 3-byte characters, and ASCII.
    let ids = ["é".repeat(256), "通".repeat(256), "a".repeat(256)];
    for (i, id) in ids.iter().enumerate() {
        let created = format!("2026-12-02T10:0{i}:00.000Z");
        store
            .put(&record(id, &created), None, None)
            .await
            .expect("written and indexed");
    }
    // One call a page: every page after the first starts from a cursor after a long id.
    let (listed, pages) = rig.all_pages(query(Filter::All, 1)).await;
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(listed, newest_first);
    assert!(pages >= 3);
}
