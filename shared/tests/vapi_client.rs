//! The Vapi REST client against an HTTP server that speaks Vapi's API (the project's simulator):
//! errors are classified by what the caller should do about them.

mod support;

use std::time::Duration;

use ringback::domain::{is_complete, Completeness};
use ringback::ports::{VapiApi, VapiError};
use ringback::vapi::{snapshot_from_call, VapiClient, VapiClientConfig};
use serde_json::{json, Value};
use vapi_simulator::{FetchScript, Simulator, SimulatorConfig, SimulatorHandle, Timings};

fn complete_call() -> Value {
    support::fixture("get-call-complete.json")
}

async fn sim() -> SimulatorHandle {
    Simulator::start(SimulatorConfig {
        api_key: Some("key".into()),
        timings: Timings::fast(),
        ..Default::default()
    })
    .await
    .unwrap()
}

fn client(base: &str, timeout: Duration) -> VapiClient {
    let mut cfg = VapiClientConfig::new(base, "key");
    cfg.timeout = timeout;
    VapiClient::new(cfg)
}

#[tokio::test]
async fn success_and_incomplete_data() {
    let sim = sim().await;
    let id = sim.seed_call(complete_call(), FetchScript::CompleteOnNth(2));
    let c = client(&sim.base_url(), Duration::from_secs(5));
    let first = c.get_call(&id).await.unwrap();
    assert_eq!(
        is_complete(&snapshot_from_call(&first)),
        Completeness::Incomplete
    );
    let second = c.get_call(&id).await.unwrap();
    assert_eq!(
        is_complete(&snapshot_from_call(&second)),
        Completeness::Complete
    );
    assert_eq!(sim.get_calls_for(&id), 2);
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_transient() {
    let sim = sim().await;
    let id = sim.seed_call(
        complete_call(),
        FetchScript::FailTimes {
            status: 500,
            times: 1,
        },
    );
    let c = client(&sim.base_url(), Duration::from_secs(5));
    assert!(matches!(
        c.get_call(&id).await,
        Err(VapiError::Transient {
            status: Some(500),
            ..
        })
    ));
    assert!(c.get_call(&id).await.is_ok());

    let mut call = complete_call();
    call["id"] = json!("rate-limited");
    sim.seed_call(
        call,
        FetchScript::FailTimes {
            status: 429,
            times: 1,
        },
    );
    match c.get_call("rate-limited").await {
        Err(VapiError::Transient {
            status: Some(429),
            retry_after,
            ..
        }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(1)))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn not_found_and_refusals_are_not_retried() {
    let sim = sim().await;
    let c = client(&sim.base_url(), Duration::from_secs(5));
    assert_eq!(
        c.get_call("no-such-call").await.unwrap_err(),
        VapiError::NotFound
    );

    let wrong_key = VapiClient::new(VapiClientConfig::new(sim.base_url(), "other"));
    assert!(matches!(
        wrong_key.get_call("x").await,
        Err(VapiError::Rejected { status: 401, .. })
    ));

    let refused = json!({"phoneNumberId": "pn", "assistantId": "a",
        "customer": {"number": "+14155550123", "name": "Acme [refused]"}});
    match c.create_call(&refused).await {
        Err(VapiError::Rejected {
            status: 400,
            message,
        }) => assert!(message.contains("phone number"), "{message}"),
        other => panic!("{other:?}"),
    }
    let unknown_field = json!({"phoneNumberId": "pn", "assistantId": "a", "metadata": {},
        "customer": {"number": "+14155550123"}});
    match c.create_call(&unknown_field).await {
        Err(VapiError::Rejected {
            status: 400,
            message,
        }) => assert!(message.contains("metadata"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_slow_answer_times_out_as_transient() {
    let sim = sim().await;
    let id = sim.seed_call(complete_call(), FetchScript::Slow(Duration::from_secs(3)));
    let c = client(&sim.base_url(), Duration::from_millis(300));
    match c.get_call(&id).await {
        Err(VapiError::Transient {
            status: None,
            message,
            ..
        }) => assert!(message.contains("timed out"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_server_is_told_apart_from_a_lost_answer() {
    // No connection: the request never left, so a POST /call cannot be in doubt.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let c = client(&format!("http://{addr}"), Duration::from_secs(2));
    assert!(matches!(
        c.get_call("x").await,
        Err(VapiError::Unreachable { .. })
    ));
    // A call created whose answer is lost on the way back (a 504 from Vapi's edge) is transient.
    let sim = sim().await;
    let c = client(&sim.base_url(), Duration::from_secs(5));
    let body = json!({"phoneNumberId": "pn-1", "assistantId": "a",
        "customer": {"number": "+14155550123", "name": "Acme [lost-answer]"}});
    assert!(matches!(
        c.create_call(&body).await,
        Err(VapiError::Transient {
            status: Some(504),
            ..
        })
    ));
    assert_eq!(sim.stats().post_call, 1);
}

#[tokio::test]
async fn calls_are_listed_with_vapis_filters() {
    use ringback::ports::CallFilter;
    let sim = sim().await;
    let c = client(&sim.base_url(), Duration::from_secs(5));
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let mut ids = Vec::new();
    for (i, phone) in ["pn-a", "pn-b", "pn-a"].into_iter().enumerate() {
        let body = json!({"phoneNumberId": phone, "assistantId": "a",
            "customer": {"number": "+14155550123", "name": format!("Caller {i}")},
            "assistantOverrides": {"metadata": {"ringbackAttemptId": format!("att-{i}")}}});
        ids.push(
            c.create_call(&body).await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let after = chrono::Utc::now() + chrono::Duration::seconds(1);
    let filter = |phone: &str, ge, le, limit| CallFilter {
        phone_number_id: phone.into(),
        created_at_ge: ge,
        created_at_le: le,
        updated_at_ge: None,
        updated_at_le: None,
        limit,
    };
    let listed = |calls: Vec<Value>| -> Vec<String> {
        calls
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    };
    // One phone number, newest first, with the metadata as placed.
    let a = c
        .list_calls(&filter("pn-a", before, after, 100))
        .await
        .unwrap();
    assert_eq!(listed(a.clone()), vec![ids[2].clone(), ids[0].clone()]);
    assert_eq!(
        a[1]["assistantOverrides"]["metadata"]["ringbackAttemptId"],
        "att-0"
    );
    assert_eq!(
        listed(
            c.list_calls(&filter("pn-a", before, after, 1))
                .await
                .unwrap()
        ),
        vec![ids[2].clone()]
    );
    // A window that holds none of them.
    let later = after + chrono::Duration::seconds(60);
    assert!(c
        .list_calls(&filter("pn-a", after, later, 100))
        .await
        .unwrap()
        .is_empty());
    assert!(c
        .list_calls(&filter("pn-c", before, after, 100))
        .await
        .unwrap()
        .is_empty());
}
