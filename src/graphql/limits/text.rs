//! Looking at a document's text before it is parsed.
//!
//! async-graphql-parser 7.2 bounds how deeply selection sets nest, but not lists and
//! objects within arguments: it descends into each by calling itself, so a value nested a
//! couple of thousand levels deep (`[[[[…]]]]`, 3 KB) overflows a worker thread's stack
//! and aborts the process. [`scan`] goes through the text once, skipping strings and
//! comments, and refuses brackets nested more than [`super::MAX_BRACKETS`] deep, and
//! names or numbers longer than [`super::MAX_NAME`] (a name is repeated in every error
//! that speaks of it).

use super::{Exceeded, MAX_BRACKETS, MAX_NAME};

/// Refuses `text` when its brackets nest too deeply or a name or number is too long; the
/// refusal holds the byte offset at fault.
pub(super) fn scan(text: &str) -> Result<(), Exceeded> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut word = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_alphanumeric() || b == b'_' {
            word += 1;
            if word > MAX_NAME {
                return Err(Exceeded::LongName(i));
            }
            i += 1;
            continue;
        }
        word = 0;
        match b {
            b'#' => {
                // A comment runs to the end of the line.
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' => {
                // Where the parser's string ends, or, where it would find none, only this
                // quote: what follows is then scanned as it is, brackets and all.
                i = string_end(bytes, i).unwrap_or(i + 1);
                continue;
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > MAX_BRACKETS {
                    return Err(Exceeded::Brackets(i));
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Where the string opening at `start` ends (just past its closing quotes), as the
/// grammar of async-graphql-parser 7.2 reads strings: a block string needs its closing
/// `"""` (and a `"""` that never closes is read as the empty string `""`); a string
/// ends at its closing quote, and fails at a line break, the end of the text or an
/// escape the grammar does not know. `None` when it fails.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    if bytes[start..].starts_with(b"\"\"\"") {
        let mut i = start + 3;
        while i < bytes.len() {
            if bytes[i..].starts_with(b"\\\"\"\"") {
                i += 4;
            } else if bytes[i..].starts_with(b"\"\"\"") {
                return Some(i + 3);
            } else {
                i += 1;
            }
        }
        // Unclosed: the parser takes the first two quotes for an empty string.
        return Some(start + 2);
    }
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return Some(i + 1),
            b'\n' | b'\r' => return None,
            b'\\' => match bytes.get(i + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                Some(b'u')
                    if bytes
                        .get(i + 2..i + 6)
                        .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)) =>
                {
                    i += 6;
                }
                _ => return None,
            },
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_brackets_are_refused_wherever_they_are() {
        let list = format!(
            "{{ post(id: {}1{}) {{ id }} }}",
            "[".repeat(70),
            "]".repeat(70)
        );
        assert!(matches!(scan(&list), Err(Exceeded::Brackets(_))));
        let object = format!("{{ f(a: {}1{}) }}", "{a: ".repeat(70), "}".repeat(70));
        assert!(matches!(scan(&object), Err(Exceeded::Brackets(_))));
        let fine = format!("{{ f(a: {}1{}) }}", "[".repeat(20), "]".repeat(20));
        assert_eq!(scan(&fine), Ok(()));
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let many = "[".repeat(500);
        for text in [
            format!("{{ f(a: \"{many}\") }}"),
            format!("{{ f(a: \"\"\"{many} \\\"\"\" {many}\"\"\") }}"),
            format!("{{ f # {many}\n }}"),
            format!("{{ f(a: \"escaped \\\" {many}\") }}"),
        ] {
            assert_eq!(scan(&text), Ok(()), "{text}");
        }
    }

    #[test]
    fn brackets_after_a_string_the_parser_reads_otherwise_still_count() {
        let deep = format!("{}1{}", "[".repeat(70), "]".repeat(70));
        for text in [
            // A block string never closed is the empty string, then a string.
            format!("{{ f(a: [\"\"\"x\"] b: {deep}) }}"),
            // A string cut by a line break, or with an escape the grammar does not know.
            format!("{{ f(a: \"x\n b: {deep}) }}"),
            format!("{{ f(a: \"\\q {deep}\") }}"),
            format!("{{ f(a: \"\\u12 {deep}\") }}"),
        ] {
            assert!(matches!(scan(&text), Err(Exceeded::Brackets(_))), "{text}");
        }
    }

    #[test]
    fn long_names_and_numbers_are_refused() {
        let name = "a".repeat(MAX_NAME + 1);
        assert!(matches!(
            scan(&format!("{{ {name} }}")),
            Err(Exceeded::LongName(_))
        ));
        let number = "9".repeat(MAX_NAME + 1);
        assert!(matches!(
            scan(&format!("{{ f(a: {number}) }}")),
            Err(Exceeded::LongName(_))
        ));
        let long_string = "a".repeat(10 * MAX_NAME);
        assert_eq!(scan(&format!("{{ f(a: \"{long_string}\") }}")), Ok(()));
    }
}
