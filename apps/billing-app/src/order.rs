//! Orders as they are stored.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use service_common::order::Order;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

#[derive(Serialize, Deserialize, Debug)]
pub struct StoredOrder {
    pub id: i32,
    pub user_id: i32,
    pub number_of_items: i32,
    pub total_amount: Decimal,
}

// By hand: sqlx's derive needs its macros, whose build was a third of the image's.
impl<'r> sqlx::FromRow<'r, PgRow> for StoredOrder {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(StoredOrder {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            number_of_items: row.try_get("number_of_items")?,
            total_amount: row.try_get("total_amount")?,
        })
    }
}

/// An order and the `message_id` it was published with, if any.
pub struct Delivered {
    pub order: Order,
    pub message_id: Option<String>,
}

/// Inserts the orders in one statement, so they commit together. An order
/// whose message id is stored already is a redelivery and is skipped.
pub async fn insert_all(pool: &PgPool, orders: &[Delivered]) -> Result<(), sqlx::Error> {
    let user_ids: Vec<i32> = orders.iter().map(|each| each.order.user_id).collect();
    let items: Vec<i32> = orders
        .iter()
        .map(|each| each.order.number_of_items)
        .collect();
    let amounts: Vec<Decimal> = orders.iter().map(|each| each.order.total_amount).collect();
    let message_ids: Vec<Option<&str>> = orders
        .iter()
        .map(|each| each.message_id.as_deref())
        .collect();
    sqlx::query(
        "INSERT INTO orders (user_id, number_of_items, total_amount, message_id) \
         SELECT * FROM UNNEST($1::int4[], $2::int4[], $3::numeric[], $4::text[]) \
         ON CONFLICT (message_id) DO NOTHING",
    )
    .bind(user_ids)
    .bind(items)
    .bind(amounts)
    .bind(message_ids)
    .execute(pool)
    .await?;
    Ok(())
}
