//! Where ids and random choices come from: the system's randomness ([`Ids::random`], the
//! default), or a seeded generator ([`Ids::seeded`]), so that a model schedule run again
//! from its seed makes the same job ids, claim owners, result keys and retry delays.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug, Default)]
pub struct Ids {
    seeded: Option<Arc<Mutex<StdRng>>>,
}

impl Ids {
    pub fn random() -> Self {
        Self::default()
    }

    pub fn seeded(seed: u64) -> Self {
        Self {
            seeded: Some(Arc::new(Mutex::new(StdRng::seed_from_u64(seed)))),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut dyn rand::RngCore) -> T) -> T {
        match &self.seeded {
            None => f(&mut rand::rng()),
            Some(rng) => f(&mut *rng.lock().unwrap_or_else(|e| e.into_inner())),
        }
    }

    /// A random (version 4) UUID's bytes.
    pub fn uuid_bytes(&self) -> [u8; 16] {
        let bytes: [u8; 16] = self.with(|r| r.random());
        *uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .as_bytes()
    }

    /// A random (version 4) UUID, hyphenated.
    pub fn uuid(&self) -> String {
        uuid::Uuid::from_bytes(self.uuid_bytes()).to_string()
    }

    /// A number in `[0, 1)`: a jitter's share of its ceiling.
    pub fn fraction(&self) -> f64 {
        self.with(|r| r.random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_ids_repeat_with_their_seed_and_random_ones_do_not() {
        let (a, b) = (Ids::seeded(7), Ids::seeded(7));
        let first: Vec<String> = (0..3).map(|_| a.uuid()).collect();
        assert_eq!(first, (0..3).map(|_| b.uuid()).collect::<Vec<_>>());
        assert_eq!(a.fraction(), b.fraction());
        assert_ne!(Ids::seeded(8).uuid(), first[0]);
        assert_ne!(Ids::random().uuid(), Ids::random().uuid());
        let u = uuid::Uuid::parse_str(&first[0]).unwrap();
        assert_eq!(u.get_version_num(), 4);
        assert!((0.0..1.0).contains(&Ids::random().fraction()));
    }
}
