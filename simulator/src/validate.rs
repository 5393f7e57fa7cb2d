//! Strict validation of `POST /call` bodies, with Vapi's NestJS-style messages: class-validator
//! problems come back as a list, service-level problems as one string.

use serde_json::{json, Map, Value};

/// The top-level properties of Vapi's `CreateCallDTO`; anything else is refused.
const ALLOWED: [&str; 16] = [
    "assistantId",
    "assistant",
    "assistantOverrides",
    "assistantVersion",
    "squadId",
    "squad",
    "workflowId",
    "workflow",
    "phoneNumberId",
    "phoneNumber",
    "customer",
    "customerId",
    "customers",
    "name",
    "schedulePlan",
    "transport",
];

/// Parses and checks a create-call body; the error is the `message` of a 400 answer.
pub(crate) fn create_call(body: &[u8]) -> Result<Map<String, Value>, Value> {
    let req = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err(json!(["body must be an object"])),
        Err(e) => return Err(json!(format!("Unexpected JSON: {e}"))),
    };
    let mut errs: Vec<String> = req
        .keys()
        .filter(|k| !ALLOWED.contains(&k.as_str()))
        .map(|k| format!("property {k} should not exist"))
        .collect();
    for k in [
        "assistantId",
        "phoneNumberId",
        "name",
        "squadId",
        "workflowId",
    ] {
        if req.get(k).is_some_and(|v| !v.is_string()) {
            errs.push(format!("{k} must be a string"));
        }
    }
    for k in ["assistant", "assistantOverrides", "customer", "phoneNumber"] {
        if req.get(k).is_some_and(|v| !v.is_object()) {
            errs.push(format!(
                "nested property {k} must be either object or array"
            ));
        }
    }
    // Map indexing panics on a missing key, unlike Value's.
    let at = |k: &str| req.get(k).unwrap_or(&Value::Null);
    max_len(&mut errs, "name", at("name"), 40);
    let customer = at("customer");
    max_len(&mut errs, "customer.name", &customer["name"], 40);
    if customer.is_object() {
        match customer["number"].as_str() {
            None => errs.push("customer.number must be a string".into()),
            Some(n) if customer["numberE164CheckEnabled"] != json!(false) && !is_e164(n) => {
                errs.push("customer.number must be a valid phone number in the E.164 format".into())
            }
            Some(_) => {}
        }
    }
    for owner in ["assistantOverrides", "assistant"] {
        check_server(&mut errs, owner, at(owner));
    }
    if !errs.is_empty() {
        return Err(json!(errs));
    }
    check_semantics(&req).map(|()| req).map_err(Value::from)
}

/// Rules Vapi enforces past the DTO: who speaks, from which number, to whom.
fn check_semantics(req: &Map<String, Value>) -> Result<(), &'static str> {
    let has = |k: &str| req.get(k).is_some_and(|v| !v.is_null());
    if has("squadId") || has("squad") || has("workflowId") || has("workflow") {
        return Err("The simulator only places calls with `assistantId` or `assistant`.");
    }
    match (has("assistantId"), has("assistant")) {
        (false, false) => {
            return Err("Couldn't Get Assistant. Need Either `assistant` Or `assistantId`.")
        }
        (true, true) => return Err("Only one of `assistant` or `assistantId` can be provided."),
        (false, true) if has("assistantVersion") => {
            return Err("`assistantVersion` can only be used with `assistantId`.")
        }
        _ => {}
    }
    if !has("phoneNumberId") && !has("phoneNumber") {
        return Err("Need Either `phoneNumberId` Or `phoneNumber`.");
    }
    if has("customers") {
        return Err("The simulator does not place batch calls (`customers`).");
    }
    if !has("customer") {
        return Err("Need `customer` with `customer.number` for an outbound phone call.");
    }
    Ok(())
}

/// `server` (url, timeoutSeconds, headers) and `serverMessages` under `assistantOverrides` or `assistant`.
fn check_server(errs: &mut Vec<String>, owner: &str, obj: &Value) {
    let server = &obj["server"];
    if let Some(url) = server.get("url") {
        let ok = url
            .as_str()
            .and_then(|u| reqwest::Url::parse(u).ok())
            .is_some_and(|u| matches!(u.scheme(), "http" | "https"));
        if !ok {
            errs.push(format!("{owner}.server.url must be a URL address"));
        }
    }
    if let Some(t) = server.get("timeoutSeconds") {
        match t.as_f64() {
            None => errs.push(format!("{owner}.server.timeoutSeconds must be a number")),
            Some(t) if t < 1.0 => errs.push(format!(
                "{owner}.server.timeoutSeconds must not be less than 1"
            )),
            Some(t) if t > 300.0 => errs.push(format!(
                "{owner}.server.timeoutSeconds must not be greater than 300"
            )),
            _ => {}
        }
    }
    if let Some(plan) = server.get("backoffPlan") {
        check_backoff_plan(errs, &format!("{owner}.server.backoffPlan"), plan);
    }
    if server.get("headers").is_some_and(|h| !h.is_object()) {
        errs.push(format!("{owner}.server.headers must be an object"));
    }
    if let Some(m) = obj.get("serverMessages") {
        let ok = m.as_array().is_some_and(|a| a.iter().all(Value::is_string));
        if !ok {
            errs.push(format!(
                "{owner}.serverMessages must be an array of strings"
            ));
        }
    }
}

/// `BackoffPlan`: `type` fixed | exponential, `maxRetries` 0-10, `baseDelaySeconds` 0-10,
/// `excludedStatusCodes` numbers; nothing else.
fn check_backoff_plan(errs: &mut Vec<String>, path: &str, plan: &Value) {
    let Some(obj) = plan.as_object() else {
        errs.push(format!("{path} must be an object"));
        return;
    };
    for key in obj.keys() {
        if !matches!(
            key.as_str(),
            "type" | "maxRetries" | "baseDelaySeconds" | "excludedStatusCodes"
        ) {
            errs.push(format!("{path}.property {key} should not exist"));
        }
    }
    if !matches!(plan["type"].as_str(), Some("fixed" | "exponential")) {
        errs.push(format!(
            "{path}.type must be one of the following values: fixed, exponential"
        ));
    }
    for (key, max) in [("maxRetries", 10.0), ("baseDelaySeconds", 10.0)] {
        if let Some(v) = plan.get(key) {
            if !v.as_f64().is_some_and(|n| (0.0..=max).contains(&n)) {
                errs.push(format!("{path}.{key} must be a number from 0 to {max}"));
            }
        }
    }
    if let Some(codes) = plan.get("excludedStatusCodes") {
        if !codes
            .as_array()
            .is_some_and(|a| a.iter().all(Value::is_u64))
        {
            errs.push(format!(
                "{path}.excludedStatusCodes must be an array of numbers"
            ));
        }
    }
}

fn max_len(errs: &mut Vec<String>, path: &str, v: &Value, max: usize) {
    if v.as_str().is_some_and(|s| s.chars().count() > max) {
        errs.push(format!(
            "{path} must be shorter than or equal to {max} characters"
        ));
    }
}

/// `+` then 7 to 15 digits, the first not 0.
fn is_e164(n: &str) -> bool {
    n.strip_prefix('+').is_some_and(|d| {
        (7..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    fn ok_req() -> Value {
        json!({"assistantId": "a", "phoneNumberId": "p", "customer": {"number": "+14155550123"}})
    }

    #[test]
    fn accepts_the_fixture_request() {
        let fixture = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/vapi/create-call-request.json"
        );
        let sample = std::fs::read(fixture).expect(fixture);
        assert!(create_call(&sample).is_ok());
        assert!(create_call(&body(ok_req())).is_ok());
    }

    #[test]
    fn refuses_with_vapi_messages() {
        let mut unknown = ok_req();
        unknown["metadata"] = json!({});
        let mut both = ok_req();
        both["assistant"] = json!({});
        let mut bad_number = ok_req();
        bad_number["customer"]["number"] = json!("4155550123");
        let mut long_name = ok_req();
        long_name["customer"]["name"] = json!("x".repeat(41));
        let mut bad_url = ok_req();
        bad_url["assistantOverrides"] = json!({"server": {"url": "not a url"}});
        let mut bad_plan = ok_req();
        bad_plan["assistantOverrides"] = json!({"server": {"url": "https://x/h",
            "backoffPlan": {"type": "linear", "maxRetries": 11, "jitter": true}}});
        let cases = [
            (unknown, json!(["property metadata should not exist"])),
            (
                bad_plan,
                json!([
                    "assistantOverrides.server.backoffPlan.property jitter should not exist",
                    "assistantOverrides.server.backoffPlan.type must be one of the following values: fixed, exponential",
                    "assistantOverrides.server.backoffPlan.maxRetries must be a number from 0 to 10"
                ]),
            ),
            (
                both,
                json!("Only one of `assistant` or `assistantId` can be provided."),
            ),
            (
                bad_number,
                json!(["customer.number must be a valid phone number in the E.164 format"]),
            ),
            (
                long_name,
                json!(["customer.name must be shorter than or equal to 40 characters"]),
            ),
            (
                bad_url,
                json!(["assistantOverrides.server.url must be a URL address"]),
            ),
            (
                json!({"assistantId": "a", "customer": {"number": "+14155550123"}}),
                json!("Need Either `phoneNumberId` Or `phoneNumber`."),
            ),
        ];
        for (req, want) in cases {
            assert_eq!(create_call(&body(req.clone())), Err(want), "{req}");
        }
        assert!(create_call(b"[1]").is_err() && create_call(b"{").is_err());
    }
}
