//! "Did you mean ...?" for a model id that is not known.
//!
//! Ids are `vendor/model` (OpenRouter) or bare (`gpt-4o`), so two
//! comparisons are made and the better one counts:
//! - the whole ids, by edit distance only: Jaro-Winkler rewards a common
//!   prefix, and every id of one vendor shares `vendor/`, which would make
//!   `openai/o1` look close to `openai/gpt-4o`;
//! - the parts after the last `/`, by the mean of edit distance and
//!   Jaro-Winkler: a bare `gpt-4o` finds `openai/gpt-4o`, and a typo in the
//!   model's name (`claude-3.5-sonet`) finds the right one under any
//!   vendor.
//!
//! Case is ignored, so `GPT-4o` finds `gpt-4o`.

use super::KnownSet;

/// Below this a known id is too far to be worth proposing (tuned on the
/// tests' typos: one or two edits in a name of ten or more characters
/// passes, a different model of the same family does not).
const THRESHOLD: f64 = 0.75;

/// Up to `n` known ids closest to `id`, best first (ties by id), each
/// scoring at least `THRESHOLD`; never `id` itself.
pub fn suggest(known: &KnownSet, id: &str, n: usize) -> Vec<String> {
    let wanted = id.to_lowercase();
    let mut scored: Vec<(f64, &String)> = known
        .ids
        .iter()
        .filter(|candidate| candidate.as_str() != id)
        .map(|candidate| (score(&wanted, &candidate.to_lowercase()), candidate))
        .filter(|(s, _)| *s >= THRESHOLD)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored
        .into_iter()
        .take(n)
        .map(|(_, id)| id.clone())
        .collect()
}

/// Similarity in [0, 1] of two lower-cased ids.
fn score(wanted: &str, candidate: &str) -> f64 {
    let whole = strsim::normalized_damerau_levenshtein(wanted, candidate);
    let (a, b) = (name_part(wanted), name_part(candidate));
    let name = (strsim::normalized_damerau_levenshtein(a, b) + strsim::jaro_winkler(a, b)) / 2.0;
    whole.max(name)
}

/// The model's name without its vendor: after the last `/`.
fn name_part(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(ids: &[&str]) -> KnownSet {
        KnownSet {
            ids: ids.iter().map(|s| s.to_string()).collect(),
            ..KnownSet::default()
        }
    }

    fn openrouter() -> KnownSet {
        known(&[
            "openai/gpt-4o",
            "openai/gpt-4o-mini",
            "openai/o1",
            "openai/o3-mini",
            "anthropic/claude-3.5-sonnet",
            "anthropic/claude-3.5-haiku",
            "anthropic/claude-3-opus",
            "meta-llama/llama-3.1-70b-instruct",
            "mistralai/mistral-large",
        ])
    }

    #[test]
    fn typos_find_the_intended_id_first() {
        let k = openrouter();
        for (typo, want) in [
            ("openai/gtp-4o", "openai/gpt-4o"),
            ("openai/gpt4o", "openai/gpt-4o"),
            ("gpt-4o", "openai/gpt-4o"),
            ("OpenAI/GPT-4o", "openai/gpt-4o"),
            ("anthropic/claude-3.5-sonet", "anthropic/claude-3.5-sonnet"),
            ("claude-3-5-sonnet", "anthropic/claude-3.5-sonnet"),
            ("antropic/claude-3.5-sonnet", "anthropic/claude-3.5-sonnet"),
            (
                "meta-llama/llama-3.1-70b",
                "meta-llama/llama-3.1-70b-instruct",
            ),
            ("openai/o3mini", "openai/o3-mini"),
        ] {
            let got = suggest(&k, typo, 3);
            assert_eq!(
                got.first().map(String::as_str),
                Some(want),
                "{typo}: {got:?}"
            );
            assert!(got.len() <= 3);
        }
    }

    #[test]
    fn a_shared_vendor_alone_suggests_nothing() {
        let k = openrouter();
        assert_eq!(suggest(&k, "openai/whisper-1", 3), Vec::<String>::new());
        assert_eq!(suggest(&k, "google/gemini-pro", 3), Vec::<String>::new());
        assert_eq!(suggest(&k, "x", 3), Vec::<String>::new());
    }

    #[test]
    fn at_most_n_and_never_the_id_itself() {
        let k = known(&["model-1", "model-2", "model-3", "model-4"]);
        assert_eq!(suggest(&k, "model-1", 2).len(), 2);
        assert!(!suggest(&k, "model-1", 3).contains(&"model-1".to_string()));
        assert!(suggest(&k, "model-5", 0).is_empty());
    }

    #[test]
    fn unicode_ids_compare_by_character() {
        let k = known(&["mistral/modèle-grand", "作者/模型-一"]);
        assert_eq!(
            suggest(&k, "mistral/modele-grand", 3),
            ["mistral/modèle-grand"]
        );
        assert_eq!(suggest(&k, "作者/模型-二", 3), ["作者/模型-一"]);
        assert_eq!(
            suggest(&k, "MISTRAL/MODÈLE-GRAND", 3),
            ["mistral/modèle-grand"]
        );
    }

    #[test]
    fn a_star_is_an_ordinary_character() {
        let k = known(&["openai/gpt-4o", "openai/*"]);
        assert_eq!(suggest(&k, "openai/gpt-4*", 3)[0], "openai/gpt-4o");
        assert!(!suggest(&k, "openai/gpt-4o-mini", 3).contains(&"openai/*".to_string()));
    }
}
