//! `cellrun`: runs notebooks of Rhai cells through the cell pipeline.
//!
//! Exit status: 0 when every cell is ok; 1 when a cell failed or was
//! cancelled (or `check` found an error); 2 for a usage error or an
//! unreadable notebook; 130 when interrupted.

mod cli;
mod commands;
mod format;
mod json;
mod logging;
mod memory;
mod output;
mod plugins;

#[global_allocator]
static ALLOCATOR: memory::Counting = memory::Counting;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    logging::install();
    std::panic::set_hook(Box::new(|info| {
        tracing::debug!(%info, "panic");
    }));
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() { 2 } else { 0 });
        }
    };
    match std::panic::catch_unwind(|| commands::dispatch(cli)) {
        Ok(Ok(code)) => code,
        Ok(Err(error)) => {
            eprintln!("cellrun: {error:#}");
            ExitCode::from(2)
        }
        Err(payload) => {
            eprintln!(
                "cellrun: internal error: {}",
                executor_core::panic_message(payload.as_ref())
            );
            ExitCode::from(2)
        }
    }
}
