//! The PrusaLink driver (protocols.md §3). Being written.

use crate::printers::driver::DriverCtx;

pub async fn run(_ctx: DriverCtx) {
    std::future::pending::<()>().await;
}
