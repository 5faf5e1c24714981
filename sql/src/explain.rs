//! EXPLAIN: a plan as indented text, with each scan's table and index, its
//! key spans (decoded) and the shards they touch.
//!
//! ```text
//!   Sort [#1 DESC]
//!     Aggregate group=[#1] aggregates=[count(*)]
//!       Filter (#0 > 10)
//!         Scan accounts@accounts_pkey
//!           span /Table/100/1/10 - /Table/100/2 on shard 1 (leader s1, rv3)
//! ```

use crate::encoding;
use crate::exec::{self, Cx, NodeStats};
use crate::kv::Engine;
use crate::ops;
use crate::plan::*;
use crate::types::Value;

/// The lines of `plan`'s explanation. `cx` evaluates span bounds (a
/// parameter-free plan needs no transaction). With `analysis` (EXPLAIN
/// ANALYZE, in the plan's pre-order), each node also shows what it did.
pub fn explain(plan: &Plan, engine: &dyn Engine, cx: &mut Cx, analysis: Option<&[NodeStats]>) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = Analyzed { stats: analysis, next: 0 };
    match plan {
        Plan::Query(q) => node(&q.root, 0, engine, cx, &mut at, &mut out),
        Plan::Insert { table, source, constraints, .. } => {
            out.push(format!("Insert {}", table.name));
            foreign_keys(constraints, engine, cx, &mut out);
            node(source, 1, engine, cx, &mut at, &mut out);
        }
        Plan::Update { table, source, assignments, constraints, .. } => {
            let sets: Vec<String> =
                assignments.iter().map(|(i, e)| format!("{} = {}", table.columns[*i].name, expr(e))).collect();
            out.push(format!("Update {} set {}", table.name, sets.join(", ")));
            subplans(assignments.iter().map(|(_, e)| e), 0, engine, cx, &mut out);
            foreign_keys(constraints, engine, cx, &mut out);
            node(source, 1, engine, cx, &mut at, &mut out);
        }
        Plan::Delete { table, source, constraints, .. } => {
            out.push(format!("Delete {}", table.name));
            foreign_keys(constraints, engine, cx, &mut out);
            node(source, 1, engine, cx, &mut at, &mut out);
        }
        Plan::Explain { plan, .. } => return explain(plan, engine, cx, analysis),
        Plan::WithModifying { steps, main } => {
            for step in steps {
                out.push(format!("WITH query (work table {}), run first", step.id));
                out.extend(explain(&step.plan, engine, cx, None).into_iter().map(|line| format!("  {line}")));
            }
            out.extend(explain(main, engine, cx, analysis));
        }
        other => out.push(ddl_name(other).to_string()),
    }
    out
}

fn ddl_name(plan: &Plan) -> &'static str {
    match plan {
        Plan::CreateTable { .. } => "CreateTable",
        Plan::CreateTableAs { .. } => "CreateTableAs",
        Plan::DropTable { .. } => "DropTable",
        Plan::CreateIndex { .. } => "CreateIndex",
        Plan::CreateView { .. } => "CreateView",
        Plan::DropView { .. } => "DropView",
        Plan::DropIndex { .. } => "DropIndex",
        Plan::AddColumn { .. } => "AddColumn",
        Plan::DropColumn { .. } => "DropColumn",
        Plan::AlterColumn { .. } => "AlterColumn",
        Plan::AlterTableSteps { .. } => "AlterTable",
        Plan::AddPrimaryKey { .. } => "AddPrimaryKey",
        Plan::Truncate { .. } => "Truncate",
        Plan::AddForeignKey { .. } => "AddForeignKey",
        Plan::DropConstraint { .. } => "DropConstraint",
        Plan::RenameTable { .. } => "RenameTable",
        Plan::AddCheck { .. } => "AddCheck",
        Plan::RenameColumn { .. } => "RenameColumn",
        _ => "Statement",
    }
}

/// Walks per-node statistics in step with the plan's pre-order.
struct Analyzed<'s> {
    stats: Option<&'s [NodeStats]>,
    next: usize,
}

impl Analyzed<'_> {
    /// The next node's statistics, as a suffix for its line.
    fn take(&mut self) -> String {
        let Some(stats) = self.stats else { return String::new() };
        let s = stats.get(self.next).cloned().unwrap_or_default();
        self.next += 1;
        format!(
            "  (rows {}, kv requests {}, pairs {}, bytes {}, {:.3} ms)",
            s.rows,
            s.kv_requests,
            s.kv_pairs,
            s.kv_bytes,
            s.time_ns as f64 / 1e6
        )
    }
}

fn node(n: &Node, depth: usize, engine: &dyn Engine, cx: &mut Cx, at: &mut Analyzed, out: &mut Vec<String>) {
    let pad = "  ".repeat(depth);
    let first = out.len();
    let suffix = at.take();
    let mut node = |n: &Node, depth: usize, cx: &mut Cx, out: &mut Vec<String>| node(n, depth, engine, cx, at, out);
    match n {
        Node::Scan { table, index, spans, reverse } => {
            let order = if *reverse { " (reverse)" } else { "" };
            out.push(format!("{pad}Scan {}@{}{order}", table.name, index.name));
            if !spans.iter().flat_map(ScanSpan::exprs).all(Expr::is_row_free) {
                // Bound by an outer row or a subquery: known only as the
                // scan opens (and EXPLAIN runs no query).
                for s in spans {
                    out.push(format!("{pad}  span {} as the scan opens", span_bounds(s)));
                }
                subplans(spans.iter().flat_map(ScanSpan::exprs), depth, engine, cx, out);
            } else {
                match exec::span_ranges(table, index, spans, cx) {
                    Ok(ranges) => {
                        if ranges.is_empty() {
                            out.push(format!("{pad}  no spans (matches nothing)"));
                        }
                        for (start, end) in ranges {
                            let shards: Vec<String> = engine
                                .shards(&start, &end)
                                .iter()
                                .map(|s| format!("{} (leader s{}, rv{})", s.shard_id, s.leader_server, s.range_ver))
                                .collect();
                            out.push(format!(
                                "{pad}  span {} - {} on shard {}",
                                encoding::pretty_key(&start),
                                if end.is_empty() { "end".to_string() } else { encoding::pretty_key(&end) },
                                shards.join(", ")
                            ));
                        }
                    }
                    Err(_) => out.push(format!("{pad}  spans bound by parameters")),
                }
            }
        }
        Node::Values { rows, width } => out.push(format!("{pad}Values {} rows x {width} columns", rows.len())),
        Node::Filter { input, predicate } => {
            out.push(format!("{pad}Filter {}", expr(predicate)));
            subplans([predicate], depth, engine, cx, out);
            node(input, depth + 1, cx, out);
        }
        Node::Project { input, exprs } => {
            out.push(format!("{pad}Project [{}]", list(exprs)));
            subplans(exprs, depth, engine, cx, out);
            node(input, depth + 1, cx, out);
        }
        Node::Aggregate { input, group_by, aggregates } => {
            let aggs: Vec<String> = aggregates.iter().map(aggregate_call).collect();
            out.push(format!("{pad}Aggregate group=[{}] aggregates=[{}]", list(group_by), aggs.join(", ")));
            node(input, depth + 1, cx, out);
        }
        Node::Sort { input, keys } => {
            out.push(format!("{pad}Sort [{}]", sort_keys(keys)));
            node(input, depth + 1, cx, out);
        }
        Node::Limit { input, limit, offset } => {
            out.push(format!(
                "{pad}Limit {}{}",
                limit.as_ref().map(expr).unwrap_or_else(|| "ALL".into()),
                offset.as_ref().map(|o| format!(" offset {}", expr(o))).unwrap_or_default()
            ));
            node(input, depth + 1, cx, out);
        }
        Node::Distinct { input, on } => {
            match on {
                None => out.push(format!("{pad}Distinct")),
                Some(on) => out.push(format!(
                    "{pad}Distinct on=[{}]",
                    on.iter().map(|i| format!("#{i}")).collect::<Vec<_>>().join(", ")
                )),
            }
            node(input, depth + 1, cx, out);
        }
        Node::Join { left, right, kind, left_keys, right_keys, on } => {
            let how = if left_keys.is_empty() { "NestedLoopJoin" } else { "HashJoin" };
            let keys: Vec<String> =
                left_keys.iter().zip(right_keys).map(|(l, r)| format!("{} = right {}", expr(l), expr(r))).collect();
            out.push(format!(
                "{pad}{how} {:?}{}{}",
                kind,
                if keys.is_empty() { String::new() } else { format!(" on [{}]", keys.join(", ")) },
                on.as_ref().map(|e| format!(" filter {}", expr(e))).unwrap_or_default()
            ));
            node(left, depth + 1, cx, out);
            node(right, depth + 1, cx, out);
        }
        Node::Lateral { left, right, kind, on } => {
            out.push(format!(
                "{pad}LateralJoin {:?}{}",
                kind,
                on.as_ref().map(|e| format!(" filter {}", expr(e))).unwrap_or_default()
            ));
            node(left, depth + 1, cx, out);
            node(right, depth + 1, cx, out);
        }
        Node::SetOp { op, all, left, right } => {
            out.push(format!("{pad}{:?}{}", op, if *all { " ALL" } else { "" }));
            node(left, depth + 1, cx, out);
            node(right, depth + 1, cx, out);
        }
        Node::Unnest { array } => out.push(format!("{pad}Unnest {}", expr(array))),
        Node::Recursive { base, step, all, id } => {
            out.push(format!("{pad}RecursiveUnion{} work table {id}", if *all { " ALL" } else { "" }));
            node(base, depth + 1, cx, out);
            node(step, depth + 1, cx, out);
        }
        Node::WorkTable { id, .. } => out.push(format!("{pad}WorkTable {id}")),
        Node::LockRows { input, table, exclusive, no_wait, skip_locked } => {
            let strength = if *exclusive { "UPDATE" } else { "SHARE" };
            let wait = match (no_wait, skip_locked) {
                (_, Some(_)) => " SKIP LOCKED",
                (true, None) => " NOWAIT",
                (false, None) => "",
            };
            let locked = table.as_ref().map(|(_, name)| format!(" ({name} exclusively)")).unwrap_or_default();
            out.push(format!("{pad}LockRows FOR {strength}{wait}{locked}"));
            node(input, depth + 1, cx, out);
        }
        Node::Window { input, calls } => {
            let calls: Vec<String> = calls.iter().map(window_call).collect();
            out.push(format!("{pad}Window [{}]", calls.join(", ")));
            node(input, depth + 1, cx, out);
        }
        Node::Series { start, stop, step, .. } => out.push(format!(
            "{pad}GenerateSeries {} to {}{}",
            expr(start),
            expr(stop),
            step.as_ref().map(|s| format!(" step {}", expr(s))).unwrap_or_default()
        )),
    }
    if let Some(line) = out.get_mut(first) {
        line.push_str(&suffix);
    }
}

/// The foreign keys a write checks after its writes, each with its
/// lookup's plan.
fn foreign_keys(constraints: &Constraints, engine: &dyn Engine, cx: &mut Cx, out: &mut Vec<String>) {
    let references = constraints.references.iter().map(|f| (f, "references"));
    for (fk, how) in references.chain(constraints.referenced_by.iter().map(|f| (f, "referenced from"))) {
        out.push(format!("  Foreign key {} ({how} {})", fk.name, fk.table));
        match &fk.action {
            // Planned when it runs.
            Some(action) => out.push(format!("    Action: {}", action.sql)),
            None => subplans([&fk.found], 1, engine, cx, out),
        }
    }
}

/// The plans of the subqueries in `exprs`, each under a `SubPlan` line
/// below their node's (as PostgreSQL shows them), saying whether it runs
/// once or per outer row.
fn subplans<'e>(
    exprs: impl IntoIterator<Item = &'e Expr>,
    depth: usize,
    engine: &dyn Engine,
    cx: &mut Cx,
    out: &mut Vec<String>,
) {
    let mut found = Vec::new();
    for e in exprs {
        e.walk(&mut |x| {
            if let Expr::Subquery(n) | Expr::Exists(n) | Expr::InSubquery(_, n) | Expr::ArraySubquery(n) = x {
                found.push(n.clone());
            }
        });
    }
    for n in &found {
        let runs = if exec::is_correlated(n) { "per outer row" } else { "once" };
        out.push(format!("{}SubPlan ({runs})", "  ".repeat(depth + 1)));
        // Subqueries have no statistics of their own in EXPLAIN ANALYZE.
        node(n, depth + 2, engine, cx, &mut Analyzed { stats: None, next: 0 }, out);
    }
}

/// A span's bounds on the index's key columns, in order:
/// `key = (outer1#2) and > $1`, `key = ('rome') and in (subquery)`,
/// `key = ANY(outer1#3)`.
fn span_bounds(s: &ScanSpan) -> String {
    let mut parts = Vec::new();
    if !s.equal.is_empty() {
        parts.push(format!("key = ({})", list(&s.equal)));
    }
    if let Some(each) = &s.each {
        let elements = match each {
            Expr::ArraySubquery(_) => "in (subquery)".to_string(),
            e => format!("= ANY({})", expr(e)),
        };
        parts.push(if s.equal.is_empty() { format!("key {elements}") } else { elements });
    }
    if let Some((e, inclusive)) = &s.lower {
        parts.push(format!("{} {}", if *inclusive { ">=" } else { ">" }, expr(e)));
    }
    if let Some((e, inclusive)) = &s.upper {
        parts.push(format!("{} {}", if *inclusive { "<=" } else { "<" }, expr(e)));
    }
    parts.join(" and ")
}

/// Sort keys as ORDER BY writes them.
fn sort_keys(keys: &[SortKey]) -> String {
    let keys: Vec<String> = keys
        .iter()
        .map(|k| {
            format!(
                "{}{}{}",
                expr(&k.expr),
                if k.descending { " DESC" } else { "" },
                match (k.descending, k.nulls_first) {
                    (false, true) => " NULLS FIRST",
                    (true, false) => " NULLS LAST",
                    _ => "",
                }
            )
        })
        .collect();
    keys.join(", ")
}

/// An aggregate call: `sum(DISTINCT #1 ORDER BY #2) FILTER (WHERE ...)`.
fn aggregate_call(a: &AggCall) -> String {
    let order = match a.order_by.is_empty() {
        true => String::new(),
        false => format!(" ORDER BY {}", sort_keys(&a.order_by)),
    };
    let call = match &a.arg {
        None => format!("count(*{order})"),
        Some(e) => {
            let distinct = if a.distinct { "DISTINCT " } else { "" };
            format!("{}({distinct}{}{order})", a.func.name(), expr(e))
        }
    };
    match &a.filter {
        None => call,
        Some(f) => format!("{call} FILTER (WHERE {})", expr(f)),
    }
}

/// A window call: `rank() OVER (PARTITION BY #0 ORDER BY #1 ROWS ...)`.
fn window_call(c: &WindowCall) -> String {
    let call = match &c.func {
        WindowFunc::Aggregate(a) => aggregate_call(a),
        f => format!("{}({})", f.name(), list(&c.args)),
    };
    let mut spec = Vec::new();
    if !c.partition_by.is_empty() {
        spec.push(format!("PARTITION BY {}", list(&c.partition_by)));
    }
    if !c.order_by.is_empty() {
        spec.push(format!("ORDER BY {}", sort_keys(&c.order_by)));
    }
    if c.frame != Frame::default_range() {
        let bound = |b: &FrameBound| match b {
            FrameBound::UnboundedPreceding => "UNBOUNDED PRECEDING".to_string(),
            FrameBound::Preceding(e) => format!("{} PRECEDING", expr(e)),
            FrameBound::CurrentRow => "CURRENT ROW".to_string(),
            FrameBound::Following(e) => format!("{} FOLLOWING", expr(e)),
            FrameBound::UnboundedFollowing => "UNBOUNDED FOLLOWING".to_string(),
        };
        let units = match c.frame.units {
            FrameUnits::Rows => "ROWS",
            FrameUnits::Range => "RANGE",
            FrameUnits::Groups => "GROUPS",
        };
        spec.push(format!("{units} BETWEEN {} AND {}", bound(&c.frame.start), bound(&c.frame.end)));
    }
    format!("{call} OVER ({})", spec.join(" "))
}

fn list(exprs: &[Expr]) -> String {
    exprs.iter().map(expr).collect::<Vec<_>>().join(", ")
}

/// An expression in SQL-like text, columns as `#i`.
pub fn expr(e: &Expr) -> String {
    match e {
        Expr::Constant(Value::Null) => "NULL".into(),
        Expr::Constant(v @ Value::Text(_)) => format!("'{}'", ops::to_text(v).unwrap_or_default().replace('\'', "''")),
        Expr::Constant(v) => ops::to_text(v).unwrap_or_default(),
        Expr::Column(i) => format!("#{i}"),
        Expr::Outer { depth, index } => format!("outer{depth}#{index}"),
        Expr::Param(i) => format!("${}", i + 1),
        Expr::Binary(op, a, b) => format!("({} {} {})", expr(a), binary_symbol(*op), expr(b)),
        Expr::Unary(op, a) => format!("{}{}", if *op == ops::UnaryOp::Neg { "-" } else { "+" }, expr(a)),
        Expr::And(a, b) => format!("({} AND {})", expr(a), expr(b)),
        Expr::Or(a, b) => format!("({} OR {})", expr(a), expr(b)),
        Expr::Not(a) => format!("NOT {}", expr(a)),
        Expr::IsNull(a) => format!("{} IS NULL", expr(a)),
        Expr::IsBool(a, b) => format!("{} IS {}", expr(a), if *b { "TRUE" } else { "FALSE" }),
        Expr::IsDistinctFrom(a, b) => format!("{} IS DISTINCT FROM {}", expr(a), expr(b)),
        Expr::Like { expr: x, pattern, case_insensitive } => {
            format!("{} {} {}", expr(x), if *case_insensitive { "ILIKE" } else { "LIKE" }, expr(pattern))
        }
        Expr::Case { operand, whens, otherwise } => {
            let mut s = "CASE".to_string();
            if let Some(o) = operand {
                s.push_str(&format!(" {}", expr(o)));
            }
            for (w, t) in whens {
                s.push_str(&format!(" WHEN {} THEN {}", expr(w), expr(t)));
            }
            s.push_str(&format!(" ELSE {} END", expr(otherwise)));
            s
        }
        Expr::Cast(a, t) => format!("{}::{}", expr(a), t),
        Expr::Function(n, args) => format!("{n}({})", list(args)),
        Expr::Coalesce(args) => format!("COALESCE({})", list(args)),
        Expr::NullIf(a, b) => format!("NULLIF({}, {})", expr(a), expr(b)),
        Expr::InList(a, items) => format!("{} IN ({})", expr(a), list(items)),
        Expr::InSubquery(a, _) => format!("{} IN (subquery)", expr(a)),
        Expr::Exists(_) => "EXISTS (subquery)".into(),
        Expr::Subquery(_) => "(subquery)".into(),
        Expr::ArraySubquery(_) => "ARRAY(subquery)".into(),
        Expr::Quantified { op, all, left, array } => {
            format!("{} {} {}({})", expr(left), op.symbol(), if *all { "ALL" } else { "ANY" }, expr(array))
        }
        Expr::Now => "now()".into(),
    }
}

fn binary_symbol(op: ops::BinaryOp) -> &'static str {
    use ops::BinaryOp::*;
    match op {
        Add => "+",
        Sub => "-",
        Mul => "*",
        Div => "/",
        Mod => "%",
        Concat => "||",
        Eq => "=",
        NotEq => "<>",
        Lt => "<",
        LtEq => "<=",
        Gt => ">",
        GtEq => ">=",
    }
}
