//! The operator console at `/console`: static files from `console/` (in the repository's root),
//! built into the runner so it works offline and from any directory. The pages speak only the
//! documented HTTP API, so the same files serve a deployment: sign in with its URL and token.
//! `config.json` beside them tells the page what this runner is: whether its simulator places
//! calls, and its development token when (and only when) it runs with that public value.

use std::io::Write;
use std::sync::OnceLock;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use ringback::api::{self, Code, Response};
use serde_json::json;

pub const PATH: &str = "/console";

/// A file of `console/` (the repository's root), built in, with its type.
macro_rules! console_file {
    ($name:literal, $content_type:expr) => {
        (
            $name,
            $content_type,
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../console/", $name)),
        )
    };
}

/// Every file of `console/`: a test checks that none is missing from this list.
const FILES: &[(&str, &str, &[u8])] = &[
    console_file!("index.html", "text/html; charset=utf-8"),
    console_file!("console.css", "text/css; charset=utf-8"),
    console_file!("app.js", JS),
    console_file!("api.js", JS),
    console_file!("dom.js", JS),
    console_file!("views/calls.js", JS),
    console_file!("views/call.js", JS),
    console_file!("views/health.js", JS),
    console_file!("views/local.js", JS),
];
const JS: &str = "text/javascript; charset=utf-8";

/// The page may run only its own scripts and styles; it may call any http(s) API (the one it
/// signs in to), and nothing may frame it.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self' http: https:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// What the page learns about the runner serving it.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// The development API token, when the runner accepts it (it is public then).
    pub dev_token: Option<String>,
    /// The built-in Vapi simulator places the calls: the page may offer to place simulated ones.
    pub simulator: bool,
}

/// `GET /console…`.
pub fn serve(path: &str, headers: &HeaderMap, config: &ConsoleConfig) -> Response {
    let Some(tail) = path.strip_prefix(PATH) else {
        return not_found(path);
    };
    let name = match tail {
        // Its files load relative to the page: the page must be served under `/console/`.
        "" => return redirect(),
        "/" => "index.html",
        t => t.trim_start_matches('/'),
    };
    if name == "config.json" {
        let body = json!({ "devToken": config.dev_token, "simulator": config.simulator });
        return file(Bytes::from(body.to_string()), "application/json", false);
    }
    let Some(index) = FILES.iter().position(|(n, _, _)| *n == name) else {
        return not_found(path);
    };
    let (_, content_type, raw) = FILES[index];
    if accepts_gzip(headers) {
        file(gzipped(index), content_type, true)
    } else {
        file(Bytes::from_static(raw), content_type, false)
    }
}

fn gzipped(index: usize) -> Bytes {
    static GZ: OnceLock<Vec<Bytes>> = OnceLock::new();
    GZ.get_or_init(|| {
        FILES
            .iter()
            .map(|(_, _, raw)| {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                gz.write_all(raw).expect("writing to memory");
                Bytes::from(gz.finish().expect("writing to memory"))
            })
            .collect()
    })[index]
        .clone()
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            parts.next() == Some("gzip") && parts.all(|p| p.replace(' ', "") != "q=0")
        })
}

fn file(body: Bytes, content_type: &str, gzip: bool) -> Response {
    let mut r = http::Response::new(body);
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    // The files change with the runner: always revalidate (they are small, and local).
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

fn redirect() -> Response {
    let mut r = http::Response::new(Bytes::new());
    *r.status_mut() = StatusCode::MOVED_PERMANENTLY;
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/console/"));
    r
}

fn not_found(path: &str) -> Response {
    api::error(Code::NotFound, format!("no file {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str, encoding: Option<&str>) -> Response {
        let mut headers = HeaderMap::new();
        if let Some(e) = encoding {
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(e).unwrap());
        }
        let config = ConsoleConfig {
            dev_token: Some("dev-api-token".into()),
            simulator: true,
        };
        serve(path, &headers, &config)
    }

    /// A file added to `console/` but not to `FILES` would be a 404 in the browser.
    #[test]
    fn every_file_of_the_console_folder_is_served() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../console");
        let mut on_disk = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.file_name().is_some_and(|n| n != "README.md") {
                    on_disk.push(
                        path.strip_prefix(&root)
                            .unwrap()
                            .to_string_lossy()
                            .into_owned(),
                    );
                }
            }
        }
        on_disk.sort();
        let mut served: Vec<String> = FILES.iter().map(|(n, _, _)| n.to_string()).collect();
        served.sort();
        assert_eq!(on_disk, served);
    }

    #[test]
    fn files_are_served_gzipped_to_browsers_that_take_it_and_plain_to_others() {
        let plain = get("/console/app.js", None);
        assert_eq!(plain.status(), StatusCode::OK);
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        let gz = get("/console/app.js", Some("gzip, deflate, br"));
        assert_eq!(gz.headers()[header::CONTENT_ENCODING], "gzip");
        let mut unzipped = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(gz.body().as_ref()),
            &mut unzipped,
        )
        .unwrap();
        assert_eq!(unzipped, plain.body().as_ref());
        let refused = get("/console/app.js", Some("gzip;q=0"));
        assert!(refused.headers().get(header::CONTENT_ENCODING).is_none());
    }

    #[test]
    fn the_page_is_under_a_strict_policy_and_unknown_paths_are_404() {
        let index = get("/console/", None);
        assert!(index.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let csp = index.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert_eq!(
            get("/console", None).headers()[header::LOCATION],
            "/console/"
        );
        for path in [
            "/console/nope.js",
            "/console/../Cargo.toml",
            "/console/views/",
        ] {
            assert_eq!(get(path, None).status(), StatusCode::NOT_FOUND, "{path}");
        }
        let config: serde_json::Value =
            serde_json::from_slice(get("/console/config.json", None).body()).unwrap();
        assert_eq!(
            config,
            json!({"devToken": "dev-api-token", "simulator": true})
        );
    }
}
