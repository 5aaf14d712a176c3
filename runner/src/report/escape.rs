//! Escaping text for HTML, and cutting long text at a size limit.

/// Appends `text` escaped for HTML text and attribute values alike.
pub(crate) fn push_text(out: &mut String, text: &str) {
    let mut start = 0;
    for (index, byte) in text.bytes().enumerate() {
        let entity = match byte {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#39;",
            _ => continue,
        };
        out.push_str(&text[start..index]);
        out.push_str(entity);
        start = index + 1;
    }
    out.push_str(&text[start..]);
}

/// `text` escaped for HTML.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_text(&mut out, text);
    out
}

/// The first `limit` bytes of `text` (cut at a character boundary), and
/// whether anything was cut.
pub(crate) fn truncate(text: &str, limit: usize) -> (&str, bool) {
    if text.len() <= limit {
        return (text, false);
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], true)
}

/// A byte count for people: `512 B`, `3.2 KiB`, `1.5 MiB`.
pub(crate) fn bytes(count: usize) -> String {
    if count < 1024 {
        format!("{count} B")
    } else if count < 1 << 20 {
        format!("{:.1} KiB", count as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", count as f64 / f64::from(1u32 << 20))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("plain é"), "plain é");
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("héllo", 2), ("h", true));
        assert_eq!(truncate("héllo", 3), ("hé", true));
        assert_eq!(truncate("hi", 2), ("hi", false));
    }

    #[test]
    fn byte_counts_read_well() {
        assert_eq!(bytes(10), "10 B");
        assert_eq!(bytes(3 << 10), "3.0 KiB");
        assert_eq!(bytes(3 << 19), "1.5 MiB");
    }
}
