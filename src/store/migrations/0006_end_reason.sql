-- printfarmd schema, version 3: why a job ended, when the daemon knows more than its
-- status says.
--
-- A job cancelled through POST /api/v1/printers/{id}/cancel ends `cancelled` like any
-- other cancel; `end_reason` = 'cancelled from printfarmd' tells them apart (issue 22).
-- NULL for every other job, and for every job written before this version. The API
-- shows the key only when it is set.

ALTER TABLE jobs ADD COLUMN end_reason TEXT;
