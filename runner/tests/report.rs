//! `cellrun run --report FILE` and `cellrun report EVENTS -o FILE`: the
//! HTML page, its structure (snapshots), and the events it is built from.

use std::path::Path;

use crate::chromium::{Chromium, Request};
use crate::util::{cellrun_command, Dir, Run};

/// A stream written by hand: every part of a report, with the displays a
/// Python cell gives (`display`), which the built-in executor never makes.
const RICH_STREAM: &str = r##"{"event":"run_started","notebook":"rich.py","executor":"python","lifecycles":["cache"],"cells":["setup","html","md","png","svg","table","broken","after","skipped"],"jobs":2,"started_at":"2026-12-02T01:00:00Z","language":"python","notebook_cells":[{"name":"setup","line":3,"code":"import marimo as mo\nx = 1  # one\n","parents":[]},{"name":"html","line":7,"code":"mo.Html(\"<b>hi</b>\")","parents":["setup"]},{"name":"md","line":9,"code":"mo.md(\"# Title\")","parents":["setup"]},{"name":"png","line":11,"code":"fig","parents":[]},{"name":"svg","line":13,"code":"'<svg/>'","parents":[]},{"name":"table","line":15,"code":"[{\"a\": 1}]","parents":[]},{"name":"broken","line":17,"code":"def f():\n    return 1 / 0\nf()","parents":["setup"]},{"name":"after","line":21,"code":"y = broken_value","parents":["broken"]},{"name":"skipped","line":23,"code":"z = 3","parents":[]}]}
{"event":"cell_started","cell":"setup","at_ms":0.5}
{"event":"cell_finished","cell":"setup","status":"ok","output":null,"stdout":"","error":null,"duration_ms":1.5,"cached":false,"at_ms":2.0}
{"event":"cell_started","cell":"html","at_ms":2.1}
{"event":"cell_started","cell":"md","at_ms":2.2}
{"event":"cell_finished","cell":"md","status":"ok","output":"# Title","stdout":"","error":null,"duration_ms":2.0,"cached":false,"at_ms":4.2,"display":{"mime":"text/markdown","data":"# Title\n\nSome *text* and <script>bad()</script>."}}
{"event":"cell_finished","cell":"html","status":"ok","output":null,"stdout":"said <hi>\n","error":null,"duration_ms":3.0,"cached":false,"at_ms":5.1,"display":{"mime":"text/html","data":"<b>hi</b><script>parent.document.title='owned'</script><img src=\"http://cellrun.invalid/leak.png\">"}}
{"event":"cell_finished","cell":"png","status":"ok","output":"<Figure>","stdout":"","error":null,"duration_ms":0.0,"cached":true,"at_ms":5.2,"display":{"mime":"image/png","data":"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="}}
{"event":"cell_started","cell":"svg","at_ms":5.3}
{"event":"cell_finished","cell":"svg","status":"ok","output":"<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'><circle r='5' cx='5' cy='5'/></svg>","stdout":"","error":null,"duration_ms":0.2,"cached":false,"at_ms":5.5,"display":null}
{"event":"cell_started","cell":"table","at_ms":5.6}
{"event":"cell_finished","cell":"table","status":"ok","output":[{"a":1,"b":"x"},{"a":2,"c":true}],"stdout":"","error":null,"duration_ms":0.1,"cached":false,"at_ms":5.7}
{"event":"warning","message":"cache entry 1f2e is unreadable; the cell runs live"}
{"event":"cell_started","cell":"broken","at_ms":5.8}
{"event":"cell_finished","cell":"broken","status":"error","output":null,"stdout":"","error":{"kind":"runtime","message":"ZeroDivisionError: division by zero","line":18,"blamed":null},"duration_ms":0.4,"cached":false,"at_ms":6.2}
{"event":"cell_finished","cell":"after","status":"cancelled","output":null,"stdout":"","error":{"kind":"cancelled","message":"not run: ancestor `broken` failed","line":null,"blamed":"broken"},"duration_ms":0.0,"cached":false,"at_ms":6.3}
{"event":"run_finished","ok":6,"error":1,"cancelled":1,"interrupted":0,"duration_ms":7.0}
"##;

#[test]
fn cut_outputs_and_aborted_runs_get_a_note() {
    let dir = Dir::new("report-aborted");
    let stream = r#"{"event":"run_started","notebook":"nb.rhai","executor":"default","cells":["a"]}
{"event":"cell_finished","cell":"a","status":"ok","output":[1,2],"output_truncated":true,"stdout":"","error":null,"duration_ms":1.0,"cached":false}
{"event":"run_finished","ok":1,"error":0,"cancelled":0,"interrupted":0,"aborted":{"reason":"out of memory","bytes":1024,"cell":"b"}}
"#;
    let html = report_of(&dir, stream);
    assert!(html.contains("Truncated: the value was larger than the events carry."));
    assert!(html.contains("The run was aborted (out of memory) while b ran."));
    assert!(
        html.contains("The events have no notebook_cells"),
        "an older stream"
    );
    assert!(
        html.contains("No cell has timing fields"),
        "an older stream"
    );
}

/// The page from `<body>` on: the head is CSS and the policy, checked apart.
fn body(html: &str) -> &str {
    &html[html.find("<body>").expect("a <body>")..]
}

/// Writes `stream` and makes its report with `cellrun report`.
fn report_of(dir: &Dir, stream: &str) -> String {
    dir.write("events.ndjson", stream);
    let output = dir.cellrun(&["report", "events.ndjson", "-o", "report.html"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read_to_string(dir.path().join("report.html")).unwrap()
}

#[test]
fn a_stream_with_every_part_renders_them_all() {
    let dir = Dir::new("report-rich");
    let html = report_of(&dir, RICH_STREAM);
    insta::assert_snapshot!("rich_stream", body(&html));
}

#[test]
fn the_page_is_self_contained_and_inert() {
    let dir = Dir::new("report-inert");
    let html = report_of(&dir, RICH_STREAM);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-src 'self'\">"
    ));
    assert!(html.contains("<style>"), "inline CSS");
    assert!(
        !html.contains("<script"),
        "no script of its own, none let through"
    );
    assert!(!html.contains("<link"), "no stylesheet or font to fetch");
    // Every `src` is a data URI; the only `http` text is escaped (in a
    // frame's srcdoc) or the SVG namespace, which is not a request.
    for (offset, _) in html.match_indices(" src=\"") {
        assert!(
            html[offset + 6..].starts_with("data:"),
            "{}",
            &html[offset..offset + 60]
        );
    }
    assert_eq!(html.matches("<iframe").count(), 1);
    assert!(html.contains(
        "<iframe class=\"html\" sandbox=\"\" title=\"HTML output\" srcdoc=\"&lt;b&gt;hi"
    ));
}

/// A notebook touching every status, outputs of each kind, printed text,
/// and an error with a line.
const NOTEBOOK: &str = r#"// %% data
let xs = [1, 2, 3];
print(`have ${xs.len()} values`);
xs
// %% rows
[#{ name: "a", n: 1 }, #{ name: "b", n: 2 }]
// %% picture
`<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><rect width="40" height="20" fill="teal"/></svg>`
// %% risky
let ratio = xs[0] / (xs.len() - 3);
// %% uses_ratio
ratio * 2
// %% independent
"fine"
"#;

#[test]
fn run_report_is_the_report_of_the_same_json_stream() {
    let dir = Dir::new("report-same");
    dir.write("nb.rhai", NOTEBOOK);
    let output = dir.cellrun(&["run", "nb.rhai", "--json", "--report", "run.html"]);
    assert_eq!(output.status.code(), Some(1));
    let run = Run::from_output(output.clone());
    assert_eq!(
        run.counts(),
        (4, 1, 1, 0),
        "--json is unchanged by --report"
    );
    std::fs::write(dir.path().join("events.ndjson"), &output.stdout).unwrap();
    let again = dir.cellrun(&["report", "events.ndjson", "-o", "again.html"]);
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&again.stdout), "wrote again.html\n");
    let from_run = std::fs::read_to_string(dir.path().join("run.html")).unwrap();
    let from_stream = std::fs::read_to_string(dir.path().join("again.html")).unwrap();
    assert!(
        from_run == from_stream,
        "one renderer: the in-process report equals the report of the stream"
    );
}

#[test]
fn a_report_of_a_real_run() {
    let dir = Dir::new("report-real");
    dir.write("nb.rhai", NOTEBOOK);
    // A report that cannot be written fails before any cell runs.
    let output = dir.cellrun(&["run", "nb.rhai", "--report", "missing/run.html"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(output.stdout.is_empty(), "no cell ran");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("cellrun: cannot write the report missing/run.html"),
        "{stderr}"
    );

    let output = dir.cellrun(&["run", "nb.rhai", "--report", "run.html"]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with("cellrun nb.rhai (6 cells)"),
        "human output stays: {stdout}"
    );
    let html = std::fs::read_to_string(dir.path().join("run.html")).unwrap();
    insta::with_settings!({filters => vec![
        (r"\d+(\.\d+)? (µs|ms|s)\b", "[TIME]"),
        (r"left:[\d.]+%;width:[\d.]+%", "[SPAN]"),
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "[DATE]"),
    ]}, {
        insta::assert_snapshot!("real_run", body(&html));
    });
}

#[test]
fn large_outputs_are_cut_with_a_note() {
    let dir = Dir::new("report-large");
    dir.write(
        "nb.rhai",
        "// %% big\nlet s = \"\";\ns.pad(300000, 'x');\nfor i in 0..5000 { print(`line ${i}`); }\ns\n",
    );
    let output = dir.cellrun(&["run", "nb.rhai", "--report", "run.html"]);
    assert_eq!(output.status.code(), Some(0));
    let html = std::fs::read_to_string(dir.path().join("run.html")).unwrap();
    assert!(
        html.contains("Truncated: the first 64.0 KiB of 293.0 KiB are shown."),
        "the output"
    );
    assert!(
        html.contains("line 4999\n</pre>"),
        "printed text under the limit stays whole"
    );
    assert_eq!(html.matches("Truncated:").count(), 1);
    assert!(
        html.len() < 200_000,
        "the page stays small: {} bytes",
        html.len()
    );
}

#[test]
fn an_unfinished_stream_still_makes_a_report() {
    let dir = Dir::new("report-unfinished");
    let cut: String = RICH_STREAM
        .lines()
        .take(6)
        .map(|line| format!("{line}\n"))
        .collect();
    let html = report_of(&dir, &cut);
    assert!(html.contains("The run did not finish"));
    assert!(html.contains("data-name=\"broken\" data-status=\"not-run\""));
    assert!(html.contains("9 cells: <span class=\"st-ok\">✓ 2 ok</span>, <span class=\"st-not-run\">– 7 not run</span>"));
}

#[test]
fn bad_streams_fail_naming_the_file_and_line() {
    let dir = Dir::new("report-bad");
    dir.write(
        "bad.ndjson",
        "{\"event\":\"run_started\",\"notebook\":\"n\",\"executor\":\"e\"}\n{oops\n",
    );
    let output = dir.cellrun(&["report", "bad.ndjson", "-o", "x.html"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("cellrun: bad.ndjson: line 2: not a JSON event"),
        "{stderr}"
    );
    let output = dir.cellrun(&["report", "missing.ndjson", "-o", "x.html"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr)
        .starts_with("cellrun: cannot read events missing.ndjson"));
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        ["bad.ndjson"],
        "no report and no temporary file is left"
    );
}

#[test]
fn events_carry_timing_and_the_notebook() {
    let dir = Dir::new("report-events");
    let run = dir.run_json("// %% a\nlet x = 1;\n// %% b\nx + 1\n", &[]);
    let started = &run.events[0];
    let date = started["started_at"].as_str().unwrap();
    assert_eq!(date.len(), 20, "{date}");
    assert!(date.ends_with('Z') && date.as_bytes()[10] == b'T', "{date}");
    assert_eq!(started["language"], "rhai");
    assert_eq!(
        started["notebook_cells"],
        serde_json::json!([
            {"name": "a", "line": 2, "code": "let x = 1;\n", "parents": []},
            {"name": "b", "line": 4, "code": "x + 1\n", "parents": ["a"]},
        ])
    );
    let mut last = 0.0;
    for event in &run.events[1..run.events.len() - 1] {
        let at = event["at_ms"].as_f64().unwrap();
        assert!(at >= last, "at_ms never goes back: {event}");
        last = at;
    }
    let b = run.finished("b");
    let started_b = run.events("cell_started")[1]["at_ms"].as_f64().unwrap();
    assert!(b["at_ms"].as_f64().unwrap() >= started_b);
    let finished = run.events("run_finished")[0]["duration_ms"]
        .as_f64()
        .unwrap();
    assert!(finished >= last);
}

#[test]
fn report_reads_standard_input() {
    let dir = Dir::new("report-stdin");
    let mut child = cellrun_command(dir.path())
        .args(["report", "-", "-o", "r.html"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(RICH_STREAM.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let html = std::fs::read_to_string(dir.path().join("r.html")).unwrap();
    assert_eq!(html.matches("<article class=\"cell").count(), 9);
}

/// The `file://` URL of `path`.
fn file_url(path: &Path) -> String {
    format!("file://{}", path.canonicalize().unwrap().display())
}

#[test]
fn chromium_shows_every_cell_and_no_request_leaves_the_page() {
    let dir = Dir::new("report-chromium");
    dir.write("nb.rhai", NOTEBOOK);
    let output = dir.cellrun(&["run", "nb.rhai", "--report", "run.html"]);
    assert_eq!(output.status.code(), Some(1));
    report_of(&dir, RICH_STREAM);
    // A page that does make a request, to show that the watch sees one.
    dir.write(
        "control.html",
        "<img src=\"http://cellrun.invalid/pixel.png\">",
    );

    let mut chromium = Chromium::launch(&dir.path().join("profile"));
    let page = chromium.new_page();
    let control = file_url(&dir.path().join("control.html"));
    chromium.navigate(&page, &control);
    assert!(
        chromium
            .requests
            .iter()
            .any(|request| request.url == "http://cellrun.invalid/pixel.png"),
        "the protocol shows the control page's request: {:?}",
        chromium.requests
    );
    let proxied = chromium.proxied();
    assert!(
        proxied
            .iter()
            .any(|line| line.contains("cellrun.invalid/pixel.png")),
        "the proxy sees the control page's request: {proxied:?}"
    );

    let artefacts = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("report-e2e");
    std::fs::create_dir_all(&artefacts).unwrap();
    let pages: [(&str, &[&str]); 2] = [
        (
            "run.html",
            &[
                "data",
                "rows",
                "picture",
                "risky",
                "uses_ratio",
                "independent",
            ],
        ),
        (
            "report.html",
            &[
                "setup", "html", "md", "png", "svg", "table", "broken", "after", "skipped",
            ],
        ),
    ];
    for (file, cells) in pages {
        chromium.requests.clear();
        let url = file_url(&dir.path().join(file));
        chromium.navigate(&page, &url);
        let names = chromium.eval(
            &page,
            "Array.from(document.querySelectorAll('article.cell'), cell => cell.dataset.name)",
        );
        assert_eq!(
            names,
            serde_json::json!(cells),
            "{file}: every cell, in file order"
        );
        let links = chromium.eval(
            &page,
            "Array.from(document.querySelectorAll('#graph svg a')).length",
        );
        assert_eq!(links, cells.len(), "{file}: every cell in the graph");
        // Requests of the control page may still be reported late; a
        // request the page's policy blocked did not leave.
        let foreign: Vec<&Request> = chromium
            .requests
            .iter()
            .filter(|request| {
                request.document != control
                    && request.url != url
                    && !request.url.starts_with("data:")
                    && !request.url.starts_with("about:")
                    && request.blocked.is_none()
            })
            .collect();
        assert!(foreign.is_empty(), "{file} asked for {foreign:?}");
        assert_eq!(
            chromium.proxied(),
            proxied,
            "{file}: nothing reached the network"
        );
        let png = chromium.screenshot(&page);
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        std::fs::write(artefacts.join(file.replace(".html", ".png")), png).unwrap();
    }
    // The HTML output's frame has an opaque origin: its script could not
    // reach the page (and did not run: the sandbox is empty).
    assert_eq!(
        chromium.eval(
            &page,
            "document.querySelector('iframe.html').contentDocument === null"
        ),
        true
    );
    assert_eq!(
        chromium.eval(&page, "document.title"),
        "cellrun report: rich.py"
    );
}
