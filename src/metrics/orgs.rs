//! Organization ids as label values: interned, capped at
//! [`ORG_LABEL_CAP`] distinct ids, sanitized so they need no escaping.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};

use crate::hashing::Keyed;

/// How many distinct organization ids become label values before the rest
/// are folded into `"other"`.
pub const ORG_LABEL_CAP: usize = 1_000;

/// Organization ids longer than this are counted as `"other"`: a real id is
/// a short slug or a UUID, and a huge one must not be kept in memory.
pub(super) const ORG_LABEL_MAX_LEN: usize = 128;

/// The label value for a decision taken without an organization
/// (unauthenticated, denied with no membership, bypassed).
const ORG_NONE: &str = "none";
/// The label value for organizations beyond [`ORG_LABEL_CAP`].
const ORG_OTHER: &str = "other";

/// An organization id made safe as a label value: interned (cloning is a
/// reference-count bump, not an allocation) and restricted to characters
/// that need no escaping, since prometheus-client writes label values as is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct OrgLabel(pub(super) Arc<str>);

impl EncodeLabelValue for OrgLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&&*self.0, encoder)
    }
}

/// Interns organization ids as label values, up to [`ORG_LABEL_CAP`].
#[derive(Debug)]
pub(super) struct OrgLabels {
    seen: RwLock<HashMap<Box<str>, OrgLabel, Keyed>>,
    pub(super) none: OrgLabel,
    other: OrgLabel,
}

impl Default for OrgLabels {
    fn default() -> Self {
        OrgLabels {
            seen: RwLock::new(HashMap::default()),
            none: OrgLabel(Arc::from(ORG_NONE)),
            other: OrgLabel(Arc::from(ORG_OTHER)),
        }
    }
}

impl OrgLabels {
    /// The label for `id`: a read-lock lookup once the id has been seen.
    pub(super) fn label(&self, id: &str) -> OrgLabel {
        if id.len() > ORG_LABEL_MAX_LEN {
            return self.other.clone();
        }
        if let Some(l) = self
            .seen
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
        {
            return l.clone();
        }
        let mut seen = self.seen.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(l) = seen.get(id) {
            return l.clone();
        }
        if seen.len() >= ORG_LABEL_CAP {
            return self.other.clone();
        }
        let label = OrgLabel(Arc::from(sanitize(id)));
        seen.insert(Box::from(id), label.clone());
        label
    }
}

/// Keeps characters that need no escaping in a label value; the rest become
/// `_`. Organization ids are slugs or UUIDs, so this rarely changes anything.
fn sanitize(id: &str) -> String {
    let clean: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() {
        ORG_NONE.to_owned()
    } else {
        clean
    }
}
