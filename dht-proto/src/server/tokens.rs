//! Announce tokens (to be written).
