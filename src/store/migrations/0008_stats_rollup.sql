-- printfarmd schema, version 8: statistics kept ahead of time (issue 17).
--
-- GET /api/v1/stats over a year used to read every job of the window (seconds on a
-- million jobs). These tables hold the window's sums ahead of time, kept exact by
-- triggers in the same transaction as every change to `jobs` (the daemon's writes,
-- PUT/DELETE /jobs, retention, and the sqlite3 CLI alike: no application function
-- is used). src/store/stats/roll.rs reads them; README "### Statistics" says how.
--
-- Only "rolled" jobs are summed: ended (completed, failed, cancelled, unknown), with
-- an end time and a start (or, never started, creation) time in the daemon's own
-- format, starting in 1970 or later, spanning at most 8 calendar days (7 midnights),
-- with text printer and file names and an integer (or no) actual_duration. Every other
-- job (open ones, ended ones without an end time, and any odd row) is read from
-- `jobs` at each question, as before: those without an end time through the
-- end_time index, the rest listed in `stats_raw`.

-- Duration histogram buckets: 0-63 s one bucket a second, then 1/32 octave (about
-- 2.2 % wide) up to 2^32 s. A job's bucket is the one with the largest lo <= its
-- duration; the p90 is read as the middle of its bucket (within about 1.1 %).
CREATE TABLE duration_buckets (
    lo      INTEGER PRIMARY KEY,
    bucket  INTEGER NOT NULL
);
WITH RECURSIVE exact(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM exact WHERE i < 63)
INSERT INTO duration_buckets (lo, bucket) SELECT i, i FROM exact;
WITH RECURSIVE oct(j, x) AS (
    SELECT 0, 64.0
    UNION ALL
    SELECT j + 1, x * 1.0218971486541166 FROM oct WHERE x * 1.0218971486541166 < 4294967296.0
)
INSERT INTO duration_buckets (lo, bucket)
    SELECT CAST(x AS INTEGER) + (x > CAST(x AS INTEGER)), 64 + j FROM oct;

-- Failure and cancel reasons, numbered (the sums name them by number).
CREATE TABLE stats_reasons (
    id      INTEGER PRIMARY KEY,
    reason  TEXT NOT NULL UNIQUE
);

-- Fan-out of one job into sum rows: kind 0, 1, 2 = the block of 1, 8, 64 days holding
-- its end day; kind 3 = each day it touches (i = 0..7 days after its start day); kind
-- 4 = each ISO week it touches (i = 0, 1).
CREATE TABLE stats_fanout (
    kind    INTEGER NOT NULL,
    i       INTEGER NOT NULL,
    PRIMARY KEY (kind, i)
) WITHOUT ROWID;
INSERT INTO stats_fanout VALUES (0, 0), (1, 0), (2, 0), (3, 0), (3, 1), (3, 2), (3, 3),
    (3, 4), (3, 5), (3, 6), (3, 7), (4, 0), (4, 1);

-- The sums. scope 0 = the farm (key ''), 1 = one printer (key = printer_id), 2 = one
-- file (key = filename; kinds 0-2 only). blk: the block number (end day >> 0, 3, 6)
-- for kinds 0-2, the day (Unix day) for kind 3, the week (Monday-based, week 0 holds
-- 1970-01-01) for kind 4. print_s: whole print time for kinds 0-2, the part inside
-- the day or week for kinds 3-4. hist: {"bucket": jobs}; reasons: {"reason id": jobs}.
CREATE TABLE stats_roll (
    kind     INTEGER NOT NULL,
    scope    INTEGER NOT NULL,
    blk      INTEGER NOT NULL,
    key      TEXT    NOT NULL,
    n        INTEGER NOT NULL DEFAULT 0,
    c0       INTEGER NOT NULL DEFAULT 0,   -- completed
    c1       INTEGER NOT NULL DEFAULT 0,   -- failed
    c2       INTEGER NOT NULL DEFAULT 0,   -- cancelled
    c3       INTEGER NOT NULL DEFAULT 0,   -- unknown
    auto     INTEGER NOT NULL DEFAULT 0,
    print_s  INTEGER NOT NULL DEFAULT 0,
    dur_n    INTEGER NOT NULL DEFAULT 0,
    dur_sum  INTEGER NOT NULL DEFAULT 0,
    hist     TEXT    NOT NULL DEFAULT '{}',
    reasons  TEXT    NOT NULL DEFAULT '{}',
    PRIMARY KEY (kind, scope, blk, key)
) WITHOUT ROWID;

-- One row per midnight a rolled job crosses (day = the Unix day that midnight begins).
CREATE TABLE job_crossings (
    day  INTEGER NOT NULL,
    seq  INTEGER NOT NULL,
    PRIMARY KEY (day, seq)
) WITHOUT ROWID;

-- Jobs with an end time that are not rolled (read raw at every question).
CREATE TABLE stats_raw (seq INTEGER PRIMARY KEY);

-- How the statistics read one job: the single definition the triggers, the backfill
-- and the queries share. `ok` = rolled.
CREATE VIEW stats_jobs AS
SELECT seq, printer_id, filename, auto, reason, has_end, st, s, en, sd, ed, ok,
       CASE WHEN st IS NOT NULL THEN en - s ELSE 0 END AS print_s,
       dur,
       (SELECT bucket FROM duration_buckets WHERE lo <= dur ORDER BY lo DESC LIMIT 1) AS bucket,
       (SELECT id FROM stats_reasons WHERE stats_reasons.reason = x.reason) AS reason_id,
       status = 'completed' AS c0, status = 'failed' AS c1,
       status = 'cancelled' AS c2, status = 'unknown' AS c3
FROM (
    SELECT *, coalesce(status IN ('completed', 'failed', 'cancelled', 'unknown')
                  AND typed AND et IS NOT NULL AND s IS NOT NULL AND s >= 0
                  AND (start_time IS NULL OR st IS NOT NULL) AND ed - sd <= 7, 0) AS ok
    FROM (
        SELECT *, s / 86400 AS sd, en / 86400 AS ed
        FROM (
            SELECT *, max(et, s) AS en,
                   min(CASE WHEN ad >= 0 THEN ad
                            WHEN st IS NOT NULL AND et - st >= 0 THEN et - st END,
                       4294967295) AS dur
            FROM (
                SELECT *, coalesce(st, cr) AS s
                FROM (
                    SELECT seq, printer_id, filename, status, start_time,
                           auto_created AS auto, actual_duration AS ad,
                           end_time IS NOT NULL AS has_end,
                           CASE WHEN status IN ('failed', 'cancelled')
                                 AND typeof(end_reason) = 'text' THEN end_reason END AS reason,
                           CASE WHEN typeof(start_time) = 'text' AND start_time =
                                strftime('%Y-%m-%dT%H:%M:%fZ', start_time, '+0 seconds')
                                THEN unixepoch(start_time) END AS st,
                           CASE WHEN typeof(created_at) = 'text' AND created_at =
                                strftime('%Y-%m-%dT%H:%M:%fZ', created_at, '+0 seconds')
                                THEN unixepoch(created_at) END AS cr,
                           CASE WHEN typeof(end_time) = 'text' AND end_time =
                                strftime('%Y-%m-%dT%H:%M:%fZ', end_time, '+0 seconds')
                                THEN unixepoch(end_time) END AS et,
                           typeof(printer_id) = 'text' AND typeof(filename) = 'text'
                               AND typeof(actual_duration) IN ('null', 'integer')
                               AND typeof(end_reason) IN ('null', 'text') AS typed
                    FROM jobs)))) ) AS x;

-- The sum rows one rolled job adds to, with what it adds.
CREATE VIEW stats_contrib AS
SELECT j.seq, f.kind, sc.scope,
       CASE f.kind WHEN 0 THEN j.ed WHEN 1 THEN j.ed >> 3 WHEN 2 THEN j.ed >> 6
                   WHEN 3 THEN j.sd + f.i ELSE (j.sd + 3) / 7 + f.i END AS blk,
       CASE sc.scope WHEN 0 THEN '' WHEN 1 THEN j.printer_id ELSE j.filename END AS key,
       j.c0, j.c1, j.c2, j.c3, j.auto,
       CASE WHEN f.kind < 3 OR j.st IS NULL THEN j.print_s
            WHEN f.kind = 3 THEN max(0, min(j.en, (j.sd + f.i + 1) * 86400)
                                       - max(j.s, (j.sd + f.i) * 86400))
            ELSE max(0, min(j.en, ((j.sd + 3) / 7 + f.i + 1) * 604800 - 259200)
                        - max(j.s, ((j.sd + 3) / 7 + f.i) * 604800 - 259200)) END AS print_s,
       j.dur, j.bucket, j.reason_id
FROM stats_jobs j, stats_fanout f,
     (SELECT 0 AS scope UNION ALL SELECT 1 UNION ALL SELECT 2) AS sc
WHERE j.ok
  AND (sc.scope < 2 OR f.kind < 3)
  AND (f.kind < 3 OR (f.kind = 3 AND f.i <= j.ed - j.sd)
       OR (f.kind = 4 AND f.i <= (j.ed + 3) / 7 - (j.sd + 3) / 7));

-- The triggers: a new row adds its share, a deleted row takes it back, and a change to
-- any column the statistics read takes the old row's share back (before) and adds the
-- new one's (after). Progress updates touch none of those columns and skip them.
-- (Rows deleted by a REPLACE conflict fire no delete trigger unless recursive_triggers
-- is on; printfarmd never writes jobs with REPLACE.)
CREATE TRIGGER jobs_stats_insert AFTER INSERT ON jobs
BEGIN
    INSERT OR IGNORE INTO stats_reasons (reason)
        SELECT reason FROM stats_jobs WHERE seq = NEW.seq AND ok AND reason IS NOT NULL;
    INSERT OR IGNORE INTO stats_roll (kind, scope, blk, key)
        SELECT kind, scope, blk, key FROM stats_contrib WHERE seq = NEW.seq;
    UPDATE stats_roll SET n = n + 1, c0 = stats_roll.c0 + x.c0, c1 = stats_roll.c1 + x.c1, c2 = stats_roll.c2 + x.c2,
            c3 = stats_roll.c3 + x.c3, auto = stats_roll.auto + x.auto, print_s = stats_roll.print_s + x.print_s,
            dur_n = dur_n + (x.dur IS NOT NULL), dur_sum = dur_sum + coalesce(x.dur, 0),
            hist = CASE WHEN x.bucket IS NULL THEN hist
                ELSE json_set(hist, '$."' || x.bucket || '"',
                              coalesce(json_extract(hist, '$."' || x.bucket || '"'), 0) + 1) END,
            reasons = CASE WHEN x.reason_id IS NULL THEN reasons
                ELSE json_set(reasons, '$."' || x.reason_id || '"',
                              coalesce(json_extract(reasons, '$."' || x.reason_id || '"'), 0) + 1) END
        FROM (SELECT * FROM stats_contrib WHERE seq = NEW.seq) AS x
        WHERE stats_roll.kind = x.kind AND stats_roll.scope = x.scope
          AND stats_roll.blk = x.blk AND stats_roll.key = x.key;
    INSERT OR IGNORE INTO job_crossings (day, seq)
        SELECT j.sd + f.i, j.seq FROM stats_jobs j, stats_fanout f
        WHERE j.seq = NEW.seq AND j.ok AND f.kind = 3 AND f.i BETWEEN 1 AND j.ed - j.sd;
    INSERT OR IGNORE INTO stats_raw (seq)
        SELECT seq FROM stats_jobs WHERE seq = NEW.seq AND NOT ok AND has_end;
END;

CREATE TRIGGER jobs_stats_delete BEFORE DELETE ON jobs
BEGIN
    UPDATE stats_roll SET n = n - 1, c0 = stats_roll.c0 - x.c0, c1 = stats_roll.c1 - x.c1, c2 = stats_roll.c2 - x.c2,
            c3 = stats_roll.c3 - x.c3, auto = stats_roll.auto - x.auto, print_s = stats_roll.print_s - x.print_s,
            dur_n = dur_n - (x.dur IS NOT NULL), dur_sum = dur_sum - coalesce(x.dur, 0),
            hist = CASE WHEN x.bucket IS NULL THEN hist
                WHEN json_extract(hist, '$."' || x.bucket || '"') > 1
                THEN json_set(hist, '$."' || x.bucket || '"',
                              json_extract(hist, '$."' || x.bucket || '"') - 1)
                ELSE json_remove(hist, '$."' || x.bucket || '"') END,
            reasons = CASE WHEN x.reason_id IS NULL THEN reasons
                WHEN json_extract(reasons, '$."' || x.reason_id || '"') > 1
                THEN json_set(reasons, '$."' || x.reason_id || '"',
                              json_extract(reasons, '$."' || x.reason_id || '"') - 1)
                ELSE json_remove(reasons, '$."' || x.reason_id || '"') END
        FROM (SELECT * FROM stats_contrib WHERE seq = OLD.seq) AS x
        WHERE stats_roll.kind = x.kind AND stats_roll.scope = x.scope
          AND stats_roll.blk = x.blk AND stats_roll.key = x.key;
    DELETE FROM stats_roll WHERE n = 0 AND (kind, scope, blk, key) IN
        (SELECT kind, scope, blk, key FROM stats_contrib WHERE seq = OLD.seq);
    DELETE FROM job_crossings WHERE (day, seq) IN
        (SELECT j.sd + f.i, j.seq FROM stats_jobs j, stats_fanout f
         WHERE j.seq = OLD.seq AND j.ok AND f.kind = 3 AND f.i BETWEEN 1 AND j.ed - j.sd);
    DELETE FROM stats_raw WHERE seq = OLD.seq;
END;

CREATE TRIGGER jobs_stats_update_old BEFORE UPDATE OF seq, printer_id, filename, status, start_time, end_time, created_at, actual_duration,
    end_reason, customer_info ON jobs
BEGIN
    UPDATE stats_roll SET n = n - 1, c0 = stats_roll.c0 - x.c0, c1 = stats_roll.c1 - x.c1, c2 = stats_roll.c2 - x.c2,
            c3 = stats_roll.c3 - x.c3, auto = stats_roll.auto - x.auto, print_s = stats_roll.print_s - x.print_s,
            dur_n = dur_n - (x.dur IS NOT NULL), dur_sum = dur_sum - coalesce(x.dur, 0),
            hist = CASE WHEN x.bucket IS NULL THEN hist
                WHEN json_extract(hist, '$."' || x.bucket || '"') > 1
                THEN json_set(hist, '$."' || x.bucket || '"',
                              json_extract(hist, '$."' || x.bucket || '"') - 1)
                ELSE json_remove(hist, '$."' || x.bucket || '"') END,
            reasons = CASE WHEN x.reason_id IS NULL THEN reasons
                WHEN json_extract(reasons, '$."' || x.reason_id || '"') > 1
                THEN json_set(reasons, '$."' || x.reason_id || '"',
                              json_extract(reasons, '$."' || x.reason_id || '"') - 1)
                ELSE json_remove(reasons, '$."' || x.reason_id || '"') END
        FROM (SELECT * FROM stats_contrib WHERE seq = OLD.seq) AS x
        WHERE stats_roll.kind = x.kind AND stats_roll.scope = x.scope
          AND stats_roll.blk = x.blk AND stats_roll.key = x.key;
    DELETE FROM stats_roll WHERE n = 0 AND (kind, scope, blk, key) IN
        (SELECT kind, scope, blk, key FROM stats_contrib WHERE seq = OLD.seq);
    DELETE FROM job_crossings WHERE (day, seq) IN
        (SELECT j.sd + f.i, j.seq FROM stats_jobs j, stats_fanout f
         WHERE j.seq = OLD.seq AND j.ok AND f.kind = 3 AND f.i BETWEEN 1 AND j.ed - j.sd);
    DELETE FROM stats_raw WHERE seq = OLD.seq;
END;

CREATE TRIGGER jobs_stats_update_new AFTER UPDATE OF seq, printer_id, filename, status, start_time, end_time, created_at, actual_duration,
    end_reason, customer_info ON jobs
BEGIN
    INSERT OR IGNORE INTO stats_reasons (reason)
        SELECT reason FROM stats_jobs WHERE seq = NEW.seq AND ok AND reason IS NOT NULL;
    INSERT OR IGNORE INTO stats_roll (kind, scope, blk, key)
        SELECT kind, scope, blk, key FROM stats_contrib WHERE seq = NEW.seq;
    UPDATE stats_roll SET n = n + 1, c0 = stats_roll.c0 + x.c0, c1 = stats_roll.c1 + x.c1, c2 = stats_roll.c2 + x.c2,
            c3 = stats_roll.c3 + x.c3, auto = stats_roll.auto + x.auto, print_s = stats_roll.print_s + x.print_s,
            dur_n = dur_n + (x.dur IS NOT NULL), dur_sum = dur_sum + coalesce(x.dur, 0),
            hist = CASE WHEN x.bucket IS NULL THEN hist
                ELSE json_set(hist, '$."' || x.bucket || '"',
                              coalesce(json_extract(hist, '$."' || x.bucket || '"'), 0) + 1) END,
            reasons = CASE WHEN x.reason_id IS NULL THEN reasons
                ELSE json_set(reasons, '$."' || x.reason_id || '"',
                              coalesce(json_extract(reasons, '$."' || x.reason_id || '"'), 0) + 1) END
        FROM (SELECT * FROM stats_contrib WHERE seq = NEW.seq) AS x
        WHERE stats_roll.kind = x.kind AND stats_roll.scope = x.scope
          AND stats_roll.blk = x.blk AND stats_roll.key = x.key;
    INSERT OR IGNORE INTO job_crossings (day, seq)
        SELECT j.sd + f.i, j.seq FROM stats_jobs j, stats_fanout f
        WHERE j.seq = NEW.seq AND j.ok AND f.kind = 3 AND f.i BETWEEN 1 AND j.ed - j.sd;
    INSERT OR IGNORE INTO stats_raw (seq)
        SELECT seq FROM stats_jobs WHERE seq = NEW.seq AND NOT ok AND has_end;
END;

-- Backfill.
INSERT INTO stats_reasons (reason)
    SELECT DISTINCT reason FROM stats_jobs WHERE ok AND reason IS NOT NULL;
CREATE TEMP TABLE stats_backfill AS SELECT * FROM stats_contrib;
INSERT INTO stats_roll (kind, scope, blk, key, n, c0, c1, c2, c3, auto, print_s, dur_n, dur_sum)
    SELECT kind, scope, blk, key, count(*), sum(c0), sum(c1), sum(c2), sum(c3), sum(auto),
           sum(print_s), count(dur), coalesce(sum(dur), 0)
    FROM stats_backfill GROUP BY kind, scope, blk, key;
UPDATE stats_roll SET hist = h.js
    FROM (SELECT kind, scope, blk, key, json_group_object(bucket, m) AS js
          FROM (SELECT kind, scope, blk, key, bucket, count(*) AS m FROM stats_backfill
                WHERE bucket IS NOT NULL GROUP BY kind, scope, blk, key, bucket)
          GROUP BY kind, scope, blk, key) AS h
    WHERE stats_roll.kind = h.kind AND stats_roll.scope = h.scope
      AND stats_roll.blk = h.blk AND stats_roll.key = h.key;
UPDATE stats_roll SET reasons = h.js
    FROM (SELECT kind, scope, blk, key, json_group_object(reason_id, m) AS js
          FROM (SELECT kind, scope, blk, key, reason_id, count(*) AS m FROM stats_backfill
                WHERE reason_id IS NOT NULL GROUP BY kind, scope, blk, key, reason_id)
          GROUP BY kind, scope, blk, key) AS h
    WHERE stats_roll.kind = h.kind AND stats_roll.scope = h.scope
      AND stats_roll.blk = h.blk AND stats_roll.key = h.key;
DROP TABLE stats_backfill;
INSERT INTO job_crossings (day, seq)
    SELECT j.sd + f.i, j.seq FROM stats_jobs j, stats_fanout f
    WHERE j.ok AND f.kind = 3 AND f.i BETWEEN 1 AND j.ed - j.sd;
INSERT INTO stats_raw (seq) SELECT seq FROM stats_jobs WHERE NOT ok AND has_end;

-- Named printers' rows: one range per printer (the primary key groups a block's rows of
-- every printer together). Its columns never change in place, so the triggers' updates of
-- the sums leave it alone; only a new or emptied row touches it.
CREATE INDEX stats_roll_by_key ON stats_roll (kind, scope, key, blk);
