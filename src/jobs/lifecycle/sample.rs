//! A terse way to write a printer status in the lifecycle's tests: the fields the
//! lifecycle reads, turned into a real `PrinterStatus` by `status()`.

use crate::domain::{ConnectionState, PrinterId, PrinterState, PrinterStatus, PrinterType};
use crate::time::Timestamp;

#[derive(Clone, Debug)]
pub struct Sample {
    pub printer_type: PrinterType,
    pub connected: bool,
    pub state: PrinterState,
    pub filename: Option<String>,
    pub job_name: Option<String>,
    pub printer_job_id: Option<String>,
    pub printer_start_time: Option<Timestamp>,
    pub elapsed_s: Option<i64>,
    pub progress: Option<f64>,
    pub remaining_s: Option<i64>,
    pub first_after_connect: bool,
    pub at: Timestamp,
}

impl Sample {
    pub fn status(&self) -> PrinterStatus {
        let mut s = PrinterStatus::unknown(
            PrinterId::new("p").expect("a valid id"),
            self.printer_type,
            self.at,
        );
        s.connection = if self.connected {
            ConnectionState::Connected
        } else {
            ConnectionState::Disconnected
        };
        s.state = self.state;
        s.filename = self.filename.clone();
        s.job_name = self.job_name.clone();
        s.printer_job_id = self.printer_job_id.clone();
        s.printer_start_time = self.printer_start_time;
        s.elapsed_s = self.elapsed_s;
        s.progress = self.progress;
        s.remaining_s = self.remaining_s;
        s.first_after_connect = self.first_after_connect;
        s
    }
}
