//! Starlette path patterns, matched with Python `re` semantics.

/// One piece of a compiled pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    /// Matched byte for byte (Starlette `re.escape`s literals).
    Literal(String),
    /// `{name}` / `{name:str}`: `[^/]+`. This does match `"\n"`.
    Segment,
    /// `{name:path}`: `.*`. Python's `.` does not match `"\n"`.
    Rest,
}

/// A compiled Starlette route path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Pattern {
    tokens: Vec<Token>,
}

impl Pattern {
    /// Parses `/ollama/api/chat/{url_idx}` or `/openai/{path:path}`.
    pub(super) fn parse(path: &str) -> Result<Self, String> {
        if !path.starts_with('/') {
            return Err("a path must start with '/'".into());
        }
        let mut tokens = Vec::new();
        let mut rest = path;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                tokens.push(Token::Literal(rest[..open].to_owned()));
            }
            let close = rest[open..]
                .find('}')
                .map(|c| open + c)
                .ok_or_else(|| "unclosed '{'".to_owned())?;
            let inner = &rest[open + 1..close];
            let (name, conv) = inner.split_once(':').unwrap_or((inner, "str"));
            // Starlette's PARAM_REGEX: `{([a-zA-Z_][a-zA-Z0-9_]*)(:[a-zA-Z_][a-zA-Z0-9_]*)?}`
            let ident = |s: &str| {
                s.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            };
            if !ident(name) {
                return Err(format!("bad parameter name {name:?}"));
            }
            tokens.push(match conv {
                "str" => Token::Segment,
                "path" => Token::Rest,
                other => return Err(format!("unsupported convertor {other:?} (use str or path)")),
            });
            rest = &rest[close + 1..];
        }
        if rest.contains('}') {
            return Err("unmatched '}'".into());
        }
        if !rest.is_empty() {
            tokens.push(Token::Literal(rest.to_owned()));
        }
        Ok(Self { tokens })
    }

    /// The literal text the pattern opens with (empty when it opens with a
    /// parameter): a prefix of every path it matches, the one with a final
    /// newline included.
    pub(super) fn literal_prefix(&self) -> &str {
        match self.tokens.first() {
            Some(Token::Literal(lit)) => lit,
            _ => "",
        }
    }

    /// Whether `^pattern$` matches `path` under Python `re.match`: `$` also
    /// matches just before one final `"\n"`.
    pub(super) fn matches(&self, path: &str) -> bool {
        match_at(&self.tokens, path)
            || path
                .strip_suffix('\n')
                .is_some_and(|head| match_at(&self.tokens, head))
    }
}

/// Whole-string match with backtracking (patterns are short; `{x:path}` in
/// the middle, as in `/api/tasks/chat/{chat_id:path}/stop`, needs it).
fn match_at(tokens: &[Token], s: &str) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return s.is_empty();
    };
    match first {
        Token::Literal(lit) => s
            .strip_prefix(lit.as_str())
            .is_some_and(|tail| match_at(rest, tail)),
        Token::Segment => {
            // `[^/]+`: at least one byte, stopping before the next '/'.
            let max = s.find('/').unwrap_or(s.len());
            (1..=max)
                .rev()
                .filter(|&n| s.is_char_boundary(n))
                .any(|n| match_at(rest, &s[n..]))
        }
        Token::Rest => {
            // `.*`: any run without "\n".
            let max = s.find('\n').unwrap_or(s.len());
            (0..=max)
                .rev()
                .filter(|&n| s.is_char_boundary(n))
                .any(|n| match_at(rest, &s[n..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Pattern;

    fn m(pattern: &str, path: &str) -> bool {
        let p = Pattern::parse(pattern).unwrap();
        let matched = p.matches(path);
        // The route table rules routes out by their prefix alone.
        assert!(
            !matched || path.starts_with(p.literal_prefix()),
            "{path:?} matches {pattern:?} without its prefix {:?}",
            p.literal_prefix()
        );
        matched
    }

    #[test]
    fn literal_is_exact_and_case_sensitive() {
        assert!(m("/api/chat/completions", "/api/chat/completions"));
        assert!(!m("/api/chat/completions", "/api/chat/completions/"));
        assert!(!m("/api/chat/completions", "/API/chat/completions"));
        assert!(!m("/api/chat/completions", "/api//chat/completions"));
        assert!(!m("/api/chat/completions", "/api/./chat/completions"));
    }

    #[test]
    fn dollar_matches_before_final_newline() {
        assert!(m("/api/chat/completions", "/api/chat/completions\n"));
        assert!(!m("/api/chat/completions", "/api/chat/completions\n\n"));
        assert!(!m("/api/chat/completions", "/api/chat/completions\r"));
    }

    #[test]
    fn segment_is_one_nonempty_segment() {
        assert!(m("/ollama/api/chat/{url_idx}", "/ollama/api/chat/0"));
        assert!(m("/ollama/api/chat/{url_idx}", "/ollama/api/chat/a\nb"));
        assert!(!m("/ollama/api/chat/{url_idx}", "/ollama/api/chat/"));
        assert!(!m("/ollama/api/chat/{url_idx}", "/ollama/api/chat/0/1"));
        assert!(m("/api/chat/actions/{id}", "/api/chat/actions/\u{e9}"));
    }

    #[test]
    fn rest_matches_anything_but_newline() {
        assert!(m("/openai/{path:path}", "/openai/"));
        assert!(m("/openai/{path:path}", "/openai/a/b//c"));
        assert!(m("/openai/{path:path}", "/openai/a\n"));
        assert!(!m("/openai/{path:path}", "/openai/a\nb"));
        assert!(!m("/openai/{path:path}", "/openai"));
        assert!(m(
            "/api/tasks/chat/{chat_id:path}/stop",
            "/api/tasks/chat/a/b/stop"
        ));
    }

    #[test]
    fn bad_patterns_are_rejected() {
        assert!(Pattern::parse("api").is_err());
        assert!(Pattern::parse("/a/{x").is_err());
        assert!(Pattern::parse("/a/{x:int}").is_err());
        assert!(Pattern::parse("/a/{1x}").is_err());
        assert!(Pattern::parse("/a/x}").is_err());
    }
}
