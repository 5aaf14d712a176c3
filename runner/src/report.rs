//! HTML reports of a run: `cellrun run --report FILE` and
//! `cellrun report EVENTS -o FILE`.
//!
//! Both read the same NDJSON events (`--report` records them in memory as
//! the run prints them), so there is one reader ([`events::Run::parse`])
//! and one renderer ([`page::render`]). A report is one self-contained
//! page: inline CSS, no script, no network; a Content-Security-Policy
//! forbids every request but `data:` images, also in the frames of HTML
//! outputs.

mod escape;
mod events;
mod graph;
mod highlight;
mod page;
mod rich;
mod timeline;

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;

pub(crate) use events::{Run, StreamError};

/// The HTML page of the run whose NDJSON events are `events`.
pub(crate) fn render(events: &str) -> Result<String, StreamError> {
    Ok(page::render(&Run::parse(events)?))
}

/// A report file being made: a temporary file beside the target, created
/// before the run so a path that cannot be written fails at once, and
/// renamed onto the target when the page is written, so an earlier report
/// is replaced whole or not at all.
pub(crate) struct ReportFile {
    path: PathBuf,
    temporary: PathBuf,
    file: File,
}

impl ReportFile {
    /// Starts a report at `path`.
    pub(crate) fn create(path: &Path) -> anyhow::Result<ReportFile> {
        if path.is_dir() {
            anyhow::bail!(
                "cannot write the report {}: it is a directory",
                path.display()
            );
        }
        let name = path
            .file_name()
            .with_context(|| format!("the report path {} names no file", path.display()))?;
        let temporary = path.with_file_name(format!(
            ".{}.{}.tmp",
            name.to_string_lossy(),
            std::process::id()
        ));
        let file = File::create(&temporary)
            .with_context(|| format!("cannot write the report {}", path.display()))?;
        Ok(ReportFile {
            path: path.to_owned(),
            temporary,
            file,
        })
    }

    /// Renders the page of `events` and puts it in place.
    pub(crate) fn write(mut self, events: &str) -> anyhow::Result<()> {
        render(events)
            .map_err(anyhow::Error::from)
            .and_then(|html| {
                self.file.write_all(html.as_bytes())?;
                self.file.flush()?;
                std::fs::rename(&self.temporary, &self.path)?;
                Ok(())
            })
            .with_context(|| format!("cannot write the report {}", self.path.display()))
    }
}

impl Drop for ReportFile {
    /// A report never written (the run failed to start, rendering failed)
    /// leaves no temporary file behind.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.temporary);
    }
}

/// `cellrun report EVENTS -o FILE`: the report of a saved `--json` stream
/// (`-` reads standard input).
pub(crate) fn from_file(events: &Path, output: &Path) -> anyhow::Result<ExitCode> {
    let report = ReportFile::create(output)?;
    let mut text = String::new();
    let read = if events == Path::new("-") {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read(events).and_then(|bytes| {
            text = String::from_utf8(bytes)
                .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidData, error))?;
            Ok(())
        })
    };
    read.with_context(|| format!("cannot read events {}", events.display()))?;
    if let Err(error) = Run::parse(&text) {
        anyhow::bail!("{}: {error}", events.display());
    }
    report.write(&text)?;
    println!("wrote {}", output.display());
    Ok(ExitCode::SUCCESS)
}

/// `time` as an ISO 8601 UTC date to the second: `2026-12-02T01:40:30Z`.
pub(crate) fn iso_date(time: SystemTime) -> String {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    let of_day = seconds % 86_400;
    // Days to a civil date (proleptic Gregorian), after Howard Hinnant.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// A duration given in milliseconds, as the terminal output writes it.
fn duration(ms: f64) -> String {
    if ms.is_finite() && ms >= 0.0 {
        crate::output::format_duration(Duration::from_secs_f64(ms / 1e3))
    } else {
        "?".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_iso_8601_utc() {
        let at = |seconds: u64| iso_date(UNIX_EPOCH + Duration::from_secs(seconds));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_796_175_630), "2026-12-02T01:40:30Z");
        assert_eq!(at(4_107_542_399), "2100-02-28T23:59:59Z");
    }
}
