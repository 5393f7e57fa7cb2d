use super::*;
use crate::ports::JobKind;

const LONG: Duration = Duration::from_secs(60);
/// The bound on every wait in these tests: reaching it means the behaviour under test failed.
const BOUND: Duration = Duration::from_secs(5);

fn job(call_id: &str) -> EnrichmentJob {
    EnrichmentJob {
        call_id: call_id.into(),
        attempt: 1,
        kind: JobKind::Enrich,
        event_id: None,
    }
}

#[tokio::test]
async fn a_delayed_message_is_invisible_until_its_delay_passes() {
    let q = MemoryQueue::default();
    q.schedule(&job("c-1"), Duration::from_millis(300))
        .await
        .unwrap();
    let sent = Instant::now();

    assert!(
        q.receive(10, Duration::ZERO, LONG).await.is_empty(),
        "visible before its delay"
    );
    let got = q.receive(10, BOUND, LONG).await;
    let waited = sent.elapsed();

    assert_eq!(got.len(), 1);
    assert!(
        waited >= Duration::from_millis(290),
        "delivered after {waited:?}, before the 300 ms delay"
    );
    assert!(
        waited < BOUND,
        "the long poll did not wake when the message came due"
    );
    let body: EnrichmentJob = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body, job("c-1"));
    assert_eq!(got[0].receive_count, 1);
}

#[tokio::test]
async fn a_long_poll_on_an_empty_queue_waits_then_answers_empty() {
    let q = MemoryQueue::default();
    let start = Instant::now();
    assert!(q
        .receive(10, Duration::from_millis(200), LONG)
        .await
        .is_empty());
    assert!(
        start.elapsed() >= Duration::from_millis(190),
        "returned after {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_waiting_receive_wakes_when_a_message_is_sent() {
    let q = std::sync::Arc::new(MemoryQueue::default());
    let receiver = tokio::spawn({
        let q = q.clone();
        async move { q.receive(10, Duration::from_secs(30), LONG).await }
    });
    tokio::time::timeout(BOUND, async {
        while q.waiting_receivers() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the receive never started waiting");

    let start = Instant::now();
    let id = q.send("hello", Duration::ZERO);
    let got = tokio::time::timeout(BOUND, receiver)
        .await
        .expect("the waiting receive was not woken")
        .unwrap();
    assert!(start.elapsed() < BOUND);
    assert_eq!(
        got.iter()
            .map(|d| d.message_id.as_str())
            .collect::<Vec<_>>(),
        [id.as_str()]
    );
    assert_eq!(q.waiting_receivers(), 0);
}

#[tokio::test]
async fn a_received_message_is_hidden_then_redelivered_with_a_higher_count() {
    let q = MemoryQueue::default();
    let id = q.send("body", Duration::ZERO);

    let first = q
        .receive(10, Duration::ZERO, Duration::from_millis(200))
        .await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].receive_count, 1);
    assert!(
        q.receive(10, Duration::ZERO, LONG).await.is_empty(),
        "visible during its visibility timeout"
    );

    let second = q.receive(10, BOUND, LONG).await;
    assert_eq!(
        second.len(),
        1,
        "not redelivered after the visibility timeout"
    );
    assert_eq!(second[0].message_id, id);
    assert_eq!(second[0].receive_count, 2);
    assert_ne!(second[0].receipt, first[0].receipt);

    assert!(
        !q.delete(&first[0].receipt),
        "a stale receipt deleted the message"
    );
    assert_eq!(q.len(), 1);
    assert!(q.delete(&second[0].receipt));
    assert!(q.is_empty());
    assert!(!q.delete(&second[0].receipt), "deleted twice");
}

#[tokio::test]
async fn a_batch_holds_at_most_max_messages_oldest_first() {
    let q = MemoryQueue::default();
    let ids: Vec<String> = (0..5)
        .map(|i| q.send(format!("m{i}"), Duration::ZERO))
        .collect();
    let a = q.receive(3, Duration::ZERO, LONG).await;
    let b = q.receive(3, Duration::ZERO, LONG).await;
    let got: Vec<&str> = a.iter().chain(&b).map(|d| d.message_id.as_str()).collect();
    assert_eq!(a.len(), 3);
    assert_eq!(got, ids.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(q.receive(0, Duration::ZERO, LONG).await.is_empty());
}

#[tokio::test]
async fn the_receive_that_would_exceed_max_receive_count_dead_letters_the_message() {
    let q = MemoryQueue::new(2);
    let id = q.send("poison", Duration::ZERO);

    // Visibility 0: visible again at once, so each receive delivers it again.
    for count in 1..=2 {
        let got = q.receive(10, Duration::ZERO, Duration::ZERO).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].receive_count, count);
    }
    assert_eq!(q.dlq_len(), 0);
    assert!(
        q.receive(10, Duration::ZERO, Duration::ZERO)
            .await
            .is_empty(),
        "delivered a third time"
    );
    assert_eq!(q.dlq_len(), 1);
    assert!(q.is_empty());

    let dead = q.drain_dlq();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (
            dead[0].message_id.as_str(),
            dead[0].body.as_str(),
            dead[0].receive_count
        ),
        (id.as_str(), "poison", 2)
    );
    assert_eq!(q.dlq_len(), 0);
}

#[tokio::test]
async fn redrive_moves_dead_letters_back_with_a_fresh_count() {
    let q = MemoryQueue::new(1);
    q.send("m", Duration::ZERO);
    q.receive(10, Duration::ZERO, Duration::ZERO).await;
    assert!(q
        .receive(10, Duration::ZERO, Duration::ZERO)
        .await
        .is_empty());
    assert_eq!(q.dlq_len(), 1);

    assert_eq!(q.redrive_dlq(), 1);
    assert_eq!(q.dlq_len(), 0);
    let got = q.receive(10, Duration::ZERO, LONG).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].receive_count, 1);
}

#[tokio::test]
async fn release_makes_a_received_message_visible_now() {
    let q = MemoryQueue::default();
    q.send("m", Duration::ZERO);
    let first = q.receive(10, Duration::ZERO, LONG).await;
    assert!(q.receive(10, Duration::ZERO, LONG).await.is_empty());

    assert!(q.release(&first[0].receipt));
    let again = q.receive(10, Duration::ZERO, LONG).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].receive_count, 2);

    assert!(!q.release("no-such-receipt"));
    assert!(
        !q.release(&first[0].receipt),
        "a stale receipt changed the visibility"
    );
    assert!(q.receive(10, Duration::ZERO, LONG).await.is_empty());
}

#[tokio::test]
async fn change_visibility_extends_the_hiding() {
    let q = MemoryQueue::default();
    q.send("m", Duration::ZERO);
    let first = q.receive(10, Duration::ZERO, Duration::ZERO).await;
    assert!(q.change_visibility(&first[0].receipt, LONG));
    assert!(q
        .receive(10, Duration::from_millis(100), LONG)
        .await
        .is_empty());
}

#[tokio::test]
async fn snapshot_and_restore_keep_every_message_and_its_remaining_delay() {
    let q = MemoryQueue::new(1);
    let dead = q.send("dead", Duration::ZERO);
    q.receive(10, Duration::ZERO, Duration::ZERO).await;
    assert!(q
        .receive(10, Duration::ZERO, Duration::ZERO)
        .await
        .is_empty());
    let visible = q.send("visible", Duration::ZERO);
    let delayed = q.send("delayed", LONG);
    assert_eq!((q.len(), q.dlq_len()), (2, 1));

    let snapshot = q.snapshot();
    let json = serde_json::to_string(&snapshot).unwrap();
    let restored = MemoryQueue::new(1);
    assert_eq!(restored.restore(serde_json::from_str(&json).unwrap()), 2);
    assert_eq!((restored.len(), restored.dlq_len()), (2, 1));

    let again = restored.snapshot();
    let by_id = |s: &QueueSnapshot, id: &str| {
        s.messages
            .iter()
            .find(|m| m.message_id == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_id(&again, &visible).delay_ms, 0);
    let (before, after) = (
        by_id(&snapshot, &delayed).delay_ms,
        by_id(&again, &delayed).delay_ms,
    );
    assert!(
        before > 59_000 && after <= before && after > before - 1_000,
        "delay {before} ms became {after} ms"
    );
    assert_eq!(
        by_id(&again, &delayed).sent_at,
        by_id(&snapshot, &delayed).sent_at
    );
    assert_eq!(again.dead_letters[0].message_id, dead);

    let got = restored.receive(10, Duration::ZERO, LONG).await;
    assert_eq!(
        got.iter().map(|d| d.body.as_str()).collect::<Vec<_>>(),
        ["visible"],
        "the delay was lost"
    );
    assert_eq!(got[0].message_id, visible);

    // Restoring the same snapshot again adds nothing twice.
    assert_eq!(restored.restore(snapshot), 0);
    assert_eq!(restored.len(), 2);
}

#[tokio::test]
async fn save_and_load_round_trip_through_a_file() {
    let dir = std::env::temp_dir().join(format!("ringback-queue-{}", uuid::Uuid::new_v4()));
    let path = dir.join("queue.json");
    let q = MemoryQueue::default();
    q.send("a", Duration::ZERO);
    q.send("b", LONG);
    assert_eq!(q.save(&path).unwrap(), 2);

    let loaded = MemoryQueue::default();
    assert_eq!(loaded.load(&path).unwrap(), 2);
    assert_eq!(loaded.len(), 2);
    assert_eq!(loaded.load(&dir.join("missing.json")).unwrap(), 0);

    std::fs::write(&path, b"not json").unwrap();
    let err = loaded.load(&path).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    std::fs::remove_dir_all(&dir).unwrap();
}
