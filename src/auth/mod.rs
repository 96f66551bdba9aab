//! Who is calling, for which tenant, allowed to do what.
//!
//! Every request carries either `Authorization: Bearer <JWT>` (HS256 with a
//! shared secret or RS256 with a public key; claims `sub`, `tenant_id`,
//! `permissions`, `exp`) or `X-API-Key: cipk_<env>_<32 chars>` (created by
//! `cip keys create`, stored only as a salted hash). Both resolve to a
//! [`Principal`], and the principal's tenant is the only tenant a request
//! can ever query.

pub mod jwt;
pub mod keys;

use std::collections::BTreeSet;

/// Permission to run analytics queries (every read of the API).
pub const ANALYTICS_READ: &str = "analytics:read";
/// Permission to create and delete saved reports.
pub const REPORTS_WRITE: &str = "reports:write";
/// Permission to send events to the streaming ingest (`POST /ingest/events`).
pub const INGEST_WRITE: &str = "ingest:write";
/// Permission to change commission schedules and splits, mark commissions
/// paid, reconcile statements and resolve discrepancies.
pub const COMMISSIONS_WRITE: &str = "commissions:write";

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub tenant_id: String,
    pub permissions: BTreeSet<String>,
}

impl Principal {
    pub fn can(&self, permission: &str) -> bool {
        self.permissions.contains(permission) || self.permissions.contains("*")
    }
}

/// Why a request is not authenticated. Messages are safe to show to clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing credentials: send Authorization: Bearer <token> or X-API-Key")]
    Missing,
    #[error("invalid credentials")]
    Invalid,
    #[error("credentials expired")]
    Expired,
    #[error("API key revoked")]
    Revoked,
}
