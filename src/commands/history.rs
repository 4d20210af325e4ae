//! `copkg history [SERVICE | COORD] [-n N]`: the audit journal, newest last.

use std::collections::VecDeque;

use super::{Context, Result, out};
use crate::cli::HistoryArgs;
use crate::journal::{Entry, Journal, read_entries};
use crate::runtime::escape_controls;

/// Shows the journal's entries (of one target when given), reading the
/// rotated files too; corrupt lines are skipped with one warning.
pub fn run(ctx: &Context, args: &HistoryArgs) -> Result {
    if args.last == Some(0) {
        return Err(super::usage("-n takes a number above 0"));
    }
    let root = &ctx.settings.runtime_root;
    // A read makes nothing: no state dir means no journal yet.
    if !root.join(crate::state::STATE_DIR).exists() {
        ctx.progress(&format!(
            "copkg's journal is empty (no state dir under {})",
            root.display()
        ));
        return Ok(());
    }
    let journal = Journal::open(root)?;
    let mut shown = VecDeque::new();
    let report = read_entries(journal.snapshot()?, &mut |entry| {
        if args.target.as_ref().is_some_and(|t| *t != entry.target) {
            return;
        }
        if args.last.is_some_and(|n| shown.len() == n) {
            shown.pop_front();
        }
        shown.push_back(entry);
    })?;
    if report.corrupt > 0 {
        ctx.progress(&format!(
            "warning: skipped {} corrupt line{} of copkg's journal in {}",
            report.corrupt,
            if report.corrupt == 1 { "" } else { "s" },
            journal.path().parent().unwrap_or(root).display()
        ));
    }
    if ctx.settings.json {
        for entry in &shown {
            out(&serde_json::to_string(entry).unwrap_or_default())?;
        }
        return Ok(());
    }
    if shown.is_empty() {
        ctx.progress(&match &args.target {
            Some(target) => format!(
                "copkg's journal has no entries for {}",
                escape_controls(target)
            ),
            None => "copkg's journal is empty".to_owned(),
        });
        return Ok(());
    }
    for line in table(shown.iter()) {
        out(&line)?;
    }
    Ok(())
}

/// The entries as an aligned table, a header first; every field with its
/// control characters escaped. The result comes last, unpadded.
fn table<'a>(entries: impl Iterator<Item = &'a Entry>) -> Vec<String> {
    let header = ["TIME", "USER", "ACTION", "TARGET", "EXIT", "RESULT"].map(str::to_owned);
    let mut rows = vec![header];
    for entry in entries {
        let user = entry.user.clone().unwrap_or_else(|| entry.uid.to_string());
        let user = match &entry.sudo_user {
            Some(person) => format!("{user} (sudo {person})"),
            None => user,
        };
        let result = match &entry.error {
            Some(error) => format!("{}: {error}", entry.result),
            None => entry.result.clone(),
        };
        rows.push(
            [
                entry.time.clone(),
                user,
                entry.action.clone(),
                entry.target.clone(),
                entry.exit_code.to_string(),
                result,
            ]
            .map(|field| escape(&field)),
        );
    }
    let mut widths = [0; 5];
    for row in &rows {
        for (width, field) in widths.iter_mut().zip(row) {
            *width = (*width).max(field.chars().count());
        }
    }
    rows.into_iter()
        .map(|row| {
            let mut line = String::new();
            for (field, width) in row[..5].iter().zip(widths) {
                line.push_str(field);
                line.push_str(&" ".repeat(width - field.chars().count() + 2));
            }
            line.push_str(&row[5]);
            line
        })
        .collect()
}

/// A field on one line: control characters escaped, line breaks and tabs too.
fn escape(field: &str) -> String {
    escape_controls(field)
        .replace('\n', "\\n")
        .replace('\t', "\\t")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Outcome;

    #[test]
    fn the_table_is_aligned_and_escaped() {
        let mut ok = Entry::now("install", "g:a:1", &Outcome::Done { changed: true });
        ok.time = "2024-05-01T12:00:00Z".into();
        ok.user = Some("root".into());
        ok.sudo_user = Some("alice".into());
        let mut failed = Entry::now(
            "start",
            "1.web.ops.example",
            &Outcome::Failed {
                message: "bad\u{1b}[31m\nforged".into(),
                code: crate::exit::ExitCode::ScriptFailed,
            },
        );
        failed.time = "2024-05-01T12:00:01Z".into();
        failed.user = None;
        failed.uid = 1000;
        failed.sudo_user = None;
        assert_eq!(
            table([&ok, &failed].into_iter()),
            [
                "TIME                  USER               ACTION   TARGET             EXIT  RESULT",
                "2024-05-01T12:00:00Z  root (sudo alice)  install  g:a:1              0     ok",
                "2024-05-01T12:00:01Z  1000               start    1.web.ops.example  8     error: bad\\u{1b}[31m forged",
            ]
        );
    }
}
