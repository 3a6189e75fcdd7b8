//! The AnyChat dialect (`/compat/anychat`) against a real server on port 0, written from the
//! seed document and its contracts (`openapi.json`, `asyncapi.yaml`): every HTTP answer of these
//! tests is validated against the contract (a JSON Schema validator, through
//! `parley_admin_http::compat::contract`): successes against the operation's 200 schema,
//! failures — which AnyChat sends with HTTP 200 and the status in `code` — against the schema
//! the operation documents for that status, or the contract's response envelope. Every
//! WebSocket frame the server sends of the asyncapi's types is validated against its payload
//! schema. Every operation of the contract must have a route.
//!
//! The scenarios cover this file's part of the dialect: register and login (phone and e-mail),
//! refresh, password change, logout, profile, settings, push token, search, QR codes, friends
//! and the blacklist, sessions, sync, and 1:1 and group chat over AnyChat's WebSocket with
//! acks and notifications, and the error shapes for bad tokens, bad input, non-members and
//! unknown ids. An AnyChat user also chats with a native SDK client and sees its recall.
//! (Groups, files, calls and admin: compat_anychat_b.rs.)
#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

#[path = "common/anychat.rs"]
mod any_client;
mod common;

use std::collections::BTreeSet;

use any_client::{Any, User};
use common::{next_message, TestServer, WAIT};
use futures::{SinkExt, StreamExt};
use parley_admin_http::compat::anychat;
use parley_client::Transport;
use parley_protocol::frames::ContentType;
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message as WsMessage;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_of_the_contract_has_a_route() {
    let s = TestServer::start().await;
    let any = Any::new(&s);
    let documented: BTreeSet<(String, String)> = any.contract.operations().into_iter().collect();
    let served: BTreeSet<(String, String)> = anychat::operations()
        .into_iter()
        .map(|(m, p)| (m.to_owned(), p.to_owned()))
        .collect();
    let missing: Vec<_> = documented.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "operations without a route: {missing:?}"
    );
    let extra: Vec<_> = served.difference(&documented).collect();
    assert!(
        extra.is_empty(),
        "routes the contract does not have: {extra:?}"
    );

    // And the router really answers each one: an operation without a route would answer the
    // dialect's "no such route" (`code: 404`) or `code: 405`. Without a token every one but
    // register, login, refresh and the admin login is `code: 401`.
    for (method, path) in &documented {
        let url = format!("{}{}", any.base, path.replace(['{', '}'], ""));
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let res = any.http.request(method.clone(), url).send().await.unwrap();
        let status = res.status().as_u16();
        let body: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap_or_default();
        let code = body["code"].as_u64();
        assert!(
            code != Some(405) && !(code == Some(404) && body["message"] == "no such route"),
            "{method} {path} has no route: {status} {body}"
        );
        if path == "/ws" {
            assert_eq!(status, 401, "the socket needs a token: {body}");
            continue;
        }
        any.envelope.check(&body).unwrap_or_else(|e| panic!("{e}"));
        let open = [
            "/auth/register",
            "/auth/login",
            "/auth/refresh",
            "/admin/auth/login",
        ];
        if !open.contains(&path.as_str()) {
            assert_eq!(code, Some(401), "{method} {path}: {body}");
        }
    }
    let res = any
        .http
        .get(format!("{}/nope", any.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], 404);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_login_refresh_password_and_logout() {
    let s = TestServer::start().await;
    let any = Any::new(&s);

    // /health: bare, no envelope.
    let health: Value = any
        .http
        .get(format!("{}/health", any.root))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");

    let alice = any.register_phone("13800138000", "Alice").await;
    // By e-mail, with the SDK's missing clientVersion and device fields.
    let body = json!({"email": "Bob@Example.com", "password": "password123", "verifyCode": "1"});
    let a = any
        .expect(0, Method::POST, "/auth/register", &[], "", "", Some(body))
        .await;
    assert_eq!(a.data()["user"]["email"], "bob@example.com");
    assert_eq!(a.data()["user"]["phone"], "");

    // Taken, bad phone, bad password, nothing to register with.
    let reg = |phone: &str, password: &str| {
        Some(
            json!({"phoneNumber": phone, "password": password, "verifyCode": "1",
                    "deviceType": "android", "deviceId": "d1"}),
        )
    };
    let a = any
        .expect(
            409,
            Method::POST,
            "/auth/register",
            &[],
            "",
            "",
            reg("13800138000", "password123"),
        )
        .await;
    assert_eq!(a.data(), &Value::Null);
    for (phone, password) in [
        ("12800138000", "password123"),
        ("13900139000", "password"),
        ("13900139000", "pass1"),
    ] {
        any.expect(
            400,
            Method::POST,
            "/auth/register",
            &[],
            "",
            "",
            reg(phone, password),
        )
        .await;
    }
    any.expect(
        400,
        Method::POST,
        "/auth/register",
        &[],
        "",
        "",
        Some(json!({"password": "password123"})),
    )
    .await;
    any.expect(
        400,
        Method::POST,
        "/auth/register",
        &[],
        "",
        "",
        Some(json!([1])),
    )
    .await;

    // Login by phone and by e-mail (any case); wrong passwords and unknown accounts are 401.
    let login = |account: &str, password: &str| {
        Some(
            json!({"account": account, "password": password, "deviceId": "web-1",
                    "deviceType": "Web", "clientVersion": "1.0.0"}),
        )
    };
    let a = any
        .expect(
            0,
            Method::POST,
            "/auth/login",
            &[],
            "",
            "",
            login("13800138000", "password123"),
        )
        .await;
    assert_eq!(a.data()["userId"], alice.id.as_str());
    assert_eq!(a.data()["user"]["nickname"], "Alice");
    let web = a.data()["accessToken"].as_str().unwrap().to_owned();
    any.expect(
        0,
        Method::POST,
        "/auth/login",
        &[],
        "",
        "",
        login("BOB@example.com", "password123"),
    )
    .await;
    for (account, password) in [
        ("13800138000", "password124"),
        ("13700137000", "password123"),
        ("a b", "x"),
    ] {
        any.expect(
            401,
            Method::POST,
            "/auth/login",
            &[],
            "",
            "",
            login(account, password),
        )
        .await;
    }

    // Refresh: a new pair; the old refresh token is spent.
    let a = any
        .expect(
            0,
            Method::POST,
            "/auth/refresh",
            &[],
            "",
            "",
            Some(json!({"refreshToken": alice.refresh})),
        )
        .await;
    let fresh = a.data()["accessToken"].as_str().unwrap().to_owned();
    assert_ne!(fresh, alice.token);
    assert_eq!(a.data()["userId"], alice.id.as_str());
    any.expect(0, Method::GET, "/users/me", &[], "", &fresh, None)
        .await;
    any.expect(
        401,
        Method::POST,
        "/auth/refresh",
        &[],
        "",
        "",
        Some(json!({"refreshToken": alice.refresh})),
    )
    .await;
    any.expect(
        401,
        Method::POST,
        "/auth/refresh",
        &[],
        "",
        "",
        Some(json!({"refreshToken": "nope"})),
    )
    .await;

    // Password change: a wrong old one is refused; then the new one logs in.
    let change = |old: &str, new: &str| Some(json!({"oldPassword": old, "newPassword": new}));
    any.expect(
        401,
        Method::POST,
        "/auth/password/change",
        &[],
        "",
        &fresh,
        change("password999", "newpass123"),
    )
    .await;
    any.expect(
        400,
        Method::POST,
        "/auth/password/change",
        &[],
        "",
        &fresh,
        change("password123", "short"),
    )
    .await;
    any.expect(
        0,
        Method::POST,
        "/auth/password/change",
        &[],
        "",
        &fresh,
        change("password123", "newpass123"),
    )
    .await;
    any.expect(
        0,
        Method::POST,
        "/auth/login",
        &[],
        "",
        "",
        login("13800138000", "newpass123"),
    )
    .await;

    // Logout revokes the token.
    let a = any
        .expect(
            0,
            Method::POST,
            "/auth/login",
            &[],
            "",
            "",
            login("13800138000", "newpass123"),
        )
        .await;
    let token = a.data()["accessToken"].as_str().unwrap().to_owned();
    any.expect(
        0,
        Method::POST,
        "/auth/logout",
        &[],
        "",
        &token,
        Some(json!({"deviceId": "web-1"})),
    )
    .await;
    any.expect(401, Method::GET, "/users/me", &[], "", &token, None)
        .await;

    // Bad tokens everywhere: 401 in the envelope, with HTTP 200.
    let _ = web;
    let a = any
        .expect(401, Method::GET, "/users/me", &[], "", "", None)
        .await;
    assert_eq!(a.status, 200);
    any.expect(401, Method::GET, "/sessions", &[], "", "not-a-token", None)
        .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_settings_search_and_qrcodes() {
    let s = TestServer::start().await;
    let any = Any::new(&s);
    let alice = any.register_phone("13800138001", "Alice").await;
    let bob = any.register_phone("13800138002", "Bobby").await;

    let a = any
        .expect(0, Method::GET, "/users/me", &[], "", &alice.token, None)
        .await;
    let d = a.data();
    assert_eq!(d["userId"], alice.id.as_str());
    assert_eq!(d["phone"], "13800138001");
    assert!(d["createdAt"].as_str().unwrap().ends_with('Z'), "{d}");
    assert_eq!(d["gender"], 0);

    let change = json!({"nickname": "Alice L", "avatar": "https://example.com/a.png",
                        "signature": "hi", "gender": 2, "birthday": "1990-05-01T00:00:00Z",
                        "region": "Beijing"});
    let a = any
        .expect(
            0,
            Method::PUT,
            "/users/me",
            &[],
            "",
            &alice.token,
            Some(change),
        )
        .await;
    let d = a.data();
    assert_eq!(
        (
            &d["nickname"],
            &d["avatar"],
            &d["signature"],
            &d["gender"],
            &d["birthday"],
            &d["region"]
        ),
        (
            &json!("Alice L"),
            &json!("https://example.com/a.png"),
            &json!("hi"),
            &json!(2),
            &json!("1990-05-01T00:00:00Z"),
            &json!("Beijing")
        )
    );
    any.expect(
        400,
        Method::PUT,
        "/users/me",
        &[],
        "",
        &alice.token,
        Some(json!({"gender": 7})),
    )
    .await;
    any.expect(
        400,
        Method::PUT,
        "/users/me",
        &[],
        "",
        &alice.token,
        Some(json!({"birthday": "yesterday"})),
    )
    .await;

    // Settings.
    let a = any
        .expect(
            0,
            Method::GET,
            "/users/me/settings",
            &[],
            "",
            &alice.token,
            None,
        )
        .await;
    assert_eq!(a.data()["userId"], alice.id.as_str());
    let a = any
        .expect(0, Method::PUT, "/users/me/settings", &[], "", &alice.token,
                Some(json!({"notificationEnabled": false, "friendVerifyRequired": true, "language": "zh-CN"})))
        .await;
    assert_eq!(a.data()["notificationEnabled"], false);
    assert_eq!(a.data()["friendVerifyRequired"], true);
    assert_eq!(a.data()["language"], "zh-CN");
    let a = any
        .expect(
            0,
            Method::GET,
            "/users/me/settings",
            &[],
            "",
            &alice.token,
            None,
        )
        .await;
    assert_eq!(a.data()["notificationEnabled"], false);

    // Push token.
    any.expect(
        0,
        Method::POST,
        "/users/me/push-token",
        &[],
        "",
        &alice.token,
        Some(json!({"deviceId": "d", "platform": "ios", "pushToken": "tok-1"})),
    )
    .await;
    any.expect(
        400,
        Method::POST,
        "/users/me/push-token",
        &[],
        "",
        &alice.token,
        Some(json!({})),
    )
    .await;

    // Search: by phone, by nickname, by user id; a keyword is required.
    for keyword in ["13800138002", "bobb", bob.id.as_str()] {
        let a = any
            .expect(
                0,
                Method::GET,
                "/users/search",
                &[],
                &format!("?keyword={keyword}&page=1&pageSize=10"),
                &alice.token,
                None,
            )
            .await;
        let users = a.data()["users"].as_array().unwrap();
        assert!(
            users.iter().any(|u| u["userId"] == bob.id.as_str()),
            "{keyword}: {users:?}"
        );
        assert!(a.data()["total"].as_u64().unwrap() >= 1);
    }
    any.expect(
        400,
        Method::GET,
        "/users/search",
        &[],
        "",
        &alice.token,
        None,
    )
    .await;

    // Another user; unknown and malformed ids are 404.
    let a = any
        .expect(
            0,
            Method::GET,
            "/users/{userId}",
            &[&bob.id],
            "",
            &alice.token,
            None,
        )
        .await;
    assert_eq!(a.data()["nickname"], "Bobby");
    any.expect(
        404,
        Method::GET,
        "/users/{userId}",
        &["01000000-0000-8000-8000-0000000f4240"],
        "",
        &alice.token,
        None,
    )
    .await;
    any.expect(
        404,
        Method::GET,
        "/users/{userId}",
        &["user-123"],
        "",
        &alice.token,
        None,
    )
    .await;

    // QR codes (beyond the contract).
    let a = any
        .extra(
            0,
            Method::POST,
            "/users/me/qrcode/refresh",
            &[],
            "",
            &bob.token,
        )
        .await;
    let code = a.data()["qrcode"].as_str().unwrap().to_owned();
    let a = any
        .extra(
            0,
            Method::GET,
            "/users/qrcode",
            &[],
            &format!("?qrcode={code}"),
            &alice.token,
        )
        .await;
    assert_eq!(a.data()["userId"], bob.id.as_str());
    any.extra(
        404,
        Method::GET,
        "/users/qrcode",
        &[],
        "?qrcode=nope",
        &alice.token,
    )
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn friends_requests_remarks_and_the_blacklist() {
    let s = TestServer::start().await;
    let any = Any::new(&s);
    let alice = any.register_phone("13800138011", "Alice").await;
    let bob = any.register_phone("13800138012", "Bob").await;
    let carol = any.register_phone("13800138013", "Carol").await;
    let mut bob_ws = any.socket(&bob.token).await;

    // Alice asks Bob (the `toUserId` alias); Bob is told, and sees it received.
    let a = any
        .expect(
            0,
            Method::POST,
            "/friends/requests",
            &[],
            "",
            &alice.token,
            Some(json!({"toUserId": bob.id, "message": "hi, Alice here", "source": "search"})),
        )
        .await;
    assert_eq!(a.data()["autoAccepted"], false);
    // Request ids are the other user's numeric id: Bob's as Alice sees her request, Alice's as
    // Bob sees it.
    assert_eq!(a.data()["requestId"], decimal(&bob));
    let n = bob_ws.notification("friend.request").await;
    assert_eq!(n["fromUserId"], alice.id.as_str());
    assert_eq!(n["message"], "hi, Alice here");
    assert_eq!(n["requestId"], decimal(&alice));
    let request_id = n["requestId"].as_u64().unwrap();
    let a = any
        .expect(
            0,
            Method::GET,
            "/friends/requests",
            &[],
            "",
            &bob.token,
            None,
        )
        .await;
    let rs = a.data()["requests"].as_array().unwrap();
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0]["id"].as_u64(), Some(request_id));
    assert_eq!(rs[0]["fromUserId"], alice.id.as_str());
    assert_eq!(rs[0]["message"], "hi, Alice here");
    let a = any
        .expect(
            0,
            Method::GET,
            "/friends/requests",
            &[],
            "?type=sent",
            &alice.token,
            None,
        )
        .await;
    assert_eq!(a.data()["requests"][0]["toUserId"], bob.id.as_str());
    any.expect(
        400,
        Method::GET,
        "/friends/requests",
        &[],
        "?type=both",
        &alice.token,
        None,
    )
    .await;

    // Bob accepts (`{accept: true}`): both are friends.
    let rid = request_id.to_string();
    any.expect(
        400,
        Method::PUT,
        "/friends/requests/{id}",
        &[&rid],
        "",
        &bob.token,
        Some(json!({"action": "maybe"})),
    )
    .await;
    any.expect(
        0,
        Method::PUT,
        "/friends/requests/{id}",
        &[&rid],
        "",
        &bob.token,
        Some(json!({"accept": true})),
    )
    .await;
    for (me, other) in [(&alice, &bob), (&bob, &alice)] {
        let a = any
            .expect(0, Method::GET, "/friends", &[], "", &me.token, None)
            .await;
        assert_eq!(a.data()["total"], 1);
        assert_eq!(a.data()["friends"][0]["userId"], other.id.as_str());
    }

    // Carol asks Bob; Bob rejects with `{action: "reject"}`.
    any.expect(
        0,
        Method::POST,
        "/friends/requests",
        &[],
        "",
        &carol.token,
        Some(json!({"userId": decimal(&bob)})),
    )
    .await;
    let a = any
        .expect(
            0,
            Method::GET,
            "/friends/requests",
            &[],
            "",
            &bob.token,
            None,
        )
        .await;
    let rid = a.data()["requests"][0]["id"].to_string();
    any.expect(
        0,
        Method::PUT,
        "/friends/requests/{id}",
        &[&rid],
        "",
        &bob.token,
        Some(json!({"action": "reject"})),
    )
    .await;
    let a = any
        .expect(0, Method::GET, "/friends", &[], "", &carol.token, None)
        .await;
    assert_eq!(a.data()["total"], 0);
    // Answering a request nobody made is refused.
    let a = any
        .call(
            Method::PUT,
            "/friends/requests/{id}",
            &[&rid],
            "",
            &bob.token,
            Some(json!({"action": "accept"})),
        )
        .await;
    assert_ne!(a.code(), 0, "{}", a.body);
    any.expect(
        400,
        Method::POST,
        "/friends/requests",
        &[],
        "",
        &carol.token,
        Some(json!({"message": "x"})),
    )
    .await;

    // Remark.
    any.expect(
        0,
        Method::PUT,
        "/friends/{id}/remark",
        &[&bob.id],
        "",
        &alice.token,
        Some(json!({"remark": "Bobby"})),
    )
    .await;
    let a = any
        .expect(0, Method::GET, "/friends", &[], "", &alice.token, None)
        .await;
    assert_eq!(a.data()["friends"][0]["remark"], "Bobby");

    // Blacklist: Bob blocks Carol; Carol cannot message Bob; unblock.
    any.expect(
        0,
        Method::POST,
        "/friends/blacklist",
        &[],
        "",
        &bob.token,
        Some(json!({"userId": carol.id})),
    )
    .await;
    let a = any
        .expect(
            0,
            Method::GET,
            "/friends/blacklist",
            &[],
            "",
            &bob.token,
            None,
        )
        .await;
    assert_eq!(a.data()["total"], 1);
    let item = &a.data()["items"][0];
    assert_eq!(item["blockedUserId"], carol.id.as_str());
    let mut carol_ws = any.socket(&carol.token).await;
    let f = carol_ws.say(&bob.id, "private", "let me in", "c-1").await;
    assert_eq!(f["type"], "message.error", "{f}");
    assert_eq!(f["payload"]["code"], 403);
    let item_id = item["id"].to_string();
    any.expect(
        0,
        Method::DELETE,
        "/friends/blacklist/{id}",
        &[&item_id],
        "",
        &bob.token,
        None,
    )
    .await;
    let a = any
        .expect(
            0,
            Method::GET,
            "/friends/blacklist",
            &[],
            "",
            &bob.token,
            None,
        )
        .await;
    assert_eq!(a.data()["total"], 0);

    // Delete: Alice and Bob are no longer friends; Bob hears of it.
    any.expect(
        0,
        Method::DELETE,
        "/friends/{id}",
        &[&bob.id],
        "",
        &alice.token,
        None,
    )
    .await;
    let n = bob_ws.notification("friend.deleted").await;
    assert_eq!(n["userId"], alice.id.as_str());
    let a = any
        .expect(0, Method::GET, "/friends", &[], "", &bob.token, None)
        .await;
    assert_eq!(a.data()["total"], 0);
    any.expect(
        404,
        Method::DELETE,
        "/friends/{id}",
        &["nobody"],
        "",
        &alice.token,
        None,
    )
    .await;
    s.stop().await;
}

/// `user`'s id as a number (our native form, which other dialects show): accepted too.
fn decimal(user: &User) -> Value {
    let hex = user.id.rsplit('-').next().unwrap();
    json!(u64::from_str_radix(hex, 16).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_chat_over_the_websocket_sessions_and_sync() {
    let s = TestServer::start().await;
    let any = Any::new(&s);
    let alice = any.register_phone("13800138021", "Alice").await;
    let bob = any.register_phone("13800138022", "Bob").await;
    // Friends first (the server's default add policy may ask for it).
    any.expect(
        0,
        Method::POST,
        "/friends/requests",
        &[],
        "",
        &alice.token,
        Some(json!({"userId": bob.id})),
    )
    .await;
    let a = any
        .expect(
            0,
            Method::GET,
            "/friends/requests",
            &[],
            "",
            &bob.token,
            None,
        )
        .await;
    if let Some(r) = a.data()["requests"].as_array().unwrap().first() {
        let rid = r["id"].to_string();
        any.expect(
            0,
            Method::PUT,
            "/friends/requests/{id}",
            &[&rid],
            "",
            &bob.token,
            Some(json!({"action": "accept"})),
        )
        .await;
    }
    let mut a_ws = any.socket(&alice.token).await;
    let mut b_ws = any.socket(&bob.token).await;

    // ping -> pong.
    a_ws.send(json!({"type": "ping"})).await;
    a_ws.until(|v| v["type"] == "pong").await;

    // Alice writes to Bob, naming the conversation by Bob's user id (what clients build).
    let sent = a_ws.say(&bob.id, "private", "hello bob", "local-1").await;
    assert_eq!(sent["type"], "message.sent", "{sent}");
    let p = &sent["payload"];
    assert_eq!(
        (p["sequence"].as_u64(), p["localId"].as_str()),
        (Some(1), Some("local-1"))
    );
    let ts = p["timestamp"].as_u64().unwrap();
    assert!(ts > 1_600_000_000 && ts < 10_000_000_000, "seconds: {ts}");
    let first_id = p["messageId"].as_str().unwrap().to_owned();
    let n = b_ws.notification("message.new").await;
    assert_eq!(n["messageId"], first_id.as_str());
    assert_eq!(n["senderId"], alice.id.as_str());
    assert_eq!(n["content"], "hello bob");
    assert_eq!(n["contentType"], "text");
    assert_eq!(n["conversationType"], "private");
    assert_eq!(n["sequence"], 1);
    let conv = n["conversationId"].as_str().unwrap().to_owned();

    // The same localId again: the same ack (idempotent), no second message.
    let again = a_ws.say(&bob.id, "private", "hello bob", "local-1").await;
    assert_eq!(again["payload"]["messageId"], first_id.as_str());

    // Bob answers in the conversation id he was given, replying to Alice's message; Alice gets
    // it, and other pair forms land in the same conversation.
    b_ws.send(json!({"type": "message.send", "payload": {
        "conversationId": conv, "conversationType": "private", "contentType": "text",
        "content": "hi alice", "localId": "b-1", "replyTo": first_id, "atUsers": [alice.id],
    }}))
    .await;
    let sent = b_ws.until(|v| v["type"] == "message.sent").await;
    assert_eq!(sent["payload"]["sequence"], 2);
    let n = a_ws.notification("message.new").await;
    assert_eq!(n["content"], "hi alice");
    assert_eq!(n["replyTo"], first_id.as_str());
    assert_eq!(n["atUsers"], json!([alice.id]));
    assert_eq!(n["conversationId"], conv.as_str());
    for (i, form) in [
        format!("{}_{}", alice.id, bob.id),
        format!("{}:{}", bob.id, alice.id),
    ]
    .iter()
    .enumerate()
    {
        let local = format!("a-{}", i + 2);
        let sent = a_ws.say(form, "private", "more", &local).await;
        assert_eq!(sent["payload"]["sequence"], i as u64 + 3, "{form}: {sent}");
    }
    for i in 0..2 {
        let n = b_ws.notification("message.new").await;
        assert_eq!(n["sequence"], i + 3);
    }

    // Bad sends: unknown conversation, bad content type, a stranger's conversation id.
    let f = a_ws.say("conv-123", "private", "x", "bad-1").await;
    assert_eq!(
        (f["type"].as_str(), f["payload"]["code"].as_u64()),
        (Some("message.error"), Some(404))
    );
    a_ws.send(json!({"type": "message.send", "payload": {"conversationId": conv,
        "conversationType": "private", "contentType": "hologram", "content": "x", "localId": "bad-2"}}))
        .await;
    let f = a_ws.until(|v| v["payload"]["localId"] == "bad-2").await;
    assert_eq!(f["payload"]["code"], 400);
    a_ws.send(json!({"type": "message.send", "payload": {"conversationId": conv}}))
        .await;
    let f = a_ws.until(|v| v["type"] == "message.error").await;
    assert_eq!(f["payload"]["code"], 400);

    // Sessions: both see the conversation; Bob has unread messages. Bob's own message moves his
    // read cursor, stored by the cursor writer up to a round (10 ms) after the message
    // (core::CURSOR_ROUND): on a busy machine the first listing may come before that round.
    let mut tries = 0;
    let mine = loop {
        let a = any
            .expect(0, Method::GET, "/sessions", &[], "", &bob.token, None)
            .await;
        let sessions = a.data()["sessions"].as_array().unwrap();
        let mine = sessions
            .iter()
            .find(|x| x["sessionId"] == conv.as_str())
            .expect("listed")
            .clone();
        tries += 1;
        if mine["unreadCount"] == 2 || tries == 200 {
            break mine;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    };
    assert_eq!(mine["sessionType"], "single");
    assert_eq!(mine["targetId"], alice.id.as_str());
    assert_eq!(mine["name"], "Alice");
    assert_eq!(mine["lastMessage"]["sequence"], 4);
    // Bob's own message moved his read cursor: 3 and 4 are unread.
    assert_eq!(mine["unreadCount"], 2);
    let a = any
        .expect(
            0,
            Method::GET,
            "/sessions/unread/total",
            &[],
            "",
            &bob.token,
            None,
        )
        .await;
    assert_eq!(a.data()["totalUnread"], 2);
    let a = any
        .expect(
            0,
            Method::GET,
            "/sessions/{sessionId}",
            &[&conv],
            "",
            &bob.token,
            None,
        )
        .await;
    assert_eq!(a.data()["unreadCount"], 2);
    // By the peer's id too.
    let a = any
        .expect(
            0,
            Method::GET,
            "/sessions/{sessionId}",
            &[&alice.id],
            "",
            &bob.token,
            None,
        )
        .await;
    assert_eq!(a.data()["sessionId"], conv.as_str());

    // Read: Alice hears of it; Bob's other sockets would hear of the new unread count.
    any.expect(
        0,
        Method::POST,
        "/sessions/{sessionId}/read",
        &[&conv],
        "",
        &bob.token,
        None,
    )
    .await;
    let r = a_ws.notification("message.read_receipt").await;
    assert_eq!(
        (r["userId"].as_str(), r["lastReadSeq"].as_u64()),
        (Some(bob.id.as_str()), Some(4))
    );
    let a = any
        .expect(
            0,
            Method::GET,
            "/sessions/unread/total",
            &[],
            "",
            &bob.token,
            None,
        )
        .await;
    assert_eq!(a.data()["totalUnread"], 0);

    // Mute and pin.
    any.expect(
        0,
        Method::PUT,
        "/sessions/{sessionId}/pin",
        &[&conv],
        "",
        &bob.token,
        Some(json!({"pinned": true})),
    )
    .await;
    // Bob's socket hears of what his REST calls changed: the read, then the pin.
    let u = b_ws.notification("session.unread_updated").await;
    assert_eq!(
        (u["sessionId"].as_str(), u["unreadCount"].as_u64()),
        (Some(conv.as_str()), Some(0))
    );
    let p = b_ws.notification("session.pin_updated").await;
    assert_eq!(
        (p["sessionId"].as_str(), p["isPinned"].as_bool()),
        (Some(conv.as_str()), Some(true))
    );
    // A friend's profile change reaches the other.
    any.expect(
        0,
        Method::PUT,
        "/users/me",
        &[],
        "",
        &alice.token,
        Some(json!({"nickname": "Alice 2"})),
    )
    .await;
    let p = b_ws.notification("user.friend_profile_changed").await;
    assert_eq!(
        (p["userId"].as_str(), p["nickname"].as_str()),
        (Some(alice.id.as_str()), Some("Alice 2"))
    );
    any.expect(
        0,
        Method::PUT,
        "/sessions/{sessionId}/mute",
        &[&conv],
        "",
        &bob.token,
        Some(json!({"muted": true})),
    )
    .await;
    any.expect(
        400,
        Method::PUT,
        "/sessions/{sessionId}/mute",
        &[&conv],
        "",
        &bob.token,
        Some(json!({})),
    )
    .await;
    let a = any
        .expect(
            0,
            Method::GET,
            "/sessions/{sessionId}",
            &[&conv],
            "",
            &bob.token,
            None,
        )
        .await;
    assert_eq!(
        (&a.data()["isPinned"], &a.data()["isMuted"]),
        (&json!(true), &json!(true))
    );

    // History, newest first, paged with `before` (a sequence or a message id).
    let a = any
        .extra(
            0,
            Method::GET,
            "/sessions/{sessionId}/messages",
            &[&conv],
            "?limit=2",
            &bob.token,
        )
        .await;
    let list = a.data()["list"].as_array().unwrap();
    let seqs: Vec<u64> = list
        .iter()
        .map(|m| m["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![4, 3]);
    assert_eq!(a.data()["hasMore"], true);
    let a = any
        .extra(
            0,
            Method::GET,
            "/sessions/{sessionId}/messages",
            &[&conv],
            "?limit=2&before=3",
            &bob.token,
        )
        .await;
    let seqs: Vec<u64> = a.data()["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![2, 1]);
    let before = format!("?before={first_id}");
    let a = any
        .extra(
            0,
            Method::GET,
            "/sessions/{sessionId}/messages",
            &[&conv],
            &before,
            &bob.token,
        )
        .await;
    assert_eq!(a.data()["list"], json!([]));

    // Sync: everything after what the client has.
    let body = json!({"lastSyncTime": 0, "conversationSeqs": [
        {"conversationId": conv, "conversationType": "private", "lastSeq": 2}]});
    let a = any
        .expect(0, Method::POST, "/sync", &[], "", &bob.token, Some(body))
        .await;
    let d = a.data();
    let cm = d["conversationMessages"].as_array().unwrap();
    assert_eq!(cm.len(), 1, "{d}");
    let seqs: Vec<u64> = cm[0]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![3, 4]);
    assert_eq!(d["friends"][0]["userId"], alice.id.as_str());
    assert!(d["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["sessionId"] == conv.as_str()));
    let body = json!({"conversationSeqs": [{"conversationId": conv, "lastSeq": 1}], "limitPerConversation": 2});
    let a = any
        .expect(
            0,
            Method::POST,
            "/sync/messages",
            &[],
            "",
            &bob.token,
            Some(body),
        )
        .await;
    let c0 = &a.data()["conversations"][0];
    let seqs: Vec<u64> = c0["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![2, 3]);
    assert_eq!(c0["hasMore"], true);
    let body = json!({"conversationSeqs": [{"conversationId": conv, "lastSeq": 0}], "limitPerConversation": 3});
    let a = any
        .expect(
            0,
            Method::POST,
            "/sync/messages",
            &[],
            "",
            &bob.token,
            Some(body),
        )
        .await;
    let seqs: Vec<u64> = a.data()["conversations"][0]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 2, 3]);

    // Delete hides the session until its next message.
    any.expect(
        0,
        Method::DELETE,
        "/sessions/{sessionId}",
        &[&conv],
        "",
        &bob.token,
        None,
    )
    .await;
    let a = any
        .expect(0, Method::GET, "/sessions", &[], "", &bob.token, None)
        .await;
    assert!(!a.data()["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["sessionId"] == conv.as_str()));

    // Strangers and unknown ids.
    let eve = any.register_phone("13800138029", "Eve").await;
    any.expect(
        404,
        Method::GET,
        "/sessions/{sessionId}",
        &[&conv],
        "",
        &eve.token,
        None,
    )
    .await;
    any.extra(
        404,
        Method::GET,
        "/sessions/{sessionId}/messages",
        &[&conv],
        "",
        &eve.token,
    )
    .await;
    any.expect(
        404,
        Method::POST,
        "/sessions/{sessionId}/read",
        &[&conv],
        "",
        &eve.token,
        None,
    )
    .await;
    any.expect(
        404,
        Method::GET,
        "/sessions/{sessionId}",
        &["nope"],
        "",
        &bob.token,
        None,
    )
    .await;
    let mut e_ws = any.socket(&eve.token).await;
    let f = e_ws.say(&conv, "private", "let me in", "e-1").await;
    assert_eq!(
        (f["type"].as_str(), f["payload"]["code"].as_u64()),
        (Some("message.error"), Some(404))
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_chat_notifications_and_socket_rules() {
    let s = TestServer::start().await;
    let any = Any::new(&s);
    let alice = any.register_phone("13800138031", "Alice").await;
    let bob = any.register_phone("13800138032", "Bob").await;
    let carol = any.register_phone("13800138033", "Carol").await;
    let mut b_ws = any.socket(&bob.token).await;
    let mut c_ws = any.socket(&carol.token).await;

    // A group (POST /groups is anychat-b's): Bob and Carol are told they were invited.
    let a = any
        .expect(
            0,
            Method::POST,
            "/groups",
            &[],
            "",
            &alice.token,
            Some(json!({"name": "team", "memberIds": [bob.id]})),
        )
        .await;
    let group = a.data()["groupId"].as_str().unwrap().to_owned();
    // Making a group is no event of the core (members learn of it by its messages); adding a
    // member is: Carol is told she was invited, Bob that she joined.
    any.expect(
        0,
        Method::POST,
        "/groups/{id}/members",
        &[&group],
        "",
        &alice.token,
        Some(json!({"userIds": [carol.id]})),
    )
    .await;
    let n = b_ws.notification("group.member_joined").await;
    assert_eq!(n["userIds"], json!([carol.id]));
    assert_eq!(n["groupId"], group.as_str());
    for ws in [&mut c_ws] {
        let n = ws.notification("group.invited").await;
        assert_eq!(n["groupName"], "team");
        assert_eq!(
            (n["groupId"].as_str(), n["inviterId"].as_str()),
            (Some(group.as_str()), Some(alice.id.as_str()))
        );
    }

    // Alice sends over her socket; both get it once, in order, and acks come with sequences.
    let mut a_ws = any.socket(&alice.token).await;
    let mut acked = Vec::new();
    for i in 0..3 {
        let sent = a_ws
            .say(&group, "group", &format!("m{i}"), &format!("g-{i}"))
            .await;
        assert_eq!(sent["type"], "message.sent", "{sent}");
        acked.push(sent["payload"]["sequence"].as_u64().unwrap());
    }
    assert!(acked.windows(2).all(|w| w[1] == w[0] + 1), "{acked:?}");
    for ws in [&mut b_ws, &mut c_ws] {
        for (i, seq) in acked.iter().enumerate() {
            let n = ws.notification("message.new").await;
            assert_eq!(
                (n["content"].as_str(), n["sequence"].as_u64()),
                (Some(format!("m{i}").as_str()), Some(*seq))
            );
            assert_eq!(n["conversationType"], "group");
            assert_eq!(n["conversationId"], group.as_str());
        }
    }
    // Mentions and typing.
    a_ws.send(
        json!({"type": "message.send", "payload": {"conversationId": group,
        "conversationType": "group", "contentType": "text", "content": "@all look",
        "atUsers": ["all"], "localId": "g-all"}}),
    )
    .await;
    a_ws.until(|v| v["type"] == "message.sent").await;
    let n = b_ws.notification("message.new").await;
    assert_eq!(n["content"], "@all look");
    c_ws.notification("message.new").await;
    b_ws.send(
        json!({"type": "message.typing", "payload": {"conversationId": group, "typing": true}}),
    )
    .await;
    let t = a_ws.notification("message.typing").await;
    assert_eq!(t["fromUserId"], bob.id.as_str());

    // Sessions list the group with its name.
    let a = any
        .expect(0, Method::GET, "/sessions", &[], "", &carol.token, None)
        .await;
    let g = a.data()["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["sessionId"] == group.as_str())
        .cloned()
        .expect("listed");
    assert_eq!(
        (
            g["sessionType"].as_str(),
            g["name"].as_str(),
            g["targetId"].as_str()
        ),
        (Some("group"), Some("team"), Some(group.as_str()))
    );

    // A non-member cannot send to the group.
    let dave = any.register_phone("13800138034", "Dave").await;
    let mut d_ws = any.socket(&dave.token).await;
    let f = d_ws.say(&group, "group", "hi", "d-1").await;
    assert_eq!(
        (f["type"].as_str(), f["payload"]["code"].as_u64()),
        (Some("message.error"), Some(404))
    );

    // Unknown frames and binary frames are answered with errors; the socket stays.
    d_ws.send(json!({"type": "message.fly"})).await;
    let f = d_ws.until(|v| v["type"] == "message.error").await;
    assert_eq!(f["payload"]["code"], 400);
    d_ws.ws
        .send(WsMessage::Text("not json".into()))
        .await
        .unwrap();
    d_ws.until(|v| v["type"] == "message.error").await;
    d_ws.send(json!({"type": "ping"})).await;
    d_ws.until(|v| v["type"] == "pong").await;

    // One socket per user: a new one closes the old with 1000.
    let mut d2 = any.socket(&dave.token).await;
    let closed = loop {
        match tokio::time::timeout(WAIT, d_ws.ws.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(WsMessage::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame: {other:?}"),
        }
    };
    assert_eq!(closed.map(|f| u16::from(f.code)), Some(1000));
    d2.send(json!({"type": "ping"})).await;
    d2.until(|v| v["type"] == "pong").await;

    // A frame over 64 KB ends the socket.
    let big = "x".repeat(70 * 1024);
    let _ = d2.ws.send(WsMessage::Text(big.into())).await;
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match d2.ws.next().await {
                None | Some(Err(_)) | Some(Ok(WsMessage::Close(_))) => break,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "an oversized frame ends the socket");

    // Bad tokens are refused before the upgrade with HTTP 401.
    for url in [format!("{}?token=not-a-token", any.ws), any.ws.clone()] {
        let err = tokio_tungstenite::connect_async(url)
            .await
            .expect_err("refused");
        match err {
            tokio_tungstenite::tungstenite::Error::Http(r) => assert_eq!(r.status().as_u16(), 401),
            e => panic!("unexpected: {e}"),
        }
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anychat_user_chats_with_a_native_client_and_sees_its_recall() {
    let s = TestServer::start().await;
    let any = Any::new(&s);
    let frank = any.register_phone("13800138041", "Frank").await;
    let (native, mut events) = s.register(Transport::Tls, "nina").await;

    // Frank finds Nina by her account name and writes to her by her user id.
    let a = any
        .expect(
            0,
            Method::GET,
            "/users/search",
            &[],
            "?keyword=nina",
            &frank.token,
            None,
        )
        .await;
    let nina = a.data()["users"][0]["userId"].as_str().unwrap().to_owned();
    assert_eq!(
        nina,
        format!("01000000-0000-8000-8000-{:012x}", native.user_id().get())
    );
    let mut ws = any.socket(&frank.token).await;
    let ack = ws.say(&nina, "private", "hi nina", "f-1").await;
    assert_eq!(ack["type"], "message.sent", "{ack}");
    let got = next_message(&mut events).await;
    assert_eq!(&got.content[..], b"hi nina");
    assert_eq!(got.seq.get(), ack["payload"]["sequence"].as_u64().unwrap());

    // Nina answers natively, then recalls it: Frank sees both, and history shows the recall.
    let sent = native
        .send(
            got.conversation,
            ContentType::Text,
            bytes::Bytes::from_static(b"oops"),
        )
        .await
        .unwrap();
    let n = ws.notification("message.new").await;
    assert_eq!(
        (n["content"].as_str(), n["senderId"].as_str()),
        (Some("oops"), Some(nina.as_str()))
    );
    let message_id = n["messageId"].as_str().unwrap().to_owned();
    let conv = n["conversationId"].as_str().unwrap().to_owned();
    native
        .recall_message(got.conversation, sent.seq)
        .await
        .unwrap();
    let r = ws.notification("message.recalled").await;
    assert_eq!(
        (r["messageId"].as_str(), r["conversationId"].as_str()),
        (Some(message_id.as_str()), Some(conv.as_str()))
    );
    let a = any
        .extra(
            0,
            Method::GET,
            "/sessions/{sessionId}/messages",
            &[&conv],
            "",
            &frank.token,
        )
        .await;
    let list = a.data()["list"].as_array().unwrap();
    let recalled = list
        .iter()
        .find(|m| m["messageId"] == message_id.as_str())
        .expect("listed");
    assert_eq!(
        (recalled["status"].as_u64(), recalled["content"].as_str()),
        (Some(1), Some(""))
    );
    s.stop().await;
}
