//! Real implementations of the ports.

pub mod callback_dns;
pub mod callback_http;
pub mod dynamodb;
pub mod eventbridge;
pub mod memory_queue;
pub mod sqs;

/// The shared AWS SDK configuration: region, credentials and endpoints from the environment, so
/// `AWS_ENDPOINT_URL[_DYNAMODB|_SQS]` points everything at local emulators with no code change.
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client())
        .load()
        .await
}

/// The SDK's HTTP client: hyper with rustls on ring, trusting the system's roots. Every SDK client
/// must be given this one (the SDK crates are built without a default client, so that only one
/// crypto library is linked).
pub fn https_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}
