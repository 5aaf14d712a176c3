//! A deterministic text form of the ABI's type layout, for the committed
//! snapshot `executor-abi/abi-layout.txt` (written by
//! `cargo xtask abi-check --layout`, checked by this crate's tests).
//!
//! The text is abi_stable's own `Display` of each [`TypeLayout`] reachable
//! from a root module, each type once, in the order abi_stable's checker
//! meets them. Two things are left out because abi_stable's layout check
//! ignores them and they change without any ABI change: source line numbers
//! and module paths, and the package *versions* of the types (abi_stable
//! only asks that they share the major). Sizes are those of the target the
//! snapshot was rendered on; the snapshot is kept for 64-bit targets.

use std::collections::HashSet;
use std::fmt::Write as _;

use abi_stable::{abi_stability::stable_abi_trait::StableAbi, type_layout::TypeLayout};

/// The first line of a snapshot: the ABI version it was taken at.
///
/// `cargo xtask abi-check --layout` reads the version back from it to tell
/// a layout change with a version bump from one without.
pub fn header_line(version: &str) -> String {
    format!(
        "# executor-abi {version} root module layout (abi_stable 0.11, {}-bit); written by `cargo xtask abi-check --layout`, do not edit",
        usize::BITS
    )
}

/// The version recorded in a snapshot's first line, if it has one.
pub fn version_of_snapshot(snapshot: &str) -> Option<&str> {
    let first = snapshot.lines().next()?;
    first
        .strip_prefix("# executor-abi ")?
        .split_whitespace()
        .next()
}

/// The snapshot of the current root module ([`crate::PluginMod_Ref`]),
/// headed by [`header_line`] with [`crate::ABI_VERSION`].
pub fn current_snapshot() -> String {
    snapshot::<crate::PluginMod_Ref>(crate::ABI_VERSION)
}

/// The snapshot of root module `M`, headed by `version`.
pub fn snapshot<M: StableAbi>(version: &str) -> String {
    let mut text = header_line(version);
    text.push('\n');
    text.push_str(&render(M::LAYOUT));
    text
}

/// Every type reachable from `root`, each once, as text without line
/// numbers, module paths and package versions.
pub fn render(root: &'static TypeLayout) -> String {
    let mut seen = HashSet::new();
    let mut order = Vec::new();
    collect(root, &mut seen, &mut order);
    let mut text = String::new();
    for (index, layout) in order.iter().enumerate() {
        let _ = writeln!(text, "=== {index}: {}", layout.full_type());
        for line in layout.to_string().lines() {
            if let Some(line) = sanitize(line) {
                text.push_str(line.trim_end());
                text.push('\n');
            }
        }
    }
    text
}

/// Walks `layout` and what it reaches, depth first, in field order.
fn collect(
    layout: &'static TypeLayout,
    seen: &mut HashSet<abi_stable::std_types::UTypeId>,
    order: &mut Vec<&'static TypeLayout>,
) {
    if !seen.insert(layout.get_utypeid()) {
        return;
    }
    order.push(layout);
    for nested in layout.shared_vars().type_layouts() {
        collect(nested(), seen, order);
    }
    if let Some(extra_checks) = layout.extra_checks() {
        for nested in extra_checks.nested_type_layouts().iter() {
            collect(nested, seen, order);
        }
    }
}

/// One line of abi_stable's text without what its checker ignores.
fn sanitize(line: &str) -> Option<String> {
    let trimmed = line.trim_start();
    if trimmed.starts_with("line:") && trimmed.contains(" mod:") {
        return None;
    }
    match line.find(" version:'") {
        None => Some(line.to_owned()),
        Some(start) => {
            let rest = &line[start + " version:'".len()..];
            let end = rest.find('\'').map_or(rest.len(), |end| end + 1);
            Some(format!("{}{}", &line[..start], &rest[end..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_pointer_width = "64")]
    #[test]
    fn the_committed_snapshot_matches_the_current_layout() {
        let committed = include_str!("../abi-layout.txt");
        assert_eq!(
            version_of_snapshot(committed),
            Some(crate::ABI_VERSION),
            "executor-abi/abi-layout.txt was taken at another version; run `cargo xtask abi-check --layout`"
        );
        assert!(
            current_snapshot() == committed,
            "the ABI's layout changed but executor-abi/abi-layout.txt did not: \
             if the change is meant, bump executor-abi's version (see its README) \
             and run `cargo xtask abi-check --layout`"
        );
    }

    #[test]
    fn versions_and_lines_are_left_out() {
        assert_eq!(
            sanitize("    package:'executor-abi' version:'1.1.0'").as_deref(),
            Some("    package:'executor-abi'")
        );
        assert_eq!(sanitize("line:12 mod:executor_abi::ffi"), None);
        assert_eq!(
            sanitize("field_name:kind").as_deref(),
            Some("field_name:kind")
        );
    }

    #[test]
    fn the_header_carries_the_version() {
        let snapshot = format!("{}\nrest\n", header_line("1.2.3"));
        assert_eq!(version_of_snapshot(&snapshot), Some("1.2.3"));
        assert_eq!(version_of_snapshot("no header"), None);
    }
}
