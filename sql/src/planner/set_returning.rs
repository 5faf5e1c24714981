//! Set-returning functions in a select list: `SELECT generate_series(1, 3)`,
//! `SELECT id, unnest(tags) FROM posts`.
//!
//! PostgreSQL runs such a call once per row the FROM clause gives and
//! makes a row of output per value it returns (none when it returns none:
//! the row is dropped). That is a LATERAL join of the rows WHERE leaves
//! with the call, which SpanDB already plans (`Node::Lateral`), so the
//! select list's call is lifted out before the SELECT is planned, and
//! joined after its WHERE:
//!
//! ```text
//!   SELECT id, unnest(tags) AS tag FROM posts WHERE id < 10
//! is planned as
//!   SELECT id, "?srf"."?srf" AS tag
//!   FROM (posts WHERE id < 10), LATERAL unnest(tags) AS "?srf"("?srf")
//!
//!   Project [#0, #4]
//!    └─ Lateral
//!        ├─ Filter (id < 10)
//!        │   └─ Scan posts
//!        └─ Unnest (tags)
//! ```
//!
//! The lifted call's column is hidden from `*`, and the select list item
//! keeps the name the call gave it (`unnest`). ORDER BY may repeat the
//! call, or an expression of it. Invariants: the rewrite changes nothing in a SELECT without such
//! a call; the call sees exactly the columns the select list saw, and
//! runs only for rows WHERE keeps (as in PostgreSQL: a row WHERE drops
//! cannot make the call fail).
//!
//! What PostgreSQL does and this does not (0A000): several different
//! set-returning calls in one select list (PostgreSQL runs them in step),
//! one in a query that aggregates or has window functions (PostgreSQL runs
//! it after them), one inside CASE, COALESCE or a subquery's operand.

use sqlparser::ast;

use super::{builtin_name, collect_calls, column_name, is_jsonb_rows_function, Calls};
use crate::error::Result;
use crate::sql_err;

/// The FROM alias (and the column name) of the lifted call: not a name a
/// query writes by accident.
pub(super) const LIFTED: &str = "?srf";

/// The set-returning functions of one column a select list may call.
pub(super) fn is_set_returning(name: &str) -> bool {
    matches!(name, "generate_series" | "unnest" | "regexp_matches")
        || (is_jsonb_rows_function(name) && !matches!(name, "jsonb_each" | "jsonb_each_text"))
}

/// A select list's set-returning call, lifted out of it.
pub(super) struct Lifted {
    /// The SELECT with the call's column where the call was.
    pub select: ast::Select,
    pub order_by: Vec<ast::OrderByExpr>,
    /// The call, as a FROM item aliased [`LIFTED`]: joined laterally to
    /// the rows WHERE leaves.
    pub call: ast::TableFactor,
}

/// `select` (and its ORDER BY) with its select list's set-returning call
/// lifted out, or `None` if it has none.
pub(super) fn lift(select: &ast::Select, order_by: &[ast::OrderByExpr]) -> Result<Option<Lifted>> {
    let mut lifted: Option<ast::Function> = None;
    let mut projection = Vec::new();
    for (i, item) in select.projection.iter().enumerate() {
        let (e, alias) = match item {
            ast::SelectItem::UnnamedExpr(e) => (e, None),
            ast::SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias)),
            _ => continue,
        };
        if let Some(rewritten) = replaced(e, &mut lifted)? {
            let alias = alias.cloned().unwrap_or_else(|| ast::Ident::with_quote('"', column_name(e)));
            projection.push((i, ast::SelectItem::ExprWithAlias { expr: rewritten, alias }));
        }
    }
    let Some(call) = lifted else { return Ok(None) };

    let mut aggregates = Vec::new();
    let mut windows = Vec::new();
    let items = select.projection.iter().filter_map(|item| match item {
        ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } => Some(e),
        _ => None,
    });
    for e in items.chain(order_by.iter().map(|o| &o.expr)) {
        collect_calls(e, Calls::Aggregates, &mut aggregates);
        collect_calls(e, Calls::Windows, &mut windows);
    }
    let grouped = !matches!(&select.group_by, ast::GroupByExpr::Expressions(g, _) if g.is_empty());
    if grouped || select.having.is_some() || !aggregates.is_empty() || !windows.is_empty() {
        return sql_err!(
            FeatureNotSupported,
            "set-returning functions in the select list of a query that aggregates or has window functions are not supported"
        );
    }
    let ast::FunctionArguments::List(list) = &call.args else {
        return sql_err!(FeatureNotSupported, "{} needs arguments", call.name);
    };
    if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
        return sql_err!(FeatureNotSupported, "DISTINCT or ORDER BY in a call of {} is not supported", call.name);
    }

    // ORDER BY the call, or an expression of it, sorts by the lifted
    // column (another set-returning call there is 0A000).
    let mut order_by = order_by.to_vec();
    for o in &mut order_by {
        if let Some(rewritten) = replaced(&o.expr, &mut Some(call.clone()))? {
            o.expr = rewritten;
        }
    }
    let mut select = select.clone();
    for (i, item) in projection {
        select.projection[i] = item;
    }
    let call = ast::TableFactor::Function {
        lateral: true,
        name: call.name.clone(),
        args: list.args.clone(),
        with_ordinality: false,
        alias: Some(ast::TableAlias {
            explicit: true,
            name: ast::Ident::with_quote('"', LIFTED),
            columns: vec![ast::TableAliasColumnDef { name: ast::Ident::with_quote('"', LIFTED), data_type: None }],
            at: None,
        }),
    };
    Ok(Some(Lifted { select, order_by, call }))
}

/// `"?srf"."?srf"`: the lifted call's value.
fn lifted_column() -> ast::Expr {
    ast::Expr::CompoundIdentifier(vec![ast::Ident::with_quote('"', LIFTED), ast::Ident::with_quote('"', LIFTED)])
}

/// `e` with its set-returning calls (outside subqueries, CASE and the
/// like) replaced by the lifted call's column, or `None` if it has none
/// (and nothing is copied). The first call becomes `lifted`; another that
/// is not the same call is 0A000.
fn replaced(e: &ast::Expr, lifted: &mut Option<ast::Function>) -> Result<Option<ast::Expr>> {
    use ast::Expr as E;
    let boxed =
        |inner: &ast::Expr, lifted: &mut Option<ast::Function>| replaced(inner, lifted).map(|r| r.map(Box::new));
    Ok(match e {
        E::Function(f) if f.over.is_none() && is_set_returning(&builtin_name(&f.name).unwrap_or_default()) => {
            match lifted {
                Some(first) if first != f => {
                    return sql_err!(
                        FeatureNotSupported,
                        "more than one set-returning function in a select list is not supported"
                    )
                }
                Some(_) => {}
                None => *lifted = Some(f.clone()),
            }
            Some(lifted_column())
        }
        // Not into COALESCE, as PostgreSQL (nor CASE, below): 0A000 when
        // the call is bound.
        E::Function(f) if builtin_name(&f.name).is_ok_and(|n| n == "coalesce") => None,
        E::Function(f) => {
            let ast::FunctionArguments::List(list) = &f.args else { return Ok(None) };
            let mut args = None;
            for (i, a) in list.args.iter().enumerate() {
                if let ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(x)) = a {
                    if let Some(r) = replaced(x, lifted)? {
                        let args = args.get_or_insert_with(|| list.args.clone());
                        args[i] = ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(r));
                    }
                }
            }
            args.map(|args| {
                let mut f = f.clone();
                if let ast::FunctionArguments::List(list) = &mut f.args {
                    list.args = args;
                }
                E::Function(f)
            })
        }
        E::BinaryOp { left, op, right } => match (boxed(left, lifted)?, boxed(right, lifted)?) {
            (None, None) => None,
            (l, r) => Some(E::BinaryOp {
                left: l.unwrap_or_else(|| left.clone()),
                op: op.clone(),
                right: r.unwrap_or_else(|| right.clone()),
            }),
        },
        E::UnaryOp { op, expr } => boxed(expr, lifted)?.map(|expr| E::UnaryOp { op: *op, expr }),
        E::Nested(expr) => boxed(expr, lifted)?.map(E::Nested),
        // `(regexp_matches(s, p, 'g'))[1]`
        E::CompoundFieldAccess { root, access_chain } => {
            boxed(root, lifted)?.map(|root| E::CompoundFieldAccess { root, access_chain: access_chain.clone() })
        }
        E::IsNull(expr) => boxed(expr, lifted)?.map(E::IsNull),
        E::IsNotNull(expr) => boxed(expr, lifted)?.map(E::IsNotNull),
        E::Cast { kind, expr, data_type, format } => boxed(expr, lifted)?.map(|expr| E::Cast {
            kind: kind.clone(),
            expr,
            data_type: data_type.clone(),
            format: format.clone(),
        }),
        _ => None,
    })
}
