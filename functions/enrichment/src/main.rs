//! The enrichment Lambda, behind the SQS event source mapping: fetches each named call from Vapi,
//! completes or re-schedules it, persists finished calls, and reports the messages to retry.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use ringback::service::enrichment::handle_batch;
use ringback::{config::Env, telemetry, wiring};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_json();
    let svc = wiring::enrichment_service(&Env::from_process()).await?;
    let svc = &svc;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(handle_batch(svc, event.payload).await)
    }))
    .await
}
