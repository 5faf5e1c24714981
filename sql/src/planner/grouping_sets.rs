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
//! its prefixes, longest first; CUBE every subset; several items multiply
//! out). The plan is a UNION ALL of one Aggregate per set over the same
//! input, each projected to one layout: every GROUP BY expression (NULL
//! where the set lacks it), then the set's id (a bit per expression the
//! set lacks), then the aggregates. HAVING, the select list and ORDER BY
//! bind to that layout as to a plain Aggregate's.
//!
//! Invariants:
//! - A set that lacks every expression (the grand total) gives one row
//!   even over no input rows, as an aggregate without GROUP BY does.
//! - `GROUPING(a, b)` is, per row, a bit per argument (the last argument
//!   the lowest bit), 1 where the row's set lacks it; its arguments must
//!   be GROUP BY expressions (42803).
//! - At most [`limits::GROUPING_SETS_MAX`] sets, and 31 expressions in
//!   them (54000 beyond): each set reads the input again.

use sqlparser::ast;

use crate::error::Result;
use crate::{limits, sql_err};

/// A GROUP BY's expressions, each once, and its grouping sets as indexes
/// into them.
pub(super) type Expanded = (Vec<ast::Expr>, Vec<Vec<usize>>);

/// The GROUP BY expressions (each once, in order of appearance) and the
/// grouping sets as indexes into them; `None` if the list has no ROLLUP,
/// CUBE or GROUPING SETS (a plain GROUP BY).
pub(super) fn expand(group_by: &[&ast::Expr]) -> Result<Option<Expanded>> {
    use ast::Expr as E;
    if !group_by.iter().any(|e| matches!(e, E::Rollup(_) | E::Cube(_) | E::GroupingSets(_))) {
        return Ok(None);
    }
    let mut exprs: Vec<ast::Expr> = Vec::new();
    let mut index_of = |e: &ast::Expr| -> usize {
        let text = e.to_string();
        match exprs.iter().position(|x| x.to_string() == text) {
            Some(i) => i,
            None => {
                exprs.push(e.clone());
                exprs.len() - 1
            }
        }
    };
    // Each item's sets; the query's are their product.
    let mut sets: Vec<Vec<usize>> = vec![Vec::new()];
    for item in group_by {
        let item_sets: Vec<Vec<usize>> = match item {
            E::Rollup(lists) => {
                let lists: Vec<Vec<usize>> = lists.iter().map(|l| l.iter().map(&mut index_of).collect()).collect();
                (0..=lists.len()).rev().map(|n| lists[..n].concat()).collect()
            }
            E::Cube(lists) => {
                let lists: Vec<Vec<usize>> = lists.iter().map(|l| l.iter().map(&mut index_of).collect()).collect();
                if lists.len() > 16 {
                    return too_many();
                }
                // Every subset, the whole first (PostgreSQL's order).
                let n = lists.len();
                (0..1u32 << n)
                    .rev()
                    .map(|mask| {
                        (0..n).filter(|i| mask & (1 << (n - 1 - i)) != 0).flat_map(|i| lists[i].clone()).collect()
                    })
                    .collect()
            }
            E::GroupingSets(lists) => {
                lists.iter().map(|l| l.iter().flat_map(nested).map(&mut index_of).collect()).collect()
            }
            e => vec![vec![index_of(e)]],
        };
        if sets.len().saturating_mul(item_sets.len()) > limits::GROUPING_SETS_MAX {
            return too_many();
        }
        sets = sets.iter().flat_map(|s| item_sets.iter().map(move |t| [s.as_slice(), t].concat())).collect();
    }
    if exprs.len() > 31 {
        return sql_err!(ProgramLimitExceeded, "grouping sets may name at most 31 expressions");
    }
    for set in &mut sets {
        let mut seen = Vec::new();
        set.retain(|i| {
            !seen.contains(i) && {
                seen.push(*i);
                true
            }
        });
    }
    Ok(Some((exprs, sets)))
}

/// A grouping set's element: `(a, b)` is both.
fn nested(e: &ast::Expr) -> Vec<&ast::Expr> {
    match e {
        ast::Expr::Tuple(items) => items.iter().collect(),
        e => vec![e],
    }
}

fn too_many<T>() -> Result<T> {
    sql_err!(ProgramLimitExceeded, "more than {} grouping sets", limits::GROUPING_SETS_MAX)
}

/// The id of a row's grouping set: bit `i` set where the set lacks GROUP
/// BY expression `i`.
pub(super) fn set_id(set: &[usize], expressions: usize) -> i32 {
    (0..expressions.min(31)).filter(|i| !set.contains(i)).fold(0, |id, i| id | 1 << i)
}

/// `GROUPING(args)` for a row of the set `id`: a bit per argument (given
/// as GROUP BY expression indexes), the last argument the lowest bit.
pub(super) fn grouping_value(id: i32, args: &[usize]) -> i32 {
    args.iter().fold(0, |v, &i| (v << 1) | ((id >> i) & 1))
}
