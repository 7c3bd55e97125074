//! Which role each request needs (issue 15), in one table so that a new endpoint is
//! admin-only until it is listed here: reading is `viewer`, changing jobs and pausing,
//! resuming or cancelling prints is `operator`, everything else that changes something
//! (settings, printers, certificate resets, keys) is `admin`.

use warp::http::Method;

use crate::config::Role;

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The dashboard's files and the API document: no key, whatever `[auth]` says.
    Public,
    /// `GET /api/v1/health`: readable without a key (only `status` and `version` then).
    Optional,
    /// A valid key with at least this role.
    Role(Role),
}

/// Printer actions an operator may take (`POST /api/v1/printers/{id}/<action>`).
const OPERATOR_PRINTER_ACTIONS: &[&str] = &["pause", "resume", "cancel"];

pub fn need(method: &Method, path: &str) -> Need {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let read = *method == Method::GET || *method == Method::HEAD;
    match segs.as_slice() {
        ["ws"] => Need::Role(Role::Viewer),
        // Prometheus metrics: read-only, a viewer key (issue 16).
        ["metrics"] => Need::Role(Role::Viewer),
        ["api", "v1", "health"] if read => Need::Optional,
        // The API document describes routes, never data: anyone may read it.
        ["api", "v1", "openapi.json"] if read => Need::Public,
        // Webhooks name where the farm's events go: admin's, reading included.
        ["api", "v1", "webhooks", ..] => Need::Role(Role::Admin),
        // Keys and who-am-I: the list is admin's, the caller's own role anyone's.
        ["api", "v1", "auth"] if read => Need::Role(Role::Viewer),
        ["api", "v1", "keys", ..] => Need::Role(Role::Admin),
        ["api", ..] if read => Need::Role(Role::Viewer),
        ["api", "v1", "jobs"] if *method == Method::POST => Need::Role(Role::Operator),
        ["api", "v1", "jobs", _] if *method == Method::PUT || *method == Method::DELETE => {
            Need::Role(Role::Operator)
        }
        ["api", "v1", "printers", _, action]
            if *method == Method::POST && OPERATOR_PRINTER_ACTIONS.contains(action) =>
        {
            Need::Role(Role::Operator)
        }
        ["api", ..] => Need::Role(Role::Admin),
        _ => Need::Public,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table() {
        const V: Need = Need::Role(Role::Viewer);
        const O: Need = Need::Role(Role::Operator);
        const A: Need = Need::Role(Role::Admin);
        use Need::{Optional, Public};
        let cases = [
            ("GET", "/", Public),
            ("GET", "/assets/app.js", Public),
            ("GET", "/ws", V),
            ("GET", "/metrics", V),
            ("GET", "/api/v1/webhooks", A),
            ("POST", "/api/v1/webhooks", A),
            ("DELETE", "/api/v1/webhooks/w", A),
            ("POST", "/api/v1/backup", A),
            ("GET", "/api/v1/health", Optional),
            ("GET", "/api/v1/openapi.json", Public),
            ("POST", "/api/v1/openapi.json", A),
            ("POST", "/api/v1/health", A),
            ("GET", "/api/v1/jobs", V),
            ("GET", "/api/v1/jobs/job_1", V),
            ("POST", "/api/v1/jobs", O),
            ("PUT", "/api/v1/jobs/job_1", O),
            ("DELETE", "/api/v1/jobs/job_1", O),
            ("PATCH", "/api/v1/jobs/job_1", A),
            ("GET", "/api/v1/printers", V),
            ("POST", "/api/v1/printers", A),
            ("PUT", "/api/v1/printers/p", A),
            ("DELETE", "/api/v1/printers/p", A),
            ("POST", "/api/v1/printers/p/pause", O),
            ("POST", "/api/v1/printers/p/resume", O),
            ("POST", "/api/v1/printers/p/cancel", O),
            ("POST", "/api/v1/printers/p/certificate/reset", A),
            ("GET", "/api/v1/settings", V),
            ("PUT", "/api/v1/settings", A),
            ("GET", "/api/v1/keys", A),
            ("POST", "/api/v1/keys", A),
            ("DELETE", "/api/v1/keys/k", A),
            ("GET", "/api/v1/auth", V),
            ("GET", "/api/v1/no-such-thing", V),
            ("POST", "/api/v1/backups", A),
        ];
        for (m, p, want) in cases {
            assert_eq!(need(&m.parse().unwrap(), p), want, "{m} {p}");
        }
    }
}
