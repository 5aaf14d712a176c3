//! The notebook file format: Rhai in percent format.
//!
//! A line whose trimmed text starts with `// %%` starts a cell; the rest of
//! that line, trimmed, is the cell's name, except a trailing `[...]` group:
//! the cell's options, `key=value` words, of which a first word `NAME:`
//! prefixes the keys (`// %% train [slurm: cpus=2]` gives the option
//! `slurm.cpus=2`, named as `--plugin-opt slurm.cpus=2` would name it).
//! Non-blank text before the first
//! marker is a cell too. An unnamed cell is named `cell-N`, N being its
//! 1-based position. Markers are Rhai comments, so the whole file stays a
//! valid Rhai script.
//!
//! Lines end with `\n`, `\r\n` or a lone `\r` (old Mac files): all three
//! count as line breaks, in the splitter and in every line number reported.
//! The splitter does not lex Rhai: a marker line inside a multi-line
//! (backtick) string still starts a cell, so such a string cannot contain
//! one; the cut string then fails as a syntax error of its cell.

use executor_core::CellSource;

/// The marker that starts a cell.
pub(crate) const MARKER: &str = "// %%";

/// A notebook file that cannot be split into cells.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum FormatError {
    /// Two cells have the same name.
    #[error("two cells are named `{name}`: at line {first_line} and at line {second_line}{note}")]
    DuplicateName {
        name: String,
        first_line: u32,
        second_line: u32,
        /// Says which of them got the name by position, if one did.
        note: String,
    },
    /// A marker's option group has a word that is not `key=value`.
    #[error("line {line}: {message}")]
    BadOption { line: u32, message: String },
}

/// The lines of `text`, each without its line break: `\n`, `\r\n` and a
/// lone `\r` all end a line.
pub(crate) fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.find(['\n', '\r']) {
            Some(end) => {
                let skip = if current[end..].starts_with("\r\n") {
                    2
                } else {
                    1
                };
                rest = Some(&current[end + skip..]).filter(|next| !next.is_empty());
                Some(&current[..end])
            }
            None => {
                rest = None;
                (!current.is_empty()).then_some(current)
            }
        }
    })
}

/// Splits a notebook's text into cell sources, in file order.
///
/// A leading byte-order mark, as some editors write, is ignored.
pub(crate) fn split(text: &str) -> Result<Vec<CellSource>, FormatError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    struct Pending {
        name: Option<String>,
        options: Vec<(String, String)>,
        marker_line: u32,
        first_line: u32,
        code: String,
    }
    let mut pending = Pending {
        name: None,
        options: Vec::new(),
        marker_line: 0,
        first_line: 1,
        code: String::new(),
    };
    let mut cells: Vec<(Option<String>, u32, CellSource)> = Vec::new();
    let close = |pending: Pending, cells: &mut Vec<(Option<String>, u32, CellSource)>| {
        let is_preamble = pending.marker_line == 0;
        if is_preamble && pending.code.trim().is_empty() {
            return;
        }
        let source = CellSource {
            name: String::new(),
            code: pending.code,
            first_line: pending.first_line,
            options: pending.options,
        };
        let line = if is_preamble {
            pending.first_line
        } else {
            pending.marker_line
        };
        cells.push((pending.name, line, source));
    };
    for (index, line) in lines(text).enumerate() {
        let line_number = index as u32 + 1;
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix(MARKER) {
            let (name, options) = marker_parts(rest).map_err(|message| FormatError::BadOption {
                line: line_number,
                message,
            })?;
            let next = Pending {
                name: (!name.is_empty()).then(|| name.to_owned()),
                options,
                marker_line: line_number,
                first_line: line_number + 1,
                code: String::new(),
            };
            close(std::mem::replace(&mut pending, next), &mut cells);
        } else {
            pending.code.push_str(line);
            pending.code.push('\n');
        }
    }
    close(pending, &mut cells);

    let mut seen: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    let mut sources = Vec::with_capacity(cells.len());
    let mut generated_at = std::collections::HashSet::new();
    for (position, (name, line, mut source)) in cells.into_iter().enumerate() {
        let name = name.unwrap_or_else(|| {
            generated_at.insert(line);
            format!("cell-{}", position + 1)
        });
        if let Some(first_line) = seen.insert(name.clone(), line) {
            let note = [first_line, line]
                .iter()
                .find(|at| generated_at.contains(*at))
                .map(|at| {
                    format!(" (the cell at line {at} has no name and is called by its position)")
                })
                .unwrap_or_default();
            return Err(FormatError::DuplicateName {
                name,
                first_line,
                second_line: line,
                note,
            });
        }
        source.name = name;
        sources.push(source);
    }
    Ok(sources)
}

/// A cell's options, as `key=value` pairs in the order written.
type CellOptions = Vec<(String, String)>;

/// Splits the text after a marker into the cell's name and its options.
///
/// Options are a trailing `[...]` group of `key=value` words; a first word
/// `NAMESPACE:` prefixes the keys after it, so `[slurm: cpus=2]` gives
/// `slurm.cpus=2`, as `--plugin-opt slurm.cpus=2` would name it.
fn marker_parts(text: &str) -> Result<(&str, CellOptions), String> {
    let text = text.trim();
    let Some(open) = text.strip_suffix(']').and_then(|inner| inner.rfind('[')) else {
        return Ok((text, Vec::new()));
    };
    let name = text[..open].trim_end();
    let mut words = text[open + 1..text.len() - 1].split_whitespace().peekable();
    let namespace = words
        .peek()
        .and_then(|word| word.strip_suffix(':'))
        .map(str::to_owned);
    if namespace.is_some() {
        words.next();
    }
    let mut options = Vec::new();
    for word in words {
        let (key, value) = word
            .split_once('=')
            .filter(|(key, _)| !key.is_empty())
            .ok_or_else(|| format!("cell option `{word}` is not of the form key=value"))?;
        let key = match &namespace {
            Some(namespace) => format!("{namespace}.{key}"),
            None => key.to_owned(),
        };
        options.push((key, value.to_owned()));
    }
    Ok((name, options))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_and_lines(text: &str) -> Vec<(String, u32, String)> {
        split(text)
            .unwrap()
            .into_iter()
            .map(|cell| (cell.name, cell.first_line, cell.code))
            .collect()
    }

    #[test]
    fn markers_start_named_and_unnamed_cells() {
        let cells = names_and_lines("let a = 1;\n// %% second\nlet b = a;\n  // %%\nb\n");
        assert_eq!(
            cells,
            [
                ("cell-1".to_owned(), 1, "let a = 1;\n".to_owned()),
                ("second".to_owned(), 3, "let b = a;\n".to_owned()),
                ("cell-3".to_owned(), 5, "b\n".to_owned()),
            ]
        );
    }

    #[test]
    fn a_byte_order_mark_does_not_hide_the_first_marker() {
        let cells = names_and_lines("\u{feff}// %% a\nlet x = 1;\n");
        assert_eq!(cells, [("a".to_owned(), 2, "let x = 1;\n".to_owned())]);
    }

    // See: issue 12, point 13.
    #[test]
    fn issue_12_every_line_ending_breaks_lines() {
        let text = "// %% a\rlet x = 1;\r// %% b\r\nlet y = x;\n\r// %% c\rx +\r";
        let cells = names_and_lines(text);
        assert_eq!(
            cells,
            [
                ("a".to_owned(), 2, "let x = 1;\n".to_owned()),
                ("b".to_owned(), 4, "let y = x;\n\n".to_owned()),
                ("c".to_owned(), 7, "x +\n".to_owned()),
            ]
        );
        let split_lines: Vec<&str> = lines("a\r\rb\r\nc\n").collect();
        assert_eq!(split_lines, ["a", "", "b", "c"]);
        assert_eq!(lines("").count(), 0);
        assert_eq!(lines("\n").collect::<Vec<_>>(), [""]);
    }

    #[test]
    fn a_trailing_bracket_group_on_a_marker_gives_the_cells_options() {
        let cells =
            split("// %% train [slurm: cpus=2 mem=1G]\n1\n// %% plain\n2\n// %% [x=1]\n3\n")
                .unwrap();
        let got: Vec<(&str, &[(String, String)])> = cells
            .iter()
            .map(|cell| (cell.name.as_str(), cell.options.as_slice()))
            .collect();
        let pair = |key: &str, value: &str| (key.to_owned(), value.to_owned());
        assert_eq!(
            got,
            [
                (
                    "train",
                    &[pair("slurm.cpus", "2"), pair("slurm.mem", "1G")][..]
                ),
                ("plain", &[][..]),
                ("cell-3", &[pair("x", "1")][..]),
            ]
        );
        assert_eq!(
            split("// %% a\n1\n// %% b [slurm: cpus 2]\n2\n")
                .unwrap_err()
                .to_string(),
            "line 3: cell option `cpus` is not of the form key=value"
        );
        // Brackets inside a name, not at its end, stay part of it.
        assert_eq!(split("// %% a [1] b\n1\n").unwrap()[0].name, "a [1] b");
    }

    #[test]
    fn blank_preamble_is_not_a_cell() {
        let cells = names_and_lines("\n   \n// %% only\n42\n");
        assert_eq!(cells, [("only".to_owned(), 4, "42\n".to_owned())]);
    }

    #[test]
    fn duplicate_names_name_both_lines() {
        let error = split("// %% a\n1\n// %% b\n2\n// %% a\n3\n").unwrap_err();
        assert_eq!(
            error,
            FormatError::DuplicateName {
                name: "a".into(),
                first_line: 1,
                second_line: 5,
                note: String::new(),
            }
        );
        assert_eq!(
            error.to_string(),
            "two cells are named `a`: at line 1 and at line 5"
        );
    }

    #[test]
    fn generated_name_can_collide_with_an_explicit_one() {
        let error = split("// %%\n1\n// %% cell-1\n2\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "two cells are named `cell-1`: at line 1 and at line 3 \
             (the cell at line 1 has no name and is called by its position)"
        );
    }

    /// Pieces notebook text is made of: markers (named, unnamed, with
    /// options, indented), code, strings, and every kind of line break.
    fn piece() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            Just("// %% a".to_owned()),
            Just("// %%".to_owned()),
            Just("  // %% b [slurm: cpus=2]".to_owned()),
            Just("// %% c [x".to_owned()),
            Just("let x = 1;".to_owned()),
            Just("`multi".to_owned()),
            Just("\u{feff}".to_owned()),
            Just("\n".to_owned()),
            Just("\r".to_owned()),
            Just("\r\n".to_owned()),
            "[ -~é\t]{0,12}",
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        // See: issue 12 (fuzzing the splitter): it never panics, and every
        // line it keeps is the file's line of that number.
        #[test]
        fn issue_12_split_keeps_every_code_line_where_it_was(
            pieces in proptest::collection::vec(piece(), 0..40)
        ) {
            let text: String = pieces.concat();
            if let Ok(cells) = split(&text) {
                let body = text.strip_prefix('\u{feff}').unwrap_or(&text);
                let file: Vec<&str> = lines(body).collect();
                let mut names = std::collections::HashSet::new();
                let mut previous = 0;
                for cell in &cells {
                    proptest::prop_assert!(names.insert(cell.name.clone()), "unique names");
                    proptest::prop_assert!(cell.first_line > previous, "cells in file order");
                    previous = cell.first_line;
                    for (offset, code_line) in cell.code.lines().enumerate() {
                        let at = cell.first_line as usize - 1 + offset;
                        proptest::prop_assert_eq!(Some(&code_line), file.get(at));
                        proptest::prop_assert!(!code_line.contains(['\r', '\n']));
                    }
                }
            }
        }
    }
}
