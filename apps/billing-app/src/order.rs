//! An order as it arrives on the queue and as it is stored.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};
use sqlx::PgPool;

/// A queued order. Each field may arrive as a JSON number or as a string
/// holding one (`20` or `"20"`).
#[derive(Deserialize, Debug, PartialEq)]
pub struct Order {
    #[serde(deserialize_with = "integer")]
    pub user_id: i32,
    #[serde(deserialize_with = "integer")]
    pub number_of_items: i32,
    #[serde(deserialize_with = "amount")]
    pub total_amount: Decimal,
}

#[derive(Serialize, Deserialize, sqlx::FromRow, Debug)]
pub struct StoredOrder {
    pub id: i32,
    pub user_id: i32,
    pub number_of_items: i32,
    pub total_amount: Decimal,
}

impl Order {
    pub fn parse(body: &[u8]) -> Result<Order, serde_json::Error> {
        serde_json::from_slice(body)
    }
}

/// Inserts the orders in one statement, so they commit together.
pub async fn insert_all(pool: &PgPool, orders: &[Order]) -> Result<(), sqlx::Error> {
    let user_ids: Vec<i32> = orders.iter().map(|order| order.user_id).collect();
    let items: Vec<i32> = orders.iter().map(|order| order.number_of_items).collect();
    let amounts: Vec<Decimal> = orders.iter().map(|order| order.total_amount).collect();
    sqlx::query(
        "INSERT INTO orders (user_id, number_of_items, total_amount) \
         SELECT * FROM UNNEST($1::int4[], $2::int4[], $3::numeric[])",
    )
    .bind(user_ids)
    .bind(items)
    .bind(amounts)
    .execute(pool)
    .await?;
    Ok(())
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(serde_json::Number),
    Text(String),
}

impl NumberOrText {
    fn into_text(self) -> String {
        match self {
            NumberOrText::Number(number) => number.to_string(),
            NumberOrText::Text(text) => text.trim().to_owned(),
        }
    }
}

fn integer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i32, D::Error> {
    let text = NumberOrText::deserialize(deserializer)?.into_text();
    text.parse()
        .map_err(|_| serde::de::Error::custom(format!("{text:?} is not a 32-bit integer")))
}

fn amount<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
    let text = NumberOrText::deserialize(deserializer)?.into_text();
    let amount = text
        .parse::<Decimal>()
        .or_else(|_| Decimal::from_scientific(&text))
        .map_err(|_| serde::de::Error::custom(format!("{text:?} is not a number")))?
        .round_dp(2);
    // Past what `numeric(12, 2)` holds: refused here, a bad message cannot
    // fail the insert of the whole batch.
    if amount.abs() >= Decimal::from(10_000_000_000_i64) {
        return Err(serde::de::Error::custom(format!(
            "{text} is too large an amount"
        )));
    }
    Ok(amount)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Order, serde_json::Error> {
        Order::parse(body.as_bytes())
    }

    #[test]
    fn numbers_and_numeric_strings_are_the_same_order() {
        let from_numbers = parse(r#"{"user_id": 3, "number_of_items": 5, "total_amount": 180.5}"#);
        let from_strings =
            parse(r#"{"user_id": "3", "number_of_items": " 5", "total_amount": "180.50"}"#);
        assert_eq!(from_numbers.unwrap(), from_strings.unwrap());
    }

    #[test]
    fn amount_is_rounded_to_cents() {
        let order = parse(r#"{"user_id": 1, "number_of_items": 1, "total_amount": "0.125"}"#);
        assert_eq!(order.unwrap().total_amount.to_string(), "0.12");
    }

    #[test]
    fn amount_must_fit_twelve_digits() {
        let largest = r#"{"user_id": 1, "number_of_items": 1, "total_amount": 9999999999.99}"#;
        assert!(parse(largest).is_ok());
        let too_large = r#"{"user_id": 1, "number_of_items": 1, "total_amount": "1e10"}"#;
        assert!(parse(too_large).is_err());
    }

    #[test]
    fn malformed_orders_are_refused() {
        for body in [
            "not json",
            r#"{"user_id": 1, "number_of_items": 2}"#,
            r#"{"user_id": "one", "number_of_items": 2, "total_amount": 3}"#,
            r#"{"user_id": 1.5, "number_of_items": 2, "total_amount": 3}"#,
            r#"{"user_id": 99999999999, "number_of_items": 2, "total_amount": 3}"#,
            r#"{"user_id": 1, "number_of_items": 2, "total_amount": "three"}"#,
            r#"{"user_id": null, "number_of_items": 2, "total_amount": 3}"#,
        ] {
            assert!(parse(body).is_err(), "accepted {body}");
        }
    }
}
