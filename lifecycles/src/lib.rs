//! Built-in lifecycles of cellrun.
//!
//! The evaluator composes these before any plugin lifecycle. None ships yet:
//! strict execution and the persistent cell cache land here.
