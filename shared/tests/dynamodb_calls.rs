//! The calls table against a real-protocol DynamoDB (dynoxide): versions and conditions, expiry,
//! 1 MiB reports, key isolation, the overdue index and concurrent read-modify-write.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, TimeToLiveStatus};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use ringback::adapters::dynamodb::{ensure_tables, CallsTable, UNFINISHED_INDEX};
use ringback::domain::{
    Analysis, CallMethod, CallRecord, CallResult, CallStatus, ConversationMessage, DataStatus,
    Outcome, Provider, RequestInfo,
};
use ringback::ports::{CallStore, Clock, IdempotencyStore, StoreError};
use serde_json::json;
use support::ManualClock;

const TTL: Duration = Duration::from_secs(1800);
const START: &str = "2026-03-02T15:00:00Z";

async fn setup() -> (
    CallsTable,
    Arc<ManualClock>,
    Client,
    String,
    support::DynamoGuard,
) {
    let (client, guard) = support::dynamo().await;
    let t = support::tables(&client).await;
    let clock = ManualClock::at(START);
    let store = CallsTable::new(client.clone(), t.calls.clone(), TTL, clock.clone());
    (store, clock, client, t.calls, guard)
}

/// A record with every field set, as after a complete enrichment.
fn full_record(id: &str) -> CallRecord {
    let mut structured = serde_json::Map::new();
    structured.insert("available".into(), json!(true));
    structured.insert("price".into(), json!(120.5));
    structured.insert("slots".into(), json!(["mon", "tue"]));
    let result = CallResult {
        call_id: id.into(),
        status: Some(Outcome::Completed),
        call_status: CallStatus::Ended,
        data_status: DataStatus::Complete,
        ended_reason: Some("customer-ended-call".into()),
        duration: Some(2.5),
        transcript: Some(
            "AI: Hello, this is Ringback.\nUser: Hi, yes we are open — ünïcödé ok".into(),
        ),
        messages: vec![
            ConversationMessage {
                role: "bot".into(),
                message: "Hello".into(),
                time: Some(1.7e12),
                seconds_from_start: Some(0.5),
            },
            ConversationMessage {
                role: "user".into(),
                message: "Hi".into(),
                time: None,
                seconds_from_start: None,
            },
        ],
        analysis: Analysis {
            summary: Some("Open on Monday.".into()),
            structured_data: Some(structured),
            success_evaluation: Some("true".into()),
        },
        provider: Provider {
            name: Some("Acme Plumbing".into()),
            phone: Some("+15551234567".into()),
            service: Some("plumbing".into()),
            location: Some("Austin".into()),
        },
        request: RequestInfo {
            criteria: Some("licensed".into()),
            urgency: Some("within_24_hours".into()),
        },
        provider_id: Some("5e2b7c91-4a3d-4f68-b0c2-9d1e8a7f6b34".into()),
        service_request_id: Some("1f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f".into()),
        cost: Some(0.0),
        recording_url: Some("https://example.com/r.wav".into()),
        call_method: CallMethod::Kestra,
        webhook_received_at: Some("2026-03-02T15:00:01.000Z".into()),
        fetched_at: Some("2026-03-02T15:00:09.000Z".into()),
        created_at: "2026-03-02T14:59:00.000Z".into(),
        updated_at: "2026-03-02T15:00:09.000Z".into(),
        fetch_attempts: 2,
        fetch_error: None,
        started_at: Some("2026-03-02T14:59:30.000Z".into()),
        ended_at: Some("2026-03-02T15:02:00.000Z".into()),
        callback_url: Some("https://client.example.com/hooks".into()),
        truncated: false,
    };
    let mut rec = CallRecord {
        result,
        ..Default::default()
    };
    rec.book.seen_events.insert("end-of-call-report".into());
    rec.book.enrichment_scheduled = true;
    rec.book.claimed_by = Some("msg-1".into());
    rec.book.watchdog_checks = 1;
    rec
}

/// Pseudo-random words from a seeded generator: text that gzip shrinks only to ~60%.
fn random_words(seed: u64, bytes: usize) -> String {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = String::with_capacity(bytes + 16);
    let mut line = 0;
    while out.len() < bytes {
        out.push_str(if line % 2 == 0 { "AI: " } else { "User: " });
        for _ in 0..(8 + next() % 12) {
            for _ in 0..(2 + next() % 8) {
                out.push((b'a' + (next() % 26) as u8) as char);
            }
            out.push(' ');
        }
        out.push('\n');
        line += 1;
    }
    out.truncate(bytes);
    out
}

fn big_record(id: &str, seed: u64, bytes: usize) -> CallRecord {
    let mut rec = full_record(id);
    let transcript = random_words(seed, bytes);
    rec.result.messages = transcript
        .lines()
        .map(|l| ConversationMessage {
            role: "bot".into(),
            message: l.into(),
            ..Default::default()
        })
        .collect();
    rec.result.transcript = Some(transcript);
    rec
}

async fn raw_item(
    client: &Client,
    table: &str,
    key: &str,
) -> Option<HashMap<String, AttributeValue>> {
    client
        .get_item()
        .table_name(table)
        .key("callId", AttributeValue::S(key.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

fn n(item: &HashMap<String, AttributeValue>, name: &str) -> i64 {
    item[name].as_n().unwrap().parse().unwrap()
}

#[tokio::test]
async fn full_record_round_trips_and_versions_guard_writes() {
    let (store, clock, client, table, _db) = setup().await;
    let rec = full_record("call-1");

    assert_eq!(store.get("call-1").await.unwrap(), None);
    assert_eq!(store.put(&rec, None, None).await.unwrap(), 1);
    let got = store.get("call-1").await.unwrap().expect("stored");
    assert_eq!((got.record.clone(), got.version), (rec.clone(), 1));

    // Creating it again loses; so does a write expecting a version that is not current.
    assert!(matches!(
        store.put(&rec, None, None).await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        store.put(&rec, Some(7), None).await,
        Err(StoreError::Conflict)
    ));

    let mut next = rec.clone();
    next.result.fetch_attempts = 3;
    assert_eq!(store.put(&next, Some(1), None).await.unwrap(), 2);
    assert!(
        matches!(
            store.put(&rec, Some(1), None).await,
            Err(StoreError::Conflict)
        ),
        "stale version"
    );
    assert_eq!(store.put(&next, Some(2), None).await.unwrap(), 3);
    let got = store.get("call-1").await.unwrap().unwrap();
    assert_eq!((got.record.result.fetch_attempts, got.version), (3, 3));

    // Operators' attributes on the item.
    clock.advance(Duration::from_secs(60));
    assert_eq!(store.put(&next, Some(3), None).await.unwrap(), 4);
    let item = raw_item(&client, &table, "call-1").await.unwrap();
    assert_eq!(item["kind"].as_s().unwrap(), "call");
    assert_eq!(item["dataStatus"].as_s().unwrap(), "complete");
    assert_eq!(
        item["updatedAt"].as_s().unwrap(),
        "2026-03-02T15:01:00.000Z"
    );
    assert_eq!(n(&item, "version"), 4);
    assert_eq!(
        n(&item, "expiresAt"),
        clock.now().timestamp() + 1800,
        "TTL refreshed at every write"
    );
    assert!(
        !item.contains_key("parts")
            && !item.contains_key("unfinishedShard")
            && !item.contains_key("deadline")
    );

    // Deleting needs the current version.
    assert!(matches!(
        store.delete("call-1", 3).await,
        Err(StoreError::Conflict)
    ));
    store.delete("call-1", 4).await.unwrap();
    assert_eq!(store.get("call-1").await.unwrap(), None);
    assert!(matches!(
        store.delete("call-1", 4).await,
        Err(StoreError::Conflict)
    ));
}

#[tokio::test]
async fn expired_record_reads_as_absent_while_the_item_remains() {
    let (store, clock, client, table, _db) = setup().await;
    let rec = full_record("call-exp");
    store.put(&rec, None, None).await.unwrap();

    clock.advance(TTL - Duration::from_secs(1));
    assert!(
        store.get("call-exp").await.unwrap().is_some(),
        "still alive one second before expiry"
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(store.get("call-exp").await.unwrap(), None);
    assert!(
        raw_item(&client, &table, "call-exp").await.is_some(),
        "TTL has not deleted it yet"
    );

    // Writers see what readers see: the expired version cannot be updated, a new record can be made.
    assert!(matches!(
        store.put(&rec, Some(1), None).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.put(&rec, None, None).await.unwrap(), 1);
    assert_eq!(store.get("call-exp").await.unwrap().unwrap().record, rec);
}

#[tokio::test]
async fn a_one_mib_report_is_stored_whole_and_replaced_by_smaller_ones() {
    let (store, _clock, client, table, _db) = setup().await;
    let big = big_record("call-big", 42, 1024 * 1024);
    let t = Instant::now();
    assert_eq!(store.put(&big, None, Some(Utc::now())).await.unwrap(), 1);
    let put_ms = t.elapsed().as_millis();
    let t = Instant::now();
    let got = store.get("call-big").await.unwrap().expect("stored");
    let get_ms = t.elapsed().as_millis();
    assert_eq!(
        got.record.result.transcript, big.result.transcript,
        "byte-identical transcript"
    );
    assert_eq!(got.record, big);

    let main = raw_item(&client, &table, "call-big").await.unwrap();
    let parts = n(&main, "parts");
    let doc = main["doc"].as_b().unwrap().as_ref().len();
    eprintln!("1 MiB transcript + messages: {parts} part items + main doc of {doc} B; put {put_ms} ms, get {get_ms} ms");
    assert!(
        parts >= 2,
        "a 1 MiB report of poorly compressible text needs several items"
    );
    for i in 1..=parts {
        let part = raw_item(&client, &table, &format!("call-big#part{i}"))
            .await
            .expect("part item");
        assert_eq!(part["kind"].as_s().unwrap(), "part");
        assert_eq!(n(&part, "version"), 1);
        assert_eq!(n(&part, "expiresAt"), n(&main, "expiresAt"));
        assert!(
            !part.contains_key("unfinishedShard"),
            "parts stay out of the overdue index"
        );
    }

    // A losing writer of a split record changes nothing, parts included.
    let other = big_record("call-big", 7, 1024 * 1024);
    assert!(matches!(
        store.put(&other, None, None).await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        store.put(&other, Some(5), None).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.get("call-big").await.unwrap().unwrap().record, big);

    // A shorter split version: the extra old part stays behind but is not read.
    let half = big_record("call-big", 9, 512 * 1024);
    assert_eq!(store.put(&half, Some(1), None).await.unwrap(), 2);
    assert_eq!(store.get("call-big").await.unwrap().unwrap().record, half);
    let stale = raw_item(&client, &table, &format!("call-big#part{parts}"))
        .await
        .expect("left to TTL");
    assert_eq!(n(&stale, "version"), 1);

    // A small version: one item again.
    let small = full_record("call-big");
    assert_eq!(store.put(&small, Some(2), None).await.unwrap(), 3);
    let got = store.get("call-big").await.unwrap().unwrap();
    assert_eq!((got.record, got.version), (small.clone(), 3));
    assert!(!raw_item(&client, &table, "call-big")
        .await
        .unwrap()
        .contains_key("parts"));

    // And big again after small.
    assert_eq!(store.put(&big, Some(3), None).await.unwrap(), 4);
    assert_eq!(store.get("call-big").await.unwrap().unwrap().record, big);

    // Deleting a split record removes its parts too.
    store.delete("call-big", 4).await.unwrap();
    assert_eq!(store.get("call-big").await.unwrap(), None);
    assert!(raw_item(&client, &table, "call-big#part1").await.is_none());
}

#[tokio::test]
async fn a_record_too_big_for_one_transaction_is_refused_whole() {
    let (store, _clock, client, table, _db) = setup().await;
    let small = full_record("call-huge");
    store.put(&small, None, None).await.unwrap();
    // ~7 MB of JSON that compresses to more than the 3.5 MiB one transaction can carry.
    let huge = big_record("call-huge", 13, 3 * 1024 * 1024);
    let err = store.put(&huge, Some(1), None).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("compressed")),
        "{err}"
    );
    let got = store.get("call-huge").await.unwrap().unwrap();
    assert_eq!(
        (got.record, got.version),
        (small, 1),
        "nothing half-written"
    );
    assert!(raw_item(&client, &table, "call-huge#part1").await.is_none());
}

#[tokio::test]
async fn a_torn_split_record_is_refused_not_misread() {
    let (store, _clock, client, table, _db) = setup().await;
    let big = big_record("call-torn", 1, 1024 * 1024);
    store.put(&big, None, None).await.unwrap();
    // A part from some other version, as if a writer had raced the reader for good.
    client
        .update_item()
        .table_name(&table)
        .key("callId", AttributeValue::S("call-torn#part1".into()))
        .update_expression("SET version = :v")
        .expression_attribute_values(":v", AttributeValue::N("9".into()))
        .send()
        .await
        .unwrap();
    assert!(matches!(
        store.get("call-torn").await,
        Err(StoreError::Unavailable(_))
    ));
}

#[tokio::test]
async fn parts_and_idempotency_keys_are_not_calls() {
    let (store, _clock, _client, _table, _db) = setup().await;
    store
        .put(&big_record("x", 3, 1024 * 1024), None, None)
        .await
        .unwrap();
    store
        .begin("k1", "hash", &attempt("a-1"))
        .await
        .unwrap()
        .unwrap();
    assert!(store.get("x").await.unwrap().is_some());
    for key in ["x#part1", "x#part2", "idem#k1", "k1", ""] {
        assert_eq!(store.get(key).await.unwrap(), None, "{key:?}");
    }
}

#[tokio::test]
async fn overdue_lists_unfinished_records_past_their_deadline_once_each() {
    let (store, clock, client, table, _db) = setup().await;
    let now = clock.now();
    let at = |mins: i64| -> DateTime<Utc> { now + chrono::Duration::minutes(mins) };
    let mut want = HashSet::new();
    for i in 0..5 {
        let id = format!("late-{i}");
        let mut rec = CallRecord::new(&id, START);
        rec.result.data_status = DataStatus::Partial;
        store.put(&rec, None, Some(at(-10 + i))).await.unwrap();
        want.insert(id);
    }
    store
        .put(&CallRecord::new("not-yet", START), None, Some(at(5)))
        .await
        .unwrap();
    for id in ["done-1", "done-2"] {
        let mut rec = CallRecord::new(id, START);
        rec.result.data_status = DataStatus::Complete;
        store.put(&rec, None, None).await.unwrap();
    }
    // Finished after being unfinished: it leaves the index.
    let v = store
        .put(&CallRecord::new("finished", START), None, Some(at(-20)))
        .await
        .unwrap();
    store
        .put(&CallRecord::new("finished", START), Some(v), None)
        .await
        .unwrap();
    let item = raw_item(&client, &table, "finished").await.unwrap();
    assert!(!item.contains_key("unfinishedShard") && !item.contains_key("deadline"));
    store
        .begin("idem", "h", &attempt("a-2"))
        .await
        .unwrap()
        .unwrap();
    store
        .put(&big_record("big", 5, 1024 * 1024), None, None)
        .await
        .unwrap();

    let mut seen = Vec::new();
    let mut page = None;
    let mut pages = 0;
    loop {
        let out = store.overdue(now, page, 2).await.unwrap();
        assert!(out.call_ids.len() <= 2);
        // Within a shard, oldest deadline first.
        let mut in_order = out.call_ids.clone();
        in_order.sort();
        assert_eq!(out.call_ids, in_order, "late-N has the Nth oldest deadline");
        seen.extend(out.call_ids);
        pages += 1;
        assert!(pages < 40, "paging must end");
        match out.next {
            Some(next) => page = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "each exactly once: {seen:?}");
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), want);

    // Later, the not-yet record is overdue too.
    let later = support::overdue_ids(&store, at(6)).await;
    assert_eq!(later.len(), 6);
    assert!(later.contains(&"not-yet".to_owned()));
    // Nothing is overdue before every deadline.
    assert!(support::overdue_ids(&store, at(-30)).await.is_empty());
    // A cursor that is not ours is refused, not misread.
    assert!(store
        .overdue(now, Some("1700000000.late-0".into()), 2)
        .await
        .is_err());
    assert!(store.overdue(now, Some("garbage".into()), 2).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_read_modify_write_loses_no_update() {
    let (store, _clock, _client, _table, _db) = setup().await;
    let store = Arc::new(store);
    store
        .put(&CallRecord::new("shared", START), None, None)
        .await
        .unwrap();
    const EACH: usize = 10;
    let mut tasks = Vec::new();
    for writer in ["a", "b", "c"] {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            for i in 0..EACH {
                loop {
                    let cur = store.get("shared").await.unwrap().unwrap();
                    let mut rec = cur.record;
                    rec.book.seen_events.insert(format!("{writer}-{i}"));
                    rec.book.watchdog_checks += 1;
                    match store.put(&rec, Some(cur.version), None).await {
                        Ok(_) => break,
                        Err(StoreError::Conflict) => conflicts += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.unwrap();
    }
    let end = store.get("shared").await.unwrap().unwrap();
    assert_eq!(
        end.record.book.seen_events.len(),
        3 * EACH,
        "every update landed"
    );
    assert_eq!(end.record.book.watchdog_checks as usize, 3 * EACH);
    assert_eq!(end.version as usize, 1 + 3 * EACH);
    eprintln!("3 writers x {EACH} updates: {conflicts} conflicts retried");
}

#[tokio::test]
async fn ensure_tables_is_idempotent_and_sets_index_and_ttl() {
    let (client, _db) = support::dynamo().await;
    let t = support::tables(&client).await;
    ensure_tables(&client, &t.calls, &t.providers, &t.logs)
        .await
        .expect("second run is fine");
    let desc = client
        .describe_table()
        .table_name(&t.calls)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let gsi = &desc.global_secondary_indexes()[0];
    assert_eq!(gsi.index_name(), Some(UNFINISHED_INDEX));
    let ttl = client
        .describe_time_to_live()
        .table_name(&t.calls)
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description.unwrap();
    assert_eq!(ttl.attribute_name(), Some("expiresAt"));
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
    let logs = client
        .describe_table()
        .table_name(&t.logs)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    assert_eq!(logs.key_schema().len(), 2);
}

#[tokio::test]
async fn latency_of_normal_and_one_mib_records() {
    let (store, _clock, _client, _table, _db) = setup().await;
    let rec = full_record("lat");
    let mut v = store.put(&rec, None, None).await.unwrap();
    let rounds = 20u32;
    let t = Instant::now();
    for _ in 0..rounds {
        v = store.put(&rec, Some(v), None).await.unwrap();
    }
    let put = t.elapsed() / rounds;
    let t = Instant::now();
    for _ in 0..rounds {
        store.get("lat").await.unwrap().unwrap();
    }
    let get = t.elapsed() / rounds;

    let big = big_record("lat-big", 11, 1024 * 1024);
    let mut vb = store.put(&big, None, None).await.unwrap();
    let t = Instant::now();
    for _ in 0..3 {
        vb = store.put(&big, Some(vb), None).await.unwrap();
    }
    let big_put = t.elapsed() / 3;
    let t = Instant::now();
    for _ in 0..3 {
        store.get("lat-big").await.unwrap().unwrap();
    }
    let big_get = t.elapsed() / 3;
    eprintln!("dynoxide latency (this build profile): normal put {put:?} get {get:?}; 1 MiB put {big_put:?} get {big_get:?}");
}

fn attempt(id: &str) -> ringback::ports::Attempt {
    ringback::ports::Attempt {
        id: id.into(),
        started_at: chrono::Utc::now(),
    }
}

#[tokio::test]
async fn unfinished_records_spread_over_every_shard_and_the_sweep_finds_each_once() {
    let (store, clock, client, table, _db) = setup().await;
    let now = clock.now();
    let past = now - chrono::Duration::minutes(1);
    let ids: Vec<String> = (0..96).map(|i| format!("spread-{i:03}")).collect();
    for id in &ids {
        store
            .put(&CallRecord::new(id, START), None, Some(past))
            .await
            .unwrap();
    }
    // A record written before the index was sharded, under its one old key: still swept.
    client
        .put_item()
        .table_name(&table)
        .set_item(
            raw_item(&client, &table, "spread-000")
                .await
                .map(|mut item| {
                    item.insert("callId".into(), AttributeValue::S("legacy-call".into()));
                    item.insert(
                        "unfinishedShard".into(),
                        AttributeValue::S("unfinished".into()),
                    );
                    item
                }),
        )
        .send()
        .await
        .unwrap();

    let mut shards = HashSet::new();
    for id in &ids {
        let item = raw_item(&client, &table, id).await.unwrap();
        shards.insert(item["unfinishedShard"].as_s().unwrap().clone());
    }
    assert_eq!(shards.len(), 16, "96 calls reach every shard: {shards:?}");

    let seen = support::overdue_ids(&store, now).await;
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(seen.len(), unique.len(), "none twice");
    let mut want: HashSet<String> = ids.iter().cloned().collect();
    want.insert("legacy-call".into());
    assert_eq!(unique, want);
}
