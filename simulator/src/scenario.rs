//! Scenarios: what a simulated call does, chosen per call from the customer's name or number.

use std::fmt;
use std::str::FromStr;

/// How one simulated call behaves. See the table in `simulator/README.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Scenario {
    /// Rings, is answered, talks, ends normally; GET becomes complete after the analysis delay.
    #[default]
    Answered,
    /// Rings, nobody answers: `customer-did-not-answer`, empty transcript, no analysis.
    NoAnswer,
    /// Ends `customer-busy` right after being queued.
    Busy,
    /// Answered by voicemail: `voicemail`, the transcript is the greeting.
    Voicemail,
    /// The call runs and GET completes, but no webhook is ever sent.
    NoWebhook,
    /// Every webhook is delivered twice.
    DuplicateWebhooks,
    /// `end-of-call-report` first, then the status updates, then a late `in-progress`.
    OutOfOrder,
    /// `GET /call/{id}` answers 500 for the first N requests of that call.
    ApiFlaky,
    /// `POST /call` answers 400; no call is created.
    Refused,
    /// `GET /call/{id}` never becomes complete (short transcript, no analysis).
    NeverComplete,
    /// `POST /call` creates the call (it runs as `Answered`), then answers 504 as Vapi's edge does
    /// when the answer is lost: the caller cannot tell that the call exists.
    LostAnswer,
    /// As `Answered`, but GET's `analysis.summary` is 600 KB of random text:
    /// more than one DynamoDB item or one EventBridge entry holds, even gzipped.
    Oversized,
}

/// A scenario name that is not in the list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scenario {0:?} (known: answered, no-answer, busy, voicemail, no-webhook, duplicate-webhooks, out-of-order, api-flaky, refused, never-complete, lost-answer, oversized)")]
pub struct UnknownScenario(pub String);

impl Scenario {
    /// Every scenario, in documentation order.
    pub const ALL: [Scenario; 12] = [
        Scenario::Answered,
        Scenario::NoAnswer,
        Scenario::Busy,
        Scenario::Voicemail,
        Scenario::NoWebhook,
        Scenario::DuplicateWebhooks,
        Scenario::OutOfOrder,
        Scenario::ApiFlaky,
        Scenario::Refused,
        Scenario::NeverComplete,
        Scenario::LostAnswer,
        Scenario::Oversized,
    ];

    /// The kebab-case word that selects this scenario.
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Answered => "answered",
            Scenario::NoAnswer => "no-answer",
            Scenario::Busy => "busy",
            Scenario::Voicemail => "voicemail",
            Scenario::NoWebhook => "no-webhook",
            Scenario::DuplicateWebhooks => "duplicate-webhooks",
            Scenario::OutOfOrder => "out-of-order",
            Scenario::ApiFlaky => "api-flaky",
            Scenario::Refused => "refused",
            Scenario::NeverComplete => "never-complete",
            Scenario::LostAnswer => "lost-answer",
            Scenario::Oversized => "oversized",
        }
    }

    /// Picks the scenario of a new call: a `[word]` tag in the customer's name, then any scenario
    /// word inside the name, then the number's last four digits (`00NN`), else `Answered`.
    pub fn select(customer_name: Option<&str>, customer_number: Option<&str>) -> Scenario {
        customer_name
            .and_then(Self::from_name)
            .or_else(|| customer_number.and_then(Self::from_number))
            .unwrap_or_default()
    }

    /// The scenario named inside a customer name, e.g. `"Acme Plumbing [busy]"` or `"no answer"`.
    pub fn from_name(name: &str) -> Option<Scenario> {
        // A bracketed tag is explicit, so it wins over words that merely occur in the name.
        let tagged = name
            .split('[')
            .skip(1)
            .filter_map(|rest| rest.split(']').next())
            .find_map(|tag| tag.parse().ok());
        if tagged.is_some() {
            return tagged;
        }
        let norm = normalize(name);
        // Longest words first, so no word can shadow a longer one that contains it.
        let mut all = Self::ALL;
        all.sort_by_key(|s| std::cmp::Reverse(s.as_str().len()));
        all.into_iter().find(|s| norm.contains(s.as_str()))
    }

    /// The fallback table on the number's last four digits: `0001`..`0009` select the nine
    /// scenarios after `answered` in [`Scenario::ALL`] order; anything else selects nothing.
    pub fn from_number(number: &str) -> Option<Scenario> {
        let digits: Vec<u8> = number.bytes().filter(u8::is_ascii_digit).collect();
        match digits.len().checked_sub(4).map(|i| &digits[i..]) {
            Some([b'0', b'0', b'0', d @ b'1'..=b'9']) => Some(Self::ALL[usize::from(d - b'0')]),
            _ => None,
        }
    }

    /// Whether the callee picks up (a person or a voicemail box).
    pub(crate) fn is_answered(self) -> bool {
        !matches!(
            self,
            Scenario::NoAnswer | Scenario::Busy | Scenario::Refused
        )
    }
}

/// Lower-case, with spaces and underscores as dashes, so "No Answer" and "no_answer" match.
fn normalize(s: &str) -> String {
    s.trim()
        .chars()
        .map(|c| match c {
            ' ' | '_' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

impl FromStr for Scenario {
    type Err = UnknownScenario;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = normalize(s);
        Self::ALL
            .into_iter()
            .find(|sc| sc.as_str() == norm)
            .ok_or_else(|| UnknownScenario(s.to_string()))
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_name_and_its_variants() {
        for s in Scenario::ALL {
            assert_eq!(s.as_str().parse::<Scenario>(), Ok(s));
            assert_eq!(s.as_str().to_uppercase().replace('-', "_").parse(), Ok(s));
        }
        assert!("sometimes".parse::<Scenario>().is_err());
    }

    #[test]
    fn selects_from_name_then_number() {
        let cases = [
            (Some("Acme Plumbing [busy]"), None, Scenario::Busy),
            (Some("busy"), Some("+14155550003"), Scenario::Busy),
            (Some("Joe NO ANSWER"), None, Scenario::NoAnswer),
            (
                Some("x [duplicate_webhooks]"),
                None,
                Scenario::DuplicateWebhooks,
            ),
            // The tag wins over a scenario word elsewhere in the name.
            (Some("Busy Bee [voicemail]"), None, Scenario::Voicemail),
            (Some("never-complete"), None, Scenario::NeverComplete),
            (
                Some("Acme Plumbing"),
                Some("+14155550003"),
                Scenario::Voicemail,
            ),
            (None, Some("+14155550008"), Scenario::Refused),
            (None, Some("+14155550123"), Scenario::Answered),
            (None, Some("+14155550000"), Scenario::Answered),
            (None, Some("+14155550010"), Scenario::Answered),
            (None, None, Scenario::Answered),
        ];
        for (name, number, want) in cases {
            assert_eq!(Scenario::select(name, number), want, "{name:?} {number:?}");
        }
    }
}
