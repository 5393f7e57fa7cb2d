//! endedReason → outcome (api.md §3). Vapi has ~600 reasons and adds more monthly, so this is
//! substring rules over a free string, first match wins.

use super::Outcome;

pub fn outcome_from_ended_reason(reason: &str) -> Outcome {
    let r = reason.trim().to_ascii_lowercase();
    if r.contains("voicemail") {
        Outcome::Voicemail
    } else if r == "customer-did-not-answer"
        || r == "customer-busy"
        || r.contains("no-answer")
        || r.contains("failed-to-connect")
        || r.contains("misdialed")
    {
        Outcome::NoAnswer
    } else if r.contains("timed-out") || r.contains("timeout") {
        Outcome::Timeout
    } else if r.contains("error")
        || r.contains("fault")
        || r.contains("failed")
        || r.starts_with("call.start.error")
    {
        Outcome::Error
    } else {
        Outcome::Completed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Outcome::*;

    #[test]
    fn every_rule_in_order() {
        let cases = [
            // The seed's mistakes this fixes.
            ("customer-did-not-answer", NoAnswer),
            ("silence-timed-out", Timeout),
            ("customer-busy", NoAnswer),
            ("unknown-reason-not-seen", Completed),
            // Rule 1 wins over everything.
            ("voicemail", Voicemail),
            (
                "call.in-progress.error-voicemail-detection-failed",
                Voicemail,
            ),
            ("VOICEMAIL", Voicemail),
            // Rule 2.
            ("call.forwarding.no-answer", NoAnswer),
            ("twilio-failed-to-connect-call", NoAnswer),
            ("vonage-failed-to-connect-call", NoAnswer),
            ("twilio-reported-customer-misdialed", NoAnswer),
            (
                "call.in-progress.error-sip-outbound-call-failed-to-connect",
                NoAnswer,
            ),
            // Rule 3.
            ("exceeded-max-duration", Completed),
            ("pipeline-error-openai-llm-timeout", Timeout),
            (
                "customer-did-not-give-microphone-permission-timed-out",
                Timeout,
            ),
            // Rule 4.
            ("assistant-error", Error),
            ("pipeline-error-openai-llm-failed", Error),
            (
                "call.in-progress.error-providerfault-outbound-sip-503",
                Error,
            ),
            ("call.start.error-get-phone-number", Error),
            ("call.start.x", Completed),
            ("phone-call-provider-closed-websocket", Completed),
            // Rule 5.
            ("customer-ended-call", Completed),
            ("assistant-ended-call", Completed),
            ("manually-canceled", Completed),
            ("  Customer-Ended-Call ", Completed),
            ("", Completed),
        ];
        for (reason, want) in cases {
            assert_eq!(outcome_from_ended_reason(reason), want, "{reason:?}");
        }
    }
}
