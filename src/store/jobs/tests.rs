//! The job rows' reads and writes against a real SQLite file.

use super::*;
use crate::domain::{JobId, PrinterId, PrinterType};
use serde_json::json;

fn db() -> Connection {
    let dir = tempfile::tempdir().unwrap();
    let conn = super::super::open_writer(&dir.path().join("t.db")).unwrap();
    std::mem::forget(dir);
    conn
}

fn job(printer: &str, file: &str, status: JobStatus, auto: bool) -> Job {
    let now = time::now();
    let info = if auto {
        json!({"auto_created": true})
    } else {
        json!({})
    };
    Job {
        id: JobId::generate(),
        printer_id: PrinterId::new(printer).unwrap(),
        printer_type: PrinterType::Bambu,
        job_name: file.trim_end_matches(".3mf").into(),
        filename: file.into(),
        status,
        progress: 0.0,
        start_time: Some(now),
        end_time: None,
        estimated_duration: None,
        actual_duration: None,
        customer_info: info.as_object().unwrap().clone(),
        notes: None,
        end_reason: None,
        created_at: now,
        updated_at: now,
        printer_job_id: None,
        printer_start_time: None,
    }
}

#[test]
fn an_unreadable_value_reads_as_null_and_the_row_is_still_listed() {
    let c = db();
    let j = job("p1", "cube.3mf", JobStatus::Completed, false);
    insert(&c, &j).unwrap();
    insert(&c, &job("p1", "other.3mf", JobStatus::Completed, false)).unwrap();
    c.execute(
        "UPDATE jobs SET start_time = '+10000-01-01T00:00:00.000Z', end_time = 42, \
         estimated_duration = 'soon' WHERE id = ?1",
        [j.id.as_str()],
    )
    .unwrap();
    let before = unreadable_values();
    let back = get(&c, j.id.as_str()).unwrap().unwrap();
    assert_eq!((back.start_time, back.end_time), (None, None));
    assert_eq!(back.estimated_duration, None);
    assert_eq!(back.filename, "cube.3mf");
    assert!(unreadable_values() >= before + 3);
    let (page, total) = list(
        &c,
        &JobQuery {
            limit: 10,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((page.len(), total), (2, 2));
    assert!(delete(&c, j.id.as_str()).unwrap());
}

#[test]
fn round_trips_a_job() {
    let c = db();
    let j = job("p1", "cube.3mf", JobStatus::Running, true);
    insert(&c, &j).unwrap();
    let back = get(&c, j.id.as_str()).unwrap().unwrap();
    assert_eq!(back.id, j.id);
    assert_eq!(back.customer_info, j.customer_info);
    assert_eq!(
        time::format(back.start_time.unwrap()),
        time::format(j.start_time.unwrap())
    );
}

#[test]
fn one_open_job_per_printer() {
    let c = db();
    insert(&c, &job("p1", "a.3mf", JobStatus::Running, true)).unwrap();
    let e = insert(&c, &job("p1", "b.3mf", JobStatus::Paused, true)).unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e}");
    insert(&c, &job("p1", "c.3mf", JobStatus::Completed, true)).unwrap();
    insert(&c, &job("p2", "a.3mf", JobStatus::Running, true)).unwrap();
}

#[test]
fn lists_with_filters_newest_first() {
    let c = db();
    for i in 0..10 {
        let st = if i % 2 == 0 {
            JobStatus::Completed
        } else {
            JobStatus::Failed
        };
        insert(
            &c,
            &job(
                if i < 5 { "p1" } else { "p2" },
                &format!("f{i}_50%.3mf"),
                st,
                i % 3 == 0,
            ),
        )
        .unwrap();
    }
    let q = |f: &dyn Fn(&mut JobQuery)| {
        let mut q = JobQuery {
            limit: 50,
            ..Default::default()
        };
        f(&mut q);
        list(&c, &q).unwrap()
    };
    let (all, n) = q(&|_| {});
    assert_eq!((all.len(), n), (10, 10));
    assert_eq!(all[0].filename, "f9_50%.3mf");
    assert_eq!(q(&|q| q.printer_id = Some("p1".into())).1, 5);
    assert_eq!(q(&|q| q.statuses = vec![JobStatus::Failed]).1, 5);
    assert_eq!(q(&|q| q.auto_created = Some(true)).1, 4);
    assert_eq!(q(&|q| q.auto_created = Some(false)).1, 6);
    assert_eq!(q(&|q| q.q = Some("F3_".into())).1, 1);
    assert_eq!(q(&|q| q.q = Some("_50%".into())).1, 10);
    let (page, n) = q(&|q| {
        q.limit = 3;
        q.offset = 8
    });
    assert_eq!((page.len(), n), (2, 10));
}

/// What `list` must answer, computed the slow, obvious way.
fn brute(c: &Connection, q: &JobQuery) -> (Vec<String>, u64) {
    let mut stmt = c
        .prepare("SELECT id, printer_id, status, auto_created FROM jobs ORDER BY seq DESC")
        .unwrap();
    let all: Vec<String> = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .filter(|(_, p, s, a)| {
            q.printer_id.as_ref().is_none_or(|x| x == p)
                && (q.statuses.is_empty() || q.statuses.iter().any(|x| x.as_str() == s))
                && q.auto_created.is_none_or(|x| (x as i64) == *a)
        })
        .map(|(id, ..)| id)
        .collect();
    let n = all.len() as u64;
    let page = all
        .into_iter()
        .skip(q.offset as usize)
        .take(q.limit as usize)
        .collect();
    (page, n)
}

fn check_every_filter(c: &Connection) {
    let printers = [None, Some("p1".to_owned()), Some("p2".to_owned())];
    let statuses = [
        vec![],
        vec![JobStatus::Completed],
        vec![JobStatus::Running, JobStatus::Paused],
        vec![JobStatus::Failed, JobStatus::Completed, JobStatus::Failed],
    ];
    for printer_id in &printers {
        for st in &statuses {
            for auto_created in [None, Some(true), Some(false)] {
                for (limit, offset) in [(50, 0), (2, 1), (3, 100)] {
                    let q = JobQuery {
                        printer_id: printer_id.clone(),
                        statuses: st.clone(),
                        auto_created,
                        limit,
                        offset,
                        ..Default::default()
                    };
                    let (jobs, n) = list(c, &q).unwrap();
                    let ids: Vec<String> = jobs.iter().map(|j| j.id.to_string()).collect();
                    assert_eq!((ids, n), brute(c, &q), "{q:?}");
                }
            }
        }
    }
}

#[test]
fn totals_and_pages_stay_exact_through_every_write() {
    let c = db();
    let mut ids = Vec::new();
    for i in 0..24 {
        let st = [
            JobStatus::Completed,
            JobStatus::Failed,
            JobStatus::Cancelled,
        ][i % 3];
        let j = job(
            ["p1", "p2", "p3"][i % 3 / 2 + i % 2],
            &format!("f{i}.3mf"),
            st,
            i % 4 == 0,
        );
        insert(&c, &j).unwrap();
        ids.push(j);
    }
    insert(&c, &job("p1", "open.3mf", JobStatus::Running, true)).unwrap();
    insert(&c, &job("p2", "open.3mf", JobStatus::Paused, false)).unwrap();
    check_every_filter(&c);

    // A status change, a move to another printer, auto_created dropped, a delete,
    // and a progress-only update (which must leave the counters alone).
    let mut a = ids[0].clone();
    a.status = JobStatus::Failed;
    update(&c, &a).unwrap();
    let mut b = ids[1].clone();
    b.printer_id = PrinterId::new("p2").unwrap();
    update(&c, &b).unwrap();
    let mut d = ids[4].clone();
    d.customer_info.clear();
    update(&c, &d).unwrap();
    assert!(delete(&c, ids[5].id.as_str()).unwrap());
    let mut e = ids[6].clone();
    e.progress = 42.0;
    update(&c, &e).unwrap();
    check_every_filter(&c);
}

#[test]
fn time_and_text_filters_count_rows() {
    let c = db();
    for i in 0..5 {
        insert(
            &c,
            &job("p1", &format!("f{i}.3mf"), JobStatus::Completed, true),
        )
        .unwrap();
    }
    let q = JobQuery {
        q: Some("f1".into()),
        statuses: vec![JobStatus::Completed, JobStatus::Failed],
        since: Some(time::now() - chrono::Duration::hours(1)),
        limit: 50,
        ..Default::default()
    };
    let (jobs, n) = list(&c, &q).unwrap();
    assert_eq!((jobs.len(), n), (1, 1));
    assert_eq!(jobs[0].filename, "f1.3mf");
}
