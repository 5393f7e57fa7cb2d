//! The response envelope: `{"success": true, "data": …}` or
//! `{"success": false, "error": {"code", "message"}}` with a stable machine `code`.

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use serde::Serialize;
use serde_json::{json as j, Value};

pub type Response = http::Response<Bytes>;

/// A stable machine word for what went wrong; its HTTP status follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Code {
    InvalidPayload,
    Unauthorized,
    NotFound,
    PayloadTooLarge,
    UpstreamError,
    Unavailable,
    Conflict,
    MethodNotAllowed,
    /// The call was erased.
    Gone,
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
            Self::Gone => "gone",
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
            Self::Gone => StatusCode::GONE,
        }
    }
}

pub fn json(status: StatusCode, body: &(impl Serialize + ?Sized)) -> Response {
    let mut r = http::Response::new(Bytes::from(
        serde_json::to_vec(body).expect("the API's bodies serialise"),
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

/// `{"success": true, "data": …}` around one of the API's wire types ([`super::wire`]).
pub fn ok_typed<T: Serialize>(status: StatusCode, data: &T) -> Response {
    #[derive(Serialize)]
    struct Success<'a, T> {
        success: bool,
        data: &'a T,
    }
    json(
        status,
        &Success {
            success: true,
            data,
        },
    )
}

/// `{"success": false, "error": {…}}`.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Failure {
    /// Always `false`.
    pub success: bool,
    pub error: Problem,
}

#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    pub code: Code,
    /// For a person: what was wrong and where (for a body, the JSON path).
    pub message: String,
}

pub fn error(code: Code, message: impl Into<String>) -> Response {
    let mut r = json(
        code.status(),
        &Failure {
            success: false,
            error: Problem {
                code,
                message: message.into(),
            },
        },
    );
    if code == Code::Unauthorized {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}
