//! Plausible content for a provider-search call: the assistant phones a local service provider
//! (a plumber, an electrician...) to ask about availability and rate.

use serde_json::{json, Value};

use crate::scenario::Scenario;

/// What the conversation is about, read from the create-call request.
#[derive(Debug, Clone)]
pub(crate) struct CallContext {
    pub provider: String,
    pub service: String,
    pub location: Option<String>,
    pub first_message: Option<String>,
    pub system_prompt: Option<String>,
    /// Picks one of the answer variants, so different calls say different things.
    pub seed: u64,
}

impl CallContext {
    /// Reads names from `assistantOverrides.metadata` (ringback's correlation fields), falling
    /// back to the customer's name without its `[scenario]` tag.
    pub fn from_request(call: &Value, seed: u64) -> Self {
        let meta = |k: &str| {
            ["assistantOverrides", "assistant"]
                .iter()
                .find_map(|p| call[p]["metadata"][k].as_str())
                .filter(|s| !s.trim().is_empty())
                .map(str::to_string)
        };
        let customer = call["customer"]["name"]
            .as_str()
            .map(strip_tag)
            .filter(|s| !s.is_empty());
        let prompt = |k: &str| {
            call["assistantOverrides"][k]
                .as_str()
                .or_else(|| call["assistant"][k].as_str())
                .map(|s| substitute(s, &call["assistantOverrides"]["variableValues"]))
        };
        CallContext {
            provider: meta("providerName")
                .map(|p| strip_tag(&p))
                .filter(|p| !p.is_empty())
                .or(customer)
                .unwrap_or_else(|| "the provider".into()),
            service: meta("serviceNeeded").unwrap_or_else(|| "plumbing repair".into()),
            location: meta("location"),
            first_message: prompt("firstMessage"),
            system_prompt: call["assistant"]["model"]["messages"][0]["content"]
                .as_str()
                .map(str::to_string),
            seed,
        }
    }
}

/// `"Acme Plumbing [busy]"` → `"Acme Plumbing"`.
fn strip_tag(name: &str) -> String {
    name.split('[').next().unwrap_or(name).trim().to_string()
}

/// Fills LiquidJS-style `{{var}}` placeholders from `variableValues`, as Vapi does for prompts.
fn substitute(text: &str, vars: &Value) -> String {
    let mut out = text.to_string();
    if let Some(map) = vars.as_object() {
        for (k, v) in map {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            out = out.replace(&format!("{{{{{k}}}}}"), &v);
            out = out.replace(&format!("{{{{ {k} }}}}"), &v);
        }
    }
    out
}

/// One spoken turn.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Turn {
    /// `bot` or `user`, Vapi's artifact roles.
    pub role: &'static str,
    pub text: String,
}

/// Everything the call produced: turns, how it ended and the (eventual) analysis.
#[derive(Debug, Clone)]
pub(crate) struct Conversation {
    pub system: String,
    pub turns: Vec<Turn>,
    pub ended_reason: &'static str,
    /// The analysis `GET /call/{id}` returns once ready; `{}` when Vapi would produce none.
    pub analysis: Value,
    /// The thinner analysis the end-of-call report carries (analysis lags in real Vapi).
    pub report_analysis: Value,
}

impl Conversation {
    /// Vapi's transcript: one `AI: ...` / `User: ...` line per turn.
    pub fn transcript(&self) -> String {
        self.turns
            .iter()
            .map(|t| {
                let who = if t.role == "bot" { "AI" } else { "User" };
                format!("{who}: {}", t.text)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Artifact messages with `time`/`endTime` (epoch ms), `secondsFromStart` and `duration`,
    /// spread over the real talk time in proportion to each turn's length.
    pub fn messages(&self, started_ms: i64, ended_ms: i64) -> Vec<Value> {
        let span = (ended_ms - started_ms).max(1) as f64;
        let total: usize = self.turns.iter().map(|t| t.text.len() + 20).sum();
        let mut out = vec![json!({
            "role": "system", "message": self.system, "time": started_ms, "secondsFromStart": 0
        })];
        let mut offset = 0.0_f64;
        for t in &self.turns {
            let dur = span * (t.text.len() + 20) as f64 / total.max(1) as f64;
            let time = started_ms + offset as i64;
            let mut m = json!({
                "role": t.role, "message": t.text, "time": time,
                "endTime": time + (dur * 0.9) as i64,
                "secondsFromStart": (offset / 10.0).round() / 100.0,
                "duration": (dur * 0.9) as i64,
            });
            if t.role == "bot" {
                m["source"] = json!("");
            }
            out.push(m);
            offset += dur;
        }
        out
    }

    /// Billed minutes as if each word took 0.4 s, so costs look real even on a 3 s demo call.
    pub fn nominal_minutes(&self) -> f64 {
        let words: usize = self
            .turns
            .iter()
            .map(|t| t.text.split_whitespace().count())
            .sum();
        words as f64 * 0.4 / 60.0
    }
}

/// Builds the conversation of a call that ended in `scenario`.
pub(crate) fn conversation(scenario: Scenario, ctx: &CallContext) -> Conversation {
    let system = ctx.system_prompt.clone().unwrap_or_else(|| {
        format!(
            "You are a friendly assistant calling local service providers to ask about availability and rates for {}.",
            ctx.service
        )
    });
    match scenario {
        Scenario::NoAnswer | Scenario::Busy | Scenario::Refused => Conversation {
            system,
            turns: Vec::new(),
            ended_reason: if scenario == Scenario::Busy {
                "customer-busy"
            } else {
                "customer-did-not-answer"
            },
            analysis: json!({}),
            report_analysis: json!({}),
        },
        Scenario::Voicemail => voicemail(system, ctx),
        Scenario::Oversized => {
            let mut c = answered(system, ctx);
            c.analysis["summary"] = json!(incompressible(OVERSIZED_SUMMARY_BYTES, ctx.seed));
            c
        }
        _ => answered(system, ctx),
    }
}

/// The `oversized` scenario's summary: past DynamoDB's 400 KB item even gzipped.
pub const OVERSIZED_SUMMARY_BYTES: usize = 600 * 1024;

/// `len` characters from a seeded xorshift, six random bits each (base64's alphabet): gzip
/// saves a quarter and no more, so 600 KB stays about 450 KB.
fn incompressible(len: usize, seed: u64) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x = seed | 1;
    let mut out = String::with_capacity(len + 10);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend((0..10).map(|i| char::from(ALPHABET[((x >> (6 * i)) & 63) as usize])));
    }
    out.truncate(len);
    out
}

fn voicemail(system: String, ctx: &CallContext) -> Conversation {
    let p = &ctx.provider;
    let turns = vec![
        user(format!("Hi, you've reached {p}. We can't come to the phone right now. Please leave your name, number and a short message after the tone and we'll get back to you.")),
        bot(format!("Hello, this is an assistant calling on behalf of a customer who needs help with {}. We'll try you again later, thank you.", ctx.service)),
    ];
    let structured = structured(
        "unclear",
        Value::Null,
        "unknown",
        false,
        Value::Null,
        "voicemail",
        "Reached voicemail; a message was left.",
    );
    Conversation {
        system,
        turns,
        ended_reason: "voicemail",
        analysis: json!({
            "summary": format!("The call to {p} went to voicemail. The assistant left a short message asking for a call back."),
            "structuredData": structured,
            "successEvaluation": "false",
        }),
        report_analysis: json!({}),
    }
}

fn answered(system: String, ctx: &CallContext) -> Conversation {
    let p = &ctx.provider;
    let s = &ctx.service;
    let place = ctx
        .location
        .as_deref()
        .map_or_else(String::new, |l| format!(" in {l}"));
    let opening = ctx.first_message.clone().unwrap_or_else(|| {
        format!("Hi, is this {p}? I'm an assistant calling for a customer{place} who needs help with {s}. Do you have a moment?")
    });
    let names = ["Mike", "Sarah", "Luis", "Priya"];
    let tech = names[(ctx.seed % names.len() as u64) as usize];
    // Three plausible answers: available and fair, available but pricey, fully booked.
    let variant = (ctx.seed / 7) % 3;
    let mut turns = vec![
        bot(opening),
        user(format!("Yes, this is {p}, how can I help?")),
    ];
    let (availability, earliest, rate, outcome, recommended, met, reason, summary, notes);
    match variant {
        0 => {
            turns.extend([
                bot("Could someone come out soon, and what do you charge?".into()),
                user(format!("{tech} can be there tomorrow morning between 8 and 10. We charge $95 an hour plus parts, with a one hour minimum.")),
                bot(format!("Great, and {tech} would handle the whole job alone?")),
                user(format!("Yes, {tech} does these on their own. Usually done in an hour or two.")),
                bot("Perfect, thank you. The customer will be in touch to confirm. Goodbye!".into()),
            ]);
            (availability, earliest, rate) =
                ("available", json!("tomorrow 8-10am"), "$95/hour plus parts");
            (outcome, recommended, met, reason) = ("positive", true, true, "assistant-ended-call");
            summary = format!("{p} can send {tech} tomorrow morning between 8 and 10 for {s} at $95 an hour plus parts, one hour minimum. {tech} works alone; all criteria met.");
            notes = "One hour minimum charge.";
        }
        1 => {
            turns.extend([
                bot("When could someone come out, and what would it cost?".into()),
                user(format!("Earliest is Thursday afternoon. It's a $150 call-out fee, then $120 an hour. {tech} would come with an apprentice.")),
                bot("Understood. Is there any chance of something sooner?".into()),
                user("Not this week, sorry, we're fully booked until Thursday.".into()),
                bot("Thanks for the information, I'll pass it on. Have a good day.".into()),
            ]);
            (availability, earliest, rate) = (
                "available",
                json!("Thursday afternoon"),
                "$150 call-out + $120/hour",
            );
            (outcome, recommended, met, reason) = ("neutral", false, false, "customer-ended-call");
            summary = format!("{p} is available Thursday afternoon for {s}; $150 call-out fee plus $120 an hour. Two people would attend, so not all criteria are met.");
            notes = "Sends a technician with an apprentice.";
        }
        _ => {
            turns.extend([
                bot("Could someone come out in the next day or two?".into()),
                user("I'm afraid we're booked solid for the next two weeks. Our rate is $110 an hour if you want to book later.".into()),
                bot("Thank you, that's helpful. I'll let the customer know. Goodbye.".into()),
            ]);
            (availability, earliest, rate) = ("unavailable", Value::Null, "$110/hour");
            (outcome, recommended, met, reason) =
                ("negative", false, false, "assistant-ended-call");
            summary = format!("{p} is fully booked for the next two weeks and cannot help with {s} soon; rate $110 an hour.");
            notes = "Booked for two weeks.";
        }
    }
    let tech_name = if variant == 2 {
        Value::Null
    } else {
        json!(tech)
    };
    let mut data = structured(
        availability,
        earliest,
        rate,
        variant == 0,
        tech_name,
        outcome,
        notes,
    );
    data["all_criteria_met"] = json!(met);
    data["recommended"] = json!(recommended);
    Conversation {
        system,
        turns,
        ended_reason: reason,
        analysis: json!({
            "summary": summary,
            "structuredData": data,
            "successEvaluation": if recommended { "true" } else { "false" },
        }),
        // Vapi's summary step times out at 5 s by default and then leaves the summary empty;
        // the structured data is not in the report yet either.
        report_analysis: json!({ "summary": "" }),
    }
}

/// The StructuredCallData object ringback's assistant asks Vapi to extract.
fn structured(
    availability: &str,
    earliest: Value,
    rate: &str,
    single: bool,
    technician: Value,
    outcome: &str,
    notes: &str,
) -> Value {
    json!({
        "availability": availability,
        "earliest_availability": earliest,
        "estimated_rate": rate,
        "single_person_found": single,
        "technician_name": technician,
        "all_criteria_met": false,
        "call_outcome": outcome,
        "recommended": false,
        "notes": notes,
    })
}

fn bot(text: String) -> Turn {
    Turn { role: "bot", text }
}

fn user(text: String) -> Turn {
    Turn { role: "user", text }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(seed: u64) -> CallContext {
        let req = json!({
            "customer": {"name": "Acme Plumbing [answered]"},
            "assistantOverrides": {
                "metadata": {"serviceNeeded": "a leaking tap"},
                "variableValues": {"who": "Acme"},
                "firstMessage": "Hello {{who}}, quick question about a leaking tap."
            }
        });
        CallContext::from_request(&req, seed)
    }

    #[test]
    fn answered_calls_have_a_long_transcript_and_full_analysis() {
        for seed in 0..30 {
            let c = conversation(Scenario::Answered, &ctx(seed));
            let t = c.transcript();
            assert!(
                t.len() > 50 && t.starts_with("AI: Hello Acme, quick"),
                "{t}"
            );
            assert!(t.contains("User: Yes, this is Acme Plumbing,"), "{t}");
            let data = &c.analysis["structuredData"];
            for k in [
                "availability",
                "earliest_availability",
                "estimated_rate",
                "single_person_found",
                "technician_name",
                "all_criteria_met",
                "call_outcome",
                "recommended",
                "notes",
            ] {
                assert!(data.get(k).is_some(), "missing {k}");
            }
            assert!(c.report_analysis.get("structuredData").is_none());
        }
    }

    #[test]
    fn messages_fit_inside_the_call_and_keep_order() {
        let c = conversation(Scenario::Voicemail, &ctx(1));
        let m = c.messages(1_000, 4_000);
        assert_eq!(m[0]["role"], "system");
        assert_eq!(m.len(), c.turns.len() + 1);
        let times: Vec<i64> = m.iter().map(|x| x["time"].as_i64().unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]) && times[times.len() - 1] < 4_000);
    }

    #[test]
    fn unanswered_calls_have_no_transcript() {
        let c = conversation(Scenario::Busy, &ctx(0));
        assert_eq!(
            (c.transcript().as_str(), c.ended_reason),
            ("", "customer-busy")
        );
    }
}
