//! Measuring a document as the walks that follow every fragment spread would see it, in
//! time linear in its size: each fragment is measured once, and its measure reused
//! wherever it is spread. See [`super`] for what is counted and why.

use std::collections::HashMap;

use async_graphql::{
    Name, Pos, Positioned,
    parser::types::{Directive, ExecutableDocument, Selection, SelectionSet},
};
use async_graphql_value::{ConstValue, Value};

use super::{Exceeded, MAX_ARGUMENTS, MAX_DIRECTIVES, MAX_NESTING};

/// What a document or one of its parts costs once its fragments are expanded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Cost {
    /// Nodes, as the module counts them (saturating: a bomb's count would overflow any
    /// integer).
    nodes: u64,
    /// Fields with an alias.
    aliases: u64,
    /// How many levels of selections nest below this one.
    height: usize,
}

impl Cost {
    /// `self` and a selection of `own` nodes whose selections cost `inner`, one level down.
    fn add(&mut self, inner: Cost, own: u64, alias: bool, nested: bool) {
        self.nodes = self.nodes.saturating_add(inner.nodes.saturating_add(own));
        self.aliases = self
            .aliases
            .saturating_add(inner.aliases.saturating_add(u64::from(alias)));
        self.height = self.height.max(inner.height + usize::from(nested));
    }
}

/// The nodes of each variable's value, as sent or by default: validation and execution
/// copy it into every place it is used.
type Variables<'a> = HashMap<&'a str, u64>;

/// The nodes of a value within an argument: one, and one more for every KiB of a string
/// and for each item or entry of a list or object, with what they hold; a variable
/// counts its value's. (The text was checked for how deeply its brackets nest before it
/// was parsed, and JSON variables nest at most 128 deep.)
fn value_nodes(value: &Value, variables: &Variables<'_>) -> u64 {
    match value {
        Value::Variable(name) => variables.get(name.as_str()).copied().unwrap_or(1),
        Value::String(text) => 1 + (text.len() / 1024) as u64,
        Value::Binary(bytes) => 1 + (bytes.len() / 1024) as u64,
        Value::List(items) => items
            .iter()
            .fold(1, |n, item| n.saturating_add(value_nodes(item, variables))),
        Value::Object(entries) => entries.values().fold(1, |n, item| {
            n.saturating_add(1)
                .saturating_add(value_nodes(item, variables))
        }),
        _ => 1,
    }
}

/// [`value_nodes`] of a value without variables.
fn const_nodes(value: &ConstValue) -> u64 {
    match value {
        ConstValue::String(text) => 1 + (text.len() / 1024) as u64,
        ConstValue::Binary(bytes) => 1 + (bytes.len() / 1024) as u64,
        ConstValue::List(items) => items
            .iter()
            .fold(1, |n, item| n.saturating_add(const_nodes(item))),
        ConstValue::Object(entries) => entries.values().fold(1, |n, item| {
            n.saturating_add(1).saturating_add(const_nodes(item))
        }),
        _ => 1,
    }
}

/// The nodes of one place's arguments and directives, which it carries at most
/// [`MAX_ARGUMENTS`] and [`MAX_DIRECTIVES`] of.
fn own_nodes(
    arguments: &[(Positioned<Name>, Positioned<Value>)],
    directives: &[Positioned<Directive>],
    variables: &Variables<'_>,
    pos: Pos,
) -> Result<u64, Exceeded> {
    if directives.len() > MAX_DIRECTIVES {
        return Err(Exceeded::Directives(pos));
    }
    let mut nodes = 1u64;
    for (_, value) in arguments
        .iter()
        .chain(directives.iter().flat_map(|d| d.node.arguments.iter()))
    {
        nodes = nodes
            .saturating_add(1)
            .saturating_add(value_nodes(&value.node, variables));
    }
    let too_many = arguments.len() > MAX_ARGUMENTS
        || directives
            .iter()
            .any(|d| d.node.arguments.len() > MAX_ARGUMENTS);
    if too_many {
        return Err(Exceeded::Arguments(pos));
    }
    Ok(nodes.saturating_add(directives.len() as u64))
}

/// A fragment being measured, or measured.
enum Memo {
    Measuring,
    Measured(Cost),
}

struct Walk<'a> {
    document: &'a ExecutableDocument,
    variables: Variables<'a>,
    fragments: HashMap<&'a str, Memo>,
}

impl<'a> Walk<'a> {
    /// The cost of `set`, found at nesting level `level` (0 for an operation's own).
    fn set(&mut self, set: &'a SelectionSet, level: usize, pos: Pos) -> Result<Cost, Exceeded> {
        if level > MAX_NESTING {
            return Err(Exceeded::TooDeep(pos));
        }
        let mut cost = Cost::default();
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    let own = own_nodes(
                        &field.node.arguments,
                        &field.node.directives,
                        &self.variables,
                        item.pos,
                    )?;
                    let children = &field.node.selection_set;
                    let nested = !children.node.items.is_empty();
                    let inner = if nested {
                        self.set(&children.node, level + 1, children.pos)?
                    } else {
                        Cost::default()
                    };
                    cost.add(inner, own, field.node.alias.is_some(), nested);
                }
                Selection::InlineFragment(inline) => {
                    let own = own_nodes(&[], &inline.node.directives, &self.variables, item.pos)?;
                    let children = &inline.node.selection_set;
                    let inner = self.set(&children.node, level + 1, children.pos)?;
                    cost.add(inner, own, false, true);
                }
                Selection::FragmentSpread(spread) => {
                    let own = own_nodes(&[], &spread.node.directives, &self.variables, item.pos)?;
                    let inner =
                        self.fragment(&spread.node.fragment_name.node, level + 1, item.pos)?;
                    cost.add(inner, own, false, true);
                }
            }
        }
        Ok(cost)
    }

    /// The cost of the fragment `name`, spread so that its selections are at `level`:
    /// measured the first time, remembered after.
    fn fragment(&mut self, name: &'a Name, level: usize, pos: Pos) -> Result<Cost, Exceeded> {
        match self.fragments.get(name.as_str()) {
            Some(Memo::Measured(cost)) if level + cost.height > MAX_NESTING => {
                Err(Exceeded::TooDeep(pos))
            }
            Some(Memo::Measured(cost)) => Ok(*cost),
            Some(Memo::Measuring) => Err(Exceeded::Cycle(name.clone(), pos)),
            None => {
                // An unknown fragment is validation's to report.
                let Some(fragment) = self.document.fragments.get(name) else {
                    return Ok(Cost::default());
                };
                let own = own_nodes(
                    &[],
                    &fragment.node.directives,
                    &self.variables,
                    fragment.pos,
                )?;
                self.fragments.insert(name.as_str(), Memo::Measuring);
                let set = &fragment.node.selection_set;
                let mut cost = self.set(&set.node, level, set.pos)?;
                // The definition's own directives, visited wherever it is spread.
                cost.nodes = cost.nodes.saturating_add(own - 1);
                self.fragments.insert(name.as_str(), Memo::Measured(cost));
                Ok(cost)
            }
        }
    }
}

/// Measures `document`, and refuses it past the limits.
pub(super) fn measure<'a>(
    document: &'a ExecutableDocument,
    sent: &'a async_graphql::Variables,
    max_nodes: usize,
    max_aliases: usize,
) -> Result<Cost, Exceeded> {
    // A variable sent weighs its value; one not sent, the largest of its defaults.
    let mut variables: Variables<'a> = sent
        .iter()
        .map(|(name, value)| (name.as_str(), const_nodes(value)))
        .collect();
    for (_, operation) in document.operations.iter() {
        for variable in &operation.node.variable_definitions {
            if let Some(default) = &variable.node.default_value
                && !sent.contains_key(&variable.node.name.node)
            {
                let weight = variables
                    .entry(variable.node.name.node.as_str())
                    .or_insert(0);
                *weight = (*weight).max(const_nodes(&default.node));
            }
        }
    }
    let mut walk = Walk {
        document,
        variables,
        fragments: HashMap::with_capacity(document.fragments.len()),
    };
    let mut total = Cost::default();
    for (_, operation) in document.operations.iter() {
        // The operation's directives and variable definitions, not itself.
        let directives = &operation.node.directives;
        let mut own = own_nodes(&[], directives, &walk.variables, operation.pos)? - 1;
        for variable in &operation.node.variable_definitions {
            let directives = &variable.node.directives;
            own = own
                .saturating_add(own_nodes(&[], directives, &walk.variables, variable.pos)?)
                .saturating_add(
                    variable
                        .node
                        .default_value
                        .as_ref()
                        .map_or(0, |v| const_nodes(&v.node)),
                );
        }
        let set = &operation.node.selection_set;
        let cost = walk.set(&set.node, 0, set.pos)?;
        if cost.aliases > max_aliases as u64 {
            return Err(Exceeded::Aliases(operation.pos));
        }
        total.nodes = total.nodes.saturating_add(cost.nodes).saturating_add(own);
        total.aliases = total.aliases.max(cost.aliases);
        total.height = total.height.max(cost.height);
        if total.nodes > max_nodes as u64 {
            return Err(Exceeded::Nodes(total.nodes));
        }
    }
    if let Some((name, fragment)) = document
        .fragments
        .iter()
        .find(|(name, _)| !walk.fragments.contains_key(name.as_str()))
    {
        return Err(Exceeded::Unused(name.clone(), fragment.pos));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::parse_query;

    use super::*;

    fn cost(query: &str) -> Result<Cost, Exceeded> {
        cost_with(query, serde_json::json!({}))
    }

    fn cost_with(query: &str, variables: serde_json::Value) -> Result<Cost, Exceeded> {
        let variables = async_graphql::Variables::from_json(variables);
        measure(
            &parse_query(query).unwrap(),
            &variables,
            usize::MAX,
            usize::MAX,
        )
    }

    /// `query { ...F0 }`, with each fragment spreading the next `width` times.
    fn bomb(levels: usize, width: usize) -> String {
        let mut text = String::from("query { ...F0 }");
        for i in 0..levels {
            let spreads = format!(" ...F{}", i + 1).repeat(width);
            text.push_str(&format!(" fragment F{i} on Query {{{spreads} }}"));
        }
        text.push_str(&format!(" fragment F{levels} on Query {{ __typename }}"));
        text
    }

    #[test]
    fn fragments_count_as_often_as_they_are_spread() {
        let c = cost("{ me { id a: id ...U ...U } } fragment U on User { b: username }").unwrap();
        // me, id, a, two spreads, and b twice.
        assert_eq!(c.nodes, 7);
        assert_eq!(c.aliases, 3);
        assert_eq!(c.height, 2);
    }

    #[test]
    fn a_fragment_bomb_is_measured_at_once_and_refused() {
        // Twenty levels doubling: about three million selections once expanded (each
        // level's two spreads and what they expand to, and the last level's field).
        let c = cost(&bomb(20, 2)).unwrap();
        assert_eq!(c.nodes, 3 * (1u64 << 20) - 1);
        // Thirty levels of ten each would overflow; the count saturates instead.
        let document = parse_query(bomb(30, 10)).unwrap();
        assert_eq!(
            measure(&document, &Default::default(), 2000, 15),
            Err(Exceeded::Nodes(u64::MAX))
        );
    }

    #[test]
    fn nesting_is_bounded_without_deep_recursion() {
        // A chain of ten thousand fragments, each spreading the next.
        let mut text = String::from("{ ...F0 }");
        for i in 0..10_000 {
            text.push_str(&format!(" fragment F{i} on Query {{ ...F{} }}", i + 1));
        }
        text.push_str(" fragment F10000 on Query { __typename }");
        assert!(matches!(cost(&text), Err(Exceeded::TooDeep(_))));
        // Thirty-two levels are allowed, as async-graphql allows them.
        let mut text = String::from("{ ...F0 }");
        for i in 0..31 {
            text.push_str(&format!(" fragment F{i} on Query {{ ...F{} }}", i + 1));
        }
        text.push_str(" fragment F31 on Query { __typename }");
        assert_eq!(cost(&text).unwrap().height, 32);
    }

    #[test]
    fn cycles_and_unused_fragments_are_refused() {
        assert!(matches!(
            cost("{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }"),
            Err(Exceeded::Cycle(..))
        ));
        assert!(matches!(
            cost("{ me { id } } fragment A on Query { __typename }"),
            Err(Exceeded::Unused(..))
        ));
    }

    #[test]
    fn directives_are_bounded_everywhere() {
        let many = " @skip(if: false)".repeat(11);
        for text in [
            format!("{{ me{many} {{ id }} }}"),
            format!("{{ me {{ ...U{many} }} }} fragment U on User {{ id }}"),
            format!("{{ me {{ ... on User{many} {{ id }} }} }}"),
            format!("{{ me {{ ...U }} }} fragment U on User{many} {{ id }}"),
            format!("query Q{many} {{ me {{ id }} }}"),
        ] {
            assert!(
                matches!(cost(&text), Err(Exceeded::Directives(_))),
                "{text}"
            );
        }
        let ten = " @skip(if: false)".repeat(10);
        assert!(cost(&format!("{{ me{ten} {{ id }} }}")).is_ok());
    }

    #[test]
    fn arguments_directives_and_values_count_wherever_they_are_spread() {
        // A field with two arguments (each one and its value one) and a directive with
        // one argument (the directive one, the argument one, its value one): eight.
        let c =
            cost("{ posts(first: 5, after: \"c\") @include(if: true) { __typename } }").unwrap();
        assert_eq!(c.nodes, 9);
        // Lists and objects count their items and entries; a long string its KiB.
        let long = "x".repeat(4096);
        let c = cost(&format!(
            "{{ f(a: [1, 2, 3], b: {{ c: 1, d: \"{long}\" }}) }}"
        ))
        .unwrap();
        // f 1; a 1 + list 1 + 3; b 1 + object 1 + c (1 + 1) + d (1 + 1 + 4).
        assert_eq!(c.nodes, 1 + 5 + 2 + 2 + 6);
        // A fragment's arguments count each time it is spread.
        let c = cost("{ me { ...U ...U } } fragment U on User { posts(first: 1) { __typename } }")
            .unwrap();
        assert_eq!(c.nodes, 1 + 2 * (1 + 3 + 1));
        // Variable definitions count once, with their default values.
        let c = cost("query($a: Int = 1, $b: [Int] = [1, 2]) { __typename }").unwrap();
        assert_eq!(c.nodes, 1 + 2 + 4);
        // A variable weighs its value wherever it is used, sent or by default.
        let used_twice = "query($v: [Int]) { a: f(x: $v) b: f(x: $v) }";
        let c = cost_with(used_twice, serde_json::json!({ "v": [1, 2, 3, 4] })).unwrap();
        // a and b 1 each, each argument 1 and the list 5; the definition 1.
        assert_eq!(c.nodes, 2 * (1 + 1 + 5) + 1);
        let by_default = "query($v: [Int] = [1, 2, 3, 4]) { a: f(x: $v) b: f(x: $v) }";
        assert_eq!(cost(by_default).unwrap().nodes, 2 * (1 + 1 + 5) + 1 + 5);
        let many = (0..17)
            .map(|i| format!("a{i}: 1"))
            .collect::<Vec<_>>()
            .join(", ");
        assert!(matches!(
            cost(&format!("{{ f({many}) }}")),
            Err(Exceeded::Arguments(_))
        ));
    }

    #[test]
    fn aliases_are_counted_per_operation() {
        let document =
            parse_query("query A { a: me { id } b: me { id } } query B { c: me { id } }").unwrap();
        assert!(measure(&document, &Default::default(), 2000, 2).is_ok());
        assert!(matches!(
            measure(&document, &Default::default(), 2000, 1),
            Err(Exceeded::Aliases(_))
        ));
    }
}
