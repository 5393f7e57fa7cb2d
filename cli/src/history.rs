//! The calls this machine started: what `ringback list` shows when the deployment has no listing
//! (`GET /api/v1/vapi/calls` answers 404: an older stack, or one without `CALL_INDEX_TABLE`).

use std::io::Write;
use std::path::PathBuf;

fn file() -> PathBuf {
    let dir = std::env::var_os("RINGBACK_CLI_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".ringback")))
        .unwrap_or_else(|| PathBuf::from(".ringback"));
    dir.join("cli-history")
}

pub fn remember(call_id: &str) {
    let path = file();
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        let _ = writeln!(f, "{call_id}");
    }
}

pub fn recent(limit: usize) -> Vec<String> {
    let text = std::fs::read_to_string(file()).unwrap_or_default();
    text.lines()
        .rev()
        .filter(|l| !l.trim().is_empty())
        .take(limit)
        .map(str::to_owned)
        .collect()
}
