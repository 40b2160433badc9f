//! Query strings as Docker's clients write them: booleans as `1`/`true`,
//! and `filters` as JSON, in either of its two shapes.

use std::collections::{BTreeMap, HashMap};

use crate::error::{ApiError, ApiResult};

pub type Query = HashMap<String, String>;

/// An RFC 3339 time as seconds since the epoch, as the API's `Created`
/// fields give it; 0 when absent or unreadable.
pub fn unix_secs(rfc3339: Option<&str>) -> u64 {
    rfc3339
        .and_then(|t| {
            humantime::parse_rfc3339_weak(t.trim_end_matches('Z').split('.').next().unwrap_or(t))
                .ok()
        })
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

/// `?all=1`, `?all=true`: true; absent, `0` or `false`: false.
pub fn flag(q: &Query, key: &str) -> bool {
    q.get(key)
        .is_some_and(|v| !matches!(v.as_str(), "" | "0" | "false" | "False"))
}

/// A number, or a 400 naming the parameter.
pub fn number<T: std::str::FromStr>(q: &Query, key: &str) -> ApiResult<Option<T>> {
    q.get(key)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid value for {key}: {v:?}")))
        })
        .transpose()
}

/// A terminal's size, `?h=ROWS&w=COLS` (both needed, as dockerd asks).
pub fn window(q: &Query) -> ApiResult<(u16, u16)> {
    match (number(q, "h")?, number(q, "w")?) {
        (Some(h), Some(w)) => Ok((h, w)),
        _ => Err(ApiError::bad_request("a resize needs h and w")),
    }
}

/// `filters`: `{"label": ["a=b"]}` or the older `{"label": {"a=b": true}}`.
/// Only the keys in `known` are accepted.
pub fn filters(q: &Query, known: &[&str]) -> ApiResult<BTreeMap<String, Vec<String>>> {
    let Some(text) = q.get("filters").filter(|t| !t.is_empty()) else {
        return Ok(BTreeMap::new());
    };
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| ApiError::bad_request(format!("invalid filter: {e}")))?;
    let serde_json::Value::Object(map) = value else {
        return Err(ApiError::bad_request("invalid filter: expected an object"));
    };
    let mut out = BTreeMap::new();
    for (key, values) in map {
        if !known.contains(&key.as_str()) {
            return Err(ApiError::bad_request(format!("invalid filter '{key}'")));
        }
        let list: Vec<String> = match values {
            serde_json::Value::Array(a) => a
                .into_iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    ApiError::bad_request(format!("invalid filter '{key}': values must be strings"))
                })?,
            serde_json::Value::Object(o) => o.into_iter().map(|(k, _)| k).collect(),
            _ => return Err(ApiError::bad_request(format!("invalid filter '{key}'"))),
        };
        out.insert(key, list);
    }
    Ok(out)
}

/// `label` filter values against labels: `KEY` or `KEY=VALUE`; all must hold.
pub fn labels_match(wanted: Option<&Vec<String>>, labels: &BTreeMap<String, String>) -> bool {
    wanted.is_none_or(|w| {
        w.iter().all(|spec| match spec.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
            None => labels.contains_key(spec),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Query {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn both_filter_shapes_read_and_unknown_keys_are_refused() {
        let new = filters(&q(&[("filters", r#"{"label":["a=b"]}"#)]), &["label"]).unwrap();
        let old = filters(&q(&[("filters", r#"{"label":{"a=b":true}}"#)]), &["label"]).unwrap();
        assert_eq!(new, old);
        assert!(filters(&q(&[("filters", r#"{"nope":["x"]}"#)]), &["label"]).is_err());
        assert!(filters(&q(&[("filters", "{")]), &["label"]).is_err());
        assert!(filters(&q(&[("filters", r#"{"label":[1]}"#)]), &["label"]).is_err());
        let labels = BTreeMap::from([("a".to_string(), "b".to_string())]);
        assert!(labels_match(new.get("label"), &labels));
        assert!(!labels_match(Some(&vec!["a=c".into()]), &labels));
        assert!(flag(&q(&[("all", "1")]), "all") && !flag(&q(&[("all", "0")]), "all"));
        assert!(number::<u64>(&q(&[("t", "x")]), "t").is_err());
    }
}
