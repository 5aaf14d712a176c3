//! `cargo xtask slurm up|down|status|env|bench`: a one-node Slurm cluster on
//! loopback for development and CI.
//!
//! The cluster is made of Debian's `slurmctld`, `slurmd` and `munged`,
//! installed with `apt-get` when missing. Nothing goes through systemd and no
//! cgroup is used: the daemons run in the foreground of processes this task
//! spawns in their own process group, and their PIDs are recorded under
//! `target/slurm/run/`. Every file the cluster writes (configuration, munge
//! key and socket, controller state, spool, logs, PID files) lives under
//! `target/slurm/`.
//!
//! Client commands (`sbatch`, `srun`, `squeue`, ...) find this cluster
//! through `SLURM_CONF=target/slurm/slurm.conf`; `cargo xtask slurm env`
//! prints that line.
//!
//! `up` is idempotent (a cluster that answers is left alone), and `down`
//! cancels every job, stops only the processes `up` started (checked by
//! their command line, so a recycled PID is never signalled), kills job
//! processes of this cluster that outlived their job, and fails when any
//! process of the cluster is still alive afterwards.

use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::plugins::workspace_target_dir;
use crate::project_root;

/// The Debian packages the cluster is made of.
const PACKAGES: &[&str] = &["slurm-wlm", "munge"];

/// How long `up` waits for the node to become idle.
const UP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a daemon gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How long a client command (`sinfo`, `squeue`, `scancel`) may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(15);

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let cluster = Cluster::new(&workspace_target_dir(&project_root()).join("slurm"));
    match args.first().map(String::as_str) {
        Some("up") => cluster.up(),
        Some("down") => cluster.down(),
        Some("status") => cluster.status(),
        Some("env") => {
            println!("export SLURM_CONF={}", cluster.conf().display());
            Ok(())
        }
        Some("bench") => match args.get(1).map(String::as_str) {
            Some("--quick") => crate::slurm_bench::run(&cluster, 3),
            Some("--executor") => crate::slurm_bench::executor_only(),
            Some(other) => bail!("unknown argument `{other}` (expected --quick or --executor)"),
            None => crate::slurm_bench::run(&cluster, 10),
        },
        other => bail!(
            "unknown or missing slurm command {:?} (expected up, down, status, env or bench)",
            other.unwrap_or("")
        ),
    }
}

/// A daemon of the cluster: its name, its binary and the argument that ties
/// a running process to this cluster (so `down` never signals a stranger).
#[derive(Debug, Clone, Copy)]
enum Daemon {
    Munged,
    Slurmctld,
    Slurmd,
}

impl Daemon {
    /// In the order `up` starts them; `down` stops them in reverse.
    const ALL: [Daemon; 3] = [Daemon::Munged, Daemon::Slurmctld, Daemon::Slurmd];

    fn name(self) -> &'static str {
        match self {
            Daemon::Munged => "munged",
            Daemon::Slurmctld => "slurmctld",
            Daemon::Slurmd => "slurmd",
        }
    }

    fn binary(self) -> &'static str {
        match self {
            Daemon::Munged => "/usr/sbin/munged",
            Daemon::Slurmctld => "/usr/sbin/slurmctld",
            Daemon::Slurmd => "/usr/sbin/slurmd",
        }
    }
}

/// The files of one cluster, all under one directory.
pub(crate) struct Cluster {
    dir: PathBuf,
}

impl Cluster {
    pub(crate) fn new(dir: &Path) -> Cluster {
        Cluster {
            dir: dir.to_path_buf(),
        }
    }

    /// The `slurm.conf` client commands need in `SLURM_CONF`.
    pub(crate) fn conf(&self) -> PathBuf {
        self.dir.join("slurm.conf")
    }

    fn munge_dir(&self) -> PathBuf {
        self.dir.join("munge")
    }

    fn munge_socket(&self) -> PathBuf {
        self.munge_dir().join("munge.socket")
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.join("run")
    }

    fn log_dir(&self) -> PathBuf {
        self.dir.join("log")
    }

    fn pid_file(&self, daemon: Daemon) -> PathBuf {
        self.run_dir().join(format!("{}.pid", daemon.name()))
    }

    /// The arguments `daemon` runs with; each names a file of this cluster.
    fn daemon_args(&self, daemon: Daemon) -> Vec<String> {
        let munge = self.munge_dir();
        let path = |p: PathBuf| p.display().to_string();
        match daemon {
            Daemon::Munged => vec![
                "--foreground".to_owned(),
                format!("--key-file={}", path(munge.join("munge.key"))),
                format!("--socket={}", path(self.munge_socket())),
                format!("--pid-file={}", path(munge.join("munged.pid"))),
                format!("--log-file={}", path(munge.join("munged.log"))),
                format!("--seed-file={}", path(munge.join("munged.seed"))),
            ],
            Daemon::Slurmctld | Daemon::Slurmd => {
                vec!["-D".to_owned(), "-f".to_owned(), path(self.conf())]
            }
        }
    }

    /// The controller's TCP port, derived from the cluster's directory (FNV-1a)
    /// in 17000..18000; the node daemon listens on the next one.
    fn controller_port(&self) -> u16 {
        let hash = self
            .dir
            .as_os_str()
            .as_encoded_bytes()
            .iter()
            .fold(0xcbf2_9ce4_8422_2325_u64, |hash, &byte| {
                (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
            });
        17000 + (hash % 500) as u16 * 2
    }

    /// The PID recorded for `daemon`, when that process is alive and is
    /// still the daemon this cluster started.
    fn running(&self, daemon: Daemon) -> Option<u32> {
        let pid: u32 = fs::read_to_string(self.pid_file(daemon))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = proc_cmdline(pid)?;
        let ours = cmdline.first().map(String::as_str) == Some(daemon.binary())
            && cmdline[1..] == self.daemon_args(daemon)[..];
        (ours && alive(pid)).then_some(pid)
    }

    /// A client command of this cluster.
    pub(crate) fn client(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("SLURM_CONF", self.conf());
        cmd
    }

    /// The node's state as `sinfo` reports it, when the controller answers.
    ///
    /// Asks only when this cluster's controller runs: against a controller
    /// that is not there, `sinfo` retries for about 9 seconds.
    fn node_state(&self) -> Option<String> {
        self.running(Daemon::Slurmctld)?;
        let mut sinfo = self.client("sinfo");
        sinfo.args(["-h", "-o", "%T"]);
        let out = output_within(&mut sinfo, CLIENT_TIMEOUT).ok()?;
        out.success.then(|| out.stdout.trim().to_owned())
    }

    fn up(&self) -> anyhow::Result<()> {
        let all_running = Daemon::ALL
            .iter()
            .all(|&daemon| self.running(daemon).is_some());
        if all_running && self.node_state().as_deref() == Some("idle") {
            println!("slurm: already up ({})", self.conf().display());
            println!("export SLURM_CONF={}", self.conf().display());
            return Ok(());
        }
        install_packages()?;
        // A half-started cluster (a daemon died, or a previous `up` failed)
        // is stopped first, so the daemons below are the only ones.
        self.stop_daemons()?;
        for dir in [
            self.dir.join("state"),
            self.dir.join("spool"),
            self.log_dir(),
            self.run_dir(),
            self.munge_dir(),
        ] {
            fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        self.write_munge_key()?;
        let conf = self.config_text()?;
        fs::write(self.conf(), conf)
            .with_context(|| format!("cannot write {}", self.conf().display()))?;
        for daemon in Daemon::ALL {
            self.start(daemon)?;
            if let Daemon::Munged = daemon {
                wait_for("munged's socket", UP_TIMEOUT, || {
                    self.munge_socket().exists()
                })?;
            }
        }
        let idle = wait_for("the node to become idle", UP_TIMEOUT, || {
            self.node_state().as_deref() == Some("idle")
        });
        if let Err(err) = idle {
            let logs = self.log_tails();
            self.stop_daemons()?;
            bail!("{err:#}; the cluster was stopped again\n{logs}");
        }
        println!("slurm: up ({})", self.conf().display());
        println!("export SLURM_CONF={}", self.conf().display());
        Ok(())
    }

    fn start(&self, daemon: Daemon) -> anyhow::Result<()> {
        let log = self.log_dir().join(format!("{}.stdout", daemon.name()));
        let stdout =
            fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let stderr = stdout.try_clone()?;
        let child = Command::new(daemon.binary())
            .args(self.daemon_args(daemon))
            .env("SLURM_CONF", self.conf())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            // Its own process group: a Ctrl-C in the terminal that ran `up`
            // does not reach the daemon.
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {}", daemon.binary()))?;
        fs::write(self.pid_file(daemon), format!("{}\n", child.id()))?;
        Ok(())
    }

    fn write_munge_key(&self) -> anyhow::Result<()> {
        let dir = self.munge_dir();
        // munged refuses a socket directory that others cannot traverse.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
        let key = dir.join("munge.key");
        if !key.exists() {
            let mut bytes = vec![0u8; 1024];
            fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
            fs::write(&key, bytes)?;
        }
        // munged refuses a key that others can read.
        fs::set_permissions(&key, fs::Permissions::from_mode(0o400))?;
        Ok(())
    }

    /// The `slurm.conf` of a one-node cluster on 127.0.0.1 for this machine.
    fn config_text(&self) -> anyhow::Result<String> {
        let user = user_name()?;
        let node = host_name()?;
        let topology = node_topology()?;
        let memory_mb = memory_mb()? * 95 / 100;
        let port = self.controller_port();
        let dir = |name: &str| self.dir.join(name).display().to_string();
        // Each setting with the reason it is not Slurm's default, where it matters.
        let settings: Vec<(&str, String, &str)> = vec![
            (
                "ClusterName",
                "cellrun".into(),
                "Written by `cargo xtask slurm up`; regenerated on every start.",
            ),
            ("SlurmctldHost", "localhost".into(), ""),
            ("SlurmUser", user.clone(), ""),
            ("SlurmdUser", user, ""),
            (
                "SlurmctldPort",
                port.to_string(),
                "Ports follow from this directory, so clusters of two checkouts do not collide.",
            ),
            ("SlurmdPort", (port + 1).to_string(), ""),
            (
                "CommunicationParameters",
                "NoInAddrAny".into(),
                "slurmd binds the loopback address only.",
            ),
            ("AuthType", "auth/munge".into(), ""),
            ("CredType", "cred/munge".into(), ""),
            (
                "AuthInfo",
                format!("socket={}", self.munge_socket().display()),
                "This cluster's own munged, not the system one.",
            ),
            ("StateSaveLocation", dir("state"), ""),
            ("SlurmdSpoolDir", dir("spool"), ""),
            ("SlurmctldPidFile", dir("run/slurmctld.daemon.pid"), ""),
            ("SlurmdPidFile", dir("run/slurmd.daemon.pid"), ""),
            ("SlurmctldLogFile", dir("log/slurmctld.log"), ""),
            ("SlurmdLogFile", dir("log/slurmd.log"), ""),
            (
                "ProctrackType",
                "proctrack/linuxproc".into(),
                "No cgroups: processes are tracked through their parents.",
            ),
            ("TaskPlugin", "task/none".into(), ""),
            ("SelectType", "select/cons_tres".into(), ""),
            (
                "SelectTypeParameters",
                "CR_Core".into(),
                "Cores are consumed; memory is checked against RealMemory but not reserved.",
            ),
            ("SchedulerType", "sched/backfill".into(), ""),
            (
                "SchedulerParameters",
                "batch_sched_delay=0".into(),
                "Batch jobs start at the next scheduling pass, not after 3 s.",
            ),
            (
                "DependencyParameters",
                "kill_invalid_depend".into(),
                "A job whose afterok parent failed is cancelled instead of pending forever.",
            ),
            (
                "KillWait",
                "5".into(),
                "Seconds between SIGTERM and SIGKILL when a job is cancelled or times out.",
            ),
            (
                "MinJobAge",
                "600".into(),
                "Without accounting, a finished job stays visible to scontrol this many seconds.",
            ),
            ("JobAcctGatherType", "jobacct_gather/none".into(), ""),
            (
                "AccountingStorageType",
                "accounting_storage/none".into(),
                "",
            ),
            ("JobCompType", "jobcomp/none".into(), ""),
            ("MpiDefault", "none".into(), ""),
            ("SwitchType", "switch/none".into(), ""),
            ("ReturnToService", "2".into(), ""),
            ("MailProg", "/bin/true".into(), ""),
            (
                "NodeName",
                format!(
                    "{node} NodeAddr=127.0.0.1 {topology} RealMemory={memory_mb} State=UNKNOWN"
                ),
                "The topology comes from `slurmd -C`, so slurmd does not reconfigure it.",
            ),
            (
                "PartitionName",
                format!("debug Nodes={node} Default=YES MaxTime=INFINITE State=UP"),
                "",
            ),
        ];
        let mut conf = String::new();
        for (key, value, why) in settings {
            if !why.is_empty() {
                writeln!(conf, "# {why}")?;
            }
            writeln!(conf, "{key}={value}")?;
        }
        Ok(conf)
    }

    fn down(&self) -> anyhow::Result<()> {
        if self.running(Daemon::Slurmctld).is_some() {
            self.cancel_all_jobs();
        }
        self.stop_daemons()?;
        let strays = self.stray_processes();
        for &pid in &strays {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        let _ = wait_for("job processes to exit", STOP_GRACE, || {
            strays.iter().all(|&pid| !alive(pid))
        });
        let mut left: Vec<String> = Daemon::ALL
            .iter()
            .filter_map(|&daemon| {
                self.running(daemon)
                    .map(|pid| format!("{} (pid {pid})", daemon.name()))
            })
            .collect();
        left.extend(
            self.stray_processes()
                .into_iter()
                .map(|pid| format!("job process {pid}")),
        );
        if !left.is_empty() {
            bail!("still running after `slurm down`: {}", left.join(", "));
        }
        println!("slurm: down");
        Ok(())
    }

    /// Cancels every job and waits (bounded) for the queue to drain, so no
    /// job step outlives the daemons.
    fn cancel_all_jobs(&self) {
        let mut squeue = self.client("squeue");
        squeue.args(["-h", "-o", "%i"]);
        let Ok(out) = output_within(&mut squeue, CLIENT_TIMEOUT) else {
            return;
        };
        let jobs: Vec<&str> = out.stdout.split_whitespace().collect();
        if jobs.is_empty() {
            return;
        }
        let mut scancel = self.client("scancel");
        scancel.args(&jobs);
        let _ = output_within(&mut scancel, CLIENT_TIMEOUT);
        let _ = wait_for("cancelled jobs to leave the queue", STOP_GRACE * 3, || {
            let mut squeue = self.client("squeue");
            squeue.args(["-h", "-t", "PD,R,CG,S", "-o", "%i"]);
            output_within(&mut squeue, CLIENT_TIMEOUT)
                .map(|out| out.stdout.trim().is_empty())
                .unwrap_or(true)
        });
    }

    /// Stops the daemons this cluster started, newest first: SIGTERM, then
    /// SIGKILL after a grace period.
    fn stop_daemons(&self) -> anyhow::Result<()> {
        for daemon in Daemon::ALL.into_iter().rev() {
            if let Some(pid) = self.running(daemon) {
                let _ = Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
                if wait_for(daemon.name(), STOP_GRACE, || !alive(pid)).is_err() {
                    let _ = Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status();
                    wait_for(daemon.name(), STOP_GRACE, || !alive(pid))?;
                }
            }
            let _ = fs::remove_file(self.pid_file(daemon));
        }
        Ok(())
    }

    /// Processes left by this cluster's jobs: step daemons and job processes
    /// whose environment names this cluster's configuration.
    fn stray_processes(&self) -> Vec<u32> {
        let conf = format!("SLURM_CONF={}", self.conf().display());
        let me = std::process::id();
        let Ok(entries) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| pid != me && alive(pid))
            .filter(|&pid| {
                let Ok(environ) = fs::read(format!("/proc/{pid}/environ")) else {
                    return false;
                };
                let vars: Vec<&[u8]> = environ.split(|&b| b == 0).collect();
                let has = |wanted: &[u8]| vars.iter().any(|var| var.starts_with(wanted));
                let is_step = proc_cmdline(pid)
                    .and_then(|cmd| cmd.first().cloned())
                    .is_some_and(|cmd| cmd.starts_with("slurmstepd"));
                has(conf.as_bytes()) && (is_step || has(b"SLURM_JOB_ID="))
            })
            .collect()
    }

    fn status(&self) -> anyhow::Result<()> {
        for daemon in Daemon::ALL {
            match self.running(daemon) {
                Some(pid) => println!("{:<10} running (pid {pid})", daemon.name()),
                None => println!("{:<10} not running", daemon.name()),
            }
        }
        let Some(state) = self.node_state() else {
            bail!("slurm does not answer (start it with `cargo xtask slurm up`)");
        };
        println!("node       {state}");
        let mut squeue = self.client("squeue");
        squeue.args(["-h", "-o", "%i"]);
        let jobs = output_within(&mut squeue, CLIENT_TIMEOUT)?;
        println!("jobs       {}", jobs.stdout.lines().count());
        println!("export SLURM_CONF={}", self.conf().display());
        Ok(())
    }

    fn log_tails(&self) -> String {
        let mut text = String::new();
        for name in [
            "slurmctld.log",
            "slurmd.log",
            "slurmctld.stdout",
            "slurmd.stdout",
        ] {
            let path = self.log_dir().join(name);
            if let Ok(log) = fs::read_to_string(&path) {
                let lines: Vec<&str> = log.lines().collect();
                let _ = writeln!(text, "--- {}", path.display());
                for line in &lines[lines.len().saturating_sub(10)..] {
                    let _ = writeln!(text, "{line}");
                }
            }
        }
        text
    }
}

/// Installs the cluster's packages with apt-get when a binary is missing.
fn install_packages() -> anyhow::Result<()> {
    let needed = [
        "/usr/sbin/munged",
        "/usr/sbin/slurmctld",
        "/usr/sbin/slurmd",
        "/usr/bin/sbatch",
    ];
    if needed.iter().all(|path| Path::new(path).exists()) {
        return Ok(());
    }
    if user_name()? != "root" {
        bail!(
            "Slurm is not installed; as root run `apt-get install --no-install-recommends {}`",
            PACKAGES.join(" ")
        );
    }
    println!("slurm: installing {} with apt-get", PACKAGES.join(" "));
    let apt = |args: &[&str]| -> anyhow::Result<()> {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .status()
            .context("cannot run apt-get")?;
        if !status.success() {
            bail!("`apt-get {}` failed ({status})", args.join(" "));
        }
        Ok(())
    };
    apt(&["update", "-qq"])?;
    let mut install = vec!["install", "-y", "-qq", "--no-install-recommends"];
    install.extend(PACKAGES);
    apt(&install)
}

/// What a finished client command printed.
pub(crate) struct ClientOutput {
    pub(crate) success: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs `cmd` to completion, killing it after `timeout`.
pub(crate) fn output_within(cmd: &mut Command, timeout: Duration) -> anyhow::Result<ClientOutput> {
    let program = format!("{:?}", cmd.get_program());
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{program} did not finish within {timeout:?}");
        }
        thread::sleep(Duration::from_millis(5));
    };
    Ok(ClientOutput {
        success: status.success(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Polls `done` until it holds or `timeout` passes.
pub(crate) fn wait_for(
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Whether `pid` is a live process (a zombie is not: nothing reaps the
/// daemons once their parent exited, so a stopped one may linger as one).
fn alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name, which may contain spaces.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, None | Some("Z") | Some("X"))
}

fn proc_cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|&b| b == 0)
            .filter(|arg| !arg.is_empty())
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect(),
    )
}

fn user_name() -> anyhow::Result<String> {
    let out = Command::new("id")
        .arg("-un")
        .output()
        .context("cannot run `id -un`")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The short host name, which slurmd uses to find its `NodeName` line.
fn host_name() -> anyhow::Result<String> {
    let name =
        fs::read_to_string("/proc/sys/kernel/hostname").context("cannot read the host name")?;
    let short = name.trim().split('.').next().unwrap_or_default().to_owned();
    if short.is_empty() {
        bail!("the host name is empty");
    }
    Ok(short)
}

/// The node's CPU topology as `slurmd -C` reports it, e.g.
/// `CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1`.
fn node_topology() -> anyhow::Result<String> {
    let out = Command::new(Daemon::Slurmd.binary())
        .arg("-C")
        .output()
        .context("cannot run `slurmd -C`")?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_topology(&text).with_context(|| format!("unexpected `slurmd -C` output: {text}"))
}

fn parse_topology(text: &str) -> Option<String> {
    let first = text.lines().next()?;
    let keys = [
        "CPUs",
        "Boards",
        "SocketsPerBoard",
        "CoresPerSocket",
        "ThreadsPerCore",
    ];
    let fields: Vec<&str> = keys
        .iter()
        .map(|key| {
            first
                .split_whitespace()
                .find(|field| field.split_once('=').is_some_and(|(k, _)| k == *key))
        })
        .collect::<Option<_>>()?;
    Some(fields.join(" "))
}

/// The machine's memory in MiB.
fn memory_mb() -> anyhow::Result<u64> {
    let meminfo = fs::read_to_string("/proc/meminfo").context("cannot read /proc/meminfo")?;
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kib| kib / 1024)
        .context("no MemTotal in /proc/meminfo")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topology_is_read_from_the_first_line_of_slurmd_c() {
        let text = "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24000\nUpTime=0-01:00:00\n";
        assert_eq!(
            parse_topology(text).as_deref(),
            Some("CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1")
        );
        assert_eq!(parse_topology("NodeName=vm CPUs=2\n"), None);
    }

    #[test]
    fn a_process_that_is_not_a_daemon_of_the_cluster_is_not_running() {
        let dir = std::env::temp_dir().join(format!("cellrun-slurm-{}", std::process::id()));
        let cluster = Cluster::new(&dir);
        fs::create_dir_all(cluster.run_dir()).unwrap();
        // This test's own PID is alive but is not slurmctld: never signalled.
        fs::write(
            cluster.pid_file(Daemon::Slurmctld),
            std::process::id().to_string(),
        )
        .unwrap();
        assert_eq!(cluster.running(Daemon::Slurmctld), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
