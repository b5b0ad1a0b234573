//! Keeps response fields in the order the query asked for them.
//!
//! The GraphQL specification asks that a response's fields follow the order of the
//! selection set ("Serialized Map Ordering"), which people reading responses, snapshot
//! tests and diffs rely on. async-graphql 7.2's executor resolves sibling fields
//! concurrently (`FuturesUnordered`) and records
//! them as they finish, so after execution each object of the response is rebuilt in
//! selection order (following fragments and
//! aliases). It moves values and never copies them.

use async_graphql::{
    Name, Response, Value,
    indexmap::IndexMap,
    parser::types::{DocumentOperations, ExecutableDocument, Selection, SelectionSet},
};

/// Puts the fields of `response` in the order the operation named `operation_name` in
/// `document` selects them.
pub fn reorder_response(
    response: &mut Response,
    document: &ExecutableDocument,
    operation_name: Option<&str>,
) {
    let operation = match &document.operations {
        DocumentOperations::Single(op) => Some(op),
        DocumentOperations::Multiple(ops) => match operation_name {
            Some(name) => ops.get(name),
            None if ops.len() == 1 => ops.values().next(),
            None => None,
        },
    };
    if let Some(op) = operation {
        let data = std::mem::take(&mut response.data);
        response.data = reorder(data, &op.node.selection_set.node, document);
    }
}

/// `value` with every object's keys in the order `set` selects them.
fn reorder(value: Value, set: &SelectionSet, document: &ExecutableDocument) -> Value {
    match value {
        Value::Object(mut fields) => {
            let mut ordered = IndexMap::with_capacity(fields.len());
            collect(&mut ordered, &mut fields, set, document);
            // Anything the walk did not place (none is expected) keeps its place at the end.
            ordered.extend(fields);
            Value::Object(ordered)
        }
        Value::List(items) => Value::List(
            items
                .into_iter()
                .map(|item| reorder(item, set, document))
                .collect(),
        ),
        other => other,
    }
}

fn collect(
    ordered: &mut IndexMap<Name, Value>,
    fields: &mut IndexMap<Name, Value>,
    set: &SelectionSet,
    document: &ExecutableDocument,
) {
    for selection in &set.items {
        match &selection.node {
            Selection::Field(field) => {
                let key = &field.node.response_key().node;
                if let Some(value) = fields.swap_remove(key) {
                    let value = reorder(value, &field.node.selection_set.node, document);
                    ordered.insert(key.clone(), value);
                }
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node) {
                    collect(ordered, fields, &fragment.node.selection_set.node, document);
                }
            }
            Selection::InlineFragment(inline) => {
                collect(ordered, fields, &inline.node.selection_set.node, document);
            }
        }
    }
}
