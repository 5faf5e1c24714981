//! Binding window function calls: `func(args) OVER (PARTITION BY ...
//! ORDER BY ... frame)`, and named windows (`WINDOW w AS (...)`).
//!
//! A SELECT's window calls are found in its select list and ORDER BY
//! (anywhere else is 42P20), bound after aggregation, and become the
//! columns of one [`Node::Window`] over the rows aggregation left:
//!
//! ```text
//!   SELECT g, sum(v), rank() OVER (ORDER BY sum(v) DESC) FROM t GROUP BY g
//!
//!   Project [#0, #1, #2]
//!    └─ Window [rank() OVER (ORDER BY #1 DESC)]      (#2: the rank)
//!        └─ Aggregate group=[#1] aggregates=[sum(#2)]
//!            └─ Scan t
//! ```
//!
//! A call's arguments, PARTITION BY and ORDER BY bind as the select list
//! does (so `sum(v)` above is the Aggregate's column), and the select
//! list then finds each call, by its SQL text, as a column of the Window
//! node ([`WindowContext`]), as it finds aggregate calls. A window call
//! inside another's arguments, or inside an aggregate's, is bound before
//! the Window node exists and is refused there.
//!
//! What is refused, as PostgreSQL 15 refuses it: DISTINCT or ORDER BY
//! inside a windowed aggregate, FILTER on a function that is not an
//! aggregate, frames that end before they start, GROUPS without ORDER BY,
//! RANGE offsets without exactly one ORDER BY column. RANGE offsets are
//! for numeric columns only (SpanDB has no intervals).

use sqlparser::ast;

use super::{builtin_name, ident, is_aggregate, order_options, Bound, Planner, Scope};
use crate::error::{Error, Result, SqlState};
use crate::plan::*;
use crate::sql_err;
use crate::types::DataType;

/// The current level's window calls, once bound: each is the column
/// `first + i` of the Window node.
pub(super) struct WindowContext {
    texts: Vec<String>,
    types: Vec<DataType>,
    first: usize,
}

impl WindowContext {
    /// The Window node's column for the call whose SQL text is `text`.
    pub(super) fn column(&self, text: &str) -> Result<Bound> {
        match self.texts.iter().position(|t| t == text) {
            Some(i) => Ok(Bound::typed(Expr::Column(self.first + i), self.types[i])),
            None => sql_err!(FeatureNotSupported, "a window function is not supported in this position: {text}"),
        }
    }
}

/// A SELECT's `WINDOW name AS (...)` definitions, by name.
pub(super) fn named_windows(select: &ast::Select) -> Result<Vec<(String, &ast::WindowSpec)>> {
    let mut named: Vec<(String, &ast::WindowSpec)> = Vec::new();
    for ast::NamedWindowDefinition(name, expr) in &select.named_window {
        let name = ident(name);
        let ast::NamedWindowExpr::WindowSpec(spec) = expr else {
            return sql_err!(SyntaxError, "window \"{name}\" must be defined by a parenthesized specification");
        };
        if named.iter().any(|(n, _)| *n == name) {
            return sql_err!(WindowingError, "window \"{name}\" is already defined");
        }
        named.push((name, spec));
    }
    Ok(named)
}

/// A window specification with its base window's clauses filled in.
struct Spec<'s> {
    partition_by: &'s [ast::Expr],
    order_by: &'s [ast::OrderByExpr],
    frame: Option<&'s ast::WindowFrame>,
}

/// The specification `over` names, resolved against the named windows
/// (PostgreSQL's rules for `OVER (w ORDER BY ...)`: the copy may add an
/// ORDER BY if `w` has none, and a frame; `w` may have no frame).
fn resolve<'s>(over: &'s ast::WindowType, named: &[(String, &'s ast::WindowSpec)]) -> Result<Spec<'s>> {
    let find = |name: &ast::Ident| -> Result<&'s ast::WindowSpec> {
        let name = ident(name);
        match named.iter().find(|(n, _)| *n == name) {
            Some((_, spec)) => Ok(spec),
            None => sql_err!(UndefinedObject, "window \"{name}\" does not exist"),
        }
    };
    let spec = match over {
        ast::WindowType::NamedWindow(name) => find(name)?,
        ast::WindowType::WindowSpec(spec) => spec,
    };
    let Some(base_name) = &spec.window_name else {
        return Ok(Spec {
            partition_by: &spec.partition_by,
            order_by: &spec.order_by,
            frame: spec.window_frame.as_ref(),
        });
    };
    let base = find(base_name)?;
    if base.window_name.is_some() {
        return sql_err!(FeatureNotSupported, "a window defined from another window is not supported");
    }
    let name = ident(base_name);
    if !spec.partition_by.is_empty() {
        return sql_err!(WindowingError, "cannot override PARTITION BY clause of window \"{name}\"");
    }
    if !spec.order_by.is_empty() && !base.order_by.is_empty() {
        return sql_err!(WindowingError, "cannot override ORDER BY clause of window \"{name}\"");
    }
    if base.window_frame.is_some() {
        return sql_err!(WindowingError, "cannot copy window \"{name}\" because it has a frame clause");
    }
    let order_by = if spec.order_by.is_empty() { &base.order_by } else { &spec.order_by };
    Ok(Spec { partition_by: &base.partition_by, order_by, frame: spec.window_frame.as_ref() })
}

impl Planner<'_> {
    /// Binds `calls` over `input`'s rows (the level's FROM scope, or its
    /// Aggregate's row through the aggregate context) and puts a Window
    /// node over `input`; the select list then finds the calls as its
    /// columns.
    pub(super) fn plan_windows(
        &mut self,
        input: Node,
        calls: &[&ast::Function],
        named: &[(String, &ast::WindowSpec)],
        scope: &Scope,
    ) -> Result<Node> {
        let mut bound = Vec::new();
        let mut texts = Vec::new();
        for call in calls {
            let text = call.to_string();
            if texts.contains(&text) {
                continue;
            }
            bound.push(self.bind_window_call(call, named, scope)?);
            texts.push(text);
        }
        let types = bound.iter().map(|c| c.data_type).collect();
        self.window = Some(WindowContext { texts, types, first: input.width() });
        Ok(Node::Window { input: Box::new(input), calls: bound })
    }

    fn bind_window_call(
        &mut self,
        call: &ast::Function,
        named: &[(String, &ast::WindowSpec)],
        scope: &Scope,
    ) -> Result<WindowCall> {
        let name = builtin_name(&call.name)?;
        let Some(over) = &call.over else {
            return Err(Error::new(SqlState::InternalError, format!("{name} has no OVER clause")));
        };
        if call.null_treatment.is_some() || !call.within_group.is_empty() {
            return sql_err!(FeatureNotSupported, "IGNORE/RESPECT NULLS and WITHIN GROUP are not supported");
        }
        let spec = resolve(over, named)?;
        let mut partition_by = Vec::new();
        for e in spec.partition_by {
            let b = self.bind_expr(e, scope)?;
            partition_by.push(self.default_type(b)?.expr);
        }
        let mut order_by = Vec::new();
        let mut order_types = Vec::new();
        for o in spec.order_by {
            let (descending, nulls_first) = order_options(&o.options);
            let b = self.bind_expr(&o.expr, scope)?;
            let b = self.default_type(b)?;
            order_types.push(b.ty.unwrap_or(DataType::Text));
            order_by.push(SortKey { expr: b.expr, descending, nulls_first });
        }
        let frame = match spec.frame {
            None => Frame::default_range(),
            Some(f) => self.bind_frame(f, &order_types, scope)?,
        };
        if is_aggregate(&name) {
            let agg = self.bind_aggregate(call, scope, true)?;
            let data_type = agg.data_type;
            return Ok(WindowCall {
                func: WindowFunc::Aggregate(agg),
                args: Vec::new(),
                partition_by,
                order_by,
                frame,
                data_type,
            });
        }
        if call.filter.is_some() {
            return sql_err!(FeatureNotSupported, "FILTER is not implemented for non-aggregate window functions");
        }
        let mut args = Vec::new();
        match &call.args {
            ast::FunctionArguments::None => {}
            ast::FunctionArguments::List(list) if list.duplicate_treatment.is_none() && list.clauses.is_empty() => {
                for a in &list.args {
                    let ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) = a else {
                        return sql_err!(
                            FeatureNotSupported,
                            "named or wildcard arguments to {name} are not supported"
                        );
                    };
                    args.push(self.bind_expr(e, scope)?);
                }
            }
            _ => return sql_err!(FeatureNotSupported, "{call}: this argument form is not supported"),
        }
        let (func, args, data_type) = self.window_function(&name, args)?;
        Ok(WindowCall { func, args, partition_by, order_by, frame, data_type })
    }

    /// The window function `name` (not an aggregate) with its arguments
    /// coerced, and its result type.
    fn window_function(&mut self, name: &str, args: Vec<Bound>) -> Result<(WindowFunc, Vec<Expr>, DataType)> {
        let no_such = |args: &[Bound]| -> Result<(WindowFunc, Vec<Expr>, DataType)> {
            Err(crate::functions::no_function(name, &args.iter().map(|a| a.ty).collect::<Vec<_>>()))
        };
        let ranking = match name {
            "row_number" => Some((WindowFunc::RowNumber, DataType::Int8)),
            "rank" => Some((WindowFunc::Rank, DataType::Int8)),
            "dense_rank" => Some((WindowFunc::DenseRank, DataType::Int8)),
            "percent_rank" => Some((WindowFunc::PercentRank, DataType::Float8)),
            "cume_dist" => Some((WindowFunc::CumeDist, DataType::Float8)),
            _ => None,
        };
        if let Some((func, ty)) = ranking {
            return match args.is_empty() {
                true => Ok((func, Vec::new(), ty)),
                false => no_such(&args),
            };
        }
        match (name, args.len()) {
            ("ntile", 1) => {
                let n = self.coerce(args.into_iter().next().expect("one"), DataType::Int4)?;
                Ok((WindowFunc::Ntile, vec![n], DataType::Int4))
            }
            ("lag" | "lead", 1..=3) => {
                let mut args = args.into_iter();
                let value = args.next().expect("at least one");
                let offset = args.next();
                let default = args.next();
                // The value and the default share a type (PostgreSQL's
                // anycompatible), or no such function exists.
                let shared: Vec<Bound> = [value.clone()].into_iter().chain(default.clone()).collect();
                let ty = match self.common_of(&shared, name) {
                    Ok(ty) => ty,
                    Err(_) => {
                        let types = [Some(value.ty), offset.as_ref().map(|o| o.ty), default.as_ref().map(|d| d.ty)];
                        let types: Vec<_> = types.into_iter().flatten().collect();
                        return Err(crate::functions::no_function(name, &types));
                    }
                };
                let mut exprs = vec![self.coerce_loose(value, ty)?];
                exprs.push(match offset {
                    Some(o) => self.coerce(o, DataType::Int4)?,
                    None => Expr::Constant(crate::types::Value::Int4(1)),
                });
                if let Some(d) = default {
                    exprs.push(self.coerce_loose(d, ty)?);
                }
                let func = if name == "lag" { WindowFunc::Lag } else { WindowFunc::Lead };
                Ok((func, exprs, ty))
            }
            ("first_value" | "last_value", 1) => {
                let value = self.default_type(args.into_iter().next().expect("one"))?;
                let ty = value.ty.unwrap_or(DataType::Text);
                let func = if name == "first_value" { WindowFunc::FirstValue } else { WindowFunc::LastValue };
                Ok((func, vec![value.expr], ty))
            }
            ("nth_value", 2) => {
                let mut args = args.into_iter();
                let value = self.default_type(args.next().expect("two"))?;
                let ty = value.ty.unwrap_or(DataType::Text);
                let n = self.coerce(args.next().expect("two"), DataType::Int4)?;
                Ok((WindowFunc::NthValue, vec![value.expr, n], ty))
            }
            (
                "ntile" | "lag" | "lead" | "first_value" | "last_value" | "nth_value" | "row_number" | "rank"
                | "dense_rank" | "percent_rank" | "cume_dist",
                _,
            ) => no_such(&args),
            _ if crate::functions::exists(name) => {
                sql_err!(
                    WrongObjectType,
                    "OVER specified, but {name} is not a window function nor an aggregate function"
                )
            }
            _ => no_such(&args),
        }
    }

    /// A frame clause, checked as PostgreSQL checks it. `order_types`:
    /// the types of the window's ORDER BY keys.
    fn bind_frame(&mut self, frame: &ast::WindowFrame, order_types: &[DataType], scope: &Scope) -> Result<Frame> {
        let units = match frame.units {
            ast::WindowFrameUnits::Rows => FrameUnits::Rows,
            ast::WindowFrameUnits::Range => FrameUnits::Range,
            ast::WindowFrameUnits::Groups => FrameUnits::Groups,
        };
        use ast::WindowFrameBound as B;
        let end = frame.end_bound.as_ref().unwrap_or(&B::CurrentRow);
        match (&frame.start_bound, end) {
            (B::Following(None), _) => return sql_err!(WindowingError, "frame start cannot be UNBOUNDED FOLLOWING"),
            (_, B::Preceding(None)) => return sql_err!(WindowingError, "frame end cannot be UNBOUNDED PRECEDING"),
            (B::CurrentRow, B::Preceding(Some(_))) => {
                return sql_err!(WindowingError, "frame starting from current row cannot have preceding rows")
            }
            (B::Following(Some(_)), B::Preceding(Some(_)) | B::CurrentRow) => {
                return sql_err!(WindowingError, "frame starting from following row cannot have preceding rows")
            }
            _ => {}
        }
        let has_offset =
            [&frame.start_bound, end].iter().any(|b| matches!(b, B::Preceding(Some(_)) | B::Following(Some(_))));
        // The offsets' type: a count of rows or groups, or a distance in
        // the ORDER BY column's values.
        let offset_type = match units {
            FrameUnits::Groups if order_types.is_empty() => {
                return sql_err!(WindowingError, "GROUPS mode requires an ORDER BY clause")
            }
            FrameUnits::Range if has_offset => match order_types {
                [DataType::Int2 | DataType::Int4 | DataType::Int8] => DataType::Int8,
                [t] if t.is_numeric() => DataType::Float8,
                [t] => {
                    return sql_err!(
                        FeatureNotSupported,
                        "RANGE with offset PRECEDING/FOLLOWING is not supported for column type {t}"
                    )
                }
                _ => {
                    return sql_err!(
                        WindowingError,
                        "RANGE with offset PRECEDING/FOLLOWING requires exactly one ORDER BY column"
                    )
                }
            },
            _ => DataType::Int8,
        };
        let mut bound = |b: &B| -> Result<FrameBound> {
            Ok(match b {
                B::CurrentRow => FrameBound::CurrentRow,
                B::Preceding(None) => FrameBound::UnboundedPreceding,
                B::Following(None) => FrameBound::UnboundedFollowing,
                B::Preceding(Some(e)) => FrameBound::Preceding(self.bind_frame_offset(e, units, offset_type, scope)?),
                B::Following(Some(e)) => FrameBound::Following(self.bind_frame_offset(e, units, offset_type, scope)?),
            })
        };
        Ok(Frame { units, start: bound(&frame.start_bound)?, end: bound(end)? })
    }

    /// A frame offset: it may not read the row (PostgreSQL: "argument of
    /// ROWS must not contain variables").
    fn bind_frame_offset(&mut self, e: &ast::Expr, units: FrameUnits, ty: DataType, scope: &Scope) -> Result<Expr> {
        let saved = self.agg.take();
        let bound = self.bind_expr(e, scope);
        self.agg = saved;
        let expr = self.coerce(bound?, ty)?;
        if !expr.is_row_free() {
            let units = match units {
                FrameUnits::Rows => "ROWS",
                FrameUnits::Range => "RANGE",
                FrameUnits::Groups => "GROUPS",
            };
            return sql_err!(InvalidColumnReference, "argument of {units} must not contain variables");
        }
        Ok(expr)
    }
}
