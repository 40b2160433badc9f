//! Paging of List calls: `maxResults` and an opaque `nextToken`, which is
//! the hex of the last store key returned (the next page starts after it).

use estiba_aws::json::ErrorBody;

/// Where a page starts and how long it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    pub max: usize,
    pub after: Option<String>,
}

fn invalid(message: &str) -> ErrorBody {
    ErrorBody::new("InvalidParameterException", 400, message.to_string())
}

impl Page {
    /// ECS's bounds: 1 to 100 results, 100 when not given.
    pub fn parse(max_results: Option<i64>, next_token: Option<&str>) -> Result<Page, ErrorBody> {
        let max = match max_results {
            None => 100,
            Some(n @ 1..=100) => n as usize,
            Some(_) => return Err(invalid("maxResults must be between 1 and 100.")),
        };
        let after = match next_token {
            None | Some("") => None,
            Some(t) => Some(
                hex::decode(t)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| invalid("The nextToken is not valid."))?,
            ),
        };
        Ok(Page { max, after })
    }

    /// The page of `items` (sorted by key) and the token of the next one.
    pub fn take<T>(&self, items: Vec<(String, T)>) -> (Vec<T>, Option<String>) {
        self.take_ordered(items, false)
    }

    /// The same over `items` in key order, or in reverse key order when
    /// `descending`: a page starts past its token's key in that order, so
    /// a key removed between two calls loses no place.
    pub fn take_ordered<T>(
        &self,
        mut items: Vec<(String, T)>,
        descending: bool,
    ) -> (Vec<T>, Option<String>) {
        if descending {
            items.reverse();
        }
        let past = |k: &String| match &self.after {
            None => true,
            Some(a) if descending => k < a,
            Some(a) => k > a,
        };
        let mut rest = items.into_iter().filter(|(k, _)| past(k)).peekable();
        let mut out = Vec::new();
        let mut last = None;
        while out.len() < self.max {
            match rest.next() {
                Some((k, v)) => {
                    last = Some(k);
                    out.push(v);
                }
                None => break,
            }
        }
        let token = match rest.peek() {
            Some(_) => last.map(|k| hex::encode(k.as_bytes())),
            None => None,
        };
        (out, token)
    }
}

/// A List answer: `{FIELD: items, "nextToken": …}`, the token only when
/// there is a next page.
pub fn answer<T: serde::Serialize>(
    field: &str,
    items: Vec<T>,
    next: Option<String>,
) -> serde_json::Value {
    let mut out = serde_json::json!({ field: items });
    if let Some(t) = next {
        out["nextToken"] = serde_json::Value::String(t);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_every_item_once() {
        let items: Vec<(String, u32)> = (0..7).map(|i| (format!("k{i}"), i)).collect();
        let mut token: Option<String> = None;
        let mut seen = Vec::new();
        loop {
            let page = Page::parse(Some(3), token.as_deref()).unwrap();
            let (got, next) = page.take(items.clone());
            seen.extend(got);
            match next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        assert_eq!(seen, (0..7).collect::<Vec<_>>());
    }

    #[test]
    fn descending_pages_run_backwards() {
        let items: Vec<(String, u32)> = (0..5).map(|i| (format!("k{i}"), i)).collect();
        let first = Page::parse(Some(2), None).unwrap();
        let (got, token) = first.take_ordered(items.clone(), true);
        assert_eq!(got, vec![4, 3]);
        let second = Page::parse(Some(2), token.as_deref()).unwrap();
        assert_eq!(second.take_ordered(items, true).0, vec![2, 1]);
    }

    #[test]
    fn bounds_and_tokens_are_checked() {
        assert!(Page::parse(Some(0), None).is_err());
        assert!(Page::parse(Some(101), None).is_err());
        assert!(Page::parse(None, Some("zz")).is_err());
        assert_eq!(Page::parse(None, None).unwrap().max, 100);
    }
}
