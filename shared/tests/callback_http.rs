//! The callback sender against real HTTP servers on loopback, some of them hostile: it connects
//! only to hosts the policy allows (names resolved by a stub, never real DNS), and no receiver
//! holds an attempt past its limits, however slowly or however much it answers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ringback::adapters::callback_dns::HostResolver;
use ringback::adapters::callback_http::{HttpCallbacks, Limits};
use ringback::domain::callback_host::CallbackHosts::{self, Deployment, Local};
use ringback::ports::{CallbackAnswer, CallbackSender};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Resolves the names it was given, records every name asked, knows no other.
#[derive(Default)]
struct StubResolver {
    names: HashMap<&'static str, Vec<IpAddr>>,
    asked: Mutex<Vec<String>>,
}

impl StubResolver {
    fn with(name: &'static str, ips: &[&str]) -> Arc<Self> {
        let ips = ips.iter().map(|s| s.parse().unwrap()).collect();
        Arc::new(Self {
            names: HashMap::from([(name, ips)]),
            asked: Mutex::default(),
        })
    }
}

#[async_trait]
impl HostResolver for StubResolver {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        self.asked.lock().unwrap().push(host.to_owned());
        self.names
            .get(host)
            .cloned()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such name"))
    }
}

fn sender(hosts: CallbackHosts, resolver: Arc<StubResolver>, limits: Limits) -> HttpCallbacks {
    HttpCallbacks::with(hosts, resolver, limits)
}

async fn post(s: &HttpCallbacks, url: &str) -> CallbackAnswer {
    let headers = [("content-type", "application/json".to_owned())];
    // A bound on the test, not a synchronisation: a sender that hangs fails here.
    tokio::time::timeout(
        Duration::from_secs(20),
        s.post(url, &headers, br#"{"id":"evt_1"}"#),
    )
    .await
    .expect("the attempt ended")
}

/// An attempt to the receiver on `port`, as `receiver.test`, allowed locally (loopback).
async fn post_to_loopback_receiver(port: u16, limits: Limits) -> CallbackAnswer {
    let resolver = StubResolver::with("receiver.test", &["127.0.0.1"]);
    let url = format!("http://receiver.test:{port}/hook");
    post(&sender(Local, resolver, limits), &url).await
}

/// Reads one request (headers and a `content-length` body) from `s`.
async fn read_request(s: &mut TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return;
            }
        }
    }
}

/// A well-behaved receiver that answers every request 204 and counts the connections it got.
async fn counting_receiver() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            seen.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                read_request(&mut s).await;
                let _ = s
                    .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (port, count)
}

/// A hostile receiver: after reading the request, `answer` does what it likes with the
/// connection; the oneshot gets what it returns once the sender hung up.
async fn hostile_receiver<F, Fut>(answer: F) -> (u16, oneshot::Receiver<u64>)
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = u64> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        read_request(&mut s).await;
        let _ = tx.send(answer(s).await);
    });
    (port, rx)
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_in_deployments_and_delivered_locally() {
    let (port, connections) = counting_receiver().await;
    let resolver = StubResolver::with("receiver.test", &["127.0.0.1"]);
    let url = format!("http://receiver.test:{port}/hook");

    let refused = post(
        &sender(Deployment, resolver.clone(), Limits::default()),
        &url,
    )
    .await;
    assert_eq!(refused.status, None);
    assert_eq!(
        refused.error.as_deref(),
        Some("callback host resolves only to forbidden addresses")
    );

    let delivered = post(&sender(Local, resolver.clone(), Limits::default()), &url).await;
    assert_eq!((delivered.status, delivered.error), (Some(204), None));
    // Had the refused attempt connected, its connection would have been accepted first.
    assert_eq!(connections.load(Ordering::SeqCst), 1);
    assert_eq!(*resolver.asked.lock().unwrap(), ["receiver.test"; 2]);
}

#[tokio::test]
async fn literal_forbidden_hosts_are_refused_before_any_lookup_or_connection() {
    let (port, connections) = counting_receiver().await;
    let resolver = Arc::new(StubResolver::default());
    for hosts in [Deployment, Local] {
        let s = sender(hosts, resolver.clone(), Limits::default());
        for url in [
            "https://10.0.0.1/hook",
            "https://169.254.169.254/latest/meta-data/",
            "https://[fd00::1]/",
            "https://[::ffff:10.0.0.1]/",
            "https://167772161/",
            "http://metadata.google.internal/",
        ] {
            let a = post(&s, url).await;
            assert_eq!((a.status, a.latency), (None, Duration::ZERO), "{url}");
            let error = a.error.unwrap();
            assert!(
                error.starts_with("callback refused: host") && error.contains("public hosts only"),
                "{url}: {error}"
            );
        }
    }
    let deployment = sender(Deployment, resolver.clone(), Limits::default());
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://localhost:{port}/"),
    ] {
        let a = post(&deployment, &url).await;
        assert!(a.error.unwrap().contains("public hosts only"), "{url}");
    }
    let local = sender(Local, resolver.clone(), Limits::default());
    let a = post(&local, &format!("http://127.0.0.1:{port}/")).await;
    assert_eq!(a.status, Some(204));
    assert_eq!(connections.load(Ordering::SeqCst), 1);
    assert!(resolver.asked.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_name_that_does_not_resolve_fails_the_attempt_saying_so() {
    let s = sender(Deployment, Arc::default(), Limits::default());
    let a = post(&s, "https://nowhere.test/hook").await;
    assert_eq!(a.status, None);
    assert_eq!(
        a.error.as_deref(),
        Some("callback host could not be resolved")
    );
}

#[tokio::test]
async fn a_100_mb_answer_is_read_no_further_than_the_cap() {
    let (port, written) = hostile_receiver(|mut s| async move {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 104857600\r\n\r\n")
            .await;
        let block = vec![b'x'; 64 * 1024];
        let mut sent = 0u64;
        while sent < 100 << 20 && s.write_all(&block).await.is_ok() {
            sent += block.len() as u64;
        }
        sent
    })
    .await;
    let limits = Limits {
        body_wait: Duration::from_secs(10),
        ..Limits::default()
    };
    let a = post_to_loopback_receiver(port, limits).await;
    assert_eq!((a.status, a.error), (Some(200), None));
    // The sender hung up after its 1 KiB: the receiver got no further than the socket buffers.
    let sent = written.await.unwrap();
    assert!(sent < 32 << 20, "the receiver wrote {sent} bytes");
    assert!(a.latency < limits.body_wait, "{:?}", a.latency);
}

#[tokio::test]
async fn a_body_trickling_forever_holds_the_attempt_no_longer_than_the_body_wait() {
    let (port, hung_up) = hostile_receiver(|mut s| async move {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            .await;
        let mut ticks = 0;
        while s.write_all(b"1\r\nx\r\n").await.is_ok() {
            ticks += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ticks
    })
    .await;
    let limits = Limits {
        body_wait: Duration::from_millis(300),
        ..Limits::default()
    };
    let a = post_to_loopback_receiver(port, limits).await;
    assert_eq!(a.status, Some(200));
    assert!(a.latency < Duration::from_secs(3), "{:?}", a.latency);
    hung_up.await.expect("the sender closed the connection");
}

#[tokio::test]
async fn a_receiver_that_never_answers_is_given_up_on_at_the_answer_timeout() {
    let (port, hung_up) = hostile_receiver(|mut s| async move {
        // Holds the connection, answering nothing, until the sender closes it.
        let mut buf = [0u8; 64];
        while s.read(&mut buf).await.is_ok_and(|n| n > 0) {}
        0
    })
    .await;
    let limits = Limits {
        answer: Duration::from_millis(300),
        ..Limits::default()
    };
    let a = post_to_loopback_receiver(port, limits).await;
    assert_eq!(a.status, None);
    assert_eq!(a.error.as_deref(), Some("no answer within 0.3 s"));
    assert!(
        a.latency >= limits.answer && a.latency < Duration::from_secs(3),
        "{:?}",
        a.latency
    );
    hung_up.await.expect("the sender closed the connection");
}

#[tokio::test]
async fn a_redirect_is_a_failed_attempt_not_followed() {
    let (target, connections) = counting_receiver().await;
    let (port, _) = hostile_receiver(move |mut s| async move {
        let answer = format!(
            "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:{target}/\r\n\
             content-length: 0\r\n\r\n"
        );
        let _ = s.write_all(answer.as_bytes()).await;
        0
    })
    .await;
    let a = post_to_loopback_receiver(port, Limits::default()).await;
    assert_eq!(a.status, Some(307));
    assert_eq!(a.error.as_deref(), Some("HTTP 307"));
    assert_eq!(connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn proxy_settings_in_the_environment_are_ignored() {
    // A proxy would connect on ringback's behalf to an address nobody judged. Nothing else in
    // this binary reads these variables: every client here is built with no_proxy.
    let (proxy, via_proxy) = counting_receiver().await;
    for var in ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"] {
        std::env::set_var(var, format!("http://127.0.0.1:{proxy}"));
    }
    let (port, direct) = counting_receiver().await;
    let a = post_to_loopback_receiver(port, Limits::default()).await;
    assert_eq!((a.status, a.error), (Some(204), None));
    assert_eq!(direct.load(Ordering::SeqCst), 1);
    assert_eq!(via_proxy.load(Ordering::SeqCst), 0);
}
