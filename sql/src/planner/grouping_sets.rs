//! `GROUP BY ROLLUP (...)`, `CUBE (...)` and `GROUPING SETS (...)`: a
//! query's rows grouped several ways in one result, with subtotals and a
//! grand total (reports), and `GROUPING(...)` saying which expressions a
//! row was not grouped by.
//!
//! ```text
//!   SELECT region, city, sum(amount) FROM sales GROUP BY ROLLUP (region, city)
//!     grouping sets {region, city}, {region}, {}: a row per city, a
//!     subtotal per region (city NULL), the grand total (both NULL)
//! ```
//!
//! The model: the GROUP BY list expands into grouping sets ([`expand`],
//! PostgreSQL's rules: plain expressions are in every set; ROLLUP gives
//! its prefixes, longest first; CUBE every subset; GROUPING SETS its
//! elements, a ROLLUP or CUBE among them expanded in place; `()` is the
//! empty set and `(a, b)` both; several items multiply out). Output
//! aliases and ordinals are resolved first, so `ROLLUP (1), region` names
//! one expression when the first output column is `region`. The plan is a UNION ALL of one Aggregate per set over the same
//! input, each projected to one layout: every GROUP BY expression (NULL
//! where the set lacks it), then the set's id (a bit per expression the
//! set lacks), then the aggregates. HAVING, the select list and ORDER BY
//! bind to that layout as to a plain Aggregate's. Each set runs its own
//! copy of the input plan: the input is read once per set (PostgreSQL
//! reads it once), and a volatile function in it (`random()`,
//! `nextval`) is evaluated per set.
//!
//! Invariants:
//! - A set that lacks every expression (the grand total) gives one row
//!   even over no input rows, as an aggregate without GROUP BY does.
//! - `GROUPING(a, b)` is, per row, a bit per argument (the last argument
//!   the lowest bit), 1 where the row's set lacks it; its arguments must
//!   be GROUP BY expressions (42803).
//! - At most [`limits::GROUPING_SETS_MAX`] sets, and
//!   [`limits::GROUPING_EXPRESSIONS_MAX`] expressions in them (54000
//!   beyond), checked as the list is read: each set reads the input
//!   again.

use sqlparser::ast;

use crate::error::Result;
use crate::{limits, sql_err};

/// A GROUP BY's expressions, each once, and its grouping sets as indexes
/// into them.
pub(super) type Expanded = (Vec<ast::Expr>, Vec<Vec<usize>>);

/// The GROUP BY expressions (each once, in order of appearance, after
/// `resolve` made output aliases and ordinals the expressions they name)
/// and the grouping sets as indexes into them; `None` if the list has no
/// ROLLUP, CUBE, GROUPING SETS or parenthesized list (a plain GROUP BY).
pub(super) fn expand(
    group_by: &[&ast::Expr],
    resolve: &mut dyn FnMut(&ast::Expr) -> Result<ast::Expr>,
) -> Result<Option<Expanded>> {
    use ast::Expr as E;
    if !group_by.iter().any(|e| matches!(e, E::Rollup(_) | E::Cube(_) | E::GroupingSets(_) | E::Tuple(_))) {
        return Ok(None);
    }
    let mut exprs: Vec<ast::Expr> = Vec::new();
    let mut texts: Vec<String> = Vec::new();
    // Each item's sets; the query's are their product.
    let mut sets: Vec<Vec<usize>> = vec![Vec::new()];
    for item in group_by {
        let item_sets = item_sets(item)?;
        // (Checked as they come: a long list must not cost its square.)
        if sets.len().saturating_mul(item_sets.len()) > limits::GROUPING_SETS_MAX {
            return too_many();
        }
        let mut indexed = Vec::with_capacity(item_sets.len());
        for set in item_sets {
            let mut indexes = Vec::with_capacity(set.len());
            for e in set {
                let e = resolve(e)?;
                let text = e.to_string();
                let i = match texts.iter().position(|x| *x == text) {
                    Some(i) => i,
                    None if exprs.len() == limits::GROUPING_EXPRESSIONS_MAX => {
                        return sql_err!(
                            ProgramLimitExceeded,
                            "grouping sets may name at most {} expressions",
                            limits::GROUPING_EXPRESSIONS_MAX
                        );
                    }
                    None => {
                        exprs.push(e);
                        texts.push(text);
                        exprs.len() - 1
                    }
                };
                if !indexes.contains(&i) {
                    indexes.push(i);
                }
            }
            indexed.push(indexes);
        }
        // (Each set holds an expression once: at most
        // GROUPING_EXPRESSIONS_MAX indexes, however long the list.)
        let merge = |s: &Vec<usize>, t: &Vec<usize>| {
            let mut set = s.clone();
            set.extend(t.iter().filter(|i| !s.contains(i)));
            set
        };
        sets = sets.iter().flat_map(|s| indexed.iter().map(move |t| merge(s, t))).collect();
    }
    Ok(Some((exprs, sets)))
}

/// One GROUP BY item's grouping sets, each a list of expressions.
fn item_sets(item: &ast::Expr) -> Result<Vec<Vec<&ast::Expr>>> {
    use ast::Expr as E;
    fn elements(lists: &[Vec<ast::Expr>]) -> Vec<Vec<&ast::Expr>> {
        lists.iter().map(|l| l.iter().flat_map(elements_of).collect()).collect()
    }
    Ok(match item {
        E::Rollup(lists) => rollup(elements(lists))?,
        E::Cube(lists) => cube(elements(lists))?,
        E::GroupingSets(lists) => {
            let mut sets = Vec::new();
            for element in lists {
                // sqlparser reads a ROLLUP or CUBE inside GROUPING SETS as
                // a function call.
                match element.as_slice() {
                    [E::Function(f)] if nested_kind(f).is_some() => sets.extend(nested_sets(f)?),
                    _ => sets.push(element.iter().flat_map(elements_of).collect()),
                }
                if sets.len() > limits::GROUPING_SETS_MAX {
                    return too_many();
                }
            }
            sets
        }
        // `GROUP BY ()` (the grand total), `(a, b)` (both).
        E::Tuple(items) => vec![items.iter().collect()],
        e => vec![vec![e]],
    })
}

/// `(a, b)` in a grouping set is both; anything else itself.
fn elements_of(e: &ast::Expr) -> Vec<&ast::Expr> {
    match e {
        ast::Expr::Tuple(items) => items.iter().collect(),
        e => vec![e],
    }
}

/// ROLLUP: every prefix, the longest first (refused before they are
/// made if there would be too many).
fn rollup(lists: Vec<Vec<&ast::Expr>>) -> Result<Vec<Vec<&ast::Expr>>> {
    if lists.len() >= limits::GROUPING_SETS_MAX {
        return too_many();
    }
    Ok((0..=lists.len()).rev().map(|n| lists[..n].concat()).collect())
}

/// CUBE: every subset, the whole first (PostgreSQL's order).
fn cube(lists: Vec<Vec<&ast::Expr>>) -> Result<Vec<Vec<&ast::Expr>>> {
    let n = lists.len();
    if 1usize.checked_shl(n as u32).is_none_or(|sets| sets > limits::GROUPING_SETS_MAX) {
        return too_many();
    }
    Ok((0..1u32 << n)
        .rev()
        .map(|mask| (0..n).filter(|i| mask & (1 << (n - 1 - i)) != 0).flat_map(|i| lists[i].clone()).collect())
        .collect())
}

/// Whether a function call inside GROUPING SETS is a ROLLUP or a CUBE.
fn nested_kind(f: &ast::Function) -> Option<&'static str> {
    let [ast::ObjectNamePart::Identifier(name)] = f.name.0.as_slice() else { return None };
    match name.value.to_ascii_lowercase().as_str() {
        "rollup" => Some("rollup"),
        "cube" => Some("cube"),
        _ => None,
    }
}

/// The sets of a ROLLUP or CUBE read as a function call.
fn nested_sets(f: &ast::Function) -> Result<Vec<Vec<&ast::Expr>>> {
    let ast::FunctionArguments::List(list) = &f.args else {
        return sql_err!(SyntaxError, "ROLLUP and CUBE take a list of expressions");
    };
    let mut lists = Vec::new();
    for arg in &list.args {
        let ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) = arg else {
            return sql_err!(SyntaxError, "ROLLUP and CUBE take a list of expressions");
        };
        lists.push(elements_of(e));
    }
    match nested_kind(f) {
        Some("cube") => cube(lists),
        _ => rollup(lists),
    }
}

fn too_many<T>() -> Result<T> {
    sql_err!(ProgramLimitExceeded, "more than {} grouping sets", limits::GROUPING_SETS_MAX)
}

/// The id of a row's grouping set: bit `i` set where the set lacks GROUP
/// BY expression `i`.
pub(super) fn set_id(set: &[usize], expressions: usize) -> i32 {
    (0..expressions.min(limits::GROUPING_EXPRESSIONS_MAX)).filter(|i| !set.contains(i)).fold(0, |id, i| id | 1 << i)
}

/// `GROUPING(args)` for a row of the set `id`: a bit per argument (given
/// as GROUP BY expression indexes), the last argument the lowest bit.
pub(super) fn grouping_value(id: i32, args: &[usize]) -> i32 {
    args.iter().fold(0, |v, &i| (v << 1) | ((id >> i) & 1))
}
