//! The operator's redrive at the natural moment (issue: a redrive right after an outage did
//! nothing): Vapi's API fails for a call until its enrichment job is dead-lettered on SQS (moto's),
//! Vapi recovers, the operator at once moves the dead letters back, as `ringback redrive` does.
//! The failed attempt let go of its claim, so the redriven job (a new message id) completes the
//! call within seconds; before, it was deleted as a duplicate of the failed worker's claim and
//! the call waited for the cleanup's re-drive (off here).

mod common;

use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use common::{call_request, start, Api, SETTLE_TIMEOUT};
use vapi_simulator::FetchScript;

fn moto() -> String {
    std::env::var("RINGBACK_TEST_SQS_ENDPOINT")
        .expect("these tests need moto's server: run ./scripts/test.sh (it starts one and sets RINGBACK_TEST_SQS_ENDPOINT)")
}

/// Messages in a queue, visible or in flight (the watchdog's, delayed for minutes, not counted).
async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> u64 {
    let names = [
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
    ];
    let got = sqs
        .get_queue_attributes()
        .queue_url(url)
        .set_attribute_names(Some(names.to_vec()))
        .send()
        .await
        .expect("GetQueueAttributes");
    let attrs = got.attributes().cloned().unwrap_or_default();
    names
        .iter()
        .filter_map(|n| attrs.get(n).and_then(|v| v.parse::<u64>().ok()))
        .sum()
}

#[tokio::test]
async fn a_redrive_right_after_vapi_recovers_completes_the_call_within_seconds() {
    let endpoint = moto();
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let url = format!("{endpoint}/123456789012/jobs-{suffix}");
    let dlq = format!("{endpoint}/123456789012/dead-{suffix}");
    let sys = start(&[
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("ENRICHMENT_QUEUE_URL", url.as_str()),
        ("ENRICHMENT_DLQ_URL", dlq.as_str()),
        ("MAX_RECEIVE_COUNT", "2"),
        // One check of the running call at most: the webhooks' chain does the rest.
        ("WATCHDOG_DELAY_SECONDS", "600"),
    ])
    .await;
    let sim = sys.simulator.as_ref().expect("the embedded simulator");
    let sqs = aws_sdk_sqs::Client::new(&ringback_local::sdk_config(Some(&endpoint)).await);
    let api = Api::new(&sys);

    // Vapi's API fails for the call from the start: its enrichment job is dead-lettered.
    let id = api.start_call(&call_request("answered")).await;
    assert!(sim.set_script(
        &id,
        FetchScript::FailTimes {
            status: 500,
            times: u32::MAX
        }
    ));
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let record = api.get_call(&id).await;
        let fetched = record.data()["fetchAttempts"].as_u64().unwrap_or(0) > 0;
        if fetched && depth(&sqs, &url).await == 0 && depth(&sqs, &dlq).await > 0 {
            assert_eq!(
                record.data()["dataStatus"],
                "fetching",
                "{:?}",
                record.data()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the job never reached the dead-letter queue"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let gets_before = common::vapi_gets(&sys, &id);

    // Vapi recovers; the operator redrives at once.
    assert!(sim.set_script(&id, FetchScript::Always));
    let redriven = Instant::now();
    let moved = ringback::adapters::sqs::redrive(&sqs, &dlq, &url)
        .await
        .expect("redrive");
    assert!(moved >= 1, "{moved}");
    let record = api.wait_settled(&id).await;
    let took = redriven.elapsed();
    assert_eq!(record["dataStatus"], "complete", "{record}");
    assert!(
        common::vapi_gets(&sys, &id) > gets_before,
        "Vapi asked again"
    );
    eprintln!(
        "redrive to complete: {:.1} s ({moved} message(s) moved)",
        took.as_secs_f64()
    );
    sys.stop().await;
}
