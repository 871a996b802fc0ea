//! Configuration from the environment, with start-up errors that name the
//! variable at fault.

use std::fmt;
use std::str::FromStr;

use anyhow::{Context, anyhow};

/// A value that must never reach a log line: its `Debug` is redacted.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Reads one variable. The lookup is a parameter so tests need not touch the
/// process environment.
pub struct Env {
    lookup: Box<Lookup>,
}

type Lookup = dyn Fn(&str) -> Option<String>;

impl Default for Env {
    fn default() -> Self {
        Env::from_fn(|name| std::env::var(name).ok())
    }
}

impl Env {
    pub fn from_fn(lookup: impl Fn(&str) -> Option<String> + 'static) -> Self {
        Env {
            lookup: Box::new(lookup),
        }
    }

    /// A variable that must be set and not empty.
    pub fn required(&self, name: &str) -> anyhow::Result<String> {
        match (self.lookup)(name) {
            Some(value) if !value.is_empty() => Ok(value),
            _ => Err(anyhow!("environment variable {name} is not set")),
        }
    }

    pub fn secret(&self, name: &str) -> anyhow::Result<Secret> {
        self.required(name).map(Secret)
    }

    /// A variable that may be absent, parsed when present.
    pub fn parsed_or<T>(&self, name: &str, default: T) -> anyhow::Result<T>
    where
        T: FromStr,
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        match (self.lookup)(name) {
            Some(value) if !value.is_empty() => value
                .parse()
                .with_context(|| format!("environment variable {name}={value:?} is not valid")),
            _ => Ok(default),
        }
    }

    pub fn string_or(&self, name: &str, default: &str) -> String {
        (self.lookup)(name)
            .filter(|value| !value.is_empty())
            .unwrap_or_else(|| default.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> Env {
        Env::from_fn(move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        })
    }

    #[test]
    fn missing_variable_is_named() {
        let error = env(&[("OTHER", "x")]).required("DB_USER").unwrap_err();
        assert_eq!(error.to_string(), "environment variable DB_USER is not set");
    }

    #[test]
    fn empty_variable_counts_as_missing() {
        assert!(env(&[("DB_USER", "")]).required("DB_USER").is_err());
    }

    #[test]
    fn bad_number_is_named_with_its_value() {
        let error = env(&[("DB_PORT", "54x")])
            .parsed_or("DB_PORT", 5432u16)
            .unwrap_err();
        assert!(error.to_string().contains("DB_PORT=\"54x\""), "{error}");
    }

    #[test]
    fn defaults_apply_when_absent() {
        assert_eq!(env(&[]).parsed_or("DB_PORT", 5432u16).unwrap(), 5432);
        assert_eq!(
            env(&[]).string_or("QUEUE", "billing_queue"),
            "billing_queue"
        );
    }

    #[test]
    fn secret_debug_is_redacted() {
        let secret = env(&[("PASSWORD", "hunter2")]).secret("PASSWORD").unwrap();
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert_eq!(secret.expose(), "hunter2");
    }
}
