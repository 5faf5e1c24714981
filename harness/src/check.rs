//! Judging a history: the checkers of each workload, the one-line verdict,
//! and the files a person reads afterwards (`summary.json`,
//! `report.html`). Used at the end of a run and by `spandb jepsen check
//! DIR`, which re-checks a saved history.
//!
//! ```text
//!   history.jsonl ──► checkers(workload) ──► verdicts ──► verdict_line  "invalid: nonlinearizable"
//!                                               │
//!                                               ├──► summary.json  (jepsen::report::summary + workload, run, problems)
//!                                               └──► report.html   (jepsen::report::html)
//! ```
//!
//! The overall result is the `jepsen` crate's: invalid if any checker
//! finds an anomaly, else unknown if any checker could not decide, else
//! valid. Only valid passes.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use jepsen::checker::{bank, external, list_append, register, set, timestamped};
use jepsen::{report, ConsistencyModel, History, RegisterOptions, TimestampedOptions, Validity, Verdict};
use serde_json::Value;

use crate::workload::{self, WorkloadName};

pub const HISTORY_FILE: &str = "history.jsonl";
pub const SUMMARY_FILE: &str = "summary.json";
pub const REPORT_FILE: &str = "report.html";

/// Runs `workload`'s checkers over `history`, each named.
pub fn checkers(workload: WorkloadName, history: &History) -> Vec<(String, Verdict)> {
    let named = |name: &str, v: Verdict| (name.to_string(), v);
    let mut verdicts = match workload {
        WorkloadName::Register => vec![
            named("linearizable", register::check(history, &RegisterOptions::default())),
            named("timestamped", timestamped::check(history, &TimestampedOptions::default())),
        ],
        WorkloadName::Set => vec![named("set", set::check(history))],
        WorkloadName::Bank => vec![named("bank", bank::check(history, &workload::bank::options()))],
        WorkloadName::ListAppend => {
            vec![named("strict-serializable", list_append::check(history, ConsistencyModel::StrictSerializable))]
        }
        WorkloadName::Timestamps => Vec::new(),
    };
    verdicts.push(named("external", external::check(history)));
    verdicts
}

/// The verdict as one line: `valid`, `invalid: kind, kind`, `unknown: why`.
pub fn verdict_line(verdicts: &[(String, Verdict)]) -> String {
    match report::overall(verdicts) {
        Validity::Valid => "valid".into(),
        Validity::Invalid => {
            let mut kinds: Vec<&str> = Vec::new();
            for (_, v) in verdicts.iter().filter(|(_, v)| v.is_invalid()) {
                for k in v.kinds() {
                    if !kinds.contains(&k) {
                        kinds.push(k);
                    }
                }
            }
            format!("invalid: {}", kinds.join(", "))
        }
        Validity::Unknown { reason } => format!("unknown: {reason}"),
    }
}

/// Writes `summary.json` (the crate's summary plus `extra` fields such as
/// `workload`, `run`, `problems`) and `report.html` into `dir`.
pub fn write_reports(
    dir: &Path,
    history: &History,
    verdicts: &[(String, Verdict)],
    extra: serde_json::Map<String, Value>,
) -> anyhow::Result<()> {
    let mut summary = report::summary(history, verdicts);
    if let Some(object) = summary.as_object_mut() {
        object.extend(extra);
    }
    let text = serde_json::to_string_pretty(&summary).context("encoding the summary")?;
    let path = dir.join(SUMMARY_FILE);
    std::fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    let path = dir.join(REPORT_FILE);
    std::fs::write(&path, report::html(history, verdicts)).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Writes the history as JSON lines into `dir`.
pub fn write_history(dir: &Path, history: &History) -> anyhow::Result<()> {
    let path = dir.join(HISTORY_FILE);
    let file = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    history.write_jsonl(std::io::BufWriter::new(file)).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// `spandb jepsen check DIR [--workload W]`.
#[derive(clap::Args)]
pub struct CheckArgs {
    /// The directory of a run (holding history.jsonl).
    dir: PathBuf,
    /// The workload the history comes from (default: the one named in
    /// DIR/summary.json).
    #[arg(long, value_enum)]
    workload: Option<WorkloadName>,
}

impl CheckArgs {
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Re-checks a saved history; returns the verdict line and whether it is
/// valid. Rewrites the summary (keeping the run's `run` and `problems`)
/// and the report.
pub fn recheck(args: &CheckArgs) -> anyhow::Result<(String, bool)> {
    let dir = &args.dir;
    let history_path = dir.join(HISTORY_FILE);
    let file = std::fs::File::open(&history_path).with_context(|| format!("cannot open {}", history_path.display()))?;
    let history = History::read_jsonl(std::io::BufReader::new(file))
        .with_context(|| format!("{} is not a valid history", history_path.display()))?;
    let previous: Option<Value> =
        std::fs::read_to_string(dir.join(SUMMARY_FILE)).ok().and_then(|text| serde_json::from_str(&text).ok());
    let workload = match (args.workload, previous.as_ref().and_then(|s| s["workload"].as_str())) {
        (Some(given), _) => given,
        (None, Some(saved)) => WorkloadName::parse(saved).map_err(anyhow::Error::msg)?,
        (None, None) => bail!("{} does not name the workload; pass --workload", dir.join(SUMMARY_FILE).display()),
    };
    let verdicts = checkers(workload, &history);
    let mut extra = serde_json::Map::new();
    extra.insert("workload".into(), Value::from(workload.as_str()));
    if let Some(previous) = previous {
        for field in ["run", "problems"] {
            if let Some(v) = previous.get(field) {
                extra.insert(field.into(), v.clone());
            }
        }
    }
    write_reports(dir, &history, &verdicts, extra)?;
    let line = verdict_line(&verdicts);
    let valid = report::overall(&verdicts) == Validity::Valid;
    Ok((line, valid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(text: &str) -> History {
        History::read_jsonl(text.as_bytes()).unwrap()
    }

    /// Goal: the verdict line names every anomaly kind once, or the
    /// unknown reason, and is `valid` only when every checker is.
    /// Method: register histories with and without a stale read (and a
    /// commit_ts inversion), checked by three checkers; a set history
    /// without its final read; bank reads with and without the total.
    #[test]
    fn verdict_lines() {
        let good = history(
            r#"{"index":0,"time":0,"process":0,"type":"invoke","f":"write","value":[7,1]}
{"index":1,"time":10,"process":0,"type":"ok","f":"write","value":[7,1],"commit_ts":100}
{"index":2,"time":20,"process":1,"type":"invoke","f":"read","value":[7,null]}
{"index":3,"time":30,"process":1,"type":"ok","f":"read","value":[7,1],"read_ts":120,"version_ts":100}"#,
        );
        let verdicts = checkers(WorkloadName::Register, &good);
        assert_eq!(verdict_line(&verdicts), "valid");
        let names: Vec<&str> = verdicts.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["linearizable", "timestamped", "external"]);

        let stale = history(
            r#"{"index":0,"time":0,"process":0,"type":"invoke","f":"write","value":[7,1]}
{"index":1,"time":10,"process":0,"type":"ok","f":"write","value":[7,1],"commit_ts":100}
{"index":2,"time":20,"process":1,"type":"invoke","f":"write","value":[8,2]}
{"index":3,"time":30,"process":1,"type":"ok","f":"write","value":[8,2],"commit_ts":90}
{"index":4,"time":40,"process":1,"type":"invoke","f":"read","value":[7,null]}
{"index":5,"time":50,"process":1,"type":"ok","f":"read","value":[7,null],"read_ts":120}"#,
        );
        let verdicts = checkers(WorkloadName::Register, &stale);
        assert_eq!(verdict_line(&verdicts), "invalid: nonlinearizable, missed-write, commit-ts-inversion");

        let adds_only = history(
            r#"{"index":0,"time":0,"process":0,"type":"invoke","f":"add","value":3}
{"index":1,"time":10,"process":0,"type":"ok","f":"add","value":3,"commit_ts":100}"#,
        );
        let verdicts = checkers(WorkloadName::Set, &adds_only);
        assert!(verdict_line(&verdicts).starts_with("unknown: set: no ok read"), "{}", verdict_line(&verdicts));

        // The bank's accounts and total are the harness's own (limits.rs).
        let accounts = workload::bank::account_ids(crate::limits::BANK_ACCOUNTS);
        let balances = |moved: i64| -> Value {
            let mut b: serde_json::Map<String, Value> =
                accounts.iter().map(|a| (a.to_string(), Value::from(crate::limits::BANK_INITIAL_BALANCE))).collect();
            b.insert(accounts[0].to_string(), Value::from(crate::limits::BANK_INITIAL_BALANCE - moved));
            Value::Object(b)
        };
        let bank = |read: Value| {
            history(&format!(
                r#"{{"index":0,"time":0,"process":0,"type":"invoke","f":"transfer","value":{{"from":0,"to":3,"amount":5}}}}
{{"index":1,"time":10,"process":0,"type":"ok","f":"transfer","value":{{"from":0,"to":3,"amount":5}},"commit_ts":100}}
{{"index":2,"time":20,"process":1,"type":"invoke","f":"read","value":{{"mode":"read-only"}}}}
{{"index":3,"time":30,"process":1,"type":"ok","f":"read","value":{read}}}"#
            ))
        };
        assert_eq!(verdict_line(&checkers(WorkloadName::Bank, &bank(balances(0)))), "valid");
        assert_eq!(verdict_line(&checkers(WorkloadName::Bank, &bank(balances(5)))), "invalid: wrong-total");
    }
}
