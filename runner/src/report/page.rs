//! The report page: header, warnings, graph, timeline and every cell.

use std::fmt::Write as _;

use super::escape::{escape, push_text, truncate};
use super::events::{CellEntry, Run};
use super::graph::{self, Node, GRAPH_LIMIT};
use super::highlight::{push_code, Language};
use super::rich::{push_display, push_note, push_output, push_pre, TEXT_LIMIT};
use super::timeline::{push_timeline, Span};

/// What the page allows: inline styles and `data:` images, nothing else.
/// Frames of HTML outputs (`srcdoc`) inherit it, so they load nothing either.
const POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-src 'self'";

const STYLE: &str = include_str!("report.css");

/// A status as the page shows it: CSS class, symbol, label.
struct Look {
    class: &'static str,
    symbol: &'static str,
    label: &'static str,
}

fn look(cell: &CellEntry) -> Look {
    let (class, symbol, label) = match cell.result.as_ref().map(|result| result.status.as_str()) {
        Some("ok") => ("ok", "✓", "ok"),
        Some("error") => ("error", "✗", "error"),
        Some("cancelled") => ("cancelled", "○", "cancelled"),
        Some("interrupted") => ("interrupted", "■", "interrupted"),
        Some(_) => ("other", "?", "unknown status"),
        None => ("not-run", "–", "not run"),
    };
    Look {
        class,
        symbol,
        label,
    }
}

/// The whole page of `run`.
pub(crate) fn render(run: &Run) -> String {
    let mut out = String::with_capacity(4096 + run.cells.len() * 1024);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    let _ = writeln!(
        out,
        "<meta http-equiv=\"Content-Security-Policy\" content=\"{POLICY}\">"
    );
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(
        out,
        "<title>cellrun report: {}</title>",
        escape(&run.notebook)
    );
    out.push_str("<style>\n");
    out.push_str(STYLE);
    out.push_str("</style></head>\n<body>\n");
    push_header(&mut out, run);
    push_warnings(&mut out, run);
    push_graph(&mut out, run);
    push_timeline_section(&mut out, run);
    out.push_str("<main id=\"cells\">\n<h2>Cells</h2>\n");
    let language = Language::named(&run.language);
    for (index, cell) in run.cells.iter().enumerate() {
        push_cell(&mut out, run, index, cell, language);
    }
    out.push_str("</main>\n</body></html>\n");
    out
}

fn push_header(out: &mut String, run: &Run) {
    out.push_str("<header id=\"run\">\n<h1>");
    push_text(out, &run.notebook);
    out.push_str("</h1>\n<dl>\n");
    let mut row = |term: &str, html: &str| {
        let _ = writeln!(out, "<dt>{term}</dt><dd>{html}</dd>");
    };
    row("Notebook", &escape(&run.notebook));
    row(
        "Date",
        &run.started_at
            .as_deref()
            .map_or_else(|| "unknown".to_owned(), escape),
    );
    row("Executor", &escape(&run.executor));
    let lifecycles = if run.lifecycles.is_empty() {
        "none".to_owned()
    } else {
        escape(&run.lifecycles.join(", "))
    };
    row("Lifecycles", &lifecycles);
    row("Jobs", &run.jobs.unwrap_or(1).to_string());
    row("Cells", &tally(run));
    row(
        "Total time",
        &total_time(run).map_or_else(|| "unknown".to_owned(), super::duration),
    );
    out.push_str("</dl>\n");
    if let Some(aborted) = run
        .finished
        .as_ref()
        .and_then(|tally| tally.aborted.as_ref())
    {
        let during = aborted
            .cell
            .as_deref()
            .map(|cell| format!(" while {cell} ran"))
            .unwrap_or_default();
        push_note(
            out,
            &format!("The run was aborted ({}){during}.", aborted.reason),
        );
    }
    if run.finished.is_none() {
        push_note(
            out,
            "The run did not finish: the events stop before run_finished, so cells without a result are shown as not run.",
        );
    }
    out.push_str("<nav><a href=\"#graph\">Graph</a> <a href=\"#timeline\">Timeline</a> <a href=\"#cells\">Cells</a></nav>\n</header>\n");
}

/// "3 cells: ✓ 1 ok, ✗ 1 error, ○ 1 cancelled", from `run_finished` when
/// the run finished, else counted from the cells.
fn tally(run: &Run) -> String {
    let count = |class: &str| {
        run.cells
            .iter()
            .filter(|cell| look(cell).class == class)
            .count()
    };
    let (ok, error, cancelled, interrupted) = match &run.finished {
        Some(tally) => (tally.ok, tally.error, tally.cancelled, tally.interrupted),
        None => (
            count("ok"),
            count("error"),
            count("cancelled"),
            count("interrupted"),
        ),
    };
    let mut parts = vec![format!("<span class=\"st-ok\">✓ {ok} ok</span>")];
    for (number, class, symbol) in [
        (error, "error", "✗"),
        (cancelled, "cancelled", "○"),
        (interrupted, "interrupted", "■"),
    ] {
        if number > 0 {
            parts.push(format!(
                "<span class=\"st-{class}\">{symbol} {number} {class}</span>"
            ));
        }
    }
    let not_run = count("not-run");
    if not_run > 0 {
        parts.push(format!(
            "<span class=\"st-not-run\">– {not_run} not run</span>"
        ));
    }
    let total = run.cells.len();
    format!(
        "{total} cell{}: {}",
        if total == 1 { "" } else { "s" },
        parts.join(", ")
    )
}

/// The run's wall time: from `run_finished`, else the last `at_ms`.
fn total_time(run: &Run) -> Option<f64> {
    run.finished
        .as_ref()
        .and_then(|tally| tally.duration_ms)
        .or_else(|| {
            run.cells
                .iter()
                .filter_map(|cell| cell.result.as_ref()?.at_ms)
                .reduce(f64::max)
        })
}

fn push_warnings(out: &mut String, run: &Run) {
    if run.warnings.is_empty() {
        return;
    }
    out.push_str("<section id=\"warnings\">\n<h2>Warnings</h2>\n<ul>\n");
    for warning in &run.warnings {
        out.push_str("<li>");
        let (shown, cut) = truncate(warning, TEXT_LIMIT);
        push_text(out, shown);
        if cut {
            out.push('…');
        }
        out.push_str("</li>\n");
    }
    out.push_str("</ul>\n</section>\n");
}

fn push_graph(out: &mut String, run: &Run) {
    out.push_str("<section id=\"graph\">\n<h2>Dependency graph</h2>\n");
    if !run.has_sources {
        push_note(
            out,
            "The events have no notebook_cells (an older cellrun wrote them), so the graph is not known.",
        );
    } else if run.cells.len() > GRAPH_LIMIT {
        push_note(
            out,
            &format!(
                "The graph of {} cells is too large to draw here (the limit is {GRAPH_LIMIT}); `cellrun graph {}` prints it.",
                run.cells.len(),
                run.notebook
            ),
        );
    } else {
        let nodes: Vec<Node<'_>> = run
            .cells
            .iter()
            .map(|cell| {
                let look = look(cell);
                Node {
                    name: &cell.name,
                    parents: &cell.parents,
                    status: look.class,
                    label: look.label,
                    symbol: look.symbol,
                }
            })
            .collect();
        out.push_str("<div class=\"scroll\">");
        graph::push_svg(out, &nodes);
        out.push_str("</div>\n");
    }
    out.push_str("</section>\n");
}

fn push_timeline_section(out: &mut String, run: &Run) {
    out.push_str("<section id=\"timeline\">\n<h2>Timeline</h2>\n");
    let spans: Vec<Span<'_>> = run
        .cells
        .iter()
        .enumerate()
        .filter_map(|(index, cell)| {
            let result = cell.result.as_ref()?;
            let at_ms = result.at_ms?;
            // A cancelled cell never ran: it has no bar.
            let ran = cell.started_ms.is_some() || result.cached || result.duration_ms > 0.0;
            if !ran {
                return None;
            }
            Some(Span {
                cell: index,
                name: &cell.name,
                start_ms: (at_ms - result.duration_ms).max(0.0),
                duration_ms: result.duration_ms,
                status: look(cell).class,
                cached: result.cached,
            })
        })
        .collect();
    if spans.is_empty() {
        push_note(
            out,
            "No cell has timing fields (at_ms), so there is no timeline.",
        );
    } else {
        push_timeline(out, &spans, total_time(run).unwrap_or(0.0));
    }
    out.push_str("</section>\n");
}

/// A link to cell `index` named `name`.
fn link(index: usize, name: &str) -> String {
    format!("<a href=\"#cell-{index}\">{}</a>", escape(name))
}

fn push_cell(out: &mut String, run: &Run, index: usize, cell: &CellEntry, language: Language) {
    let look = look(cell);
    let _ = write!(
        out,
        "<article class=\"cell st-{}\" id=\"cell-{index}\" data-name=\"{}\" data-status=\"{}\">\n<h3><span class=\"mark\" title=\"{}\">{}</span> <a class=\"name\" href=\"#cell-{index}\">{}</a> <span class=\"status\">{}</span>",
        look.class,
        escape(&cell.name),
        look.class,
        look.label,
        look.symbol,
        escape(&cell.name),
        look.label,
    );
    let mut meta = Vec::new();
    if let Some(line) = cell.line {
        meta.push(format!("line {line}"));
    }
    if let Some(result) = &cell.result {
        if result.cached {
            meta.push("<span class=\"cached\">cached</span>".to_owned());
        }
        if result.duration_ms > 0.0 || cell.started_ms.is_some() {
            meta.push(super::duration(result.duration_ms));
        }
        if let Some(at_ms) = result.at_ms.filter(|_| result.duration_ms > 0.0) {
            meta.push(format!(
                "started at {}",
                super::duration((at_ms - result.duration_ms).max(0.0))
            ));
        }
    }
    if !meta.is_empty() {
        let _ = write!(out, " <span class=\"meta\">{}</span>", meta.join(" · "));
    }
    out.push_str("</h3>\n");
    if !cell.parents.is_empty() {
        let parents: Vec<String> = cell
            .parents
            .iter()
            .filter_map(|&parent| Some(link(parent, &run.cells.get(parent)?.name)))
            .collect();
        let _ = writeln!(
            out,
            "<p class=\"parents\">Reads from {}</p>",
            parents.join(", ")
        );
    }
    if let Some(code) = &cell.code {
        // The blank lines before the next cell's marker are not the cell's.
        let (shown, cut) = truncate(code.trim_end(), TEXT_LIMIT);
        let _ = write!(
            out,
            "<pre class=\"code\" style=\"counter-reset:line {}\"><code>",
            cell.line.unwrap_or(1).saturating_sub(1)
        );
        push_code(out, shown, language);
        out.push_str("</code></pre>\n");
        if cut {
            push_note(
                out,
                "Truncated: the cell's code is longer than the report shows.",
            );
        }
    }
    let Some(result) = &cell.result else {
        out.push_str("</article>\n");
        return;
    };
    if let Some(error) = &result.error {
        out.push_str("<div class=\"error\"><p><strong>");
        push_text(out, &error.kind);
        out.push_str("</strong>: ");
        let (shown, cut) = truncate(&error.message, TEXT_LIMIT);
        push_text(out, shown);
        if cut {
            out.push('…');
        }
        out.push_str("</p>");
        if let Some(blamed) = &error.blamed {
            let target = match run.find(blamed) {
                Some(position) => link(position, blamed),
                None => format!("<code>{}</code>", escape(blamed)),
            };
            if error.kind == "cancelled" {
                let _ = write!(out, "<p class=\"blame\">Cancelled because of {target}.</p>");
            } else {
                let _ = write!(out, "<p class=\"blame\">Blames {target}.</p>");
            }
        }
        if let Some(line) = error.line {
            push_excerpt(out, run, line);
        }
        out.push_str("</div>\n");
    }
    if !result.stdout.is_empty() {
        out.push_str("<section class=\"stdout\"><h4>Printed</h4>");
        push_pre(out, "printed", &result.stdout);
        out.push_str("</section>\n");
    }
    if let Some(display) = &result.display {
        out.push_str("<section class=\"display\"><h4>Display</h4>");
        push_display(out, display);
        out.push_str("</section>\n");
    }
    // A display is the rich form of the output: the JSON form would repeat it.
    if result.display.is_none() && !result.output.is_null() {
        out.push_str("<section class=\"output\"><h4>Output</h4>");
        push_output(out, &result.output);
        if result.output_truncated {
            push_note(
                out,
                "Truncated: the value was larger than the events carry.",
            );
        }
        out.push_str("</section>\n");
    }
    out.push_str("</article>\n");
}

/// The notebook line `line` with a line of context each side, from the
/// cell whose code holds it, and a link to that cell.
fn push_excerpt(out: &mut String, run: &Run, line: u32) {
    let _ = write!(out, "<p class=\"at\">at {}:{line}", escape(&run.notebook));
    let holder = run.cells.iter().enumerate().find_map(|(index, cell)| {
        let first = cell.line?;
        let code = cell.code.as_deref()?;
        let offset = line.checked_sub(first)? as usize;
        let lines: Vec<&str> = code.lines().collect();
        (offset < lines.len()).then_some((index, cell, lines, offset))
    });
    let Some((index, cell, lines, offset)) = holder else {
        out.push_str("</p>");
        return;
    };
    let _ = write!(
        out,
        ", in {}</p><pre class=\"excerpt\">",
        link(index, &cell.name)
    );
    let first = offset.saturating_sub(1);
    let last = (offset + 1).min(lines.len() - 1);
    for (position, text) in lines.iter().enumerate().take(last + 1).skip(first) {
        let number = line as usize + position - offset;
        let class = if position == offset { " hit" } else { "" };
        let _ = write!(
            out,
            "<span class=\"x{class}\"><span class=\"ln\">{number}</span> "
        );
        push_text(out, truncate(text, 1000).0);
        out.push_str("</span>\n");
    }
    out.push_str("</pre>");
}
