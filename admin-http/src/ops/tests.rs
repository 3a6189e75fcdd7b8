//! Router tests of the operational routes, without a socket (`oneshot`), over a [`Backend`]
//! double that records what it was asked. The server's own tests (server/tests/ops.rs) drive
//! the same routes against the real service.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use futures::future::BoxFuture;
use http_body_util::BodyExt;
use parley_protocol::frames::{Device, ErrorInfo, Response};
use parley_protocol::ids::{ConversationId, UserId};
use parley_protocol::session::Identity;
use parley_protocol::ErrorCode;
use tower::ServiceExt;

use super::metrics::Metrics;
use super::{apps, Ops, Readiness};
use crate::{AdminAccount, AdminActor, NewAdmin, RuntimeSetting};
use crate::{AdminUser, Backend, PushSession, Stats, UserPage, UserQuery};

const TOKEN: &str = "0123456789abcdef-admin";

/// Operational settings for tests: admin API on with `token` (`None`: disabled).
pub(crate) fn ops(token: Option<&str>) -> Ops {
    Ops {
        metrics: Arc::new(Metrics::new()),
        readiness: Readiness::new(),
        admin_token: token.map(Arc::from),
        running_config: Arc::new(serde_json::json!({"admin": {"token": "[redacted]"}})),
    }
}

#[derive(Default)]
struct Double {
    bans: Mutex<Vec<(u64, bool)>>,
    queries: Mutex<Vec<UserQuery>>,
    announced: Mutex<Vec<String>>,
    /// `(actor, key, value)` of setting changes asked for.
    settings_set: Mutex<Vec<(AdminActor, String, String)>>,
    /// `(actor, username, role)` of admins made.
    admins_made: Mutex<Vec<(AdminActor, String, String)>>,
}

fn refuse<T: Send + 'static>(
    code: ErrorCode,
    msg: &str,
) -> BoxFuture<'static, Result<T, ErrorInfo>> {
    let e = ErrorInfo::new(code, msg);
    Box::pin(async move { Err(e) })
}

fn ok<T: Send + 'static>(v: T) -> BoxFuture<'static, Result<T, ErrorInfo>> {
    Box::pin(async move { Ok(v) })
}

impl Backend for Double {
    fn stats(&self) -> Stats {
        Stats {
            messages_total: 42,
            logins_total: 7,
            connections_tls_total: 2,
            ..Stats::default()
        }
    }
    fn execute(
        &self,
        _: Option<Identity>,
        _: parley_protocol::frames::Request,
    ) -> BoxFuture<'static, Response> {
        unreachable!("not routed")
    }
    fn authenticate(
        &self,
        _: String,
        _: Device,
    ) -> BoxFuture<'static, Result<Identity, ErrorInfo>> {
        unreachable!("not routed")
    }
    fn set_banned(&self, user: UserId, banned: bool) -> BoxFuture<'static, Result<(), ErrorInfo>> {
        if user.get() == 404 {
            return refuse(ErrorCode::NotFound, "no such user");
        }
        self.bans.lock().unwrap().push((user.get(), banned));
        ok(())
    }
    fn open_session(&self, _: Identity) -> Box<dyn PushSession> {
        unreachable!("not routed")
    }
    fn admin_users(&self, query: UserQuery) -> BoxFuture<'static, Result<UserPage, ErrorInfo>> {
        self.queries.lock().unwrap().push(query);
        ok(UserPage {
            users: vec![AdminUser {
                id: UserId::try_from(12u64).unwrap(),
                account: "alice".into(),
                nickname: "Alice".into(),
                created_ms: 1,
                guest: false,
                banned: true,
                online: false,
            }],
            next_after: Some(12),
        })
    }
    fn admin_disband_group(
        &self,
        group: ConversationId,
    ) -> BoxFuture<'static, Result<(), ErrorInfo>> {
        match group.get() {
            7 => ok(()),
            8 => refuse(ErrorCode::Disbanded, "the group is already disbanded"),
            _ => refuse(ErrorCode::NotFound, "no such conversation"),
        }
    }
    fn admin_announce(&self, text: String) -> BoxFuture<'static, Result<u64, ErrorInfo>> {
        self.announced.lock().unwrap().push(text);
        ok(3)
    }
    fn admin_accounts(
        &self,
        _: AdminActor,
    ) -> BoxFuture<'static, Result<Vec<AdminAccount>, ErrorInfo>> {
        ok(vec![account(1, "admin")])
    }
    fn admin_create(
        &self,
        actor: AdminActor,
        a: NewAdmin,
        _: Option<std::net::SocketAddr>,
    ) -> BoxFuture<'static, Result<AdminAccount, ErrorInfo>> {
        if a.username == "taken" {
            return refuse(ErrorCode::Conflict, "an admin of that name exists");
        }
        let made = account(2, &a.username);
        self.admins_made
            .lock()
            .unwrap()
            .push((actor, a.username, a.role));
        ok(made)
    }
    fn admin_set_enabled(
        &self,
        _: AdminActor,
        id: u64,
        enabled: bool,
    ) -> BoxFuture<'static, Result<AdminAccount, ErrorInfo>> {
        match id {
            2 => ok(AdminAccount {
                enabled,
                ..account(2, "ann")
            }),
            1 => refuse(ErrorCode::Forbidden, "the operator"),
            _ => refuse(ErrorCode::NotFound, "no such admin"),
        }
    }
    fn admin_settings(&self) -> Vec<RuntimeSetting> {
        vec![setting("auth.registration_open", "true")]
    }
    fn admin_set_setting(
        &self,
        actor: AdminActor,
        key: String,
        value: String,
    ) -> BoxFuture<'static, Result<RuntimeSetting, ErrorInfo>> {
        self.settings_set
            .lock()
            .unwrap()
            .push((actor, key.clone(), value.clone()));
        match key.as_str() {
            "auth.registration_open" => ok(setting("auth.registration_open", &value)),
            "admin.announcer" => refuse(ErrorCode::Forbidden, "read-only"),
            _ => refuse(ErrorCode::NotFound, "no such key"),
        }
    }
}

fn account(id: u64, name: &str) -> AdminAccount {
    AdminAccount {
        id,
        username: name.to_owned(),
        role: "admin".to_owned(),
        enabled: true,
        created_ms: 5,
    }
}

fn setting(key: &str, value: &str) -> RuntimeSetting {
    RuntimeSetting {
        key: key.to_owned(),
        value: value.to_owned(),
        kind: "bool".to_owned(),
        description: "d".to_owned(),
    }
}

/// One router serving both surfaces over a fresh double.
fn app(token: Option<&str>) -> (Router, Arc<Double>, Ops) {
    let double = Arc::new(Double::default());
    let ops = ops(token);
    let (router, private) = apps(double.clone(), &ops, false);
    assert!(private.is_none());
    (router, double, ops)
}

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn admin(method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    match body {
        Some(json) => b
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(json.to_owned()))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}

fn code_of(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["error"]["code"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn admin_is_disabled_without_a_token() {
    let (app, double, _) = app(None);
    for (method, path) in [
        ("GET", "/admin/v1/users"),
        ("POST", "/admin/v1/users/12/ban"),
        ("GET", "/admin/v1/config"),
        ("GET", "/admin/v1/no-such-route"),
    ] {
        let (status, _, body) = call(&app, admin(method, path, Some(TOKEN), None)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(code_of(&body), "ADMIN_DISABLED");
    }
    assert!(double.bans.lock().unwrap().is_empty());
}

#[tokio::test]
async fn admin_needs_the_right_token() {
    let (app, double, _) = app(Some(TOKEN));
    let missing = admin("POST", "/admin/v1/users/12/ban", None, None);
    let wrong = admin(
        "POST",
        "/admin/v1/users/12/ban",
        Some("0123456789abcdef-admiN"),
        None,
    );
    let longer = admin(
        "POST",
        "/admin/v1/users/12/ban",
        Some(&format!("{TOKEN}x")),
        None,
    );
    let basic = Request::post("/admin/v1/users/12/ban")
        .header(header::AUTHORIZATION, format!("Basic {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    // Unknown routes too: nothing tells an outsider which routes exist.
    let unknown = admin("GET", "/admin/v1/secret-route", None, None);
    for req in [missing, wrong, longer, basic, unknown] {
        let (status, headers, body) = call(&app, req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(code_of(&body), "UNAUTHENTICATED");
        assert!(headers.contains_key(header::WWW_AUTHENTICATE));
    }
    assert!(double.bans.lock().unwrap().is_empty(), "nothing was done");
    // The scheme is case-insensitive.
    let lower = Request::post("/admin/v1/users/12/ban")
        .header(header::AUTHORIZATION, format!("bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&app, lower).await.0, StatusCode::OK);
}

#[tokio::test]
async fn users_are_listed_and_searched_with_paging() {
    let (app, double, _) = app(Some(TOKEN));
    let (status, _, body) = call(&app, admin("GET", "/admin/v1/users", Some(TOKEN), None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["users"][0]["id"], "12");
    assert_eq!(v["users"][0]["account"], "alice");
    assert_eq!(v["users"][0]["banned"], true);
    assert_eq!(v["next_after"], "12");
    let path = "/admin/v1/users?q=Ali&after=12&limit=20";
    assert_eq!(
        call(&app, admin("GET", path, Some(TOKEN), None)).await.0,
        StatusCode::OK
    );
    let queries = double.queries.lock().unwrap().clone();
    assert_eq!(
        queries,
        vec![
            UserQuery {
                query: String::new(),
                after: 0,
                limit: super::admin::DEFAULT_PAGE
            },
            UserQuery {
                query: "Ali".into(),
                after: 12,
                limit: 20
            },
        ]
    );
}

#[tokio::test]
async fn bad_paging_and_ids_are_refused() {
    let (app, double, _) = app(Some(TOKEN));
    let long = format!("/admin/v1/users?q={}", "a".repeat(300));
    for (method, path) in [
        ("GET", "/admin/v1/users?limit=0"),
        ("GET", "/admin/v1/users?limit=501"),
        ("GET", "/admin/v1/users?limit=ten"),
        ("GET", "/admin/v1/users?after=-1"),
        ("GET", long.as_str()),
        ("POST", "/admin/v1/users/abc/ban"),
        ("POST", "/admin/v1/users/0/unban"),
        ("POST", "/admin/v1/groups/x/disband"),
    ] {
        let (status, _, body) = call(&app, admin(method, path, Some(TOKEN), None)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path}: {body}");
        assert_eq!(code_of(&body), "INVALID_ARGUMENT");
    }
    assert!(double.queries.lock().unwrap().is_empty());
    assert!(double.bans.lock().unwrap().is_empty());
}

#[tokio::test]
async fn ban_and_unban() {
    let (app, double, _) = app(Some(TOKEN));
    let (status, _, body) = call(
        &app,
        admin("POST", "/admin/v1/users/12/ban", Some(TOKEN), None),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, r#"{"user_id":"12","banned":true}"#);
    let (status, _, _) = call(
        &app,
        admin("POST", "/admin/v1/users/12/unban", Some(TOKEN), None),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(*double.bans.lock().unwrap(), vec![(12, true), (12, false)]);
    let (status, _, body) = call(
        &app,
        admin("POST", "/admin/v1/users/404/ban", Some(TOKEN), None),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code_of(&body), "NOT_FOUND");
    // Wrong method on a known route.
    let (status, _, body) = call(
        &app,
        admin("GET", "/admin/v1/users/12/ban", Some(TOKEN), None),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(code_of(&body), "METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn disband_maps_core_errors() {
    let (app, _, _) = app(Some(TOKEN));
    let cases = [
        ("7", StatusCode::OK, None),
        ("8", StatusCode::CONFLICT, Some("DISBANDED")),
        ("9", StatusCode::NOT_FOUND, Some("NOT_FOUND")),
    ];
    for (id, want, code) in cases {
        let path = format!("/admin/v1/groups/{id}/disband");
        let (status, _, body) = call(&app, admin("POST", &path, Some(TOKEN), None)).await;
        assert_eq!(status, want, "{id}: {body}");
        if let Some(code) = code {
            assert_eq!(code_of(&body), code);
        }
    }
}

#[tokio::test]
async fn announcements_are_validated() {
    let (app, double, _) = app(Some(TOKEN));
    let path = "/admin/v1/announcements";
    let (status, _, body) = call(
        &app,
        admin(
            "POST",
            path,
            Some(TOKEN),
            Some(r#"{"text":"maintenance at 2am"}"#),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, r#"{"recipients":3}"#);
    for bad in [
        r#"{"text":"  "}"#,
        r#"{"txt":"x"}"#,
        r#"{"text":"x","extra":1}"#,
        "not json",
    ] {
        let (status, _, body) = call(&app, admin("POST", path, Some(TOKEN), Some(bad))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(code_of(&body), "INVALID_ARGUMENT");
    }
    let no_type = Request::post(path)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::from(r#"{"text":"x"}"#))
        .unwrap();
    let (status, _, body) = call(&app, no_type).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(code_of(&body), "UNSUPPORTED_MEDIA_TYPE");
    assert_eq!(
        *double.announced.lock().unwrap(),
        vec!["maintenance at 2am".to_owned()]
    );
}

#[tokio::test]
async fn config_and_unknown_admin_routes() {
    let (app, _, _) = app(Some(TOKEN));
    let (status, _, body) = call(&app, admin("GET", "/admin/v1/config", Some(TOKEN), None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, r#"{"admin":{"token":"[redacted]"}}"#);
    let (status, _, body) = call(&app, admin("GET", "/admin/v1/nothing", Some(TOKEN), None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code_of(&body), "NOT_FOUND");
}

#[tokio::test]
async fn ready_follows_the_lifecycle() {
    let (app, _, ops) = app(None);
    let get = || Request::get("/ready").body(Body::empty()).unwrap();
    let (status, _, body) = call(&app, get()).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"starting"}"#)
    );
    ops.readiness.set_ready();
    assert_eq!(call(&app, get()).await.0, StatusCode::OK);
    ops.readiness.set_draining();
    ops.readiness.set_ready(); // never back from draining
    let (status, _, body) = call(&app, get()).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"draining"}"#)
    );
}

#[tokio::test]
async fn ready_follows_the_store() {
    use super::StoreState;
    let (app, _, ops) = app(None);
    let get = || Request::get("/ready").body(Body::empty()).unwrap();
    let status = |body: &str| format!(r#"{{"status":"{body}"}}"#);
    ops.readiness.set_store(StoreState::Degraded); // not while starting
    assert_eq!(call(&app, get()).await.2, status("starting"));
    ops.readiness.set_ready();
    ops.readiness.set_store(StoreState::Degraded);
    let (code, _, body) = call(&app, get()).await;
    assert_eq!(
        (code, body),
        (StatusCode::SERVICE_UNAVAILABLE, status("store_degraded"))
    );
    ops.readiness.set_store(StoreState::Ok);
    assert_eq!(call(&app, get()).await.0, StatusCode::OK);
    ops.readiness.set_store(StoreState::Failed);
    ops.readiness.set_store(StoreState::Ok); // only a restart undoes it
    let (code, _, body) = call(&app, get()).await;
    assert_eq!(
        (code, body),
        (StatusCode::SERVICE_UNAVAILABLE, status("store_failed"))
    );
    ops.readiness.set_draining();
    ops.readiness.set_store(StoreState::Ok);
    assert_eq!(call(&app, get()).await.2, status("draining"));
}

#[tokio::test]
async fn metrics_export_stats_and_http_requests_by_route_template() {
    let (app, _, _) = app(Some(TOKEN));
    // A templated route, and a path that matches nothing.
    call(
        &app,
        admin("POST", "/admin/v1/users/12/ban", Some(TOKEN), None),
    )
    .await;
    call(
        &app,
        Request::get("/no/such/path/123")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let (status, headers, text) =
        call(&app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    for series in [
        "parley_logins_total 7",
        "parley_connections_total{transport=\"tls\"} 2",
        "parley_messages_committed_total 0",
        "parley_sessions_asleep 0",
        "parley_http_requests_total{route=\"/admin/v1/users/{id}/ban\",method=\"POST\",status=\"200\"} 1",
        "parley_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1",
        "parley_http_request_duration_seconds_bucket{route=\"/admin/v1/users/{id}/ban\",method=\"POST\",le=",
    ] {
        assert!(text.contains(series), "missing {series} in:\n{text}");
    }
    assert!(
        !text.contains("/users/12/"),
        "raw paths never become labels"
    );
    assert!(
        !text.contains("/no/such/path"),
        "raw paths never become labels"
    );
}

#[tokio::test]
async fn a_private_address_splits_the_surfaces() {
    let double = Arc::new(Double::default());
    let ops = ops(Some(TOKEN));
    ops.readiness.set_ready();
    let (public, private) = apps(double, &ops, true);
    let private = private.expect("a private router");
    let get = |path: &str| admin("GET", path, Some(TOKEN), None);
    for path in [
        "/metrics",
        "/api/v1/stats",
        "/admin/v1/users",
        "/admin/v1/config",
    ] {
        assert_eq!(
            call(&public, get(path)).await.0,
            StatusCode::NOT_FOUND,
            "public {path}"
        );
        assert_eq!(
            call(&private, get(path)).await.0,
            StatusCode::OK,
            "private {path}"
        );
    }
    for path in ["/health", "/ready"] {
        assert_eq!(
            call(&public, get(path)).await.0,
            StatusCode::OK,
            "public {path}"
        );
        assert_eq!(
            call(&private, get(path)).await.0,
            StatusCode::OK,
            "private {path}"
        );
    }
    let (_, _, body) = call(&private, get("/api/v1/stats")).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["messages_total"], 42);
}

#[tokio::test]
async fn admins_and_settings_run_as_the_operator() {
    let (app, double, _) = app(Some(TOKEN));
    let (status, _, body) = call(&app, admin("GET", "/admin/v1/admins", None, None)).await;
    assert_eq!(
        (status, code_of(&body)),
        (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED".into())
    );
    let (status, _, body) = call(&app, admin("GET", "/admin/v1/admins", Some(TOKEN), None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        r#"{"admins":[{"id":"1","username":"admin","role":"admin","enabled":true,"created_ms":5}]}"#
    );
    let make = r#"{"username":"ann","password":"ann-password","role":"admin"}"#;
    let (status, _, body) = call(
        &app,
        admin("POST", "/admin/v1/admins", Some(TOKEN), Some(make)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let taken = r#"{"username":"taken","password":"x-password"}"#;
    let (status, _, body) = call(
        &app,
        admin("POST", "/admin/v1/admins", Some(TOKEN), Some(taken)),
    )
    .await;
    assert_eq!(
        (status, code_of(&body)),
        (StatusCode::CONFLICT, "CONFLICT".into())
    );
    for bad in [
        r#"{"username":"x"}"#,
        r#"{"username":"x","password":"y","extra":1}"#,
    ] {
        let (status, _, _) = call(
            &app,
            admin("POST", "/admin/v1/admins", Some(TOKEN), Some(bad)),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(
        *double.admins_made.lock().unwrap(),
        vec![(AdminActor::Operator, "ann".to_owned(), "admin".to_owned())]
    );
    let off = Some(r#"{"enabled":false}"#);
    let (status, _, body) = call(
        &app,
        admin("PUT", "/admin/v1/admins/2/status", Some(TOKEN), off),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(r#""enabled":false"#), "{body}");
    for (path, expected) in [
        ("/admin/v1/admins/1/status", StatusCode::FORBIDDEN),
        ("/admin/v1/admins/9/status", StatusCode::NOT_FOUND),
        ("/admin/v1/admins/x/status", StatusCode::BAD_REQUEST),
    ] {
        let (status, _, _) = call(&app, admin("PUT", path, Some(TOKEN), off)).await;
        assert_eq!(status, expected, "{path}");
    }

    let (status, _, body) = call(&app, admin("GET", "/admin/v1/settings", Some(TOKEN), None)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(r#""key":"auth.registration_open""#), "{body}");
    let base = "/admin/v1/settings/";
    for (key, value, expected) in [
        (
            "auth.registration_open",
            r#"{"value":false}"#,
            StatusCode::OK,
        ),
        (
            "auth.registration_open",
            r#"{"value":"true"}"#,
            StatusCode::OK,
        ),
        ("admin.announcer", r#"{"value":"x"}"#, StatusCode::FORBIDDEN),
        ("nope", r#"{"value":1}"#, StatusCode::NOT_FOUND),
        (
            "auth.registration_open",
            r#"{"value":[1]}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "auth.registration_open",
            r#"{"v":1}"#,
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let path = format!("{base}{key}");
        let (status, _, body) = call(&app, admin("PUT", &path, Some(TOKEN), Some(value))).await;
        assert_eq!(status, expected, "{key} {value}: {body}");
    }
    let asked: Vec<String> = double
        .settings_set
        .lock()
        .unwrap()
        .iter()
        .map(|(actor, k, v)| {
            assert_eq!(*actor, AdminActor::Operator);
            format!("{k}={v}")
        })
        .collect();
    assert_eq!(
        asked,
        [
            "auth.registration_open=false",
            "auth.registration_open=true",
            "admin.announcer=x",
            "nope=1"
        ]
    );
}
