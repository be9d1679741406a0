//! What a request problem is (a field and a message: the API's 400), and the rules shared by
//! more than one field.

use serde::{Deserialize, Serialize};

/// A `Key`/`Value` tag: a job's, or one an operation sets on objects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// A request problem, naming the field (the API answers it with HTTP 400).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

pub fn invalid(field: &str, message: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// S3's tag rules: keys 1–128 characters, values at most 256, keys unique, at most `max`.
pub fn validate_tags(field: &str, tags: &[Tag], max: usize) -> Result<(), Invalid> {
    if tags.len() > max {
        return Err(invalid(field, format!("at most {max} tags")));
    }
    let mut seen = std::collections::HashSet::new();
    for t in tags {
        let n = t.key.chars().count();
        if n == 0 || n > 128 {
            return Err(invalid(field, "tag keys must be 1 to 128 characters"));
        }
        if t.value.chars().count() > 256 {
            return Err(invalid(field, "tag values must be at most 256 characters"));
        }
        if !seen.insert(t.key.as_str()) {
            return Err(invalid(field, format!("duplicate tag key {:?}", t.key)));
        }
    }
    Ok(())
}
