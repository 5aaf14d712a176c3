//! The timeline: a bar per cell from its start to its end, on as many
//! lanes as cells ran at once, so a parallel run shows its overlap.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;

use super::escape::push_text;

/// Cells that end and start closer than this (in ms) do not overlap: the
/// times are rounded to the microsecond.
const TOUCH_MS: f64 = 0.002;

/// One cell's bar.
pub(crate) struct Span<'a> {
    /// The cell's index, for its `#cell-N` link.
    pub(crate) cell: usize,
    pub(crate) name: &'a str,
    pub(crate) start_ms: f64,
    pub(crate) duration_ms: f64,
    pub(crate) status: &'static str,
    pub(crate) cached: bool,
}

/// The lane of each span (in the order given): a span goes on the lane
/// that became free first, or on a new lane when every lane is busy.
pub(crate) fn lanes(spans: &[Span<'_>]) -> (Vec<usize>, usize) {
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by(|&a, &b| {
        spans[a]
            .start_ms
            .total_cmp(&spans[b].start_ms)
            .then(spans[a].cell.cmp(&spans[b].cell))
    });
    // Min-heap of (end in µs, lane).
    let mut busy: BinaryHeap<Reverse<(i64, usize)>> = BinaryHeap::new();
    let mut lane_of = vec![0; spans.len()];
    let mut count = 0;
    for index in order {
        let span = &spans[index];
        let start = micros(span.start_ms + TOUCH_MS);
        let lane = match busy.peek() {
            Some(&Reverse((end, lane))) if end <= start => {
                busy.pop();
                lane
            }
            _ => {
                count += 1;
                count - 1
            }
        };
        lane_of[index] = lane;
        busy.push(Reverse((micros(span.start_ms + span.duration_ms), lane)));
    }
    (lane_of, count)
}

fn micros(ms: f64) -> i64 {
    (ms * 1e3).round() as i64
}

/// Appends the timeline of `spans` over `total_ms`.
pub(crate) fn push_timeline(out: &mut String, spans: &[Span<'_>], total_ms: f64) {
    let (lane_of, count) = lanes(spans);
    let total = spans
        .iter()
        .map(|span| span.start_ms + span.duration_ms)
        .fold(total_ms, f64::max)
        .max(1e-3);
    let _ = write!(
        out,
        "<div class=\"timeline\" data-lanes=\"{count}\"><div class=\"axis\">"
    );
    for quarter in 0..=4 {
        let _ = write!(
            out,
            "<span style=\"left:{}%\">{}</span>",
            quarter * 25,
            super::duration(total * f64::from(quarter) / 4.0)
        );
    }
    out.push_str("</div>");
    let mut by_lane: Vec<Vec<usize>> = vec![Vec::new(); count];
    for (index, &lane) in lane_of.iter().enumerate() {
        by_lane[lane].push(index);
    }
    for lane in by_lane {
        out.push_str("<div class=\"lane\">");
        for index in lane {
            let span = &spans[index];
            let cached = if span.cached { " cached" } else { "" };
            let _ = write!(
                out,
                "<a class=\"bar st-{status}{cached}\" href=\"#cell-{cell}\" style=\"left:{left:.3}%;width:{width:.3}%\" title=\"",
                status = span.status,
                cell = span.cell,
                left = span.start_ms / total * 100.0,
                width = span.duration_ms / total * 100.0,
            );
            push_text(out, span.name);
            let _ = write!(
                out,
                ": {} from {}\"></a>",
                super::duration(span.duration_ms),
                super::duration(span.start_ms)
            );
        }
        out.push_str("</div>");
    }
    out.push_str("</div>");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(cell: usize, start_ms: f64, duration_ms: f64) -> Span<'static> {
        Span {
            cell,
            name: "c",
            start_ms,
            duration_ms,
            status: "ok",
            cached: false,
        }
    }

    #[test]
    fn a_sequential_run_is_one_lane() {
        let spans = [span(0, 0.0, 1.0), span(1, 1.0, 2.0), span(2, 3.0005, 1.0)];
        assert_eq!(lanes(&spans), (vec![0, 0, 0], 1));
    }

    #[test]
    fn overlapping_cells_take_more_lanes_and_free_lanes_are_reused() {
        // 0: [0, 10), 1: [1, 3), 2: [2, 4), 3: [3.5, 5) reuses lane 1.
        let spans = [
            span(0, 0.0, 10.0),
            span(1, 1.0, 2.0),
            span(2, 2.0, 2.0),
            span(3, 3.5, 1.5),
        ];
        assert_eq!(lanes(&spans), (vec![0, 1, 2, 1], 3));
    }

    #[test]
    fn bars_are_placed_in_percent_of_the_run() {
        let mut out = String::new();
        push_timeline(&mut out, &[span(4, 25.0, 50.0)], 100.0);
        assert!(
            out.contains("<a class=\"bar st-ok\" href=\"#cell-4\" style=\"left:25.000%;width:50.000%\" title=\"c: 50.0 ms from 25.0 ms\"></a>"),
            "{out}"
        );
    }
}
