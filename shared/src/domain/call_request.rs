//! A client's request to start a call (api.md §2, POST /api/v1/vapi/calls), read strictly: every bad
//! field is named with its JSON path, all at once.

use serde_json::{Map, Value};

/// An E.164 number: `+` then 7-15 digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct E164(String);

impl E164 {
    pub fn parse(s: &str) -> Option<Self> {
        let digits = s.strip_prefix('+')?;
        let ok = (7..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        ok.then(|| Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    Immediate,
    Within24Hours,
    Within2Days,
    Flexible,
}

impl Urgency {
    const ALL: [(&'static str, Urgency); 4] = [
        ("immediate", Urgency::Immediate),
        ("within_24_hours", Urgency::Within24Hours),
        ("within_2_days", Urgency::Within2Days),
        ("flexible", Urgency::Flexible),
    ];
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, u)| *u == self)
            .map(|(s, _)| *s)
            .unwrap_or("flexible")
    }
    /// How a person would say it in a prompt.
    pub fn spoken(self) -> &'static str {
        match self {
            Self::Immediate => "immediately",
            Self::Within24Hours => "within the next 24 hours",
            Self::Within2Days => "within the next 2 days",
            Self::Flexible => "whenever convenient",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomPrompt {
    pub system_prompt: String,
    pub first_message: String,
    pub closing_script: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRequest {
    pub provider_name: String,
    pub provider_phone: E164,
    pub service_needed: String,
    pub user_criteria: String,
    pub location: String,
    pub urgency: Urgency,
    pub provider_id: Option<String>,
    pub service_request_id: Option<String>,
    pub custom_prompt: Option<CustomPrompt>,
    /// Where completion events are pushed; which URLs are allowed is the deployment's choice
    /// ([`crate::domain::push::check_callback_url`]), checked by the initiator.
    pub callback_url: Option<String>,
}

impl CallRequest {
    /// The old backend's routing: these markers mean "a task for the user", not a provider search.
    pub fn is_direct_task(&self) -> bool {
        self.service_needed == "Direct Task" || self.location == "User Direct Request"
    }
}

/// One bad field: its JSON path and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub problem: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.problem)
    }
}

const TEXT_MAX: usize = 2000;
const KNOWN: [&str; 10] = [
    "providerName",
    "providerPhone",
    "serviceNeeded",
    "userCriteria",
    "location",
    "urgency",
    "providerId",
    "serviceRequestId",
    "customPrompt",
    "callbackUrl",
];

struct Reader<'a> {
    obj: &'a Map<String, Value>,
    prefix: &'static str,
    errors: Vec<FieldError>,
}

impl<'a> Reader<'a> {
    fn fail(&mut self, key: &str, problem: impl Into<String>) {
        self.errors.push(FieldError {
            path: format!("{}.{key}", self.prefix),
            problem: problem.into(),
        });
    }

    /// A string of `min..=max` characters (after trimming); `None` when absent and optional.
    fn text(&mut self, key: &str, min: usize, max: usize, required: bool) -> Option<String> {
        match self.obj.get(key) {
            None | Some(Value::Null) => {
                if required {
                    self.fail(key, "is required");
                }
                None
            }
            Some(Value::String(s)) => {
                let n = s.trim().chars().count();
                if n < min || s.chars().count() > max {
                    self.fail(key, format!("must be {min}-{max} characters (got {n})"));
                    None
                } else {
                    Some(s.trim().to_owned())
                }
            }
            Some(_) => {
                self.fail(key, "must be a string");
                None
            }
        }
    }
}

pub fn parse_call_request(v: &Value) -> Result<CallRequest, Vec<FieldError>> {
    let Some(obj) = v.as_object() else {
        return Err(vec![FieldError {
            path: "$".into(),
            problem: "must be a JSON object".into(),
        }]);
    };
    let mut r = Reader {
        obj,
        prefix: "$",
        errors: Vec::new(),
    };
    for key in obj.keys().filter(|k| !KNOWN.contains(&k.as_str())) {
        let key = key.clone();
        r.fail(&key, "is not a known field");
    }
    let provider_name = r.text("providerName", 1, 200, true);
    let phone_raw = r.text("providerPhone", 1, 32, true);
    let provider_phone = phone_raw.and_then(|p| {
        let parsed = E164::parse(&p);
        if parsed.is_none() {
            r.fail(
                "providerPhone",
                "must be E.164: '+' then 7-15 digits, e.g. +14155550123",
            );
        }
        parsed
    });
    let service_needed = r.text("serviceNeeded", 1, TEXT_MAX, true);
    let user_criteria = r.text("userCriteria", 0, TEXT_MAX, true);
    let location = r.text("location", 1, TEXT_MAX, true);
    let urgency = r.text("urgency", 1, 64, true).and_then(|u| {
        let found = Urgency::ALL.iter().find(|(s, _)| *s == u).map(|(_, v)| *v);
        if found.is_none() {
            r.fail(
                "urgency",
                "must be one of immediate, within_24_hours, within_2_days, flexible",
            );
        }
        found
    });
    let provider_id = r.text("providerId", 1, 200, false);
    let service_request_id = r.text("serviceRequestId", 1, 200, false);
    let callback_url = r.text("callbackUrl", 1, 2048, false);
    let custom_prompt = match obj.get("customPrompt") {
        None | Some(Value::Null) => None,
        Some(Value::Object(cp)) => {
            let mut c = Reader {
                obj: cp,
                prefix: "$.customPrompt",
                errors: Vec::new(),
            };
            let system_prompt = c.text("systemPrompt", 1, 20_000, true);
            let first_message = c.text("firstMessage", 1, TEXT_MAX, true);
            let closing_script = c.text("closingScript", 1, TEXT_MAX, false);
            r.errors.append(&mut c.errors);
            system_prompt
                .zip(first_message)
                .map(|(system_prompt, first_message)| CustomPrompt {
                    system_prompt,
                    first_message,
                    closing_script,
                })
        }
        Some(_) => {
            r.fail(
                "customPrompt",
                "must be an object {systemPrompt, firstMessage, closingScript?}",
            );
            None
        }
    };
    if !r.errors.is_empty() {
        return Err(r.errors);
    }
    Ok(CallRequest {
        provider_name: provider_name.expect("checked"),
        provider_phone: provider_phone.expect("checked"),
        service_needed: service_needed.expect("checked"),
        user_criteria: user_criteria.expect("checked"),
        location: location.expect("checked"),
        urgency: urgency.expect("checked"),
        provider_id,
        service_request_id,
        custom_prompt,
        callback_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid() -> Value {
        json!({"providerName": "Acme Plumbing", "providerPhone": "+14155550123", "serviceNeeded": "plumber",
               "userCriteria": "licensed, available this week", "location": "Oakland, CA", "urgency": "within_24_hours"})
    }

    fn paths(v: Value) -> Vec<String> {
        parse_call_request(&v)
            .unwrap_err()
            .into_iter()
            .map(|e| e.path)
            .collect()
    }

    #[test]
    fn a_valid_request() {
        let r = parse_call_request(&valid()).unwrap();
        assert_eq!(r.provider_phone.as_str(), "+14155550123");
        assert_eq!(r.urgency, Urgency::Within24Hours);
        assert!(!r.is_direct_task());
    }

    #[test]
    fn every_bad_field_is_named() {
        let bad = json!({"providerName": "", "providerPhone": "4155550123", "serviceNeeded": 5,
                         "location": "x".repeat(2001), "urgency": "asap", "extra": true,
                         "customPrompt": {"systemPrompt": ""}});
        let mut got = paths(bad);
        got.sort();
        assert_eq!(
            got,
            vec![
                "$.customPrompt.firstMessage",
                "$.customPrompt.systemPrompt",
                "$.extra",
                "$.location",
                "$.providerName",
                "$.providerPhone",
                "$.serviceNeeded",
                "$.urgency",
                "$.userCriteria"
            ]
        );
    }

    #[test]
    fn phone_numbers() {
        for (p, ok) in [
            ("+14155550123", true),
            ("+1234567", true),
            ("+123456", false),
            ("+1234567890123456", false),
            ("+1 415 555", false),
            ("14155550123", false),
            ("+04155550123", false),
        ] {
            assert_eq!(E164::parse(p).is_some(), ok, "{p}");
        }
    }

    #[test]
    fn non_objects_and_direct_tasks() {
        assert_eq!(paths(json!([1])), vec!["$"]);
        let mut v = valid();
        v["serviceNeeded"] = json!("Direct Task");
        assert!(parse_call_request(&v).unwrap().is_direct_task());
    }
}
