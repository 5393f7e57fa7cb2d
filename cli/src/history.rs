//! The calls this machine started, for `ringback list`: the API has no listing endpoint (a scan of
//! the calls table is what this design avoids), so the CLI remembers its own.

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
