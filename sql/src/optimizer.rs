//! The optimizer: rewrites a bound plan into one that reads less.
//!
//! Rules, each a plan-to-plan function that keeps the result the same:
//!
//! 1. Constant folding: an expression that reads no row, parameter or
//!    clock is evaluated once, here.
//! 2. Join ordering: a tree of inner joins under a filter (comma joins,
//!    `JOIN ... ON`) is flattened into its relations and conjuncts, then
//!    rebuilt greedily so that each step joins a relation connected to
//!    those already joined by some predicate (no cross product of ten
//!    tables when the WHERE connects them). Conjuncts over one relation
//!    move down onto it; `a.x = b.y` conjuncts become hash-join keys.
//! 3. Access paths: a filter over a table scan becomes key spans on the
//!    index that serves it best: equalities on a prefix of the index's
//!    columns (or IN lists), then a range on the next column. The filter
//!    stays above the scan (it is cheap and keeps the rule simple to
//!    trust); only what is read shrinks. A bound is any value that is the
//!    same for every row the scan reads (`is_bound_value`), evaluated as
//!    the scan opens: constants and parameters, and in a correlated
//!    subquery the outer row's columns, so `(SELECT name FROM u WHERE
//!    u.id = t.uid)` gets one key per row of `t` rather than scanning `u`
//!    for each. An uncorrelated subquery bounding a scan is the filter's
//!    own (`Expr::Subquery` is shared), so it still runs once.
//! 4. Sorts from an index: an ORDER BY that the scan under it already
//!    reads in (the index's key order, after the columns its equalities
//!    fix), or reads in reversed (every key the other way round: the scan
//!    then reads from the index's end down), is dropped, so a LIMIT over
//!    it stops after its rows: `WHERE state = 'queued' ORDER BY priority,
//!    id LIMIT 1` on an index of `(state, priority)` reads one row, not
//!    every queued job, and `ORDER BY id DESC LIMIT 20` the last twenty.
//!    Only where the key encoding orders as the sort does: ints, text and
//!    varchar, bool, dates and timestamps, uuids; each key in the
//!    direction the scan reads with PostgreSQL's default NULLs place
//!    (which the encoding shares: last ascending, first descending).
//!    Under a constant LIMIT (with its OFFSET) of at most
//!    [`limits::INDEX_ORDER_ROWS_MAX`] rows, a sort of a whole table with
//!    no WHERE reads a secondary index in that order instead, each row by
//!    key: `ORDER BY created_at DESC LIMIT 20` reads twenty entries.
//! 5. Lookup joins: an equi-join of a table with a side known to have few
//!    rows ([`limits::LOOKUP_JOIN_ROWS_MAX`]: a LIMIT, a VALUES list, an
//!    aggregate without GROUP BY) whose keys make an index prefix of the
//!    table becomes a lateral join: for each of the few rows, the
//!    table's scan is bounded by that row's keys (rule 3 with outer
//!    values). So `UPDATE jobs SET ... FROM (SELECT id ... LIMIT 1 FOR
//!    UPDATE SKIP LOCKED) next WHERE jobs.id = next.id` reads (and locks)
//!    one row of `jobs`, not all of them, which under two-phase locking
//!    would wait for every row another worker holds.
//!
//!    ```text
//!    HashJoin Inner on [#0 = right #0]         LateralJoin Inner
//!      Scan jobs (all)                   =>      Limit 1 (...)
//!      Limit 1 (...)                             Filter (#0 = outer #0)
//!                                                  Scan jobs  key = outer #0
//!    ```
//!    (under a projection that puts the columns back in the join's
//!    order). Only for a table side that reads no outer row (its rows
//!    move one query level down), and a key that is the table's column
//!    itself.
//!
//! 6. Min and max from an index: `min(x)` or `max(x)`, alone, of a
//!    column that a scan reads in order (rule 4's test, either way
//!    round; through a secondary index if the scan reads the whole table
//!    with no WHERE, and for a `max` only of a NOT NULL column, whose
//!    index read backwards gives no NULLs first) aggregates only the first non-NULL value of that order, so
//!    `SELECT max(id) FROM t` reads one row from the end of `t`'s primary
//!    index (PostgreSQL's planagg does the same).
//!
//! `optimize(plan)` with every rule turned off gives the same rows as
//! with them on; the tests check that on random data.

use std::sync::Arc;

use crate::catalog::{IndexDesc, TableDesc};
use crate::exec;
use crate::limits;
use crate::ops::BinaryOp;
use crate::plan::*;
use crate::types::{DataType, Value};

/// Which rules run (all, normally; tests turn them off one at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub fold_constants: bool,
    pub order_joins: bool,
    pub choose_access_paths: bool,
    pub sorts_from_index: bool,
    pub lookup_joins: bool,
    pub min_max_from_index: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            fold_constants: true,
            order_joins: true,
            choose_access_paths: true,
            sorts_from_index: true,
            lookup_joins: true,
            min_max_from_index: true,
        }
    }
}

pub fn optimize_plan(plan: Plan, rules: Rules) -> Plan {
    let o = |n: Node| optimize(n, rules);
    let ox = |e: Expr| optimize_expr(e, rules);
    let sets = |assignments: Vec<(usize, Expr)>| assignments.into_iter().map(|(i, e)| (i, ox(e))).collect();
    let items = |returning: Option<Vec<(Expr, OutputColumn)>>| {
        returning.map(|items| items.into_iter().map(|(e, c)| (ox(e), c)).collect())
    };
    match plan {
        Plan::Query(q) => Plan::Query(QueryPlan { root: o(q.root), columns: q.columns }),
        Plan::Insert { table, source, on_conflict, returning, constraints } => {
            let on_conflict = match on_conflict {
                OnConflict::DoUpdate { assignments, predicate } => {
                    OnConflict::DoUpdate { assignments: sets(assignments), predicate: predicate.map(ox) }
                }
                other => other,
            };
            let constraints = optimize_constraints(constraints, rules);
            Plan::Insert { table, source: o(source), on_conflict, returning: items(returning), constraints }
        }
        Plan::Update { table, source, assignments, returning, constraints } => {
            let constraints = optimize_constraints(constraints, rules);
            let (assignments, returning) = (sets(assignments), items(returning));
            Plan::Update { table, source: o(source), assignments, returning, constraints }
        }
        Plan::Delete { table, source, returning, constraints } => {
            let constraints = optimize_constraints(constraints, rules);
            Plan::Delete { table, source: o(source), returning: items(returning), constraints }
        }
        Plan::Explain { plan, analyze } => Plan::Explain { plan: Box::new(optimize_plan(*plan, rules)), analyze },
        Plan::WithModifying { steps, main } => Plan::WithModifying {
            steps: steps.into_iter().map(|s| ModifyingStep { plan: optimize_plan(s.plan, rules), ..s }).collect(),
            main: Box::new(optimize_plan(*main, rules)),
        },
        Plan::CreateTableAs { table, query, if_not_exists } => {
            let query = QueryPlan { root: o(query.root), columns: query.columns };
            Plan::CreateTableAs { table, query, if_not_exists }
        }
        other => other,
    }
}

/// Optimizes a write's CHECK and foreign key expressions (a foreign key's
/// subquery becomes a key lookup).
fn optimize_constraints(c: Constraints, rules: Rules) -> Constraints {
    let ox = |e: Expr| optimize_expr(e, rules);
    let fks = |v: Vec<ForeignKeyCheck>| {
        v.into_iter().map(|f| ForeignKeyCheck { found: ox(f.found), key_present: f.key_present.map(ox), ..f }).collect()
    };
    Constraints {
        checks: c.checks.into_iter().map(|c| Check { expr: ox(c.expr), ..c }).collect(),
        references: fks(c.references),
        referenced_by: fks(c.referenced_by),
    }
}

/// Optimizes a query tree bottom-up.
pub fn optimize(node: Node, rules: Rules) -> Node {
    let ox = |e: Expr| optimize_expr(e, rules);
    let on = |n: Box<Node>| Box::new(optimize(*n, rules));
    match node {
        Node::Filter { input, predicate } => {
            let input = optimize(*input, rules);
            let predicate = ox(predicate);
            if predicate == Expr::Constant(Value::Bool(true)) {
                return input;
            }
            filter(input, predicate.conjuncts(), rules)
        }
        Node::Join { left, right, kind: JoinKind::Inner, left_keys, right_keys, on: cond } if rules.order_joins => {
            debug_assert!(left_keys.is_empty() && right_keys.is_empty());
            let join =
                Node::Join { left: on(left), right: on(right), kind: JoinKind::Inner, left_keys, right_keys, on: None };
            let conjuncts = cond.map(|c| ox(c).conjuncts()).unwrap_or_default();
            reorder_joins(join, conjuncts, rules)
        }
        Node::Join { left, right, kind, left_keys, right_keys, on: cond } => {
            let left = on(left);
            let right = on(right);
            let cond = cond.map(ox);
            if rules.order_joins && left_keys.is_empty() {
                let (lk, rk, rest) = equi_keys(cond.map(|c| c.conjuncts()).unwrap_or_default(), left.width());
                let join = Node::Join { left, right, kind, left_keys: lk, right_keys: rk, on: Expr::and_all(rest) };
                return lookup_join(join, rules);
            }
            Node::Join { left, right, kind, left_keys, right_keys, on: cond }
        }
        Node::Project { input, exprs } => {
            Node::Project { input: on(input), exprs: exprs.into_iter().map(ox).collect() }
        }
        Node::Aggregate { input, group_by, aggregates } => {
            let aggregate = Node::Aggregate {
                input: on(input),
                group_by: group_by.into_iter().map(ox).collect(),
                aggregates: aggregates
                    .into_iter()
                    .map(|a| AggCall {
                        arg: a.arg.map(ox),
                        filter: a.filter.map(ox),
                        order_by: a.order_by.into_iter().map(|k| SortKey { expr: ox(k.expr), ..k }).collect(),
                        ..a
                    })
                    .collect(),
            };
            if rules.min_max_from_index {
                return min_max_from_index(aggregate);
            }
            aggregate
        }
        Node::Sort { input, keys } => {
            let input = on(input);
            let keys: Vec<SortKey> = keys.into_iter().map(|k| SortKey { expr: ox(k.expr), ..k }).collect();
            if rules.sorts_from_index {
                match read_in_order(&input, &keys) {
                    Some(ReadOrder::AsIs) => return *input,
                    Some(ReadOrder::Reversed) => return reversed(*input),
                    None => {}
                }
            }
            Node::Sort { input, keys }
        }
        Node::Limit { input, limit, offset } => {
            let (mut input, limit, offset) = (on(input), limit.map(ox), offset.map(ox));
            let rows = match (limit.as_ref().and_then(constant_count), offset.as_ref().map(constant_count)) {
                (Some(limit), None) => Some(limit),
                (Some(limit), Some(Some(offset))) => Some(limit.saturating_add(offset)),
                _ => None,
            };
            if rules.sorts_from_index && rows.is_some_and(|n| n <= limits::INDEX_ORDER_ROWS_MAX) {
                input = Box::new(sort_from_another_index(*input));
            }
            Node::Limit { input, limit, offset }
        }
        Node::Distinct { input, on: columns } => Node::Distinct { input: on(input), on: columns },
        // Never reordered or split: the right side reads the left row.
        Node::Lateral { left, right, kind, on: cond } => {
            let cond = cond.map(ox).filter(|c| *c != Expr::Constant(Value::Bool(true)));
            Node::Lateral { left: on(left), right: on(right), kind, on: cond }
        }
        Node::SetOp { op, all, left, right } => Node::SetOp { op, all, left: on(left), right: on(right) },
        Node::Values { rows, width } => {
            Node::Values { rows: rows.into_iter().map(|r| r.into_iter().map(ox).collect()).collect(), width }
        }
        Node::Window { input, calls } => Node::Window {
            input: on(input),
            calls: calls
                .into_iter()
                .map(|c| WindowCall {
                    func: match c.func {
                        WindowFunc::Aggregate(a) => {
                            WindowFunc::Aggregate(AggCall { arg: a.arg.map(ox), filter: a.filter.map(ox), ..a })
                        }
                        f => f,
                    },
                    args: c.args.into_iter().map(ox).collect(),
                    partition_by: c.partition_by.into_iter().map(ox).collect(),
                    order_by: c.order_by.into_iter().map(|k| SortKey { expr: ox(k.expr), ..k }).collect(),
                    frame: Frame { start: c.frame.start.map(ox), end: c.frame.end.map(ox), ..c.frame },
                    ..c
                })
                .collect(),
        },
        Node::Recursive { base, step, all, id } => Node::Recursive { base: on(base), step: on(step), all, id },
        Node::LockRows { input, table, exclusive, no_wait, skip_locked } => {
            let input = on(input);
            // The re-check's copies of the WHERE and the select list, of
            // the optimized plan's.
            let skip_locked = skip_locked.map(|skip| match SkipLocked::recheck_of(&input) {
                Some((filter, output)) => SkipLocked { filter, output, ..skip },
                None => skip,
            });
            Node::LockRows { input, table, exclusive, no_wait, skip_locked }
        }
        n @ (Node::Scan { .. } | Node::Series { .. } | Node::Unnest { .. } | Node::WorkTable { .. }) => n,
    }
}

/// Folds constants in `e` and optimizes the plans of its subqueries,
/// wherever they are in it (`(SELECT count(*) ...) > 0` as much as a
/// subquery on its own).
fn optimize_expr(e: Expr, rules: Rules) -> Expr {
    let o = |n: Arc<Node>| Arc::new(optimize(Arc::unwrap_or_clone(n), rules));
    let e = e.transform(&mut |e| match e {
        Expr::Subquery(n) => Expr::Subquery(o(n)),
        Expr::ArraySubquery(n) => Expr::ArraySubquery(o(n)),
        Expr::Exists(n) => Expr::Exists(o(n)),
        Expr::InSubquery(x, n) => Expr::InSubquery(x, o(n)),
        e => e,
    });
    if !rules.fold_constants {
        return e;
    }
    fold(e)
}

/// Evaluates row-free, parameter-free sub-expressions. An expression that
/// fails (1/0) is left alone: it may never be evaluated (CASE), and if it
/// is, it fails then.
fn fold(e: Expr) -> Expr {
    if matches!(e, Expr::Constant(_) | Expr::Column(_) | Expr::Outer { .. } | Expr::Param(_) | Expr::Now) {
        return e;
    }
    if is_foldable(&e) {
        if let Ok(v) = exec::eval_constant(&e) {
            return Expr::Constant(v);
        }
        return e;
    }
    let f = |b: Box<Expr>| Box::new(fold(*b));
    match e {
        Expr::Binary(op, a, b) => Expr::Binary(op, f(a), f(b)),
        Expr::Unary(op, a) => Expr::Unary(op, f(a)),
        Expr::And(a, b) => match (fold(*a), fold(*b)) {
            (Expr::Constant(Value::Bool(true)), x) | (x, Expr::Constant(Value::Bool(true))) => x,
            (Expr::Constant(Value::Bool(false)), _) | (_, Expr::Constant(Value::Bool(false))) => {
                Expr::Constant(Value::Bool(false))
            }
            (a, b) => Expr::And(Box::new(a), Box::new(b)),
        },
        Expr::Or(a, b) => match (fold(*a), fold(*b)) {
            (Expr::Constant(Value::Bool(false)), x) | (x, Expr::Constant(Value::Bool(false))) => x,
            (Expr::Constant(Value::Bool(true)), _) | (_, Expr::Constant(Value::Bool(true))) => {
                Expr::Constant(Value::Bool(true))
            }
            (a, b) => Expr::Or(Box::new(a), Box::new(b)),
        },
        Expr::Not(a) => Expr::Not(f(a)),
        Expr::IsNull(a) => Expr::IsNull(f(a)),
        Expr::IsBool(a, b) => Expr::IsBool(f(a), b),
        Expr::IsDistinctFrom(a, b) => Expr::IsDistinctFrom(f(a), f(b)),
        Expr::Like { expr, pattern, case_insensitive } => {
            Expr::Like { expr: f(expr), pattern: f(pattern), case_insensitive }
        }
        Expr::Case { operand, whens, otherwise } => Expr::Case {
            operand: operand.map(f),
            whens: whens.into_iter().map(|(w, t)| (fold(w), fold(t))).collect(),
            otherwise: f(otherwise),
        },
        Expr::Cast(a, t) => Expr::Cast(f(a), t),
        Expr::Function(n, args) => Expr::Function(n, args.into_iter().map(fold).collect()),
        Expr::Coalesce(args) => Expr::Coalesce(args.into_iter().map(fold).collect()),
        Expr::NullIf(a, b) => Expr::NullIf(f(a), f(b)),
        Expr::InList(a, list) => Expr::InList(f(a), list.into_iter().map(fold).collect()),
        e => e,
    }
}

fn is_foldable(e: &Expr) -> bool {
    let mut ok = true;
    e.walk(&mut |x| {
        if matches!(
            x,
            Expr::Column(_)
                | Expr::Outer { .. }
                | Expr::Param(_)
                | Expr::Now
                | Expr::Subquery(_)
                | Expr::ArraySubquery(_)
                | Expr::Exists(_)
                | Expr::InSubquery(..)
        ) {
            ok = false;
        }
        if let Expr::Function(name, _) = x {
            if !is_immutable(name) {
                ok = false;
            }
        }
    });
    ok
}

/// Whether a scalar function always gives the same result for the same
/// arguments (so it can be evaluated at plan time).
pub(crate) fn is_immutable(name: &str) -> bool {
    !crate::advisory::is_function(name)
        && !crate::sequence::is_function(name)
        && !matches!(
            name,
            "random"
                | "gen_random_uuid"
                | "uuid_generate_v4"
                | "unique_rowid"
                | "clock_timestamp"
                | "timeofday"
                | "current_setting"
                | "set_config"
                | "pg_sleep"
                | "pg_sleep_for"
                | "pg_backend_pid"
                | "pg_cancel_backend"
                | "pg_terminate_backend"
        )
}

/// `input` filtered by `conjuncts`, with access paths chosen.
fn filter(input: Node, conjuncts: Vec<Expr>, rules: Rules) -> Node {
    let conjuncts: Vec<Expr> = conjuncts.into_iter().filter(|c| *c != Expr::Constant(Value::Bool(true))).collect();
    let input = match input {
        join @ Node::Join { kind: JoinKind::Inner, .. } if rules.order_joins => {
            return reorder_joins(join, conjuncts, rules);
        }
        // A reversed scan has its order from rule 4: it keeps its index.
        Node::Scan { table, index, spans, reverse: false }
            if rules.choose_access_paths && spans.iter().all(ScanSpan::is_full) =>
        {
            let (index, spans) = choose_access_path(&table, &conjuncts).unwrap_or((index, spans));
            Node::Scan { table, index, spans, reverse: false }
        }
        other => other,
    };
    match Expr::and_all(conjuncts) {
        Some(p) => Node::Filter { input: Box::new(input), predicate: p },
        None => input,
    }
}

// ---- sorts from an index --------------------------------------------------

/// How a scan gives the order a sort asks for (rule 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadOrder {
    /// As it reads.
    AsIs,
    /// Read the other way round.
    Reversed,
}

/// Does `input` (a projection of a filtered scan, or the filtered scan)
/// give its rows in the order of `keys`, as it reads or reversed? (Rule
/// 4.) Reversed, every key's direction and NULLs place flip with the
/// index's.
fn read_in_order(input: &Node, keys: &[SortKey]) -> Option<ReadOrder> {
    // The keys as columns of the scan's rows.
    let (mut node, mut columns) = (input, Vec::with_capacity(keys.len()));
    let projected = match input {
        Node::Project { input, exprs } => {
            node = input;
            Some(exprs)
        }
        _ => None,
    };
    for k in keys {
        let Expr::Column(i) = k.expr else { return None };
        let column = match projected {
            Some(exprs) => match exprs.get(i) {
                Some(Expr::Column(c)) => *c,
                _ => return None,
            },
            None => i,
        };
        columns.push((column, k));
    }
    while let Node::Filter { input, .. } = node {
        node = input;
    }
    let Node::Scan { table, index, spans, reverse } = node else { return None };
    // The scan's order: the index's columns, then (a secondary index's
    // entries, which end with it, or are unique) the primary key.
    let mut order: Vec<(u32, crate::encoding::Direction)> = index.columns.clone();
    if index.id != crate::catalog::PRIMARY_INDEX_ID {
        order.extend(table.primary.columns.iter().copied());
    }
    let positions = table.key_positions(&IndexDesc { columns: order.clone(), ..index.clone() }).ok()?;
    // Columns one span's equalities fix (the filter above keeps only rows
    // with those values, so they are the same in every row read).
    let fixed = match spans.as_slice() {
        [span] => span.equal.len(),
        _ => 0,
    };
    // Whether the keys are the scan's order read `flipped` (or not).
    let in_order = |flipped: bool| {
        let mut next = fixed;
        for &(column, key) in &columns {
            if positions[..fixed].contains(&column) {
                continue;
            }
            let Some(at) = positions.get(next) else { return false };
            let descending = (order[next].1 == crate::encoding::Direction::Desc) != (*reverse != flipped);
            let c = &table.columns[column];
            let sorts_as_encoded = matches!(
                c.data_type,
                DataType::Bool
                    | DataType::Int2
                    | DataType::Int4
                    | DataType::Int8
                    | DataType::Text
                    | DataType::Varchar(_)
                    | DataType::Timestamp
                    | DataType::TimestampTz
                    | DataType::Date
                    | DataType::Uuid
            );
            // The encoding puts NULLs last in ascending order, so first
            // read descending.
            let nulls_placed = !c.nullable || key.nulls_first == descending;
            if *at != column || key.descending != descending || !sorts_as_encoded || !nulls_placed {
                return false;
            }
            next += 1;
        }
        true
    };
    if in_order(false) {
        Some(ReadOrder::AsIs)
    } else if in_order(true) {
        Some(ReadOrder::Reversed)
    } else {
        None
    }
}

/// A constant count (a LIMIT's or OFFSET's), if the expression is one.
fn constant_count(e: &Expr) -> Option<u64> {
    match e {
        Expr::Constant(Value::Int2(n)) => u64::try_from(*n).ok(),
        Expr::Constant(Value::Int4(n)) => u64::try_from(*n).ok(),
        Expr::Constant(Value::Int8(n)) => u64::try_from(*n).ok(),
        _ => None,
    }
}

/// `node` (the input of a LIMIT of a few rows), or, if it is a sort
/// (under projections) of a scan of a whole table by its primary key
/// with no filter, the same scan through a secondary index that reads in
/// the sort's order, with no sort: `SELECT * FROM events ORDER BY at DESC
/// LIMIT 20` reads twenty entries of an index on `at` and their rows, not
/// every row. Only under a LIMIT of a few rows
/// ([`limits::INDEX_ORDER_ROWS_MAX`]): a lookup per row costs more than a
/// sort of many.
fn sort_from_another_index(node: Node) -> Node {
    match node {
        Node::Project { input, exprs } => Node::Project { input: Box::new(sort_from_another_index(*input)), exprs },
        Node::Sort { input, keys } => match in_order_by_another_index(&input, &keys) {
            Some(ordered) => ordered,
            None => Node::Sort { input, keys },
        },
        other => other,
    }
}

/// `input` (a scan, or a projection of one) read through a secondary
/// index that gives it in the order of `keys`, if its scan reads the
/// whole table by primary key and such an index exists. Not under a
/// filter: the index's rows, each read by key (and locked, in a
/// read-write transaction), would go on until enough passed it, where a
/// scan of the table reads pages.
fn in_order_by_another_index(input: &Node, keys: &[SortKey]) -> Option<Node> {
    fn with_index(node: &Node, index: &IndexDesc) -> Option<Node> {
        Some(match node {
            Node::Project { input, exprs } => {
                Node::Project { input: Box::new(with_index(input, index)?), exprs: exprs.clone() }
            }
            Node::Scan { table, index: primary, spans, reverse: false }
                if primary.id == crate::catalog::PRIMARY_INDEX_ID && spans.iter().all(ScanSpan::is_full) =>
            {
                Node::Scan { table: table.clone(), index: index.clone(), spans: spans.clone(), reverse: false }
            }
            _ => return None,
        })
    }
    fn table_of(node: &Node) -> Option<&Arc<TableDesc>> {
        match node {
            Node::Project { input, .. } => table_of(input),
            Node::Scan { table, .. } => Some(table),
            _ => None,
        }
    }
    let table = table_of(input)?;
    table.indexes.iter().filter(|i| !i.write_only).find_map(|index| {
        let candidate = with_index(input, index)?;
        match read_in_order(&candidate, keys)? {
            ReadOrder::AsIs => Some(candidate),
            ReadOrder::Reversed => Some(reversed(candidate)),
        }
    })
}

/// Whether `column` (a column of `input`'s rows: a scan's, through
/// projections) may be NULL; true where that is not known.
fn nullable(input: &Node, column: &Expr) -> bool {
    match (input, column) {
        (Node::Project { input, exprs }, Expr::Column(i)) => exprs.get(*i).is_none_or(|e| nullable(input, e)),
        (Node::Filter { input, .. }, column) => nullable(input, column),
        (Node::Scan { table, .. }, Expr::Column(i)) => table.columns.get(*i).is_none_or(|c| c.nullable),
        _ => true,
    }
}

/// `input` (what [`read_in_order`] took) with its scan read the other
/// way round.
fn reversed(input: Node) -> Node {
    match input {
        Node::Project { input, exprs } => Node::Project { input: Box::new(reversed(*input)), exprs },
        Node::Filter { input, predicate } => Node::Filter { input: Box::new(reversed(*input)), predicate },
        Node::Scan { table, index, spans, reverse } => Node::Scan { table, index, spans, reverse: !reverse },
        other => other,
    }
}

// ---- min and max from an index ---------------------------------------------

/// `aggregate` (optimized), or, if it is one `min` or `max` of a column
/// that the scan under it reads in order (either way round, rule 4), the
/// same aggregate over that order's first non-NULL value: `max(id)` reads
/// one row from the index's end, not every row. (Rule 6.)
///
/// ```text
/// Aggregate [max(#0)]                 Aggregate [max(#0)]
///   Scan t@t_pkey            =>         Limit 1
///                                         Filter (#0 IS NOT NULL)
///                                           Scan t@t_pkey (reverse)
/// ```
fn min_max_from_index(aggregate: Node) -> Node {
    let Node::Aggregate { input, group_by, aggregates } = aggregate else { return aggregate };
    let one_of_a_column = match (group_by.is_empty(), aggregates.as_slice()) {
        (true, [a]) => {
            matches!(a.func, AggFunc::Min | AggFunc::Max)
                && !a.distinct
                && a.filter.is_none()
                && matches!(a.arg, Some(Expr::Column(_)))
        }
        _ => false,
    };
    if !one_of_a_column {
        return Node::Aggregate { input, group_by, aggregates };
    }
    let arg = aggregates[0].arg.clone().expect("matched above");
    // NULLs go where the index has them either way: they are dropped.
    let descending = aggregates[0].func == AggFunc::Max;
    let keys = [SortKey { expr: arg.clone(), descending, nulls_first: descending }];
    let ordered = match read_in_order(&input, &keys) {
        Some(ReadOrder::AsIs) => *input,
        Some(ReadOrder::Reversed) => reversed(*input),
        // Through another index only where NULLs, each read by key and
        // dropped, do not come first.
        None => match in_order_by_another_index(&input, &keys).filter(|_| !descending || !nullable(&input, &arg)) {
            Some(ordered) => ordered,
            None => return Node::Aggregate { input, group_by, aggregates },
        },
    };
    // NULLs dropped (no filter where the column has none: the LIMIT then
    // reads one row, not a filter's few more).
    let values = match nullable(&ordered, &arg) {
        true => Node::Filter { input: Box::new(ordered), predicate: Expr::Not(Box::new(Expr::IsNull(Box::new(arg)))) },
        false => ordered,
    };
    let first = Node::Limit { input: Box::new(values), limit: Some(Expr::Constant(Value::Int8(1))), offset: None };
    Node::Aggregate { input: Box::new(first), group_by, aggregates }
}

// ---- access paths ----------------------------------------------------------

/// The best index and spans for `conjuncts` over `table`'s rows, if any
/// index narrows the scan.
fn choose_access_path(table: &Arc<TableDesc>, conjuncts: &[Expr]) -> Option<(IndexDesc, Vec<ScanSpan>)> {
    let mut best: Option<(usize, IndexDesc, Vec<ScanSpan>)> = None;
    for index in std::iter::once(&table.primary).chain(table.indexes.iter().filter(|i| !i.write_only)) {
        let Ok(positions) = table.key_positions(index) else { continue };
        let (score, spans) = spans_for(&positions, conjuncts);
        if score == 0 {
            continue;
        }
        // Prefer more equalities; then the primary index (no lookup).
        if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
            best = Some((score, index.clone(), spans));
        }
    }
    best.map(|(_, i, s)| (i, s))
}

/// A bound on column `col` from a conjunct: `(op, value expr)` with the
/// column on the left.
fn column_bound(c: &Expr, col: usize) -> Option<(BinaryOp, Expr)> {
    let Expr::Binary(op, a, b) = c else { return None };
    let flip = |op: BinaryOp| match op {
        BinaryOp::Lt => BinaryOp::Gt,
        BinaryOp::LtEq => BinaryOp::GtEq,
        BinaryOp::Gt => BinaryOp::Lt,
        BinaryOp::GtEq => BinaryOp::LtEq,
        o => o,
    };
    if !matches!(op, BinaryOp::Eq | BinaryOp::Lt | BinaryOp::LtEq | BinaryOp::Gt | BinaryOp::GtEq) {
        return None;
    }
    match (a.as_ref(), b.as_ref()) {
        (Expr::Column(i), v) if *i == col && is_bound_value(v) => Some((*op, v.clone())),
        (v, Expr::Column(i)) if *i == col && is_bound_value(v) => Some((flip(*op), v.clone())),
        _ => None,
    }
}

/// A value a scan can be bounded by: evaluated once when the scan opens
/// (`exec::span_ranges`), so it must be one value for every row the scan
/// reads: it reads no column of the scanned row and calls no volatile
/// function. Constants, parameters, `now()`, an uncorrelated subquery
/// (run once per statement in any case), and the outer rows of a
/// correlated subquery, which runs per outer row: `(SELECT name FROM u
/// WHERE u.id = t.uid)` is then a lookup of one key per row of `t`
/// instead of a scan of `u` per row; and operators, casts and immutable
/// functions over them.
fn is_bound_value(e: &Expr) -> bool {
    if let Expr::Constant(v) = e {
        return !v.is_null();
    }
    let mut ok = true;
    e.walk(&mut |x| match x {
        Expr::Column(_) | Expr::Exists(_) | Expr::InSubquery(..) | Expr::ArraySubquery(_) => ok = false,
        Expr::Subquery(n) if exec::is_correlated(n) => ok = false,
        Expr::Function(name, _) if !is_immutable(name) => ok = false,
        _ => {}
    });
    ok
}

/// The spans an index with key columns at `positions` gets from
/// `conjuncts`, and how good they are (0: no narrowing).
fn spans_for(positions: &[usize], conjuncts: &[Expr]) -> (usize, Vec<ScanSpan>) {
    let mut spans = vec![ScanSpan::full()];
    let mut score = 0;
    for &col in positions {
        // An equality?
        if let Some(v) = conjuncts.iter().find_map(|c| column_bound(c, col).filter(|(op, _)| *op == BinaryOp::Eq)) {
            for s in &mut spans {
                s.equal.push(v.1.clone());
            }
            score += 10;
            continue;
        }
        // An IN list of values? (A NULL among them matches no row: `x =
        // NULL` is never true, so it adds no span.)
        let in_list = conjuncts.iter().find_map(|c| match c {
            Expr::InList(x, items) if matches!(x.as_ref(), Expr::Column(i) if *i == col) => {
                let values: Vec<Expr> =
                    items.iter().filter(|i| !matches!(i, Expr::Constant(Value::Null))).cloned().collect();
                let fits = !values.is_empty() && values.len() * spans.len() <= limits::SPANS_PER_SCAN_MAX;
                (fits && values.iter().all(is_bound_value)).then_some(values)
            }
            _ => None,
        });
        if let Some(items) = in_list {
            spans = spans
                .into_iter()
                .flat_map(|s| {
                    items.iter().map(move |v| {
                        let mut s = s.clone();
                        s.equal.push(v.clone());
                        s
                    })
                })
                .collect();
            score += 9;
            continue;
        }
        // An uncorrelated IN subquery, or `= ANY` of an array known as
        // the scan opens: a range per element then (`ScanSpan::each`).
        // It ends the prefix.
        let is_col = |x: &Expr| matches!(x, Expr::Column(i) if *i == col);
        let elements = conjuncts.iter().find_map(|c| match c {
            Expr::InSubquery(x, n) if is_col(x) && !exec::is_correlated(n) => Some(Expr::ArraySubquery(n.clone())),
            Expr::Quantified { op: BinaryOp::Eq, all: false, left, array } if is_col(left) && is_bound_value(array) => {
                Some(array.as_ref().clone())
            }
            _ => None,
        });
        if let Some(each) = elements {
            for s in &mut spans {
                s.each = Some(each.clone());
            }
            score += 8;
            break;
        }
        // A range ends the prefix.
        let (mut lower, mut upper) = (None, None);
        for c in conjuncts {
            match column_bound(c, col) {
                Some((BinaryOp::Gt, v)) if lower.is_none() => lower = Some((v, false)),
                Some((BinaryOp::GtEq, v)) if lower.is_none() => lower = Some((v, true)),
                Some((BinaryOp::Lt, v)) if upper.is_none() => upper = Some((v, false)),
                Some((BinaryOp::LtEq, v)) if upper.is_none() => upper = Some((v, true)),
                _ => {}
            }
        }
        if lower.is_some() || upper.is_some() {
            score += 1;
            for s in &mut spans {
                s.lower = lower.clone();
                s.upper = upper.clone();
            }
        }
        break;
    }
    (score, spans)
}

// ---- join ordering ---------------------------------------------------------

/// A relation of a flattened inner-join tree and where its columns start
/// in the original row.
struct Relation {
    node: Node,
    offset: usize,
    width: usize,
}

fn flatten(node: Node, offset: usize, relations: &mut Vec<Relation>, conjuncts: &mut Vec<Expr>) {
    match node {
        Node::Join { left, right, kind: JoinKind::Inner, left_keys, right_keys, on } => {
            // A join already ordered (a filter above a `JOIN ... ON`)
            // flattens too: its hash keys become equalities again.
            // (Left as one relation, filter() would reorder it forever.)
            let left_width = left.width();
            flatten(*left, offset, relations, conjuncts);
            flatten(*right, offset + left_width, relations, conjuncts);
            for (l, r) in left_keys.into_iter().zip(right_keys) {
                let r = r.map_columns(&|i| i + left_width);
                conjuncts.push(Expr::Binary(BinaryOp::Eq, Box::new(l), Box::new(r)).map_columns(&|i| i + offset));
            }
            if let Some(on) = on {
                conjuncts.extend(on.conjuncts().into_iter().map(|c| c.map_columns(&|i| i + offset)));
            }
        }
        other => {
            let width = other.width();
            relations.push(Relation { node: other, offset, width });
        }
    }
}

/// The relations (indexes into `relations`) a conjunct reads.
fn relations_of(c: &Expr, relations: &[Relation]) -> Vec<usize> {
    let mut out = Vec::new();
    c.walk(&mut |e| {
        if let Expr::Column(i) = e {
            if let Some(r) = relations.iter().position(|r| *i >= r.offset && *i < r.offset + r.width) {
                if !out.contains(&r) {
                    out.push(r);
                }
            }
        }
    });
    out
}

/// Rebuilds an inner-join tree under `conjuncts` (over its original row)
/// so each step joins on a predicate, with single-relation conjuncts
/// pushed down; a final projection restores the original column order.
fn reorder_joins(join: Node, conjuncts: Vec<Expr>, rules: Rules) -> Node {
    let mut relations = Vec::new();
    let mut all = conjuncts;
    flatten(join, 0, &mut relations, &mut all);
    let total_width: usize = relations.iter().map(|r| r.width).sum();

    // Conjuncts by the relations they read; subquery-bearing ones stay on top.
    let mut pending: Vec<(Expr, Vec<usize>)> = Vec::new();
    let mut top = Vec::new();
    let mut local: Vec<Vec<Expr>> = relations.iter().map(|_| Vec::new()).collect();
    for c in all {
        let mut has_subquery = false;
        c.walk(&mut |e| {
            has_subquery |=
                matches!(e, Expr::Subquery(_) | Expr::ArraySubquery(_) | Expr::Exists(_) | Expr::InSubquery(..))
        });
        let rels = relations_of(&c, &relations);
        match (has_subquery, rels.len()) {
            (true, _) => top.push(c),
            (false, 0) => top.push(c),
            (false, 1) => {
                let r = &relations[rels[0]];
                let off = r.offset;
                local[rels[0]].push(c.map_columns(&|i| i - off));
            }
            (false, _) => pending.push((c, rels)),
        }
    }
    // Push single-relation conjuncts down.
    let mut nodes: Vec<Option<Node>> = Vec::new();
    for (r, conj) in relations.iter_mut().zip(local) {
        let node = std::mem::replace(&mut r.node, Node::Values { rows: vec![], width: 0 });
        nodes.push(Some(if conj.is_empty() { node } else { filter(node, conj, rules) }));
    }

    // Greedy order: start with relation 0; add a connected one if any.
    let n = relations.len();
    let mut order = vec![0usize];
    let mut joined = vec![false; n];
    joined[0] = true;
    while order.len() < n {
        let connected = (0..n).find(|&r| {
            !joined[r]
                && pending.iter().any(|(_, rels)| rels.contains(&r) && rels.iter().all(|x| joined[*x] || *x == r))
        });
        let next = connected.unwrap_or_else(|| (0..n).find(|&r| !joined[r]).expect("one left"));
        joined[next] = true;
        order.push(next);
    }

    // New offsets and the map from original to new positions.
    let mut new_offset = vec![0usize; n];
    let mut acc = 0;
    for &r in &order {
        new_offset[r] = acc;
        acc += relations[r].width;
    }
    let map = |i: usize| -> usize {
        let r = relations.iter().position(|r| i >= r.offset && i < r.offset + r.width).expect("column in a relation");
        new_offset[r] + (i - relations[r].offset)
    };

    // Build left-deep, attaching each multi-relation conjunct at the first
    // step where all its relations are joined.
    let mut placed = vec![false; pending.len()];
    let mut tree = nodes[order[0]].take().expect("node");
    let mut in_tree = vec![order[0]];
    for &r in &order[1..] {
        let left_width = tree.width();
        let right = nodes[r].take().expect("node");
        in_tree.push(r);
        let mut step = Vec::new();
        for (k, (c, rels)) in pending.iter().enumerate() {
            if !placed[k] && rels.iter().all(|x| in_tree.contains(x)) {
                placed[k] = true;
                step.push(c.clone().map_columns(&map));
            }
        }
        let (left_keys, right_keys, rest) = equi_keys(step, left_width);
        let join = Node::Join {
            left: Box::new(tree),
            right: Box::new(right),
            kind: JoinKind::Inner,
            left_keys,
            right_keys,
            on: Expr::and_all(rest),
        };
        tree = lookup_join(join, rules);
    }
    let top: Vec<Expr> = top.into_iter().map(|c| c.map_columns(&map)).collect();
    if let Some(p) = Expr::and_all(top) {
        tree = Node::Filter { input: Box::new(tree), predicate: p };
    }
    let identity = order.iter().enumerate().all(|(i, r)| *r == i);
    if identity {
        return tree;
    }
    Node::Project { input: Box::new(tree), exprs: (0..total_width).map(|i| Expr::Column(map(i))).collect() }
}

/// Splits join conjuncts into hash keys (`left expr = right expr`, each
/// side reading one side of the join) and the rest.
fn equi_keys(conjuncts: Vec<Expr>, left_width: usize) -> (Vec<Expr>, Vec<Expr>, Vec<Expr>) {
    let side = |e: &Expr| -> Option<bool> {
        // Some(true): reads only the left; Some(false): only the right.
        let (mut l, mut r, mut other) = (false, false, false);
        e.walk(&mut |x| match x {
            Expr::Column(i) if *i < left_width => l = true,
            Expr::Column(_) => r = true,
            Expr::Outer { .. }
            | Expr::Param(_)
            | Expr::Now
            | Expr::Subquery(_)
            | Expr::ArraySubquery(_)
            | Expr::Exists(_)
            | Expr::InSubquery(..) => other = true,
            _ => {}
        });
        match (l, r, other) {
            (true, false, false) => Some(true),
            (false, true, false) => Some(false),
            _ => None,
        }
    };
    let (mut lk, mut rk, mut rest) = (Vec::new(), Vec::new(), Vec::new());
    for c in conjuncts {
        if let Expr::Binary(BinaryOp::Eq, a, b) = &c {
            match (side(a), side(b)) {
                (Some(true), Some(false)) => {
                    lk.push((**a).clone());
                    rk.push(b.as_ref().clone().map_columns(&|i| i - left_width));
                    continue;
                }
                (Some(false), Some(true)) => {
                    lk.push((**b).clone());
                    rk.push(a.as_ref().clone().map_columns(&|i| i - left_width));
                    continue;
                }
                _ => {}
            }
        }
        rest.push(c);
    }
    (lk, rk, rest)
}

// ---- lookup joins ----------------------------------------------------------

/// Rule 5: `join` (an equi-join) as a lateral join that looks the table
/// side's rows up by the few rows of the other side, if it has such a
/// side and the keys bound an index of the table; else `join` as it is.
fn lookup_join(join: Node, rules: Rules) -> Node {
    if !(rules.lookup_joins && rules.choose_access_paths) {
        return join;
    }
    let Node::Join { left, right, kind, left_keys, right_keys, on } = join else { return join };
    let few = |n: &Node| rows_at_most(n).is_some_and(|r| r <= limits::LOOKUP_JOIN_ROWS_MAX);
    // The few rows on the left, the table on the right: the lateral join
    // keeps the join's column order (and a LEFT join's meaning).
    if matches!(kind, JoinKind::Inner | JoinKind::Left) && few(&left) {
        if let Some(lookup) = lookup_side(&right, &right_keys, &left_keys, rules) {
            return Node::Lateral { left, right: Box::new(lookup), kind, on };
        }
    }
    // The table on the left: the few rows go first, and a projection puts
    // the table's columns back in front.
    if kind == JoinKind::Inner && few(&right) {
        if let Some(lookup) = lookup_side(&left, &left_keys, &right_keys, rules) {
            let (table_width, few_width) = (left.width(), right.width());
            let swap = |i: usize| if i < table_width { few_width + i } else { i - table_width };
            let lateral =
                Node::Lateral { left: right, right: Box::new(lookup), kind, on: on.map(|c| c.map_columns(&swap)) };
            let exprs = (0..table_width + few_width).map(|i| Expr::Column(swap(i))).collect();
            return Node::Project { input: Box::new(lateral), exprs };
        }
    }
    Node::Join { left, right, kind, left_keys, right_keys, on }
}

/// The table side `side` (a scan, filtered or not) of a join on
/// `keys[i] = other_keys[i]`, as a scan bounded by the other side's row
/// (its outer row, one level out): `None` unless each of `keys` is a
/// column of the table, `side` reads no outer row, and the bound scan
/// uses the keys.
fn lookup_side(side: &Node, keys: &[Expr], other_keys: &[Expr], rules: Rules) -> Option<Node> {
    if keys.is_empty() || exec::is_correlated(side) {
        return None;
    }
    let (table, mut conjuncts) = match side {
        Node::Scan { table, .. } => (table, Vec::new()),
        Node::Filter { input, predicate } => match input.as_ref() {
            Node::Scan { table, .. } => (table, predicate.clone().conjuncts()),
            _ => return None,
        },
        _ => return None,
    };
    for (key, other) in keys.iter().zip(other_keys) {
        if !matches!(key, Expr::Column(_)) {
            return None;
        }
        let outer = other.clone().transform(&mut |e| match e {
            Expr::Column(index) => Expr::Outer { depth: 1, index },
            e => e,
        });
        conjuncts.push(Expr::Binary(BinaryOp::Eq, Box::new(key.clone()), Box::new(outer)));
    }
    let scan = Node::full_scan(table.clone());
    let lookup = filter(scan, conjuncts, rules);
    let bounded_by_outer = |n: &Node| {
        let Node::Scan { spans, .. } = n else { return false };
        spans.iter().all(|s| {
            let mut outer = false;
            s.equal.iter().for_each(|e| e.walk(&mut |x| outer |= matches!(x, Expr::Outer { .. })));
            outer
        })
    };
    let bounded = match &lookup {
        Node::Filter { input, .. } => bounded_by_outer(input),
        other => bounded_by_outer(other),
    };
    bounded.then_some(lookup)
}

/// The most rows `node` can give, when the plan alone says so.
fn rows_at_most(node: &Node) -> Option<u64> {
    match node {
        Node::Limit { input, limit, .. } => match (limit.as_ref().and_then(constant_count), rows_at_most(input)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        },
        Node::Values { rows, .. } => Some(rows.len() as u64),
        Node::Aggregate { group_by, .. } if group_by.is_empty() => Some(1),
        Node::Filter { input, .. }
        | Node::Project { input, .. }
        | Node::Sort { input, .. }
        | Node::Distinct { input, .. }
        | Node::LockRows { input, .. } => rows_at_most(input),
        _ => None,
    }
}
