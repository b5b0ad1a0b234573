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

#[cfg(test)]
mod tests {
    use async_graphql::{Response, Value, parser::parse_query};
    use serde_json::json;

    use super::reorder_response;

    fn reordered(query: &str, data: serde_json::Value) -> String {
        let document = parse_query(query).unwrap();
        let mut response = Response::new(Value::from_json(data).unwrap());
        reorder_response(&mut response, &document, None);
        serde_json::to_string(&response.data).unwrap()
    }

    #[test]
    fn objects_are_put_in_selection_order_at_every_depth() {
        let query = "{ a { x y: z ...F } b } fragment F on T { w x }";
        // In order at the top, out of order below (w came before y, an alias).
        let data = json!({ "a": { "x": 1, "w": 2, "y": 3 }, "b": [ { } ] });
        assert_eq!(
            reordered(query, data),
            r#"{"a":{"x":1,"y":3,"w":2},"b":[{}]}"#
        );
        // Out of order at the top, in order below, in a list.
        let query = "{ b a { ... on T { x } y } }";
        let data = json!({ "a": [{ "x": 1, "y": 2 }, { "y": 4, "x": 3 }], "b": true });
        assert_eq!(
            reordered(query, data),
            r#"{"b":true,"a":[{"x":1,"y":2},{"x":3,"y":4}]}"#
        );
    }

    #[test]
    fn a_field_selected_twice_keeps_its_first_place() {
        let query = "{ a ...F b } fragment F on Q { a c }";
        assert_eq!(
            reordered(query, json!({ "a": 1, "c": 2, "b": 3 })),
            r#"{"a":1,"c":2,"b":3}"#
        );
        assert_eq!(
            reordered(query, json!({ "b": 3, "a": 1, "c": 2 })),
            r#"{"a":1,"c":2,"b":3}"#
        );
    }
}
