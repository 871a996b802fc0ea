//! inventory-app: the movies CRUD over PostgreSQL.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use service_common::ApiError;
use service_common::config::Env;
use service_common::extract::{JsonBody, PathParam, QueryParams};
use service_common::postgres::{Database, DbSettings, Embedded};

use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgPool, Postgres, Row};

pub struct Config {
    pub db: DbSettings,
    pub port: u16,
}

impl Config {
    pub fn from_env(env: &Env) -> anyhow::Result<Self> {
        Ok(Config {
            db: DbSettings::from_env(env, "INVENTORY")?,
            port: env.parsed_or("INVENTORY_APP_PORT", 8080)?,
        })
    }
}

const POOL_SIZE: u32 = 8;

pub async fn run(env: Env) -> anyhow::Result<()> {
    let config = Config::from_env(&env)?;
    let db = Database::new(config.db.lazy_pool(POOL_SIZE));
    // Served at once: /healthz answers while the database is still away,
    // /readyz once the migrations ran.
    tokio::spawn(migrate(db.clone()));
    service_common::http::serve(app(db), config.port).await
}

const MIGRATIONS: Embedded = Embedded(&[(
    "0001_movies.sql",
    include_str!("../migrations/0001_movies.sql"),
)]);

/// Applies the migrations, retrying until the database takes them.
pub async fn migrate(db: Database) {
    db.migrate(MIGRATIONS).await
}

pub fn app(db: Database) -> Router {
    let api = Router::new()
        .route("/api/movies", get(list).post(create).delete(delete_all))
        .route("/api/movies/{id}", get(show).put(update).delete(remove))
        .with_state(db.pool.clone());
    service_common::http::envelope(api, move || {
        let db = db.clone();
        async move { db.ready().await }
    })
}

/// A movie as the API shows it. The list reads it with `&str` fields
/// borrowed from the rows, so no field is copied between the database's
/// answer and the JSON.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct Movie<Text = String> {
    pub id: i32,
    pub title: Text,
    pub description: Text,
}

/// Columns read by position and without sqlx's type check, in the order and
/// of the types every query here selects them (`id, title, description`;
/// tests cover each query): the derived implementation looks each column up
/// by name, and the check compares type descriptions, for every field of
/// every row — together a fifth of the list's instructions.
impl<'r, Text> sqlx::FromRow<'r, PgRow> for Movie<Text>
where
    Text: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(Movie {
            id: row.try_get_unchecked(0)?,
            title: row.try_get_unchecked(1)?,
            description: row.try_get_unchecked(2)?,
        })
    }
}

#[derive(Deserialize)]
struct NewMovie {
    title: String,
    description: String,
}

/// A PUT body: the fields present are replaced, the others kept.
#[derive(Deserialize)]
struct MovieChanges {
    title: Option<String>,
    description: Option<String>,
}

#[derive(Deserialize)]
struct TitleFilter {
    title: Option<String>,
}

fn check_title(title: &str) -> Result<(), ApiError> {
    if title.trim().is_empty() {
        return Err(ApiError::BadRequest("title must not be empty".into()));
    }
    Ok(())
}

fn not_found(id: i32) -> ApiError {
    ApiError::NotFound(format!("movie {id} not found"))
}

async fn list(
    State(pool): State<PgPool>,
    QueryParams(filter): QueryParams<TitleFilter>,
) -> Result<Response, ApiError> {
    // strpos rather than LIKE: the filter is a plain substring, so `%` and
    // `_` in it match themselves.
    let rows = sqlx::query(
        "SELECT id, title, description FROM movies \
         WHERE $1::text IS NULL OR strpos(lower(title), lower($1)) > 0 \
         ORDER BY id",
    )
    .bind(filter.title)
    .fetch_all(&pool)
    .await?;
    let movies = rows
        .iter()
        .map(Movie::<&str>::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(movies).into_response())
}

async fn create(
    State(pool): State<PgPool>,
    JsonBody(movie): JsonBody<NewMovie>,
) -> Result<Json<Movie>, ApiError> {
    check_title(&movie.title)?;
    let created = sqlx::query_as(
        "INSERT INTO movies (title, description) VALUES ($1, $2) \
         RETURNING id, title, description",
    )
    .bind(movie.title)
    .bind(movie.description)
    .fetch_one(&pool)
    .await?;
    Ok(Json(created))
}

async fn delete_all(State(pool): State<PgPool>) -> Result<Json<serde_json::Value>, ApiError> {
    let deleted = sqlx::query("DELETE FROM movies")
        .execute(&pool)
        .await?
        .rows_affected();
    Ok(Json(
        serde_json::json!({ "message": format!("deleted {deleted} movies") }),
    ))
}

async fn show(
    State(pool): State<PgPool>,
    PathParam(id): PathParam<i32>,
) -> Result<Json<Movie>, ApiError> {
    sqlx::query_as("SELECT id, title, description FROM movies WHERE id = $1")
        .bind(id)
        .fetch_optional(&pool)
        .await?
        .map(Json)
        .ok_or_else(|| not_found(id))
}

async fn update(
    State(pool): State<PgPool>,
    PathParam(id): PathParam<i32>,
    JsonBody(changes): JsonBody<MovieChanges>,
) -> Result<Json<Movie>, ApiError> {
    if let Some(title) = &changes.title {
        check_title(title)?;
    }
    sqlx::query_as(
        "UPDATE movies SET title = COALESCE($2, title), \
         description = COALESCE($3, description) \
         WHERE id = $1 RETURNING id, title, description",
    )
    .bind(id)
    .bind(changes.title)
    .bind(changes.description)
    .fetch_optional(&pool)
    .await?
    .map(Json)
    .ok_or_else(|| not_found(id))
}

/// Answers with the movie as it was before deletion.
async fn remove(
    State(pool): State<PgPool>,
    PathParam(id): PathParam<i32>,
) -> Result<Json<Movie>, ApiError> {
    sqlx::query_as("DELETE FROM movies WHERE id = $1 RETURNING id, title, description")
        .bind(id)
        .fetch_optional(&pool)
        .await?
        .map(Json)
        .ok_or_else(|| not_found(id))
}
