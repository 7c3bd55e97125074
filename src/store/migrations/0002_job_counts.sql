-- printfarmd schema, version 2: exact job counts for total_count without counting rows.
--
-- GET /api/v1/jobs returns total_count. Counting the matching rows costs time in
-- proportion to the matches: 80 ms for status=completed over 1,000,000 jobs, against a
-- target of 5 ms for the whole request. SQLite's b-trees keep no counts, so no index can
-- make that cheaper. Instead these tables hold the number of jobs per combination of the
-- list filters that are equalities (printer_id, status, auto_created), kept exact by
-- triggers in the same transaction as the change to jobs. A total for any mix of those
-- filters is then a sum over at most 14 rows. Filters on time or text (since, until, q)
-- still count rows (src/store/jobs.rs).

-- Per printer: at most 7 statuses x 2 rows per printer.
CREATE TABLE job_counts (
    printer_id      TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    auto_created    INTEGER NOT NULL,
    n               INTEGER NOT NULL,
    PRIMARY KEY (printer_id, status, auto_created)
) WITHOUT ROWID;

-- Farm-wide: at most 14 rows, so a filter without printer_id never sums per printer.
CREATE TABLE job_totals (
    status          TEXT    NOT NULL,
    auto_created    INTEGER NOT NULL,
    n               INTEGER NOT NULL,
    PRIMARY KEY (status, auto_created)
) WITHOUT ROWID;

INSERT INTO job_counts (printer_id, status, auto_created, n)
    SELECT printer_id, status, auto_created, count(*) FROM jobs
    GROUP BY printer_id, status, auto_created;
INSERT INTO job_totals (status, auto_created, n)
    SELECT status, auto_created, count(*) FROM jobs GROUP BY status, auto_created;

CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs
BEGIN
    INSERT INTO job_counts (printer_id, status, auto_created, n)
        VALUES (NEW.printer_id, NEW.status, NEW.auto_created, 1)
        ON CONFLICT DO UPDATE SET n = n + 1;
    INSERT INTO job_totals (status, auto_created, n)
        VALUES (NEW.status, NEW.auto_created, 1)
        ON CONFLICT DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs
BEGIN
    UPDATE job_counts SET n = n - 1
        WHERE printer_id = OLD.printer_id AND status = OLD.status
          AND auto_created = OLD.auto_created;
    UPDATE job_totals SET n = n - 1
        WHERE status = OLD.status AND auto_created = OLD.auto_created;
END;

-- Progress updates (the frequent kind) change none of the three, and skip the trigger.
CREATE TRIGGER jobs_count_update AFTER UPDATE OF printer_id, status, customer_info ON jobs
WHEN OLD.printer_id IS NOT NEW.printer_id OR OLD.status IS NOT NEW.status
  OR OLD.auto_created IS NOT NEW.auto_created
BEGIN
    UPDATE job_counts SET n = n - 1
        WHERE printer_id = OLD.printer_id AND status = OLD.status
          AND auto_created = OLD.auto_created;
    UPDATE job_totals SET n = n - 1
        WHERE status = OLD.status AND auto_created = OLD.auto_created;
    INSERT INTO job_counts (printer_id, status, auto_created, n)
        VALUES (NEW.printer_id, NEW.status, NEW.auto_created, 1)
        ON CONFLICT DO UPDATE SET n = n + 1;
    INSERT INTO job_totals (status, auto_created, n)
        VALUES (NEW.status, NEW.auto_created, 1)
        ON CONFLICT DO UPDATE SET n = n + 1;
END;
