//! Examples for claude-tower live in `examples/`; run one with `cargo run -p claude-tower-examples --example quickstart`.
