//! The seed dialects: other IM systems' HTTP APIs and WebSocket protocols, served faithfully
//! enough that their existing clients work against Parley when pointed at
//! `http://HOST:PORT/compat/<name>` (docs/dialects.md).
//!
//! A dialect is an adapter over the request service, exactly like the REST API (`/im/v1`) and
//! the WebSocket fallback: it parses the other system's paths, bodies and frames into protocol
//! [`Request`]s, runs them with [`Backend::execute`] as the caller its credentials name, and
//! renders the [`Response`]s and the pushes of sessions opened with [`Backend::open_session`] in
//! the other system's envelopes, field names, id and time forms, statuses and error codes. No
//! feature logic lives in a dialect: what one needs and the core lacks is added to the core
//! (GoChat's world room is `Request::JoinWorld`), so every dialect and the native clients see the
//! same accounts, conversations and messages.
//!
//! This module holds what the dialects share: the mount table ([`router`], one prefix each under
//! `/compat`), their configuration ([`CompatConfig`], the `[compat]` section), the field rules
//! every request passes ([`call`]), and, with the `contract` feature, the contract-test harness
//! ([`contract`]) that validates real responses against a dialect's OpenAPI document.

pub mod anychat;
pub mod extract;
pub mod flutter;
pub mod gochat;
pub mod imsys;
pub mod socket;
pub mod time;
pub mod wetty;

#[cfg(feature = "contract")]
pub mod contract;

use std::sync::Arc;

use axum::Router;
use parley_protocol::frames::{ErrorInfo, Request, Response};
use parley_protocol::session::Identity;
use parley_protocol::ErrorCode;
use serde::{Deserialize, Serialize};

use crate::Backend;

/// Where the dialects live on the public HTTP surface.
pub const PREFIX: &str = "/compat";

/// The `[compat]` section of the server's configuration: which dialects are served, and how far
/// the header-trust dialects may trust a gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompatConfig {
    /// Serve AnyChat under `/compat/anychat` (docs/dialects.md).
    pub anychat: bool,
    /// Serve GoChat under `/compat/gochat` (docs/dialects.md).
    pub gochat: bool,
    /// Serve the Flutter/Rust IM under `/compat/flutter` (docs/dialects.md).
    pub flutter: bool,
    /// Serve IM系统 under `/compat/imsys` (docs/dialects.md).
    pub imsys: bool,
    /// Serve Wetty Chat under `/compat/wetty` (docs/dialects.md).
    pub wetty: bool,
    /// Trust a bare user id from an `X-User-ID` / `X-User-Id` header or a `?uid=` parameter in
    /// the dialects whose systems authenticated that way (IM系统, Wetty Chat). Off: those places
    /// must carry a valid access token of ours instead. Turn it on only where a gateway in front
    /// of the server authenticates users and sets the header itself (and strips it from what
    /// clients send); otherwise anyone can act as anyone. GoChat authenticates with bearer
    /// tokens and ignores it.
    pub trust_user_header: bool,
    /// Listeners of their own that serve one dialect at the root (`/api/...` rather than
    /// `/compat/<name>/api/...`), for clients whose paths cannot be prefixed: the `[compat.root]`
    /// table, dialect name to addresses. Each serves plain HTTP, or HTTPS with the server's
    /// certificate when `http.tls` is on. Empty by default.
    pub root: RootListeners,
}

/// The `[compat.root]` table: addresses that serve one dialect each at the root.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RootListeners {
    /// AnyChat at the root of these addresses.
    pub anychat: Vec<std::net::SocketAddr>,
    /// The Flutter/Rust IM at the root of these addresses.
    pub flutter: Vec<std::net::SocketAddr>,
    /// GoChat at the root of these addresses.
    pub gochat: Vec<std::net::SocketAddr>,
    /// IM系统 at the root of these addresses.
    pub imsys: Vec<std::net::SocketAddr>,
    /// Wetty Chat at the root of these addresses.
    pub wetty: Vec<std::net::SocketAddr>,
}

impl CompatConfig {
    /// Every dialect with root listeners, as (name, whether it is enabled, addresses).
    fn roots(&self) -> [(&'static str, bool, &[std::net::SocketAddr]); 5] {
        let r = &self.root;
        [
            ("anychat", self.anychat, &r.anychat),
            ("flutter", self.flutter, &r.flutter),
            ("gochat", self.gochat, &r.gochat),
            ("imsys", self.imsys, &r.imsys),
            ("wetty", self.wetty, &r.wetty),
        ]
    }

    /// Root listeners only for enabled dialects.
    pub fn validate(&self) -> Result<(), String> {
        for (name, on, addrs) in self.roots() {
            if !on && !addrs.is_empty() {
                return Err(format!(
                    "compat.root.{name} has addresses but compat.{name} is off"
                ));
            }
        }
        Ok(())
    }

    /// The root listeners to bind, as (dialect name, address), in a fixed order.
    pub fn root_addrs(&self) -> Vec<(&'static str, std::net::SocketAddr)> {
        self.roots()
            .into_iter()
            .filter(|(_, on, _)| *on)
            .flat_map(|(name, _, addrs)| addrs.iter().map(move |a| (name, *a)))
            .collect()
    }
}

impl Default for CompatConfig {
    fn default() -> CompatConfig {
        CompatConfig {
            anychat: true,
            gochat: true,
            flutter: true,
            imsys: true,
            wetty: true,
            trust_user_header: false,
            root: RootListeners::default(),
        }
    }
}

/// The dialect `name` alone, at the root (for a listener of its own: [`RootListeners`]): exactly
/// the paths its clients use, nothing else of the server's. `None` for an unknown name.
pub fn root_router(name: &str, backend: Arc<dyn Backend>) -> Option<Router> {
    Some(match name {
        "anychat" => anychat::router(backend),
        "flutter" => flutter::router(backend),
        "gochat" => gochat::router(backend),
        "imsys" => imsys::router(backend),
        "wetty" => wetty::router(backend),
        _ => return None,
    })
}

/// Every enabled dialect, each mounted under its prefix (`/compat/<name>`), to merge into the
/// public router. The dialects are listed in docs/dialects.md; [`root_router`] serves one at
/// the root of a listener of its own.
pub fn router(backend: Arc<dyn Backend>) -> Router {
    let config = backend.compat();
    let mut router = Router::new();
    if config.anychat {
        router = router.nest(
            &format!("{PREFIX}/{}", anychat::NAME),
            anychat::router(backend.clone()),
        );
    }
    if config.gochat {
        router = router.nest(
            &format!("{PREFIX}/{}", gochat::NAME),
            gochat::router(backend.clone()),
        );
    }
    if config.flutter {
        router = router.nest(
            &format!("{PREFIX}/{}", flutter::NAME),
            flutter::router(backend.clone()),
        );
    }
    if config.wetty {
        router = router.nest(
            &format!("{PREFIX}/{}", wetty::NAME),
            wetty::router(backend.clone()),
        );
    }
    if config.imsys {
        router = router.nest(&format!("{PREFIX}/{}", imsys::NAME), imsys::router(backend));
    }
    router
}

/// Runs `request` as `caller` (`None`: anonymous) and gives its answer or its error. The request
/// first goes through the frame codec (encode, then decode with validation), so a dialect is
/// held to exactly the field rules of a binary frame, like the REST API.
pub async fn call(
    backend: &dyn Backend,
    caller: Option<Identity>,
    request: Request,
) -> Result<Response, ErrorInfo> {
    call_from(backend, caller, request, None).await
}

/// [`call`] for a request from `peer` (an anonymous caller's password attempts are throttled
/// per source address: logins and registrations pass it).
pub async fn call_from(
    backend: &dyn Backend,
    caller: Option<Identity>,
    request: Request,
    peer: Option<std::net::SocketAddr>,
) -> Result<Response, ErrorInfo> {
    let request = crate::through_codec(request)?;
    match backend.execute_from(caller, request, peer).await {
        Response::Error(e) => Err(e),
        response => Ok(response),
    }
}

/// An answer of the wrong kind: a server bug, not the client's.
pub fn unexpected(response: &Response) -> ErrorInfo {
    tracing::warn!(?response, "a dialect got an unexpected answer");
    ErrorInfo::new(ErrorCode::Internal, "internal error")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dialect_is_on_and_header_trust_off_by_default() {
        let c = CompatConfig::default();
        assert!(c.anychat);
        assert!(c.gochat);
        assert!(c.flutter);
        assert!(c.imsys);
        assert!(c.wetty);
        assert!(!c.trust_user_header);
        assert!(c.root_addrs().is_empty());
        assert!(c.validate().is_ok());
        let parsed: CompatConfig = serde_json::from_str(r#"{"gochat":false}"#).expect("config");
        assert!(!parsed.gochat);
        assert!(serde_json::from_str::<CompatConfig>(r#"{"gochat_x":true}"#).is_err());
    }

    #[test]
    fn root_listeners_are_only_for_enabled_dialects() {
        let c: CompatConfig = serde_json::from_str(
            r#"{"root":{"gochat":["127.0.0.1:0"],"wetty":["127.0.0.1:0","127.0.0.2:0"]}}"#,
        )
        .expect("config");
        assert!(c.validate().is_ok());
        let names: Vec<_> = c.root_addrs().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["gochat", "wetty", "wetty"]);
        let off: CompatConfig =
            serde_json::from_str(r#"{"wetty":false,"root":{"wetty":["127.0.0.1:0"]}}"#)
                .expect("config");
        assert!(off.validate().unwrap_err().contains("compat.wetty is off"));
        assert!(serde_json::from_str::<CompatConfig>(r#"{"root":{"nope":[]}}"#).is_err());
    }
}
