//! Syntax highlighting for Rhai and Python: a small tokenizer per language.
//!
//! The tokenizers only colour text; they never reject code. A cell that
//! does not parse still shows, coloured as far as its tokens look right.

use super::escape::push_text;

/// What a piece of code is, for colouring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Token {
    Plain,
    Keyword,
    Literal,
    String,
    Number,
    Comment,
    Function,
    Decorator,
}

impl Token {
    /// The CSS class of the token, empty for plain text.
    fn class(self) -> &'static str {
        match self {
            Token::Plain => "",
            Token::Keyword => "k",
            Token::Literal => "b",
            Token::String => "s",
            Token::Number => "n",
            Token::Comment => "c",
            Token::Function => "f",
            Token::Decorator => "d",
        }
    }
}

/// A language the highlighter knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Language {
    Rhai,
    Python,
    /// No colouring.
    Plain,
}

impl Language {
    /// The language named `name` (as `run_started` gives it).
    pub(crate) fn named(name: &str) -> Language {
        match name {
            "rhai" => Language::Rhai,
            "python" => Language::Python,
            _ => Language::Plain,
        }
    }
}

const RHAI_KEYWORDS: &[&str] = &[
    "let", "const", "fn", "if", "else", "switch", "while", "loop", "for", "in", "do", "until",
    "break", "continue", "return", "throw", "try", "catch", "import", "export", "as", "private",
    "global", "is",
];
const RHAI_LITERALS: &[&str] = &["true", "false", "this"];
const PYTHON_KEYWORDS: &[&str] = &[
    "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del", "elif",
    "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda",
    "nonlocal", "not", "or", "pass", "raise", "return", "try", "while", "with", "yield", "match",
    "case",
];
const PYTHON_LITERALS: &[&str] = &["True", "False", "None", "self"];

/// Splits `code` into tokens covering it exactly, in order.
pub(crate) fn tokens(code: &str, language: Language) -> Vec<(Token, &str)> {
    if language == Language::Plain {
        return vec![(Token::Plain, code)];
    }
    let bytes = code.as_bytes();
    let mut out: Vec<(Token, &str)> = Vec::new();
    let mut plain_start = 0;
    let mut at = 0;
    while at < bytes.len() {
        let (token, end) = match scan(code, at, language) {
            Some(found) => found,
            None => {
                at += code[at..].chars().next().map_or(1, char::len_utf8);
                continue;
            }
        };
        if plain_start < at {
            out.push((Token::Plain, &code[plain_start..at]));
        }
        out.push((token, &code[at..end]));
        at = end;
        plain_start = end;
    }
    if plain_start < code.len() {
        out.push((Token::Plain, &code[plain_start..]));
    }
    out
}

/// The token starting at byte `at`, with its end, or `None` for plain text.
fn scan(code: &str, at: usize, language: Language) -> Option<(Token, usize)> {
    let bytes = code.as_bytes();
    let rest = &code[at..];
    let byte = bytes[at];
    match language {
        Language::Rhai => {
            if rest.starts_with("//") {
                return Some((Token::Comment, line_end(code, at)));
            }
            if rest.starts_with("/*") {
                return Some((Token::Comment, block_comment_end(code, at)));
            }
            if matches!(byte, b'"' | b'\'' | b'`') {
                let multiline = byte == b'`';
                return Some((Token::String, quoted_end(code, at + 1, byte, multiline)));
            }
        }
        Language::Python => {
            if byte == b'#' {
                return Some((Token::Comment, line_end(code, at)));
            }
            if byte == b'@' && only_spaces_before(code, at) {
                let end = ident_end(code, at + 1);
                if end > at + 1 {
                    return Some((Token::Decorator, dotted_end(code, end)));
                }
            }
            if let Some(end) = python_string(code, at) {
                return Some((Token::String, end));
            }
        }
        Language::Plain => return None,
    }
    if byte.is_ascii_digit() && !preceded_by_ident(code, at) {
        return Some((Token::Number, number_end(code, at)));
    }
    if is_ident_start(rest.chars().next()?) && !preceded_by_ident(code, at) {
        let end = ident_end(code, at);
        let word = &code[at..end];
        let (keywords, literals) = match language {
            Language::Rhai => (RHAI_KEYWORDS, RHAI_LITERALS),
            _ => (PYTHON_KEYWORDS, PYTHON_LITERALS),
        };
        let token = if keywords.contains(&word) {
            Token::Keyword
        } else if literals.contains(&word) {
            Token::Literal
        } else if code[end..].trim_start_matches([' ', '\t']).starts_with('(') {
            Token::Function
        } else {
            Token::Plain
        };
        return Some((token, end));
    }
    None
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

fn preceded_by_ident(code: &str, at: usize) -> bool {
    code[..at].chars().next_back().is_some_and(is_ident_char)
}

fn only_spaces_before(code: &str, at: usize) -> bool {
    code[..at]
        .chars()
        .rev()
        .take_while(|&c| c != '\n')
        .all(|c| c == ' ' || c == '\t')
}

fn ident_end(code: &str, at: usize) -> usize {
    code[at..]
        .char_indices()
        .find(|&(_, c)| !is_ident_char(c))
        .map_or(code.len(), |(offset, _)| at + offset)
}

/// The end of `name(.name)*` whose first name ends at `at`.
fn dotted_end(code: &str, mut at: usize) -> usize {
    while code[at..].starts_with('.') {
        let end = ident_end(code, at + 1);
        if end == at + 1 {
            break;
        }
        at = end;
    }
    at
}

fn line_end(code: &str, at: usize) -> usize {
    code[at..]
        .find('\n')
        .map_or(code.len(), |offset| at + offset)
}

/// The end of a `/* */` comment starting at `at`; Rhai nests them.
fn block_comment_end(code: &str, at: usize) -> usize {
    let bytes = code.as_bytes();
    let mut depth = 0usize;
    let mut index = at;
    while index + 1 < bytes.len() {
        if bytes[index] == b'/' && bytes[index + 1] == b'*' {
            depth += 1;
            index += 2;
        } else if bytes[index] == b'*' && bytes[index + 1] == b'/' {
            depth -= 1;
            index += 2;
            if depth == 0 {
                return index;
            }
        } else {
            index += 1;
        }
    }
    code.len()
}

/// The end of a string whose opening `quote` ends just before `at`.
///
/// A string that may not span lines and misses its closing quote ends at
/// the end of its line, so one stray quote colours little.
fn quoted_end(code: &str, at: usize, quote: u8, multiline: bool) -> usize {
    let bytes = code.as_bytes();
    let mut index = at;
    while index < bytes.len() {
        match bytes[index] {
            b'\\' => index = after_escape(code, index),
            b'\n' if !multiline => return index,
            byte if byte == quote => return index + 1,
            _ => index += 1,
        }
    }
    code.len()
}

/// The index after the backslash at `at` and the character it escapes.
fn after_escape(code: &str, at: usize) -> usize {
    let next = code[at + 1..].chars().next().map_or(0, char::len_utf8);
    at + 1 + next
}

/// A Python string literal with its prefix (`r`, `b`, `f`, `rb`, ...) and
/// triple quotes, starting at `at`.
fn python_string(code: &str, at: usize) -> Option<usize> {
    if preceded_by_ident(code, at) {
        return None;
    }
    let bytes = code.as_bytes();
    let mut quote_at = at;
    while quote_at < bytes.len()
        && quote_at - at < 2
        && matches!(
            bytes[quote_at].to_ascii_lowercase(),
            b'r' | b'b' | b'f' | b'u'
        )
    {
        quote_at += 1;
    }
    let quote = *bytes.get(quote_at)?;
    if quote != b'"' && quote != b'\'' {
        return None;
    }
    let triple = [quote; 3];
    if bytes[quote_at..].starts_with(&triple) {
        let body = quote_at + 3;
        let mut index = body;
        while index < bytes.len() {
            if bytes[index] == b'\\' {
                index = after_escape(code, index);
            } else if bytes[index..].starts_with(&triple) {
                return Some(index + 3);
            } else {
                index += 1;
            }
        }
        return Some(code.len());
    }
    Some(quoted_end(code, quote_at + 1, quote, false))
}

/// The end of a number: digits, `_`, a fraction, an exponent, a radix
/// prefix, and letters of a suffix (`0xff`, `1e-3`, `2j`).
fn number_end(code: &str, at: usize) -> usize {
    let bytes = code.as_bytes();
    let mut index = at;
    while index < bytes.len() {
        let byte = bytes[index];
        let exponent_sign = matches!(byte, b'+' | b'-')
            && matches!(bytes[index - 1], b'e' | b'E')
            && !code[at..index].starts_with("0x");
        let fraction = byte == b'.' && bytes.get(index + 1).is_some_and(u8::is_ascii_digit);
        if byte.is_ascii_alphanumeric() || byte == b'_' || fraction || exponent_sign {
            index += 1;
        } else {
            break;
        }
    }
    index
}

/// Appends `code` to `out` as highlighted HTML, one `<span class="l">` per
/// line, so the page can number lines with a CSS counter.
pub(crate) fn push_code(out: &mut String, code: &str, language: Language) {
    for (index, line) in split_lines(&tokens(code, language)).iter().enumerate() {
        if index > 0 {
            out.push('\n');
        }
        out.push_str("<span class=\"l\">");
        for (token, text) in line {
            let class = token.class();
            if class.is_empty() {
                push_text(out, text);
            } else {
                out.push_str("<span class=\"");
                out.push_str(class);
                out.push_str("\">");
                push_text(out, text);
                out.push_str("</span>");
            }
        }
        out.push_str("</span>");
    }
}

/// The tokens cut at line breaks, so no span crosses a line.
fn split_lines<'a>(tokens: &[(Token, &'a str)]) -> Vec<Vec<(Token, &'a str)>> {
    let mut lines = vec![Vec::new()];
    for &(token, text) in tokens {
        for (index, piece) in text.split('\n').enumerate() {
            if index > 0 {
                lines.push(Vec::new());
            }
            if !piece.is_empty() {
                if let Some(line) = lines.last_mut() {
                    line.push((token, piece));
                }
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tokens of `code` other than plain text, as `class:text`.
    #[track_caller]
    fn check(code: &str, language: Language, expect: &[&str]) {
        let pieces = tokens(code, language);
        let joined: String = pieces.iter().map(|(_, text)| *text).collect();
        assert_eq!(joined, code, "tokens cover the code exactly");
        let found: Vec<String> = pieces
            .iter()
            .filter(|(token, _)| *token != Token::Plain)
            .map(|(token, text)| format!("{}:{text}", token.class()))
            .collect();
        assert_eq!(found, expect);
    }

    #[test]
    fn rhai_tokens() {
        check(
            "let x = 1_000; // one\nfn f(a) { a.len() + 0x1f }",
            Language::Rhai,
            &[
                "k:let", "n:1_000", "c:// one", "k:fn", "f:f", "f:len", "n:0x1f",
            ],
        );
        check(
            r#"print(`a ${b}`); let s = "q\"t"; 'c' /* a /* nested */ c */ true"#,
            Language::Rhai,
            &[
                "f:print",
                "s:`a ${b}`",
                "k:let",
                "s:\"q\\\"t\"",
                "s:'c'",
                "c:/* a /* nested */ c */",
                "b:true",
            ],
        );
        check("x2 = 1.5e-3;", Language::Rhai, &["n:1.5e-3"]);
    }

    #[test]
    fn python_tokens() {
        check(
            "@app.cell\ndef f(mo):\n    s = rb'x\\'y' + f\"{a}\"  # c\n    return None",
            Language::Python,
            &[
                "d:@app.cell",
                "k:def",
                "f:f",
                "s:rb'x\\'y'",
                "s:f\"{a}\"",
                "c:# c",
                "k:return",
                "b:None",
            ],
        );
        check(
            "x = \"\"\"a\nb\"\"\" if y else 2j",
            Language::Python,
            &["s:\"\"\"a\nb\"\"\"", "k:if", "k:else", "n:2j"],
        );
        check("a @ b", Language::Python, &[]);
    }

    #[test]
    fn unclosed_strings_stop_at_the_line_end() {
        check(
            "let s = \"open\nlet t = 1;",
            Language::Rhai,
            &["k:let", "s:\"open", "k:let", "n:1"],
        );
    }

    #[test]
    fn html_has_one_span_per_line_and_escapes() {
        let mut out = String::new();
        push_code(&mut out, "/* a\nb */ x < 1", Language::Rhai);
        assert_eq!(
            out,
            "<span class=\"l\"><span class=\"c\">/* a</span></span>\n\
             <span class=\"l\"><span class=\"c\">b */</span> x &lt; <span class=\"n\">1</span></span>"
        );
    }
}
