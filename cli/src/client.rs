//! The HTTP API, as the CLI uses it.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    pub fn new(base: &str, token: &str) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client builds");
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        }
    }

    pub async fn start(&self, body: &Value, idempotency_key: &str) -> Result<Value, String> {
        let url = format!("{}/api/v1/vapi/calls", self.base);
        // Retried with the same key: a lost answer never places a second call.
        let mut last = String::new();
        for attempt in 0..3 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
            }
            let sent = self
                .http
                .post(&url)
                .bearer_auth(&self.token)
                .header("idempotency-key", idempotency_key)
                .json(body)
                .send()
                .await;
            match sent {
                Ok(resp) if resp.status() == StatusCode::SERVICE_UNAVAILABLE => {
                    last = "503 unavailable".into()
                }
                Ok(resp) => return data(resp).await,
                Err(e) => last = e.to_string(),
            }
        }
        Err(format!("could not start the call: {last}"))
    }

    pub async fn get(&self, id: &str) -> Result<(Value, Option<String>), String> {
        self.get_if_changed(id, None)
            .await?
            .ok_or_else(|| "unexpected 304".into())
    }

    /// `None` when the record has not changed since `etag`.
    pub async fn get_if_changed(
        &self,
        id: &str,
        etag: Option<&str>,
    ) -> Result<Option<(Value, Option<String>)>, String> {
        let mut req = self
            .http
            .get(format!("{}/api/v1/vapi/calls/{id}", self.base))
            .bearer_auth(&self.token);
        if let Some(tag) = etag {
            req = req.header("if-none-match", tag);
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        if resp.status() == StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        let tag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Some((data(resp).await?, tag)))
    }
}

/// What `GET /api/v1/vapi/calls` answered.
pub enum Listing {
    Page(Value),
    /// A 404 without the API's envelope (a deployment older than the route) or `not_found` (one
    /// without a call index).
    NoRoute,
}

impl Api {
    /// One page of `GET /api/v1/vapi/calls` with these (undecoded) query parameters.
    pub async fn list(&self, params: &[(&str, String)]) -> Result<Listing, String> {
        let resp = self
            .http
            .get(format!("{}/api/v1/vapi/calls", self.base))
            .bearer_auth(&self.token)
            .query(params)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(Listing::NoRoute);
        }
        data(resp).await.map(Listing::Page)
    }
}

impl Api {
    /// `GET {path}` (under the API's base URL): the envelope's `data`.
    pub async fn get_path(&self, path: &str) -> Result<Value, String> {
        self.send(reqwest::Method::GET, path).await
    }

    /// `POST {path}` with no body: the envelope's `data`.
    pub async fn post_path(&self, path: &str) -> Result<Value, String> {
        self.send(reqwest::Method::POST, path).await
    }

    /// `DELETE {path}`: the envelope's `data`.
    pub async fn delete_path(&self, path: &str) -> Result<Value, String> {
        self.send(reqwest::Method::DELETE, path).await
    }

    async fn send(&self, method: reqwest::Method, path: &str) -> Result<Value, String> {
        let resp = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        data(resp).await
    }
}

impl Api {
    /// `GET /api/v1/vapi/stats`: `None` on a 404 (a deployment older than the route, or one
    /// without a call index).
    pub async fn stats(&self, params: &[(&str, String)]) -> Result<Option<Value>, String> {
        let resp = self
            .http
            .get(format!("{}/api/v1/vapi/stats", self.base))
            .bearer_auth(&self.token)
            .query(params)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        data(resp).await.map(Some)
    }
}

/// The envelope's `data`, or its error as text.
async fn data(resp: reqwest::Response) -> Result<Value, String> {
    let status = resp.status();
    let v: Value = resp
        .json()
        .await
        .map_err(|e| format!("{status}: answer is not JSON: {e}"))?;
    if v["success"] == Value::Bool(true) {
        Ok(v["data"].clone())
    } else {
        Err(format!(
            "{status} {}: {}",
            v["error"]["code"].as_str().unwrap_or("?"),
            v["error"]["message"].as_str().unwrap_or("")
        ))
    }
}
