//! Publishing orders to RabbitMQ with publisher confirms, over one
//! connection that is opened on first use and again after the broker went
//! away.

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::publisher_confirm::Confirmation;
use lapin::{BasicProperties, Channel, Connection};
use service_common::ApiError;
use service_common::amqp::AmqpSettings;
use tokio::sync::Mutex;

/// Persistent: the broker writes the message to disk before confirming it.
const PERSISTENT: u8 = 2;
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Publisher {
    settings: AmqpSettings,
    link: Mutex<Option<(Connection, Channel)>>,
}

impl Publisher {
    pub fn new(settings: AmqpSettings) -> Self {
        Publisher {
            settings,
            link: Mutex::new(None),
        }
    }

    /// Publishes `body` to the queue; `Ok` once the broker confirmed it is
    /// stored there. Each message gets a new `message_id`, by which
    /// billing-app stores a redelivered order once.
    pub async fn publish(&self, body: &[u8]) -> Result<(), ApiError> {
        let unavailable = |error: lapin::Error| {
            tracing::warn!(%error, "broker unavailable");
            ApiError::Unavailable("message broker unavailable".into())
        };
        let channel = self.channel().await.map_err(unavailable)?;
        let properties = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_content_type("application/json".into())
            .with_message_id(message_id().into());
        // Mandatory: a message no queue takes (the queue was deleted) comes
        // back instead of being dropped, and the client hears of it.
        let options = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let confirm = async {
            channel
                .basic_publish("", &self.settings.queue, options, body, properties)
                .await?
                .await
        };
        match tokio::time::timeout(CONFIRM_TIMEOUT, confirm).await {
            Ok(Ok(Confirmation::Ack(None))) => Ok(()),
            Ok(Ok(Confirmation::Ack(Some(_)))) => {
                tracing::warn!(queue = %self.settings.queue, "message returned: no such queue");
                Err(ApiError::Unavailable(
                    "message broker has no queue for the message".into(),
                ))
            }
            Ok(Ok(_)) => Err(ApiError::Unavailable(
                "message broker refused the message".into(),
            )),
            Ok(Err(error)) => Err(unavailable(error)),
            Err(_) => Err(ApiError::Unavailable(
                "message broker did not confirm in time".into(),
            )),
        }
    }

    /// The open channel, or a new one when there is none or it broke.
    async fn channel(&self) -> lapin::Result<Channel> {
        let mut link = self.link.lock().await;
        if let Some((connection, channel)) = link.as_ref() {
            if connection.status().connected() && channel.status().connected() {
                return Ok(channel.clone());
            }
            // Best effort: the broker that broke it may be gone.
            let _ = connection.close(200, "reconnecting").await;
            *link = None;
        }
        let connection = self.settings.connect("api-gateway").await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        self.settings.declare_queue(&channel).await?;
        tracing::info!(queue = %self.settings.queue, "connected to the broker");
        *link = Some((connection, channel.clone()));
        Ok(channel)
    }

    pub async fn close(&self) {
        if let Some((connection, _)) = self.link.lock().await.take() {
            let _ = connection.close(200, "api-gateway stopping").await;
        }
    }
}

/// A random (version 4) UUID, as RFC 9562 writes it.
fn message_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the system's random source is available");
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_distinct_version_4_uuids() {
        let (first, second) = (message_id(), message_id());
        assert_ne!(first, second);
        assert_eq!(first.len(), 36);
        let groups: Vec<&str> = first.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(groups[2].starts_with('4'), "{first}");
        assert!("89ab".contains(&groups[3][..1]), "{first}");
    }
}
