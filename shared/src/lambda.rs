//! The thin glue between `lambda_http` and [`crate::api`]: the functions' mains stay a few lines.

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt};

use crate::api::Response;

pub fn body(req: &Request) -> &[u8] {
    match req.body() {
        Body::Empty => &[],
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    }
}

/// A path parameter from API Gateway, or `None` (then the raw path is parsed instead).
pub fn path_param(req: &Request, name: &str) -> Option<String> {
    req.path_parameters_ref()
        .and_then(|p| p.first(name))
        .map(str::to_owned)
}

/// The API Gateway (HTTP API) route key the request matched, e.g.
/// `GET /api/v1/vapi/calls/{callId}/events`; `None` outside API Gateway (then the path decides).
pub fn route_key(req: &Request) -> Option<&str> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.route_key.as_deref(),
        _ => None,
    }
}

pub fn response(resp: Response) -> lambda_http::Response<Body> {
    let (parts, bytes) = resp.into_parts();
    let body = match String::from_utf8(bytes.to_vec()) {
        Ok(text) if text.is_empty() => Body::Empty,
        Ok(text) => Body::Text(text),
        Err(e) => Body::Binary(e.into_bytes()),
    };
    lambda_http::Response::from_parts(parts, body)
}

/// A request span carrying `call_id` (filled in once the body or path names the call).
#[macro_export]
macro_rules! request_span {
    ($name:expr) => {
        tracing::info_span!($name, call_id = tracing::field::Empty)
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;

    fn through_api(route: &str) -> Request {
        let mut ctx = ApiGatewayV2httpRequestContext::default();
        ctx.route_key = Some(route.to_owned());
        Request::default().with_request_context(RequestContext::ApiGatewayV2(ctx))
    }

    #[test]
    fn route_key_is_the_matched_route() {
        let key = "GET /api/v1/vapi/calls/{callId}/events";
        assert_eq!(route_key(&through_api(key)), Some(key));
        assert_eq!(route_key(&Request::default()), None);
    }
}
