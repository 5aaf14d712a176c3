//! The dependency graph as inline SVG, laid out by topological layers.
//!
//! A cell sits one layer below its lowest parent; within a layer, cells
//! are ordered by the mean position of their parents (file order breaks
//! ties), which keeps most edges short and uncrossed; a layer wider than
//! [`ROW_CELLS`] wraps onto more rows. Cells in a cycle have no layer of
//! their own: they are placed after their placed parents, and an edge
//! going up is drawn dashed.

use std::collections::VecDeque;
use std::fmt::Write as _;

use super::escape::push_text;

/// The most cells a drawn graph has; a larger notebook gets a note.
pub(crate) const GRAPH_LIMIT: usize = 1500;
/// The most cells on one row of a layer.
const ROW_CELLS: usize = 30;
const NODE_HEIGHT: f64 = 26.0;
const ROW_GAP: f64 = 46.0;
const NODE_GAP: f64 = 14.0;
const CHAR_WIDTH: f64 = 7.2;
const NAME_CHARS: usize = 24;
const MARGIN: f64 = 10.0;

/// A cell as the graph draws it.
pub(crate) struct Node<'a> {
    pub(crate) name: &'a str,
    /// Indexes of its parents among the nodes.
    pub(crate) parents: &'a [usize],
    /// The status class (`ok`, `not-run`, ...), its label and its symbol.
    pub(crate) status: &'static str,
    pub(crate) label: &'static str,
    pub(crate) symbol: &'static str,
}

/// The layer of every node: one below its lowest parent.
fn layers(nodes: &[Node<'_>]) -> Vec<usize> {
    let count = nodes.len();
    let mut children = vec![Vec::new(); count];
    let mut pending = vec![0usize; count];
    for (child, node) in nodes.iter().enumerate() {
        for &parent in node.parents {
            if parent < count && parent != child {
                children[parent].push(child);
                pending[child] += 1;
            }
        }
    }
    let mut layer: Vec<Option<usize>> = vec![None; count];
    let mut ready: VecDeque<usize> = (0..count).filter(|&cell| pending[cell] == 0).collect();
    let mut deepest = vec![0usize; count];
    while let Some(cell) = ready.pop_front() {
        layer[cell] = Some(deepest[cell]);
        for &child in &children[cell] {
            deepest[child] = deepest[child].max(deepest[cell] + 1);
            pending[child] -= 1;
            if pending[child] == 0 {
                ready.push_back(child);
            }
        }
    }
    // Cycle members and what hangs below them, in file order.
    for cell in 0..count {
        if layer[cell].is_none() {
            let below = nodes[cell]
                .parents
                .iter()
                .filter_map(|&parent| layer.get(parent).copied().flatten())
                .map(|parent_layer| parent_layer + 1)
                .max()
                .unwrap_or(0);
            layer[cell] = Some(below);
        }
    }
    layer.into_iter().map(|layer| layer.unwrap_or(0)).collect()
}

/// Where each node goes: its row and its position on that row.
struct Layout {
    /// Nodes of each row, left to right.
    rows: Vec<Vec<usize>>,
    /// Per node: (row, x of its centre).
    at: Vec<(usize, f64)>,
    width: f64,
}

fn node_width(name: &str) -> f64 {
    (name.chars().count().min(NAME_CHARS) + 2) as f64 * CHAR_WIDTH + 16.0
}

fn layout(nodes: &[Node<'_>]) -> Layout {
    let layer = layers(nodes);
    let depth = layer.iter().max().map_or(0, |deepest| deepest + 1);
    let mut by_layer: Vec<Vec<usize>> = vec![Vec::new(); depth];
    for (cell, &cell_layer) in layer.iter().enumerate() {
        by_layer[cell_layer].push(cell);
    }
    let mut rows: Vec<Vec<usize>> = Vec::new();
    let mut at = vec![(0usize, 0.0f64); nodes.len()];
    // Rank of each placed node, for the mean position of parents.
    let mut rank = vec![0.0f64; nodes.len()];
    for cells in &mut by_layer {
        let mut keyed: Vec<(f64, usize)> = cells
            .iter()
            .map(|&cell| {
                let placed: Vec<f64> = nodes[cell]
                    .parents
                    .iter()
                    .filter(|&&parent| parent < nodes.len() && layer[parent] < layer[cell])
                    .map(|&parent| rank[parent])
                    .collect();
                let key = if placed.is_empty() {
                    f64::INFINITY
                } else {
                    placed.iter().sum::<f64>() / placed.len() as f64
                };
                (key, cell)
            })
            .collect();
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let count = keyed.len().max(1) as f64;
        for (position, &(_, cell)) in keyed.iter().enumerate() {
            rank[cell] = position as f64 / count;
        }
        *cells = keyed.into_iter().map(|(_, cell)| cell).collect();
        for chunk in cells.chunks(ROW_CELLS) {
            rows.push(chunk.to_vec());
        }
    }
    let row_widths: Vec<f64> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|&cell| node_width(nodes[cell].name))
                .sum::<f64>()
                + NODE_GAP * row.len().saturating_sub(1) as f64
        })
        .collect();
    let width = row_widths.iter().copied().fold(0.0, f64::max) + 2.0 * MARGIN;
    for (row_index, row) in rows.iter().enumerate() {
        let mut x = (width - row_widths[row_index]) / 2.0;
        for &cell in row {
            let node = node_width(nodes[cell].name);
            at[cell] = (row_index, x + node / 2.0);
            x += node + NODE_GAP;
        }
    }
    Layout { rows, at, width }
}

/// Where edges leave and enter nodes: spread along the bottom and top
/// edges of a node in the order of the other ends, so edges sharing a node
/// do not draw over each other.
struct Ports {
    /// Per node: the children of its downward edges, left to right.
    outgoing: Vec<Vec<usize>>,
    /// Per node: the parents of its downward edges, left to right.
    incoming: Vec<Vec<usize>>,
    /// Per node: (left, width).
    boxes: Vec<(f64, f64)>,
}

impl Ports {
    fn new(nodes: &[Node<'_>], layout: &Layout) -> Ports {
        let mut outgoing = vec![Vec::new(); nodes.len()];
        let mut incoming = vec![Vec::new(); nodes.len()];
        for (child, node) in nodes.iter().enumerate() {
            for &parent in node.parents {
                if parent < nodes.len() && layout.at[parent].0 < layout.at[child].0 {
                    outgoing[parent].push(child);
                    incoming[child].push(parent);
                }
            }
        }
        let by_x = |a: &usize, b: &usize| layout.at[*a].1.total_cmp(&layout.at[*b].1);
        for ends in outgoing.iter_mut().chain(incoming.iter_mut()) {
            ends.sort_by(by_x);
        }
        let boxes = nodes
            .iter()
            .enumerate()
            .map(|(cell, node)| {
                let width = node_width(node.name);
                (layout.at[cell].1 - width / 2.0, width)
            })
            .collect();
        Ports {
            outgoing,
            incoming,
            boxes,
        }
    }

    fn spread(&self, node: usize, ends: &[usize], other: usize) -> f64 {
        let (left, width) = self.boxes[node];
        let rank = ends.iter().position(|&end| end == other).unwrap_or(0);
        left + width * (rank + 1) as f64 / (ends.len() + 1) as f64
    }

    fn out_x(&self, parent: usize, child: usize) -> f64 {
        self.spread(parent, &self.outgoing[parent], child)
    }

    fn in_x(&self, parent: usize, child: usize) -> f64 {
        self.spread(child, &self.incoming[child], parent)
    }
}

fn row_top(row: usize) -> f64 {
    MARGIN + row as f64 * (NODE_HEIGHT + ROW_GAP)
}

/// Appends the graph of `nodes` as an `<svg>`; each node links to
/// `#cell-N`, its index.
pub(crate) fn push_svg(out: &mut String, nodes: &[Node<'_>]) {
    let layout = layout(nodes);
    let height = row_top(layout.rows.len()) - ROW_GAP + MARGIN;
    let _ = write!(
        out,
        "<svg class=\"graph\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" \
         viewBox=\"0 0 {w:.0} {h:.0}\" role=\"img\" aria-label=\"dependency graph\">\
         <defs><marker id=\"arrow\" viewBox=\"0 0 8 8\" refX=\"8\" refY=\"4\" markerWidth=\"7\" \
         markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L8,4 L0,8 z\"/></marker></defs><g class=\"edges\">",
        w = layout.width,
        h = height.max(NODE_HEIGHT + 2.0 * MARGIN),
    );
    let ports = Ports::new(nodes, &layout);
    for (child, node) in nodes.iter().enumerate() {
        let (child_row, x2) = layout.at[child];
        for &parent in node.parents {
            let Some(&(parent_row, x1)) = layout.at.get(parent) else {
                continue;
            };
            if parent_row < child_row {
                let (x1, x2) = (ports.out_x(parent, child), ports.in_x(parent, child));
                // Down from the parent's bottom to the child's top.
                let y1 = row_top(parent_row) + NODE_HEIGHT;
                let y2 = row_top(child_row);
                let bend = (y2 - y1) / 2.0;
                let _ = write!(
                    out,
                    "<path d=\"M{x1:.1},{y1:.1} C{x1:.1},{c1:.1} {x2:.1},{c2:.1} {x2:.1},{y2:.1}\"/>",
                    c1 = y1 + bend,
                    c2 = y2 - bend,
                );
            } else {
                // Up (a cycle): from the parent's top, around to the child's bottom.
                let y1 = row_top(parent_row);
                let y2 = row_top(child_row) + NODE_HEIGHT;
                let _ = write!(
                    out,
                    "<path class=\"up\" d=\"M{x1:.1},{y1:.1} C{c1:.1},{b1:.1} {c2:.1},{b2:.1} {x2:.1},{y2:.1}\"/>",
                    c1 = x1 + 40.0,
                    b1 = y1 - 20.0,
                    c2 = x2 + 40.0,
                    b2 = y2 + 20.0,
                );
            }
        }
    }
    out.push_str("</g>");
    for (cell, node) in nodes.iter().enumerate() {
        let (row, x) = layout.at[cell];
        let width = node_width(node.name);
        let top = row_top(row);
        let _ = write!(
            out,
            "<a href=\"#cell-{cell}\"><g class=\"node st-{status}\"><title>",
            status = node.status
        );
        push_text(out, node.name);
        let _ = write!(
            out,
            ": {label}</title><rect x=\"{left:.1}\" y=\"{top:.1}\" width=\"{width:.1}\" height=\"{NODE_HEIGHT}\" rx=\"5\"/>\
             <text x=\"{x:.1}\" y=\"{baseline:.1}\">{symbol} ",
            label = node.label,
            left = x - width / 2.0,
            baseline = top + NODE_HEIGHT / 2.0 + 4.5,
            symbol = node.symbol,
        );
        let shown: String = node.name.chars().take(NAME_CHARS).collect();
        push_text(out, &shown);
        if node.name.chars().count() > NAME_CHARS {
            out.push('…');
        }
        out.push_str("</text></g></a>");
    }
    out.push_str("</svg>");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes<'a>(names: &'a [&'a str], parents: &'a [Vec<usize>]) -> Vec<Node<'a>> {
        names
            .iter()
            .zip(parents)
            .map(|(name, parents)| Node {
                name,
                parents,
                status: "ok",
                label: "ok",
                symbol: "✓",
            })
            .collect()
    }

    #[test]
    fn cells_sit_one_layer_below_their_lowest_parent() {
        // d reads b and a; b reads a; c reads nothing; e is in a cycle with f.
        let parents = vec![vec![], vec![0], vec![], vec![1, 0], vec![5], vec![4, 0]];
        let names = ["a", "b", "c", "d", "e", "f"];
        assert_eq!(layers(&nodes(&names, &parents)), [0, 1, 0, 2, 0, 1]);
    }

    #[test]
    fn children_follow_their_parents_left_to_right() {
        // x1 reads b, x0 reads a: x0 goes left of x1 although it comes later.
        let parents = vec![vec![], vec![], vec![1], vec![0]];
        let names = ["a", "b", "x1", "x0"];
        let layout = layout(&nodes(&names, &parents));
        assert_eq!(layout.rows, [vec![0, 1], vec![3, 2]]);
    }

    #[test]
    fn wide_layers_wrap() {
        let names: Vec<String> = (0..ROW_CELLS * 2 + 1).map(|i| format!("c{i}")).collect();
        let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let parents = vec![Vec::new(); names.len()];
        let layout = layout(&nodes(&name_refs, &parents));
        let sizes: Vec<usize> = layout.rows.iter().map(Vec::len).collect();
        assert_eq!(sizes, [ROW_CELLS, ROW_CELLS, 1]);
    }

    #[test]
    fn svg_links_nodes_and_marks_upward_edges() {
        let parents = vec![vec![1], vec![0]];
        let names = ["a<", "b"];
        let mut out = String::new();
        push_svg(&mut out, &nodes(&names, &parents));
        assert!(
            out.contains("<a href=\"#cell-0\"><g class=\"node st-ok\"><title>a&lt;: ok</title>")
        );
        let edges = out.split("<g class=\"edges\">").nth(1).unwrap();
        assert_eq!(edges.matches("<path class=\"up\"").count(), 1, "{out}");
        assert_eq!(edges.matches("<path d=").count(), 1, "{out}");
    }
}
