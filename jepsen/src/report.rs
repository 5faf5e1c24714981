//! What a person reads after a run: a JSON summary and one HTML page.
//!
//! [`summary`] is for machines and CI logs:
//!
//! ```text
//! {
//!   "result": "invalid",                      overall: see `overall`
//!   "events": 40012, "nemesis_events": 12,
//!   "by_f": {"write": {"ok": 9000, "fail": 12, "info": 30, "pending": 1,
//!                      "latency_ms": {"count": 9042, "p50": 1.2, "p90": 3.4,
//!                                     "p99": 9.8, "max": 1001.0}}, ...},
//!   "checkers": [{"checker": "linearizable", "result": "valid", ...}, ...]
//! }
//! ```
//!
//! Latency is from invocation to completion, over every op that completed
//! (`ok`, `fail` and `info` timeouts alike), nearest-rank percentiles in
//! milliseconds.
//!
//! [`html`] is one self-contained file (inline CSS and SVG, no scripts, no
//! external assets): the overall result and every checker's line at the
//! top, then each anomaly (kind, message, ops), a table of the offending
//! ops with their values, the per-`f` counts, and a timeline:
//!
//! ```text
//!            |   nemesis window (start-partition .. stop-partition)  |
//!   p0  [==ok==]  [=ok=]   [====fail====]  [=ok=]
//!   p1     [====ok====] [#offending#]  [ok]
//!   p11          [======info=======>
//!       0 ms            250 ms              500 ms
//! ```
//!
//! One row per client process, one bar per op from invocation to
//! completion (to the end for ops that never completed), coloured by
//! outcome; offending ops outlined; nemesis windows shaded across all rows.
//! Every bar has a tooltip (an SVG `<title>`). At most
//! `limits::HTML_OPS_DRAWN_MAX` ops are drawn: all the offending ones, then
//! the rest in history order, and the page says when it stopped.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::history::{History, OpType, Pair, Process};
use crate::limits::{HTML_OPS_DRAWN_MAX, HTML_OPS_LISTED_MAX, HTML_VALUE_CHARS_MAX};
use crate::verdict::{Validity, Verdict};

/// The result of a run: invalid if any checker says so; else unknown if
/// any checker is unknown (or none ran); else valid.
pub fn overall(verdicts: &[(String, Verdict)]) -> Validity {
    if verdicts.iter().any(|(_, v)| v.is_invalid()) {
        return Validity::Invalid;
    }
    let unknown: Vec<String> = verdicts
        .iter()
        .filter_map(|(name, v)| match &v.result {
            Validity::Unknown { reason } => Some(format!("{name}: {reason}")),
            _ => None,
        })
        .collect();
    if !unknown.is_empty() {
        return Validity::Unknown { reason: unknown.join("; ") };
    }
    if verdicts.is_empty() {
        return Validity::Unknown { reason: "no checker ran".into() };
    }
    Validity::Valid
}

/// Counts, latencies and verdicts as JSON (see the module docs).
pub fn summary(history: &History, verdicts: &[(String, Verdict)]) -> Value {
    let mut by_f = serde_json::Map::new();
    for (f, stats) in stats_by_f(history) {
        by_f.insert(
            f,
            json!({
                "ok": stats.ok,
                "fail": stats.fail,
                "info": stats.info,
                "pending": stats.pending,
                "latency_ms": latency_json(&stats.latencies_ns),
            }),
        );
    }
    let checkers: Vec<Value> = verdicts
        .iter()
        .map(|(name, verdict)| {
            let mut v = serde_json::to_value(verdict).expect("a verdict serializes");
            v["checker"] = json!(name);
            v
        })
        .collect();
    let mut out = json!({
        "events": history.len(),
        "nemesis_events": history.nemesis_events().count(),
        "by_f": by_f,
        "checkers": checkers,
    });
    let overall = serde_json::to_value(overall(verdicts)).expect("a validity serializes");
    if let (Some(out), Some(overall)) = (out.as_object_mut(), overall.as_object()) {
        for (k, v) in overall {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

#[derive(Default)]
struct FStats {
    ok: u64,
    fail: u64,
    /// Includes pending.
    info: u64,
    pending: u64,
    latencies_ns: Vec<u64>,
}

fn stats_by_f(history: &History) -> BTreeMap<String, FStats> {
    let mut by_f: BTreeMap<String, FStats> = BTreeMap::new();
    for pair in history.pairs() {
        let s = by_f.entry(pair.f().to_string()).or_default();
        match pair.outcome() {
            OpType::Ok => s.ok += 1,
            OpType::Fail => s.fail += 1,
            _ => s.info += 1,
        }
        match pair.completion_ns() {
            Some(done) => s.latencies_ns.push(done - pair.invoke_ns()),
            None => s.pending += 1,
        }
    }
    by_f
}

/// `{"count", "p50", "p90", "p99", "max"}` in milliseconds (nearest rank).
fn latency_json(latencies_ns: &[u64]) -> Value {
    if latencies_ns.is_empty() {
        return json!({"count": 0});
    }
    let mut sorted = latencies_ns.to_vec();
    sorted.sort_unstable();
    let ms = |ns: u64| ns as f64 / 1e6;
    let rank = |p: f64| {
        let i = (p / 100.0 * sorted.len() as f64).ceil() as usize;
        ms(sorted[i.clamp(1, sorted.len()) - 1])
    };
    json!({
        "count": sorted.len(),
        "p50": rank(50.0),
        "p90": rank(90.0),
        "p99": rank(99.0),
        "max": ms(*sorted.last().expect("not empty")),
    })
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A value's JSON text, elided past `HTML_VALUE_CHARS_MAX` characters.
fn short(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() <= HTML_VALUE_CHARS_MAX {
        return text;
    }
    let cut: String = text.chars().take(HTML_VALUE_CHARS_MAX).collect();
    format!("{cut}…")
}

fn ms(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e6)
}

/// A time since the start with a unit that suits it: `850 ns`, `12.5 µs`,
/// `340.0 ms`, `12.34 s`.
fn human(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.1} µs", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

fn validity_class(v: &Validity) -> &'static str {
    match v {
        Validity::Valid => "valid",
        Validity::Invalid => "invalid",
        Validity::Unknown { .. } => "unknown",
    }
}

fn validity_line(v: &Validity) -> String {
    match v {
        Validity::Unknown { reason } => format!("unknown: {reason}"),
        other => validity_class(other).to_string(),
    }
}

const STYLE: &str = "
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { margin: 0 0 .5em; } h1.valid { color: #2e7d32; } h1.invalid { color: #c62828; } h1.unknown { color: #ef6c00; }
table { border-collapse: collapse; margin: .5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
code, td.v { font-family: ui-monospace, monospace; font-size: 12px; word-break: break-all; }
.anomaly { border-left: 4px solid #c62828; padding: 2px 10px; margin: 6px 0; background: #fff5f5; }
.anomaly .kind { font-weight: bold; color: #c62828; }
.valid { color: #2e7d32; } .invalid { color: #c62828; } .unknown { color: #ef6c00; }
.note { color: #666; }
.timeline { overflow-x: auto; border: 1px solid #ddd; }
svg text { font: 10px ui-monospace, monospace; fill: #444; }
rect.ok { fill: #81c784; } rect.fail { fill: #e57373; } rect.info { fill: #ffb74d; }
rect.pending { fill: #ffe0b2; }
rect.bad { stroke: #6a1b9a; stroke-width: 2.5; }
rect.nemesis { fill: #90a4ae; fill-opacity: .25; }
line.nemesis { stroke: #607d8b; stroke-dasharray: 3 2; }
line.tick { stroke: #eee; }
.legend span { display: inline-block; padding: 0 6px; margin-right: 6px; border-radius: 2px; }
";

/// The whole report as one HTML page (see the module docs).
pub fn html(history: &History, verdicts: &[(String, Verdict)]) -> String {
    let overall = overall(verdicts);
    // Offending op index -> the invocation's position, and the kinds.
    let mut bad: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    for (_, v) in verdicts {
        for a in &v.anomalies {
            for &index in &a.ops {
                if let Some(pair) = history.pair_of(index) {
                    bad.entry(pair.invoke.index).or_default().insert(a.kind.clone());
                }
            }
        }
    }

    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>SpanDB jepsen: {}</title><style>{STYLE}</style></head><body>\n",
        escape(validity_class(&overall))
    );
    let _ = writeln!(out, "<h1 class=\"{}\">{}</h1>", validity_class(&overall), escape(&validity_line(&overall)));

    // Checkers.
    out.push_str("<table><tr><th>checker</th><th>verdict</th><th>stats</th></tr>\n");
    for (name, v) in verdicts {
        let stats: Vec<String> = v.stats.iter().map(|(k, n)| format!("{k}={n}")).collect();
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"{}\">{}</td><td><code>{}</code></td></tr>",
            escape(name),
            validity_class(&v.result),
            escape(&v.to_string()),
            escape(&stats.join(" "))
        );
    }
    out.push_str("</table>\n");

    // Anomalies.
    let anomalies: usize = verdicts.iter().map(|(_, v)| v.anomalies.len()).sum();
    if anomalies > 0 {
        out.push_str("<h2>Anomalies</h2>\n");
        for (name, v) in verdicts {
            for a in &v.anomalies {
                let ops: Vec<String> = a.ops.iter().map(|i| i.to_string()).collect();
                let _ = writeln!(
                    out,
                    "<div class=\"anomaly\"><span class=\"kind\">{}</span> <span class=\"note\">({})</span> {}<br><span class=\"note\">ops: {}</span></div>",
                    escape(&a.kind),
                    escape(name),
                    escape(&a.message),
                    escape(&ops.join(", "))
                );
            }
            if v.anomalies_unlisted > 0 {
                let _ = writeln!(
                    out,
                    "<p class=\"note\">{}: {} more anomalies not listed</p>",
                    escape(name),
                    v.anomalies_unlisted
                );
            }
        }
        out.push_str("<h2>Offending ops</h2>\n<table><tr><th>index</th><th>process</th><th>f</th><th>outcome</th><th>invoked (ms)</th><th>latency (ms)</th><th>invoke value</th><th>completion value</th><th>error</th><th>anomalies</th></tr>\n");
        for (&invoke_index, kinds) in bad.iter().take(HTML_OPS_LISTED_MAX) {
            let Some(pair) = history.pair_of(invoke_index) else {
                continue;
            };
            let completion = pair.completion;
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td class=\"v\">{}</td><td class=\"v\">{}</td><td>{}</td><td>{}</td></tr>",
                pair.index(),
                pair.process(),
                escape(pair.f()),
                outcome_class(&pair),
                outcome_class(&pair),
                ms(pair.invoke_ns()),
                pair.completion_ns().map_or("-".into(), |c| ms(c - pair.invoke_ns())),
                escape(&short(&pair.invoke.value)),
                completion.map_or("-".into(), |c| escape(&short(&c.value))),
                escape(completion.and_then(|c| c.error.as_deref()).unwrap_or("")),
                escape(&kinds.iter().cloned().collect::<Vec<_>>().join(", ")),
            );
        }
        out.push_str("</table>\n");
        if bad.len() > HTML_OPS_LISTED_MAX {
            let _ = writeln!(
                out,
                "<p class=\"note\">{} offending ops; the first {HTML_OPS_LISTED_MAX} are listed.</p>",
                bad.len()
            );
        }
    }

    // Counts per f.
    out.push_str("<h2>Operations</h2>\n<table><tr><th>f</th><th>ok</th><th>fail</th><th>info</th><th>pending</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>max ms</th></tr>\n");
    for (f, s) in stats_by_f(history) {
        let l = latency_json(&s.latencies_ns);
        let cell = |k: &str| l.get(k).and_then(|v| v.as_f64()).map_or("-".to_string(), |x| format!("{x:.3}"));
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&f),
            s.ok,
            s.fail,
            s.info,
            s.pending,
            cell("p50"),
            cell("p90"),
            cell("p99"),
            cell("max")
        );
    }
    out.push_str("</table>\n");

    timeline(history, &bad, &mut out);
    out.push_str("</body></html>\n");
    out
}

fn outcome_class(pair: &Pair) -> &'static str {
    match (pair.outcome(), pair.completion) {
        (_, None) => "pending",
        (OpType::Ok, _) => "ok",
        (OpType::Fail, _) => "fail",
        _ => "info",
    }
}

/// Geometry of the timeline, in pixels.
const PLOT_WIDTH: f64 = 1400.0;
const LABEL_WIDTH: f64 = 70.0;
const ROW_HEIGHT: f64 = 14.0;
const BAR_HEIGHT: f64 = 10.0;
const AXIS_HEIGHT: f64 = 30.0;
const TICKS: u64 = 10;

fn timeline(history: &History, bad: &BTreeMap<u64, BTreeSet<String>>, out: &mut String) {
    out.push_str("<h2>Timeline</h2>\n<p class=\"legend\"><span class=\"ok\" style=\"background:#81c784\">ok</span><span style=\"background:#e57373\">fail</span><span style=\"background:#ffb74d\">info</span><span style=\"background:#ffe0b2\">pending</span><span style=\"outline:2.5px solid #6a1b9a\">offending</span><span style=\"background:#cfd8dc\">nemesis</span> (hover a bar for details)</p>\n");
    let pairs: Vec<Pair> = history.pairs().collect();
    // Offending ops first, then the rest in order, up to the cap.
    let mut drawn: Vec<&Pair> =
        pairs.iter().filter(|p| bad.contains_key(&p.invoke.index)).take(HTML_OPS_DRAWN_MAX).collect();
    for p in &pairs {
        if drawn.len() >= HTML_OPS_DRAWN_MAX {
            break;
        }
        if !bad.contains_key(&p.invoke.index) {
            drawn.push(p);
        }
    }
    if pairs.len() > drawn.len() {
        let _ = writeln!(
            out,
            "<p class=\"note\">Drawing {} of {} ops: every offending op, then the others in history order (the timeline is cut at op {}).</p>",
            drawn.len(),
            pairs.len(),
            drawn.last().map_or(0, |p| p.invoke.index)
        );
    }
    let end_ns = history.ops().last().map_or(1, |op| op.time_ns.max(1));
    let processes: BTreeSet<u64> = drawn
        .iter()
        .filter_map(|p| match p.process() {
            Process::Client(id) => Some(id),
            Process::Nemesis => None,
        })
        .collect();
    let row: HashMap<u64, usize> = processes.iter().enumerate().map(|(i, &p)| (p, i)).collect();
    let height = AXIS_HEIGHT + ROW_HEIGHT * processes.len().max(1) as f64 + 10.0;
    let width = LABEL_WIDTH + PLOT_WIDTH + 20.0;
    let x = |t: u64| LABEL_WIDTH + PLOT_WIDTH * (t as f64 / end_ns as f64);
    let rows_bottom = height - 10.0;

    let _ = writeln!(
        out,
        "<div class=\"timeline\"><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">"
    );
    // Time axis.
    for i in 0..=TICKS {
        let t = end_ns / TICKS * i;
        let _ = writeln!(
            out,
            "<line class=\"tick\" x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{1}\" y2=\"{2}\"/><text x=\"{0:.1}\" y=\"12\" text-anchor=\"middle\">{3}</text>",
            x(t),
            AXIS_HEIGHT - 10.0,
            rows_bottom,
            human(t)
        );
    }
    // Nemesis windows: start-X .. stop-X (to the end when never stopped).
    let mut open: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut windows: Vec<(u64, u64, String)> = Vec::new();
    for op in history.nemesis_events() {
        if let Some(what) = op.f.strip_prefix("start") {
            open.insert(what.to_string(), (op.time_ns, op.f.clone()));
        } else if let Some((start, name)) = op.f.strip_prefix("stop").and_then(|w| open.remove(w)) {
            windows.push((start, op.time_ns, name));
        } else {
            let _ = writeln!(
                out,
                "<line class=\"nemesis\" x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{1}\" y2=\"{2}\"><title>{3} at {4}</title></line>",
                x(op.time_ns),
                AXIS_HEIGHT - 10.0,
                rows_bottom,
                escape(&op.f),
                human(op.time_ns)
            );
        }
    }
    windows.extend(open.into_values().map(|(start, name)| (start, end_ns, name)));
    for (start, stop, name) in windows {
        let _ = writeln!(
            out,
            "<rect class=\"nemesis\" x=\"{:.1}\" y=\"{}\" width=\"{:.1}\" height=\"{}\"><title>{} {} .. {}</title></rect><text x=\"{:.1}\" y=\"{}\">{}</text>",
            x(start),
            AXIS_HEIGHT - 10.0,
            (x(stop) - x(start)).max(1.0),
            rows_bottom - AXIS_HEIGHT + 10.0,
            escape(&name),
            human(start),
            human(stop),
            x(start) + 2.0,
            AXIS_HEIGHT - 12.0,
            escape(&name)
        );
    }
    // Process labels.
    for (r, p) in processes.iter().enumerate() {
        let _ =
            writeln!(out, "<text x=\"4\" y=\"{:.1}\">p{p}</text>", AXIS_HEIGHT + ROW_HEIGHT * r as f64 + BAR_HEIGHT);
    }
    // Bars.
    for p in drawn {
        let Process::Client(id) = p.process() else {
            continue;
        };
        let y = AXIS_HEIGHT + ROW_HEIGHT * row[&id] as f64;
        let start = p.invoke_ns();
        let stop = p.completion_ns().unwrap_or(end_ns);
        let class = outcome_class(p);
        let kinds = bad.get(&p.invoke.index);
        let mut title = format!("op {} p{} {} {} {}", p.index(), p.process(), p.f(), short(&p.invoke.value), class);
        if let Some(c) = p.completion.filter(|c| c.op_type == OpType::Ok && c.value != p.invoke.value) {
            title.push_str(&format!(" -> {}", short(&c.value)));
        }
        if let Some(e) = p.completion.and_then(|c| c.error.as_deref()) {
            title.push_str(&format!(" ({e})"));
        }
        title.push_str(&format!(", {} .. {}", human(start), human(stop)));
        if let Some(kinds) = kinds {
            title.push_str(&format!(", anomalies: {}", kinds.iter().cloned().collect::<Vec<_>>().join(", ")));
        }
        let _ = writeln!(
            out,
            "<rect class=\"{class}{}\" x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{BAR_HEIGHT}\"><title>{}</title></rect>",
            if kinds.is_some() { " bad" } else { "" },
            x(start),
            (x(stop) - x(start)).max(1.0),
            escape(&title)
        );
    }
    out.push_str("</svg></div>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::{register, set};
    use crate::testing::*;
    use serde_json::json;

    fn sample() -> History {
        hist(vec![
            nemesis("start-partition"),
            inv(0, "write", json!([1, 1])),
            ok(0, "write", json!([1, 1])),
            inv(0, "write", json!([1, "<b>"])),
            fail(0, "write", json!([1, "<b>"])),
            nemesis("stop-partition"),
            inv(1, "read", json!([1, null])),
            ok(1, "read", json!([1, 2])),
            inv(2, "read", json!([1, null])),
            info(2, "read", json!([1, null])),
            inv(3, "write", json!([1, 3])),
            nemesis("kill"),
        ])
    }

    /// Goal: the summary counts outcomes and latencies per f and names
    /// the overall result. Method: a small history with every outcome.
    #[test]
    fn summary_counts_and_latencies() {
        let h = sample();
        let v = register::check(&h, &Default::default());
        let s = summary(&h, &[("linearizable".into(), v)]);
        assert_eq!(s["result"], "invalid");
        assert_eq!(s["events"], 12);
        assert_eq!(s["nemesis_events"], 3);
        assert_eq!(s["by_f"]["write"]["ok"], 1);
        assert_eq!(s["by_f"]["write"]["fail"], 1);
        assert_eq!(s["by_f"]["write"]["info"], 1);
        assert_eq!(s["by_f"]["write"]["pending"], 1);
        assert_eq!(s["by_f"]["read"]["latency_ms"]["count"], 2);
        assert_eq!(s["by_f"]["read"]["latency_ms"]["max"], 0.00001);
        assert_eq!(s["checkers"][0]["checker"], "linearizable");
        assert_eq!(s["checkers"][0]["anomalies"][0]["kind"], "nonlinearizable");
    }

    /// Goal: times print with a unit that suits them.
    #[test]
    fn human_times() {
        assert_eq!(human(850), "850 ns");
        assert_eq!(human(12_500), "12.5 µs");
        assert_eq!(human(340_000_000), "340.0 ms");
        assert_eq!(human(12_340_000_000), "12.34 s");
    }

    /// Goal: percentiles are nearest-rank. Method: 1..=100 ms.
    #[test]
    fn percentiles() {
        let l: Vec<u64> = (1..=100).map(|i| i * 1_000_000).collect();
        let j = latency_json(&l);
        assert_eq!((j["p50"].as_f64(), j["p90"].as_f64()), (Some(50.0), Some(90.0)));
        assert_eq!((j["p99"].as_f64(), j["max"].as_f64()), (Some(99.0), Some(100.0)));
        assert_eq!(latency_json(&[7_000_000])["p50"], 7.0);
    }

    /// Goal: the overall result: invalid beats unknown beats valid; no
    /// checker is unknown.
    #[test]
    fn overall_result() {
        let valid =
            Verdict { result: Validity::Valid, anomalies: vec![], anomalies_unlisted: 0, stats: Default::default() };
        let unknown = Verdict::unknown("deadline");
        assert_eq!(overall(&[("a".into(), valid.clone())]), Validity::Valid);
        assert_eq!(
            overall(&[("a".into(), valid.clone()), ("b".into(), unknown.clone())]),
            Validity::Unknown { reason: "b: deadline".into() }
        );
        let invalid = set::check(&hist(vec![
            inv(0, "add", json!(1)),
            ok(0, "add", json!(1)),
            inv(0, "read", json!(null)),
            ok(0, "read", json!([])),
        ]));
        assert_eq!(overall(&[("b".into(), unknown), ("c".into(), invalid)]), Validity::Invalid);
        assert!(matches!(overall(&[]), Validity::Unknown { .. }));
    }

    /// Goal: the HTML page is self-contained, escaped, and shows the
    /// anomaly, the offending op with its values, and the nemesis window.
    #[test]
    fn html_shows_anomalies_and_nemesis() {
        let h = sample();
        let v = register::check(&h, &Default::default());
        let page = html(&h, &[("linearizable".into(), v)]);
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(!page.contains("<script"), "no scripts");
        assert!(!page.contains("src="), "no external assets");
        assert!(page.contains("<h1 class=\"invalid\">invalid</h1>"));
        assert!(page.contains("<span class=\"kind\">nonlinearizable</span>"));
        assert!(page.contains("[1,2]"), "the offending read's value is listed");
        assert!(page.contains("class=\"ok bad\""), "the offending read is outlined");
        assert!(page.contains("<rect class=\"nemesis\""), "the partition is shaded");
        assert!(page.contains("<title>start-partition 0 ns .. 50 ns</title>"));
        assert!(page.contains("<line class=\"nemesis\""), "the kill is a line");
        assert!(page.contains("&lt;b&gt;"), "values are escaped");
        assert!(!page.contains("\"<b>\""));
    }

    /// Goal: a 10,000-op history makes a bounded page that says it is
    /// capped and still draws the offending op.
    #[test]
    fn html_caps_large_histories() {
        let mut events = Vec::new();
        for i in 0..10_000 {
            events.push(inv(i % 10, "add", json!(i)));
            events.push(ok(i % 10, "add", json!(i)));
        }
        events.push(inv(99, "read", json!(null)));
        events.push(ok(99, "read", json!((1..10_000).collect::<Vec<_>>())));
        let h = hist(events);
        let v = set::check(&h);
        assert_eq!(v.to_string(), "invalid: lost-add");
        let page = html(&h, &[("set".into(), v)]);
        assert!(page.contains(&format!("Drawing {HTML_OPS_DRAWN_MAX} of 10001 ops")));
        assert!(page.contains("class=\"ok bad\""));
        assert!(page.len() < 4_000_000, "{} bytes", page.len());
    }
}
