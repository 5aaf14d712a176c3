//! Built-in lifecycles of cellrun.
//!
//! - [`StrictLifecycle`] (`strict`): a cell sees only the globals it reads,
//!   as private deep copies, and its definitions are exactly what its latest
//!   run produced.
//! - [`CachedLifecycle`] (`cache`): a cell whose code, functions and inputs
//!   did not change reuses its stored result instead of running. The
//!   directory can be inspected with [`cache_info`] and emptied with
//!   [`cache_clear`].
//!
//! The evaluator runs them before any plugin lifecycle, strict first, so the
//! cache keys and stores the values strict execution isolates.
//!
//! # Example
//! ```
//! use std::sync::Arc;
//! use executor_core::{CancelToken, CellSource, DefaultExecutor, Evaluator, Globals, Limits, Notebook};
//! use lifecycles::StrictLifecycle;
//!
//! let limits = Limits::default();
//! let source = |name: &str, code: &str| CellSource::new(name, code, 1);
//! let notebook = Notebook::compile(
//!     vec![source("a", "let xs = [1, 2, 3];"), source("b", "xs.push(4); xs.len()"), source("c", "xs.len()")],
//!     &limits,
//! );
//! let strict = Arc::new(StrictLifecycle::new(&notebook));
//! let evaluator = Evaluator::new(Arc::new(DefaultExecutor::new(&limits)), vec![strict]);
//! let mut globals = Globals::new();
//! let lengths: Vec<_> = notebook
//!     .cells()
//!     .iter()
//!     .map(|cell| evaluator.evaluate(cell, &mut globals, &CancelToken::new()).output.as_int())
//!     .collect();
//! assert_eq!(lengths[1..], [Ok(4), Ok(3)], "b pushed onto its own copy of `xs`");
//! ```

#![warn(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

mod cache;
mod strict;
#[cfg(test)]
mod testutil;
mod value;
mod visible;

pub use crate::{
    cache::{cache_clear, cache_info, CacheError, CacheInfo, CachedLifecycle},
    strict::StrictLifecycle,
};
