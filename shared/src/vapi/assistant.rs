//! The `POST /call` body for a request (vapi.md §1.2; the assistants are the old backend's): who speaks (a saved assistant,
//! the custom prompt, or the provider-search / direct-task assistant), who is called, and where
//! the webhooks go. Correlation ids travel in `assistantOverrides.metadata`: Vapi rejects unknown
//! top-level fields.

use serde_json::{json, Value};

use crate::config::DeploymentId;
use crate::domain::CallRequest;

/// Deployment settings that shape every call.
#[derive(Clone)]
pub struct CallSettings {
    pub phone_number_id: String,
    /// A saved assistant to use instead of the inline one.
    pub assistant_id: Option<String>,
    pub webhook_url: String,
    /// Sent back to us by Vapi in `X-Vapi-Secret` on every webhook of this call.
    pub webhook_secret: Option<String>,
    /// Which deployment placed the call (`DEPLOYMENT_ID`), carried in its metadata.
    pub deployment_id: DeploymentId,
}

impl std::fmt::Debug for CallSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallSettings")
            .field("phone_number_id", &self.phone_number_id)
            .field("assistant_id", &self.assistant_id)
            .field("webhook_url", &self.webhook_url)
            .field("deployment_id", &self.deployment_id)
            .finish_non_exhaustive()
    }
}

/// Vapi limits `customer.name` to 40 characters.
fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Vapi retries a webhook only when the call's server has a backoff plan (vapi.md §4): without
/// one, a 503 from our webhook (storage or queue down) would lose the delivery. Exponential from
/// 1 s, six retries: about a minute in all. Answers that a retry cannot change are not retried.
pub fn webhook_backoff_plan() -> Value {
    json!({
        "type": "exponential",
        "maxRetries": 6,
        "baseDelaySeconds": 1,
        "excludedStatusCodes": [400, 401, 403, 404, 413],
    })
}

/// The metadata key that carries the placing attempt's id (see [`crate::ports::Attempt`]).
pub const ATTEMPT_ID_KEY: &str = "ringbackAttemptId";
/// The metadata key that carries the placing deployment's identity ([`DeploymentId`]).
pub const DEPLOYMENT_ID_KEY: &str = "ringbackDeploymentId";

/// The body for placing `req`, tagged with the placing attempt's id.
pub fn create_call_body(req: &CallRequest, s: &CallSettings, attempt_id: &str) -> Value {
    let metadata = json!({
        ATTEMPT_ID_KEY: attempt_id,
        DEPLOYMENT_ID_KEY: s.deployment_id.as_str(),
        "providerId": req.provider_id.clone().unwrap_or_default(),
        "serviceRequestId": req.service_request_id.clone().unwrap_or_default(),
        "providerName": req.provider_name,
        "providerPhone": req.provider_phone.as_str(),
        "serviceNeeded": req.service_needed,
        "userCriteria": req.user_criteria,
        "location": req.location,
        "urgency": req.urgency.as_str(),
        "callMethod": "direct_vapi",
    });
    let mut metadata = metadata;
    if let Some(url) = &req.callback_url {
        // Carried with the call, so a record rebuilt from Vapi still knows where to push.
        metadata["callbackUrl"] = json!(url);
    }
    let mut server = json!({
        "url": s.webhook_url,
        "timeoutSeconds": 20,
        "backoffPlan": webhook_backoff_plan(),
    });
    if let Some(secret) = &s.webhook_secret {
        server["headers"] = json!({"X-Vapi-Secret": secret});
    }
    let mut overrides = json!({
        "metadata": metadata,
        "server": server,
        "serverMessages": ["status-update", "end-of-call-report"],
        "variableValues": {
            "providerName": req.provider_name, "serviceNeeded": req.service_needed,
            "location": req.location, "urgency": req.urgency.spoken(),
        },
    });
    let mut body = json!({
        "phoneNumberId": s.phone_number_id,
        "customer": {"number": req.provider_phone.as_str(), "name": truncate(&req.provider_name, 40)},
        "name": truncate(&format!("ringback {}", req.provider_name), 40),
    });
    match &s.assistant_id {
        Some(id) => {
            body["assistantId"] = json!(id);
            if let Some(cp) = &req.custom_prompt {
                overrides["firstMessage"] = json!(cp.first_message);
            }
        }
        None => body["assistant"] = inline_assistant(req),
    }
    body["assistantOverrides"] = overrides;
    body
}

fn inline_assistant(req: &CallRequest) -> Value {
    let (prefix, system, first, data_plan) = match (&req.custom_prompt, req.is_direct_task()) {
        (Some(cp), _) => {
            let mut system = cp.system_prompt.clone();
            if let Some(closing) = &cp.closing_script {
                system.push_str("\n\nWhen the task is done, close with: ");
                system.push_str(closing);
            }
            (
                "DirectTask-Dynamic",
                system,
                cp.first_message.clone(),
                direct_task_schema(),
            )
        }
        (None, true) => (
            "DirectTask",
            direct_task_prompt(req),
            "Hi, I'm calling on behalf of a client. Do you have a moment?".to_owned(),
            direct_task_schema(),
        ),
        (None, false) => (
            "Concierge",
            provider_search_prompt(req),
            format!(
                "Hi, is this {}? I'm calling on behalf of a client who needs a {}.",
                req.provider_name, req.service_needed
            ),
            provider_search_schema(),
        ),
    };
    json!({
        "name": truncate(&format!("{prefix}-{}", req.provider_name), 40),
        "voice": {"provider": "11labs", "voiceId": "21m00Tcm4TlvDq8ikWAM", "stability": 0.5, "similarityBoost": 0.75},
        "model": {"provider": "google", "model": "gemini-2.0-flash", "messages": [{"role": "system", "content": system}]},
        "transcriber": {"provider": "deepgram", "language": "en"},
        "firstMessage": first,
        "endCallFunctionEnabled": true,
        "analysisPlan": {
            "summaryPlan": {"enabled": true},
            "structuredDataPlan": {"enabled": true, "schema": data_plan},
            "successEvaluationPlan": {"enabled": true, "rubric": "Checklist"},
        },
    })
}

fn provider_search_prompt(r: &CallRequest) -> String {
    format!(
        "You are a polite concierge assistant calling {name}, a local {service} provider near {location}, \
         on behalf of a client. Find out whether they can help {urgency}, their earliest availability, \
         their estimated rate, and whether one qualified person would do the job. The client's criteria: {criteria}. \
         Check each criterion, note the technician's name if offered, never commit the client to anything, \
         thank them and end the call when you have the answers.",
        name = r.provider_name,
        service = r.service_needed,
        location = r.location,
        urgency = r.urgency.spoken(),
        criteria = if r.user_criteria.is_empty() { "none given" } else { r.user_criteria.as_str() },
    )
}

fn direct_task_prompt(r: &CallRequest) -> String {
    format!(
        "You are a polite assistant calling {name} on behalf of a client to complete this task: {criteria}. \
         Be concise, confirm what was agreed, note any next steps and the name of the person you spoke to, \
         then thank them and end the call.",
        name = r.provider_name,
        criteria = r.user_criteria,
    )
}

fn provider_search_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "availability": {"type": "string", "enum": ["available", "unavailable", "callback_requested", "unclear"]},
            "earliest_availability": {"type": "string"},
            "estimated_rate": {"type": "string"},
            "single_person_found": {"type": "boolean"},
            "technician_name": {"type": "string"},
            "all_criteria_met": {"type": "boolean"},
            "criteria_details": {"type": "object"},
            "call_outcome": {"type": "string", "enum": ["positive", "negative", "neutral", "no_answer", "voicemail"]},
            "recommended": {"type": "boolean"},
            "disqualified": {"type": "boolean"},
            "disqualification_reason": {"type": "string"},
            "notes": {"type": "string"}
        },
        "required": ["availability", "single_person_found", "all_criteria_met", "call_outcome"]
    })
}

fn direct_task_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "task_completed": {"type": "boolean"},
            "outcome": {"type": "string", "enum": ["success", "partial", "failed", "needs_followup"]},
            "resolution_details": {"type": "string"},
            "next_steps": {"type": "string"},
            "contact_name": {"type": "string"},
            "notes": {"type": "string"}
        },
        "required": ["task_completed", "outcome"]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::parse_call_request;

    fn request(extra: Value) -> CallRequest {
        let mut v = json!({"providerName": "Acme Plumbing and Heating of Greater Oakland", "providerPhone": "+14155550123",
            "serviceNeeded": "plumber", "userCriteria": "licensed", "location": "Oakland", "urgency": "immediate",
            "providerId": "p-1"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        parse_call_request(&v).unwrap()
    }

    fn settings(assistant_id: Option<&str>) -> CallSettings {
        CallSettings {
            phone_number_id: "pn-1".into(),
            assistant_id: assistant_id.map(Into::into),
            webhook_url: "https://x/api/v1/vapi/webhook".into(),
            webhook_secret: Some("s3cret".into()),
            deployment_id: DeploymentId::parse("stack-1").unwrap(),
        }
    }

    const ALLOWED_TOP: [&str; 6] = [
        "assistant",
        "assistantId",
        "assistantOverrides",
        "customer",
        "name",
        "phoneNumberId",
    ];

    #[test]
    fn inline_provider_search_call() {
        let b = create_call_body(&request(json!({})), &settings(None), "attempt-1");
        for k in b.as_object().unwrap().keys() {
            assert!(
                ALLOWED_TOP.contains(&k.as_str()),
                "Vapi rejects unknown top-level field {k}"
            );
        }
        assert_eq!(b["customer"]["number"], "+14155550123");
        assert_eq!(b["customer"]["name"].as_str().unwrap().chars().count(), 40);
        let o = &b["assistantOverrides"];
        assert_eq!(o["metadata"]["providerId"], "p-1");
        assert_eq!(o["metadata"]["callMethod"], "direct_vapi");
        assert_eq!(o["metadata"][ATTEMPT_ID_KEY], "attempt-1");
        assert_eq!(o["metadata"][DEPLOYMENT_ID_KEY], "stack-1");
        assert_eq!(o["server"]["url"], "https://x/api/v1/vapi/webhook");
        assert_eq!(o["server"]["headers"]["X-Vapi-Secret"], "s3cret");
        assert_eq!(o["server"]["backoffPlan"], webhook_backoff_plan());
        assert_eq!(
            o["serverMessages"],
            json!(["status-update", "end-of-call-report"])
        );
        assert!(b["assistant"]["name"]
            .as_str()
            .unwrap()
            .starts_with("Concierge-"));
        let prompt = b["assistant"]["model"]["messages"][0]["content"]
            .as_str()
            .unwrap();
        assert!(
            prompt.contains("Oakland")
                && prompt.contains("licensed")
                && prompt.contains("immediately")
        );
        assert!(b.get("assistantId").is_none());
    }

    #[test]
    fn saved_assistant_and_custom_prompt() {
        let b = create_call_body(&request(json!({})), &settings(Some("asst-1")), "attempt-1");
        assert_eq!(b["assistantId"], "asst-1");
        assert!(b.get("assistant").is_none());

        let custom = request(
            json!({"customPrompt": {"systemPrompt": "Do X", "firstMessage": "Hello!", "closingScript": "Bye"}}),
        );
        let b = create_call_body(&custom, &settings(None), "attempt-1");
        assert_eq!(b["assistant"]["firstMessage"], "Hello!");
        let sys = b["assistant"]["model"]["messages"][0]["content"]
            .as_str()
            .unwrap();
        assert!(sys.starts_with("Do X") && sys.ends_with("Bye"));
        assert!(
            b["assistant"]["analysisPlan"]["structuredDataPlan"]["schema"]["required"][0]
                == "task_completed"
        );

        let direct = request(json!({"serviceNeeded": "Direct Task"}));
        let b = create_call_body(&direct, &settings(None), "attempt-1");
        assert!(b["assistant"]["name"]
            .as_str()
            .unwrap()
            .starts_with("DirectTask-"));
    }
}
