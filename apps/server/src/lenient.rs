//! Optional numbers as Sage's web UI sends them.
//!
//! The UI turns an empty form field into `Number(null)` (`0`), `null` or `""`. Sage's server
//! accepts those, so every optional numeric field of a request body reads them as "not set":
//! `null` and `""` always, `0` where zero is not a meaningful value (counts such as
//! `max_tokens`). Numeric strings (`"4096"`) are read as numbers, as Sage's validation does.
//! Anything else is still a 422 naming the field.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// `None` for the UI's "empty" spellings; the number otherwise.
fn number<E: serde::de::Error>(value: Value, zero_is_unset: bool) -> Result<Option<f64>, E> {
    let n = match value {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_f64(),
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|v| v.is_finite()),
        _ => None,
    };
    match n {
        Some(v) if zero_is_unset && v == 0.0 => Ok(None),
        Some(v) => Ok(Some(v)),
        None => Err(E::custom("must be a number")),
    }
}

fn whole<E: serde::de::Error>(v: f64) -> Result<i64, E> {
    // `as` is exact here: the value is whole and inside i64's range.
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Ok(v as i64)
    } else {
        Err(E::custom("must be a whole number"))
    }
}

/// An optional count: `null`, `""` and `0` are unset.
pub(crate) fn count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    number(Value::deserialize(d)?, true)?.map(whole).transpose()
}

/// An optional real number: `null` and `""` are unset; `0` is zero.
pub(crate) fn real<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    number(Value::deserialize(d)?, false)
}

/// A count in a partial update: absent keeps (`None`), an empty spelling clears (`Some(None)`).
/// Use with `#[serde(default)]`.
pub(crate) fn count_patch<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<i64>>, D::Error> {
    count(d).map(Some)
}

/// A real number in a partial update: absent keeps, `null`/`""` clears.
/// Use with `#[serde(default)]`.
pub(crate) fn real_patch<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<f64>>, D::Error> {
    real(d).map(Some)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Form {
        #[serde(default, deserialize_with = "count")]
        max_tokens: Option<i64>,
        #[serde(default, deserialize_with = "real")]
        temperature: Option<f64>,
        #[serde(default, deserialize_with = "count_patch")]
        max_model_len: Option<Option<i64>>,
        #[serde(default, deserialize_with = "real_patch")]
        top_p: Option<Option<f64>>,
    }

    fn form(v: Value) -> Result<Form, serde_json::Error> {
        serde_json::from_value(v)
    }

    #[test]
    fn empty_spellings_are_unset() {
        for empty in [json!(0), json!(null), json!(""), json!("  "), json!(0.0)] {
            let f = form(json!({"max_tokens": empty, "max_model_len": empty})).unwrap();
            assert_eq!(f.max_tokens, None, "{empty}");
            assert_eq!(f.max_model_len, Some(None), "{empty}");
        }
        let f = form(json!({"temperature": "", "top_p": null})).unwrap();
        assert_eq!(f.temperature, None);
        assert_eq!(f.top_p, Some(None));
    }

    #[test]
    fn absent_keeps_and_zero_is_a_real_temperature() {
        let f = form(json!({"temperature": 0})).unwrap();
        assert_eq!(f.temperature, Some(0.0));
        assert_eq!(f.max_model_len, None);
        assert_eq!(f.top_p, None);
        assert_eq!(f.max_tokens, None);
    }

    #[test]
    fn numbers_and_numeric_strings_are_read() {
        let f = form(json!({"max_tokens": "4096", "temperature": "0.7", "max_model_len": 64000.0}))
            .unwrap();
        assert_eq!(f.max_tokens, Some(4096));
        assert_eq!(f.temperature, Some(0.7));
        assert_eq!(f.max_model_len, Some(Some(64000)));
        // Negative counts pass through, so the domain's range check names them.
        assert_eq!(
            form(json!({"max_tokens": -3})).unwrap().max_tokens,
            Some(-3)
        );
    }

    #[test]
    fn other_values_are_refused() {
        for bad in [
            json!("many"),
            json!(true),
            json!([1]),
            json!({}),
            json!(1.5),
        ] {
            assert!(form(json!({"max_tokens": bad})).is_err(), "{bad}");
        }
        assert!(form(json!({"temperature": "warm"})).is_err());
        assert!(form(json!({"temperature": "NaN"})).is_err());
    }
}
