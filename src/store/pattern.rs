//! Model rules as operators write them: an exact id (`openai/gpt-4o`) or a
//! glob (`openai/*`, `anthropic/claude-*`, `*`).
//!
//! Only `*` is special: it matches any run of characters, `/` included (so
//! `*` alone is "every model" and `openai/*` covers `openai/gpt-4o:free`).
//! `?`, `[` and `{` are ordinary characters, because they occur in ids
//! Open WebUI lets users choose and a rule must never match more than its
//! author can see. `\*` is a literal star and `\\` a literal backslash; any
//! other escape is refused rather than guessed at.
//!
//! Matching compares bytes: pieces are whole UTF-8 strings, so a piece can
//! only match at character boundaries and non-ASCII ids need nothing
//! special.

use std::fmt;

/// A parsed rule target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An id with no unescaped `*`: matched by equality (a hash lookup).
    Exact(String),
    Glob(Glob),
}

/// A glob: the literal pieces between its stars, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    /// `pieces.len() >= 2`: `a*b` is `["a", "b"]`, `*` is `["", ""]`.
    pieces: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("the pattern is empty")]
    Empty,
    #[error("`\\{0}` is not an escape: only `\\*` (a literal star) and `\\\\` (a backslash) are")]
    BadEscape(char),
    #[error("the pattern ends with a lone `\\`")]
    TrailingBackslash,
}

impl Target {
    /// Parses operator input. Surrounding whitespace is an error of the
    /// caller's shell, not part of an id, so it is refused by `Empty` only
    /// when nothing else is left; inner text is taken as is.
    pub fn parse(text: &str) -> Result<Target, PatternError> {
        if text.trim().is_empty() {
            return Err(PatternError::Empty);
        }
        let mut pieces = vec![String::new()];
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(e @ ('*' | '\\')) => push(&mut pieces, e),
                    Some(other) => return Err(PatternError::BadEscape(other)),
                    None => return Err(PatternError::TrailingBackslash),
                },
                // `**` is `*`: an empty piece between two stars adds nothing.
                '*' if pieces.len() > 1 && pieces.last().is_some_and(String::is_empty) => {}
                '*' => pieces.push(String::new()),
                c => push(&mut pieces, c),
            }
        }
        if pieces.len() == 1 {
            Ok(Target::Exact(pieces.pop().unwrap_or_default()))
        } else {
            Ok(Target::Glob(Glob { pieces }))
        }
    }

    pub fn is_glob(&self) -> bool {
        matches!(self, Target::Glob(_))
    }

    pub fn matches(&self, id: &str) -> bool {
        match self {
            Target::Exact(exact) => exact == id,
            Target::Glob(glob) => glob.matches(id),
        }
    }

    /// The canonical spelling: what the rules table stores and what two
    /// spellings of one rule (`a**` and `a*`) share.
    pub fn canonical(&self) -> String {
        self.to_string()
    }
}

fn push(pieces: &mut [String], c: char) {
    if let Some(last) = pieces.last_mut() {
        last.push(c);
    }
}

impl Glob {
    pub fn matches(&self, id: &str) -> bool {
        let (first, rest) = match self.pieces.split_first() {
            Some(split) => split,
            None => return false,
        };
        let (last, middle) = match rest.split_last() {
            Some(split) => split,
            None => return id == first,
        };
        if id.len() < first.len() + last.len() {
            return false;
        }
        let Some(mut remaining) = id.strip_prefix(first.as_str()) else {
            return false;
        };
        let Some(body) = remaining.strip_suffix(last.as_str()) else {
            return false;
        };
        remaining = body;
        // Leftmost match of each middle piece is optimal: taking a later one
        // can only leave less room for the pieces after it.
        for piece in middle {
            match remaining.find(piece.as_str()) {
                Some(at) => remaining = &remaining[at + piece.len()..],
                None => return false,
            }
        }
        true
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Exact(id) => write_escaped(f, id),
            Target::Glob(glob) => {
                for (i, piece) in glob.pieces.iter().enumerate() {
                    if i > 0 {
                        f.write_str("*")?;
                    }
                    write_escaped(f, piece)?;
                }
                Ok(())
            }
        }
    }
}

fn write_escaped(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    for c in text.chars() {
        if matches!(c, '*' | '\\') {
            f.write_str("\\")?;
        }
        fmt::Write::write_char(f, c)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(text: &str) -> Target {
        let t = Target::parse(text).unwrap();
        assert!(t.is_glob(), "{text} should be a glob");
        t
    }

    #[test]
    fn exact_ids_are_not_globs() {
        assert_eq!(
            Target::parse("openai/gpt-4o").unwrap(),
            Target::Exact("openai/gpt-4o".into())
        );
        // Only `*` is special.
        assert_eq!(
            Target::parse("weird?[a]{b}").unwrap(),
            Target::Exact("weird?[a]{b}".into())
        );
        assert_eq!(
            Target::parse(r"weird\*model").unwrap(),
            Target::Exact("weird*model".into())
        );
        assert_eq!(
            Target::parse(r"back\\slash").unwrap(),
            Target::Exact(r"back\slash".into())
        );
    }

    #[test]
    fn bad_input_is_refused() {
        assert_eq!(Target::parse(""), Err(PatternError::Empty));
        assert_eq!(Target::parse("  "), Err(PatternError::Empty));
        assert_eq!(Target::parse(r"a\b"), Err(PatternError::BadEscape('b')));
        assert_eq!(Target::parse(r"a\"), Err(PatternError::TrailingBackslash));
    }

    #[test]
    fn star_matches_any_run_including_slashes() {
        let all = glob("*");
        for id in ["", "gpt", "openai/gpt-4o", "a/b/c", "模型/通义"] {
            assert!(all.matches(id), "{id}");
        }
        let openai = glob("openai/*");
        assert!(openai.matches("openai/gpt-4o"));
        assert!(openai.matches("openai/gpt-4o:free"));
        assert!(openai.matches("openai/"));
        assert!(!openai.matches("openai"));
        assert!(!openai.matches("azure/openai/gpt-4o"));
        let claude = glob("anthropic/claude-*");
        assert!(claude.matches("anthropic/claude-3.5-sonnet"));
        assert!(!claude.matches("anthropic/claude"));
        let middle = glob("*/gpt-*-mini");
        assert!(middle.matches("openai/gpt-4o-mini"));
        assert!(!middle.matches("openai/gpt-4o"));
        assert!(glob("a*b*c").matches("abc"));
        assert!(glob("a*b*c").matches("a-b-b-c"));
        assert!(!glob("a*b*c").matches("acb"));
        // The prefix and suffix may not overlap.
        assert!(!glob("ab*ba").matches("aba"));
        assert!(glob("ab*ba").matches("abba"));
    }

    #[test]
    fn unicode_and_literal_stars() {
        let t = glob("通义/*-ünï");
        assert!(t.matches("通义/qwen-ünï"));
        assert!(!t.matches("通义/qwen-uni"));
        // A literal star in an id is matched by itself, by an escaped star,
        // and by a glob star.
        let literal = Target::parse(r"vendor/\*-special").unwrap();
        assert!(literal.matches("vendor/*-special"));
        assert!(!literal.matches("vendor/x-special"));
        assert!(glob(r"vendor/\**").matches("vendor/*-special"));
        assert!(!glob(r"vendor/\**").matches("vendor/x-special"));
        assert!(glob("vendor/*").matches("vendor/*-special"));
    }

    #[test]
    fn canonical_spelling_round_trips() {
        for (input, canonical) in [
            ("openai/*", "openai/*"),
            ("a**b", "a*b"),
            ("***", "*"),
            (r"weird\*model", r"weird\*model"),
            (r"x\\y*", r"x\\y*"),
            ("模型*", "模型*"),
        ] {
            let t = Target::parse(input).unwrap();
            assert_eq!(t.canonical(), canonical, "{input}");
            assert_eq!(Target::parse(&t.canonical()).unwrap(), t, "{input}");
        }
    }
}
