//! Keyed deterministic randomness (to be written).
