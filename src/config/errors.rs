//! Configuration errors told without quoting the configuration.
//!
//! A config file holds access codes, passwords and API keys, so `check-config` and
//! start-up errors keep the file, the line and column, the key and what is wrong, and
//! drop everything else: no excerpt of the line (the TOML parser's own message printed
//! the broken line, access code and all), no value (serde's "invalid type: string
//! \"87654321\"" became "a string"), nothing quoted from the input. Each message is
//! also capped, since even a key name comes from the input.

use std::fmt::Write as _;
use std::path::Path;

use figment::error::{Actual, Kind};

/// Longest message told about one error: room for a key path and a list of known keys,
/// not for a pasted file.
const MAX_ERROR_CHARS: usize = 400;
/// Most errors told at once: the first few say what to fix first.
const MAX_ERRORS: usize = 5;

/// The syntax error in a TOML document, if any, as "file:line:column: what", never
/// with the text around it.
pub fn toml_syntax(text: &str, source: &Path) -> Option<String> {
    let e = toml::from_str::<toml::Table>(text).err()?;
    let at = e
        .span()
        .map(|s| {
            let (line, col) = line_col(text, s.start);
            format!("{}:{line}:{col}", source.display())
        })
        .unwrap_or_else(|| source.display().to_string());
    Some(cap(format!(
        "{at}: TOML syntax error: {}; fix that line (values are not repeated here)",
        unquote(e.message().lines().next().unwrap_or("invalid TOML"))
    )))
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

/// Figment's errors, one line each, naming the key and where it came from.
pub fn describe(e: figment::Error) -> String {
    let mut out = String::new();
    for (i, e) in e.into_iter().enumerate() {
        if i == MAX_ERRORS {
            out.push_str("; (more errors not shown)");
            break;
        }
        if i > 0 {
            out.push_str("; ");
        }
        out.push_str(&one(&e));
    }
    out
}

fn one(e: &figment::Error) -> String {
    let mut s = String::new();
    if let Some(md) = &e.metadata {
        match md.source.as_ref().and_then(|s| s.file_path()) {
            Some(p) => {
                let _ = write!(s, "{}: ", p.display());
            }
            None => {
                let _ = write!(s, "{}: ", unquote(&md.name));
            }
        }
    }
    if !e.path.is_empty() {
        let _ = write!(s, "key `{}`: ", e.path.join("."));
    }
    s.push_str(&kind(&e.kind));
    cap(s)
}

fn kind(k: &Kind) -> String {
    match k {
        Kind::Message(m) => unquote(m),
        Kind::InvalidType(actual, expected) => {
            format!("expected {}, found {}", unquote(expected), what(actual))
        }
        Kind::InvalidValue(actual, expected) => {
            format!("invalid {}, expected {}", what(actual), unquote(expected))
        }
        Kind::InvalidLength(n, expected) => {
            format!("{n} elements, expected {}", unquote(expected))
        }
        Kind::UnknownVariant(_, known) => {
            format!("not one of the accepted values: {}", known.join(", "))
        }
        Kind::UnknownField(field, known) => {
            let known = if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            };
            format!("unknown key `{}`; known keys here: {known}", unquote(field))
        }
        Kind::MissingField(f) => format!("missing key `{f}`"),
        Kind::DuplicateField(f) => format!("key `{f}` given twice"),
        Kind::ISizeOutOfRange(_) | Kind::USizeOutOfRange(_) => "number out of range".into(),
        Kind::Unsupported(actual) => format!("{} is not supported here", what(actual)),
        Kind::UnsupportedKey(actual, _) => {
            format!("a key of type {} is not supported", what(actual))
        }
    }
}

/// What kind of value was found, never the value.
fn what(a: &Actual) -> &'static str {
    match a {
        Actual::Bool(_) => "a boolean",
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer",
        Actual::Float(_) => "a number",
        Actual::Char(_) => "a character",
        Actual::Str(_) => "a string",
        Actual::Bytes(_) => "bytes",
        Actual::Unit => "nothing",
        Actual::Option => "an option",
        Actual::Seq => "a list",
        Actual::Map => "a table",
        Actual::NewtypeStruct
        | Actual::Enum
        | Actual::UnitVariant
        | Actual::NewtypeVariant
        | Actual::TupleVariant
        | Actual::StructVariant
        | Actual::Other(_) => "a value of another type",
    }
}

/// Replaces every double-quoted piece with `"…"`: messages made by serde and by our own
/// types quote the value they refused (`{s:?}`). (Single quotes are left: they are
/// apostrophes and one-character examples.)
pub fn unquote(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_ERROR_CHARS));
    let mut quote = None;
    for c in s.chars() {
        match quote {
            Some(q) if c == q => {
                out.push('…');
                out.push(q);
                quote = None;
            }
            Some(_) => {}
            None if c == '"' => {
                out.push(c);
                quote = Some(c);
            }
            None => out.push(c),
        }
    }
    if let Some(q) = quote {
        out.push('…');
        out.push(q);
    }
    out
}

/// At most `MAX_ERROR_CHARS` characters, cut on a character boundary and marked.
pub fn cap(s: String) -> String {
    match s.char_indices().nth(MAX_ERROR_CHARS) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syntax_error_names_line_and_column_but_not_the_line() {
        let text = "[[printers]]\nid = \"b\"\naccess_code = \"87654321\nhost = \"h\"\n";
        let e = toml_syntax(text, Path::new("farm.toml")).unwrap();
        assert!(e.starts_with("farm.toml:3:"), "{e}");
        assert!(!e.contains("87654321"), "{e}");
        assert!(!e.contains("access_code ="), "{e}");
    }

    #[test]
    fn quoted_pieces_are_dropped() {
        assert_eq!(
            unquote(r#"printer id "a b" contains ' '"#),
            r#"printer id "…" contains ' '"#
        );
        assert_eq!(unquote("open \"secret"), "open \"…\"");
    }

    #[test]
    fn long_messages_are_capped() {
        let s = cap("é".repeat(10 * MAX_ERROR_CHARS));
        assert_eq!(s.chars().count(), MAX_ERROR_CHARS + 1);
    }
}
