//! The path Open WebUI's router sees.
//!
//! uvicorn (httptools, the `uvicorn[standard]` default) takes the path part of
//! the request target and runs `urllib.parse.unquote` on it
//! (`uvicorn/protocols/http/httptools_impl.py`; h11 does the same in
//! `h11_impl.py`). Starlette then matches its route regexes against that
//! decoded string. So `/api/chat%2Fcompletions` *is* `/api/chat/completions`
//! to Open WebUI, and modelgate must classify the decoded form, never the raw
//! one.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

/// The path exactly as uvicorn hands it to Starlette's router.
///
/// * decoded once (`%252F` becomes `%2F`, not `/`), `%2F` included;
/// * invalid escapes such as `%zz` or a trailing `%` stay literal, like
///   Python's `unquote`;
/// * bytes that are not UTF-8 become U+FFFD, like `unquote`'s default
///   `errors='replace'` (Rust's lossy decoding follows the same
///   maximal-subpart rule as Python's UTF-8 codec);
/// * nothing else: no case folding, no slash collapsing, no dot-segment
///   removal, because Starlette does none of those;
/// * a query string (`?...`) or fragment (`#...`) left in `raw_path` is cut
///   off first, as httptools' `parse_url` does.
pub fn routing_path(raw_path: &str) -> Cow<'_, str> {
    let path = match raw_path.find(['?', '#']) {
        Some(end) => &raw_path[..end],
        None => raw_path,
    };
    if !path.contains('%') {
        return Cow::Borrowed(path);
    }
    // Borrows when only invalid escapes (`%zz`) were present.
    percent_decode_str(path).decode_utf8_lossy()
}

#[cfg(test)]
mod tests {
    use super::routing_path;

    #[test]
    fn plain_paths_are_borrowed_unchanged() {
        let p = routing_path("/api/chat/completions");
        assert!(matches!(p, std::borrow::Cow::Borrowed(_)));
        assert_eq!(p, "/api/chat/completions");
    }

    #[test]
    fn encoded_slash_is_decoded() {
        assert_eq!(
            routing_path("/api/chat%2Fcompletions"),
            "/api/chat/completions"
        );
        assert_eq!(
            routing_path("/api/chat%2fcompletions"),
            "/api/chat/completions"
        );
    }

    #[test]
    fn encoded_letters_are_decoded() {
        assert_eq!(routing_path("/api/mod%65ls"), "/api/models");
        assert_eq!(routing_path("/%6Fllama/api/chat"), "/ollama/api/chat");
    }

    #[test]
    fn encoded_dots_are_decoded_but_not_resolved() {
        assert_eq!(routing_path("/api/%2e/models"), "/api/./models");
        assert_eq!(routing_path("/api/x/%2E%2E/models"), "/api/x/../models");
    }

    #[test]
    fn decodes_once_only() {
        assert_eq!(
            routing_path("/api/chat%252Fcompletions"),
            "/api/chat%2Fcompletions"
        );
    }

    #[test]
    fn invalid_escapes_stay_literal() {
        assert_eq!(routing_path("/api/%zz"), "/api/%zz");
        assert_eq!(routing_path("/api/%"), "/api/%");
        assert_eq!(routing_path("/api/%4"), "/api/%4");
        assert_eq!(routing_path("/api/%zz%41"), "/api/%zzA");
    }

    #[test]
    fn invalid_utf8_becomes_replacement_char() {
        // Python: unquote('/api/%ff') == '/api/\ufffd'
        assert_eq!(routing_path("/api/%ff"), "/api/\u{fffd}");
        // Python: unquote('/%e2%82') == '/\ufffd' (one maximal subpart)
        assert_eq!(routing_path("/%e2%82"), "/\u{fffd}");
        assert_eq!(routing_path("/%c3%a9"), "/\u{e9}");
    }

    #[test]
    fn no_normalisation() {
        assert_eq!(
            routing_path("/api//chat/completions"),
            "/api//chat/completions"
        );
        assert_eq!(
            routing_path("/api/./chat/completions"),
            "/api/./chat/completions"
        );
        assert_eq!(
            routing_path("/API/Chat/Completions"),
            "/API/Chat/Completions"
        );
        assert_eq!(
            routing_path("/api/chat/completions/"),
            "/api/chat/completions/"
        );
    }

    #[test]
    fn query_and_fragment_are_excluded() {
        assert_eq!(
            routing_path("/api/v1/models/model?id=x%2F"),
            "/api/v1/models/model"
        );
        assert_eq!(routing_path("/api/mod%65ls?x=1"), "/api/models");
        assert_eq!(routing_path("/api/models#frag"), "/api/models");
    }

    #[test]
    fn encoded_newline_is_kept() {
        // Starlette's `$` also matches before a final "\n"; routes.rs handles it.
        assert_eq!(
            routing_path("/api/chat/completions%0A"),
            "/api/chat/completions\n"
        );
    }
}
