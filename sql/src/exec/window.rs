//! The Window operator: window functions over partitions of its input.
//!
//! It holds its whole input (bounded as sorts are: rows and bytes), and
//! for each call sorts the rows' positions by partition, then by the
//! call's ORDER BY, and walks each partition once:
//!
//! ```text
//!   rows (input order)      sorted for rank() OVER (PARTITION BY g ORDER BY v)
//!   0: g=b v=5              2: g=a v=1   rank 1   peer group [0,1)
//!   1: g=a v=3              1: g=a v=3   rank 2   peer group [1,3)
//!   2: g=a v=1              3: g=a v=3   rank 2
//!   3: g=a v=3              0: g=b v=5   rank 1   (next partition)
//! ```
//!
//! Peers are rows of a partition equal by ORDER BY (all of them without
//! one). Ranking functions count rows and peer groups; `lag`/`lead` read
//! a neighbour; aggregates and `first_value`/`last_value`/`nth_value`
//! read the current row's frame, a range `[start, end)` of the partition
//! found per row from the frame's bounds.
//!
//! Cost: an aggregate whose frame starts at the partition's first row
//! (the default frame, and running totals) adds each row once, as the
//! frame's end only moves forward; a frame equal to the previous row's
//! reuses its value; any other frame (a sliding `ROWS n PRECEDING`) is
//! aggregated afresh per row, so `O(rows × frame)`, ticking the
//! statement's cancel check as it goes.
//!
//! Rows come out in the first call's order (partition, then ORDER BY),
//! each with one value per call after its own columns.

use std::cmp::Ordering;

use super::{compare_keys, eval, hold_all, internal, Acc, Cx, Operator};
use crate::error::Result;
use crate::plan::*;
use crate::sql_err;
use crate::types::{Row, Value};

pub(super) struct Window<'p> {
    pub(super) input: Box<dyn Operator + 'p>,
    pub(super) calls: &'p [WindowCall],
    pub(super) output: Option<std::vec::IntoIter<Row>>,
}

impl Operator for Window<'_> {
    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>> {
        if self.output.is_none() {
            let rows = hold_all(self.input.as_mut(), cx, "a window function")?;
            let mut order = Vec::new();
            let mut columns = Vec::with_capacity(self.calls.len());
            for (i, call) in self.calls.iter().enumerate() {
                let (sorted, values) = compute(call, &rows, cx)?;
                if i == 0 {
                    order = sorted;
                }
                columns.push(values);
            }
            let mut out = Vec::with_capacity(rows.len());
            let mut rows: Vec<Option<Row>> = rows.into_iter().map(Some).collect();
            for r in order {
                let mut row = rows[r].take().unwrap_or_default();
                for column in &mut columns {
                    row.push(std::mem::replace(&mut column[r], Value::Null));
                }
                out.push(row);
            }
            self.output = Some(out.into_iter());
        }
        Ok(self.output.as_mut().and_then(|o| o.next()))
    }
}

/// One call over all `rows`: the rows' positions in the call's order,
/// and its value for each row (by position in `rows`).
fn compute(call: &WindowCall, rows: &[Row], cx: &mut Cx) -> Result<(Vec<usize>, Vec<Value>)> {
    let mut partitions = Vec::with_capacity(rows.len());
    let mut keys = Vec::with_capacity(rows.len());
    for row in rows {
        cx.tick()?;
        partitions.push(call.partition_by.iter().map(|e| eval(e, row, cx)).collect::<Result<Vec<_>>>()?);
        keys.push(call.order_by.iter().map(|k| eval(&k.expr, row, cx)).collect::<Result<Vec<_>>>()?);
    }
    // Partitions in ascending order, NULLs last (PostgreSQL's), then
    // ORDER BY; stable, so peers keep their input order.
    let ascending: Vec<SortKey> =
        call.partition_by.iter().map(|e| SortKey { expr: e.clone(), descending: false, nulls_first: false }).collect();
    let same_partition =
        |a: usize, b: usize| compare_keys(&ascending, &partitions[a], &partitions[b]) == Ordering::Equal;
    let mut sorted: Vec<usize> = (0..rows.len()).collect();
    sorted.sort_by(|&a, &b| {
        compare_keys(&ascending, &partitions[a], &partitions[b])
            .then_with(|| compare_keys(&call.order_by, &keys[a], &keys[b]))
    });
    let frame = FrameOffsets::of(&call.frame, &call.order_by, cx)?;
    let mut values = vec![Value::Null; rows.len()];
    let mut start = 0;
    while start < sorted.len() {
        let end = start + sorted[start..].iter().take_while(|&&r| same_partition(r, sorted[start])).count();
        let partition = Partition::new(&sorted[start..end], rows, &keys, call);
        partition.compute(call, &frame, cx, &mut values)?;
        start = end;
    }
    Ok((sorted, values))
}

/// A frame's offsets, evaluated once per run of the operator.
struct FrameOffsets {
    units: FrameUnits,
    start: Offset,
    end: Offset,
    /// The first ORDER BY key's direction: descending, NULLs first
    /// (what a RANGE offset measures along).
    order: (bool, bool),
}

/// One bound: unbounded, the current row (or its peers), or a distance.
#[derive(Clone, Copy)]
enum Offset {
    UnboundedPreceding,
    Preceding(Distance),
    CurrentRow,
    Following(Distance),
    UnboundedFollowing,
}

/// A frame offset: a count of rows or groups, or (RANGE) a distance in
/// the ORDER BY column's values.
#[derive(Clone, Copy)]
enum Distance {
    Count(usize),
    Int(i128),
    Float(f64),
}

impl FrameOffsets {
    fn of(frame: &Frame, order_by: &[SortKey], cx: &mut Cx) -> Result<FrameOffsets> {
        let mut offset = |b: &FrameBound, which: &str| -> Result<Offset> {
            let distance = |e: &Expr, cx: &mut Cx| -> Result<Distance> {
                let v = eval(e, &[], cx)?;
                if v.is_null() {
                    return sql_err!(NullValueNotAllowed, "frame {which} offset must not be null");
                }
                let negative =
                    || sql_err!(InvalidPrecedingOrFollowingSize, "frame {which} offset must not be negative");
                match (frame.units, v) {
                    (FrameUnits::Range, Value::Float8(f)) if f < 0.0 || f.is_nan() => negative(),
                    (FrameUnits::Range, Value::Float8(f)) => Ok(Distance::Float(f)),
                    (_, v) => match v.as_i64() {
                        Some(n) if n < 0 => negative(),
                        Some(n) if frame.units == FrameUnits::Range => Ok(Distance::Int(i128::from(n))),
                        Some(n) => Ok(Distance::Count(usize::try_from(n).unwrap_or(usize::MAX))),
                        None => negative(),
                    },
                }
            };
            Ok(match b {
                FrameBound::UnboundedPreceding => Offset::UnboundedPreceding,
                FrameBound::Preceding(e) => Offset::Preceding(distance(e, cx)?),
                FrameBound::CurrentRow => Offset::CurrentRow,
                FrameBound::Following(e) => Offset::Following(distance(e, cx)?),
                FrameBound::UnboundedFollowing => Offset::UnboundedFollowing,
            })
        };
        let order = order_by.first().map_or((false, false), |k| (k.descending, k.nulls_first));
        Ok(FrameOffsets {
            units: frame.units,
            start: offset(&frame.start, "starting")?,
            end: offset(&frame.end, "ending")?,
            order,
        })
    }
}

/// One partition: its rows in the call's order, with their peer groups.
struct Partition<'r> {
    /// Positions in the operator's rows, in order.
    rows: &'r [usize],
    all: &'r [Row],
    /// The ORDER BY values of every row (by position in `all`).
    keys: &'r [Vec<Value>],
    /// For each row of the partition (by index in `rows`), its peer
    /// group's index.
    group_of: Vec<usize>,
    /// Each peer group's `[start, end)` in `rows`.
    groups: Vec<(usize, usize)>,
}

impl<'r> Partition<'r> {
    fn new(rows: &'r [usize], all: &'r [Row], keys: &'r [Vec<Value>], call: &WindowCall) -> Partition<'r> {
        let mut group_of = Vec::with_capacity(rows.len());
        let mut groups: Vec<(usize, usize)> = Vec::new();
        for (i, &r) in rows.iter().enumerate() {
            let peer = match groups.last() {
                Some(&(start, _)) => compare_keys(&call.order_by, &keys[rows[start]], &keys[r]) == Ordering::Equal,
                None => false,
            };
            match (peer, groups.last_mut()) {
                (true, Some(g)) => g.1 = i + 1,
                _ => groups.push((i, i + 1)),
            }
            group_of.push(groups.len() - 1);
        }
        Partition { rows, all, keys, group_of, groups }
    }

    fn len(&self) -> usize {
        self.rows.len()
    }

    fn row(&self, i: usize) -> &'r Row {
        &self.all[self.rows[i]]
    }

    /// Writes the call's value for each row of the partition into
    /// `values` (by position in the operator's rows).
    fn compute(&self, call: &WindowCall, frame: &FrameOffsets, cx: &mut Cx, values: &mut [Value]) -> Result<()> {
        let n = self.len();
        match &call.func {
            WindowFunc::RowNumber => self.each(values, |i| Value::Int8(i as i64 + 1)),
            WindowFunc::Rank => self.each(values, |i| Value::Int8(self.groups[self.group_of[i]].0 as i64 + 1)),
            WindowFunc::DenseRank => self.each(values, |i| Value::Int8(self.group_of[i] as i64 + 1)),
            WindowFunc::PercentRank => self.each(values, |i| match n {
                1 => Value::Float8(0.0),
                _ => Value::Float8(self.groups[self.group_of[i]].0 as f64 / (n - 1) as f64),
            }),
            WindowFunc::CumeDist => {
                self.each(values, |i| Value::Float8(self.groups[self.group_of[i]].1 as f64 / n as f64))
            }
            WindowFunc::Ntile => {
                // The bucket count, from the partition's first row.
                let buckets = match eval(arg(call, 0)?, self.row(0), cx)?.as_i64() {
                    None => {
                        self.each(values, |_| Value::Null);
                        return Ok(());
                    }
                    Some(b) if b <= 0 => {
                        return sql_err!(InvalidArgumentForNtileFunction, "argument of ntile must be greater than zero")
                    }
                    Some(b) => usize::try_from(b).unwrap_or(usize::MAX),
                };
                // The first `n % buckets` buckets hold one row more.
                let (size, larger) = (n / buckets, n % buckets);
                self.each(values, |i| {
                    let bucket = match i < larger * (size + 1) {
                        true => i / (size + 1),
                        false => larger + (i - larger * (size + 1)) / size.max(1),
                    };
                    Value::Int4(i32::try_from(bucket + 1).unwrap_or(i32::MAX))
                })
            }
            WindowFunc::Lag | WindowFunc::Lead => {
                let lag = matches!(call.func, WindowFunc::Lag);
                for i in 0..n {
                    cx.tick()?;
                    let row = self.row(i);
                    let Some(offset) = eval(arg(call, 1)?, row, cx)?.as_i64() else {
                        values[self.rows[i]] = Value::Null;
                        continue;
                    };
                    let target = if lag { i as i64 - offset } else { i as i64 + offset };
                    values[self.rows[i]] = match usize::try_from(target).ok().filter(|&t| t < n) {
                        Some(t) => eval(arg(call, 0)?, self.row(t), cx)?,
                        None => match call.args.get(2) {
                            Some(default) => eval(default, row, cx)?,
                            None => Value::Null,
                        },
                    };
                }
            }
            WindowFunc::FirstValue | WindowFunc::LastValue | WindowFunc::NthValue => {
                for i in 0..n {
                    cx.tick()?;
                    let (start, end) = self.frame(i, frame)?;
                    let at = match call.func {
                        WindowFunc::FirstValue => Some(start),
                        WindowFunc::LastValue => end.checked_sub(1),
                        _ => match eval(arg(call, 1)?, self.row(i), cx)?.as_i64() {
                            None => None,
                            Some(k) if k <= 0 => {
                                return sql_err!(
                                    InvalidArgumentForNthValueFunction,
                                    "argument of nth_value must be greater than zero"
                                )
                            }
                            Some(k) => usize::try_from(k - 1).ok().and_then(|k| start.checked_add(k)),
                        },
                    };
                    values[self.rows[i]] = match at.filter(|&at| at >= start && at < end) {
                        Some(at) => eval(arg(call, 0)?, self.row(at), cx)?,
                        None => Value::Null,
                    };
                }
            }
            WindowFunc::Aggregate(agg) => self.aggregate(agg, frame, cx, values)?,
        }
        Ok(())
    }

    /// Sets each row's value to `f(index in the partition)`.
    fn each(&self, values: &mut [Value], f: impl Fn(usize) -> Value) {
        for (i, &r) in self.rows.iter().enumerate() {
            values[r] = f(i);
        }
    }

    /// An aggregate over each row's frame.
    fn aggregate(&self, agg: &AggCall, frame: &FrameOffsets, cx: &mut Cx, values: &mut [Value]) -> Result<()> {
        // Each row's input to the aggregate: its argument, or None if
        // FILTER drops it.
        let mut inputs = Vec::with_capacity(self.len());
        for i in 0..self.len() {
            cx.tick()?;
            let row = self.row(i);
            let keep = match &agg.filter {
                None => true,
                Some(f) => eval(f, row, cx)?.as_bool()? == Some(true),
            };
            let value = match (&agg.arg, keep) {
                (_, false) => None,
                (None, true) => Some(Value::Null),
                (Some(arg), true) => Some(eval(arg, row, cx)?),
            };
            inputs.push(value);
        }
        // A running aggregate from the partition's first row (`added`
        // rows so far), and the last frame's value.
        let mut running = Acc::new(agg);
        let mut added = 0;
        let mut last: Option<((usize, usize), Value)> = None;
        for i in 0..self.len() {
            let (start, end) = self.frame(i, frame)?;
            if let Some((bounds, value)) = &last {
                if *bounds == (start, end) {
                    values[self.rows[i]] = value.clone();
                    continue;
                }
            }
            let value = if start == 0 && end >= added {
                for input in &inputs[added..end] {
                    cx.tick()?;
                    if let Some(v) = input {
                        running.add(agg, v.clone())?;
                    }
                }
                added = end;
                running.finish(agg)?
            } else {
                let mut acc = Acc::new(agg);
                for input in inputs.get(start..end).unwrap_or_default() {
                    cx.tick()?;
                    if let Some(v) = input {
                        acc.add(agg, v.clone())?;
                    }
                }
                acc.finish(agg)?
            };
            values[self.rows[i]] = value.clone();
            last = Some(((start, end), value));
        }
        Ok(())
    }

    /// Row `i`'s frame, `[start, end)` in the partition (empty when
    /// `start >= end`).
    fn frame(&self, i: usize, frame: &FrameOffsets) -> Result<(usize, usize)> {
        let n = self.len();
        let (group_start, group_end) = self.groups[self.group_of[i]];
        let rows = frame.units == FrameUnits::Rows;
        let start = match frame.start {
            Offset::UnboundedPreceding => 0,
            Offset::UnboundedFollowing => n,
            // ROWS' current row is the row; RANGE's and GROUPS' its peers.
            Offset::CurrentRow if rows => i,
            Offset::CurrentRow => group_start,
            Offset::Preceding(d) => self.offset_bound(i, d, frame, Side::Preceding, Edge::Start),
            Offset::Following(d) => self.offset_bound(i, d, frame, Side::Following, Edge::Start),
        };
        let end = match frame.end {
            Offset::UnboundedPreceding => 0,
            Offset::UnboundedFollowing => n,
            Offset::CurrentRow if rows => i + 1,
            Offset::CurrentRow => group_end,
            Offset::Preceding(d) => self.offset_bound(i, d, frame, Side::Preceding, Edge::End),
            Offset::Following(d) => self.offset_bound(i, d, frame, Side::Following, Edge::End),
        };
        Ok((start.min(n), end.min(n)))
    }

    /// Where an offset puts the frame's `edge` for row `i`.
    fn offset_bound(&self, i: usize, d: Distance, frame: &FrameOffsets, side: Side, edge: Edge) -> usize {
        let n = self.len();
        let g = self.group_of[i];
        match (d, side, edge) {
            // ROWS: rows before or after the current one.
            (Distance::Count(k), Side::Preceding, Edge::Start) if frame.units == FrameUnits::Rows => {
                i.saturating_sub(k)
            }
            (Distance::Count(k), Side::Following, Edge::Start) if frame.units == FrameUnits::Rows => {
                i.saturating_add(k)
            }
            (Distance::Count(k), Side::Preceding, Edge::End) if frame.units == FrameUnits::Rows => {
                (i + 1).saturating_sub(k)
            }
            (Distance::Count(k), Side::Following, Edge::End) if frame.units == FrameUnits::Rows => {
                (i + 1).saturating_add(k)
            }
            // GROUPS: peer groups before or after the current row's.
            (Distance::Count(k), Side::Preceding, Edge::Start) => self.groups[g.saturating_sub(k)].0,
            (Distance::Count(k), Side::Following, Edge::Start) => {
                g.checked_add(k).and_then(|h| self.groups.get(h)).map_or(n, |h| h.0)
            }
            (Distance::Count(k), Side::Preceding, Edge::End) => g.checked_sub(k).map_or(0, |h| self.groups[h].1),
            (Distance::Count(k), Side::Following, Edge::End) => {
                self.groups[g.saturating_add(k).min(self.groups.len() - 1)].1
            }
            // RANGE: rows whose ORDER BY value is within the distance.
            (d, side, edge) => self.range_bound(i, d, frame, side, edge),
        }
    }

    /// A RANGE offset's edge: the first row past the bound value
    /// (`Start`: not before it; `End`: after it). A NULL current value's
    /// frame is its peers (the NULLs), and NULLs are never within a
    /// distance of a value.
    fn range_bound(&self, i: usize, d: Distance, frame: &FrameOffsets, side: Side, edge: Edge) -> usize {
        let (descending, nulls_first) = frame.order;
        let peers = || {
            let (start, end) = self.groups[self.group_of[i]];
            if edge == Edge::Start {
                start
            } else {
                end
            }
        };
        // (The planner gives a RANGE offset exactly one ORDER BY key.)
        let Some(current) = self.keys[self.rows[i]].first() else { return peers() };
        if current.is_null() {
            return peers();
        }
        // Towards the partition's start is down for an ascending order.
        let down = (side == Side::Preceding) != descending;
        let past = |x: &Value| -> bool {
            if x.is_null() {
                return nulls_first;
            }
            let ord = match d {
                Distance::Int(k) => {
                    let (x, v) = (i128::from(x.as_i64().unwrap_or(0)), i128::from(current.as_i64().unwrap_or(0)));
                    x.cmp(&if down { v - k } else { v + k })
                }
                Distance::Float(k) => {
                    let (x, v) = (x.as_f64().unwrap_or(0.0), current.as_f64().unwrap_or(0.0));
                    x.partial_cmp(&if down { v - k } else { v + k }).unwrap_or(Ordering::Greater)
                }
                // Counts are for ROWS and GROUPS, never here.
                Distance::Count(_) => Ordering::Equal,
            };
            // In sort order: before the bound, or (End) at it.
            let ord = if descending { ord.reverse() } else { ord };
            match edge {
                Edge::Start => ord == Ordering::Less,
                Edge::End => ord != Ordering::Greater,
            }
        };
        self.rows.partition_point(|&r| self.keys[r].first().is_some_and(&past))
    }
}

/// The call's `i`th argument (the planner gives each function its own).
fn arg(call: &WindowCall, i: usize) -> Result<&Expr> {
    call.args.get(i).ok_or_else(|| internal(format!("{} has no argument {}", call.func.name(), i + 1)))
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Preceding,
    Following,
}

#[derive(Clone, Copy, PartialEq)]
enum Edge {
    Start,
    End,
}
