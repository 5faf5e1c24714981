//! Plans: what the planner makes of a statement and the executor runs.
//!
//! A query is a tree of [`Node`]s; rows flow up from scans. Every node
//! produces rows of a fixed width, and expressions ([`Expr`]) refer to the
//! columns of their input row by position (`Column(i)`), to an enclosing
//! query's row by depth and position (`Outer`, for correlated
//! subqueries), or to statement parameters (`Param`, `$1`).
//!
//! ```text
//!   SELECT name, count(*) FROM t WHERE id > 10 GROUP BY name ORDER BY 2 DESC
//!
//!   Sort [#1 DESC]
//!    └─ Project [#0, #1]
//!        └─ Aggregate group=[#1] aggs=[count(*)]
//!            └─ Filter (#0 > 10)
//!                └─ Scan t@primary spans=[/Table/100/1/>10 ..]
//! ```
//!
//! Scans carry key spans as expressions (`ScanSpan`), turned into bytes
//! when the scan opens, so a prepared statement's `$1` can bound a scan.

use std::sync::Arc;

use crate::catalog::{IndexDesc, TableDesc};
use crate::encoding::Direction;
use crate::ops::{BinaryOp, UnaryOp};
use crate::types::{DataType, Value};

/// A bound scalar expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Constant(Value),
    /// Column `i` of the input row.
    Column(usize),
    /// Column `index` of the row of the query `depth` levels out (1: the
    /// immediately enclosing one).
    Outer {
        depth: usize,
        index: usize,
    },
    /// `$n` (0-based here).
    Param(usize),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    Unary(UnaryOp, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    IsNull(Box<Expr>),
    /// `IS TRUE` (`true`) / `IS FALSE` (`false`): never NULL.
    IsBool(Box<Expr>, bool),
    /// `IS DISTINCT FROM`: never NULL.
    IsDistinctFrom(Box<Expr>, Box<Expr>),
    Like {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        case_insensitive: bool,
    },
    Case {
        operand: Option<Box<Expr>>,
        whens: Vec<(Expr, Expr)>,
        otherwise: Box<Expr>,
    },
    Cast(Box<Expr>, DataType),
    Function(String, Vec<Expr>),
    Coalesce(Vec<Expr>),
    NullIf(Box<Expr>, Box<Expr>),
    InList(Box<Expr>, Vec<Expr>),
    /// `expr IN (subquery)`; the subquery yields one column.
    InSubquery(Box<Expr>, Arc<Node>),
    Exists(Arc<Node>),
    /// A subquery yielding at most one row of one column. Shared: a copy
    /// of the expression (a scan's bound made from a filter's conjunct)
    /// is the same subquery, whose rows a statement computes once when it
    /// is uncorrelated (`exec`, keyed by the plan node's address).
    Subquery(Arc<Node>),
    /// `ARRAY(subquery)`: the subquery's one column, as an array (of the
    /// first non-NULL value's type; the binder casts it to the type it
    /// inferred).
    ArraySubquery(Arc<Node>),
    /// `left op ANY (array)` (`all`: `ALL`), three-valued.
    Quantified {
        op: BinaryOp,
        all: bool,
        left: Box<Expr>,
        array: Box<Expr>,
    },
    /// The statement's timestamp (`now()`, `CURRENT_TIMESTAMP`).
    Now,
}

impl Expr {
    pub fn constant(&self) -> Option<&Value> {
        match self {
            Expr::Constant(v) => Some(v),
            _ => None,
        }
    }

    /// Whether the expression reads no row (constants, parameters, now()).
    pub fn is_row_free(&self) -> bool {
        let mut free = true;
        self.walk(&mut |e| {
            if matches!(
                e,
                Expr::Column(_)
                    | Expr::Outer { .. }
                    | Expr::InSubquery(..)
                    | Expr::Exists(_)
                    | Expr::Subquery(_)
                    | Expr::ArraySubquery(_)
            ) {
                free = false;
            }
        });
        free
    }

    /// Calls `f` on this expression and every sub-expression (not into
    /// subquery plans).
    pub fn walk(&self, f: &mut dyn FnMut(&Expr)) {
        f(self);
        match self {
            Expr::Constant(_) | Expr::Column(_) | Expr::Outer { .. } | Expr::Param(_) | Expr::Now => {}
            Expr::Exists(_) | Expr::Subquery(_) | Expr::ArraySubquery(_) => {}
            Expr::Quantified { left: a, array: b, .. }
            | Expr::Binary(_, a, b)
            | Expr::And(a, b)
            | Expr::Or(a, b)
            | Expr::IsDistinctFrom(a, b)
            | Expr::NullIf(a, b)
            | Expr::Like { expr: a, pattern: b, .. } => {
                a.walk(f);
                b.walk(f);
            }
            Expr::Unary(_, a) | Expr::Not(a) | Expr::IsNull(a) | Expr::IsBool(a, _) | Expr::Cast(a, _) => a.walk(f),
            Expr::InSubquery(a, _) => a.walk(f),
            Expr::Case { operand, whens, otherwise } => {
                if let Some(o) = operand {
                    o.walk(f);
                }
                for (w, t) in whens {
                    w.walk(f);
                    t.walk(f);
                }
                otherwise.walk(f);
            }
            Expr::Function(_, args) | Expr::Coalesce(args) => args.iter().for_each(|a| a.walk(f)),
            Expr::InList(a, list) => {
                a.walk(f);
                list.iter().for_each(|e| e.walk(f));
            }
        }
    }

    /// Rewrites column references: `Column(i)` becomes `map(i)`.
    pub fn map_columns(self, map: &dyn Fn(usize) -> usize) -> Expr {
        self.transform(&mut |e| match e {
            Expr::Column(i) => Expr::Column(map(i)),
            e => e,
        })
    }

    /// Rewrites the expression bottom up: every sub-expression's own
    /// first, then `f` on it. Subquery plans are not entered (`f` gets
    /// their expressions whole).
    pub fn transform(self, f: &mut dyn FnMut(Expr) -> Expr) -> Expr {
        fn b(e: Expr, f: &mut dyn FnMut(Expr) -> Expr) -> Box<Expr> {
            Box::new(e.transform(f))
        }
        let e = match self {
            Expr::Binary(op, x, y) => Expr::Binary(op, b(*x, f), b(*y, f)),
            Expr::Unary(op, x) => Expr::Unary(op, b(*x, f)),
            Expr::And(x, y) => Expr::And(b(*x, f), b(*y, f)),
            Expr::Or(x, y) => Expr::Or(b(*x, f), b(*y, f)),
            Expr::Not(x) => Expr::Not(b(*x, f)),
            Expr::IsNull(x) => Expr::IsNull(b(*x, f)),
            Expr::IsBool(x, v) => Expr::IsBool(b(*x, f), v),
            Expr::IsDistinctFrom(x, y) => Expr::IsDistinctFrom(b(*x, f), b(*y, f)),
            Expr::Like { expr, pattern, case_insensitive } => {
                Expr::Like { expr: b(*expr, f), pattern: b(*pattern, f), case_insensitive }
            }
            Expr::Case { operand, whens, otherwise } => Expr::Case {
                operand: operand.map(|o| b(*o, f)),
                whens: whens.into_iter().map(|(w, t)| (w.transform(f), t.transform(f))).collect(),
                otherwise: b(*otherwise, f),
            },
            Expr::Cast(x, t) => Expr::Cast(b(*x, f), t),
            Expr::Function(n, args) => Expr::Function(n, args.into_iter().map(|a| a.transform(f)).collect()),
            Expr::Coalesce(args) => Expr::Coalesce(args.into_iter().map(|a| a.transform(f)).collect()),
            Expr::NullIf(x, y) => Expr::NullIf(b(*x, f), b(*y, f)),
            Expr::InList(x, list) => Expr::InList(b(*x, f), list.into_iter().map(|e| e.transform(f)).collect()),
            Expr::InSubquery(x, plan) => Expr::InSubquery(b(*x, f), plan),
            Expr::Quantified { op, all, left, array } => {
                Expr::Quantified { op, all, left: b(*left, f), array: b(*array, f) }
            }
            e @ (Expr::Constant(_)
            | Expr::Column(_)
            | Expr::Outer { .. }
            | Expr::Param(_)
            | Expr::Now
            | Expr::Exists(_)
            | Expr::Subquery(_)
            | Expr::ArraySubquery(_)) => e,
        };
        f(e)
    }

    /// The conjuncts of an AND tree.
    pub fn conjuncts(self) -> Vec<Expr> {
        match self {
            Expr::And(a, b) => {
                let mut out = a.conjuncts();
                out.extend(b.conjuncts());
                out
            }
            e => vec![e],
        }
    }

    /// The AND of `exprs` (None if empty).
    pub fn and_all(exprs: Vec<Expr>) -> Option<Expr> {
        exprs.into_iter().reduce(|a, b| Expr::And(Box::new(a), Box::new(b)))
    }
}

/// One key range of a scan, as expressions: the index's leading columns
/// equal `equal`, then the next column equals each element of the array
/// `each` or lies within `lower`/`upper` (value, inclusive).
///
/// `each` is evaluated once as the scan opens and makes one range per
/// element: `ARRAY(subquery)` for `col IN (SELECT ...)` with an
/// uncorrelated subquery, or the array of `col = ANY($1)`. So `WHERE id
/// IN (SELECT uid FROM t)` reads a row per `uid` instead of the whole
/// table (up to [`crate::limits::SPANS_PER_SCAN_MAX`] elements; more read
/// the span without them, and the filter decides).
#[derive(Debug, Clone, PartialEq)]
pub struct ScanSpan {
    pub equal: Vec<Expr>,
    pub each: Option<Expr>,
    pub lower: Option<(Expr, bool)>,
    pub upper: Option<(Expr, bool)>,
}

impl ScanSpan {
    /// The whole index.
    pub fn full() -> ScanSpan {
        ScanSpan { equal: Vec::new(), each: None, lower: None, upper: None }
    }

    pub fn is_full(&self) -> bool {
        self.equal.is_empty() && self.each.is_none() && self.lower.is_none() && self.upper.is_none()
    }

    /// The expressions that bound it.
    pub fn exprs(&self) -> impl Iterator<Item = &Expr> {
        self.equal
            .iter()
            .chain(self.each.iter())
            .chain(self.lower.iter().map(|(e, _)| e))
            .chain(self.upper.iter().map(|(e, _)| e))
    }
}

/// Join kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
}

/// Aggregate functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFunc {
    CountStar,
    Count,
    Sum,
    Avg,
    Min,
    Max,
    BoolAnd,
    BoolOr,
    /// `array_agg(x)`: every value, NULLs included, in input order.
    ArrayAgg,
    /// `string_agg(x, separator)`: the non-NULL values joined.
    StringAgg,
    /// `jsonb_agg(x)`: every value as jsonb (NULLs as nulls), in a jsonb
    /// array.
    JsonbAgg,
    /// `jsonb_object_agg(key, value)`: its argument is the pair as a
    /// jsonb array, the key as text.
    JsonbObjectAgg,
    /// `var_samp` (`variance`), `var_pop`, `stddev_samp` (`stddev`),
    /// `stddev_pop`: the spread of the non-NULL values, as float8.
    Spread(Spread),
    /// `percentile_cont(f) WITHIN GROUP (ORDER BY x)`: the value at
    /// fraction `f` ([`AggCall`]'s `fraction`) of the sorted non-NULL
    /// values, interpolated between the two nearest (float8).
    PercentileCont,
    /// `percentile_disc(f) WITHIN GROUP (ORDER BY x)`: the first sorted
    /// value at or past fraction `f`.
    PercentileDisc,
    /// `mode() WITHIN GROUP (ORDER BY x)`: the most frequent non-NULL
    /// value, the first in the order among equally frequent ones.
    Mode,
}

impl AggFunc {
    /// The aggregate as SQL names it (EXPLAIN).
    pub fn name(self) -> &'static str {
        match self {
            AggFunc::CountStar | AggFunc::Count => "count",
            AggFunc::Sum => "sum",
            AggFunc::Avg => "avg",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
            AggFunc::BoolAnd => "bool_and",
            AggFunc::BoolOr => "bool_or",
            AggFunc::ArrayAgg => "array_agg",
            AggFunc::JsonbAgg => "jsonb_agg",
            AggFunc::JsonbObjectAgg => "jsonb_object_agg",
            AggFunc::StringAgg => "string_agg",
            AggFunc::Spread(Spread { sample: true, root: false }) => "var_samp",
            AggFunc::Spread(Spread { sample: false, root: false }) => "var_pop",
            AggFunc::Spread(Spread { sample: true, root: true }) => "stddev_samp",
            AggFunc::Spread(Spread { sample: false, root: true }) => "stddev_pop",
            AggFunc::PercentileCont => "percentile_cont",
            AggFunc::PercentileDisc => "percentile_disc",
            AggFunc::Mode => "mode",
        }
    }
}

/// Which measure of spread a [`AggFunc::Spread`] aggregate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spread {
    /// Divide by n - 1 (a sample's estimate), not by n (the population's).
    pub sample: bool,
    /// The standard deviation (the variance's square root).
    pub root: bool,
}

/// One aggregate of an Aggregate node.
#[derive(Debug, Clone, PartialEq)]
pub struct AggCall {
    pub func: AggFunc,
    /// The argument (None for count(*)).
    pub arg: Option<Expr>,
    pub distinct: bool,
    pub data_type: DataType,
    /// `string_agg`'s separator (a constant).
    pub separator: Option<String>,
    /// `FILTER (WHERE ...)`: only rows for which it is true are
    /// aggregated.
    pub filter: Option<Expr>,
    /// `agg(x ORDER BY ...)`: the order the values are aggregated in
    /// (array_agg's and string_agg's output order); an ordered-set
    /// aggregate's `WITHIN GROUP (ORDER BY ...)`.
    pub order_by: Vec<SortKey>,
    /// `percentile_cont`'s and `percentile_disc`'s fraction, 0 to 1 (a
    /// constant).
    pub fraction: Option<f64>,
}

/// Set operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOpKind {
    Union,
    Intersect,
    Except,
}

/// A sort key.
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    pub expr: Expr,
    pub descending: bool,
    pub nulls_first: bool,
}

/// A plan node. Every node's rows have a fixed width.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// Reads a table through `index` over `spans` (ORed); produces whole
    /// rows of the table (all its columns, hidden ones included). A
    /// secondary index scan looks up each row by its primary key.
    /// `reverse`: in descending key order, from the last key down (the
    /// optimizer's rule 4, for an ORDER BY that is the index's order
    /// reversed).
    Scan {
        table: Arc<TableDesc>,
        index: IndexDesc,
        spans: Vec<ScanSpan>,
        reverse: bool,
    },
    /// Literal rows.
    Values {
        rows: Vec<Vec<Expr>>,
        width: usize,
    },
    Filter {
        input: Box<Node>,
        predicate: Expr,
    },
    Project {
        input: Box<Node>,
        exprs: Vec<Expr>,
    },
    /// Produces the group-by values then the aggregates' values, one row
    /// per group (one row in all when `group_by` is empty).
    Aggregate {
        input: Box<Node>,
        group_by: Vec<Expr>,
        aggregates: Vec<AggCall>,
    },
    Sort {
        input: Box<Node>,
        keys: Vec<SortKey>,
    },
    Limit {
        input: Box<Node>,
        limit: Option<Expr>,
        offset: Option<Expr>,
    },
    /// Drops rows equal to an earlier one; with `on`, rows whose values
    /// in those columns equal an earlier row's (`DISTINCT ON`: the
    /// first row of each group, in the input's order).
    Distinct {
        input: Box<Node>,
        on: Option<Vec<usize>>,
    },
    /// `left_keys[i] = right_keys[i]` for all i is the equi-part of the
    /// join condition (a hash join when non-empty); `on` the rest,
    /// evaluated over the concatenated row.
    Join {
        left: Box<Node>,
        right: Box<Node>,
        kind: JoinKind,
        left_keys: Vec<Expr>,
        right_keys: Vec<Expr>,
        on: Option<Expr>,
    },
    /// `left JOIN LATERAL right`: for each left row, `right` runs with
    /// that row as its outer row (`Expr::Outer { depth: 1, .. }` reads
    /// it), and its rows are joined to it; `on` is evaluated over the
    /// concatenated row. `kind` is `Inner` or `Left` (a left row without
    /// a match is kept once, with NULLs).
    Lateral {
        left: Box<Node>,
        right: Box<Node>,
        kind: JoinKind,
        on: Option<Expr>,
    },
    SetOp {
        op: SetOpKind,
        all: bool,
        left: Box<Node>,
        right: Box<Node>,
    },
    /// `generate_series(start, stop[, step])`: one column.
    Series {
        start: Expr,
        stop: Expr,
        step: Option<Expr>,
        data_type: DataType,
    },
    /// `unnest(array)`: one row per element, one column.
    Unnest {
        array: Expr,
    },
    /// Window functions: the input's columns, then one column per call,
    /// each computed over the rows of the current row's partition
    /// (`SELECT id, rank() OVER (PARTITION BY g ORDER BY v) FROM t`). It
    /// holds all its input; rows come out in the first call's order
    /// (partition, then ORDER BY), as PostgreSQL's do for one window.
    Window {
        input: Box<Node>,
        calls: Vec<WindowCall>,
    },
    /// `WITH RECURSIVE t AS (base UNION [ALL] step)`: the base's rows,
    /// then round after round the step's, run over the rows the round
    /// before added (its [`Node::WorkTable`] `id`), until a round adds
    /// none. Without ALL, a row already given is not added again.
    Recursive {
        base: Box<Node>,
        step: Box<Node>,
        all: bool,
        id: usize,
    },
    /// Inside a [`Node::Recursive`]'s step: the rows its last round added.
    WorkTable {
        id: usize,
        width: usize,
    },
    /// `SELECT ... FOR UPDATE` / `FOR SHARE`: its input's rows, in a
    /// read-write transaction only; with FOR UPDATE, `table`'s rows looked
    /// up by key are locked exclusively as they are read (the rows it
    /// scans, shared, as every read of a read-write transaction is).
    LockRows {
        input: Box<Node>,
        /// The table locked exclusively: `(id, name)`.
        table: Option<(u32, String)>,
        exclusive: bool,
        /// `NOWAIT`: a lock another transaction holds fails the statement
        /// (55P03) instead of being waited for.
        no_wait: bool,
        /// `SKIP LOCKED`: its input read without locks, each row locked as
        /// it passes (a row another transaction holds, or one gone, is left
        /// out; one changed since it was read is checked again). Then the
        /// node sits under the LIMIT.
        skip_locked: Option<SkipLocked>,
    },
}

/// What `SKIP LOCKED` ([`Node::LockRows`]) needs of its input: each row
/// carries the row of `table` it came from, whole, from `row_at` on; the
/// WHERE over a row of `table` (`filter`), and the input's row computed
/// from one (`output`), to check and compute again from the row as it is
/// once locked.
#[derive(Debug, Clone, PartialEq)]
pub struct SkipLocked {
    pub table: Arc<TableDesc>,
    pub row_at: usize,
    pub filter: Option<Expr>,
    pub output: Vec<Expr>,
}

impl SkipLocked {
    /// `filter` and `output` read from `input`, the node's input: its
    /// projections (composed) and sorts over a filtered scan of the table
    /// (`None` for another shape). Taken again from the optimized input,
    /// so they share its subquery plans (each runs once, optimized).
    pub fn recheck_of(input: &Node) -> Option<(Option<Expr>, Vec<Expr>)> {
        fn scan_filter(node: &Node, filter: &mut Vec<Expr>) -> bool {
            match node {
                Node::Scan { .. } => true,
                Node::Filter { input, predicate } => {
                    filter.push(predicate.clone());
                    scan_filter(input, filter)
                }
                _ => false,
            }
        }
        match input {
            Node::Project { input, exprs } => {
                let mut filter = Vec::new();
                if scan_filter(input, &mut filter) {
                    return Some((Expr::and_all(filter), exprs.clone()));
                }
                let (filter, inner) = SkipLocked::recheck_of(input)?;
                // Each column of the input as the input computes it.
                let output = exprs
                    .iter()
                    .map(|e| {
                        e.clone().transform(&mut |e| match e {
                            Expr::Column(i) => inner.get(i).cloned().unwrap_or(Expr::Column(i)),
                            e => e,
                        })
                    })
                    .collect();
                Some((filter, output))
            }
            Node::Sort { input, .. } => SkipLocked::recheck_of(input),
            _ => None,
        }
    }
}

/// One window function call: `func(args) OVER (PARTITION BY ... ORDER BY
/// ... frame)`.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowCall {
    pub func: WindowFunc,
    /// The function's arguments, over the input row (an aggregate's are
    /// in [`WindowFunc::Aggregate`]).
    pub args: Vec<Expr>,
    pub partition_by: Vec<Expr>,
    pub order_by: Vec<SortKey>,
    pub frame: Frame,
    pub data_type: DataType,
}

impl WindowCall {
    /// Every expression of the call: arguments (an aggregate's argument
    /// and filter), PARTITION BY, ORDER BY and the frame's offsets.
    pub fn exprs(&self) -> impl Iterator<Item = &Expr> {
        let aggregate: Vec<&Expr> = match &self.func {
            WindowFunc::Aggregate(a) => a.arg.iter().chain(&a.filter).collect(),
            _ => Vec::new(),
        };
        self.args
            .iter()
            .chain(aggregate)
            .chain(&self.partition_by)
            .chain(self.order_by.iter().map(|k| &k.expr))
            .chain(self.frame.exprs())
    }
}

/// What a window call computes.
#[derive(Debug, Clone, PartialEq)]
pub enum WindowFunc {
    /// 1, 2, 3, ... in the partition's order.
    RowNumber,
    /// The row number of the first peer (rows equal by ORDER BY): gaps
    /// after ties.
    Rank,
    /// The number of distinct peer groups so far: no gaps.
    DenseRank,
    /// `(rank - 1) / (rows - 1)`, 0 for a partition of one row.
    PercentRank,
    /// The share of the partition's rows up to the current row's last
    /// peer.
    CumeDist,
    /// `ntile(n)`: the bucket, 1 to n, of as equal sizes as can be (the
    /// first buckets one larger).
    Ntile,
    /// `lag(value [, offset [, default]])`, `lead(...)`: `value` at the
    /// row `offset` (1) before or after the current one in the
    /// partition, or `default` (NULL) beyond its ends.
    Lag,
    Lead,
    /// `value` at the frame's first, last or `n`th row (NULL if the frame
    /// has no such row).
    FirstValue,
    LastValue,
    NthValue,
    /// An aggregate over the frame's rows.
    Aggregate(AggCall),
}

impl WindowFunc {
    /// The function as SQL names it (EXPLAIN).
    pub fn name(&self) -> &'static str {
        match self {
            WindowFunc::RowNumber => "row_number",
            WindowFunc::Rank => "rank",
            WindowFunc::DenseRank => "dense_rank",
            WindowFunc::PercentRank => "percent_rank",
            WindowFunc::CumeDist => "cume_dist",
            WindowFunc::Ntile => "ntile",
            WindowFunc::Lag => "lag",
            WindowFunc::Lead => "lead",
            WindowFunc::FirstValue => "first_value",
            WindowFunc::LastValue => "last_value",
            WindowFunc::NthValue => "nth_value",
            WindowFunc::Aggregate(a) => a.func.name(),
        }
    }
}

/// A window frame: the rows of the partition, around the current one,
/// that an aggregate or `first_value`/`last_value`/`nth_value` sees.
/// Ranking functions and `lag`/`lead` ignore it.
///
/// The default is `RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW`:
/// with ORDER BY, the rows up to the current row's last peer (a running
/// total); without, the whole partition (every row is a peer).
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub units: FrameUnits,
    pub start: FrameBound,
    pub end: FrameBound,
}

impl Frame {
    /// `RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW`.
    pub fn default_range() -> Frame {
        Frame { units: FrameUnits::Range, start: FrameBound::UnboundedPreceding, end: FrameBound::CurrentRow }
    }

    /// The offsets' expressions.
    pub fn exprs(&self) -> impl Iterator<Item = &Expr> {
        [&self.start, &self.end].into_iter().filter_map(|b| match b {
            FrameBound::Preceding(e) | FrameBound::Following(e) => Some(e),
            _ => None,
        })
    }
}

/// What a frame's offsets count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameUnits {
    /// Rows.
    Rows,
    /// Values of the one ORDER BY column (`RANGE 5 PRECEDING`: the rows
    /// whose value is at most 5 below the current row's); `CURRENT ROW`
    /// is the current row's first or last peer.
    Range,
    /// Peer groups.
    Groups,
}

/// One end of a frame. An offset may not read the row (PostgreSQL's
/// rule): a constant or a parameter, evaluated once per statement.
#[derive(Debug, Clone, PartialEq)]
pub enum FrameBound {
    UnboundedPreceding,
    Preceding(Expr),
    CurrentRow,
    Following(Expr),
    UnboundedFollowing,
}

impl FrameBound {
    /// The bound with its offset rewritten by `f`.
    pub fn map(self, f: impl FnOnce(Expr) -> Expr) -> FrameBound {
        match self {
            FrameBound::Preceding(e) => FrameBound::Preceding(f(e)),
            FrameBound::Following(e) => FrameBound::Following(f(e)),
            other => other,
        }
    }
}

impl Node {
    /// A scan of every row of `table`, in primary key order.
    pub fn full_scan(table: Arc<TableDesc>) -> Node {
        let index = table.primary.clone();
        Node::Scan { table, index, spans: vec![ScanSpan::full()], reverse: false }
    }

    /// How many columns the node's rows have.
    pub fn width(&self) -> usize {
        match self {
            Node::Scan { table, .. } => table.columns.len(),
            Node::Values { width, .. } => *width,
            Node::Filter { input, .. } | Node::Sort { input, .. } | Node::Limit { input, .. } => input.width(),
            Node::Distinct { input, .. } => input.width(),
            Node::Project { exprs, .. } => exprs.len(),
            Node::Aggregate { group_by, aggregates, .. } => group_by.len() + aggregates.len(),
            Node::Join { left, right, .. } | Node::Lateral { left, right, .. } => left.width() + right.width(),
            Node::SetOp { left, .. } => left.width(),
            Node::Series { .. } | Node::Unnest { .. } => 1,
            Node::Window { input, calls } => input.width() + calls.len(),
            Node::Recursive { base, .. } => base.width(),
            Node::WorkTable { width, .. } => *width,
            Node::LockRows { input, .. } => input.width(),
        }
    }
}

/// What `ALTER COLUMN` changes.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnChange {
    /// SET DEFAULT (SQL text, checked when planned) or DROP DEFAULT: rows
    /// inserted from then on.
    Default(Option<String>),
    /// SET NOT NULL (refused while a row holds NULL) or DROP NOT NULL.
    NotNull(bool),
    /// `TYPE to [USING c::to]`: every value converted to `to`, by the
    /// assignment cast where one exists, else the explicit cast (`ddl`,
    /// "Changing a column's type"); the column's DEFAULT becomes
    /// `default` (cast to `to` where it was not already of a type that
    /// goes into one).
    Type { to: DataType, default: Option<String> },
    /// `ADD GENERATED {ALWAYS | BY DEFAULT} AS IDENTITY [(options)]`, what
    /// pg_dump writes for an identity column: a sequence of the column's
    /// type, `table_column_seq` (`parser::identity_sequence_name`), with
    /// `options`, becomes its DEFAULT, so a restored table's setval
    /// carries on (a CREATE TABLE's identity takes random bigints).
    AddIdentity { always: bool, options: crate::sequence::Options },
}

/// A CHECK constraint, bound over the table's row: a row it is false for
/// is refused (23514); NULL passes.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub name: String,
    pub expr: Expr,
}

/// What a write checks of its rows besides their types and NOT NULL.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Constraints {
    /// The table's CHECK constraints, on every row it writes.
    pub checks: Vec<Check>,
    /// The table's foreign keys whose columns the write sets, on every
    /// row it writes, after all of the statement's writes.
    pub references: Vec<ForeignKeyCheck>,
    /// Other tables' foreign keys referencing columns the write changes
    /// (or deletes), on every row whose key it took away, after all of the
    /// statement's writes.
    pub referenced_by: Vec<ForeignKeyCheck>,
}

/// A FOREIGN KEY as a statement defines it: its name if given, the
/// referencing columns, and the clause (the referenced table and columns,
/// actions).
#[derive(Debug, Clone, PartialEq)]
pub struct ForeignKeyDef {
    pub name: Option<String>,
    pub columns: Vec<String>,
    pub clause: sqlparser::ast::ForeignKeyConstraint,
}

/// A foreign key as a write checks it (`planner/foreign_keys.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct ForeignKeyCheck {
    /// The constraint's name.
    pub name: String,
    /// The other table: the referenced one, or the referencing one.
    pub table: String,
    /// Positions of the key columns in the written table's rows.
    pub columns: Vec<usize>,
    /// Over a row of the written table: whether the other table has a
    /// row matching its key (true as well, for a referencing row, when a
    /// key column is NULL).
    pub found: Expr,
    /// For a foreign key referencing the written table whose action for
    /// this write changes the referencing rows: that write, made instead
    /// of the check.
    pub action: Option<ForeignKeyAction>,
    /// DEFERRABLE (a NO ACTION key): SET CONSTRAINTS may put it off to
    /// COMMIT.
    pub deferrable: bool,
    /// INITIALLY DEFERRED: in a transaction block, checked at COMMIT.
    pub deferred: bool,
    /// For a deferrable key: over a row of the written table, whether a
    /// row of it with the row's key columns' values is there at COMMIT
    /// (the referencing row may be gone or changed since; the referenced
    /// key may be back), else the check holds.
    pub key_present: Option<Expr>,
}

/// When a transaction block checks its deferrable foreign keys (SET
/// CONSTRAINTS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConstraintMode {
    /// INITIALLY DEFERRED keys at COMMIT, the others at each statement.
    #[default]
    AsDeclared,
    /// Every DEFERRABLE key at COMMIT.
    AllDeferred,
    /// Every key at each statement.
    AllImmediate,
}

impl ConstraintMode {
    /// Whether `check` waits for COMMIT under this mode.
    pub fn defers(self, check: &ForeignKeyCheck) -> bool {
        match self {
            ConstraintMode::AsDeclared => check.deferred,
            ConstraintMode::AllDeferred => check.deferrable,
            ConstraintMode::AllImmediate => false,
        }
    }
}

/// A check of an INITIALLY DEFERRED foreign key that a statement in a
/// transaction block put off to COMMIT: the check and the row (new for
/// the referencing side, old for the referenced one).
#[derive(Debug, Clone)]
pub struct DeferredCheck {
    /// The written table's id.
    pub table: u32,
    pub check: ForeignKeyCheck,
    pub row: crate::types::Row,
    /// The row references (its key must be found), rather than being
    /// referenced (its old key must not be).
    pub referencing: bool,
    /// The error COMMIT gives if the check fails (made when the row is,
    /// while its table's descriptor is at hand).
    pub violation: crate::error::Error,
}

/// The write a foreign key makes in the referencing table when a key it
/// references goes (ON DELETE or ON UPDATE: CASCADE, SET NULL, SET
/// DEFAULT): a DELETE or UPDATE over parameters, the old key's values
/// (`$1`...) and, for ON UPDATE CASCADE, then the new key's. Planned when
/// it runs: planned with the statement, a table that references itself
/// would be planned for ever.
#[derive(Debug, Clone, PartialEq)]
pub struct ForeignKeyAction {
    pub sql: String,
    /// The parameters' types (the referenced key columns').
    pub param_types: Vec<DataType>,
    /// Whether the new key's values follow the old key's.
    pub new_key: bool,
}

/// A result column.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputColumn {
    pub name: String,
    pub data_type: DataType,
}

/// A query, ready to run: its plan and its result columns.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPlan {
    pub root: Node,
    pub columns: Vec<OutputColumn>,
}

/// What an INSERT does when the row's key exists.
#[derive(Debug, Clone, PartialEq)]
pub enum OnConflict {
    /// 23505.
    Error,
    DoNothing,
    /// `SET col = expr`: expressions over the existing row followed by the
    /// proposed one (`excluded`), then an optional WHERE.
    DoUpdate {
        assignments: Vec<(usize, Expr)>,
        predicate: Option<Expr>,
    },
}

/// A statement, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    Query(QueryPlan),
    /// A statement with data-modifying WITH queries: each step runs once,
    /// in order, its RETURNING rows kept as its [`Node::WorkTable`], then
    /// `main`, which reads them (`WITH gone AS (DELETE FROM jobs WHERE
    /// ... RETURNING *) INSERT INTO done SELECT * FROM gone`).
    WithModifying {
        steps: Vec<ModifyingStep>,
        main: Box<Plan>,
    },
    /// `source` yields rows of the table's full width, in column order,
    /// with defaults filled in and values cast to the column types.
    Insert {
        table: Arc<TableDesc>,
        source: Node,
        on_conflict: OnConflict,
        returning: Option<Vec<(Expr, OutputColumn)>>,
        constraints: Constraints,
    },
    /// `source` yields the table's rows to change (full width).
    Update {
        table: Arc<TableDesc>,
        source: Node,
        assignments: Vec<(usize, Expr)>,
        returning: Option<Vec<(Expr, OutputColumn)>>,
        constraints: Constraints,
    },
    Delete {
        table: Arc<TableDesc>,
        source: Node,
        returning: Option<Vec<(Expr, OutputColumn)>>,
        constraints: Constraints,
    },
    CreateTable {
        table: TableDesc,
        if_not_exists: bool,
    },
    DropTable {
        names: Vec<String>,
        if_exists: bool,
        /// The foreign keys of other tables referencing these go too.
        cascade: bool,
    },
    /// `CREATE TABLE t AS query`: the table (the query's columns, a
    /// hidden row id) and the query whose rows it is created with.
    CreateTableAs {
        table: TableDesc,
        query: QueryPlan,
        if_not_exists: bool,
    },
    /// `view.view` holds the query.
    CreateView {
        view: TableDesc,
        or_replace: bool,
    },
    /// `cascade`: the views that read them go with them.
    DropView {
        names: Vec<String>,
        if_exists: bool,
        cascade: bool,
    },
    /// `COMMENT ON TABLE table` / `COMMENT ON COLUMN table.column`: the
    /// comment kept in the descriptor (`None`: removed).
    Comment {
        table: String,
        column: Option<String>,
        comment: Option<String>,
    },
    /// A statement that changes nothing SpanDB keeps, answered with its
    /// `tag` (`ALTER TABLE ... OWNER TO`: there are no owners), and a
    /// notice if it says one (IF EXISTS of a missing relation).
    Unchanged {
        tag: &'static str,
        notice: Option<String>,
    },
    /// `CREATE SEQUENCE` (`sequence`): its descriptor, id to be given.
    CreateSequence {
        sequence: crate::catalog::SequenceDesc,
        if_not_exists: bool,
    },
    DropSequence {
        names: Vec<String>,
        if_exists: bool,
    },
    /// `ALTER SEQUENCE name`: the options `given` over its own
    /// (`sequence::alter`), its next value moved to `restart` (a value,
    /// or `None`: its START); `owned_by` (a table and its column, or
    /// `None` for NONE) is checked and kept nowhere.
    AlterSequence {
        name: String,
        given: crate::sequence::Options,
        restart: Option<Option<i64>>,
        owned_by: Option<Option<(String, String)>>,
        if_exists: bool,
    },
    CreateIndex {
        table: String,
        index: IndexDesc,
        if_not_exists: bool,
    },
    DropIndex {
        names: Vec<String>,
        if_exists: bool,
    },
    AddColumn {
        table: String,
        column: crate::catalog::ColumnDesc,
        unique: bool,
        if_not_exists: bool,
    },
    /// `cascade`: the views that read the column go with it.
    DropColumn {
        table: String,
        column: String,
        if_exists: bool,
        cascade: bool,
    },
    /// `ALTER TABLE t op, op, ...`: the operations one by one, each an
    /// ALTER TABLE of its own, planned once those before it have run (so
    /// `ADD COLUMN c ..., ADD CONSTRAINT ... CHECK (c > 0)` sees `c`), all
    /// in the statement's transaction.
    AlterTableSteps {
        steps: Vec<sqlparser::ast::Statement>,
    },
    /// `ALTER TABLE t ALTER COLUMN c ...`: a change of the descriptor
    /// (SET NOT NULL reads the rows first; TYPE may rewrite them).
    AlterColumn {
        table: String,
        column: String,
        change: ColumnChange,
    },
    AddPrimaryKey {
        table: String,
        columns: Vec<(String, Direction)>,
    },
    Truncate {
        tables: Vec<String>,
        /// The tables referencing these (and those referencing them) are
        /// truncated too.
        cascade: bool,
    },
    /// `ALTER TABLE t ADD [CONSTRAINT n] FOREIGN KEY ...`: resolved and
    /// checked against the table's rows when it runs.
    AddForeignKey {
        table: String,
        foreign_key: ForeignKeyDef,
    },
    /// `ALTER TABLE t ADD [CONSTRAINT n] CHECK (e)`: checked against the
    /// table's rows when it runs.
    AddCheck {
        table: String,
        name: Option<String>,
        expr: sqlparser::ast::Expr,
    },
    /// `ALTER TABLE t RENAME TO u`.
    RenameTable {
        table: String,
        to: String,
    },
    /// `ALTER TABLE t RENAME [COLUMN] c TO d`.
    RenameColumn {
        table: String,
        column: String,
        to: String,
    },
    /// `ALTER TABLE t DROP CONSTRAINT n` (a CHECK or a FOREIGN KEY).
    DropConstraint {
        table: String,
        name: String,
        if_exists: bool,
    },
    Explain {
        plan: Box<Plan>,
        analyze: bool,
    },
}

/// A data-modifying WITH query: an INSERT, UPDATE or DELETE plan, and the
/// work table id its RETURNING rows are read by.
#[derive(Debug, Clone, PartialEq)]
pub struct ModifyingStep {
    pub id: usize,
    pub plan: Plan,
}

impl Plan {
    /// The columns of the rows the statement returns (none if it returns
    /// none).
    pub fn columns(&self) -> Vec<OutputColumn> {
        match self {
            Plan::Query(q) => q.columns.clone(),
            Plan::WithModifying { main, .. } => main.columns(),
            Plan::Insert { returning: Some(items), .. }
            | Plan::Update { returning: Some(items), .. }
            | Plan::Delete { returning: Some(items), .. } => items.iter().map(|(_, c)| c.clone()).collect(),
            Plan::Explain { .. } => vec![OutputColumn { name: "QUERY PLAN".into(), data_type: DataType::Text }],
            _ => Vec::new(),
        }
    }

    /// Whether the foreign keys of the table it writes have actions
    /// (CASCADE, SET NULL, SET DEFAULT) that write other tables.
    pub fn cascades(&self) -> bool {
        match self {
            Plan::Insert { constraints, .. } | Plan::Update { constraints, .. } | Plan::Delete { constraints, .. } => {
                constraints.referenced_by.iter().any(|fk| fk.action.is_some())
            }
            _ => false,
        }
    }

    /// The table an INSERT, UPDATE or DELETE changes.
    pub fn target(&self) -> Option<&Arc<TableDesc>> {
        match self {
            Plan::Insert { table, .. } | Plan::Update { table, .. } | Plan::Delete { table, .. } => Some(table),
            _ => None,
        }
    }

    /// Whether the statement writes (refused in read-only transactions).
    pub fn writes(&self) -> bool {
        match self {
            Plan::Query(_) => false,
            Plan::Explain { plan, analyze } => *analyze && plan.writes(),
            _ => true,
        }
    }
}

/// Directions of an index's columns, for display.
pub fn direction_name(d: Direction) -> &'static str {
    match d {
        Direction::Asc => "ASC",
        Direction::Desc => "DESC",
    }
}
