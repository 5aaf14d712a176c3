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
            },
            Err(reason) => {
                warnings.push(format!(
                    "executor `{name}` could not be constructed ({reason}); using the built-in `default` executor"
                ));
                Selection {
                    executor: fallback(),
                    selected: None,
                    warnings,
                }
            }
        }
    }
}
