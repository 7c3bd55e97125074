//! The printers the daemon knows: those of daemon.toml and those added through the API.
//! Read by the API, the integrations and the JobCreator; written only by the setup
//! owner (`setup::Setup`: at start, and when the API adds, changes or removes one).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::config::PrinterConfig;
use crate::domain::PrinterId;

/// Who manages a printer's entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManagedBy {
    Config,
    Api,
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub config: PrinterConfig,
    pub managed_by: ManagedBy,
}

#[derive(Clone, Default)]
pub struct PrinterRegistry {
    inner: Arc<RwLock<BTreeMap<PrinterId, Entry>>>,
}

impl PrinterRegistry {
    pub fn from_config(printers: &[PrinterConfig]) -> Self {
        let r = Self::default();
        for p in printers {
            r.insert(Entry {
                config: p.clone(),
                managed_by: ManagedBy::Config,
            });
        }
        r
    }

    pub fn insert(&self, e: Entry) {
        self.inner
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(e.config.id.clone(), e);
    }

    pub fn remove(&self, id: &PrinterId) -> Option<Entry> {
        self.inner
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
    }

    pub fn get(&self, id: &str) -> Option<Entry> {
        let id = PrinterId::new(id).ok()?;
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    pub fn all(&self) -> Vec<Entry> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
