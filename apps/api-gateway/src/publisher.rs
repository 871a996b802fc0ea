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

    /// Publishes `body` to the queue; `Ok` once the broker confirmed it.
    pub async fn publish(&self, body: &[u8]) -> Result<(), ApiError> {
        let unavailable = |error: lapin::Error| {
            tracing::warn!(%error, "broker unavailable");
            ApiError::Unavailable("message broker unavailable".into())
        };
        let channel = self.channel().await.map_err(unavailable)?;
        let properties = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_content_type("application/json".into());
        let confirm = async {
            channel
                .basic_publish(
                    "",
                    &self.settings.queue,
                    BasicPublishOptions::default(),
                    body,
                    properties,
                )
                .await?
                .await
        };
        match tokio::time::timeout(CONFIRM_TIMEOUT, confirm).await {
            Ok(Ok(Confirmation::Ack(_))) => Ok(()),
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
