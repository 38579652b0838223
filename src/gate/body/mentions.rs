//! Channel mentions, read exactly as `open_webui/utils/channels.py`
//! `extract_mentions` does:
//!
//! ```python
//! pattern = rf'<{triggerChar}([A-Z]):([^|>]+)(?:\|[^>]+)?>'   # triggerChar '@'
//! re.findall(pattern, message)
//! ```
//!
//! `model_response_handler` (`routers/channels.py`) answers as every
//! mention whose type letter is `M`.

/// The model ids mentioned in `text`, in order (repeats included).
pub(super) fn model_mentions(text: &str) -> impl Iterator<Item = &str> {
    model_mention_spans(text).map(|(id, _)| id)
}

/// Each model mention's id and the byte range of the whole `<@M:...>`.
pub(crate) fn model_mention_spans(
    text: &str,
) -> impl Iterator<Item = (&str, std::ops::Range<usize>)> {
    Mentions {
        text,
        starts: memchr::memmem::find_iter(text.as_bytes(), b"<@"),
        at: 0,
        id_end: NextOf::new(b"|>"),
        label_end: NextOf::new(b">"),
    }
    .filter_map(|(kind, id, range)| (kind == 'M').then_some((id, range)))
}

/// `re.findall` over the pattern: try at each position, and after a match
/// continue where it ended.
///
/// Linear in the text: every attempt needs the next `|`/`>` (and the next
/// `>`) after its start, and attempts only move forward, so each of those
/// searches resumes from the last answer instead of rescanning the rest of
/// the text. (A regex engine that rescans, like Python's, is quadratic on
/// `<@M:` repeated without a `>`.)
struct Mentions<'a> {
    text: &'a str,
    /// Every `<@` in the text, found by one searcher (`<@` cannot overlap
    /// itself, so none is missed); those inside a match are skipped.
    starts: memchr::memmem::FindIter<'a, 'static>,
    /// Where the last match ended.
    at: usize,
    id_end: NextOf,
    label_end: NextOf,
}

/// The position of the next of some delimiters at or after a position,
/// remembered for the next question about a later position.
struct NextOf {
    /// One or two ASCII bytes: they never occur inside a multi-byte UTF-8
    /// character, so a byte search finds exactly the characters.
    delims: &'static [u8],
    /// `(from, found)`: the first delimiter at or after `from` is at
    /// `found` (`None`: there is none after `from`).
    last: Option<(usize, Option<usize>)>,
}

impl NextOf {
    fn new(delims: &'static [u8]) -> Self {
        NextOf { delims, last: None }
    }

    fn at_or_after(&mut self, text: &str, from: usize) -> Option<usize> {
        if let Some((seen_from, found)) = self.last {
            // Still valid: nothing between `from` and `found` is a delimiter.
            if seen_from <= from && found.map_or(true, |f| f >= from) {
                return found;
            }
        }
        let rest = text.as_bytes().get(from..)?;
        let found = match *self.delims {
            [a] => memchr::memchr(a, rest),
            [a, b, ..] => memchr::memchr2(a, b, rest),
            [] => None,
        }
        .map(|i| from + i);
        self.last = Some((from, found));
        found
    }
}

impl<'a> Iterator for Mentions<'a> {
    type Item = (char, &'a str, std::ops::Range<usize>);

    fn next(&mut self) -> Option<Self::Item> {
        while let Some(start) = self.starts.next() {
            if start < self.at {
                continue;
            }
            if let Some((kind, id, end)) = self.match_at(start) {
                self.at = end;
                return Some((kind, id, start..end));
            }
        }
        None
    }
}

impl<'a> Mentions<'a> {
    /// Matches the pattern at byte `start` (where `<@` is): returns (type
    /// letter, id, end of the match).
    fn match_at(&mut self, start: usize) -> Option<(char, &'a str, usize)> {
        let text = self.text;
        let rest = &text[start + 2..];
        let kind = rest.chars().next().filter(char::is_ascii_uppercase)?;
        rest[1..].strip_prefix(':')?;
        let id_start = start + 4;
        // `([^|>]+)` is greedy and stops at the first '|' or '>'; backtracking
        // into it can never help, since what follows must be '|' or '>'.
        let id_end = self.id_end.at_or_after(text, id_start)?;
        if id_end == id_start {
            return None;
        }
        let id = &text[id_start..id_end];
        if text[id_end..].starts_with('|') {
            // `(?:\|[^>]+)?>`: a non-empty label then '>'; if that fails the
            // optional group is skipped and '>' must follow the id, which it
            // cannot (the id stopped at '|'), so there is no match here.
            let label_end = self.label_end.at_or_after(text, id_end + 1)?;
            if label_end == id_end + 1 {
                return None;
            }
            return Some((kind, id, label_end + 1));
        }
        // The id stopped at '>'.
        Some((kind, id, id_end + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::model_mentions;

    fn ids(text: &str) -> Vec<&str> {
        model_mentions(text).collect()
    }

    #[test]
    fn finds_model_mentions() {
        assert_eq!(
            ids("hi <@M:gpt-4.1|GPT-4> and <@M:llama3>"),
            ["gpt-4.1", "llama3"]
        );
        assert_eq!(ids("<@U:user1|Bob> <@A:app|App> <@M:m1|x>"), ["m1"]);
    }

    #[test]
    fn python_regex_edge_cases() {
        // Empty label: the group needs one char, and '>' cannot follow '|'.
        assert_eq!(ids("<@M:a|>"), Vec::<&str>::new());
        // ...but the search goes on from the next character.
        assert_eq!(ids("<@M:a|><@M:b|B>"), ["b"]);
        // An id may hold spaces, newlines, '<' and ':'.
        assert_eq!(ids("<@M:a b\nc|L>"), ["a b\nc"]);
        assert_eq!(ids("<@M:<@M:x>"), ["<@M:x"]);
        // A label may hold '|' and '<'.
        assert_eq!(ids("<@M:m|a|b<c>"), ["m"]);
        // Lower-case type, missing colon, empty id, unclosed: no match.
        assert_eq!(ids("<@m:x> <@Mx> <@M:> <@M:x"), Vec::<&str>::new());
        // Multi-byte text around mentions.
        assert_eq!(ids("é<@M:modèle|é>é"), ["modèle"]);
    }

    #[test]
    fn unclosed_mentions_cost_linear_time() {
        // Quadratic scanning would take minutes here; linear is milliseconds.
        let text = "<@M:".repeat(2_000_000);
        assert_eq!(ids(&text), Vec::<&str>::new());
        let text = "<@M:a|".repeat(2_000_000);
        assert_eq!(ids(&text), Vec::<&str>::new());
        let mut text = "<@M:x|".repeat(1_000_000);
        text.push('>');
        // Only the first attempt finds its '>' (the label runs to the end).
        assert_eq!(ids(&text), ["x"]);
    }
}
