//! Jobs expected versus jobs recorded: every print the harness started must have exactly
//! one job, closed with the status its ending calls for.
//!
//! A job is matched to its print by printer and print number: the harness names every
//! file `lt-<n>-<printer>…`, and the daemon keeps the name in `filename` or `job_name`.

use std::collections::HashMap;

use serde::Serialize;

use super::prints::Started;

/// One job as the summary needs it.
#[derive(Clone, Debug)]
pub struct JobRow {
    pub id: String,
    pub printer_id: String,
    pub name: String,
    pub status: String,
}

impl JobRow {
    pub fn from_json(v: &serde_json::Value) -> Self {
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        let name = match (v["filename"].as_str(), v["job_name"].as_str()) {
            (Some(f), _) if f.contains("lt-") => f.to_owned(),
            (_, Some(j)) => j.to_owned(),
            (Some(f), None) => f.to_owned(),
            (None, None) => String::new(),
        };
        Self {
            id: s("id"),
            printer_id: s("printer_id"),
            name,
            status: s("status"),
        }
    }
}

#[derive(Serialize, Debug, Default)]
pub struct JobReport {
    pub expected: usize,
    /// Jobs that belong to a started print (one per print when all is well).
    pub created: usize,
    /// Started prints without a job.
    pub lost: usize,
    /// Jobs beyond the first for one print.
    pub duplicated: usize,
    /// Jobs that belong to no print the harness started.
    pub unexpected: usize,
    pub closed_right_status: usize,
    pub wrong_status: usize,
    /// Jobs still `running`/`paused`/`pending` when the daemon was given time to close them.
    pub still_open: usize,
    pub expected_by_status: HashMap<&'static str, usize>,
    /// Up to ten mismatches, to start an investigation from.
    pub examples: Vec<String>,
}

impl JobReport {
    pub fn ok(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.unexpected == 0
    }
}

/// `(printer, n)` from a name like `lt-12-bambu_3.gcode.3mf`.
fn print_key(printer: &str, name: &str) -> Option<(String, u32)> {
    let rest = &name[name.find("lt-")? + 3..];
    let (n, _) = rest.split_once('-')?;
    Some((printer.to_owned(), n.parse().ok()?))
}

pub fn compare(started: &[Started], jobs: &[JobRow]) -> JobReport {
    let mut r = JobReport {
        expected: started.len(),
        ..JobReport::default()
    };
    let mut by_key: HashMap<(String, u32), Vec<&JobRow>> = HashMap::new();
    for j in jobs {
        if matches!(j.status.as_str(), "running" | "paused" | "pending") {
            r.still_open += 1;
        }
        match print_key(&j.printer_id, &j.name) {
            Some(k) => by_key.entry(k).or_default().push(j),
            None => {
                r.unexpected += 1;
                note(
                    &mut r.examples,
                    format!(
                        "job {} ({}, {:?}) matches no print",
                        j.id, j.printer_id, j.name
                    ),
                );
            }
        }
    }
    let mut matched = 0;
    for s in started {
        let want = s.outcome.job_status();
        *r.expected_by_status.entry(want).or_default() += 1;
        let Some(js) = by_key.remove(&(s.printer.clone(), s.n)) else {
            r.lost += 1;
            note(
                &mut r.examples,
                format!("print {} on {} has no job", s.file, s.printer),
            );
            continue;
        };
        matched += 1;
        r.created += js.len();
        if js.len() > 1 {
            r.duplicated += js.len() - 1;
            let ids: Vec<&str> = js.iter().map(|j| j.id.as_str()).collect();
            note(
                &mut r.examples,
                format!(
                    "print {} on {} has {} jobs: {ids:?}",
                    s.file,
                    s.printer,
                    js.len()
                ),
            );
        }
        if js.iter().all(|j| j.status == want) {
            r.closed_right_status += 1;
        } else {
            r.wrong_status += 1;
            let got: Vec<&str> = js.iter().map(|j| j.status.as_str()).collect();
            note(
                &mut r.examples,
                format!(
                    "print {} on {} ({:?}): expected {want}, got {got:?}",
                    s.file, s.printer, s.outcome
                ),
            );
        }
    }
    // Jobs named like a harness print that was never started.
    for (k, js) in by_key {
        r.unexpected += js.len();
        note(
            &mut r.examples,
            format!(
                "{} job(s) for print {} on {}, which was never started",
                js.len(),
                k.1,
                k.0
            ),
        );
    }
    let _ = matched;
    r
}

fn note(examples: &mut Vec<String>, s: String) {
    if examples.len() < 10 {
        examples.push(s);
    }
}

#[cfg(test)]
mod tests {
    use super::super::prints::Outcome;
    use super::*;

    fn started(p: &str, n: u32, outcome: Outcome) -> Started {
        Started {
            printer: p.into(),
            n,
            file: format!("lt-{n}-{p}.gcode.3mf"),
            outcome,
        }
    }

    fn job(id: &str, p: &str, name: &str, status: &str) -> JobRow {
        JobRow {
            id: id.into(),
            printer_id: p.into(),
            name: name.into(),
            status: status.into(),
        }
    }

    #[test]
    fn counts_lost_duplicated_unexpected_and_wrong_status() {
        let s = [
            started("a", 1, Outcome::Complete),
            started("a", 2, Outcome::Cancel),
            started("b", 1, Outcome::Fail),
            started("b", 2, Outcome::Finish),
        ];
        let j = [
            job("1", "a", "lt-1-a.gcode.3mf", "completed"),
            job("2", "a", "lt-2-a", "unknown"),
            job("3", "b", "lt-1-b.gcode.3mf", "failed"),
            job("4", "b", "lt-1-b.gcode.3mf", "failed"),
            job("5", "b", "something else", "completed"),
        ];
        let r = compare(&s, &j);
        assert_eq!(
            (r.expected, r.created, r.lost, r.duplicated, r.unexpected),
            (4, 4, 1, 1, 1)
        );
        assert_eq!((r.closed_right_status, r.wrong_status), (2, 1));
        assert!(!r.ok());
    }
}
