//! The API's description: `openapi.json` is what the code generates, `ringback-local` serves it and
//! an offline reference of it, and every operation it lists is a route the runner answers.
//!
//! After changing a route or a wire type: `RINGBACK_UPDATE_OPENAPI=1 cargo nextest run -p
//! ringback-local --test openapi` rewrites `openapi.json`; review its diff like code.

mod common;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use common::*;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.json");

#[test]
fn the_committed_document_is_what_the_code_generates() {
    let generated = ringback::api::openapi::document_text();
    if std::env::var_os("RINGBACK_UPDATE_OPENAPI").is_some() {
        std::fs::write(COMMITTED, &generated).expect("openapi.json written");
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi.json differs from what the code generates: run \
         RINGBACK_UPDATE_OPENAPI=1 cargo nextest run -p ringback-local --test openapi, and review the diff"
    );
    let doc: Value = serde_json::from_str(&committed).unwrap();
    assert_eq!(doc["openapi"].as_str().map(|v| &v[..4]), Some("3.1."));
    for event in ["call.completed", "call.failed", "call.updated"] {
        assert!(doc["webhooks"][event]["post"].is_object(), "{event}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_serves_the_document_and_a_reference_that_renders_offline() {
    let sys = start(&[]).await;
    let api = Api::new(&sys);
    let served = api.get("/openapi.json", None).await;
    assert_eq!(served.status, StatusCode::OK);
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(COMMITTED).unwrap()).unwrap();
    assert_eq!(served.body, committed);

    let no_redirects = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let docs = no_redirects
        .get(format!("{}/docs", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(docs.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(docs.headers()["location"], "/docs/");
    let page = no_redirects
        .get(format!("{}/docs/", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    // Every file the page loads is served here: nothing comes from a CDN.
    for asset in [
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-initializer.js",
    ] {
        assert!(html.contains(asset), "the page loads {asset}");
        assert!(
            !html.contains("https://"),
            "the page loads nothing from the network"
        );
        let r = no_redirects
            .get(format!("{}/docs/{asset}", api.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{asset}");
        let body = r.bytes().await.unwrap();
        assert!(body.len() > 100, "{asset} is {} bytes", body.len());
        if asset == "swagger-initializer.js" {
            let js = String::from_utf8_lossy(&body);
            assert!(js.contains("/openapi.json"), "{js}");
        }
    }
    sys.stop().await;
}

/// Each operation of the document, sent as documented (the token, an id of the right shape, no
/// body): the runner routes it, so it answers one of the statuses the document lists for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_routed_and_answers_a_documented_status() {
    let sys = start(&[]).await;
    let api = Api::new(&sys);
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(COMMITTED).unwrap()).unwrap();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let concrete = path
                .replace("{callId}", "5e2b7c91-4a3d-4f68-b0c2-9d1e8a7f6b34")
                .replace("{eventId}", "evt_0123456789abcdef0123456789abcdef");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let resp = api
                .http
                .request(method.clone(), format!("{}{concrete}", api.base))
                .bearer_auth(API_TOKEN)
                .header("x-vapi-secret", WEBHOOK_SECRET)
                .header("content-type", "application/json")
                .body(if method == Method::POST { "{}" } else { "" })
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16().to_string();
            let listed: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
            assert!(
                listed.iter().any(|s| **s == status),
                "{method} {concrete} answered {status}, the document lists {listed:?}: {}",
                resp.text().await.unwrap_or_default()
            );
            operations += 1;
        }
    }
    assert!(operations >= 12, "{operations} operations");
    // A documented path with a method it does not take is 405, not 404.
    let r = api
        .http
        .delete(format!("{}/api/v1/vapi/calls/x/events", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    sys.stop().await;
}

/// The document's CallRequest and the server's reading of a request agree field by field and value
/// by value (Schemathesis cannot hold placeCall to "valid requests are accepted": the callback host
/// policy is no schema's to state).
#[test]
fn the_documented_call_request_is_the_one_the_server_reads() {
    use ringback::domain::parse_call_request;
    let doc = ringback::api::openapi::document();
    let schemas = &doc["components"]["schemas"];
    let request = &schemas["CallRequest"];
    let valid = serde_json::json!({
        "providerName": "Bayside Plumbing", "providerPhone": " +14155550123 ", "serviceNeeded": "plumber",
        "userCriteria": "", "location": "Oakland, CA", "urgency": "flexible", "providerId": "p",
        "serviceRequestId": "s", "callbackUrl": "https://example.com/hook",
        "customPrompt": {"systemPrompt": "Be brief.", "firstMessage": "Hi.", "closingScript": "Bye."},
    });
    let properties: Vec<&String> = request["properties"].as_object().unwrap().keys().collect();
    let mut sent: Vec<&String> = valid.as_object().unwrap().keys().collect();
    sent.sort();
    assert_eq!(properties, sent, "the example names every documented field");
    assert!(
        parse_call_request(&valid).is_ok(),
        "{:?}",
        parse_call_request(&valid)
    );

    for urgency in schemas["Urgency"]["enum"].as_array().unwrap() {
        let mut v = valid.clone();
        v["urgency"] = urgency.clone();
        assert!(
            parse_call_request(&v).is_ok(),
            "documented urgency {urgency} is refused"
        );
    }
    for field in request["required"].as_array().unwrap() {
        let mut v = valid.clone();
        v.as_object_mut().unwrap().remove(field.as_str().unwrap());
        let errors = parse_call_request(&v).expect_err("a required field missing");
        assert!(
            errors
                .iter()
                .any(|e| e.path == format!("$.{}", field.as_str().unwrap())),
            "{field}: {errors:?}"
        );
    }
    for field in properties.iter().filter(|f| {
        !request["required"]
            .as_array()
            .unwrap()
            .contains(&Value::from(f.as_str()))
    }) {
        let mut v = valid.clone();
        v.as_object_mut().unwrap().remove(field.as_str());
        assert!(
            parse_call_request(&v).is_ok(),
            "optional {field} is required by the server"
        );
        v[field.as_str()] = Value::Null;
        assert!(
            parse_call_request(&v).is_ok(),
            "optional {field} cannot be null"
        );
    }
    assert_eq!(request["additionalProperties"], Value::Bool(false));
    let mut extra = valid.clone();
    extra["extra"] = Value::from(1);
    assert!(
        parse_call_request(&extra).is_err(),
        "an unknown field is accepted"
    );
    for (field, max) in [
        ("providerName", 200),
        ("location", 2000),
        ("providerId", 200),
        ("callbackUrl", 2048),
    ] {
        assert_eq!(request["properties"][field]["maxLength"], max, "{field}");
        let mut v = valid.clone();
        v[field] = Value::from("x".repeat(max as usize + 1));
        assert!(
            parse_call_request(&v).is_err(),
            "{field} longer than documented is accepted"
        );
    }
}
