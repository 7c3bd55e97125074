//! Jobs: the model every client sees and the JobCreator, the one writer of the history.

pub(crate) mod auto;
pub mod creator;
pub mod group;
pub mod lifecycle;
pub mod maintenance;
pub mod model;
pub mod printers;

pub use creator::JobCreator;
pub use model::{Job, JobPatch, NewJob};
pub use printers::CancelledFromApi;
