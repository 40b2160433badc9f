//! The line each value of a JSON text starts on, by JSON pointer, so a
//! finding in a task definition can say where it is. serde_json keeps no
//! positions; this walks the text once, after serde_json has accepted it.

use std::collections::HashMap;

/// Pointer (RFC 6901) → 1-based line.
pub fn lines(text: &str) -> HashMap<String, usize> {
    let mut walker = Walker {
        bytes: text.as_bytes(),
        at: 0,
        line: 1,
        out: HashMap::new(),
    };
    walker.value(String::new());
    walker.out
}

/// Escapes one reference token of a pointer.
pub fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

struct Walker<'a> {
    bytes: &'a [u8],
    at: usize,
    line: usize,
    out: HashMap<String, usize>,
}

impl Walker<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        if b == b'\n' {
            self.line += 1;
        }
        self.at += 1;
        Some(b)
    }

    fn space(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.bump();
        }
    }

    fn value(&mut self, pointer: String) {
        self.space();
        self.out.insert(pointer.clone(), self.line);
        match self.peek() {
            Some(b'{') => {
                self.bump();
                loop {
                    self.space();
                    match self.peek() {
                        Some(b'"') => {
                            let key = self.string();
                            self.space();
                            if self.peek() == Some(b':') {
                                self.bump();
                            }
                            self.value(format!("{pointer}/{}", escape(&key)));
                        }
                        Some(b',') => {
                            self.bump();
                        }
                        Some(b'}') | None => {
                            self.bump();
                            return;
                        }
                        Some(_) => {
                            self.bump();
                        }
                    }
                }
            }
            Some(b'[') => {
                self.bump();
                let mut index = 0;
                loop {
                    self.space();
                    match self.peek() {
                        Some(b']') | None => {
                            self.bump();
                            return;
                        }
                        Some(b',') => {
                            self.bump();
                        }
                        Some(_) => {
                            self.value(format!("{pointer}/{index}"));
                            index += 1;
                        }
                    }
                }
            }
            Some(b'"') => {
                self.string();
            }
            _ => {
                while self
                    .peek()
                    .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
                {
                    self.bump();
                }
            }
        }
    }

    /// A string, its escapes decoded through serde_json.
    fn string(&mut self) -> String {
        let start = self.at;
        self.bump();
        while let Some(b) = self.bump() {
            match b {
                b'\\' => {
                    self.bump();
                }
                b'"' => break,
                _ => {}
            }
        }
        let raw = self.bytes.get(start..self.at).unwrap_or_default();
        serde_json::from_slice(raw).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_find_their_lines() {
        let text = "{\n  \"a\": [\n    {\"b/c\": 1},\n    \"x\\\"y\"\n  ],\n  \"d\": true\n}";
        let l = lines(text);
        assert_eq!(l[""], 1);
        assert_eq!(l["/a"], 2);
        assert_eq!(l["/a/0/b~1c"], 3);
        assert_eq!(l["/a/1"], 4);
        assert_eq!(l["/d"], 6);
    }
}
