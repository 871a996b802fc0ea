//! inventory-app against a real PostgreSQL: each test has a database of its
//! own on the shared server, or a private server when it stops it.

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use serde_json::{Value, json};
use service_common::postgres::Database;
use testkit::{
    ErrorCase, PrivatePostgres, ServiceProcess, TestDb, assert_errors, call, db_env, eventually,
};

async fn inventory(db: &TestDb) -> Router {
    let db = Database::new(db.settings.lazy_pool(4));
    inventory_app::migrate(db.clone()).await;
    inventory_app::app(db)
}

async fn add(app: &Router, title: &str) -> Value {
    let body = json!({ "title": title, "description": format!("about {title}") }).to_string();
    let (status, movie) = call(app, "POST", "/api/movies", Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{movie}");
    movie
}

fn titles(movies: &Value) -> Vec<&str> {
    movies
        .as_array()
        .unwrap()
        .iter()
        .map(|movie| movie["title"].as_str().unwrap())
        .collect()
}

#[tokio::test]
#[ignore = "needs PostgreSQL on 127.0.0.1:5432"]
async fn movies_are_created_read_updated_and_deleted() {
    let db = TestDb::create();
    let app = inventory(&db).await;

    let created = add(&app, "Alien").await;
    assert_eq!(created["title"], "Alien");
    assert_eq!(created["description"], "about Alien");
    let id = created["id"].as_i64().unwrap();
    let path = format!("/api/movies/{id}");

    assert_eq!(
        call(&app, "GET", &path, None).await,
        (StatusCode::OK, created.clone())
    );

    let (status, updated) = call(&app, "PUT", &path, Some(r#"{"title": "Aliens"}"#)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        updated,
        json!({ "id": id, "title": "Aliens", "description": "about Alien" })
    );

    let (status, all) = call(&app, "GET", "/api/movies", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all, json!([updated]));

    assert_eq!(
        call(&app, "DELETE", &path, None).await,
        (StatusCode::OK, updated)
    );
    assert_eq!(
        call(&app, "GET", &path, None).await.0,
        StatusCode::NOT_FOUND
    );

    add(&app, "Heat").await;
    add(&app, "Ronin").await;
    assert_eq!(
        call(&app, "DELETE", "/api/movies", None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, "GET", "/api/movies", None).await,
        (StatusCode::OK, json!([]))
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL on 127.0.0.1:5432"]
async fn every_error_is_the_contract_status_in_json() {
    let db = TestDb::create();
    let app = inventory(&db).await;
    let good = r#"{"title": "Alien", "description": "space"}"#;
    let too_large = json!({ "title": "x".repeat(70 * 1024), "description": "" }).to_string();
    let cases: &[ErrorCase] = &[
        ("GET", "/api/movies/424242", None, StatusCode::NOT_FOUND),
        (
            "PUT",
            "/api/movies/424242",
            Some(good),
            StatusCode::NOT_FOUND,
        ),
        ("DELETE", "/api/movies/424242", None, StatusCode::NOT_FOUND),
        ("GET", "/api/movies/-1", None, StatusCode::NOT_FOUND),
        ("GET", "/api/movies/abc", None, StatusCode::BAD_REQUEST),
        ("GET", "/api/movies/1.5", None, StatusCode::BAD_REQUEST),
        (
            "GET",
            "/api/movies/99999999999",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            "PUT",
            "/api/movies/abc",
            Some(good),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/movies",
            Some("{not json"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/movies",
            Some(r#"{"title": "Alien"}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/movies",
            Some(r#"{"title": 7, "description": "x"}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/movies",
            Some(r#"{"title": " ", "description": "x"}"#),
            StatusCode::BAD_REQUEST,
        ),
        ("POST", "/api/movies", Some("[]"), StatusCode::BAD_REQUEST),
        (
            "POST",
            "/api/movies",
            Some(&too_large),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        ("PATCH", "/api/movies", None, StatusCode::METHOD_NOT_ALLOWED),
        ("GET", "/api/nothing", None, StatusCode::NOT_FOUND),
    ];
    assert_errors(&app, cases).await;
    let (status, answer) = call(&app, "POST", "/api/movies", Some(good)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
#[ignore = "needs PostgreSQL on 127.0.0.1:5432"]
async fn trailing_slashes_are_accepted() {
    let db = TestDb::create();
    let app = inventory(&db).await;
    let body = r#"{"title": "Alien", "description": "space"}"#;
    let (status, created) = call(&app, "POST", "/api/movies/", Some(body)).await;
    assert_eq!(status, StatusCode::OK);
    let id = &created["id"];
    assert_eq!(
        call(&app, "GET", "/api/movies/", None).await,
        (StatusCode::OK, json!([created]))
    );
    let path = format!("/api/movies/{id}/");
    assert_eq!(call(&app, "GET", &path, None).await.0, StatusCode::OK);
    assert_eq!(call(&app, "GET", "/healthz/", None).await.0, StatusCode::OK);
}

/// The list is encoded by PostgreSQL, the single movie by serde: both must
/// carry any title unchanged.
#[tokio::test]
#[ignore = "needs PostgreSQL on 127.0.0.1:5432"]
async fn the_list_carries_any_text_unchanged() {
    let db = TestDb::create();
    let app = inventory(&db).await;
    let title = "\"Quoted\" \\ back\\slash / tab\t line\n bell\u{7} é 映画 🎬";
    let body = json!({ "title": title, "description": "\u{1f}\r" }).to_string();
    let (status, created) = call(&app, "POST", "/api/movies", Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created["title"], title);
    let second = add(&app, "Heat").await;
    assert_eq!(
        call(&app, "GET", "/api/movies", None).await,
        (StatusCode::OK, json!([created, second]))
    );
    assert_eq!(
        call(&app, "GET", "/api/movies?title=%E6%98%A0%E7%94%BB", None).await,
        (StatusCode::OK, json!([created]))
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL on 127.0.0.1:5432"]
async fn title_filter_is_a_case_insensitive_substring_and_only_that() {
    let db = TestDb::create();
    let app = inventory(&db).await;
    for title in [
        "The Matrix",
        "Matrix Reloaded",
        "Alien",
        "100% Wolf",
        "snake_case",
    ] {
        add(&app, title).await;
    }
    let filtered = |query: &'static str| {
        let app = app.clone();
        async move {
            let (status, movies) =
                call(&app, "GET", &format!("/api/movies?title={query}"), None).await;
            assert_eq!(status, StatusCode::OK, "{query}: {movies}");
            titles(&movies)
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(filtered("matrix").await, ["The Matrix", "Matrix Reloaded"]);
    assert_eq!(filtered("ALIEN").await, ["Alien"]);
    assert_eq!(filtered("").await.len(), 5);
    // LIKE's wildcards are plain characters here.
    assert_eq!(filtered("%25").await, ["100% Wolf"]);
    assert_eq!(filtered("e_c").await, ["snake_case"]);
    assert!(filtered("zzz").await.is_empty());

    // An injection attempt is only a title that matches nothing.
    assert!(filtered("x'%20OR%20'1'='1").await.is_empty());
    assert!(
        filtered("'%3B%20DROP%20TABLE%20movies%3B%20--")
            .await
            .is_empty()
    );
    assert_eq!(db.count("movies"), 5);
}

#[tokio::test]
#[ignore = "needs PostgreSQL on 127.0.0.1:5432"]
async fn probes_answer() {
    let db = TestDb::create();
    let app = inventory(&db).await;
    assert_eq!(call(&app, "GET", "/healthz", None).await.0, StatusCode::OK);
    assert_eq!(call(&app, "GET", "/readyz", None).await.0, StatusCode::OK);
}

#[tokio::test]
#[ignore = "starts a private PostgreSQL (needs root, PostgreSQL 15 binaries)"]
async fn answers_503_while_postgres_is_down_and_recovers_without_restart() {
    let server = PrivatePostgres::start();
    let db = TestDb::create_on(server.port);
    let app = inventory(&db).await;
    add(&app, "Alien").await;

    server.stop();
    for (method, uri) in [
        ("GET", "/api/movies"),
        ("GET", "/api/movies/1"),
        ("GET", "/readyz"),
    ] {
        let (status, answer) = call(&app, method, uri, None).await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {uri}: {answer}"
        );
    }

    server.start_again();
    eventually(
        "inventory to answer again",
        Duration::from_secs(20),
        || async { call(&app, "GET", "/api/movies", None).await.0 == StatusCode::OK },
    )
    .await;
    let (_, movies) = call(&app, "GET", "/api/movies", None).await;
    assert_eq!(titles(&movies), ["Alien"]);
}

#[tokio::test]
#[ignore = "starts a private PostgreSQL (needs root, PostgreSQL 15 binaries)"]
async fn starts_before_its_database_and_becomes_ready_once_it_is_up() {
    let server = PrivatePostgres::start();
    let db = TestDb::create_on(server.port);
    server.stop();

    let mut inventory = ServiceProcess::spawn(
        env!("CARGO_BIN_EXE_inventory-app"),
        "INVENTORY_APP_PORT",
        db_env("INVENTORY", &db.settings),
    );
    // Alive at once, so liveness never restarts it; not ready without its database.
    eventually("/healthz to answer", Duration::from_secs(5), || async {
        inventory.status("/healthz") == Some(200)
    })
    .await;
    assert_eq!(inventory.status("/readyz"), Some(503));
    tokio::time::sleep(Duration::from_secs(2)).await;
    inventory.assert_running();
    assert_eq!(inventory.status("/readyz"), Some(503));

    server.start_again();
    eventually("/readyz to answer 200", Duration::from_secs(20), || async {
        inventory.status("/readyz") == Some(200)
    })
    .await;
    inventory.assert_running();
    assert_eq!(inventory.status("/api/movies"), Some(200));
}

#[tokio::test]
#[ignore = "needs PostgreSQL on 127.0.0.1:5432"]
async fn on_sigterm_serves_unready_for_the_drain_delay_then_exits() {
    let db = TestDb::create();
    let mut env = db_env("INVENTORY", &db.settings);
    env.push(("SHUTDOWN_DELAY_SECS".into(), "2".into()));
    let mut inventory = ServiceProcess::spawn(
        env!("CARGO_BIN_EXE_inventory-app"),
        "INVENTORY_APP_PORT",
        env,
    );
    eventually("/readyz to answer 200", Duration::from_secs(20), || async {
        inventory.status("/readyz") == Some(200)
    })
    .await;

    let sent = std::time::Instant::now();
    inventory.terminate();
    // Endpoints are being updated: unready, but every request still answered.
    eventually("/readyz to answer 503", Duration::from_secs(1), || async {
        inventory.status("/readyz") == Some(503)
    })
    .await;
    assert_eq!(inventory.status("/api/movies"), Some(200));
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(inventory.status("/api/movies"), Some(200));
    inventory.assert_running();

    let status = inventory
        .wait_exit(Duration::from_secs(10))
        .expect("inventory-app still runs 10 s after SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(
        sent.elapsed() >= Duration::from_secs(2),
        "exited after {:?}, before the drain delay",
        sent.elapsed()
    );
}
