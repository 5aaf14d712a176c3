//! Outputs as HTML: plain values, tables, images, Markdown and HTML
//! displays, each kept inert and cut to a size limit with a note.
//!
//! Nothing a notebook produced runs in the report page: HTML goes into a
//! frame with an empty `sandbox` (no scripts, an opaque origin), SVG and
//! bitmaps are `<img>` elements (which run no scripts and load nothing),
//! and Markdown is rendered with its raw HTML shown as text.

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};
use serde_json::Value;

use super::escape::{bytes, push_text, truncate};
use super::events::Display;

/// The most of a text (printed text, an output, code) a page shows.
pub(crate) const TEXT_LIMIT: usize = 64 << 10;
/// The largest image or HTML display a page embeds.
pub(crate) const DISPLAY_LIMIT: usize = 4 << 20;
/// The most rows and columns of a table a page shows.
pub(crate) const TABLE_ROWS: usize = 200;
pub(crate) const TABLE_COLUMNS: usize = 30;
/// The most of one table cell a page shows.
const TABLE_CELL_LIMIT: usize = 200;

/// Appends `text` as a `<pre>` of class `class`, cut at [`TEXT_LIMIT`].
pub(crate) fn push_pre(out: &mut String, class: &str, text: &str) {
    let (shown, cut) = truncate(text, TEXT_LIMIT);
    out.push_str("<pre class=\"");
    out.push_str(class);
    out.push_str("\">");
    push_text(out, shown);
    out.push_str("</pre>");
    if cut {
        push_cut_note(out, shown, text);
    }
}

/// Appends the note saying how much of `text` the page shows.
fn push_cut_note(out: &mut String, shown: &str, text: &str) {
    push_note(
        out,
        &format!(
            "Truncated: the first {} of {} are shown.",
            bytes(shown.len()),
            bytes(text.len())
        ),
    );
}

/// Appends a note (truncation, something not shown).
pub(crate) fn push_note(out: &mut String, text: &str) {
    out.push_str("<p class=\"note\">");
    push_text(out, text);
    out.push_str("</p>");
}

/// Appends a cell's output value.
///
/// A string starting with `<svg` shows as an image, an array of maps as a
/// table, any other string as text, and other values as JSON.
pub(crate) fn push_output(out: &mut String, value: &Value) {
    match value {
        Value::String(text) if text.trim_start().starts_with("<svg") => {
            push_image(out, "image/svg+xml", &base64(text.as_bytes()), text.len());
        }
        Value::String(text) => push_pre(out, "value", text),
        Value::Array(rows) if !rows.is_empty() && rows.iter().all(Value::is_object) => {
            push_table(out, rows);
        }
        value => {
            let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
            push_pre(out, "value", &text);
        }
    }
}

/// Appends a rich display by its MIME type.
pub(crate) fn push_display(out: &mut String, display: &Display) {
    let mime = display.mime.trim().to_ascii_lowercase();
    let data = &display.data;
    let too_large = data.len() > DISPLAY_LIMIT;
    let not_shown = |out: &mut String| {
        push_note(
            out,
            &format!(
                "A {mime} display of {} is not shown (the limit is {}).",
                bytes(data.len()),
                bytes(DISPLAY_LIMIT)
            ),
        );
    };
    match mime.as_str() {
        "text/html" if too_large => not_shown(out),
        "text/html" => {
            out.push_str("<iframe class=\"html\" sandbox=\"\" title=\"HTML output\" srcdoc=\"");
            push_text(out, data);
            out.push_str("\"></iframe>");
        }
        "text/markdown" => {
            let (shown, cut) = truncate(data, TEXT_LIMIT);
            push_markdown(out, shown);
            if cut {
                push_cut_note(out, shown, data);
            }
        }
        "image/svg+xml" if too_large => not_shown(out),
        "image/svg+xml" => {
            let compact: String = data.split_whitespace().collect();
            if data.trim_start().starts_with('<') || !is_base64(&compact) {
                push_image(out, &mime, &base64(data.as_bytes()), data.len());
            } else {
                push_image(out, &mime, &compact, data.len());
            }
        }
        "image/png" | "image/jpeg" | "image/gif" | "image/webp" if too_large => not_shown(out),
        "image/png" | "image/jpeg" | "image/gif" | "image/webp" => {
            let compact: String = data.split_whitespace().collect();
            if is_base64(&compact) {
                push_image(out, &mime, &compact, data.len());
            } else {
                push_note(
                    out,
                    &format!("The {mime} display is not base64 data; it is not shown."),
                );
            }
        }
        _ if mime.starts_with("text/") || mime == "application/json" => {
            push_pre(out, "value", data);
        }
        _ => push_note(
            out,
            &format!(
                "A display of type {mime} ({}) is not shown.",
                bytes(data.len())
            ),
        ),
    }
}

/// Appends an `<img>` of base64 `data`.
fn push_image(out: &mut String, mime: &str, data: &str, size: usize) {
    if data.len() > DISPLAY_LIMIT {
        push_note(
            out,
            &format!(
                "An image of {} is not shown (the limit is {}).",
                bytes(size),
                bytes(DISPLAY_LIMIT)
            ),
        );
        return;
    }
    out.push_str("<img class=\"display\" alt=\"image output\" src=\"data:");
    push_text(out, mime);
    out.push_str(";base64,");
    out.push_str(data);
    out.push_str("\">");
}

/// Appends rows of maps as a table: columns are the keys in the order they
/// first appear, cut at [`TABLE_ROWS`] and [`TABLE_COLUMNS`].
fn push_table(out: &mut String, rows: &[Value]) {
    let mut columns: Vec<&str> = Vec::new();
    for row in rows.iter().take(TABLE_ROWS) {
        if let Value::Object(map) = row {
            for key in map.keys() {
                if !columns.contains(&key.as_str()) {
                    columns.push(key);
                }
            }
        }
    }
    let all_columns = columns.len();
    columns.truncate(TABLE_COLUMNS);
    out.push_str("<div class=\"table\"><table><thead><tr>");
    for column in &columns {
        out.push_str("<th>");
        push_text(out, column);
        out.push_str("</th>");
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows.iter().take(TABLE_ROWS) {
        out.push_str("<tr>");
        for column in &columns {
            out.push_str("<td>");
            match row.get(*column) {
                None => {}
                Some(Value::String(text)) => push_cut(out, text),
                Some(value) => push_cut(out, &value.to_string()),
            }
            out.push_str("</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    if rows.len() > TABLE_ROWS || all_columns > columns.len() {
        push_note(
            out,
            &format!(
                "Truncated: {} of {} rows and {} of {} columns are shown.",
                rows.len().min(TABLE_ROWS),
                rows.len(),
                columns.len(),
                all_columns
            ),
        );
    }
}

/// Appends `text` cut at [`TABLE_CELL_LIMIT`] with an ellipsis.
fn push_cut(out: &mut String, text: &str) {
    let (shown, cut) = truncate(text, TABLE_CELL_LIMIT);
    push_text(out, shown);
    if cut {
        out.push('…');
    }
}

/// Appends Markdown as HTML; raw HTML in it shows as text, links keep only
/// safe targets, and only `data:` images are embedded (others become links).
fn push_markdown(out: &mut String, text: &str) {
    let parser = Parser::new_ext(
        text,
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS,
    );
    let mut images_as_links: Vec<bool> = Vec::new();
    let events = parser.map(|event| match event {
        Event::Html(html) | Event::InlineHtml(html) => Event::Text(html),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: safe_link(dest_url),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => {
            let embedded = is_data_image(&dest_url);
            images_as_links.push(!embedded);
            if embedded {
                Event::Start(Tag::Image {
                    link_type,
                    dest_url,
                    title,
                    id,
                })
            } else {
                Event::Start(Tag::Link {
                    link_type,
                    dest_url: safe_link(dest_url),
                    title,
                    id,
                })
            }
        }
        Event::End(TagEnd::Image) if images_as_links.pop() == Some(true) => {
            Event::End(TagEnd::Link)
        }
        event => event,
    });
    out.push_str("<div class=\"markdown\">");
    pulldown_cmark::html::push_html(out, events);
    out.push_str("</div>");
}

/// `url` when it is a web, mail or in-page link or a relative path, else `#`.
fn safe_link(url: CowStr<'_>) -> CowStr<'_> {
    let lower = url.trim().to_ascii_lowercase();
    let scheme = lower
        .find(':')
        .filter(|&colon| !lower[..colon].contains(['/', '?', '#']));
    match scheme {
        None => url,
        Some(_)
            if ["http:", "https:", "mailto:"]
                .iter()
                .any(|s| lower.starts_with(s)) =>
        {
            url
        }
        Some(_) => CowStr::Borrowed("#"),
    }
}

fn is_data_image(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    ["png", "jpeg", "gif", "webp", "svg+xml"]
        .iter()
        .any(|kind| lower.starts_with(&format!("data:image/{kind};base64,")))
}

/// Whether `text` is non-empty standard base64.
fn is_base64(text: &str) -> bool {
    !text.is_empty()
        && text.len() % 4 == 0
        && text.trim_end_matches('=').len() + 2 >= text.len()
        && text
            .trim_end_matches('=')
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'+' || byte == b'/')
}

/// Standard base64 with padding.
pub(crate) fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let word = u32::from(chunk[0]) << 16
            | u32::from(chunk.get(1).copied().unwrap_or(0)) << 8
            | u32::from(chunk.get(2).copied().unwrap_or(0));
        for index in 0..4 {
            if index <= chunk.len() {
                out.push(char::from(
                    ALPHABET[(word >> (18 - 6 * index)) as usize & 63],
                ));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(value: Value) -> String {
        let mut out = String::new();
        push_output(&mut out, &value);
        out
    }

    fn display(mime: &str, data: &str) -> String {
        let mut out = String::new();
        push_display(
            &mut out,
            &Display {
                mime: mime.to_owned(),
                data: data.to_owned(),
            },
        );
        out
    }

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"<svg/>\xff"), "PHN2Zy8+/w==");
        assert!(is_base64("Zm9v") && is_base64("Zg=="));
        assert!(!is_base64("Zm9") && !is_base64("Zm\"v") && !is_base64("Z==="));
    }

    #[test]
    fn svg_strings_become_images_and_maps_become_tables() {
        let svg = output(Value::from("<svg xmlns='http://www.w3.org/2000/svg'/>"));
        assert!(svg.starts_with(
            "<img class=\"display\" alt=\"image output\" src=\"data:image/svg+xml;base64,"
        ));
        let table = output(serde_json::json!([{"a": 1, "b": "<x>"}, {"c": [1]}]));
        assert_eq!(
            table,
            "<div class=\"table\"><table><thead><tr><th>a</th><th>b</th><th>c</th></tr></thead>\
             <tbody><tr><td>1</td><td>&lt;x&gt;</td><td></td></tr><tr><td></td><td></td><td>[1]</td></tr>\
             </tbody></table></div>"
        );
        assert_eq!(
            output(serde_json::json!([])),
            "<pre class=\"value\">[]</pre>"
        );
    }

    #[test]
    fn large_outputs_are_cut_with_a_note() {
        let text = "x".repeat(TEXT_LIMIT + 10);
        let html = output(Value::from(text));
        assert!(
            html.contains("Truncated: the first 64.0 KiB of 64.0 KiB are shown."),
            "{}",
            &html[html.len() - 200..]
        );
        let rows: Vec<Value> = (0..TABLE_ROWS + 5)
            .map(|i| serde_json::json!({"i": i}))
            .collect();
        let html = output(Value::Array(rows));
        assert_eq!(html.matches("<tr>").count(), TABLE_ROWS + 1);
        assert!(html.ends_with("Truncated: 200 of 205 rows and 1 of 1 columns are shown.</p>"));
        let html = display("image/png", &"A".repeat(DISPLAY_LIMIT + 4));
        assert!(!html.contains("<img"));
        assert!(html.contains("is not shown (the limit is 4.0 MiB)"));
    }

    #[test]
    fn html_displays_go_into_an_empty_sandbox() {
        let html = display("text/html", "<script>alert(\"x\")</script><b>&amp;</b>");
        assert_eq!(
            html,
            "<iframe class=\"html\" sandbox=\"\" title=\"HTML output\" \
             srcdoc=\"&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;b&gt;&amp;amp;&lt;/b&gt;\"></iframe>"
        );
    }

    #[test]
    fn markdown_renders_without_raw_html_or_unsafe_links() {
        let html = display(
            "text/markdown",
            "# Title\n\n*a* <script>x()</script> [ok](https://e.org) [bad](javascript:alert(1)) \
             ![remote](http://e.org/i.png) ![inline](data:image/png;base64,AAAA)",
        );
        assert_eq!(
            html,
            "<div class=\"markdown\"><h1>Title</h1>\n<p><em>a</em> &lt;script&gt;x()&lt;/script&gt; \
             <a href=\"https://e.org\">ok</a> <a href=\"#\">bad</a> \
             <a href=\"http://e.org/i.png\">remote</a> \
             <img src=\"data:image/png;base64,AAAA\" alt=\"inline\" /></p>\n</div>"
        );
    }

    #[test]
    fn images_are_data_uris_and_bad_data_is_refused() {
        assert_eq!(
            display("image/png", "iVBO\nRw0K"),
            "<img class=\"display\" alt=\"image output\" src=\"data:image/png;base64,iVBORw0K\">"
        );
        assert!(display("image/png", "\"><script>").contains("is not base64 data"));
        assert!(display("image/svg+xml", "<svg/>").contains("data:image/svg+xml;base64,PHN2Zy8+"));
        assert_eq!(
            display("text/plain", "a<b"),
            "<pre class=\"value\">a&lt;b</pre>"
        );
        assert!(display("application/pdf", "%PDF")
            .contains("A display of type application/pdf (4 B) is not shown."));
    }
}
