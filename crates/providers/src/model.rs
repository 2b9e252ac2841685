//! Provider records as the routes see them (keys masked), and their inputs.

use chrono::{DateTime, Utc};

use crate::ProviderError;

/// A provider as listed: the key is masked.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderView {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub base_url: String,
    pub api_key_masked: String,
    pub model: String,
    pub max_tokens: Option<i64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub presence_penalty: Option<f64>,
    pub max_model_len: Option<i64>,
    pub supports_multimodal: bool,
    pub supports_structured_output: bool,
    pub is_default: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A provider to create or probe (`LLMProviderCreate`).
#[derive(Debug, Clone, Default)]
pub struct ProviderInput {
    pub name: Option<String>,
    pub base_url: String,
    pub api_keys: Vec<String>,
    pub model: String,
    pub max_tokens: Option<i64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub presence_penalty: Option<f64>,
    pub max_model_len: Option<i64>,
    pub supports_multimodal: bool,
    pub supports_structured_output: bool,
    pub is_default: bool,
}

/// A partial update (`LLMProviderUpdate`): `None` keeps a field; `Some(None)` clears an
/// optional one.
#[derive(Debug, Clone, Default)]
pub struct ProviderPatch {
    pub name: Option<String>,
    pub base_url: Option<String>,
    pub api_keys: Option<Vec<String>>,
    pub model: Option<String>,
    pub max_tokens: Option<Option<i64>>,
    pub temperature: Option<Option<f64>>,
    pub top_p: Option<Option<f64>>,
    pub presence_penalty: Option<Option<f64>>,
    pub max_model_len: Option<Option<i64>>,
    pub supports_multimodal: Option<bool>,
    pub supports_structured_output: Option<bool>,
    pub is_default: Option<bool>,
}

/// The outcome of a connection probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    pub supported: bool,
    pub response: String,
}

/// What `verify-capabilities` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    pub connection: ProbeResult,
    pub multimodal: ProbeResult,
    pub structured_output: ProbeResult,
    pub model: String,
    pub base_url: String,
}

/// What `verify-multimodal` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultimodalCheck {
    pub supports_multimodal: bool,
    pub recognized: bool,
    pub response: String,
    pub error: Option<String>,
}

pub use platform::secret::mask;

/// Exactly one non-blank, single-line key.
pub(crate) fn single_key(keys: &[String]) -> Result<String, ProviderError> {
    let keys: Vec<&str> = keys
        .iter()
        .map(|k| k.trim())
        .filter(|k| !k.is_empty())
        .collect();
    match keys.as_slice() {
        [key] if !key.contains(['\n', '\r']) && key.len() <= 4096 => Ok((*key).to_owned()),
        [_] => Err(ProviderError::invalid(
            "api_keys",
            "the key must be a single line",
        )),
        [] => Err(ProviderError::invalid(
            "api_keys",
            "exactly one non-empty key is required",
        )),
        _ => Err(ProviderError::invalid(
            "api_keys",
            "exactly one key is allowed",
        )),
    }
}

/// An http(s) base URL without its trailing `/`.
pub(crate) fn base_url(raw: &str) -> Result<String, ProviderError> {
    let url = raw.trim().trim_end_matches('/');
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() <= 2048
        && reqwest::Url::parse(url).is_ok_and(|u| u.host_str().is_some());
    if ok {
        Ok(url.to_owned())
    } else {
        Err(ProviderError::invalid("base_url", "must be an http(s) URL"))
    }
}

pub(crate) fn check_ranges(
    max_tokens: Option<i64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    presence_penalty: Option<f64>,
    max_model_len: Option<i64>,
) -> Result<(), ProviderError> {
    if max_tokens.is_some_and(|v| v < 1) {
        return Err(ProviderError::invalid("max_tokens", "must be 1 or more"));
    }
    if max_model_len.is_some_and(|v| v < 1) {
        return Err(ProviderError::invalid("max_model_len", "must be 1 or more"));
    }
    if temperature.is_some_and(|v| !(0.0..=2.0).contains(&v)) {
        return Err(ProviderError::invalid(
            "temperature",
            "must be between 0 and 2",
        ));
    }
    if top_p.is_some_and(|v| !(0.0..=1.0).contains(&v)) {
        return Err(ProviderError::invalid("top_p", "must be between 0 and 1"));
    }
    if presence_penalty.is_some_and(|v| !(-2.0..=2.0).contains(&v)) {
        return Err(ProviderError::invalid(
            "presence_penalty",
            "must be between -2 and 2",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_masked() {
        assert_eq!(mask("sk-abcdefghijklmnopqrstuvwxyz0123"), "sk-a***0123");
        assert_eq!(mask("sk-abcdefghijklmnop"), "sk***op");
        assert_eq!(mask("0123456789abcdef"), "01***ef");
        assert_eq!(mask("12345678"), "1***8");
        assert_eq!(mask("1234567"), "***");
        assert_eq!(mask(""), "***");
        for len in 0..200 {
            let key: String = "k".repeat(len);
            let shown = mask(&key).chars().filter(|c| *c == 'k').count();
            assert!(shown * 4 <= len && shown <= 8, "{len}: {shown}");
        }
    }

    #[test]
    fn exactly_one_single_line_key() {
        assert_eq!(single_key(&[" sk-1 ".into()]).unwrap(), "sk-1");
        assert_eq!(single_key(&["sk-1".into(), " ".into()]).unwrap(), "sk-1");
        assert!(single_key(&[]).is_err());
        assert!(single_key(&["".into()]).is_err());
        assert!(single_key(&["a".into(), "b".into()]).is_err());
        assert!(single_key(&["a\nb".into()]).is_err());
    }

    #[test]
    fn base_urls_are_http_and_trimmed() {
        assert_eq!(
            base_url("https://api.example.com/v1/").unwrap(),
            "https://api.example.com/v1"
        );
        assert!(base_url("ftp://x").is_err());
        assert!(base_url("http://").is_err());
        assert!(base_url("api.example.com").is_err());
    }
}
