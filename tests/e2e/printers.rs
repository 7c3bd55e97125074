//! Issue 4 end to end: printers reach `GET /api/v1/printers` and `printer_status`.
