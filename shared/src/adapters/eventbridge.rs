//! [`EventBridgeBus`]: completion events published to an EventBridge bus (`EVENT_BUS_NAME`) for
//! AWS-native consumers, as `PutEvents` (JSON 1.1 protocol, SigV4-signed with the function's
//! credentials) sent through reqwest. An entry is `Source: ringback`, `DetailType` the event's
//! type, `Detail` the event itself (`{type, id, timestamp, data}`: consumers de-duplicate on `id`,
//! as webhook receivers do). EventBridge takes at most 256 KB an entry, so a call too large to fit
//! is published cut ([`crate::domain::fit`]: its `messages`, then its transcript, then its analysis
//! and free texts), with `data.truncated = true`: the record (`GET /api/v1/vapi/calls/{id}`) has it all.

use std::time::SystemTime;

use async_trait::async_trait;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use serde_json::{json, Value};

use crate::domain::fit::fitted;
use crate::domain::push::CallEvent;
use crate::ports::EventBus;

/// EventBridge's limit on one entry, with room for the envelope.
const MAX_DETAIL_BYTES: usize = 250 * 1024;
pub const SOURCE: &str = "ringback";

pub struct EventBridgeBus {
    http: reqwest::Client,
    endpoint: String,
    region: String,
    bus: String,
    credentials: SharedCredentialsProvider,
}

impl std::fmt::Debug for EventBridgeBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBridgeBus")
            .field("endpoint", &self.endpoint)
            .field("bus", &self.bus)
            .finish_non_exhaustive()
    }
}

/// The event as an entry's `Detail`, cut to fit ([`crate::domain::fit`]).
pub fn detail(event: &CallEvent) -> String {
    let json = |e: &CallEvent| serde_json::to_string(e).expect("events serialise");
    let (slim, _) = fitted(event, |e| json(e).len() <= MAX_DETAIL_BYTES);
    json(&slim)
}

impl EventBridgeBus {
    /// `endpoint`: `AWS_ENDPOINT_URL_EVENTBRIDGE` / `AWS_ENDPOINT_URL`, else the region's.
    pub fn new(
        sdk: &aws_config::SdkConfig,
        bus: String,
        endpoint: Option<String>,
    ) -> Result<Self, String> {
        let region = sdk
            .region()
            .map(|r| r.to_string())
            .ok_or("no AWS region (AWS_REGION) for the event bus")?;
        let credentials = sdk
            .credentials_provider()
            .ok_or("no AWS credentials for the event bus")?;
        let endpoint = endpoint.unwrap_or_else(|| format!("https://events.{region}.amazonaws.com"));
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(3))
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            http,
            endpoint: endpoint.trim_end_matches('/').to_owned() + "/",
            region,
            bus,
            credentials,
        })
    }

    /// One signed call of EventBridge's JSON API; its answer.
    pub async fn call(&self, target: &str, body: &Value) -> Result<Value, String> {
        let body = serde_json::to_vec(body).expect("JSON serialises");
        let creds = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| format!("credentials: {e}"))?;
        let identity = creds.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("events")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let target = format!("AWSEvents.{target}");
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target.as_str()),
        ];
        let signable = SignableRequest::new(
            "POST",
            self.endpoint.as_str(),
            headers.iter().copied(),
            SignableBody::Bytes(&body),
        )
        .map_err(|e| e.to_string())?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| e.to_string())?
            .into_parts();
        let mut req = http::Request::builder()
            .method("POST")
            .uri(&self.endpoint)
            .body(body.clone())
            .map_err(|e| e.to_string())?;
        for (name, value) in headers {
            req.headers_mut()
                .insert(name, value.parse().map_err(|_| "header")?);
        }
        instructions.apply_to_request_http1x(&mut req);
        let req = reqwest::Request::try_from(req).map_err(|e| e.to_string())?;
        let resp = self.http.execute(req).await.map_err(|e| {
            if e.is_timeout() {
                "EventBridge did not answer in time".to_owned()
            } else {
                "EventBridge unreachable".to_owned()
            }
        })?;
        let status = resp.status();
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(format!(
                "EventBridge {target} answered {status}: {}",
                answer["message"]
                    .as_str()
                    .or(answer["Message"].as_str())
                    .unwrap_or("")
            ));
        }
        Ok(answer)
    }
}

#[async_trait]
impl EventBus for EventBridgeBus {
    async fn publish(&self, event: &CallEvent) -> Result<(), String> {
        let entry = json!({
            "Source": SOURCE,
            "DetailType": event.kind.as_str(),
            "Detail": detail(event),
            "EventBusName": self.bus,
            "Resources": [],
        });
        let answer = self.call("PutEvents", &json!({"Entries": [entry]})).await?;
        match answer["FailedEntryCount"].as_u64() {
            Some(0) | None => Ok(()),
            Some(_) => Err(format!(
                "EventBridge refused the entry: {}",
                answer["Entries"][0]["ErrorMessage"].as_str().unwrap_or("")
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::push::EventType;
    use crate::domain::CallResult;

    #[test]
    fn a_call_too_large_for_an_entry_is_published_without_its_conversation() {
        let mut data = CallResult::new("c1", "2026-12-03T00:00:00.000Z");
        data.transcript = Some("x".repeat(300 * 1024));
        let event = CallEvent {
            kind: EventType::Completed,
            id: "evt_1".into(),
            timestamp: "2026-12-03T00:00:00.000Z".into(),
            data,
        };
        let d: Value = serde_json::from_str(&detail(&event)).unwrap();
        assert_eq!(d["data"]["truncated"], true);
        assert_eq!(d["id"], "evt_1");
        assert!(d.to_string().len() < MAX_DETAIL_BYTES);
        let mut small = event.clone();
        small.data.transcript = Some("AI: hi".into());
        let d: Value = serde_json::from_str(&detail(&small)).unwrap();
        assert_eq!(d["data"]["transcript"], "AI: hi");
        assert!(d["data"].get("truncated").is_none());
    }

    #[test]
    fn a_call_whose_analysis_alone_passes_an_entry_is_published_without_it() {
        let mut data = CallResult::new("c1", "2026-12-03T00:00:00.000Z");
        data.analysis.summary = Some("s".repeat(600 * 1024));
        data.transcript = Some("AI: hi".into());
        let event = CallEvent {
            kind: EventType::Completed,
            id: "evt_1".into(),
            timestamp: "2026-12-03T00:00:00.000Z".into(),
            data,
        };
        let d = detail(&event);
        assert!(d.len() <= MAX_DETAIL_BYTES, "{} bytes", d.len());
        let d: Value = serde_json::from_str(&d).unwrap();
        assert_eq!(d["data"]["truncated"], true);
        assert_eq!(d["data"]["analysis"]["summary"], Value::Null);
        assert_eq!(d["data"]["callId"], "c1");
    }
}
