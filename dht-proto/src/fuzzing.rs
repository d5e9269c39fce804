//! Bodies of the fuzz targets, shared with the corpus replay in `cargo test`. Not a stable API.
