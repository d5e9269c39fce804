//! The deterministic network simulator for `dht-proto` (to be written).
