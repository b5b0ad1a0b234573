//! Refusing introspection where it is turned off, with an error that says so.
//!
//! async-graphql 7.2's `disable_introspection` answers `__schema` and `__type` with
//! `null`, which breaks their non-null types and tells a tool nothing. quire refuses the
//! document instead, before execution, with its own code, as other GraphQL servers do.
//! Any field of those names anywhere in the document counts: they exist only on the query
//! root, and anywhere else validation would refuse them anyway. `__typename` stays.

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

use super::error_codes::Unrunnable;
use crate::error::Code;

/// Refuses `document` if it asks for `__schema` or `__type`.
pub fn refuse(document: &ExecutableDocument) -> Result<(), Unrunnable> {
    let operations = document
        .operations
        .iter()
        .map(|(_, op)| &op.node.selection_set.node);
    let fragments = document
        .fragments
        .values()
        .map(|f| &f.node.selection_set.node);
    if operations.chain(fragments).any(asks) {
        return Err(Unrunnable::new(
            Code::IntrospectionDisabled,
            "introspection is turned off on this server (QUIRE_INTROSPECTION=false): \
             __schema and __type are not available",
        ));
    }
    Ok(())
}

/// Whether a selection set asks for introspection at any depth. Recursion is bounded by
/// the nesting the text check allowed.
fn asks(set: &SelectionSet) -> bool {
    set.items.iter().any(|item| match &item.node {
        Selection::Field(field) => {
            matches!(field.node.name.node.as_str(), "__schema" | "__type")
                || asks(&field.node.selection_set.node)
        }
        Selection::InlineFragment(inline) => asks(&inline.node.selection_set.node),
        Selection::FragmentSpread(_) => false,
    })
}
