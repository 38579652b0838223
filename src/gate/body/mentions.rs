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
    Mentions { text, at: 0 }.filter_map(|(kind, id)| (kind == 'M').then_some(id))
}

/// `re.findall` over the pattern: try at each position, and after a match
/// continue where it ended.
struct Mentions<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Iterator for Mentions<'a> {
    type Item = (char, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        while let Some(offset) = self.text.get(self.at..)?.find("<@") {
            let start = self.at + offset;
            match match_at(&self.text[start..]) {
                Some((kind, id, len)) => {
                    self.at = start + len;
                    return Some((kind, id));
                }
                None => self.at = start + 1,
            }
        }
        self.at = self.text.len();
        None
    }
}

/// Matches the pattern at the start of `s`: returns (type letter, id,
/// length of the match).
fn match_at(s: &str) -> Option<(char, &str, usize)> {
    let rest = s.strip_prefix("<@")?;
    let kind = rest.chars().next().filter(char::is_ascii_uppercase)?;
    let rest = rest[1..].strip_prefix(':')?;
    // `([^|>]+)` is greedy and stops at the first '|' or '>'; backtracking
    // into it can never help, since what follows must be '|' or '>'.
    let id_len = rest.find(['|', '>']).unwrap_or(rest.len());
    if id_len == 0 {
        return None;
    }
    let id = &rest[..id_len];
    let after = &rest[id_len..];
    let consumed = s.len() - after.len();
    if let Some(label_and_more) = after.strip_prefix('|') {
        // `(?:\|[^>]+)?>`: a non-empty label then '>'; if that fails the
        // optional group is skipped and '>' must follow the id, which it
        // cannot (the id stopped at '|'), so there is no match here.
        let label_len = label_and_more.find('>')?;
        if label_len == 0 {
            return None;
        }
        return Some((kind, id, consumed + 1 + label_len + 1));
    }
    after.starts_with('>').then_some((kind, id, consumed + 1))
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
}
