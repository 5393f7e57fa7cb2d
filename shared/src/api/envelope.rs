//! The response envelope: `{"success": true, "data": …}` or
//! `{"success": false, "error": {"code", "message"}}` with a stable machine `code`.

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use serde_json::{json as j, Value};

pub type Response = http::Response<Bytes>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidPayload,
    Unauthorized,
    NotFound,
    PayloadTooLarge,
    UpstreamError,
    Unavailable,
    Conflict,
    MethodNotAllowed,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidPayload => "invalid_payload",
            Self::Unauthorized => "unauthorized",
            Self::NotFound => "not_found",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UpstreamError => "upstream_error",
            Self::Unavailable => "unavailable",
            Self::Conflict => "conflict",
            Self::MethodNotAllowed => "method_not_allowed",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidPayload => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UpstreamError => StatusCode::BAD_GATEWAY,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Conflict => StatusCode::CONFLICT,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }
}

pub fn json(status: StatusCode, body: &Value) -> Response {
    let mut r = http::Response::new(Bytes::from(
        serde_json::to_vec(body).expect("a Value always serialises"),
    ));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub fn ok(status: StatusCode, data: Value) -> Response {
    json(status, &j!({"success": true, "data": data}))
}

pub fn error(code: Code, message: impl Into<String>) -> Response {
    let mut r = json(
        code.status(),
        &j!({"success": false, "error": {"code": code.as_str(), "message": message.into()}}),
    );
    if code == Code::Unauthorized {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}
