//! Real implementations of the ports.

pub mod dynamodb;
pub mod memory_queue;
pub mod sqs;

/// The shared AWS SDK configuration: region, credentials and endpoints from the environment, so
/// `AWS_ENDPOINT_URL[_DYNAMODB|_SQS]` points everything at local emulators with no code change.
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}
