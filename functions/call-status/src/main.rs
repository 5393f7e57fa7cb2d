//! The call-status Lambda: `GET /api/v1/vapi/calls/{callId}`, `GET /api/v1/vapi/calls` (the
//! listing) and `GET /health`.

use lambda_http::{run, service_fn, Error, Request};
use ringback::{api, config::Env, lambda, request_span, telemetry, wiring};
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_json();
    let (svc, search, auth) = wiring::status_and_search_services(&Env::from_process()).await?;
    let (svc, search, auth) = (&svc, search.as_ref(), &auth);
    run(service_fn(move |req: Request| {
        let span = request_span!("call_status");
        async move {
            if req.uri().path() == "/health" {
                return Ok::<_, Error>(lambda::response(api::health()));
            }
            let path = req.uri().path().trim_end_matches('/');
            if path == api::CALLS_PATH {
                let resp = api::list_calls(search, auth, req.headers(), req.uri().query()).await;
                return Ok(lambda::response(resp));
            }
            let id = lambda::path_param(&req, "callId")
                .or_else(|| api::call_id_from_path(req.uri().path()));
            let resp = match id {
                Some(id) => {
                    tracing::Span::current().record("call_id", id.as_str());
                    api::get_call(svc, auth, req.headers(), &id).await
                }
                None => api::error(api::Code::NotFound, "no such route"),
            };
            Ok(lambda::response(resp))
        }
        .instrument(span)
    }))
    .await
}
