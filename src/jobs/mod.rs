//! Jobs: the job book, which decides what every status and API request means for the
//! history (`book/`, on top of the lifecycle state machine in `lifecycle.rs`), and the
//! JobCreator, the one writer, a thin shell that writes the book's plans and publishes
//! their events.

pub mod book;
pub mod creator;
mod execute;
pub mod lifecycle;
pub mod maintenance;
pub mod printers;
mod setup;
#[cfg(test)]
mod shell_tests;

pub use crate::domain::{Job, JobPatch, NewJob};
pub use creator::{CancelledFromApi, JobCreator};
