//! Router tests with `oneshot` (no socket): every route with a good token, the OpenAPI
//! completeness check, authentication failures, validation errors, 404s and rendering. The
//! backend is [`fake::Fake`]: what the routes do in the server is tested in
//! server/tests/rest.rs.

mod fake;

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request as HttpRequest, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use parley_protocol::frames::Request;
use serde_json::{json, Value};
use tower::ServiceExt;

use fake::{Fake, EXPIRED, GOOD, MISSING};

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

fn app() -> (Router, Arc<Fake>) {
    let fake = Arc::new(Fake::default());
    (super::router(fake.clone()), fake)
}

async fn send(
    app: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let mut req = HttpRequest::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let body = match body {
        Some(v) => {
            req = req.header(header::CONTENT_TYPE, "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    raw(app, req.body(body).expect("request")).await
}

async fn raw(app: &Router, req: HttpRequest<Body>) -> Answer {
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)))
    };
    Answer {
        status,
        headers,
        body,
    }
}

fn code(a: &Answer) -> &str {
    a.body["error"]["code"]
        .as_str()
        .unwrap_or("<no error body>")
}

/// A call of a route: method, URI, body, the status it gets and the name of the protocol
/// request it makes (`None`: none).
type RouteCall = (
    &'static str,
    String,
    Option<Value>,
    u16,
    Option<&'static str>,
);

/// One valid call of every route.
fn every_route() -> Vec<RouteCall> {
    let c = "/im/v1/conversations/5";
    let g = "/im/v1/groups/6";
    vec![
        ("GET", "/im/v1/openapi.json".into(), None, 200, None),
        (
            "POST",
            "/im/v1/auth/register".into(),
            Some(json!({"account": "alice", "password": "password-123"})),
            201,
            Some("register"),
        ),
        (
            "POST",
            "/im/v1/auth/login".into(),
            Some(
                json!({"account": "alice", "password": "pw", "device_id": "d1", "platform": "web"}),
            ),
            200,
            Some("login"),
        ),
        (
            "POST",
            "/im/v1/auth/refresh".into(),
            Some(json!({"refresh_token": "r", "device_id": "d1"})),
            200,
            Some("refresh"),
        ),
        (
            "POST",
            "/im/v1/auth/guest".into(),
            None,
            201,
            Some("guest_login"),
        ),
        (
            "POST",
            "/im/v1/auth/logout".into(),
            None,
            204,
            Some("logout"),
        ),
        (
            "PUT",
            "/im/v1/auth/password".into(),
            Some(json!({"old_password": "old", "new_password": "new-password"})),
            204,
            Some("change_password"),
        ),
        (
            "GET",
            "/im/v1/auth/devices".into(),
            None,
            200,
            Some("list_devices"),
        ),
        (
            "DELETE",
            "/im/v1/auth/devices/d2".into(),
            None,
            204,
            Some("sign_out_device"),
        ),
        (
            "PUT",
            "/im/v1/auth/push-token".into(),
            Some(json!({"provider": "fcm", "token": "t"})),
            204,
            Some("set_push_token"),
        ),
        (
            "GET",
            "/im/v1/users/me".into(),
            None,
            200,
            Some("get_profiles"),
        ),
        (
            "PATCH",
            "/im/v1/users/me".into(),
            Some(json!({"nickname": "Al", "gender": "female"})),
            204,
            Some("update_profile"),
        ),
        (
            "GET",
            "/im/v1/users/me/settings".into(),
            None,
            200,
            Some("get_settings"),
        ),
        (
            "PATCH",
            "/im/v1/users/me/settings".into(),
            Some(json!({"add_policy": "anyone"})),
            200,
            Some("update_settings"),
        ),
        (
            "GET",
            "/im/v1/users/2".into(),
            None,
            200,
            Some("get_profiles"),
        ),
        (
            "GET",
            "/im/v1/users?ids=2,3".into(),
            None,
            200,
            Some("get_profiles"),
        ),
        (
            "GET",
            "/im/v1/users/search?q=bo&limit=5".into(),
            None,
            200,
            Some("search_users"),
        ),
        (
            "GET",
            "/im/v1/presence?ids=2".into(),
            None,
            200,
            Some("get_presence"),
        ),
        (
            "PUT",
            "/im/v1/presence".into(),
            Some(json!({"status": "away", "text": "lunch"})),
            204,
            Some("set_presence"),
        ),
        (
            "GET",
            "/im/v1/friends".into(),
            None,
            200,
            Some("list_friends"),
        ),
        (
            "DELETE",
            "/im/v1/friends/2".into(),
            None,
            204,
            Some("remove_friend"),
        ),
        (
            "PUT",
            "/im/v1/friends/2/remark".into(),
            Some(json!({"remark": "Bobby"})),
            204,
            Some("set_friend_remark"),
        ),
        (
            "GET",
            "/im/v1/friends/requests?direction=outgoing".into(),
            None,
            200,
            Some("list_friend_requests"),
        ),
        (
            "POST",
            "/im/v1/friends/requests".into(),
            Some(json!({"user_id": "2", "message": "hi"})),
            200,
            Some("add_friend"),
        ),
        (
            "POST",
            "/im/v1/friends/requests/2/accept".into(),
            Some(json!({"remark": "B"})),
            204,
            Some("answer_friend_request"),
        ),
        (
            "POST",
            "/im/v1/friends/requests/2/reject".into(),
            None,
            204,
            Some("answer_friend_request"),
        ),
        (
            "GET",
            "/im/v1/blocks".into(),
            None,
            200,
            Some("list_blocked"),
        ),
        (
            "PUT",
            "/im/v1/blocks/2".into(),
            None,
            204,
            Some("set_blocked"),
        ),
        (
            "DELETE",
            "/im/v1/blocks/2".into(),
            None,
            204,
            Some("set_blocked"),
        ),
        (
            "POST",
            "/im/v1/groups".into(),
            Some(json!({"name": "team", "member_ids": ["2", 3]})),
            201,
            Some("create_group"),
        ),
        ("GET", g.into(), None, 200, Some("get_group")),
        (
            "PATCH",
            g.into(),
            Some(json!({"announcement": "hi", "join_policy": "free", "public": true})),
            204,
            Some("update_group"),
        ),
        ("DELETE", g.into(), None, 204, Some("disband_group")),
        (
            "GET",
            format!("{g}/members?after=1&limit=10"),
            None,
            200,
            Some("list_members"),
        ),
        (
            "POST",
            format!("{g}/members"),
            Some(json!({"user_ids": ["3"]})),
            204,
            Some("change_members"),
        ),
        (
            "DELETE",
            format!("{g}/members/3"),
            None,
            204,
            Some("change_members"),
        ),
        (
            "PUT",
            format!("{g}/members/3/role"),
            Some(json!({"role": "manager"})),
            204,
            Some("set_member_role"),
        ),
        (
            "PUT",
            format!("{g}/members/3/mute"),
            Some(json!({"duration_ms": 60000})),
            204,
            Some("mute_member"),
        ),
        (
            "PUT",
            format!("{g}/mute"),
            Some(json!({"duration_ms": 0})),
            204,
            Some("mute_member"),
        ),
        (
            "PUT",
            format!("{g}/nickname"),
            Some(json!({"nickname": "boss"})),
            204,
            Some("set_group_nickname"),
        ),
        (
            "POST",
            format!("{g}/join"),
            Some(json!({"message": "let me in"})),
            200,
            Some("join_group"),
        ),
        (
            "POST",
            format!("{g}/leave"),
            None,
            204,
            Some("change_members"),
        ),
        (
            "GET",
            format!("{g}/join-requests"),
            None,
            200,
            Some("get_group"),
        ),
        (
            "POST",
            format!("{g}/join-requests/3/approve"),
            None,
            204,
            Some("answer_join_request"),
        ),
        (
            "POST",
            format!("{g}/join-requests/3/reject"),
            None,
            204,
            Some("answer_join_request"),
        ),
        (
            "GET",
            "/im/v1/conversations?limit=20".into(),
            None,
            200,
            Some("list_conversations"),
        ),
        (
            "POST",
            "/im/v1/conversations/direct".into(),
            Some(json!({"account": "bob"})),
            200,
            Some("open_direct"),
        ),
        (
            "PATCH",
            format!("{c}/prefs"),
            Some(json!({"pinned": true})),
            204,
            Some("set_conversation_prefs"),
        ),
        (
            "PUT",
            format!("{c}/cursors/read"),
            Some(json!({"seq": 3})),
            204,
            Some("cursor_ack"),
        ),
        (
            "GET",
            format!("{c}/read-state"),
            None,
            200,
            Some("get_read_state"),
        ),
        ("POST", format!("{c}/typing"), None, 204, Some("typing")),
        (
            "POST",
            format!("{c}/messages"),
            Some(json!({"client_msg_id": "k1", "content": "hi"})),
            201,
            Some("send"),
        ),
        (
            "GET",
            format!("{c}/messages?before=10&limit=3"),
            None,
            200,
            Some("get_history"),
        ),
        (
            "PATCH",
            format!("{c}/messages/1"),
            Some(json!({"content": "edited"})),
            204,
            Some("edit_message"),
        ),
        (
            "POST",
            format!("{c}/messages/1/recall"),
            None,
            204,
            Some("recall_message"),
        ),
        (
            "PUT",
            format!("{c}/messages/1/reactions/%F0%9F%91%8D"),
            None,
            204,
            Some("react"),
        ),
        (
            "DELETE",
            format!("{c}/messages/1/reactions/%F0%9F%91%8D"),
            None,
            204,
            Some("react"),
        ),
        (
            "POST",
            format!("{c}/messages/1/forward"),
            Some(json!({"to_conversation_id": "6", "client_msg_id": "f1"})),
            201,
            Some("forward_message"),
        ),
        (
            "POST",
            format!("{c}/messages/delete-for-me"),
            Some(json!({"seqs": [1, 2]})),
            204,
            Some("delete_for_me"),
        ),
        (
            "GET",
            "/im/v1/search/messages?q=hello".into(),
            None,
            200,
            Some("search_messages"),
        ),
        (
            "POST",
            "/im/v1/calls".into(),
            Some(json!({"conversation_id": "5", "media": "video", "payload": "sdp"})),
            201,
            Some("call_signal"),
        ),
        (
            "POST",
            "/im/v1/calls/9/signal".into(),
            Some(json!({"action": "accept", "payload": "sdp"})),
            200,
            Some("call_signal"),
        ),
        (
            "GET",
            "/im/v1/calls?limit=5".into(),
            None,
            200,
            Some("list_calls"),
        ),
    ]
}

/// The operations of the document served by the REST router, as (method, path template).
fn documented() -> BTreeSet<(String, String)> {
    super::openapi::operations(&super::openapi())
        .into_iter()
        .filter(|(_, p)| !super::openapi::is_beside(p))
        .map(|(m, p)| (m.to_owned(), p))
        .collect()
}

#[tokio::test]
async fn operations_documented_beside_are_routed_by_the_side_service() {
    let app = crate::router(Arc::new(Fake::default()));
    for (method, path) in super::openapi::operations(&super::openapi()) {
        if !super::openapi::is_beside(&path) {
            continue;
        }
        let a = send(&app, method, &concrete(&path), Some(GOOD), None).await;
        assert_ne!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_ne!(
            a.body["error"]["message"], "no such route",
            "{method} {path}"
        );
    }
}

/// A concrete path for a template: every `{param}` filled with a value its route accepts.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|seg| match seg {
            "{kind}" => "read",
            "{device_id}" => "d2",
            "{emoji}" => "ok",
            s if s.starts_with('{') => "7",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The documented template a call lands on: the one that matches with the most literal
/// segments (as the router prefers them over parameters).
fn template_of(method: &str, uri: &str) -> Option<String> {
    let path: Vec<&str> = uri.split('?').next().unwrap_or(uri).split('/').collect();
    documented()
        .into_iter()
        .filter(|(m, _)| m == method)
        .map(|(_, t)| t)
        .filter(|t| {
            let t: Vec<&str> = t.split('/').collect();
            t.len() == path.len()
                && t.iter()
                    .zip(&path)
                    .all(|(t, p)| t.starts_with('{') || t == p)
        })
        .max_by_key(|t| t.split('/').filter(|s| !s.starts_with('{')).count())
}

#[tokio::test]
async fn every_route_runs_its_request_and_renders_its_answer() {
    let (app, fake) = app();
    let mut covered = BTreeSet::new();
    for (method, uri, body, status, request) in every_route() {
        let before = fake.seen().len();
        let a = send(&app, method, &uri, Some(GOOD), body).await;
        assert_eq!(a.status.as_u16(), status, "{method} {uri}: {}", a.body);
        let seen = fake.seen();
        match request {
            Some(name) => {
                assert_eq!(seen.len(), before + 1, "{method} {uri} runs one request");
                assert_eq!(seen[before].name(), name, "{method} {uri}");
            }
            None => assert_eq!(seen.len(), before, "{method} {uri} runs none"),
        }
        let template =
            template_of(method, &uri).unwrap_or_else(|| panic!("{method} {uri} is documented"));
        covered.insert((method.to_owned(), template));
    }
    // The list above is checked against the document, so it cannot miss a route either.
    let missing: Vec<_> = documented().difference(&covered).cloned().collect();
    assert!(
        missing.is_empty(),
        "routes without a test call: {missing:?}"
    );
}

#[tokio::test]
async fn the_document_and_the_router_list_the_same_routes() {
    let (app, _) = app();
    let doc = documented();
    assert_eq!(
        doc.len(),
        super::table().len(),
        "one documented operation per entry of the route table"
    );
    assert!(
        doc.len() >= 60,
        "the REST routes are documented: {}",
        doc.len()
    );
    let methods = ["GET", "PUT", "POST", "DELETE", "PATCH"];
    let paths: BTreeSet<&String> = doc.iter().map(|(_, p)| p).collect();
    for path in paths {
        assert!(path.starts_with("/im/v1/"), "{path} is under the prefix");
        for method in methods {
            let documented = doc.contains(&(method.to_owned(), path.clone()));
            let a = send(&app, method, &concrete(path), None, None).await;
            if documented {
                // Routed (not the catch-all's 404 nor a 405), and anonymous callers are
                // turned away except on the public routes.
                assert_ne!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                assert_ne!(
                    a.body["error"]["message"], "no such route",
                    "{method} {path}"
                );
                let public = path.starts_with("/im/v1/auth/")
                    && ["register", "login", "refresh", "guest"]
                        .iter()
                        .any(|p| path.ends_with(p))
                    || path == "/im/v1/openapi.json";
                if !public {
                    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{method} {path}");
                    assert_eq!(code(&a), "UNAUTHENTICATED", "{method} {path}");
                }
            } else {
                // The router serves no method the document does not list.
                assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                assert_eq!(code(&a), "METHOD_NOT_ALLOWED");
            }
        }
    }
    // The document is served, and it is this document.
    let served = send(&app, "GET", "/im/v1/openapi.json", None, None).await;
    assert_eq!(served.body["openapi"], "3.1.0");
    assert_eq!(
        served.body,
        serde_json::to_value(super::openapi()).expect("json")
    );
    assert!(served.body["components"]["securitySchemes"]["bearer"].is_object());
    assert!(served.body["tags"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t["name"] == "files")));
}

#[test]
fn the_document_is_well_formed() {
    let doc = serde_json::to_value(super::openapi()).expect("json");
    let text = doc.to_string();
    // Every reference resolves.
    for (i, _) in text.match_indices("\"$ref\":\"#/components/") {
        let rest = &text[i + "\"$ref\":\"#/components/".len()..];
        let name = &rest[..rest.find('"').expect("end of the reference")];
        let (kind, item) = name.split_once('/').expect("kind/name");
        assert!(
            doc["components"][kind][item].is_object(),
            "dangling reference {name}"
        );
    }
    // Operation ids are unique, and every operation has a tag, a summary and the error answers.
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let what = format!("{method} {path}");
            let id = op["operationId"].as_str().expect("operation id").to_owned();
            assert!(ids.insert(id.clone()), "{what}: operation id {id} repeats");
            assert!(op["tags"][0].is_string(), "{what} has a tag");
            assert!(op["summary"].is_string(), "{what} has a summary");
            assert!(
                op["responses"]["4XX"].is_object(),
                "{what} documents errors"
            );
        }
    }
}

#[tokio::test]
async fn auth_failures_are_401_with_the_error_body() {
    let (app, fake) = app();
    let cases = [
        (None, "UNAUTHENTICATED"),
        (Some("Basic YWxpY2U6cHc="), "UNAUTHENTICATED"),
        (Some("Bearer "), "UNAUTHENTICATED"),
        (Some("Bearer nope"), "AUTH_FAILED"),
        (Some("bearer expired-token"), "TOKEN_EXPIRED"),
    ];
    for (header, expected) in cases {
        let mut req = HttpRequest::get("/im/v1/users/me");
        if let Some(h) = header {
            req = req.header(header::AUTHORIZATION, h);
        }
        let a = raw(&app, req.body(Body::empty()).expect("request")).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{header:?}");
        assert_eq!(code(&a), expected, "{header:?}");
        assert!(a.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        assert!(a.headers.contains_key(header::WWW_AUTHENTICATE));
    }
    let a = send(&app, "GET", "/im/v1/friends", Some(EXPIRED), None).await;
    assert_eq!((a.status.as_u16(), code(&a)), (401, "TOKEN_EXPIRED"));
    assert!(
        fake.seen().is_empty(),
        "nothing ran for a caller without a good token"
    );
}

#[tokio::test]
async fn bad_input_is_400_and_never_reaches_the_backend() {
    let (app, fake) = app();
    let c = "/im/v1/conversations";
    let bad: Vec<(&str, String, Option<Body>, &str)> = vec![
        (
            "POST",
            format!("{c}/5/messages"),
            Some(Body::from("{not json")),
            "INVALID_ARGUMENT",
        ),
        (
            "POST",
            format!("{c}/5/messages"),
            Some(Body::from(r#"{"content":"hi"}"#)),
            "INVALID_ARGUMENT",
        ),
        (
            "POST",
            format!("{c}/5/messages"),
            Some(Body::from(
                r#"{"client_msg_id":"k","content":"a","content_base64":"YQ=="}"#,
            )),
            "INVALID_ARGUMENT",
        ),
        (
            "POST",
            format!("{c}/5/messages"),
            Some(Body::from(
                r#"{"client_msg_id":"k","content":"a","colour":"red"}"#,
            )),
            "INVALID_ARGUMENT",
        ),
        (
            "POST",
            format!("{c}/abc/messages"),
            Some(Body::from(r#"{"client_msg_id":"k","content":"a"}"#)),
            "INVALID_ARGUMENT",
        ),
        (
            "POST",
            format!("{c}/0/messages"),
            Some(Body::from(r#"{"client_msg_id":"k","content":"a"}"#)),
            "INVALID_ARGUMENT",
        ),
        (
            "GET",
            format!("{c}/5/messages?before=1&after=2"),
            None,
            "INVALID_ARGUMENT",
        ),
        (
            "GET",
            format!("{c}/5/messages?limit=lots"),
            None,
            "INVALID_ARGUMENT",
        ),
        (
            "PATCH",
            format!("{c}/5/messages/0"),
            Some(Body::from(r#"{"content":"x"}"#)),
            "INVALID_ARGUMENT",
        ),
        (
            "PUT",
            format!("{c}/5/cursors/sideways"),
            Some(Body::from(r#"{"seq":1}"#)),
            "INVALID_ARGUMENT",
        ),
        (
            "POST",
            "/im/v1/groups".into(),
            Some(Body::from(json!({"name": "x".repeat(200)}).to_string())),
            "INVALID_ARGUMENT",
        ),
        (
            "POST",
            "/im/v1/groups".into(),
            Some(Body::from(r#"{"name":"ok","member_ids":["x1"]}"#)),
            "INVALID_ARGUMENT",
        ),
        (
            "POST",
            "/im/v1/friends/requests".into(),
            Some(Body::from(r#"{"user_id":"0"}"#)),
            "INVALID_ARGUMENT",
        ),
        (
            "PATCH",
            "/im/v1/users/me".into(),
            Some(Body::from(r#"{"nickname":"bell\u0007"}"#)),
            "INVALID_ARGUMENT",
        ),
        (
            "PATCH",
            "/im/v1/users/me".into(),
            Some(Body::from(r#"{"birthday":"yesterday"}"#)),
            "INVALID_ARGUMENT",
        ),
        (
            "PUT",
            "/im/v1/presence".into(),
            Some(Body::from(r#"{"status":"offline"}"#)),
            "INVALID_ARGUMENT",
        ),
        (
            "GET",
            "/im/v1/users?ids=1,two".into(),
            None,
            "INVALID_ARGUMENT",
        ),
        (
            "GET",
            "/im/v1/users/search?q=%20".into(),
            None,
            "INVALID_ARGUMENT",
        ),
        (
            "POST",
            format!("{c}/5/messages/delete-for-me"),
            Some(Body::from(r#"{"seqs":[]}"#)),
            "INVALID_ARGUMENT",
        ),
        (
            "POST",
            "/im/v1/conversations/direct".into(),
            Some(Body::from(r#"{"user_id":"2","account":"bob"}"#)),
            "INVALID_ARGUMENT",
        ),
        (
            "PUT",
            format!("{c}/5/messages/1/reactions/%20"),
            None,
            "INVALID_ARGUMENT",
        ),
        (
            "POST",
            "/im/v1/calls/0/signal".into(),
            Some(Body::from(r#"{"action":"end"}"#)),
            "INVALID_ARGUMENT",
        ),
    ];
    for (method, uri, body, expected) in bad {
        let has_body = body.is_some();
        let mut req = HttpRequest::builder()
            .method(method)
            .uri(&uri)
            .header(header::AUTHORIZATION, format!("Bearer {GOOD}"));
        if has_body {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let before = fake.seen().len();
        let a = raw(&app, req.body(body.unwrap_or_default()).expect("request")).await;
        assert_eq!(
            a.status,
            StatusCode::BAD_REQUEST,
            "{method} {uri}: {}",
            a.body
        );
        assert_eq!(code(&a), expected, "{method} {uri}");
        assert_eq!(
            fake.seen().len(),
            before,
            "{method} {uri} reached the backend"
        );
    }
    // A JSON route given another content type.
    let req = HttpRequest::post("/im/v1/groups")
        .header(header::AUTHORIZATION, format!("Bearer {GOOD}"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(r#"{"name":"x"}"#))
        .expect("request");
    let a = raw(&app, req).await;
    assert_eq!(
        (a.status.as_u16(), code(&a)),
        (415, "UNSUPPORTED_MEDIA_TYPE")
    );
    // A bad Idempotency-Key.
    let req = HttpRequest::post("/im/v1/conversations/5/messages/1/recall")
        .header(header::AUTHORIZATION, format!("Bearer {GOOD}"))
        .header("idempotency-key", "x".repeat(65))
        .body(Body::empty())
        .expect("request");
    let a = raw(&app, req).await;
    assert_eq!((a.status.as_u16(), code(&a)), (400, "INVALID_ARGUMENT"));
}

#[tokio::test]
async fn not_found_is_404_with_the_error_body() {
    let (app, _) = app();
    let cases = [
        ("GET", format!("/im/v1/groups/{MISSING}")),
        ("GET", format!("/im/v1/users/{MISSING}")),
        ("GET", format!("/im/v1/conversations/{MISSING}/messages")),
        (
            "POST",
            format!("/im/v1/conversations/{MISSING}/messages/1/recall"),
        ),
        ("GET", "/im/v1/no/such/route".to_owned()),
        ("GET", "/im/v1/users/2/extra".to_owned()),
    ];
    for (method, uri) in cases {
        let a = send(&app, method, &uri, Some(GOOD), None).await;
        assert_eq!(
            a.status,
            StatusCode::NOT_FOUND,
            "{method} {uri}: {}",
            a.body
        );
        assert_eq!(code(&a), "NOT_FOUND", "{method} {uri}");
    }
    let a = send(
        &app,
        "POST",
        "/im/v1/friends/requests",
        Some(GOOD),
        Some(json!({"user_id": MISSING.to_string()})),
    )
    .await;
    assert_eq!((a.status.as_u16(), code(&a)), (404, "NOT_FOUND"));
}

#[tokio::test]
async fn answers_are_rendered_with_string_ids_and_ms_times() {
    let (app, fake) = app();
    let c = "/im/v1/conversations/5";
    // A send: 201, or 200 for a duplicate.
    let a = send(&app, "POST", &format!("{c}/messages"), Some(GOOD), Some(json!({"client_msg_id": "k1", "content_base64": "AAE=", "content_type": "custom", "mention_ids": [2], "reply_to_seq": 1}))).await;
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(
        a.body,
        json!({"message_id": "77", "conversation_id": "5", "seq": 4, "server_time_ms": 8, "duplicate": false})
    );
    match fake.seen().last() {
        Some(Request::Send(s)) => {
            assert_eq!(&s.content[..], &[0, 1]);
            assert_eq!(s.content_type, parley_protocol::frames::ContentType::Custom);
            assert_eq!(s.mentions, vec![fake::user(2)]);
            assert_eq!(s.reply_to.get(), 1);
        }
        other => panic!("not a send: {other:?}"),
    }
    let a = send(
        &app,
        "POST",
        &format!("{c}/messages"),
        Some(GOOD),
        Some(json!({"client_msg_id": "dup", "content": "hi"})),
    )
    .await;
    assert_eq!(
        (a.status, a.body["duplicate"].clone()),
        (StatusCode::OK, json!(true))
    );

    // History: text, binary content and an event.
    let a = send(&app, "GET", &format!("{c}/messages"), Some(GOOD), None).await;
    let m = &a.body["messages"];
    assert_eq!(m[0]["content"], "hello");
    assert_eq!(m[0]["message_id"], "1001");
    assert_eq!(m[0]["sender_id"], "2");
    assert_eq!(m[0]["mention_ids"], json!(["1"]));
    assert_eq!(m[0]["server_time_ms"], 1_700_000_000_000u64);
    assert_eq!(m[1]["content_base64"], "/wA=");
    assert!(m[1].get("content").is_none());
    assert_eq!(m[2]["content_type"], "system");
    assert_eq!(
        m[2]["event"],
        json!({"kind": "membership", "added_ids": ["3"], "removed_ids": []})
    );
    assert_eq!(a.body["has_more"], true);

    // Login: the device the server picked.
    let a = send(
        &app,
        "POST",
        "/im/v1/auth/register",
        None,
        Some(json!({"account": "alice", "password": "password-123"})),
    )
    .await;
    let device = a.body["device_id"].as_str().unwrap_or_default().to_owned();
    assert!(
        device.starts_with("rest-") && device.len() == 21,
        "{device}"
    );
    assert_eq!(a.body["user_id"], "1");
    assert_eq!(a.body["access_token"], GOOD);
    assert_eq!(a.body["limits"]["recall_window_ms"], 120_000);

    // The conversation list, a group, calls, presence.
    let a = send(&app, "GET", "/im/v1/conversations", Some(GOOD), None).await;
    let first = &a.body["conversations"][0];
    assert_eq!(
        (first["conversation_id"].clone(), first["kind"].clone()),
        (json!("5"), json!("direct"))
    );
    assert_eq!(
        (first["unread"].clone(), first["pinned"].clone()),
        (json!(2), json!(true))
    );
    assert_eq!(a.body["total_unread"], 2);
    let a = send(
        &app,
        "POST",
        "/im/v1/groups",
        Some(GOOD),
        Some(json!({"name": "team"})),
    )
    .await;
    assert_eq!(
        (a.body["kind"].clone(), a.body["my_role"].clone()),
        (json!("group"), json!("owner"))
    );
    assert_eq!(a.body["group"]["join_policy"], "unspecified");
    let a = send(&app, "GET", "/im/v1/calls", Some(GOOD), None).await;
    assert_eq!(a.body["calls"][0]["call_id"], "9");
    assert_eq!(a.body["calls"][0]["outcome"], "missed");
    assert_eq!(a.body["calls"][0]["participant_ids"], json!(["1", "2"]));
    let a = send(&app, "GET", "/im/v1/presence?ids=2", Some(GOOD), None).await;
    assert_eq!(
        a.body["presences"][0],
        json!({"user_id": "2", "status": "away", "text": "lunch", "last_seen_ms": 0})
    );

    // Path and body values reach the request as given.
    send(
        &app,
        "PUT",
        &format!("{c}/messages/3/reactions/%F0%9F%91%8D"),
        Some(GOOD),
        None,
    )
    .await;
    match fake.seen().last() {
        Some(Request::React {
            emoji, seq, remove, ..
        }) => {
            assert_eq!((emoji.as_str(), seq.get(), *remove), ("👍", 3, false));
        }
        other => panic!("not a reaction: {other:?}"),
    }
    let req = HttpRequest::post("/im/v1/groups/6/leave")
        .header(header::AUTHORIZATION, format!("Bearer {GOOD}"))
        .header("idempotency-key", "leave-1")
        .body(Body::empty())
        .expect("request");
    raw(&app, req).await;
    match fake.seen().last() {
        Some(Request::ChangeMembers {
            remove,
            request_key,
            add,
            ..
        }) => {
            assert_eq!(remove, &vec![fake::alice().user]);
            assert!(add.is_empty());
            assert_eq!(request_key.as_ref().map(|k| k.as_str()), Some("leave-1"));
        }
        other => panic!("not a membership change: {other:?}"),
    }
}
