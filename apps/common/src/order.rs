//! A billing order as the gateway accepts it and billing-app stores it: one
//! parser for both, so the gateway refuses (400) exactly what billing-app
//! could not use. Each number may arrive as a JSON number or as a string
//! holding one (`20` or `"20"`); other fields are ignored.

use rust_decimal::Decimal;
use serde_json::{Map, Value};

#[derive(Debug, PartialEq)]
pub struct Order {
    pub user_id: i32,
    pub number_of_items: i32,
    pub total_amount: Decimal,
}

impl Order {
    /// Parses a JSON object; the error names the field at fault.
    pub fn parse(body: &[u8]) -> Result<Order, String> {
        let fields: Map<String, Value> = serde_json::from_slice(body)
            .map_err(|error| format!("the body must be a JSON object ({error})"))?;
        Ok(Order {
            user_id: integer(&fields, "user_id")?,
            number_of_items: integer(&fields, "number_of_items")?,
            total_amount: amount(&fields, "total_amount")?,
        })
    }
}

/// The field's number, as text.
fn number_text(fields: &Map<String, Value>, name: &str) -> Result<String, String> {
    match fields.get(name) {
        Some(Value::Number(number)) => Ok(number.to_string()),
        Some(Value::String(text)) => Ok(text.trim().to_owned()),
        None => Err(format!("{name} is missing")),
        Some(other) => Err(format!("{name} must be a number, not {other}")),
    }
}

fn integer(fields: &Map<String, Value>, name: &str) -> Result<i32, String> {
    let text = number_text(fields, name)?;
    text.parse()
        .map_err(|_| format!("{name}: {text:?} is not a 32-bit integer"))
}

fn amount(fields: &Map<String, Value>, name: &str) -> Result<Decimal, String> {
    let text = number_text(fields, name)?;
    let amount = text
        .parse::<Decimal>()
        .or_else(|_| Decimal::from_scientific(&text))
        .map_err(|_| format!("{name}: {text:?} is not a number"))?
        .round_dp(2);
    // Past what `numeric(12, 2)` holds: refused here, a bad message cannot
    // fail the insert of a whole batch.
    if amount.abs() >= Decimal::from(10_000_000_000_i64) {
        return Err(format!("{name}: {text} is too large an amount"));
    }
    Ok(amount)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Order, String> {
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
    fn malformed_orders_are_refused_naming_the_field() {
        for (body, field) in [
            ("not json", "JSON object"),
            ("[1]", "JSON object"),
            (r#"{"user_id": 1, "number_of_items": 2}"#, "total_amount"),
            (
                r#"{"user_id": "one", "number_of_items": 2, "total_amount": 3}"#,
                "user_id",
            ),
            (
                r#"{"user_id": 1.5, "number_of_items": 2, "total_amount": 3}"#,
                "user_id",
            ),
            (
                r#"{"user_id": 99999999999, "number_of_items": 2, "total_amount": 3}"#,
                "user_id",
            ),
            (
                r#"{"user_id": 1, "number_of_items": "2x", "total_amount": 3}"#,
                "number_of_items",
            ),
            (
                r#"{"user_id": 1, "number_of_items": 2, "total_amount": "three"}"#,
                "total_amount",
            ),
            (
                r#"{"user_id": null, "number_of_items": 2, "total_amount": 3}"#,
                "user_id",
            ),
        ] {
            let error = parse(body).expect_err(body);
            assert!(error.contains(field), "{body}: {error}");
        }
    }
}
