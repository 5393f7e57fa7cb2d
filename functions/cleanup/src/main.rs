//! The cleanup Lambda, on an EventBridge schedule: re-drives or settles calls stuck past their deadline.

use aws_lambda_events::event::cloudwatch_events::CloudWatchEvent;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use ringback::{config::Env, telemetry, wiring};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_json();
    let svc = wiring::cleanup_service(&Env::from_process()).await?;
    let svc = &svc;
    run(service_fn(
        move |_: LambdaEvent<CloudWatchEvent>| async move {
            // An interrupted run is an error so the schedule's retry and the Errors alarm see it.
            let r = svc.run_once().await?;
            Ok::<Value, Error>(
                json!({"examined": r.examined, "redriven": r.redriven, "settled": r.settled,
            "left": r.left, "adopted": r.adopted}),
            )
        },
    ))
    .await
}
