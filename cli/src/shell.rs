//! The key-value prompt (`\kv` in the SQL shell): the commands of
//! `spandb kv`, one per line, parsed with the same definitions.

use anyhow::Context;
use clap::Parser;
use rustyline::error::ReadlineError;

use crate::kv::{self, KvCommand};

#[derive(Parser, Debug)]
#[command(
    name = "shell",
    no_binary_name = true,
    disable_help_flag = true,
    disable_version_flag = true,
    disable_help_subcommand = true
)]
struct Line {
    #[command(subcommand)]
    command: LineCommand,
}

#[derive(clap::Subcommand, Debug)]
enum LineCommand {
    #[command(flatten)]
    Kv(KvCommand),
    /// Servers, shards and leaders.
    Status,
    /// List the commands.
    Help,
    /// Leave the shell (Ctrl-D works too).
    #[command(alias = "quit")]
    Exit,
}

const HELP: &str = "\
commands:
  put KEY VALUE               set KEY; prints the commit timestamp
  get KEY [--at TS]           print KEY's value (latest, or at a timestamp)
  del KEY                     delete KEY
  scan [START [END]] [--at TS] [--limit N]
                              pairs with keys in [START, END)
  status                      servers, shards, leaders
  help, exit
Quote keys or values with spaces: put \"my key\" \"a value\".";

pub async fn run(addr: &str) -> anyhow::Result<()> {
    let client = client::Client::connect([addr.to_string()]).await.with_context(|| format!("connecting to {addr}"))?;
    let mut editor = rustyline::DefaultEditor::new().context("starting the line editor")?;
    println!("SpanDB shell. Type 'help' for commands.");
    loop {
        let line = match editor.readline("spandb> ") {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => return Ok(()),
            Err(e) => return Err(e).context("reading input"),
        };
        let words = match split_words(&line) {
            Ok(w) if w.is_empty() => continue,
            Ok(w) => w,
            Err(e) => {
                println!("error: {e}");
                continue;
            }
        };
        let _ = editor.add_history_entry(line.as_str());
        let parsed = match Line::try_parse_from(words) {
            Ok(p) => p,
            Err(e) => {
                println!("{}", e.to_string().trim_end());
                continue;
            }
        };
        let result = match parsed.command {
            LineCommand::Exit => return Ok(()),
            LineCommand::Help => {
                println!("{HELP}");
                Ok(())
            }
            LineCommand::Status => crate::status::render(&client).await.map(|s| print!("{s}")),
            LineCommand::Kv(cmd) => kv::execute(&client, &cmd, &mut std::io::stdout()).await,
        };
        if let Err(e) = result {
            println!("error: {e:#}");
        }
    }
}

/// Splits a line into words; double or single quotes group words, and a
/// backslash escapes the next character.
fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (c, quote) {
            ('\\', _) => {
                word.push(chars.next().ok_or("a trailing backslash escapes nothing")?);
                in_word = true;
            }
            (q, None) if q == '"' || q == '\'' => {
                quote = Some(q);
                in_word = true;
            }
            (q, Some(open)) if q == open => quote = None,
            (c, None) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (c, _) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unclosed quote".into());
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_on_spaces_and_respect_quotes() {
        assert_eq!(split_words("put a b").unwrap(), ["put", "a", "b"]);
        assert_eq!(split_words("put \"my key\" 'a b' \"\"").unwrap(), ["put", "my key", "a b", ""]);
        assert_eq!(split_words(" get  x\\ y ").unwrap(), ["get", "x y"]);
        assert!(split_words("put \"open").is_err());
    }

    #[test]
    fn lines_parse_to_kv_commands() {
        let line = Line::try_parse_from(["get", "k", "--at", "5"]).unwrap();
        assert!(matches!(line.command, LineCommand::Kv(KvCommand::Get { .. })));
        assert!(Line::try_parse_from(["frobnicate"]).is_err());
    }
}
