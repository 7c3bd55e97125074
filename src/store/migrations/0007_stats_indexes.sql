-- printfarmd schema, version 7: indexes for statistics and the end_reason filter
-- (issue 17).
--
-- GET /api/v1/stats reads the jobs of a window as two index ranges: those that ended
-- at or after its start (end_time, or printer_id then end_time when printers are
-- named), and those with no end time (open, pending). Without these it read every
-- row of the history. GET /api/v1/jobs?end_reason= walks the jobs with a reason only:
-- most jobs have none, so the index is partial and small.

CREATE INDEX jobs_by_end_time     ON jobs (end_time);
CREATE INDEX jobs_by_printer_end  ON jobs (printer_id, end_time);
CREATE INDEX jobs_by_end_reason   ON jobs (end_reason, seq) WHERE end_reason IS NOT NULL;
