//! The routing table (to be written).
