//! `cellrun`: runs notebooks of Rhai cells through the cell pipeline.
//!
//! Exit status: 0 when every cell is ok; 1 when a cell failed or was
//! cancelled (or `check` found an error); 2 for a usage error or an
//! unreadable notebook; 130 when interrupted.

mod cli;
mod commands;
mod format;
mod json;
mod last_words;
mod libfile;
mod logging;
mod memory;
mod output;
mod plugins;
mod python;
mod report;
mod session;
mod tui;
mod watch;
mod worker;

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
            if let Some(tip) = cli::subcommand_tip(&error) {
                eprintln!("\ntip: {}", output::terminal_safe(&tip));
            }
            if error.kind() == clap::error::ErrorKind::MissingRequiredArgument {
                if let Some(note) = cli::cache_took_the_notebook(std::env::args_os()) {
                    eprintln!("\nnote: {}", output::terminal_safe(&note));
                }
            }
            return ExitCode::from(if error.use_stderr() { 2 } else { 0 });
        }
    };
    match std::panic::catch_unwind(|| commands::dispatch(cli)) {
        Ok(Ok(code)) => code,
        Ok(Err(error)) => {
            // A reader that went away (`cellrun check nb.rhai | head -1`)
            // ends the command quietly, as `grep` does.
            if error
                .downcast_ref::<output::StdoutError>()
                .is_some_and(|error| error.source.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!(
                "cellrun: {}",
                output::terminal_safe_lines(&format!("{error:#}"))
            );
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
