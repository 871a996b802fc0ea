//! RabbitMQ settings from `RABBITMQ_*` variables and a connection driven by
//! the tokio runtime, with the billing queue declared on it.

use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{Channel, Connection, ConnectionProperties, Queue};

use crate::config::{Env, Secret};

#[derive(Debug, Clone)]
pub struct AmqpSettings {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Secret,
    /// The virtual host: the cluster's broker gives the app's user
    /// permissions on its own vhost only (manifests/rabbitmq.yaml).
    pub vhost: String,
    pub queue: String,
}

impl AmqpSettings {
    /// Reads `RABBITMQ_USER`, `_PASSWORD`, `_HOST`, `_PORT` (5672), `_VHOST`
    /// (`/`) and `_QUEUE` (billing_queue).
    pub fn from_env(env: &Env) -> anyhow::Result<Self> {
        Ok(AmqpSettings {
            host: env.required("RABBITMQ_HOST")?,
            port: env.parsed_or("RABBITMQ_PORT", 5672)?,
            user: env.required("RABBITMQ_USER")?,
            password: env.secret("RABBITMQ_PASSWORD")?,
            vhost: env.string_or("RABBITMQ_VHOST", "/"),
            queue: env.string_or("RABBITMQ_QUEUE", "billing_queue"),
        })
    }

    /// Opens a connection, failing within a few seconds when the broker does
    /// not answer, with heartbeats so a vanished broker is noticed.
    pub async fn connect(&self, name: &str) -> lapin::Result<Connection> {
        // Built as a structure rather than a URI string: the password needs no
        // escaping and never sits in a string that could be logged.
        let uri = AMQPUri {
            scheme: AMQPScheme::AMQP,
            authority: AMQPAuthority {
                userinfo: AMQPUserInfo {
                    username: self.user.clone(),
                    password: self.password.expose().to_owned(),
                },
                host: self.host.clone(),
                port: self.port,
            },
            vhost: self.vhost.clone(),
            query: AMQPQueryString {
                heartbeat: Some(10),
                connection_timeout: Some(3_000),
                // lapin buffers 32 frames each way: at the broker's default
                // 128 KiB frames that is 8 MB of a service's memory. Orders are
                // far smaller than 16 KiB, and larger messages are split.
                frame_max: Some(16 * 1024),
                ..Default::default()
            },
        };
        let properties = ConnectionProperties::default()
            .with_connection_name(name.into())
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio);
        Connection::connect_uri(uri, properties).await
    }

    /// The queue where billing-app puts the messages it cannot use.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dead-letter", self.queue)
    }

    /// Declares the queue durable, so it and its persistent messages survive
    /// a broker restart, with its dead-letter queue: a message rejected
    /// without requeue is kept there rather than dropped. Both sides declare
    /// them, whichever starts first.
    pub async fn declare_queue(&self, channel: &Channel) -> lapin::Result<Queue> {
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        let dead_letters = self.dead_letter_queue();
        channel
            .queue_declare(&dead_letters, durable, FieldTable::default())
            .await?;
        let mut arguments = FieldTable::default();
        // The default exchange routes by queue name.
        arguments.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString("".into()),
        );
        arguments.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(dead_letters.into()),
        );
        channel.queue_declare(&self.queue, durable, arguments).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &'static [(&'static str, &'static str)]) -> AmqpSettings {
        let env = Env::from_fn(move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        });
        AmqpSettings::from_env(&env).unwrap()
    }

    const BASE: [(&str, &str); 3] = [
        ("RABBITMQ_HOST", "rabbitmq"),
        ("RABBITMQ_USER", "billing"),
        ("RABBITMQ_PASSWORD", "x"),
    ];

    #[test]
    fn vhost_defaults_to_the_root_and_follows_rabbitmq_vhost() {
        assert_eq!(settings(&BASE).vhost, "/");
        const WITH_VHOST: [(&str, &str); 4] = [
            BASE[0],
            BASE[1],
            BASE[2],
            ("RABBITMQ_VHOST", "orchestrator"),
        ];
        assert_eq!(settings(&WITH_VHOST).vhost, "orchestrator");
    }
}
