//! Go-compatible string quoting (`strconv.Quote` / `%q`), used to reproduce upstream messages.

use std::fmt::Write as _;

/// Quotes `s` the way Go's `strconv.Quote` (and `fmt`'s `%q`) does: double quotes, `\"` and `\\`,
/// the C escapes `\a \b \f \n \r \t \v`, `\xHH` for other ASCII control bytes and `\u`/`\U` for
/// non-printable non-ASCII characters.
///
/// Go's notion of "printable" is Unicode categories L, M, N, P, S plus the ASCII space; Rust's std
/// has no category tables, so non-ASCII characters are treated as printable unless they are
/// control characters, whitespace, or well-known format characters (zero-width spaces and joiners,
/// direction marks, U+2028/U+2029, BOM, soft hyphen). All ASCII input is quoted exactly like Go.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_ascii() => out.push(c),
            c if !is_go_printable_non_ascii(c) => {
                if (c as u32) < 0x10000 {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                } else {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn is_go_printable_non_ascii(c: char) -> bool {
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(
        c,
        '\u{ad}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{e000}'..='\u{f8ff}'
    )
}

#[cfg(test)]
mod tests {
    use super::go_quote;

    #[test]
    fn quotes_like_go() {
        assert_eq!(go_quote("abc"), r#""abc""#);
        assert_eq!(go_quote(""), r#""""#);
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(
            go_quote("\n\t\r\u{7}\u{8}\u{c}\u{b}"),
            r#""\n\t\r\a\b\f\v""#
        );
        assert_eq!(go_quote("\u{0}\u{1f}\u{7f}"), r#""\x00\x1f\x7f""#);
        assert_eq!(go_quote("héllo ☺"), "\"héllo ☺\"");
        assert_eq!(
            go_quote("\u{a0}\u{2028}\u{feff}"),
            r#""\u00a0\u2028\ufeff""#
        );
    }
}
