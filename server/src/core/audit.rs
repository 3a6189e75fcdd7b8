//! The admin audit log: every admin action (ban, unban, disband, announcement, and any admin
//! action added later) is recorded with its time, actor, action, target and outcome, in a
//! bounded store tree ([`crate::store::MAX_AUDIT`] newest entries), and listed by the admin API
//! (`GET /admin/v1/audit-logs`, AnyChat's `/admin/audit-logs`).
//!
//! Admin actions enter the core through [`Core::audited`], which runs the action and then
//! records it, refused and failed attempts included (their outcome is the error code's name).
//! The record is made durable before the answer goes out, so an action that was answered is in
//! the log after a crash. The actor is [`OPERATOR`]: the one admin credential is the
//! `[admin] token` of the configuration, whichever surface (the admin API, a dialect's admin
//! login) it was presented to.

use std::future::Future;

use parley_protocol::frames::ErrorInfo;

use super::{internal, Core, CoreResult};
use crate::clock::now_ms;
use crate::store::AuditRecord;

/// The actor of actions authorized by the `[admin] token`.
pub const OPERATOR: &str = "operator";
/// Entries per page at most.
pub const MAX_AUDIT_PAGE: usize = 500;
/// Bytes of an action's detail kept at most (an announcement's text is cut there).
const MAX_DETAIL: usize = 512;

/// What a page of the audit log is filtered by.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Entries numbered below this (`0`: from the newest).
    pub before: u64,
    /// Entries per page, 1..=[`MAX_AUDIT_PAGE`].
    pub limit: usize,
    /// Only this action.
    pub action: Option<String>,
    /// Only this actor.
    pub actor: Option<String>,
}

/// One entry as listed: its number and record.
pub type AuditEntry = (u64, AuditRecord);

fn cut(mut text: String) -> String {
    if text.len() > MAX_DETAIL {
        let mut end = MAX_DETAIL;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

impl Core {
    /// Runs the admin action `work` for `actor` and records it (`action` on `target`, with
    /// `detail`), whatever its outcome; answers what `work` answered. A record that cannot be
    /// written fails an action that succeeded: an admin action that is not audited is not
    /// answered as done.
    pub async fn audited<T>(
        &self,
        actor: &str,
        action: &str,
        target: String,
        detail: String,
        work: impl Future<Output = CoreResult<T>>,
    ) -> CoreResult<T> {
        let outcome = work.await;
        let record = AuditRecord {
            at_ms: now_ms(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            target,
            outcome: match &outcome {
                Ok(_) => "ok".to_owned(),
                Err(e) => outcome_name(e),
            },
            detail: cut(detail),
        };
        let written = self.store.append_audit(&record).map_err(internal);
        let durable = match written {
            Ok(_) => self.durable().await,
            Err(e) => Err(e),
        };
        if let Err(e) = durable {
            tracing::error!(action, error = %e.message, "an admin action could not be audited");
            return match outcome {
                Err(failed) => Err(failed),
                Ok(_) => Err(e),
            };
        }
        tracing::info!(actor, action, target = %record.target, outcome = %record.outcome, "admin action");
        outcome
    }

    /// A page of the audit log, newest first, and the `before` of the next page (`None`: no
    /// more). Walks at most the bounded log: run it off the runtime's workers.
    pub fn audit_log(&self, filter: &AuditFilter) -> CoreResult<(Vec<AuditEntry>, Option<u64>)> {
        let limit = filter.limit.clamp(1, MAX_AUDIT_PAGE);
        self.store
            .audit_page(filter.before, limit, |r| {
                filter.action.as_deref().is_none_or(|a| r.action == a)
                    && filter.actor.as_deref().is_none_or(|a| r.actor == a)
            })
            .map_err(internal)
    }
}

/// The error code's name, as the REST API spells it (`NOT_FOUND`, ...).
fn outcome_name(e: &ErrorInfo) -> String {
    let debug = format!("{:?}", e.code);
    // `NotFound` -> `NOT_FOUND`.
    let mut out = String::with_capacity(debug.len() + 4);
    for (i, c) in debug.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_and_details_read_well() {
        let e = ErrorInfo::new(parley_protocol::ErrorCode::NotFound, "x");
        assert_eq!(outcome_name(&e), "NOT_FOUND");
        assert_eq!(cut("a".repeat(600)).chars().count(), MAX_DETAIL + 1);
        assert!(cut("é".repeat(300)).len() <= MAX_DETAIL + 3);
    }
}
