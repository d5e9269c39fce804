//! The std adapter for [`dht_proto`]: UDP sockets, the clock and the OS seed (to be written).
