//! Plugin discovery and loading: finds shared libraries in the plugin
//! directories, checks that they are trusted and compatible, and turns
//! them into executor factories and lifecycles.
//!
//! Loading runs a library's initialisers, so it happens once, at startup,
//! on the main thread, and only for files that pass the trust check.
//! Nothing is unloaded: abi_stable does not support it.
//!
//! Each file is loaded through its own library header
//! (`lib_header_from_path`), never with `RootModule::load_from_file`, which
//! caches one module per type and would return the first library for every
//! later file. The ABI version in the header is compared with this runner's
//! first, so an incompatible plugin gets one friendly line; abi_stable's
//! long layout report goes to the debug log.
//!
//! # Interface generations
//! abi_stable rejects a library built against an older minor than the
//! host's once the root module gained a field ("too many fields"), yet every
//! 1.x plugin must keep loading. The version in the header picks the
//! *generation* before anything else: a 1.0 library is read and checked as
//! the frozen 1.0 root module (`executor_abi::generations::v1_0`), a 1.1 or
//! later one as the current root module. A library built against a newer
//! minor than this runner's is abi_stable's supported direction: it loads,
//! and the runner does not see what that minor appended.
//!
//! # Two steps: inspect, then check
//! Inspecting a library reads its name and kind; abi_stable's recursive
//! layout check, which costs most of a library's load time, runs only for
//! the plugins a run constructs (the selected executor, the permitted
//! lifecycles) and for `cellrun plugins`. Reading the name and kind before
//! that check relies on the ABI's own rule: in every 1.x root module they are
//! the first two fields, with these types, and the version precheck has
//! already refused any other major. Nothing in a library is called before
//! its layout check passed, except the function exporting its root module.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use executor_abi::abi_stable::library::{lib_header_from_path, LibHeader, LibraryError};
use executor_abi::abi_stable::std_types::{RString, RVec};
use executor_abi::generations::{v1_0, v1_1};
use executor_abi::{
    FfiOption, FfiPluginKind, NewExecutor2Fn, NewExecutorFn, NewLifecycle2Fn, NewLifecycleFn,
    PluginMod_Ref, ABI_VERSION,
};
use executor_core::{DefaultExecutor, Executor, ExecutorRegistry, Lifecycle, NameFilter};
use executor_host::{logger, PluginExecutor, PluginExecutor2, PluginLifecycle, PluginLifecycle2};

/// The environment variable listing extra plugin directories.
pub(crate) const PLUGIN_PATH_VAR: &str = "CELLRUN_PLUGIN_PATH";

/// Where to look for plugins and how careful to be.
#[derive(Debug, Default)]
pub(crate) struct PluginConfig {
    /// `--plugin-dir` directories, then those of `CELLRUN_PLUGIN_PATH`.
    pub(crate) dirs: Vec<PathBuf>,
    /// Load files that fail the trust check anyway.
    pub(crate) allow_untrusted: bool,
    /// `--plugin-opt NAME.KEY=VALUE`, as (name, key, value).
    pub(crate) options: Vec<(String, String, String)>,
}

impl PluginConfig {
    /// The directories of `--plugin-dir` followed by `CELLRUN_PLUGIN_PATH`'s.
    pub(crate) fn new(
        dirs: &[PathBuf],
        allow_untrusted: bool,
        options: Vec<(String, String, String)>,
    ) -> PluginConfig {
        let mut all = dirs.to_vec();
        if let Some(path) = std::env::var_os(PLUGIN_PATH_VAR) {
            all.extend(std::env::split_paths(&path).filter(|dir| !dir.as_os_str().is_empty()));
        }
        PluginConfig {
            dirs: all,
            allow_untrusted,
            options,
        }
    }
}

/// The interface generation a library is read and checked as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Generation {
    /// Built against executor-abi 1.0: the frozen 1.0 root module.
    V1_0,
    /// Built against executor-abi 1.1: the frozen 1.1 root module.
    V1_1,
    /// Built against 1.2 or a later 1.x: the current root module.
    Current,
}

/// A library's root module, as the type of its generation.
#[derive(Clone, Copy)]
enum Module {
    V1_0(v1_0::PluginMod_Ref),
    V1_1(v1_1::PluginMod_Ref),
    Current(PluginMod_Ref),
}

impl Module {
    /// Runs the library's root-module constructor, reading the module as
    /// `generation`'s type, without the layout check.
    ///
    /// # Safety
    /// The caller runs the layout check ([`Plugin::check_layout`]) before
    /// calling anything but `name` and `kind`, which every 1.x root module
    /// starts with.
    unsafe fn init(header: &LibHeader, generation: Generation) -> Result<Module, LibraryError> {
        // SAFETY: forwarded from the caller.
        unsafe {
            Ok(match generation {
                Generation::V1_0 => Module::V1_0(
                    header.init_root_module_with_unchecked_layout::<v1_0::PluginMod_Ref>()?,
                ),
                Generation::V1_1 => Module::V1_1(
                    header.init_root_module_with_unchecked_layout::<v1_1::PluginMod_Ref>()?,
                ),
                Generation::Current => Module::Current(
                    header.init_root_module_with_unchecked_layout::<PluginMod_Ref>()?,
                ),
            })
        }
    }

    fn ensure_layout(&self, header: &LibHeader) -> Result<(), LibraryError> {
        match self {
            Module::V1_0(_) => header.ensure_layout::<v1_0::PluginMod_Ref>(),
            Module::V1_1(_) => header.ensure_layout::<v1_1::PluginMod_Ref>(),
            Module::Current(_) => header.ensure_layout::<PluginMod_Ref>(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Module::V1_0(module) => module.name().as_str(),
            Module::V1_1(module) => module.name().as_str(),
            Module::Current(module) => module.name().as_str(),
        }
    }

    fn kind(&self) -> FfiPluginKind {
        match self {
            Module::V1_0(module) => module.kind(),
            Module::V1_1(module) => module.kind(),
            Module::Current(module) => module.kind(),
        }
    }

    /// The description (ABI 1.1); `None` for 1.0 or an empty one.
    fn description(&self) -> Option<&'static str> {
        let text = match self {
            Module::V1_0(_) => None,
            Module::V1_1(module) => module.description(),
            Module::Current(module) => module.description(),
        };
        text.map(|text| text.as_str())
            .filter(|text| !text.trim().is_empty())
    }

    /// A 1.2 field of the current root module, `None` for older ones.
    fn current(&self) -> Option<&PluginMod_Ref> {
        match self {
            Module::Current(module) => Some(module),
            _ => None,
        }
    }

    /// The plugin's own version (ABI 1.2).
    fn version(&self) -> Option<&'static str> {
        self.current()?
            .version()
            .map(|text| text.as_str())
            .filter(|text| !text.trim().is_empty())
    }

    /// The oldest cellrun the plugin needs (ABI 1.2).
    fn min_cellrun(&self) -> Option<&'static str> {
        self.current()?
            .min_cellrun()
            .map(|text| text.as_str())
            .filter(|text| !text.trim().is_empty())
    }

    /// Whether the library unwinds on panic; `None` when it does not say (before 1.2).
    fn unwinds(&self) -> Option<bool> {
        self.current()?.unwinds()
    }

    /// The languages an executor runs; Rhai for plugins older than 1.2.
    fn languages(&self) -> Vec<String> {
        match self.current().and_then(|module| module.languages()) {
            Some(languages) => languages
                .iter()
                .map(|text| text.as_str().to_owned())
                .collect(),
            None => vec![executor_core::RHAI.to_owned()],
        }
    }

    fn new_executor(&self) -> NewExecutorFn {
        match self {
            Module::V1_0(module) => module.new_executor(),
            Module::V1_1(module) => module.new_executor(),
            Module::Current(module) => module.new_executor(),
        }
    }

    fn new_lifecycle(&self) -> NewLifecycleFn {
        match self {
            Module::V1_0(module) => module.new_lifecycle(),
            Module::V1_1(module) => module.new_lifecycle(),
            Module::Current(module) => module.new_lifecycle(),
        }
    }

    fn new_executor2(&self) -> Option<NewExecutor2Fn> {
        self.current()?.new_executor2()
    }

    fn new_lifecycle2(&self) -> Option<NewLifecycle2Fn> {
        self.current()?.new_lifecycle2()
    }
}

/// A library that loaded as a cellrun plugin of a compatible major version.
#[derive(Clone)]
pub(crate) struct Plugin {
    module: Module,
    header: &'static LibHeader,
    path: PathBuf,
}

impl Plugin {
    /// abi_stable's layout check of the whole root module, against the
    /// library's generation; call before constructing anything.
    pub(crate) fn check_layout(&self) -> Result<(), String> {
        let _span = tracing::debug_span!("check_layout", plugin = self.name()).entered();
        self.module
            .ensure_layout(self.header)
            .map_err(|error| summarize(&self.path, &error))
    }

    pub(crate) fn name(&self) -> &'static str {
        self.module.name()
    }

    pub(crate) fn kind(&self) -> FfiPluginKind {
        self.module.kind()
    }

    /// What the plugin says it does (ABI 1.1); `None` when built against 1.0
    /// or when it says nothing.
    pub(crate) fn description(&self) -> Option<&'static str> {
        self.module.description()
    }

    /// The cell languages an executor plugin runs.
    pub(crate) fn languages(&self) -> Vec<String> {
        self.module.languages()
    }
}

/// What was found in one file: the plugin, or why it is not used.
pub(crate) struct Report {
    pub(crate) path: PathBuf,
    pub(crate) name: Option<String>,
    pub(crate) kind: Option<&'static str>,
    pub(crate) abi_version: Option<String>,
    /// What the plugin says it does; `None` for a 1.0 plugin or when it says nothing.
    pub(crate) description: Option<String>,
    /// The plugin's own version (ABI 1.2).
    pub(crate) version: Option<String>,
    /// The oldest cellrun it needs (ABI 1.2).
    pub(crate) min_cellrun: Option<String>,
    /// The languages an executor runs.
    pub(crate) languages: Vec<String>,
    /// `None` when the plugin is compatible and used.
    pub(crate) problem: Option<String>,
}

/// Every plugin found, and what went wrong on the way.
#[derive(Default)]
pub(crate) struct Inventory {
    /// Usable plugins by name.
    pub(crate) plugins: BTreeMap<String, Plugin>,
    /// One report per library file, in search order.
    pub(crate) reports: Vec<Report>,
    /// Warnings for the user, one line each.
    pub(crate) warnings: Vec<String>,
}

/// Whether `path` is a shared library by its extension.
fn is_library(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|ext| ext.to_str()),
        Some("so" | "dylib" | "dll")
    )
}

/// A short form of a loading error; the full text goes to the debug log.
fn summarize(path: &Path, error: &LibraryError) -> String {
    tracing::debug!(path = %path.display(), error = %error, "plugin library error in full");
    match error {
        LibraryError::OpenError { .. } => {
            let text = error.to_string();
            let last = text.lines().rev().find(|line| !line.trim().is_empty());
            format!(
                "not a loadable library ({})",
                last.unwrap_or("cannot open it").trim()
            )
        }
        LibraryError::GetSymbolError { .. } => {
            "not a cellrun plugin (it has no abi_stable library header)".to_owned()
        }
        LibraryError::InvalidAbiHeader(header) => format!(
            "built with an incompatible abi_stable (ABI 0.{}, this cellrun uses 0.{})",
            header.abi_minor,
            executor_abi::abi_stable::library::AbiHeader::VALUE.abi_minor
        ),
        LibraryError::AbiInstability(_) => {
            "its types do not match this cellrun's executor-abi (layout check failed; CELLRUN_LOG=debug shows the report)".to_owned()
        }
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => format!(
            "built against executor-abi {actual_version}; this cellrun loads {}.x",
            expected_version.major
        ),
        other => {
            let text = other.to_string();
            text.lines().next().unwrap_or_default().trim().to_owned()
        }
    }
}

/// The generation a plugin built against `version` is read as, or the
/// one-line reason it cannot load.
///
/// Every 1.x loads: 1.0 through the frozen 1.0 generation, 1.1 up to this
/// runner's minor through the current one, and a newer minor through the
/// current one too (abi_stable accepts a library that appended fields and
/// methods; this runner just does not see them).
fn select_generation(file: &str, version: &str) -> Result<Generation, String> {
    let host = semver::Version::parse(ABI_VERSION).expect("executor-abi has a semver version");
    let plugin = semver::Version::parse(version).map_err(|error| {
        format!("plugin {file} has an unreadable executor-abi version `{version}` ({error})")
    })?;
    if plugin.major != host.major {
        return Err(format!(
            "plugin {file} was built against executor-abi {plugin}; this cellrun loads {}.x",
            host.major
        ));
    }
    if plugin.minor > host.minor {
        tracing::debug!(
            plugin = file,
            %plugin,
            %host,
            "plugin built against a newer minor; what that minor appended is not used"
        );
    }
    Ok(match plugin.minor {
        0 => Generation::V1_0,
        1 => Generation::V1_1,
        _ => Generation::Current,
    })
}

/// Inspects one library: header, version, layout, then name and kind.
/// Constructs nothing.
///
/// `load_from` is the file the trust and structure checks opened
/// (see [`crate::libfile`]); `path` names it in messages.
fn inspect(path: &Path, load_from: &Path, report: &mut Report) -> Result<Plugin, String> {
    let file = path.file_name().map_or_else(
        || path.display().to_string(),
        |name| name.to_string_lossy().into_owned(),
    );
    let started = std::time::Instant::now();
    let header = lib_header_from_path(load_from).map_err(|error| summarize(path, &error))?;
    let opened = started.elapsed();
    let version = header.version_strings().version.as_str().to_owned();
    report.abi_version = Some(version.clone());
    let generation = select_generation(&file, &version)?;
    // SAFETY: the version precheck admitted a 1.x library, whose root module
    // starts with `name` and `kind` (see the module docs); the layout check
    // runs in `Plugin::check_layout` before anything else is called.
    let module =
        unsafe { Module::init(header, generation) }.map_err(|error| summarize(path, &error))?;
    tracing::debug!(
        path = %path.display(),
        open_us = opened.as_micros() as u64,
        init_us = (started.elapsed() - opened).as_micros() as u64,
        ?generation,
        "plugin library inspected"
    );
    let plugin = Plugin {
        module,
        header,
        path: path.to_owned(),
    };
    report.name = Some(plugin.name().to_owned());
    report.kind = Some(plugin.kind().as_str());
    report.description = plugin.description().map(str::to_owned);
    report.version = plugin.module.version().map(str::to_owned);
    report.min_cellrun = plugin.module.min_cellrun().map(str::to_owned);
    if plugin.kind() == FfiPluginKind::EXECUTOR {
        report.languages = plugin.languages();
    }
    if plugin.kind() != FfiPluginKind::EXECUTOR && plugin.kind() != FfiPluginKind::LIFECYCLE {
        return Err(format!(
            "plugin `{}` has a kind this cellrun does not know",
            plugin.name()
        ));
    }
    validate_name(plugin.name())?;
    if plugin.module.unwinds() == Some(false) {
        return Err(format!(
            "plugin `{}` was built with panic = \"abort\": a panic in it would end the run and lose its results; rebuild it with panic = \"unwind\" (the default)",
            plugin.name()
        ));
    }
    if let Some(needed) = plugin.module.min_cellrun() {
        check_min_cellrun(plugin.name(), needed)?;
    }
    Ok(plugin)
}

/// The names no plugin may take: the built-in executor and lifecycles.
pub(crate) const RESERVED_NAMES: &[&str] = &["default", "strict", "cache"];

/// Checks a plugin name: lowercase letters, digits, `-` and `_`, not reserved.
///
/// A dot would make `--plugin-opt NAME.KEY=VALUE` ambiguous, so such a
/// plugin could never receive options.
pub(crate) fn validate_name(name: &str) -> Result<(), String> {
    let shown = crate::output::terminal_safe(name);
    if name.is_empty() {
        return Err("the plugin has an empty name".to_owned());
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(format!(
            "the name `{shown}` is reserved for cellrun's built-in {}",
            if name == "default" {
                "executor"
            } else {
                "lifecycle"
            }
        ));
    }
    if let Some(bad) = name.chars().find(|char| {
        !(char.is_ascii_lowercase() || char.is_ascii_digit() || *char == '-' || *char == '_')
    }) {
        return Err(format!(
            "the plugin name `{shown}` has `{}`; names use lowercase letters, digits, `-` and `_`",
            bad.escape_default()
        ));
    }
    Ok(())
}

/// Fails when the plugin needs a newer cellrun than this one.
fn check_min_cellrun(name: &str, needed: &str) -> Result<(), String> {
    let this =
        semver::Version::parse(env!("CARGO_PKG_VERSION")).expect("cellrun has a semver version");
    let needed_version = semver::Version::parse(needed).map_err(|error| {
        format!("plugin `{name}` needs cellrun `{needed}`, which is not a version ({error})")
    })?;
    if needed_version > this {
        return Err(format!(
            "plugin `{name}` needs cellrun {needed} or later; this is cellrun {this}"
        ));
    }
    Ok(())
}

/// Finds and inspects every library in `config.dirs`.
pub(crate) fn discover(config: &PluginConfig) -> Inventory {
    let _span = tracing::info_span!("discover_plugins", n_dirs = config.dirs.len()).entered();
    let mut inventory = Inventory::default();
    let mut origin: HashMap<String, PathBuf> = HashMap::new();
    for dir in &config.dirs {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) => {
                let reason = if error.kind() == std::io::ErrorKind::NotFound {
                    "it does not exist".to_owned()
                } else {
                    error.to_string()
                };
                inventory.warnings.push(format!(
                    "plugin directory {} skipped: {reason}",
                    dir.display()
                ));
                continue;
            }
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| is_library(path) && path.is_file())
            .collect();
        files.sort();
        for path in files {
            add_library(path, config, &mut inventory, &mut origin);
        }
    }
    inventory
}

/// The file name of the plugin shipped with cellrun for cells of
/// `language`: `libplugin_python.so` on Linux.
pub(crate) fn bundled_file_name(language: &str) -> String {
    format!(
        "{}plugin_{language}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// Where cellrun looks for the plugin it ships for `language` when no
/// plugin directory has one: beside its own executable (where `cargo build`
/// puts both), then in `../lib/cellrun/` from there (an installed layout).
pub(crate) fn bundled_candidates(language: &str) -> Vec<PathBuf> {
    let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
    else {
        return Vec::new();
    };
    let name = bundled_file_name(language);
    vec![
        dir.join(&name),
        dir.join("..").join("lib").join("cellrun").join(&name),
    ]
}

/// Adds the plugin cellrun ships for `language` to `inventory`, when no
/// plugin found so far runs the language: the first of
/// [`bundled_candidates`] that exists, and only that one file (the
/// directory beside the executable holds other libraries, which are not
/// loaded). Returns where it looked when it found none.
pub(crate) fn add_bundled(
    inventory: &mut Inventory,
    config: &PluginConfig,
    language: &str,
) -> Result<(), Vec<PathBuf>> {
    let runs_language = inventory.plugins.values().any(|plugin| {
        plugin.kind() == FfiPluginKind::EXECUTOR
            && plugin.languages().iter().any(|runs| runs == language)
    });
    if runs_language {
        return Ok(());
    }
    let candidates = bundled_candidates(language);
    let Some(path) = candidates.iter().find(|path| path.is_file()) else {
        return Err(candidates);
    };
    let mut origin: HashMap<String, PathBuf> = inventory
        .plugins
        .iter()
        .map(|(name, plugin)| (name.clone(), plugin.path.clone()))
        .collect();
    tracing::debug!(path = %path.display(), language, "loading the bundled plugin");
    add_library(path.clone(), config, inventory, &mut origin);
    Ok(())
}

/// Inspects the library at `path` and adds it to `inventory`, or records
/// why not.
fn add_library(
    path: PathBuf,
    config: &PluginConfig,
    inventory: &mut Inventory,
    origin: &mut HashMap<String, PathBuf>,
) {
    let mut report = Report {
        path: path.clone(),
        name: None,
        kind: None,
        abi_version: None,
        description: None,
        version: None,
        min_cellrun: None,
        languages: Vec::new(),
        problem: None,
    };
    let outcome = match crate::libfile::open(&path, config.allow_untrusted) {
        Err(crate::libfile::Refusal::Untrusted(reason)) => Err(format!(
            "refusing untrusted plugin {}: {reason} (--allow-untrusted-plugins loads it anyway)",
            path.display()
        )),
        Err(crate::libfile::Refusal::Broken(reason)) => {
            Err(format!("plugin {} skipped: {reason}", path.display()))
        }
        Ok(opened) => inspect(&path, opened.load_path(), &mut report)
            .map_err(|reason| format!("plugin {} skipped: {reason}", path.display())),
    };
    match outcome {
        Ok(plugin) => {
            let name = plugin.name().to_owned();
            if let Some(first) = origin.get(&name) {
                let problem = format!(
                    "plugin {} skipped: duplicate name `{name}` (already loaded from {})",
                    path.display(),
                    first.display()
                );
                inventory.warnings.push(problem.clone());
                report.problem = Some(problem);
            } else {
                tracing::debug!(
                    plugin = %name,
                    path = %path.display(),
                    description = report.description.as_deref().unwrap_or("-"),
                    "plugin found"
                );
                origin.insert(name.clone(), path.clone());
                inventory.plugins.insert(name, plugin);
            }
        }
        Err(problem) => {
            inventory.warnings.push(problem.clone());
            report.problem = Some(problem);
        }
    }
    inventory.reports.push(report);
}

/// Runs the layout check of every plugin found, as `cellrun plugins` shows
/// it; a plugin that fails it is reported and dropped.
pub(crate) fn check_layouts(inventory: &mut Inventory) {
    let mut failed = Vec::new();
    for (name, plugin) in &inventory.plugins {
        if let Err(reason) = plugin.check_layout() {
            failed.push((name.clone(), plugin.path.clone(), reason));
        }
    }
    for (name, path, reason) in failed {
        inventory.plugins.remove(&name);
        if let Some(report) = inventory
            .reports
            .iter_mut()
            .find(|report| report.path == path)
        {
            report.problem = Some(format!("plugin {} skipped: {reason}", path.display()));
        }
    }
}

/// The `--plugin-opt` options of plugin `name`.
fn options_for(config: &PluginConfig, name: &str) -> RVec<FfiOption> {
    config
        .options
        .iter()
        .filter(|(plugin, _, _)| plugin == name)
        .map(|(_, key, value)| FfiOption {
            key: RString::from(key.as_str()),
            value: RString::from(value.as_str()),
        })
        .collect()
}

/// Warnings for `--plugin-opt` options naming no loaded plugin.
pub(crate) fn unknown_option_warnings(config: &PluginConfig, inventory: &Inventory) -> Vec<String> {
    let mut names: Vec<&str> = config
        .options
        .iter()
        .map(|(name, _, _)| name.as_str())
        .filter(|name| !inventory.plugins.contains_key(*name))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .map(|name| format!("--plugin-opt for `{name}`, but no plugin of that name is loaded"))
        .collect()
}

/// Registers a lazy factory for every executor plugin that runs
/// `language`: only the one the registry selects is constructed.
pub(crate) fn register_executors(
    registry: &mut ExecutorRegistry,
    inventory: &Inventory,
    config: &PluginConfig,
    default: &Arc<DefaultExecutor>,
    language: &str,
) {
    for (name, plugin) in &inventory.plugins {
        if plugin.kind() != FfiPluginKind::EXECUTOR
            || !plugin.languages().iter().any(|runs| runs == language)
        {
            continue;
        }
        let name = name.clone();
        let options = options_for(config, &name);
        let plugin = plugin.clone();
        let default = default.clone();
        registry.register(
            name.clone(),
            Box::new(move || {
                let _span = tracing::info_span!("construct_plugin", plugin = %name).entered();
                plugin.check_layout()?;
                if let Some(new_executor2) = plugin.module.new_executor2() {
                    let languages = plugin.languages();
                    return match new_executor2(options, logger(&name)).into_result() {
                        Ok(inner) => Ok(Arc::new(PluginExecutor2::new(
                            name, inner, default, languages,
                        )) as Arc<dyn Executor>),
                        Err(error) => Err(error.message.into_string()),
                    };
                }
                let built = (plugin.module.new_executor())(options, logger(&name));
                match built.into_result() {
                    Ok(inner) => {
                        Ok(Arc::new(PluginExecutor::new(name, inner, default))
                            as Arc<dyn Executor>)
                    }
                    Err(error) => Err(error.message.into_string()),
                }
            }),
        );
    }
}

/// Constructs every permitted lifecycle plugin, alphabetically; one whose
/// construction fails is left out with a warning.
pub(crate) fn lifecycles(
    inventory: &Inventory,
    config: &PluginConfig,
    filter: &NameFilter,
    warnings: &mut Vec<String>,
) -> Vec<Arc<dyn Lifecycle>> {
    let mut built: Vec<Arc<dyn Lifecycle>> = Vec::new();
    for (name, plugin) in &inventory.plugins {
        if plugin.kind() != FfiPluginKind::LIFECYCLE || !filter.permits(name) {
            continue;
        }
        let _span = tracing::info_span!("construct_plugin", plugin = %name).entered();
        if let Err(reason) = plugin.check_layout() {
            warnings.push(format!(
                "lifecycle `{name}` cannot be loaded ({reason}); running without it"
            ));
            continue;
        }
        let options = options_for(config, name);
        let res = match plugin.module.new_lifecycle2() {
            Some(new_lifecycle2) => {
                new_lifecycle2(options, logger(name))
                    .into_result()
                    .map(|inner| {
                        Arc::new(PluginLifecycle2::new(name.clone(), inner)) as Arc<dyn Lifecycle>
                    })
            }
            None => (plugin.module.new_lifecycle())(options, logger(name))
                .into_result()
                .map(|inner| {
                    Arc::new(PluginLifecycle::new(name.clone(), inner)) as Arc<dyn Lifecycle>
                }),
        };
        match res {
            Ok(lifecycle) => built.push(lifecycle),
            Err(error) => warnings.push(format!(
                "lifecycle `{name}` could not be constructed ({}); running without it",
                error.message
            )),
        }
    }
    built
}

/// The lifecycle filter from `CELLRUN_LIFECYCLE_ALLOWLIST` and `_DENYLIST`.
pub(crate) fn lifecycle_filter() -> NameFilter {
    NameFilter::from_lists(
        std::env::var("CELLRUN_LIFECYCLE_ALLOWLIST").ok().as_deref(),
        std::env::var("CELLRUN_LIFECYCLE_DENYLIST").ok().as_deref(),
    )
}

/// Parses `NAME.KEY=VALUE`.
pub(crate) fn parse_option(text: &str) -> Result<(String, String, String), String> {
    let bad = || format!("`{text}` is not NAME.KEY=VALUE");
    let (target, value) = text.split_once('=').ok_or_else(bad)?;
    let (name, key) = target.split_once('.').ok_or_else(bad)?;
    if name.is_empty() || key.is_empty() {
        return Err(bad());
    }
    Ok((name.to_owned(), key.to_owned(), value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names_are_lowercase_words_and_not_built_in() {
        assert_eq!(validate_name("py-exec_2"), Ok(()));
        for (name, expect) in [
            ("default", "reserved for cellrun's built-in executor"),
            ("strict", "reserved for cellrun's built-in lifecycle"),
            ("cache", "reserved"),
            ("my.plugin", "has `.`"),
            ("Big", "has `B`"),
            ("", "empty name"),
            ("a b", "has ` `"),
        ] {
            let error = validate_name(name).unwrap_err();
            assert!(error.contains(expect), "{name}: {error}");
        }
    }

    #[test]
    fn a_plugin_needing_a_newer_cellrun_is_refused() {
        assert_eq!(check_min_cellrun("p", "0.0.1"), Ok(()));
        let error = check_min_cellrun("p", "99.0.0").unwrap_err();
        assert!(error.contains("needs cellrun 99.0.0 or later"), "{error}");
        assert!(check_min_cellrun("p", "soon").is_err());
    }

    #[test]
    fn plugin_options_split_at_the_first_dot_and_equals() {
        assert_eq!(
            parse_option("trace.path=a.b=c"),
            Ok(("trace".into(), "path".into(), "a.b=c".into()))
        );
        assert!(parse_option("trace=1").is_err());
        assert!(parse_option(".key=1").is_err());
        assert!(parse_option("name.key").is_err());
    }

    #[test]
    fn every_1_x_loads_and_older_minors_are_read_as_their_own_generation() {
        assert_eq!(select_generation("libx.so", "1.0.0"), Ok(Generation::V1_0));
        assert_eq!(select_generation("libx.so", "1.0.3"), Ok(Generation::V1_0));
        assert_eq!(select_generation("libx.so", "1.1.0"), Ok(Generation::V1_1));
        assert_eq!(
            select_generation("libx.so", "1.2.0"),
            Ok(Generation::Current)
        );
        // A newer minor than the host's: abi_stable's supported direction.
        assert_eq!(
            select_generation("libx.so", "1.7.2"),
            Ok(Generation::Current)
        );
        assert_eq!(
            select_generation("libx.so", "2.0.0"),
            Err(
                "plugin libx.so was built against executor-abi 2.0.0; this cellrun loads 1.x"
                    .into()
            )
        );
        assert_eq!(
            select_generation("libx.so", "0.9.0"),
            Err(
                "plugin libx.so was built against executor-abi 0.9.0; this cellrun loads 1.x"
                    .into()
            )
        );
        assert!(select_generation("libx.so", "banana").is_err());
    }
}
