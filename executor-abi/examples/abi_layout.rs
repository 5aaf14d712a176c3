//! Prints the snapshot of the current root module's layout, or with
//! `v1_0` the snapshot of the frozen 1.0 generation.
//!
//! `cargo xtask abi-check --layout` runs it; see `executor-abi/README.md`.

fn main() {
    match std::env::args().nth(1).as_deref() {
        None => print!("{}", executor_abi::layout::current_snapshot()),
        Some("v1_0") => print!("{}", executor_abi::generations::v1_0::snapshot()),
        Some("v1_1") => print!("{}", executor_abi::generations::v1_1::snapshot()),
        Some(other) => {
            eprintln!("unknown generation `{other}` (known: v1_0, v1_1)");
            std::process::exit(2);
        }
    }
}
