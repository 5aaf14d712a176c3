//! marimo's Python notebooks, read and analysed in pure Rust.
//!
//! [`parse_notebook`] splits a marimo notebook file into [`PyCellSource`]s
//! (the setup cell, `@app.cell` functions, `@app.function`s,
//! `@app.class_definition`s and unparsable cells), and [`analyze`] finds what
//! one cell's code defines and reads, with the scoping rules marimo applies.
//! Both use ruff's Python parser; nothing here needs a Python interpreter, so
//! checking and graphing a notebook works on a machine without Python.
//!
//! ```
//! let notebook = python_notebook::parse_notebook(
//!     "import marimo\napp = marimo.App()\n\n@app.cell\ndef _():\n    x = 1\n    return (x,)\n",
//! )?;
//! let cell = &notebook.cells[0];
//! assert_eq!((cell.name.as_str(), cell.code.as_str(), cell.first_line), ("cell-1", "x = 1\n", 6));
//! let analysis = python_notebook::analyze(&cell.code).expect("valid Python");
//! assert_eq!(analysis.defs, ["x"]);
//! # Ok::<(), python_notebook::FormatError>(())
//! ```

#![warn(missing_docs)]

mod analysis;
mod deep;
mod format;
mod symtable;

pub use crate::analysis::{
    analyze, intended_defs, is_builtin, is_private, split_output, Analysis, OutputSplit,
    SyntaxError,
};
pub use crate::format::{
    parse_cells_in, parse_notebook, CellKind, FormatError, PyCellSource, PyNotebook,
};
