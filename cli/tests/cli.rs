//! The operator CLI against a running `ringback-local`: start a call and watch it to the end, list
//! it, show it. Runs the real binary, as an operator would.

use std::process::{Command, Output};

use ringback::config::Env;
use ringback_local::{LocalOptions, System};

async fn system() -> System {
    let env = Env::from_pairs([
        ("PORT", "0"),
        ("RINGBACK_IN_MEMORY", "1"),
        ("ENRICHMENT_DELAYS", "1,1,1"),
        ("RINGBACK_SIM_TIME_SCALE", "0.05"),
        ("CLEANUP_INTERVAL_SECONDS", "0"),
    ]);
    System::start(LocalOptions::from_env(env).unwrap())
        .await
        .unwrap()
}

async fn ringback(base: &str, home: &std::path::Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringback"));
    cmd.args(["--url", base])
        .args(args)
        .env("RINGBACK_CLI_HOME", home)
        .env_remove("RINGBACK_API_TOKEN");
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_watch_list_and_show_a_call() {
    let sys = system().await;
    let home = std::env::temp_dir().join(format!("ringback-cli-{}", uuid::Uuid::new_v4()));
    let call = ringback(
        &sys.base_url,
        &home,
        &[
            "call",
            "--provider-name",
            "Acme Plumbing",
            "--phone",
            "+14155550123",
            "--service-request-id",
            "sr-cli-1",
            "--timeout",
            "30",
        ],
    )
    .await;
    let out = text(&call);
    assert!(call.status.success(), "{out}");
    // Live progress: each change of state on its own line, ending complete.
    assert!(
        out.contains("dataStatus=pending") || out.contains("dataStatus=partial"),
        "{out}"
    );
    assert!(out.contains("dataStatus=complete"), "{out}");
    let id = out
        .split_whitespace()
        .skip_while(|w| *w != "call")
        .nth(1)
        .expect("the call id is printed")
        .to_owned();

    // The listing comes from the deployment, not from this machine's history: another home
    // directory (another operator) sees the call too.
    let elsewhere = std::env::temp_dir().join(format!("ringback-cli-{}", uuid::Uuid::new_v4()));
    let list = ringback(&sys.base_url, &elsewhere, &["list"]).await;
    assert!(list.status.success(), "{}", text(&list));
    let out = String::from_utf8_lossy(&list.stdout).into_owned();
    let header = out.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("CALL ID") && header.contains("SERVICE REQUEST"),
        "{out}"
    );
    let row = out.lines().find(|l| l.starts_with(&id)).unwrap_or_default();
    assert!(
        row.contains("complete") && row.contains("sr-cli-1"),
        "{out}"
    );
    assert!(
        !out.contains("+1415"),
        "no phone numbers in a listing: {out}"
    );

    // A second call, then every page of one call each: both, newest first, progress on stderr.
    let second = ringback(
        &sys.base_url,
        &home,
        &[
            "call",
            "--provider-name",
            "Beta Electric",
            "--phone",
            "+14155550124",
            "--service-request-id",
            "sr-cli-1",
            "--no-watch",
        ],
    )
    .await;
    assert!(second.status.success(), "{}", text(&second));
    let second_id = text(&second)
        .split_whitespace()
        .nth(1)
        .expect("the second call id")
        .to_owned();
    let all = ringback(
        &sys.base_url,
        &elsewhere,
        &[
            "list",
            "--service-request-id",
            "sr-cli-1",
            "--limit",
            "1",
            "--all",
        ],
    )
    .await;
    assert!(all.status.success(), "{}", text(&all));
    let stdout = String::from_utf8_lossy(&all.stdout).into_owned();
    let ids: Vec<&str> = stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(ids, [second_id.as_str(), id.as_str()], "{stdout}");
    let stderr = String::from_utf8_lossy(&all.stderr).into_owned();
    assert!(stderr.contains("page 1: 1 calls so far"), "{stderr}");
    assert!(stderr.contains("2 call(s)"), "{stderr}");

    let one = ringback(&sys.base_url, &elsewhere, &["list", "--status", "complete"]).await;
    assert!(one.status.success(), "{}", text(&one));
    assert!(
        String::from_utf8_lossy(&one.stdout).contains(&id),
        "{}",
        text(&one)
    );

    let bad = ringback(&sys.base_url, &elsewhere, &["list", "--status", "done"]).await;
    assert!(!bad.status.success());
    assert!(
        text(&bad).contains("invalid_payload") && text(&bad).contains("status"),
        "{}",
        text(&bad)
    );
    let _ = std::fs::remove_dir_all(elsewhere);

    let show = ringback(&sys.base_url, &home, &["show", &id]).await;
    let shown: serde_json::Value =
        serde_json::from_slice(&show.stdout).expect("show prints the record as JSON");
    assert_eq!(shown["callId"], id.as_str());
    assert_eq!(shown["dataStatus"], "complete");

    let bad = ringback(
        &sys.base_url,
        &home,
        &["call", "--provider-name", "Acme", "--phone", "555"],
    )
    .await;
    assert!(!bad.status.success());
    assert!(text(&bad).contains("providerPhone"), "{}", text(&bad));
    sys.stop().await;
    let _ = std::fs::remove_dir_all(home);
}

/// The operator's view of one call: its timeline, its deliveries, a replay followed to the end,
/// and a redelivery of an event that does not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_replay_deliveries_and_redeliver_of_a_call() {
    let sys = system().await;
    let home = std::env::temp_dir().join(format!("ringback-cli-{}", uuid::Uuid::new_v4()));
    let call = ringback(
        &sys.base_url,
        &home,
        &[
            "call",
            "--provider-name",
            "Acme Plumbing",
            "--phone",
            "+14155550123",
            "--timeout",
            "30",
        ],
    )
    .await;
    let out = text(&call);
    assert!(call.status.success(), "{out}");
    let id = out.split_whitespace().nth(1).expect("call id").to_owned();

    let events = ringback(&sys.base_url, &home, &["events", &id]).await;
    let out = String::from_utf8_lossy(&events.stdout).into_owned();
    assert!(events.status.success(), "{}", text(&events));
    assert!(out.contains("AT") && out.contains("WHAT"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("webhook.received") && l.contains("end-of-call-report applied")),
        "{out}"
    );
    assert!(
        !out.contains("+1415"),
        "no phone numbers on a timeline: {out}"
    );

    let replay = ringback(&sys.base_url, &home, &["replay", &id]).await;
    let out = text(&replay);
    assert!(replay.status.success(), "{out}");
    assert!(out.contains("replayed from"), "{out}");
    assert!(
        out.contains("dataStatus=complete"),
        "followed to the end: {out}"
    );

    let deliveries = ringback(&sys.base_url, &home, &["deliveries", &id]).await;
    assert!(deliveries.status.success(), "{}", text(&deliveries));
    assert!(
        text(&deliveries).contains("no pushed events"),
        "{}",
        text(&deliveries)
    );

    let redeliver = ringback(&sys.base_url, &home, &["redeliver", "evt_nope"]).await;
    assert!(!redeliver.status.success());
    assert!(
        text(&redeliver).contains("no event evt_nope"),
        "{}",
        text(&redeliver)
    );
    sys.stop().await;
}

/// Counts before and after an erase, the erase and its repeat, and the record gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_a_call_and_erase_takes_it_away() {
    let sys = system().await;
    let home = std::env::temp_dir().join(format!("ringback-cli-{}", uuid::Uuid::new_v4()));
    let call = ringback(
        &sys.base_url,
        &home,
        &[
            "call",
            "--provider-name",
            "Acme Plumbing",
            "--phone",
            "+14155550123",
            "--timeout",
            "30",
        ],
    )
    .await;
    let out = text(&call);
    assert!(call.status.success(), "{out}");
    let id = out.split_whitespace().nth(1).expect("call id").to_owned();

    let stats = ringback(&sys.base_url, &home, &["stats"]).await;
    let out = text(&stats);
    assert!(stats.status.success(), "{out}");
    assert!(out.starts_with("1 call(s) created from "), "{out}");
    let count = |out: &str, state: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(state))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(str::to_owned)
    };
    assert_eq!(count(&out, "complete").as_deref(), Some("1"), "{out}");
    assert_eq!(count(&out, "pending").as_deref(), Some("0"), "{out}");
    assert!(out.contains("OUTCOME") && out.contains("overdue"), "{out}");
    assert!(
        out.contains("QUEUE") && out.contains("dead-letter"),
        "{out}"
    );

    let erase = ringback(&sys.base_url, &home, &["erase", "last"]).await;
    let out = text(&erase);
    assert!(erase.status.success(), "{out}");
    let first = out.lines().next().unwrap_or_default().to_owned();
    assert!(first.starts_with(&format!("call {id} erased at ")), "{out}");
    assert!(out.contains("history items deleted"), "{out}");
    assert!(!out.contains("vapi"), "Vapi's copy only when asked: {out}");

    let show = ringback(&sys.base_url, &home, &["show", &id]).await;
    assert!(!show.status.success());
    assert!(
        text(&show).contains("410") && text(&show).contains("gone"),
        "{}",
        text(&show)
    );

    // A repeat answers the first erase's time and deletes nothing more; --vapi asks Vapi too.
    let again = ringback(&sys.base_url, &home, &["erase", &id, "--vapi"]).await;
    let out = text(&again);
    assert!(again.status.success(), "{out}");
    assert_eq!(out.lines().next(), Some(first.as_str()), "{out}");
    assert!(out.contains("history items deleted  0"), "{out}");
    assert!(out.contains("vapi's copy"), "{out}");

    let stats = ringback(&sys.base_url, &home, &["stats"]).await;
    let out = text(&stats);
    assert!(
        out.starts_with("0 call(s) created from "),
        "the erase is counted: {out}"
    );
    assert_eq!(count(&out, "complete").as_deref(), Some("0"), "{out}");

    let unknown = ringback(&sys.base_url, &home, &["erase", "no-such-call"]).await;
    assert!(!unknown.status.success());
    assert!(text(&unknown).contains("not_found"), "{}", text(&unknown));
    let bad = ringback(&sys.base_url, &home, &["stats", "--since", "yesterday"]).await;
    assert!(!bad.status.success());
    assert!(
        text(&bad).contains("invalid_payload") && text(&bad).contains("since"),
        "{}",
        text(&bad)
    );
    sys.stop().await;
    let _ = std::fs::remove_dir_all(home);
}
