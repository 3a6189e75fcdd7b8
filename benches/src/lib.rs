//! Benchmarks and load generation for Parley (see `benches/` and `src/bin`).
