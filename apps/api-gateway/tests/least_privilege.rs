//! Least privilege as the manifests set it up, on real servers: each app's
//! database role (the `*-db-init` ConfigMaps' scripts on PostgreSQL) and the
//! broker's one user (rabbitmq-config and the pod's environment on RabbitMQ).
//! Here because this crate's tests see all three services.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use service_common::amqp::AmqpSettings;
use service_common::postgres::{Database, DbSettings};
use testkit::{PrivatePostgres, PrivateRabbit};

/// The file `key` of the ConfigMap `config_map` in manifests/`manifest`.yaml.
fn config_file(manifest: &str, config_map: &str, key: &str) -> String {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../manifests/{manifest}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap();
    text.split("\n---\n")
        .map(|document| serde_yaml_ng::from_str::<serde_yaml_ng::Value>(document).unwrap())
        .find(|object| object["kind"] == "ConfigMap" && object["metadata"]["name"] == config_map)
        .and_then(|object| object["data"][key].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("{}: no ConfigMap {config_map} with {key}", path.display()))
}

/// Runs the init script as the image's entrypoint does: on the new database
/// `database`, as the superuser over the Unix socket, the app's name and
/// password from the environment.
fn run_init(server: &PrivatePostgres, script: &str, database: &str, user: &str, password: &str) {
    let socket = server.socket_dir().display().to_string();
    let port = server.port.to_string();
    let created = Command::new("psql")
        .args([
            "-h", &socket, "-p", &port, "-U", "postgres", "-d", "postgres",
        ])
        .args([
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            &format!("CREATE DATABASE {database}"),
        ])
        .output()
        .unwrap();
    assert!(created.status.success(), "CREATE DATABASE: {created:?}");
    let output = Command::new("sh")
        .args(["-c", script])
        .env("PGHOST", &socket)
        .env("PGPORT", &port)
        .env("POSTGRES_USER", "postgres")
        .env("POSTGRES_DB", database)
        .env("APP_DB_USER", user)
        .env("APP_DB_PASSWORD", password)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the init script failed: {output:?}"
    );
    let log = format!("{output:?}");
    assert!(
        !log.contains(password),
        "the password is in the script's output: {log}"
    );
}

fn settings(server: &PrivatePostgres, database: &str, user: &str, password: &str) -> DbSettings {
    DbSettings {
        host: "127.0.0.1".into(),
        port: server.port,
        user: user.into(),
        password: password.to_owned().into(),
        database: database.into(),
    }
}

/// Connects and runs one query; the error's text if either fails.
async fn query(settings: &DbSettings, sql: &str) -> Result<String, String> {
    use sqlx::{Connection, Row};
    let mut connection = sqlx::PgConnection::connect_with(&settings.connect_options())
        .await
        .map_err(|error| error.to_string())?;
    let row = sqlx::query(sql)
        .fetch_one(&mut connection)
        .await
        .map_err(|error| error.to_string())?;
    Ok(row.get::<String, _>(0))
}

#[tokio::test]
#[ignore = "needs PostgreSQL 15's server binaries (a private server)"]
async fn each_app_role_owns_its_database_and_nothing_else() {
    // Quotes in both: psql's variables must quote them, not paste them.
    let password = r#"it's a "secret" \ $HOME"#;
    for (manifest, database, user) in [
        ("inventory-db", "movies", r#"inventory "app""#),
        ("billing-db", "orders", "billing's app"),
    ] {
        // A server each, as in the cluster (inventory-db and billing-db).
        let server = PrivatePostgres::start();
        server.require_passwords_over_tcp();
        let script = config_file(manifest, &format!("{manifest}-init"), "10-app-role.sh");
        run_init(&server, &script, database, user, password);
        let app = settings(&server, database, user, password);

        // The app signs in with its password and its migrations create its tables.
        let pool = app.lazy_pool(2);
        let migrated = match manifest {
            "inventory-db" => {
                let db = Database::new(pool.clone());
                tokio::time::timeout(Duration::from_secs(30), inventory_app::migrate(db)).await
            }
            _ => {
                let billing = billing_app::Billing::new(pool.clone());
                tokio::time::timeout(Duration::from_secs(30), billing_app::migrate(billing)).await
            }
        };
        assert!(
            migrated.is_ok(),
            "{manifest}: the app's migrations never succeeded"
        );
        assert_eq!(
            query(
                &app,
                "SELECT tableowner::text FROM pg_tables WHERE schemaname = 'public' LIMIT 1"
            )
            .await
            .as_deref(),
            Ok(user),
            "{manifest}"
        );
        pool.close().await;

        // Nothing more than that.
        assert_eq!(
            query(
                &app,
                "SELECT concat_ws(' ', rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls) \
                 FROM pg_roles WHERE rolname = current_user"
            )
            .await
            .as_deref(),
            Ok("f f f f f"),
            "{manifest}: the role's attributes"
        );
        for other in ["postgres", "template1"] {
            let refused = query(&settings(&server, other, user, password), "SELECT ''").await;
            assert!(
                refused
                    .as_ref()
                    .is_err_and(|error| error.contains("permission denied")),
                "{manifest}: the app may connect to {other}: {refused:?}"
            );
        }
        let wrong = query(&settings(&server, database, user, "guess"), "SELECT ''").await;
        assert!(
            wrong
                .as_ref()
                .is_err_and(|error| error.contains("password authentication failed")),
            "{manifest}: a wrong password was taken: {wrong:?}"
        );
    }
}

/// Whether `user` may open a connection to `vhost` of the broker on `port`.
async fn amqp_connects(port: u16, user: &str, password: &str, vhost: &str) -> Result<(), String> {
    let settings = AmqpSettings {
        host: "127.0.0.1".into(),
        port,
        user: user.into(),
        password: password.to_owned().into(),
        vhost: vhost.into(),
        queue: "billing_queue".into(),
    };
    let connection = settings
        .connect("least-privilege test")
        .await
        .map_err(|error| error.to_string())?;
    let channel = connection
        .create_channel()
        .await
        .map_err(|error| error.to_string())?;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare(&settings.queue, durable, FieldTable::default())
        .await
        .map_err(|error| error.to_string())?;
    let _ = connection.close(200, "done").await;
    Ok(())
}

#[tokio::test]
#[ignore = "needs rabbitmq-server (a private broker)"]
async fn the_broker_has_only_the_apps_user_on_its_own_vhost() {
    let config = config_file("rabbitmq", "rabbitmq-config", "10-orchestrator.conf");
    let vhost = config_file("config", "app-config", "RABBITMQ_VHOST");
    let (user, password) = ("orchestrator-apps", "s3cret with spaces");
    let broker = PrivateRabbit::start_configured(
        &config,
        &[
            ("RABBITMQ_DEFAULT_USER", user),
            ("RABBITMQ_DEFAULT_PASS", password),
            ("RABBITMQ_DEFAULT_VHOST", &vhost),
        ],
    );
    // The apps' user declares and uses its queue on its vhost.
    assert_eq!(
        amqp_connects(broker.port, user, password, &vhost).await,
        Ok(())
    );
    // Nothing else: no other vhost, no guest, no administrator.
    let elsewhere = amqp_connects(broker.port, user, password, "/").await;
    assert!(elsewhere.is_err(), "the apps' user reached vhost /");
    let guest = amqp_connects(broker.port, "guest", "guest", "/").await;
    assert!(guest.is_err(), "guest signs in");
    let users = broker.ctl(&["list_users", "--no-table-headers", "--quiet"]);
    assert_eq!(
        users.trim(),
        format!("{user}\t[]"),
        "the broker's users and their tags"
    );
    let permissions = broker.ctl(&[
        "list_user_permissions",
        user,
        "--no-table-headers",
        "--quiet",
    ]);
    assert_eq!(
        permissions.trim(),
        format!("{vhost}\t.*\t.*\t.*"),
        "the user's permissions"
    );
}
