//! Verdicts for people: a table. (For programs, the JSON is `silk_verifier::verdict_json`.)

use std::io::{self, Write};

use silk_attestation::{format_time as fmt_time, Check, EvidenceKind, Outcome, Verdict};
pub use silk_cli::Style;
use time::OffsetDateTime;

/// Widest a table cell gets before its middle is elided; failures repeat values in full.
const CELL: usize = 40;

fn elide(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= CELL {
        return text.to_owned();
    }
    let half = (CELL - 1) / 2;
    let head: String = chars[..half].iter().collect();
    let tail: String = chars[chars.len() - half..].iter().collect();
    format!("{head}…{tail}")
}

fn width(s: &str) -> usize {
    s.chars().count()
}

fn pad(s: &str, w: usize) -> String {
    format!("{s}{}", " ".repeat(w.saturating_sub(width(s))))
}

/// Writes the verdict as a table: facts, then one row per check (its mark, check, expected,
/// found), then the reasons for failures with full values, then the verdict line. The marks
/// are ✔/✗ for [`Style::Terminal`] and `PASS`/`FAIL` for [`Style::Plain`] (a pipe, a file,
/// `NO_COLOR`), so that what a script reads never depends on symbols.
pub fn table(
    verdict: &Verdict,
    kind: EvidenceKind,
    source: &str,
    now: OffsetDateTime,
    notes: &[String],
    style: Style,
    out: &mut dyn Write,
) -> io::Result<()> {
    writeln!(out, "{kind}: {source}")?;
    if verdict.simulated {
        writeln!(
            out,
            "*** SIMULATED: silk development evidence, not from a TEE ***"
        )?;
    }
    writeln!(out, "verified as of {}", fmt_time(now))?;
    for note in notes {
        writeln!(out, "note: {note}")?;
    }
    writeln!(out)?;
    let fw = verdict
        .facts
        .iter()
        .map(|f| width(f.name))
        .max()
        .unwrap_or(0);
    for fact in &verdict.facts {
        writeln!(out, "  {}  {}", pad(fact.name, fw), fact.value)?;
    }
    writeln!(out)?;

    let rows: Vec<[String; 4]> = verdict
        .checks
        .iter()
        .map(|c| {
            [
                style.mark(c.passed()).to_owned(),
                c.name.to_owned(),
                elide(&c.expected),
                elide(&c.found),
            ]
        })
        .collect();
    let header = ["", "CHECK", "EXPECTED", "FOUND"];
    let mut w = header.map(width);
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            w[i] = w[i].max(width(cell));
        }
    }
    let line = |cells: &[String; 4]| {
        format!(
            "{}  {}  {}  {}",
            pad(&cells[0], w[0]),
            pad(&cells[1], w[1]),
            pad(&cells[2], w[2]),
            cells[3]
        )
    };
    writeln!(out, "{}", line(&header.map(str::to_owned)).trim_end())?;
    for row in &rows {
        writeln!(out, "{}", line(row).trim_end())?;
    }

    let failures: Vec<&Check> = verdict.failures().collect();
    if !failures.is_empty() {
        writeln!(out)?;
        writeln!(out, "failed checks:")?;
        for c in &failures {
            if let Outcome::Fail { reason } = &c.outcome {
                writeln!(out, "  {} {}: {reason}", style.mark(false), c.name)?;
                writeln!(out, "      expected: {}", c.expected)?;
                writeln!(out, "      found:    {}", c.found)?;
            }
        }
    }
    for warning in &verdict.warnings {
        writeln!(out, "warning: {warning}")?;
    }
    writeln!(out)?;
    if verdict.accepted() {
        writeln!(
            out,
            "VERDICT: ACCEPTED{} ({} checks passed)",
            if verdict.simulated {
                " (SIMULATED)"
            } else {
                ""
            },
            verdict.checks.len()
        )?;
    } else {
        let names: Vec<&str> = failures.iter().map(|c| c.name).collect();
        writeln!(
            out,
            "VERDICT: REJECTED ({} of {} checks failed: {})",
            failures.len(),
            verdict.checks.len(),
            if names.is_empty() {
                "no check ran".to_owned()
            } else {
                names.join(", ")
            }
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use silk_attestation::checks::snp;
    use silk_attestation::Platform;

    #[test]
    fn elides_long_cells_in_the_middle() {
        let long = "a".repeat(30) + &"b".repeat(30);
        let e = elide(&long);
        assert_eq!(width(&e), 2 * ((CELL - 1) / 2) + 1);
        assert!(e.starts_with("aaa") && e.ends_with("bbb") && e.contains('…'));
        assert_eq!(elide("short"), "short");
    }

    #[test]
    fn table_names_failed_checks_with_full_values() {
        let mut v = Verdict::new(Platform::SevSnp);
        let (ok, bad) = (&snp::REPORT_SIGNATURE, &snp::MEASUREMENT);
        v.push(Check::pass(ok, "x", "x"));
        let long = "f".repeat(96);
        v.push(Check::fail(bad, "e".repeat(96), long.clone(), "nope"));
        let (ok, bad) = (ok.name, bad.name);
        let render = |style| {
            let mut out = Vec::new();
            table(
                &v,
                EvidenceKind::SnpReport,
                "r.bin",
                OffsetDateTime::UNIX_EPOCH,
                &[],
                style,
                &mut out,
            )
            .unwrap();
            String::from_utf8(out).unwrap()
        };
        let text = render(Style::Terminal);
        assert!(text.contains(&format!("✗ {bad}: nope")), "{text}");
        assert!(text.contains(&format!("✔  {ok}")), "{text}");
        assert!(text.contains(&long), "{text}");
        assert!(
            text.contains(&format!("VERDICT: REJECTED (1 of 2 checks failed: {bad})")),
            "{text}"
        );
        let plain = render(Style::Plain);
        assert!(plain.contains(&format!("FAIL {bad}: nope")), "{plain}");
        assert!(plain.contains(&format!("PASS  {ok}")), "{plain}");
        assert!(!plain.contains('✔') && !plain.contains('✗'), "{plain}");
        assert_eq!(
            plain
                .replace("PASS", "✔")
                .replace("FAIL", "✗")
                .lines()
                .count(),
            text.lines().count()
        );
    }
}
