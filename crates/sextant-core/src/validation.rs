//! MLflow's input limits (`mlflow/utils/validation.py`), so that a client
//! gets the same `INVALID_PARAMETER_VALUE` answer from Sextant as from MLflow.

/// Most metrics one `log-batch` request may carry.
pub const MAX_METRICS_PER_BATCH: usize = 1000;
/// Most params one `log-batch` request may carry.
pub const MAX_PARAMS_PER_BATCH: usize = 100;
/// Most tags one `log-batch` request may carry.
pub const MAX_TAGS_PER_BATCH: usize = 100;
/// Most metrics + params + tags one `log-batch` request may carry.
pub const MAX_ENTITIES_PER_BATCH: usize = 1000;
/// Longest param value.
pub const MAX_PARAM_VALUE_LENGTH: usize = 6000;
/// Longest tag value.
pub const MAX_TAG_VALUE_LENGTH: usize = 8000;
/// Longest metric, param or tag key.
pub const MAX_KEY_LENGTH: usize = 250;
/// Longest experiment, run or registered-model name.
pub const MAX_NAME_LENGTH: usize = 500;
/// Largest page `search_runs` serves.
pub const MAX_RUNS_PAGE: i64 = 50_000;
/// Largest page `metrics/get-history` serves.
pub const MAX_METRIC_HISTORY_PAGE: i64 = 25_000;

/// A value the caller sent that MLflow would reject.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidInput {
    pub message: String,
}

impl InvalidInput {
    pub fn new(message: impl Into<String>) -> InvalidInput {
        InvalidInput {
            message: message.into(),
        }
    }
}

/// What kind of key is checked; it only changes the error message.
#[derive(Debug, Clone, Copy)]
pub enum KeyKind {
    Metric,
    Param,
    Tag,
}

impl KeyKind {
    fn noun(self) -> &'static str {
        match self {
            KeyKind::Metric => "metric",
            KeyKind::Param => "param",
            KeyKind::Tag => "tag",
        }
    }
}

/// Checks a metric, param or tag key: MLflow allows alphanumerics,
/// underscores, periods, dashes, spaces, colons and slashes
/// (`^[/\w.\- :]*$`), and no path that escapes its directory, because keys
/// become file names in MLflow's file store.
pub fn validate_key(kind: KeyKind, key: &str) -> Result<(), InvalidInput> {
    if key.is_empty() {
        return Err(InvalidInput::new(format!(
            "Missing value for required parameter 'key' ({} key)",
            kind.noun()
        )));
    }
    if key.chars().count() > MAX_KEY_LENGTH {
        return Err(InvalidInput::new(format!(
            "'{}' exceeds the maximum length of {} characters for a {} key",
            truncate_for_message(key),
            MAX_KEY_LENGTH,
            kind.noun()
        )));
    }
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | ' ' | ':' | '/');
    if !key.chars().all(allowed) {
        return Err(InvalidInput::new(format!(
            "Invalid {} name: '{}'. Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), colons (:) and slashes (/).",
            kind.noun(),
            truncate_for_message(key)
        )));
    }
    if key.starts_with('/') || key.split('/').any(|part| part == "..") {
        return Err(InvalidInput::new(format!(
            "Invalid {} name: '{}'. Names may be treated as files in certain cases, and must not resolve to other names when treated as such.",
            kind.noun(),
            truncate_for_message(key)
        )));
    }
    Ok(())
}

/// Cuts an over-long run param value to MLflow's limit. MLflow's server
/// truncates rather than rejects, and clients rely on that (a long value
/// logged by autologging must not fail the run).
pub fn truncate_param_value(value: &mut String) {
    truncate_chars(value, MAX_PARAM_VALUE_LENGTH);
}

/// Cuts an over-long run tag value to MLflow's limit, as MLflow's server does.
pub fn truncate_tag_value(value: &mut String) {
    truncate_chars(value, MAX_TAG_VALUE_LENGTH);
}

fn truncate_chars(value: &mut String, max_chars: usize) {
    if let Some((byte_idx, _)) = value.char_indices().nth(max_chars) {
        value.truncate(byte_idx);
    }
}

/// Checks the length of a param value.
pub fn validate_param_value(key: &str, value: &str) -> Result<(), InvalidInput> {
    if value.chars().count() > MAX_PARAM_VALUE_LENGTH {
        return Err(InvalidInput::new(format!(
            "Param value '{}' had length {}, which exceeded length limit of {} (param key '{}')",
            truncate_for_message(value),
            value.chars().count(),
            MAX_PARAM_VALUE_LENGTH,
            key
        )));
    }
    Ok(())
}

/// Checks the length of a tag value.
pub fn validate_tag_value(key: &str, value: &str) -> Result<(), InvalidInput> {
    if value.chars().count() > MAX_TAG_VALUE_LENGTH {
        return Err(InvalidInput::new(format!(
            "Tag value '{}' had length {}, which exceeded length limit of {} (tag key '{}')",
            truncate_for_message(value),
            value.chars().count(),
            MAX_TAG_VALUE_LENGTH,
            key
        )));
    }
    Ok(())
}

/// Checks the sizes of a `log-batch` request.
pub fn validate_batch_sizes(
    n_metrics: usize,
    n_params: usize,
    n_tags: usize,
) -> Result<(), InvalidInput> {
    let too_many = |what: &str, n: usize, limit: usize| {
        InvalidInput::new(format!(
            "A batch logging request can contain at most {limit} {what}. Got {n} {what}. Please split up {what} across multiple requests and try again."
        ))
    };
    if n_metrics > MAX_METRICS_PER_BATCH {
        return Err(too_many("metrics", n_metrics, MAX_METRICS_PER_BATCH));
    }
    if n_params > MAX_PARAMS_PER_BATCH {
        return Err(too_many("params", n_params, MAX_PARAMS_PER_BATCH));
    }
    if n_tags > MAX_TAGS_PER_BATCH {
        return Err(too_many("tags", n_tags, MAX_TAGS_PER_BATCH));
    }
    let total = n_metrics + n_params + n_tags;
    if total > MAX_ENTITIES_PER_BATCH {
        return Err(too_many(
            "entities (metrics, params and tags together)",
            total,
            MAX_ENTITIES_PER_BATCH,
        ));
    }
    Ok(())
}

/// Checks an experiment, run or registered-model name.
pub fn validate_name(what: &str, name: &str) -> Result<(), InvalidInput> {
    if name.trim().is_empty() {
        return Err(InvalidInput::new(format!(
            "{what} name must be a non-empty string"
        )));
    }
    if name.chars().count() > MAX_NAME_LENGTH {
        return Err(InvalidInput::new(format!(
            "{what} name exceeds the maximum length of {MAX_NAME_LENGTH} characters"
        )));
    }
    Ok(())
}

/// Checks an id of 32 lowercase hex digits (runs) so that a typo is a clear
/// 400 rather than a puzzling 404.
pub fn is_run_id(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

fn truncate_for_message(text: &str) -> String {
    const SHOWN: usize = 64;
    if text.chars().count() <= SHOWN {
        text.to_string()
    } else {
        let head: String = text.chars().take(SHOWN).collect();
        format!("{head}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(validate_key(KeyKind::Metric, "acc").is_ok());
        assert!(validate_key(KeyKind::Tag, "mlflow.source.name").is_ok());
        assert!(validate_key(KeyKind::Param, "my lr/x:1-2").is_ok());
        assert!(validate_key(KeyKind::Param, "").is_err());
        assert!(validate_key(KeyKind::Param, "a/../b").is_err());
        assert!(validate_key(KeyKind::Param, "/abs").is_err());
        assert!(validate_key(KeyKind::Param, "semi;colon").is_err());
        assert!(validate_key(KeyKind::Param, &"k".repeat(251)).is_err());
    }

    #[test]
    fn truncation_counts_characters() {
        let mut value = "é".repeat(MAX_PARAM_VALUE_LENGTH + 5);
        truncate_param_value(&mut value);
        assert_eq!(value.chars().count(), MAX_PARAM_VALUE_LENGTH);
        let mut short = "abc".to_string();
        truncate_tag_value(&mut short);
        assert_eq!(short, "abc");
    }

    #[test]
    fn batch_limits() {
        assert!(validate_batch_sizes(1000, 0, 0).is_ok());
        assert!(validate_batch_sizes(1001, 0, 0).is_err());
        assert!(validate_batch_sizes(0, 101, 0).is_err());
        assert!(validate_batch_sizes(900, 100, 1).is_err());
    }
}

/// Most comparisons in one search filter (databases refuse expression trees
/// much deeper than this; no real filter comes close).
pub const MAX_FILTER_COMPARISONS: usize = 200;
/// Most values in the `IN (…)` lists of one filter, together.
pub const MAX_FILTER_VALUES: usize = 10_000;
/// Most `order_by` clauses in one search.
pub const MAX_ORDER_BY_CLAUSES: usize = 20;
/// Most experiment ids one search may name.
pub const MAX_SEARCH_EXPERIMENTS: usize = 10_000;
