//! What a cell asks of the cluster: the `slurm:` directive.
//!
//! A cell asks for cluster resources with a comment line among its leading
//! comments, before its first line of code:
//!
//! ```text
//! // %% train
//! // slurm: cpus=2 mem=1G time=5 partition=debug
//! let model = fit(data);
//! ```
//!
//! In Python cells the comment starts with `#` instead of `//`. The
//! directive is part of the cell's code, so it reaches the executor with the
//! cell in every notebook format and needs no change to any parser; to every
//! other executor it is a comment.
//!
//! A bare `slurm:` asks for the defaults. Keys: `cpus` (CPUs per task, a
//! positive integer), `mem` (memory per node: an integer with an optional
//! `K`, `M`, `G` or `T` suffix, megabytes without one), `time` (a time limit
//! in any form `sbatch` accepts: `MINUTES`, `MINUTES:SECONDS`,
//! `HOURS:MINUTES:SECONDS`, `DAYS-HOURS[:MINUTES[:SECONDS]]`) and
//! `partition`.

use std::fmt;
use std::time::Duration;

/// The resources one cell asks for; `None` leaves the choice to the
/// executor's defaults, then to the cluster's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPUs for the cell's one task (`--cpus-per-task`).
    pub cpus: Option<u32>,
    /// Memory, as Slurm writes it (`--mem`), e.g. `512M` or `1G`.
    pub mem: Option<String>,
    /// A time limit, as Slurm writes it (`--time`), e.g. `5` or `1:30:00`.
    pub time: Option<String>,
    /// The partition (`--partition`).
    pub partition: Option<String>,
}

impl Resources {
    /// `self`, with every setting it leaves open taken from `defaults`.
    pub fn or(&self, defaults: &Resources) -> Resources {
        Resources {
            cpus: self.cpus.or(defaults.cpus),
            mem: self.mem.clone().or_else(|| defaults.mem.clone()),
            time: self.time.clone().or_else(|| defaults.time.clone()),
            partition: self
                .partition
                .clone()
                .or_else(|| defaults.partition.clone()),
        }
    }

    /// Sets `key` to `value`, validating the value.
    ///
    /// # Errors
    /// When `key` is not one of `cpus`, `mem`, `time` and `partition`, or
    /// `value` is not a valid setting for it.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ResourceError> {
        let invalid = |expected: &'static str| ResourceError::InvalidValue {
            key: key.to_owned(),
            value: value.to_owned(),
            expected,
        };
        match key {
            "cpus" => {
                let cpus: u32 = value.parse().map_err(|_| invalid("a positive integer"))?;
                if cpus == 0 {
                    return Err(invalid("a positive integer"));
                }
                self.cpus = Some(cpus);
            }
            "mem" => {
                if !is_memory(value) {
                    return Err(invalid("an integer with an optional K, M, G or T suffix"));
                }
                self.mem = Some(value.to_owned());
            }
            "time" => {
                if time_seconds(value).is_none() {
                    return Err(invalid(
                        "MINUTES, MINUTES:SECONDS, HOURS:MINUTES:SECONDS or DAYS-HOURS[:MINUTES[:SECONDS]]",
                    ));
                }
                self.time = Some(value.to_owned());
            }
            "partition" => {
                let valid = !value.is_empty()
                    && value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
                if !valid {
                    return Err(invalid("a partition name"));
                }
                self.partition = Some(value.to_owned());
            }
            _ => {
                return Err(ResourceError::UnknownKey {
                    key: key.to_owned(),
                })
            }
        }
        Ok(())
    }

    /// `self` with a time limit of at most `remaining`, the time the cell
    /// has left before its deadline (`--timeout`).
    ///
    /// Slurm counts time limits in whole minutes, so `remaining` is rounded
    /// up to the next minute: the job's limit backs up the deadline, which
    /// the executor enforces to the millisecond by cancelling the job. A
    /// smaller limit the cell asked for stays.
    pub fn within(&self, remaining: Duration) -> Resources {
        let millis = u64::try_from(remaining.as_millis()).unwrap_or(u64::MAX);
        let minutes = millis.div_ceil(60_000).max(1);
        let asked = self.time.as_deref().and_then(time_seconds);
        let time = match asked {
            Some(seconds) if seconds <= minutes * 60 => self.time.clone(),
            _ => Some(minutes.to_string()),
        };
        Resources {
            time,
            ..self.clone()
        }
    }

    /// The `srun` arguments that ask for these resources.
    pub fn srun_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(cpus) = self.cpus {
            args.push(format!("--cpus-per-task={cpus}"));
        }
        if let Some(mem) = &self.mem {
            args.push(format!("--mem={mem}"));
        }
        if let Some(time) = &self.time {
            args.push(format!("--time={time}"));
        }
        if let Some(partition) = &self.partition {
            args.push(format!("--partition={partition}"));
        }
        args
    }
}

/// A cell's `slurm:` directive that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResourceError {
    /// A key that is not a resource.
    #[error("unknown slurm option `{key}` (expected cpus, mem, time or partition)")]
    UnknownKey { key: String },
    /// A value that does not fit its key.
    #[error("slurm option `{key}={value}`: expected {expected}")]
    InvalidValue {
        key: String,
        value: String,
        expected: &'static str,
    },
    /// A word that is not `key=value`.
    #[error("slurm option `{word}` is not of the form key=value")]
    NotKeyValue { word: String },
}

/// A `slurm:` directive found in a cell, with the line it is on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directive {
    /// The resources it asks for.
    pub resources: Resources,
    /// Its 0-based line within the cell's code.
    pub line: usize,
}

/// A directive that cannot be used, with its 0-based line within the cell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectiveError {
    /// Its 0-based line within the cell's code.
    pub line: usize,
    /// What is wrong with it.
    pub error: ResourceError,
}

impl fmt::Display for DirectiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

/// The `slurm:` directive among the leading comments of `code`, if any.
///
/// Only the comment lines before the first line of code count (blank lines
/// are skipped), so a directive cannot hide in the middle of a cell; a
/// comment starts with `//` or `#`.
///
/// # Errors
/// When the directive has an unknown key or an invalid value.
pub fn find_directive(code: &str) -> Result<Option<Directive>, DirectiveError> {
    for (line, text) in code.lines().enumerate() {
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let Some(comment) = text.strip_prefix("//").or_else(|| text.strip_prefix('#')) else {
            return Ok(None);
        };
        let Some(options) = comment.trim_start().strip_prefix("slurm:") else {
            continue;
        };
        let resources = parse_options(options).map_err(|error| DirectiveError { line, error })?;
        return Ok(Some(Directive { resources, line }));
    }
    Ok(None)
}

/// Parses `key=value` words separated by blanks.
///
/// # Errors
/// On the first word that is not a valid `key=value` setting.
pub fn parse_options(text: &str) -> Result<Resources, ResourceError> {
    let mut resources = Resources::default();
    for word in text.split_whitespace() {
        let (key, value) = word
            .split_once('=')
            .ok_or_else(|| ResourceError::NotKeyValue {
                word: word.to_owned(),
            })?;
        resources.set(key, value)?;
    }
    Ok(resources)
}

fn is_memory(value: &str) -> bool {
    let digits = value.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
    value.len() - digits.len() <= 1 && is_number(digits)
}

fn is_number(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// The seconds a time limit in one of the forms `sbatch --time` accepts
/// stands for, or `None` when `value` is not in one of them.
pub fn time_seconds(value: &str) -> Option<u64> {
    let (days, clock) = match value.split_once('-') {
        Some((days, clock)) => (Some(days), clock),
        None => (None, value),
    };
    let number = |text: &str| is_number(text).then(|| text.parse::<u64>().ok()).flatten();
    let parts: Vec<u64> = clock.split(':').map(number).collect::<Option<_>>()?;
    let clock_seconds = match (days.is_some(), parts.as_slice()) {
        (false, [minutes]) => minutes * 60,
        (false, [minutes, seconds]) => minutes * 60 + seconds,
        (_, [hours, minutes, seconds]) => hours * 3600 + minutes * 60 + seconds,
        (true, [hours]) => hours * 3600,
        (true, [hours, minutes]) => hours * 3600 + minutes * 60,
        _ => return None,
    };
    let days = match days {
        Some(days) => number(days)?,
        None => 0,
    };
    Some(days * 86_400 + clock_seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(code: &str, expect: &str) {
        let got = match find_directive(code) {
            Ok(None) => "none".to_owned(),
            Ok(Some(directive)) => format!(
                "line {}: {}",
                directive.line,
                directive.resources.srun_args().join(" ")
            ),
            Err(err) => format!("error at line {}: {err}", err.line),
        };
        assert_eq!(got, expect);
    }

    #[test]
    fn a_leading_comment_asks_for_resources() {
        check(
            "// slurm: cpus=2 mem=1G time=5 partition=debug\nlet x = 1;\n",
            "line 0: --cpus-per-task=2 --mem=1G --time=5 --partition=debug",
        );
        check(
            "\n// Trains the model.\n//slurm: time=1:30:00\nlet x = 1;\n",
            "line 2: --time=1:30:00",
        );
        check("# slurm: mem=512\nx = 1\n", "line 0: --mem=512");
        check("// slurm:\nlet x = 1;\n", "line 0: ");
        check("// slurm: time=2-12\n", "line 0: --time=2-12");
    }

    #[test]
    fn a_directive_after_code_or_absent_is_none() {
        check("let x = 1;\n// slurm: cpus=2\n", "none");
        check("// just a comment\nlet x = 1;\n", "none");
        check("", "none");
    }

    #[test]
    fn bad_directives_name_the_option_and_the_line() {
        check(
            "// note\n// slurm: cpu=2\n",
            "error at line 1: unknown slurm option `cpu` (expected cpus, mem, time or partition)",
        );
        check(
            "// slurm: cpus=0\n",
            "error at line 0: slurm option `cpus=0`: expected a positive integer",
        );
        check(
            "// slurm: mem=lots\n",
            "error at line 0: slurm option `mem=lots`: expected an integer with an optional K, M, G or T suffix",
        );
        check(
            "// slurm: time=1:2:3:4\n",
            "error at line 0: slurm option `time=1:2:3:4`: expected MINUTES, MINUTES:SECONDS, HOURS:MINUTES:SECONDS or DAYS-HOURS[:MINUTES[:SECONDS]]",
        );
        check(
            "// slurm: partition=a;b\n",
            "error at line 0: slurm option `partition=a;b`: expected a partition name",
        );
        check(
            "// slurm: cpus 2\n",
            "error at line 0: slurm option `cpus` is not of the form key=value",
        );
    }

    #[test]
    fn time_limits_are_read_in_every_form_slurm_accepts() {
        assert_eq!(time_seconds("5"), Some(300));
        assert_eq!(time_seconds("5:30"), Some(330));
        assert_eq!(time_seconds("1:30:00"), Some(5400));
        assert_eq!(time_seconds("2-12"), Some(2 * 86_400 + 12 * 3600));
        assert_eq!(time_seconds("1-0:30"), Some(86_400 + 1800));
        assert_eq!(time_seconds("1-0:0:5"), Some(86_405));
        for bad in ["", "x", "1:", "-1", "1:2:3:4", "1-2:3:4:5", "+5"] {
            assert_eq!(time_seconds(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_deadline_becomes_a_time_limit_in_whole_minutes() {
        let none = Resources::default();
        let within = |resources: &Resources, millis: u64| {
            resources
                .within(Duration::from_millis(millis))
                .time
                .unwrap()
        };
        assert_eq!(within(&none, 500), "1");
        assert_eq!(within(&none, 60_000), "1");
        assert_eq!(within(&none, 60_001), "2");
        assert_eq!(within(&none, 150_000), "3");
        let asks = parse_options("time=0:30").unwrap();
        assert_eq!(within(&asks, 600_000), "0:30");
        let long = parse_options("time=1:00:00").unwrap();
        assert_eq!(within(&long, 600_000), "10");
    }

    #[test]
    fn a_cell_setting_wins_over_the_defaults() {
        let cell = parse_options("cpus=2").unwrap();
        let defaults = parse_options("cpus=1 partition=debug").unwrap();
        assert_eq!(
            cell.or(&defaults).srun_args(),
            ["--cpus-per-task=2", "--partition=debug"]
        );
    }
}
