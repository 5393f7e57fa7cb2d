//! The runner is configured by the environment only: an argument given by mistake (`--help` typed
//! out of habit, a stray word) must answer and exit, never start a server the user did not ask for.

use std::process::Command;

fn run(arg: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ringback-local"))
        .arg(arg)
        // Were an argument ignored, the runner would go on to start: a PORT it refuses makes that end at
        // once (exit 2, no usage on stdout) instead of serving until the test times out.
        .env("PORT", "not-a-port")
        .env("RINGBACK_IN_MEMORY", "1")
        .output()
        .expect("ringback-local runs")
}

#[test]
fn help_prints_the_usage_and_exits() {
    let out = run("--help");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("usage: ringback-local"), "{text}");
    assert!(text.contains("RINGBACK_DATA_DIR"), "{text}");
}

#[test]
fn version_names_the_package_version() {
    let out = run("--version");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("ringback-local {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn an_unknown_argument_is_refused_with_a_hint() {
    let out = run("serve");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unexpected argument 'serve'") && err.contains("--help"),
        "{err}"
    );
}
