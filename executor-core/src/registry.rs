//! The executor registry: named factories, one of which is constructed.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::evaluator::panic_message;
use crate::Executor;

/// Builds an executor, or says why it cannot.
pub type ExecutorFactory = Box<dyn FnOnce() -> Result<Arc<dyn Executor>, String> + Send>;

/// Which names may be selected: an allow list (empty: every name) and a
/// deny list, both case-insensitive. The deny list wins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameFilter {
    allow: Vec<String>,
    deny: Vec<String>,
}

impl NameFilter {
    /// A filter from comma-separated lists, as found in
    /// `CELLRUN_EXECUTOR_ALLOWLIST` and `CELLRUN_EXECUTOR_DENYLIST`.
    ///
    /// Blank entries are ignored; a missing or blank allow list allows all.
    pub fn from_lists(allow: Option<&str>, deny: Option<&str>) -> NameFilter {
        fn split(list: Option<&str>) -> Vec<String> {
            list.unwrap_or_default()
                .split(',')
                .map(|name| name.trim().to_lowercase())
                .filter(|name| !name.is_empty())
                .collect()
        }
        NameFilter {
            allow: split(allow),
            deny: split(deny),
        }
    }

    /// Whether `name` passes the filter.
    pub fn permits(&self, name: &str) -> bool {
        let name = name.to_lowercase();
        !self.deny.contains(&name) && (self.allow.is_empty() || self.allow.contains(&name))
    }
}

/// Named executor factories, selected alphabetically.
///
/// Selection follows marimo's registry: among the names the filter permits,
/// sorted alphabetically, only the first factory is called; the others are
/// named in one warning and never called. When that factory fails (an error
/// or a panic) the fallback executor is used with a warning: the next name
/// is not tried.
#[derive(Default)]
pub struct ExecutorRegistry {
    factories: BTreeMap<String, ExecutorFactory>,
}

/// The executor a registry selected, and what went wrong on the way.
pub struct Selection {
    /// The executor to run cells with.
    pub executor: Arc<dyn Executor>,
    /// The registered name that was constructed, or `None` for the fallback.
    pub selected: Option<String>,
    /// Warnings for the user, one line each.
    pub warnings: Vec<String>,
    /// The executor that was chosen but could not be constructed, and why,
    /// when the fallback runs instead.
    pub fallback: Option<(String, String)>,
}

impl ExecutorRegistry {
    /// An empty registry.
    pub fn new() -> ExecutorRegistry {
        ExecutorRegistry::default()
    }

    /// Registers `factory` under `name`, replacing an earlier one of that name.
    pub fn register(&mut self, name: impl Into<String>, factory: ExecutorFactory) {
        self.factories.insert(name.into(), factory);
    }

    /// The registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.factories.keys().map(String::as_str)
    }

    /// The name [`ExecutorRegistry::select`] would construct under `filter`.
    pub fn candidate(&self, filter: &NameFilter) -> Option<&str> {
        self.names().find(|name| filter.permits(name))
    }

    /// Constructs the first permitted executor, or falls back to `fallback`.
    pub fn select(
        self,
        filter: &NameFilter,
        fallback: impl FnOnce() -> Arc<dyn Executor>,
    ) -> Selection {
        let mut permitted = self
            .factories
            .into_iter()
            .filter(|(name, _)| filter.permits(name));
        let mut warnings = Vec::new();
        let Some((name, factory)) = permitted.next() else {
            return Selection {
                executor: fallback(),
                selected: None,
                warnings,
                fallback: None,
            };
        };
        let ignored: Vec<String> = permitted.map(|(name, _)| name).collect();
        if !ignored.is_empty() {
            warnings.push(format!(
                "several executors are available; using `{name}` and ignoring {} other(s): {}",
                ignored.len(),
                ignored.join(", ")
            ));
        }
        let built = catch_unwind(AssertUnwindSafe(factory)).unwrap_or_else(|payload| {
            Err(format!("panicked: {}", panic_message(payload.as_ref())))
        });
        match built {
            Ok(executor) => Selection {
                executor,
                selected: Some(name),
                warnings,
                fallback: None,
            },
            Err(reason) => {
                warnings.push(format!(
                    "executor `{name}` could not be constructed ({reason}); falling back to the built-in `default` executor"
                ));
                Selection {
                    executor: fallback(),
                    selected: None,
                    warnings,
                    fallback: Some((name, reason)),
                }
            }
        }
    }

    /// Constructs the executor registered as `name`, with no fallback.
    ///
    /// # Errors
    /// When no executor of that name is registered (the message lists the
    /// registered ones), the filter forbids it, or its construction fails
    /// or panics.
    pub fn select_named(mut self, name: &str, filter: &NameFilter) -> Result<Selection, String> {
        if !filter.permits(name) {
            return Err(format!(
                "executor `{name}` is excluded by CELLRUN_EXECUTOR_ALLOWLIST or CELLRUN_EXECUTOR_DENYLIST"
            ));
        }
        let Some(factory) = self.factories.remove(name) else {
            let known: Vec<&str> = self.names().collect();
            return Err(format!(
                "no executor named `{name}` runs this notebook (available: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ));
        };
        let built = catch_unwind(AssertUnwindSafe(factory)).unwrap_or_else(|payload| {
            Err(format!("panicked: {}", panic_message(payload.as_ref())))
        });
        match built {
            Ok(executor) => Ok(Selection {
                executor,
                selected: Some(name.to_owned()),
                warnings: Vec::new(),
                fallback: None,
            }),
            Err(reason) => Err(format!(
                "executor `{name}` could not be constructed ({reason})"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::testutil::NamedExecutor;

    /// What a test factory does when called.
    #[derive(Clone, Copy)]
    enum Build {
        Ok,
        Fails(&'static str),
        Panics(&'static str),
    }

    /// What a selection gave, and which factories it called.
    #[derive(Debug)]
    struct Outcome {
        executor: String,
        selected: Option<String>,
        warnings: Vec<String>,
        called: Vec<String>,
    }

    /// Registers `entries` in order, selects under `filter` with a fallback
    /// named `fallback`, and checks that [`ExecutorRegistry::candidate`]
    /// named the one factory that was called.
    #[track_caller]
    fn select(entries: &[(&str, Build)], filter: &NameFilter) -> Outcome {
        let called = Arc::new(Mutex::new(Vec::new()));
        let mut registry = ExecutorRegistry::new();
        for &(name, build) in entries {
            let called = called.clone();
            let name = name.to_owned();
            registry.register(
                name.clone(),
                Box::new(move || {
                    called.lock().unwrap().push(name.clone());
                    match build {
                        Build::Ok => Ok(Arc::new(NamedExecutor(name)) as Arc<dyn Executor>),
                        Build::Fails(reason) => Err(reason.to_owned()),
                        Build::Panics(message) => panic!("{message}"),
                    }
                }),
            );
        }
        let candidate = registry.candidate(filter).map(str::to_owned);
        let selection = registry.select(filter, || Arc::new(NamedExecutor("fallback".to_owned())));
        let called = called.lock().unwrap().clone();
        assert_eq!(
            called,
            Vec::from_iter(candidate),
            "candidate() names what select() builds"
        );
        Outcome {
            executor: selection.executor.name().to_owned(),
            selected: selection.selected,
            warnings: selection.warnings,
            called,
        }
    }

    /// Registers working factories named `names` and returns the selected
    /// name under the allow and deny lists, or `None` for the fallback.
    #[track_caller]
    fn selected(names: &[&str], allow: Option<&str>, deny: Option<&str>) -> Option<String> {
        let entries: Vec<(&str, Build)> = names.iter().map(|&name| (name, Build::Ok)).collect();
        let outcome = select(&entries, &NameFilter::from_lists(allow, deny));
        let expected_executor = outcome.selected.as_deref().unwrap_or("fallback");
        assert_eq!(outcome.executor, expected_executor);
        outcome.selected
    }

    fn all() -> NameFilter {
        NameFilter::default()
    }

    #[test]
    fn the_first_name_alphabetically_is_built_and_the_others_never() {
        let outcome = select(
            &[
                ("zeta", Build::Ok),
                ("alpha", Build::Ok),
                ("mid", Build::Ok),
            ],
            &all(),
        );
        assert_eq!(outcome.executor, "alpha");
        assert_eq!(outcome.selected.as_deref(), Some("alpha"));
        assert_eq!(outcome.called, ["alpha"]);
        assert_eq!(outcome.warnings.len(), 1, "{:?}", outcome.warnings);
        let warning = &outcome.warnings[0];
        assert!(
            warning.contains("`alpha`") && warning.contains("mid") && warning.contains("zeta"),
            "{warning}"
        );
    }

    #[test]
    fn a_single_name_is_built_without_warning() {
        let outcome = select(&[("only", Build::Ok)], &all());
        assert_eq!(outcome.selected.as_deref(), Some("only"));
        assert_eq!(outcome.warnings, Vec::<String>::new());
    }

    #[test]
    fn a_failing_factory_falls_back_without_trying_the_next_name() {
        let outcome = select(
            &[("beta", Build::Ok), ("alpha", Build::Fails("bad option"))],
            &all(),
        );
        assert_eq!(outcome.executor, "fallback");
        assert_eq!(outcome.selected, None);
        assert_eq!(outcome.called, ["alpha"]);
        let last = outcome
            .warnings
            .last()
            .expect("a warning about the failure");
        assert!(
            last.contains("`alpha`") && last.contains("bad option"),
            "{last}"
        );
    }

    #[test]
    fn a_panicking_factory_falls_back_like_a_failing_one() {
        let outcome = select(
            &[
                ("alpha", Build::Panics("factory exploded")),
                ("beta", Build::Ok),
            ],
            &all(),
        );
        assert_eq!(outcome.executor, "fallback");
        assert_eq!(outcome.selected, None);
        assert_eq!(outcome.called, ["alpha"]);
        let last = outcome.warnings.last().expect("a warning about the panic");
        assert!(
            last.contains("`alpha`") && last.contains("factory exploded"),
            "{last}"
        );
    }

    #[test]
    fn an_empty_registry_falls_back_without_warning() {
        let outcome = select(&[], &all());
        assert_eq!(outcome.executor, "fallback");
        assert_eq!(outcome.selected, None);
        assert_eq!(outcome.warnings, Vec::<String>::new());
    }

    #[test]
    fn allow_list_keeps_only_the_listed_names() {
        let names = ["alpha", "beta", "gamma"];
        assert_eq!(
            selected(&names, Some("gamma"), None).as_deref(),
            Some("gamma")
        );
        assert_eq!(
            selected(&names, Some(" GAMMA , ,Beta,"), None).as_deref(),
            Some("beta")
        );
        assert_eq!(selected(&names, Some("delta"), None), None);
        // A blank allow list allows every name.
        assert_eq!(
            selected(&names, Some(" , "), None).as_deref(),
            Some("alpha")
        );
    }

    #[test]
    fn deny_list_wins_over_the_allow_list() {
        let names = ["alpha", "beta", "gamma"];
        assert_eq!(
            selected(&names, None, Some(" Alpha ")).as_deref(),
            Some("beta")
        );
        assert_eq!(
            selected(&names, Some("alpha,beta"), Some("ALPHA")).as_deref(),
            Some("beta")
        );
        assert_eq!(selected(&names, Some("alpha"), Some("alpha")), None);
    }

    #[test]
    fn denying_every_name_falls_back_without_warning() {
        let filter = NameFilter::from_lists(None, Some("alpha, beta"));
        let outcome = select(&[("alpha", Build::Ok), ("beta", Build::Ok)], &filter);
        assert_eq!(outcome.executor, "fallback");
        assert_eq!(outcome.selected, None);
        assert_eq!(outcome.called, Vec::<String>::new());
        assert_eq!(outcome.warnings, Vec::<String>::new());
    }

    #[test]
    fn only_permitted_names_are_named_in_the_warning() {
        let filter = NameFilter::from_lists(Some("beta,gamma"), None);
        let entries = [
            ("alpha", Build::Ok),
            ("beta", Build::Ok),
            ("gamma", Build::Ok),
        ];
        let outcome = select(&entries, &filter);
        assert_eq!(outcome.selected.as_deref(), Some("beta"));
        assert_eq!(outcome.warnings.len(), 1, "{:?}", outcome.warnings);
        assert!(outcome.warnings[0].contains("gamma") && !outcome.warnings[0].contains("alpha"));
    }

    #[test]
    fn filter_permits_names_case_insensitively() {
        let filter = NameFilter::from_lists(Some(" Fast ,slow"), Some("SLOW"));
        let permitted: Vec<bool> = ["fast", "FAST", "slow", "other"]
            .iter()
            .map(|name| filter.permits(name))
            .collect();
        assert_eq!(permitted, [true, true, false, false]);
        assert_eq!(NameFilter::from_lists(None, None), NameFilter::default());
    }

    #[test]
    fn registering_a_name_again_replaces_its_factory() {
        let mut registry = ExecutorRegistry::new();
        registry.register("same", Box::new(|| Err("first".to_owned())));
        registry.register(
            "same",
            Box::new(|| Ok(Arc::new(NamedExecutor("second".to_owned())) as Arc<dyn Executor>)),
        );
        assert_eq!(registry.names().collect::<Vec<_>>(), ["same"]);
        let selection = registry.select(&NameFilter::default(), || {
            Arc::new(NamedExecutor("fallback".to_owned()))
        });
        assert_eq!(selection.executor.name(), "second");
    }
}
