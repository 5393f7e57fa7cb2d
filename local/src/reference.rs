//! The API's description where users look: `/openapi.json` (generated from the code, the same
//! document as the committed `openapi.json`) and `/docs`, Swagger UI over it, its files embedded
//! from the crate registry so that it renders offline.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use ringback::api::{self, Code, Response};

pub const OPENAPI_PATH: &str = "/openapi.json";
pub const DOCS_PATH: &str = "/docs";

pub fn openapi() -> Response {
    static DOC: OnceLock<Bytes> = OnceLock::new();
    let body = DOC.get_or_init(|| Bytes::from(ringback::api::openapi::document_text()));
    with_type(StatusCode::OK, body.clone(), "application/json")
}

/// `/docs` and the files under it.
pub fn docs(path: &str) -> Response {
    let Some(tail) = path.strip_prefix(DOCS_PATH) else {
        return api::error(Code::NotFound, format!("no route for GET {path}"));
    };
    if tail.is_empty() {
        // Swagger UI's page loads its files relative to itself: it must be served under `/docs/`.
        let mut r = with_type(StatusCode::MOVED_PERMANENTLY, Bytes::new(), "text/plain");
        r.headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static("/docs/"));
        return r;
    }
    static CONFIG: OnceLock<Arc<utoipa_swagger_ui::Config<'static>>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| Arc::new(utoipa_swagger_ui::Config::from(OPENAPI_PATH)));
    match utoipa_swagger_ui::serve(tail.trim_start_matches('/'), config.clone()) {
        Ok(Some(file)) => {
            let mut r = with_type(
                StatusCode::OK,
                Bytes::from(file.bytes.into_owned()),
                &file.content_type,
            );
            if file.gzpipped {
                r.headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            r
        }
        Ok(None) => api::error(Code::NotFound, format!("no file {path}")),
        Err(e) => {
            tracing::error!(error = %e, "Swagger UI could not be served");
            api::error(Code::Unavailable, "the reference could not be served")
        }
    }
}

fn with_type(status: StatusCode, body: Bytes, content_type: &str) -> Response {
    let mut r = http::Response::new(body);
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}
