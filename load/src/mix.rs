//! What each simulated request is: the request kinds and the weighted mix
//! they are drawn from, plus the small deterministic RNG the users share
//! (seeded per user so a run is reproducible).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `GET /api/models`
    List,
    /// `POST /api/chat/completions`, allowed model, JSON answer.
    Chat,
    /// The same with `"stream": true` (SSE).
    Stream,
    /// A chat call naming a model the user may not use (expects 403).
    Forbidden,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::List, Kind::Chat, Kind::Stream, Kind::Forbidden];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::List => "list",
            Kind::Chat => "chat",
            Kind::Stream => "stream",
            Kind::Forbidden => "forbidden",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Weights for list, chat, stream, forbidden (in that order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mix {
    pub weights: [u32; 4],
}

impl Default for Mix {
    /// 40% model list, 40% chat, 15% streaming chat, 5% forbidden model.
    fn default() -> Self {
        Mix {
            weights: [40, 40, 15, 5],
        }
    }
}

impl Mix {
    fn total(&self) -> u32 {
        self.weights.iter().sum()
    }

    /// The kind for a uniform random `roll` (any u64).
    pub fn pick(&self, roll: u64) -> Kind {
        // `total()` is non-zero: `FromStr` refuses an all-zero mix.
        let mut r = (roll % u64::from(self.total().max(1))) as u32;
        for (kind, &w) in Kind::ALL.iter().zip(&self.weights) {
            if r < w {
                return *kind;
            }
            r -= w;
        }
        Kind::List
    }
}

impl FromStr for Mix {
    type Err = String;

    /// `"40,40,15,5"`: list, chat, stream, forbidden weights.
    fn from_str(s: &str) -> Result<Mix, String> {
        let parts: Vec<u32> = s
            .split(',')
            .map(|p| p.trim().parse::<u32>().map_err(|e| format!("{p:?}: {e}")))
            .collect::<Result<_, _>>()?;
        let weights: [u32; 4] = parts
            .try_into()
            .map_err(|_| "expected four weights: list,chat,stream,forbidden".to_string())?;
        let mix = Mix { weights };
        if mix.total() == 0 || mix.total() > 1_000_000 {
            return Err("weights must sum to between 1 and 1000000".into());
        }
        Ok(mix)
    }
}

/// SplitMix64: tiny, fast, good enough to pick request kinds and users.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform index below `n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pick_follows_the_weights_exactly_over_one_cycle() {
        let mix = Mix::default();
        let mut counts = [0u32; 4];
        for roll in 0..100u64 {
            counts[mix.pick(roll) as usize] += 1;
        }
        assert_eq!(counts, [40, 40, 15, 5]);
        assert_eq!(mix.pick(0), Kind::List);
        assert_eq!(mix.pick(40), Kind::Chat);
        assert_eq!(mix.pick(80), Kind::Stream);
        assert_eq!(mix.pick(99), Kind::Forbidden);
        assert_eq!(mix.pick(199), Kind::Forbidden);
    }

    #[test]
    fn random_picks_approach_the_weights() {
        let mix = Mix::default();
        let mut rng = Rng::new(7);
        let mut counts = [0u32; 4];
        for _ in 0..100_000 {
            counts[mix.pick(rng.next_u64()) as usize] += 1;
        }
        for (c, w) in counts.iter().zip([40u32, 40, 15, 5]) {
            let share = f64::from(*c) / 1_000.0;
            assert!((share - f64::from(w)).abs() < 1.0, "{counts:?}");
        }
    }

    #[test]
    fn parse_mix() {
        assert_eq!("40,40,15,5".parse::<Mix>().unwrap(), Mix::default());
        assert_eq!("0, 1, 0, 0".parse::<Mix>().unwrap().pick(12345), Kind::Chat);
        assert!("1,2,3".parse::<Mix>().is_err());
        assert!("0,0,0,0".parse::<Mix>().is_err());
        assert!("a,1,1,1".parse::<Mix>().is_err());
    }
}
