//! What a printer actor tells the JobCreator: a new status, or a certificate to pin.

use actix::Message;

use crate::domain::{PrinterId, PrinterStatus};

/// What a printer actor tells the JobCreator.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum PrinterEvent {
    Status(Box<PrinterStatus>),
    /// A Bambu printer presented this certificate on first contact (no pin stored yet):
    /// store it as the printer's pin.
    CertificateSeen {
        printer_id: PrinterId,
        fingerprint_sha256_hex: String,
    },
}
