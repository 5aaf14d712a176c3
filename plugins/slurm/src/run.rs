//! The jobs of one run: where their files go, how they are named, and
//! cancelling all of them at once.
//!
//! A run's files live in `WORKDIR/RUN_ID/`, one directory per cell job
//! (`INDEX-NAME/`). A job's directory is removed once its response was
//! read; a failed job's stays, and its error names it. The run's directory
//! is removed at the end of the run when nothing is left in it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::job::{self, JobFiles, JobSpec};
use crate::resources::Resources;

/// The jobs of one run.
#[derive(Clone, Debug)]
pub struct RunJobs {
    prefix: String,
    dir: PathBuf,
}

impl RunJobs {
    /// The jobs of the run `run_id`, with their files under `workdir`.
    pub fn new(run_id: &str, workdir: &Path) -> RunJobs {
        let prefix = job::run_prefix(run_id);
        let dir_name = prefix
            .trim_end_matches('.')
            .trim_start_matches("cellrun-")
            .to_owned();
        RunJobs {
            prefix,
            dir: workdir.join(dir_name),
        }
    }

    /// The prefix of the names of this run's jobs.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The run's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The job for cell `index`, named `cell`, with a fresh directory.
    ///
    /// # Errors
    /// When the job's directory cannot be created.
    pub fn job(
        &self,
        index: u32,
        cell: &str,
        resources: Resources,
        command: Vec<String>,
    ) -> io::Result<JobSpec> {
        let name = job::job_name(&self.prefix, index, cell);
        let dir = self.dir.join(&name[self.prefix.len()..]);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        Ok(JobSpec {
            name,
            comment: cell.to_owned(),
            files: JobFiles::new(&dir),
            resources,
            command,
        })
    }

    /// Cancels every job of the run still pending or running; returns how
    /// many there were.
    pub fn cancel_all(&self) -> usize {
        job::cancel_run(&self.prefix)
    }

    /// Removes the run's directory if no failed job left files in it.
    pub fn clean_up(&self) {
        // `remove_dir` fails on a directory that is not empty: exactly the
        // case where a failed job's files must stay.
        let _ = fs::remove_dir(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_job_gets_a_fresh_directory_in_the_runs_directory() {
        let workdir = std::env::temp_dir().join(format!("plugin-slurm-run-{}", std::process::id()));
        let run = RunJobs::new("0a1b-2c", &workdir);
        assert_eq!(run.prefix(), "cellrun-0a1b2c.");
        assert_eq!(run.dir(), workdir.join("0a1b2c"));
        let spec = run
            .job(4, "load data", Resources::default(), vec!["true".into()])
            .unwrap();
        assert_eq!(spec.name, "cellrun-0a1b2c.4-load_data");
        assert_eq!(spec.files.dir(), workdir.join("0a1b2c/4-load_data"));
        assert!(spec.files.dir().is_dir());
        // A failed job's files keep the run's directory.
        run.clean_up();
        assert!(run.dir().is_dir());
        fs::remove_dir_all(spec.files.dir()).unwrap();
        run.clean_up();
        assert!(!run.dir().exists());
        fs::remove_dir_all(&workdir).unwrap();
    }
}
