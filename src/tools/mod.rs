//! Tools that run beside the functions, never deployed as one: the admin CLI (with its
//! replay of what failed every try) and, for local runs, the stand-ins for Lambda's event
//! source mappings.

pub mod admin;
pub mod local_esm;
pub mod local_stream;
pub mod replay_events;

use aws_sdk_sqs::types::Message;

/// Up to 10 messages of an on-failure queue, waiting a second at most (the replay commands).
pub(crate) async fn receive_failed(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> Result<Vec<Message>, String> {
    let received = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .map_err(|e| {
            format!(
                "cannot read {queue_url}: {}",
                crate::adapters::error_code(&e)
            )
        })?;
    Ok(received.messages.unwrap_or_default())
}

/// Deletes a message once what it held was `done` ("recorded", "published").
pub(crate) async fn delete_replayed(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    message: &Message,
    done: &str,
) -> Result<(), String> {
    sqs.delete_message()
        .queue_url(queue_url)
        .receipt_handle(message.receipt_handle().unwrap_or_default())
        .send()
        .await
        .map_err(|e| {
            format!(
                "{done}, but not deleted: {}",
                crate::adapters::error_code(&e)
            )
        })?;
    Ok(())
}
