//! The history: every operation a test's clients attempted, as events.
//!
//! A client operation is two events with the same `process` and `f`: an
//! `invoke` when the client sends it, and a completion when the client
//! learns its fate. There are three fates:
//!
//! ```text
//!   invoke ──► ok     it took effect, once, between invoke and ok
//!          ──► fail   it did NOT take effect, ever
//!          ──► info   unknown: it may take effect at any time after the
//!                     invoke, or never (a timeout, an ambiguous commit)
//!          ──► (end)  the history ended first: treated as info
//! ```
//!
//! A [`Pair`] is one operation: its invoke [`Op`] and its completion, if
//! any. [`History::pairs`] yields them in invocation order.
//!
//! # Processes
//!
//! A process is a logical client that runs one operation at a time. After an
//! `info` the client cannot know whether its operation is still in flight,
//! so the worker continues under a new process id (Jepsen's convention); a
//! process that completed with `info` never invokes again.
//!
//! The nemesis (the fault injector) is not a client. Jepsen writes its
//! process as the string `"nemesis"`; SpanDB histories write `-1`, so that
//! the `process` column is always an integer. Both are read as
//! [`Process::Nemesis`]; `-1` is written. Nemesis events are single `info`
//! events (`"f": "start-partition"`, then later `"f": "stop-partition"`)
//! that are not paired and that checkers ignore; the HTML report shades the
//! window between a `start-X` and the next `stop-X`.
//!
//! # Invariants (checked by [`History::new`], so every `History` has them)
//!
//! - `index` is the op's position: 0, 1, 2, ... with no gaps.
//! - `time` (nanoseconds since the test started) never decreases.
//! - A client process has at most one outstanding invocation; a completion
//!   matches an outstanding invocation of the same process and `f`; a
//!   process that completed with `info` does not invoke again.
//! - A nemesis event has type `info`.
//!
//! Real-time order is defined by `time` alone: A precedes B when A's
//! completion time is strictly less than B's invocation time. Equal times
//! count as concurrent (the permissive reading).

use std::fmt;
use std::io::{BufRead, Read, Write};

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::error::Error;
use crate::limits::HISTORY_LINE_BYTES_MAX;

/// Who issued an op: a logical client, or the nemesis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Process {
    /// A client process id (`"process": 3`).
    Client(u64),
    /// The fault injector (`"process": -1`, or Jepsen's `"nemesis"`).
    Nemesis,
}

impl Process {
    /// The JSON number that stands for the nemesis.
    pub const NEMESIS_ID: i64 = -1;
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Client(id) => write!(f, "{id}"),
            Process::Nemesis => write!(f, "nemesis"),
        }
    }
}

impl Serialize for Process {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Process::Client(id) => serializer.serialize_u64(*id),
            Process::Nemesis => serializer.serialize_i64(Process::NEMESIS_ID),
        }
    }
}

impl<'de> Deserialize<'de> for Process {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ProcessVisitor;
        impl Visitor<'_> for ProcessVisitor {
            type Value = Process;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a non-negative integer, or -1 or \"nemesis\" for the nemesis")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Process, E> {
                Ok(Process::Client(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Process, E> {
                match v {
                    Process::NEMESIS_ID => Ok(Process::Nemesis),
                    v if v >= 0 => Ok(Process::Client(v as u64)),
                    _ => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Process, E> {
                match v {
                    "nemesis" => Ok(Process::Nemesis),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        deserializer.deserialize_any(ProcessVisitor)
    }
}

/// An event's type: an invocation or one of the three completions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    Invoke,
    /// Took effect.
    Ok,
    /// Definitely did not take effect.
    Fail,
    /// May or may not take effect, at any time after the invocation.
    Info,
}

impl OpType {
    pub fn as_str(self) -> &'static str {
        match self {
            OpType::Invoke => "invoke",
            OpType::Ok => "ok",
            OpType::Fail => "fail",
            OpType::Info => "info",
        }
    }
}

impl fmt::Display for OpType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event of a history: one JSON line.
///
/// ```text
/// {"index":0,"time":1000,"process":3,"type":"invoke","f":"write","value":[7,1]}
/// {"index":1,"time":2500,"process":3,"type":"ok","f":"write","value":[7,1],"commit_ts":1764000000000000000}
/// ```
///
/// A read may also carry the timestamps the database reported:
///
/// ```text
/// {"index":7,"time":3100,"process":1,"type":"ok","f":"read-only","value":[7,1],"read_ts":1764000000000003000,"version_ts":1764000000000002000}
/// ```
///
/// Unknown fields are ignored when reading (so a harness may add its own);
/// a missing `value` reads as `null`; `commit_ts`, `read_ts`,
/// `version_ts` and `error` are written only when set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Position in the history, from 0, dense.
    pub index: u64,
    /// Nanoseconds since the test started, from a monotonic clock.
    #[serde(rename = "time")]
    pub time_ns: u64,
    pub process: Process,
    #[serde(rename = "type")]
    pub op_type: OpType,
    /// The operation's name: `read`, `write`, `txn`, `start-partition`...
    pub f: String,
    /// Workload-specific: the argument on an invoke, the result on an ok.
    #[serde(default)]
    pub value: Value,
    /// The database's commit timestamp (nanoseconds), when the client
    /// learned it (usually on `ok` completions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_ts: Option<u64>,
    /// The timestamp (nanoseconds) a read was served at, when the database
    /// said (on `ok` completions of reads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_ts: Option<u64>,
    /// The commit timestamp (nanoseconds) of the version a single-key read
    /// returned; absent when the key had no version at `read_ts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_ts: Option<u64>,
    /// Why the op failed or is indeterminate (on `fail` and `info`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Op {
    /// An op with no timestamps and no `error`.
    pub fn new(index: u64, time_ns: u64, process: Process, op_type: OpType, f: impl Into<String>, value: Value) -> Op {
        Op {
            index,
            time_ns,
            process,
            op_type,
            f: f.into(),
            value,
            commit_ts: None,
            read_ts: None,
            version_ts: None,
            error: None,
        }
    }
}

/// One operation: an invocation and its completion (`None` when the history
/// ended before it completed, which means the same as `info`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pair<'a> {
    pub invoke: &'a Op,
    pub completion: Option<&'a Op>,
}

impl<'a> Pair<'a> {
    /// `Ok`, `Fail` or `Info` (an op without completion is `Info`).
    pub fn outcome(&self) -> OpType {
        self.completion.map_or(OpType::Info, |c| c.op_type)
    }

    pub fn f(&self) -> &'a str {
        &self.invoke.f
    }

    pub fn process(&self) -> Process {
        self.invoke.process
    }

    pub fn invoke_ns(&self) -> u64 {
        self.invoke.time_ns
    }

    /// When the op is known to have taken effect or not: the completion
    /// time of an `ok` or `fail`; `None` ("infinity") for an `info` or an
    /// op that never completed, which may take effect at any later time.
    pub fn return_ns(&self) -> Option<u64> {
        match self.completion {
            Some(c) if c.op_type != OpType::Info => Some(c.time_ns),
            _ => None,
        }
    }

    /// The time the client got an answer (including an `info` timeout), for
    /// latency; `None` when the history ended first.
    pub fn completion_ns(&self) -> Option<u64> {
        self.completion.map(|c| c.time_ns)
    }

    /// The value that says what happened: the completion's on `ok` (it
    /// carries read results), the invocation's otherwise.
    pub fn value(&self) -> &'a Value {
        match self.completion {
            Some(c) if c.op_type == OpType::Ok => &c.value,
            _ => &self.invoke.value,
        }
    }

    /// The `commit_ts` of an `ok` completion.
    pub fn commit_ts(&self) -> Option<u64> {
        self.completion.filter(|c| c.op_type == OpType::Ok).and_then(|c| c.commit_ts)
    }

    /// The `read_ts` of an `ok` completion.
    pub fn read_ts(&self) -> Option<u64> {
        self.completion.filter(|c| c.op_type == OpType::Ok).and_then(|c| c.read_ts)
    }

    /// The `version_ts` of an `ok` completion.
    pub fn version_ts(&self) -> Option<u64> {
        self.completion.filter(|c| c.op_type == OpType::Ok).and_then(|c| c.version_ts)
    }

    /// The index anomalies name this op by: the completion's when there is
    /// one (it holds the observed value), else the invocation's.
    pub fn index(&self) -> u64 {
        self.completion.map_or(self.invoke.index, |c| c.index)
    }

    /// `op 12 (p3 write [1,5] ok)`, for anomaly messages.
    pub fn describe(&self) -> String {
        let mut s = format!("op {} (p{} {} {}", self.index(), self.process(), self.f(), self.invoke.value);
        match self.completion {
            Some(c) if c.op_type == OpType::Ok && c.value != self.invoke.value => {
                s.push_str(&format!(" -> {} ok", c.value));
            }
            Some(c) => s.push_str(&format!(" {}", c.op_type)),
            None => s.push_str(" pending"),
        }
        s.push(')');
        s
    }
}

/// A validated history: ops in index order, client invocations matched
/// with their completions. See the module docs for the invariants.
#[derive(Clone, Debug, PartialEq)]
pub struct History {
    ops: Vec<Op>,
    /// Op positions of client invocations, in order.
    invokes: Vec<usize>,
    /// For each op: the position of its completion (on an invocation) or
    /// of its invocation (on a completion); `None` otherwise.
    partner: Vec<Option<usize>>,
}

impl History {
    /// Validates `ops` and matches invocations with completions.
    pub fn new(ops: Vec<Op>) -> Result<History, Error> {
        Self::build(ops).map_err(|(position, reason)| Error::Invalid { index: position as u64, line: None, reason })
    }

    fn build(ops: Vec<Op>) -> Result<History, (usize, String)> {
        use std::collections::HashMap;
        let mut invokes = Vec::new();
        let mut partner = vec![None; ops.len()];
        // Per client process: the outstanding invocation.
        let mut outstanding: HashMap<u64, usize> = HashMap::new();
        // Client processes that completed with info: position of the info.
        let mut retired: HashMap<u64, usize> = HashMap::new();
        let mut time_prev = 0;
        for (position, op) in ops.iter().enumerate() {
            let err = |reason: String| Err((position, reason));
            if op.index != position as u64 {
                return err(format!(
                    "index {} at position {position}: indexes must be 0, 1, 2, ... with no gaps",
                    op.index
                ));
            }
            if op.time_ns < time_prev {
                return err(format!(
                    "time {} is before the previous op's time {time_prev}: time must not decrease",
                    op.time_ns
                ));
            }
            time_prev = op.time_ns;
            let process = match op.process {
                Process::Nemesis => {
                    if op.op_type != OpType::Info {
                        return err(format!("a nemesis event must have type info, not {}", op.op_type));
                    }
                    continue;
                }
                Process::Client(p) => p,
            };
            match op.op_type {
                OpType::Invoke => {
                    if let Some(&other) = outstanding.get(&process) {
                        return err(format!("process {process} invokes while its op {other} is outstanding"));
                    }
                    if let Some(&info) = retired.get(&process) {
                        return err(format!(
                            "process {process} invokes after its op {info} completed with info; \
                             a worker must take a new process id after an info"
                        ));
                    }
                    outstanding.insert(process, position);
                    invokes.push(position);
                }
                completion => {
                    let Some(invoke) = outstanding.remove(&process) else {
                        return err(format!(
                            "{completion} completion of process {process} without an outstanding invocation"
                        ));
                    };
                    if ops[invoke].f != op.f {
                        return err(format!(
                            "completion f {:?} differs from its invocation's f {:?} (op {invoke})",
                            op.f, ops[invoke].f
                        ));
                    }
                    if completion == OpType::Info {
                        retired.insert(process, position);
                    }
                    partner[invoke] = Some(position);
                    partner[position] = Some(invoke);
                }
            }
        }
        Ok(History { ops, invokes, partner })
    }

    /// Reads a history written as JSON lines, one op per line. Blank lines
    /// are skipped. Errors name the 1-based line and the reason; bad input
    /// never panics.
    pub fn read_jsonl(reader: impl BufRead) -> Result<History, Error> {
        let mut reader = reader;
        let mut ops = Vec::new();
        let mut lines = Vec::new();
        let mut buf = Vec::new();
        let mut line = 0;
        loop {
            line += 1;
            buf.clear();
            let limit = HISTORY_LINE_BYTES_MAX as u64 + 1;
            let n =
                (&mut reader).take(limit).read_until(b'\n', &mut buf).map_err(|source| Error::Io { line, source })?;
            if n == 0 {
                break;
            }
            if buf.last() == Some(&b'\n') {
                buf.pop();
            } else if buf.len() > HISTORY_LINE_BYTES_MAX {
                return Err(Error::Corrupt {
                    line,
                    reason: format!("line longer than {HISTORY_LINE_BYTES_MAX} bytes"),
                });
            }
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            let text = std::str::from_utf8(&buf)
                .map_err(|e| Error::Corrupt { line, reason: format!("invalid UTF-8: {e}") })?;
            if text.trim().is_empty() {
                continue;
            }
            let op: Op = serde_json::from_str(text).map_err(|e| Error::Corrupt { line, reason: e.to_string() })?;
            ops.push(op);
            lines.push(line);
        }
        Self::build(ops).map_err(|(position, reason)| Error::Invalid {
            index: position as u64,
            line: Some(lines[position]),
            reason,
        })
    }

    /// Writes the history as JSON lines, one op per line.
    pub fn write_jsonl(&self, writer: impl Write) -> Result<(), Error> {
        let mut writer = writer;
        for (position, op) in self.ops.iter().enumerate() {
            let line = position + 1;
            let io = |source| Error::Io { line, source };
            serde_json::to_writer(&mut writer, op).map_err(|e| io(e.into()))?;
            writer.write_all(b"\n").map_err(io)?;
        }
        writer.flush().map_err(|source| Error::Io { line: self.ops.len(), source })
    }

    /// All ops (events), in index order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Every client operation, in invocation order.
    pub fn pairs(&self) -> impl ExactSizeIterator<Item = Pair<'_>> + '_ {
        self.invokes.iter().map(move |&position| Pair {
            invoke: &self.ops[position],
            completion: self.partner[position].map(|c| &self.ops[c]),
        })
    }

    /// The operation an op index belongs to (its invocation or completion);
    /// `None` for nemesis events and indexes out of range.
    pub fn pair_of(&self, index: u64) -> Option<Pair<'_>> {
        let position = usize::try_from(index).ok()?;
        let op = self.ops.get(position)?;
        match (op.process, op.op_type) {
            (Process::Nemesis, _) => None,
            (_, OpType::Invoke) => Some(Pair { invoke: op, completion: self.partner[position].map(|c| &self.ops[c]) }),
            _ => Some(Pair { invoke: &self.ops[self.partner[position]?], completion: Some(op) }),
        }
    }

    /// The nemesis events, in order.
    pub fn nemesis_events(&self) -> impl Iterator<Item = &Op> + '_ {
        self.ops.iter().filter(|op| op.process == Process::Nemesis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(text: &str) -> Result<History, Error> {
        History::read_jsonl(text.as_bytes())
    }

    const GOOD: &str = r#"{"index":0,"time":10,"process":0,"type":"invoke","f":"write","value":[1,5]}
{"index":1,"time":11,"process":1,"type":"invoke","f":"read","value":[1,null]}
{"index":2,"time":12,"process":-1,"type":"info","f":"start-partition","value":"majority"}
{"index":3,"time":20,"process":0,"type":"ok","f":"write","value":[1,5],"commit_ts":1764000000000000000}
{"index":4,"time":25,"process":1,"type":"info","f":"read","value":[1,null],"error":"timeout"}
{"index":5,"time":26,"process":"nemesis","type":"info","f":"stop-partition"}
{"index":6,"time":30,"process":0,"type":"invoke","f":"cas","value":[1,[5,6]]}
{"index":7,"time":31,"process":2,"type":"invoke","f":"read-only","value":[1,null]}
{"index":8,"time":32,"process":2,"type":"ok","f":"read-only","value":[1,5],"read_ts":1764000000000000009,"version_ts":1764000000000000000}
"#;

    /// Goal: a well-formed history reads, pairs and writes back unchanged.
    /// Method: read a history with every event type, a nemesis written both
    /// ways, an op pending at the end; check pairs; write and read again.
    #[test]
    fn read_pair_and_round_trip() {
        let h = read(GOOD).unwrap();
        assert_eq!(h.len(), 9);
        let pairs: Vec<_> = h.pairs().collect();
        assert_eq!(pairs.len(), 4);
        assert_eq!(pairs[0].outcome(), OpType::Ok);
        assert_eq!(pairs[0].commit_ts(), Some(1764000000000000000));
        assert_eq!(pairs[0].return_ns(), Some(20));
        assert_eq!(pairs[0].index(), 3);
        assert_eq!(pairs[1].outcome(), OpType::Info);
        assert_eq!(pairs[1].return_ns(), None, "info returns at infinity");
        assert_eq!(pairs[1].completion_ns(), Some(25));
        assert_eq!(pairs[1].completion.unwrap().error.as_deref(), Some("timeout"));
        assert_eq!(pairs[2].completion, None, "pending at the end");
        assert_eq!(pairs[2].outcome(), OpType::Info);
        assert_eq!(pairs[3].read_ts(), Some(1764000000000000009));
        assert_eq!(pairs[3].version_ts(), Some(1764000000000000000));
        assert_eq!((pairs[0].read_ts(), pairs[0].version_ts()), (None, None));
        assert_eq!(h.nemesis_events().count(), 2);
        assert!(h.ops()[5].value.is_null(), "missing value reads as null");
        assert_eq!(h.pair_of(3).unwrap().invoke.index, 0);
        assert_eq!(h.pair_of(0).unwrap().index(), 3);
        assert_eq!(h.pair_of(2), None);
        assert_eq!(h.pair_of(99), None);

        let mut out = Vec::new();
        h.write_jsonl(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(r#""process":-1"#), "the nemesis is written as -1");
        assert!(!text.contains("nemesis\""));
        assert_eq!(read(&text).unwrap(), h);
    }

    /// Goal: `describe` names an op the way anomaly messages do.
    /// Method: describe an ok read, a failed write and a pending op.
    #[test]
    fn describe_ops() {
        let h = read(GOOD).unwrap();
        let pairs: Vec<_> = h.pairs().collect();
        assert_eq!(pairs[0].describe(), "op 3 (p0 write [1,5] ok)");
        assert_eq!(pairs[1].describe(), "op 4 (p1 read [1,null] info)");
        assert_eq!(pairs[2].describe(), "op 6 (p0 cas [1,[5,6]] pending)");
    }

    /// Goal: every kind of corrupt line is reported with its line number
    /// and a reason, never a panic. Method: one bad input per rule.
    #[test]
    fn corrupt_lines_are_reported_with_line_numbers() {
        let cases: &[(&str, usize, &str)] = &[
            ("{not json\n", 1, "key must be a string"),
            ("\n{\"index\":0,\"time\":1,\"process\":0,\"type\":\"invoke\"}\n", 2, "missing field `f`"),
            (r#"{"index":0,"time":1,"process":-2,"type":"invoke","f":"r"}"#, 1, "invalid value: integer `-2`"),
            (r#"{"index":0,"time":1,"process":"x","type":"invoke","f":"r"}"#, 1, "invalid value: string \"x\""),
            (r#"{"index":0,"time":1,"process":0,"type":"done","f":"r"}"#, 1, "unknown variant `done`"),
            (r#"{"index":-1,"time":1,"process":0,"type":"invoke","f":"r"}"#, 1, "invalid value"),
        ];
        for (text, line, reason) in cases {
            match read(text) {
                Err(Error::Corrupt { line: l, reason: r }) => {
                    assert_eq!(l, *line, "{text}");
                    assert!(r.contains(reason), "{text}: {r}");
                }
                other => panic!("{text}: expected Corrupt, got {other:?}"),
            }
        }
        let bad_utf8: &[u8] = b"\xff\xfe\n";
        assert!(matches!(History::read_jsonl(bad_utf8), Err(Error::Corrupt { line: 1, .. })));
        let long = "x".repeat(HISTORY_LINE_BYTES_MAX + 10);
        match read(&long) {
            Err(Error::Corrupt { line: 1, reason }) => assert!(reason.contains("longer")),
            other => panic!("{other:?}"),
        }
    }

    /// Goal: every history rule is enforced, with the line of the bad op.
    /// Method: one history per rule, each one event away from valid.
    #[test]
    fn rule_violations_are_reported() {
        let inv = |i: u64, t: u64, p: i64, f: &str| {
            format!(r#"{{"index":{i},"time":{t},"process":{p},"type":"invoke","f":"{f}"}}"#)
        };
        let done = |i: u64, t: u64, p: i64, ty: &str, f: &str| {
            format!(r#"{{"index":{i},"time":{t},"process":{p},"type":"{ty}","f":"{f}"}}"#)
        };
        let cases: Vec<(Vec<String>, u64, &str)> = vec![
            (vec![inv(1, 1, 0, "r")], 0, "no gaps"),
            (vec![inv(0, 5, 0, "r"), inv(1, 4, 1, "r")], 1, "must not decrease"),
            (vec![inv(0, 1, 0, "r"), inv(1, 2, 0, "r")], 1, "outstanding"),
            (vec![done(0, 1, 0, "ok", "r")], 0, "without an outstanding"),
            (vec![inv(0, 1, 0, "r"), done(1, 2, 0, "ok", "w")], 1, "differs"),
            (vec![inv(0, 1, 0, "r"), done(1, 2, 0, "info", "r"), inv(2, 3, 0, "r")], 2, "new process id"),
            (vec![inv(0, 1, -1, "start-partition")], 0, "nemesis"),
        ];
        for (lines, index, reason) in cases {
            let text = lines.join("\n\n");
            match read(&text) {
                Err(Error::Invalid { index: i, line, reason: r }) => {
                    assert_eq!(i, index, "{text}");
                    assert_eq!(line, Some(index as usize * 2 + 1), "blank lines count");
                    assert!(r.contains(reason), "{text}: {r}");
                    let shown = Error::Invalid { index: i, line, reason: r }.to_string();
                    assert!(shown.starts_with("line "), "{shown}");
                }
                other => panic!("{text}: expected Invalid, got {other:?}"),
            }
        }
        // The same rule through `History::new`: no line.
        let ops = vec![Op::new(0, 1, Process::Client(0), OpType::Ok, "r", json!(null))];
        match History::new(ops) {
            Err(e @ Error::Invalid { line: None, .. }) => {
                assert!(!e.is_retryable());
                assert!(e.to_string().starts_with("op 0: "));
            }
            other => panic!("{other:?}"),
        }
    }

    proptest::proptest! {
        /// Goal: no input makes the reader panic. Method: arbitrary bytes,
        /// and arbitrary edits of a good history's text.
        #[test]
        fn reader_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let _ = History::read_jsonl(bytes.as_slice());
        }

        #[test]
        fn reader_never_panics_on_edited_history(at in 0..GOOD.len(), junk in "[\\[\\]{}\",:0-9a-z\\- \n]{0,6}") {
            let mut text = GOOD.as_bytes().to_vec();
            text.splice(at..at, junk.bytes());
            let _ = History::read_jsonl(text.as_slice());
        }
    }
}
