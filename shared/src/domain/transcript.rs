//! Transcript text → `{speaker, text}` lines for the interaction log, as the old backend
//! split them, minus the stray `\r` it left at the end of Windows-style lines.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptLine {
    pub speaker: String,
    pub text: String,
}

pub fn parse_transcript(transcript: &str) -> Vec<TranscriptLine> {
    transcript
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
        .map(|line| match line.split_once(": ") {
            Some((speaker, text)) => TranscriptLine {
                speaker: speaker.trim().to_owned(),
                text: text.to_owned(),
            },
            None => TranscriptLine {
                speaker: "unknown".to_owned(),
                text: line.to_owned(),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(s: &str, t: &str) -> TranscriptLine {
        TranscriptLine {
            speaker: s.into(),
            text: t.into(),
        }
    }

    #[test]
    fn lines_speakers_and_leftovers() {
        let cases: Vec<(&str, Vec<TranscriptLine>)> = vec![
            ("", vec![]),
            ("\n \n", vec![]),
            (
                "AI: Hello\nUser: Hi: there",
                vec![l("AI", "Hello"), l("User", "Hi: there")],
            ),
            (
                "AI: Hello\r\nUser: Yes\r\n",
                vec![l("AI", "Hello"), l("User", "Yes")],
            ),
            ("no speaker here", vec![l("unknown", "no speaker here")]),
            ("AI:no space", vec![l("unknown", "AI:no space")]),
            ("bot: a\n\n\nuser: b", vec![l("bot", "a"), l("user", "b")]),
        ];
        for (input, want) in cases {
            assert_eq!(parse_transcript(input), want, "{input:?}");
        }
    }
}
