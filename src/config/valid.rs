//! A printer entry that passed `PrinterConfig::validate`: built only by `parse`, so the
//! setup owner and the store take it without checking again. The three doors a printer
//! comes in by all parse: the config file (`Config::validate`), the API
//! (`POST`/`PUT /api/v1/printers`) and the store reading back the printers saved through
//! the API.

use std::ops::Deref;

use super::PrinterConfig;

#[derive(Clone, Debug)]
pub struct ValidPrinter(PrinterConfig);

impl ValidPrinter {
    /// The entry, if it holds what its type needs (the message names the printer and the
    /// key, never a value).
    pub fn parse(p: PrinterConfig) -> Result<Self, String> {
        p.validate()?;
        Ok(Self(p))
    }

    pub fn into_inner(self) -> PrinterConfig {
        self.0
    }
}

impl Deref for ValidPrinter {
    type Target = PrinterConfig;
    fn deref(&self) -> &PrinterConfig {
        &self.0
    }
}

impl TryFrom<PrinterConfig> for ValidPrinter {
    type Error = String;
    fn try_from(p: PrinterConfig) -> Result<Self, String> {
        Self::parse(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(extra: &str) -> PrinterConfig {
        serde_json::from_str(&format!(
            r#"{{"id": "b1", "type": "bambu", "host": "10.0.0.2", "serial": "S1"{extra}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn only_a_complete_entry_parses() {
        let e = ValidPrinter::parse(entry("")).unwrap_err();
        assert!(e.contains("b1") && e.contains("access_code"), "{e}");
        let p = ValidPrinter::parse(entry(r#", "access_code": "0123""#)).unwrap();
        assert_eq!(p.id.as_str(), "b1");
        assert_eq!(p.into_inner().serial.as_deref(), Some("S1"));
    }
}
