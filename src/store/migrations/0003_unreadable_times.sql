-- printfarmd schema, version 3: job times no version can read become null.
--
-- Versions before this one stored printer-supplied times unchecked, and a start time
-- outside years 0-9999 was written as "+10000-..." or "-0001-...". Reading such a row
-- failed, and with it every list that held it, the job itself and its DELETE. Reads
-- now tolerate them (src/store/jobs.rs); this step clears the ones already stored, so
-- time filters and sorting see them as "no time" too. Every time printfarmd writes
-- starts with a four-digit year (src/time.rs), so nothing readable is touched.
-- Self-contained: it depends on no other step after version 2.

UPDATE jobs SET start_time = NULL
 WHERE start_time IS NOT NULL
   AND (typeof(start_time) <> 'text'
        OR start_time NOT GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T*');

UPDATE jobs SET end_time = NULL
 WHERE end_time IS NOT NULL
   AND (typeof(end_time) <> 'text'
        OR end_time NOT GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T*');

UPDATE jobs SET printer_start_time = NULL
 WHERE printer_start_time IS NOT NULL
   AND (typeof(printer_start_time) <> 'text'
        OR printer_start_time NOT GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T*');
