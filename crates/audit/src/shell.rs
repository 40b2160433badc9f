//! Just enough of the shell to find commands: words (quotes respected)
//! and the commands a line chains with `&&`, `||`, `;`, `|` and newlines.
//! Not a shell: expansions are left as written.

/// One simple command, and whether it reads a pipe from the one before.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    pub words: Vec<String>,
    pub piped: bool,
}

impl Segment {
    /// The command and its arguments: leading `NAME=value` assignments,
    /// and wrappers such as `sudo` or `env`, skipped.
    pub fn command(&self) -> Vec<String> {
        let mut words = self.words.as_slice();
        loop {
            match words.first().map(String::as_str) {
                Some(w) if is_assignment(w) => words = &words[1..],
                Some("sudo" | "env" | "exec" | "command" | "nohup" | "time") => {
                    words = &words[1..];
                    while words.first().is_some_and(|w| w.starts_with('-')) {
                        words = &words[1..];
                    }
                }
                _ => return words.to_vec(),
            }
        }
    }
}

fn is_assignment(w: &str) -> bool {
    w.split_once('=').is_some_and(|(k, _)| {
        !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// Splits a shell line into its simple commands.
pub fn segments(text: &str) -> Vec<Segment> {
    scan(text, true)
}

/// The words of a line, quotes removed (operators are plain characters).
pub fn words(text: &str) -> Vec<String> {
    scan(text, false)
        .into_iter()
        .flat_map(|s| s.words)
        .collect()
}

fn scan(text: &str, operators: bool) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut current = Segment::default();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars().peekable();
    let end_word = |word: &mut String, in_word: &mut bool, seg: &mut Segment| {
        if *in_word {
            seg.words.push(std::mem::take(word));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    word.push(q);
                }
            }
            '"' => {
                in_word = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => {
                            if let Some(n) = chars.next() {
                                word.push(n);
                            }
                        }
                        q => word.push(q),
                    }
                }
            }
            '\\' => {
                if let Some(n) = chars.next() {
                    if n != '\n' {
                        word.push(n);
                        in_word = true;
                    }
                }
            }
            '|' | '&' | ';' | '\n' | '(' | ')' if operators => {
                end_word(&mut word, &mut in_word, &mut current);
                let doubled = matches!(c, '|' | '&') && chars.peek() == Some(&c);
                if doubled {
                    chars.next();
                }
                let piped = c == '|' && !doubled;
                if !current.words.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
                current.piped = piped;
            }
            c if c.is_whitespace() => end_word(&mut word, &mut in_word, &mut current),
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    end_word(&mut word, &mut in_word, &mut current);
    if !current.words.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_split_on_operators_and_pipes_are_marked() {
        let s =
            segments("A=1 sudo -E apt-get update && curl -s 'x y' | sh; echo \"a\\\"b\" || true");
        let words: Vec<Vec<String>> = s.iter().map(|s| s.command()).collect();
        assert_eq!(
            words,
            [
                vec!["apt-get", "update"],
                vec!["curl", "-s", "x y"],
                vec!["sh"],
                vec!["echo", "a\"b"],
                vec!["true"],
            ]
        );
        let piped: Vec<bool> = s.iter().map(|s| s.piped).collect();
        assert_eq!(piped, [false, false, true, false, false]);
    }

    #[test]
    fn words_keep_quoted_spaces() {
        assert_eq!(words("A=\"x y\" B=z"), ["A=x y", "B=z"]);
    }
}
