//! Refuses documents that would cost too much, before anything else walks them.
//!
//! async-graphql 7.2 trusts the documents it is given: its parser descends into nested
//! values by calling itself, its walks (the recursion-depth check before validation, the
//! depth and complexity visitors of validation, and the ordering of response fields here)
//! follow every fragment spread into the fragment each time it is spread, and its
//! validation reports every fault in every place that reaches it. So a few kilobytes,
//! anonymous, could overflow a worker thread's stack, keep it busy for ever (a fragment
//! that spreads another twice, forty levels deep), or build gigabytes of error messages.
//! quire checks first, in three steps, each linear in the document's size:
//!
//! 1. [`check_text`], before parsing ([`text`]): brackets nested more than
//!    [`MAX_BRACKETS`] deep, and names or numbers longer than [`MAX_NAME`].
//! 2. [`check`], once parsed: the document measured as those walks would see it, each
//!    fragment measured once and its measure reused wherever it is spread ([`measure`]):
//!    - more than `max_nodes` nodes once its fragments are expanded, all operations
//!      together. Each field, fragment spread, inline fragment, argument, directive,
//!      variable definition and value within an argument counts one (a string one more
//!      for every KiB), each fragment as often as it is spread: the walks visit
//!      arguments and directives wherever a fragment is spread, so those count as much as
//!      the fields do. A variable counts its value (as sent, or by default) wherever it
//!      is used, since validation and execution copy it into each place;
//!    - selections nested more than [`MAX_NESTING`] levels deep, a fragment spread or
//!      inline fragment counting as a level, as async-graphql's own check counts them
//!      (which also bounds the recursion of every walk here);
//!    - more than [`MAX_ARGUMENTS`] arguments or [`MAX_DIRECTIVES`] directives in one
//!      place, and more than `max_aliases` aliased fields in one operation;
//!    - a fragment that spreads itself, directly or through others, or that no operation
//!      uses: invalid GraphQL that validation would refuse too, but only after walking it.
//! 3. Then, within what step 2 allowed: two fields under one response name that differ
//!    ([`conflicts`]), refused once rather than reported by validation from every place
//!    that reaches them.
//!
//! Depth and complexity proper are then async-graphql's checks (set up in
//! [`super::schema`]); their walks are bounded by what these allowed through.

mod conflicts;
mod measure;
mod text;

use async_graphql::{Name, Pos, ServerError, Variables, parser::types::ExecutableDocument};

use super::error_codes::with_code;
use crate::error::Code;

/// How deeply brackets (`{`, `[`, `(`) may nest in a document's text: far more than
/// selections nested [`MAX_NESTING`] deep with arguments need, and far less than would
/// strain the parser.
pub const MAX_BRACKETS: usize = 64;

/// The longest name or number in a document.
pub const MAX_NAME: usize = 256;

/// How deeply selections may nest, counting fragments: async-graphql's default for its own
/// recursion-depth check, which would refuse anything deeper later.
pub const MAX_NESTING: usize = 32;

/// The most directives one field, fragment spread, inline fragment, fragment or operation
/// may carry.
pub const MAX_DIRECTIVES: usize = 10;

/// The most arguments one field or directive may take: validation compares the arguments
/// of fields that share a name pairwise.
pub const MAX_ARGUMENTS: usize = 16;

/// Which bound a document exceeds, and where.
#[derive(Debug, PartialEq, Eq)]
enum Exceeded {
    /// Brackets nested too deeply, at this byte.
    Brackets(usize),
    /// A name or number too long, at this byte.
    LongName(usize),
    Nodes(u64),
    Aliases(Pos),
    TooDeep(Pos),
    Directives(Pos),
    Arguments(Pos),
    Cycle(Name, Pos),
    Unused(Name, Pos),
    /// Two fields under this response name differ.
    Conflict(String, Pos, Pos),
}

/// Refuses a document's `text` before it is parsed when its brackets nest more than
/// [`MAX_BRACKETS`] deep or a name or number is longer than [`MAX_NAME`].
pub fn check_text(text: &str) -> Result<(), ServerError> {
    let (message, at) = match text::scan(text) {
        Ok(()) => return Ok(()),
        Err(Exceeded::Brackets(at)) => (
            format!("brackets nest more than {MAX_BRACKETS} levels deep"),
            at,
        ),
        Err(Exceeded::LongName(at)) => (
            format!("a name or number is longer than {MAX_NAME} characters"),
            at,
        ),
        Err(other) => unreachable!("the text scan refuses only for its own reasons: {other:?}"),
    };
    Err(with_code(
        ServerError::new(message, Some(position(text, at))),
        Code::GraphqlParseFailed,
    ))
}

/// The line and column of byte `at` of `text`.
fn position(text: &str, at: usize) -> Pos {
    let before = &text[..at.min(text.len())];
    let line = before.bytes().filter(|b| *b == b'\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Pos { line, column }
}

/// Refuses `document` when, its fragments expanded, it has more than `max_nodes` nodes,
/// or one of its operations more than `max_aliases` aliases; when it nests too deeply,
/// has too many arguments or directives in one place, holds a fragment that spreads
/// itself or is never used, or two differing fields under one response name.
pub fn check(
    document: &ExecutableDocument,
    variables: &Variables,
    max_nodes: usize,
    max_aliases: usize,
) -> Result<(), ServerError> {
    let outcome = measure::measure(document, variables, max_nodes, max_aliases)
        .and_then(|_| conflicts::find(document));
    let (message, locations) = match outcome {
        Ok(()) => return Ok(()),
        Err(Exceeded::Nodes(n)) => (
            format!(
                "the document has {n} nodes once its fragments are expanded; \
                 at most {max_nodes} are allowed"
            ),
            vec![Pos { line: 1, column: 1 }],
        ),
        Err(Exceeded::Aliases(pos)) => (
            format!("the operation uses more than {max_aliases} aliases, the most allowed"),
            vec![pos],
        ),
        Err(Exceeded::TooDeep(pos)) => (
            format!("selections nest more than {MAX_NESTING} levels deep, counting fragments"),
            vec![pos],
        ),
        Err(Exceeded::Directives(pos)) => (
            format!("more than {MAX_DIRECTIVES} directives in one place"),
            vec![pos],
        ),
        Err(Exceeded::Arguments(pos)) => (
            format!("more than {MAX_ARGUMENTS} arguments in one place"),
            vec![pos],
        ),
        Err(Exceeded::Cycle(name, pos)) => (
            format!("fragment \"{name}\" spreads itself, directly or through other fragments"),
            vec![pos],
        ),
        Err(Exceeded::Unused(name, pos)) => {
            (format!("fragment \"{name}\" is never used"), vec![pos])
        }
        Err(Exceeded::Conflict(name, first, second)) => (
            format!(
                "fields \"{name}\" conflict: they select different fields or arguments under \
                 one name; give them different aliases to fetch both"
            ),
            vec![first, second],
        ),
        Err(Exceeded::Brackets(_) | Exceeded::LongName(_)) => {
            unreachable!("the text was checked before it was parsed")
        }
    };
    let mut error = ServerError::new(message, None);
    error.locations = locations;
    Err(with_code(error, Code::GraphqlValidationFailed))
}
