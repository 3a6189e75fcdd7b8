//! The Wetty Chat dialect (`/compat/wetty`) against a real server on port 0, written from the
//! seed document (`compat_wetty/seed_004.txt`, a copy of seed 004): every route the document
//! names is served; register and login by client type, profile, friends and block, a group
//! with an owner, a manager and a muted member, group chat over HTTP with pushes on the
//! WebSocket (ping and pong), history paging by cursor, idempotent sends, read position,
//! recall, files up and down; the plain-text error shapes for a bad token, bad input, a
//! non-member, an unknown id and an existing member; header trust on and off; and a Wetty user
//! chatting with a native SDK client.
#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

mod common;

use common::{next_message, TestServer, WAIT};
use futures::{SinkExt, StreamExt};
use parley_client::Transport;
use parley_protocol::frames::{ContentType, PeerRef};
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// The seed document.
const SEED: &str = include_str!("compat_wetty/seed_004.txt");

/// How a request authenticates.
#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Bearer(&'a str),
    /// The document's `X-User-Id` header.
    Header(&'a str),
}

/// A Wetty client of one server.
struct Wt {
    http: reqwest::Client,
    base: String,
    ws: String,
}

/// A registered user: id and token.
struct User {
    uid: String,
    token: String,
}

impl Wt {
    fn new(s: &TestServer) -> Wt {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Wt {
            http: reqwest::Client::builder().timeout(WAIT).build().unwrap(),
            base: format!("http://{}/compat/wetty", s.http),
            ws: format!("ws://{}/compat/wetty", s.http),
        }
    }

    /// `method path`: (status, body as text). Errors are plain text, never JSON.
    async fn raw(
        &self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        body: Option<Value>,
    ) -> (u16, String) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        req = match auth {
            Auth::None => req,
            Auth::Bearer(t) => req.bearer_auth(t),
            Auth::Header(v) => req.header("X-User-Id", v),
        };
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        if status >= 400 {
            let ct = res.headers()[reqwest::header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .to_owned();
            assert!(
                ct.starts_with("text/plain"),
                "{path}: errors are plain text, got {ct}"
            );
        }
        (status, res.text().await.unwrap())
    }

    /// `method path` expecting `status`; the JSON body (`null` for none).
    async fn expect(
        &self,
        status: u16,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        body: Option<Value>,
    ) -> Value {
        let (got, text) = self.raw(method.clone(), path, auth, body).await;
        assert_eq!(got, status, "{method} {path}: {text}");
        if status >= 400 {
            assert!(!text.is_empty(), "{method} {path}: an error has a message");
            return json!(text);
        }
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        }
    }

    async fn register(&self, name: &str, client_type: &str) -> User {
        let v = self
            .expect(
                201,
                Method::POST,
                "/users/auth/register",
                Auth::None,
                Some(json!({"username": name, "password": "password-123", "client_type": client_type})),
            )
            .await;
        User {
            uid: v["uid"].as_str().unwrap().to_owned(),
            token: v["token"].as_str().unwrap().to_owned(),
        }
    }

    /// A push socket at `path` (with its query).
    async fn socket(&self, path: &str) -> Sock {
        let (ws, _) = tokio::time::timeout(
            WAIT,
            tokio_tungstenite::connect_async(format!("{}{path}", self.ws)),
        )
        .await
        .unwrap()
        .unwrap();
        Sock { ws }
    }
}

struct Sock {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Sock {
    async fn text(&mut self, t: &str) {
        self.ws.send(WsMessage::Text(t.into())).await.unwrap();
    }

    /// The next text frame.
    async fn next_text(&mut self) -> String {
        loop {
            let m = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame in time")
                .unwrap()
                .unwrap();
            match m {
                WsMessage::Text(t) => return t.to_string(),
                WsMessage::Close(c) => panic!("closed: {c:?}"),
                _ => {}
            }
        }
    }

    /// The next frame of `kind` (`{type, payload}`), skipping others.
    async fn next(&mut self, kind: &str) -> Value {
        loop {
            let t = self.next_text().await;
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == kind {
                return v["payload"].clone();
            }
        }
    }
}

/// The routes the document names: `**METHOD** \`/path\``, `\`METHOD /path\`` and the
/// WebSocket's `ws://<domain>/path` (as `GET`), queries dropped.
fn document_routes() -> Vec<(String, String)> {
    const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];
    let mut out = Vec::new();
    for line in SEED.lines() {
        let spans: Vec<&str> = line.split('`').skip(1).step_by(2).collect();
        for span in &spans {
            if let Some((m, p)) = span.split_once(' ') {
                if METHODS.contains(&m) && p.starts_with('/') {
                    out.push((m.to_owned(), p.to_owned()));
                }
            }
            if let Some(rest) = span.strip_prefix("ws://<domain>") {
                out.push(("GET".to_owned(), rest.to_owned()));
            }
        }
        for m in METHODS {
            if line.contains(&format!("**{m}**")) {
                if let Some(p) = spans.iter().find(|s| s.starts_with('/')) {
                    out.push((m.to_owned(), (*p).to_owned()));
                }
            }
        }
    }
    for (_, p) in &mut out {
        if let Some((path, _)) = p.split_once('?') {
            *p = path.to_owned();
        }
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn the_document_names_every_module() {
    let routes = document_routes();
    // If the extraction broke, the route test below would pass on nothing.
    assert!(routes.len() >= 24, "{routes:?}");
    for want in [
        ("POST", "/users/auth/login"),
        ("POST", "/group/{group_id}/mute"),
        ("POST", "/fserv/upload"),
        ("GET", "/f/fserv/download/{fid}"),
        ("GET", "/ws/chats"),
    ] {
        assert!(
            routes.iter().any(|(m, p)| m == want.0 && p == want.1),
            "{want:?} not extracted from {routes:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_of_the_document_is_served() {
    let s = TestServer::start().await;
    let wt = Wt::new(&s);
    let u = wt.register("routes", "web").await;
    let mut missing = Vec::new();
    for (method, path) in document_routes() {
        let concrete: String = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "9" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let (status, body) = wt
            .raw(
                method.clone(),
                &concrete,
                Auth::Bearer(&u.token),
                Some(json!({})),
            )
            .await;
        // The router's own answers: a path it does not know, a method it does not serve.
        if status == 405 || (status == 404 && body == "no such route") {
            missing.push(format!("{method} {path} -> {status} {body}"));
        }
    }
    assert!(missing.is_empty(), "not served: {missing:#?}");
    let (status, body) = wt.raw(Method::GET, "/nope", Auth::None, None).await;
    assert_eq!((status, body.as_str()), (404, "no such route"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_friends_groups_chats_and_files() {
    let s = TestServer::start().await;
    let wt = Wt::new(&s);
    let health = wt
        .expect(200, Method::GET, "/health", Auth::None, None)
        .await;
    assert_eq!(health["status"], "ok");

    // Register and login, by client type.
    let alice = wt.register("alice", "web").await;
    let bob = wt.register("bob", "mobile").await;
    let carol = wt.register("carol", "web").await;
    let login = |name: &str, client: &str| json!({"username": name, "password": "password-123", "client_type": client});
    let l = wt
        .expect(
            200,
            Method::POST,
            "/users/auth/login",
            Auth::None,
            Some(login("alice", "mobile")),
        )
        .await;
    assert_eq!(l["uid"], alice.uid.as_str());
    assert_eq!(l["client_type"], "mobile");
    assert!(l["token"].as_str().unwrap().len() > 10 && l["user_key"].is_string());
    wt.expect(
        401,
        Method::POST,
        "/users/auth/login",
        Auth::None,
        Some(json!({"username": "alice", "password": "wrong-password-1", "client_type": "web"})),
    )
    .await;
    wt.expect(
        400,
        Method::POST,
        "/users/auth/login",
        Auth::None,
        Some(login("alice", "tv")),
    )
    .await;
    wt.expect(
        409,
        Method::POST,
        "/users/auth/register",
        Auth::None,
        Some(login("alice", "web")),
    )
    .await;
    wt.expect(
        400,
        Method::POST,
        "/users/auth/register",
        Auth::None,
        Some(json!({"username": "x"})),
    )
    .await;

    // Profile.
    let a = Auth::Bearer(&alice.token);
    let b = Auth::Bearer(&bob.token);
    let c = Auth::Bearer(&carol.token);
    let p = wt
        .expect(200, Method::PUT, "/users/profile", a, Some(json!({"nickname": "Alice", "bio": "hi", "sr_link": "https://sr.example/alice", "add_friend_setting": "verify"})))
        .await;
    assert_eq!(p["nickname"], "Alice");
    let p = wt.expect(200, Method::GET, "/users/profile", a, None).await;
    assert_eq!(p["bio"], "hi");
    assert_eq!(p["sr_link"], "https://sr.example/alice");
    assert_eq!(p["add_friend_setting"], "verify");
    assert_eq!(p["uid"], alice.uid.as_str());
    wt.expect(
        400,
        Method::PUT,
        "/users/profile",
        a,
        Some(json!({"add_friend_setting": "maybe"})),
    )
    .await;
    wt.expect(
        400,
        Method::PUT,
        "/users/profile",
        a,
        Some(json!({"favourite": 1})),
    )
    .await;

    // Bad credentials, plain text.
    wt.expect(401, Method::GET, "/users/profile", Auth::None, None)
        .await;
    wt.expect(
        401,
        Method::GET,
        "/users/profile",
        Auth::Bearer("not-a-token"),
        None,
    )
    .await;

    // Friends: apply (the id as a number), accept, list, remove (204), block.
    let bob_num: u64 = bob.uid.parse().unwrap();
    let r = wt
        .expect(
            201,
            Method::POST,
            "/friend/apply",
            a,
            Some(json!({"target_user_id": bob_num, "apply_msg": "hi bob"})),
        )
        .await;
    assert_eq!(r["pending"], true);
    let reqs = wt
        .expect(200, Method::GET, "/friend/requests", b, None)
        .await;
    assert_eq!(reqs["requests"][0]["uid"], alice.uid.as_str());
    assert_eq!(reqs["requests"][0]["apply_msg"], "hi bob");
    wt.expect(
        204,
        Method::POST,
        "/friend/accept",
        b,
        Some(json!({"target_user_id": alice.uid})),
    )
    .await;
    let f = wt.expect(200, Method::GET, "/friend", a, None).await;
    assert_eq!(f["friends"][0]["uid"], bob.uid.as_str());
    wt.expect(
        204,
        Method::DELETE,
        &format!("/friend/{}", bob.uid),
        a,
        None,
    )
    .await;
    let f = wt.expect(200, Method::GET, "/friend", a, None).await;
    assert_eq!(f["friends"].as_array().unwrap().len(), 0);
    wt.expect(
        400,
        Method::POST,
        "/friend/apply",
        a,
        Some(json!({"target_user_id": "bob?"})),
    )
    .await;
    wt.expect(
        404,
        Method::POST,
        "/friend/apply",
        a,
        Some(json!({"target_user_id": "999999"})),
    )
    .await;

    // A group: alice owns, bob manages, carol is muted.
    let g = wt
        .expect(
            201,
            Method::POST,
            "/group",
            a,
            Some(json!({"name": "Rustaceans"})),
        )
        .await;
    let gid = g["id"].as_str().unwrap().to_owned();
    let gid_n: u64 = gid.parse().unwrap();
    assert_eq!(g["name"], "Rustaceans");
    assert!(g["created_at"].as_str().unwrap().ends_with('Z'), "{g}");
    assert_eq!(g["owner_uid"], alice.uid.as_str());
    let members = format!("/group/{gid}/members");
    wt.expect(
        201,
        Method::POST,
        &members,
        a,
        Some(json!({"user_ids": [bob.uid, carol.uid]})),
    )
    .await;
    wt.expect(
        409,
        Method::POST,
        &members,
        a,
        Some(json!({"user_id": bob.uid})),
    )
    .await;
    wt.expect(
        204,
        Method::PUT,
        &format!("/group/{gid}/managers"),
        a,
        Some(json!({"target_user_id": bob.uid, "is_manager": true})),
    )
    .await;
    let list = wt
        .expect(200, Method::GET, &format!("{members}?max=2"), a, None)
        .await;
    assert_eq!(list["members"].as_array().unwrap().len(), 2);
    let cursor = list["next_cursor"].as_str().unwrap().to_owned();
    let rest = wt
        .expect(
            200,
            Method::GET,
            &format!("{members}?max=2&after={cursor}"),
            a,
            None,
        )
        .await;
    assert_eq!(rest["members"].as_array().unwrap().len(), 1);
    assert!(rest["next_cursor"].is_null());
    let all: Vec<Value> = [
        list["members"].as_array().unwrap().clone(),
        rest["members"].as_array().unwrap().clone(),
    ]
    .concat();
    let role = |uid: &str| all.iter().find(|m| m["uid"] == uid).unwrap()["role"].clone();
    assert_eq!(role(&alice.uid), "owner");
    assert_eq!(role(&bob.uid), "manager");
    assert_eq!(role(&carol.uid), "member");
    let g = wt
        .expect(
            200,
            Method::PUT,
            &format!("/group/{gid}/profile"),
            b,
            Some(
                json!({"description": "crabs", "visibility": "public", "verification": "approval"}),
            ),
        )
        .await;
    assert_eq!(
        (g["description"].as_str(), g["visibility"].as_str()),
        (Some("crabs"), Some("public"))
    );
    wt.expect(
        400,
        Method::PUT,
        &format!("/group/{gid}/profile"),
        b,
        Some(json!({"visibility": "secret"})),
    )
    .await;
    wt.expect(403, Method::DELETE, &format!("/group/{gid}"), b, None)
        .await;

    // The WebSocket: carol's, by ?uid= carrying her token (trust is off).
    let mut cs = wt.socket(&format!("/ws/chats?uid={}", carol.token)).await;
    cs.text("ping").await;
    // Pushes of the changes just made may come first (fan-out runs after the answers).
    let mut answer = cs.next_text().await;
    while answer.starts_with('{') {
        answer = cs.next_text().await;
    }
    assert_eq!(answer, "pong");
    cs.text(r#"{"type":"ping"}"#).await;
    assert_eq!(cs.next("pong").await, Value::Null);

    // Mute carol: her sends are refused (403); unmute.
    let mute = format!("/group/{gid}/mute");
    wt.expect(
        204,
        Method::POST,
        &mute,
        b,
        Some(json!({"target_user_id": carol.uid, "mute_status": true, "duration_seconds": 3600})),
    )
    .await;
    // (Notices of the earlier changes may still be on their way: skip to the mute's.)
    let mut notice = cs.next("notify").await;
    while notice["kind"] != "mute" {
        notice = cs.next("notify").await;
    }
    assert_eq!(
        (notice["kind"].as_str(), notice["muted"].as_bool()),
        (Some("mute"), Some(true))
    );
    let msgs = format!("/chats/{gid}/messages");
    wt.expect(
        403,
        Method::POST,
        &msgs,
        c,
        Some(json!({"message": "let me speak"})),
    )
    .await;
    wt.expect(
        400,
        Method::POST,
        &mute,
        b,
        Some(json!({"target_user_id": carol.uid, "mute_status": true})),
    )
    .await;
    wt.expect(
        204,
        Method::POST,
        &mute,
        b,
        Some(json!({"target_user_id": carol.uid, "mute_status": false})),
    )
    .await;

    // Group chat over HTTP, pushes on the socket; idempotency by client_generated_id.
    let mut first = Value::Null;
    let mut ids = Vec::new();
    for i in 0..5 {
        let m = wt
            .expect(201, Method::POST, &msgs, a, Some(json!({"message": format!("m{i}"), "message_type": "text", "client_generated_id": format!("k{i}")})))
            .await;
        assert_eq!(m["message"], format!("m{i}"));
        assert_eq!(m["chat_id"], gid.as_str());
        assert_eq!(m["sender_uid"], alice.uid.as_str());
        let pushed = cs.next("message").await;
        assert_eq!(pushed["id"], m["id"]);
        // A message id is chat_id << 32 | seq: it names its chat.
        let id: u64 = m["id"].as_str().unwrap().parse().unwrap();
        assert_eq!(id >> 32, gid_n, "{m}");
        assert_eq!(pushed["message"], format!("m{i}"));
        ids.push(m["id"].as_str().unwrap().to_owned());
        if i == 0 {
            first = m;
        }
    }
    let again = wt
        .expect(
            201,
            Method::POST,
            &msgs,
            a,
            Some(json!({"message": "different", "client_generated_id": "k0"})),
        )
        .await;
    assert_eq!(again["id"], first["id"]);
    assert_eq!(
        again["message"], "m0",
        "a duplicate is answered with the original"
    );
    assert!(first["created_at"].as_str().unwrap().contains('T'));
    wt.expect(400, Method::POST, &msgs, a, Some(json!({"message": ""})))
        .await;
    wt.expect(
        400,
        Method::POST,
        &msgs,
        a,
        Some(json!({"message": "x", "message_type": "hologram"})),
    )
    .await;
    wt.expect(
        400,
        Method::POST,
        "/chats/abc/messages",
        a,
        Some(json!({"message": "x"})),
    )
    .await;
    wt.expect(
        404,
        Method::POST,
        "/chats/987654321/messages",
        a,
        Some(json!({"message": "x"})),
    )
    .await;

    // A reply.
    let reply = wt
        .expect(
            201,
            Method::POST,
            &msgs,
            b,
            Some(json!({"message": "re m0", "reply_to_id": first["id"]})),
        )
        .await;
    assert_eq!(reply["reply_to_id"], first["id"]);
    assert_eq!(reply["reply_root_id"], first["id"]);
    // A reply to another chat's message, or to a bare seq, is refused.
    let foreign = (((gid_n + 1) << 32) | 1).to_string();
    for bad in [
        json!({"message": "x", "reply_to_id": foreign}),
        json!({"message": "x", "reply_to_id": "1"}),
        json!({"message": "x", "reply_to_id": first["id"], "reply_root_id": foreign}),
    ] {
        wt.expect(400, Method::POST, &msgs, b, Some(bad)).await;
    }

    // History by cursor: two at a time back from the head, to the end.
    let mut seen = Vec::new();
    let mut path = format!("{msgs}?max=2");
    loop {
        let page = wt.expect(200, Method::GET, &path, c, None).await;
        for m in page["messages"].as_array().unwrap().iter().rev() {
            seen.push(m["message"].as_str().unwrap_or("").to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cur) => path = format!("{msgs}?max=2&before={cur}"),
            None => break,
        }
    }
    assert_eq!(seen, ["re m0", "m4", "m3", "m2", "m1", "m0"]);
    let fwd = wt
        .expect(
            200,
            Method::GET,
            &format!("{msgs}?max=2&after={}", first["id"].as_str().unwrap()),
            c,
            None,
        )
        .await;
    assert_eq!(fwd["messages"][0]["message"], "m1");
    assert!(fwd["next_cursor"].is_string());
    // A cursor is a message id of this chat: another chat's, or a bare seq, is a 400.
    for q in [
        format!("before={foreign}"),
        format!("after={foreign}"),
        "before=2".to_owned(),
        "after=abc".to_owned(),
    ] {
        wt.expect(400, Method::GET, &format!("{msgs}?{q}"), c, None)
            .await;
    }

    // Read position, recall (pushed as recall; history then shows it deleted).
    wt.expect(
        204,
        Method::POST,
        &format!("/chats/{gid}/read"),
        c,
        Some(json!({"message_id": reply["id"]})),
    )
    .await;
    wt.expect(
        400,
        Method::POST,
        &format!("/chats/{gid}/read"),
        c,
        Some(json!({"message_id": foreign})),
    )
    .await;
    // The document's recall names the message alone; a chat_id given must be its chat; a
    // seq alone or an id out of range is not a message id.
    let other_chat = (gid_n + 1).to_string();
    for bad in [
        json!({"msg_id": first["id"], "chat_id": other_chat}),
        json!({"msg_id": "1"}),
        json!({"msg_id": (gid_n << 32).to_string()}),
        json!({"msg_id": "18446744073709551616"}),
        json!({"chat_id": gid}),
    ] {
        wt.expect(400, Method::POST, "/chats/message/recall", a, Some(bad))
            .await;
    }
    wt.expect(
        204,
        Method::POST,
        "/chats/message/recall",
        a,
        Some(json!({"msg_id": first["id"]})),
    )
    .await;
    let recalled = cs.next("recall").await;
    assert_eq!(recalled["message_id"], first["id"]);
    assert_eq!(recalled["chat_id"], gid.as_str());
    // With the chat named too (the earlier form), as a number.
    let last_id: u64 = ids[4].parse().unwrap();
    wt.expect(
        204,
        Method::POST,
        "/chats/message/recall",
        a,
        Some(json!({"msg_id": last_id, "chat_id": gid})),
    )
    .await;
    assert_eq!(cs.next("recall").await["message_id"], ids[4].as_str());
    let page = wt
        .expect(
            200,
            Method::GET,
            &format!("{msgs}?max=1&before={}", ids[1]),
            c,
            None,
        )
        .await;
    let m0 = &page["messages"][0];
    assert_eq!(
        (m0["is_deleted"].as_bool(), m0["message"].is_null()),
        (Some(true), true),
        "{page}"
    );

    // The group's creation time is the core's, the same on every read, before its messages.
    let again = wt
        .expect(200, Method::GET, &format!("/group/{gid}"), c, None)
        .await;
    assert_eq!(again["created_at"], g["created_at"]);
    assert!(g["created_at"].as_str().unwrap() <= first["created_at"].as_str().unwrap());

    // The chat list.
    let chats = wt.expect(200, Method::GET, "/chats", c, None).await;
    assert!(chats["chats"]
        .as_array()
        .unwrap()
        .iter()
        .any(|ch| ch["id"] == gid.as_str() && ch["kind"] == "group"));
    assert!(chats["next_cursor"].is_null());

    // Non-members of a public group: 403; private groups and unknown ids: 404.
    let dave = wt.register("dave", "web").await;
    let d = Auth::Bearer(&dave.token);
    wt.expect(403, Method::GET, &msgs, d, None).await;
    wt.expect(403, Method::GET, &members, d, None).await;
    wt.expect(404, Method::GET, "/group/987654321", d, None)
        .await;
    let private = wt
        .expect(
            201,
            Method::POST,
            "/group",
            a,
            Some(json!({"name": "secret"})),
        )
        .await;
    wt.expect(
        404,
        Method::GET,
        &format!("/chats/{}/messages", private["id"].as_str().unwrap()),
        d,
        None,
    )
    .await;
    // Applying: pending (approval), approved by a manager; again: 409.
    let ap = wt
        .expect(
            201,
            Method::POST,
            &format!("{members}/apply"),
            d,
            Some(json!({"apply_msg": "let me in"})),
        )
        .await;
    assert_eq!(ap["pending"], true);
    wt.expect(
        204,
        Method::POST,
        &format!("{members}/apply/{}", dave.uid),
        b,
        Some(json!({"approve": true})),
    )
    .await;
    wt.expect(
        409,
        Method::POST,
        &format!("{members}/apply"),
        d,
        Some(json!({})),
    )
    .await;
    // Leave (204), kick by a non-owner refused.
    wt.expect(
        204,
        Method::DELETE,
        &format!("{members}/{}", dave.uid),
        d,
        None,
    )
    .await;
    wt.expect(
        403,
        Method::DELETE,
        &format!("{members}/{}", alice.uid),
        c,
        None,
    )
    .await;

    // Files: up (multipart and raw), sent in the group, down for a member, 404 for others.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"\x89PNG\r\n\x1a\nnot really".to_vec())
            .file_name("pic.png")
            .mime_str("image/png")
            .unwrap(),
    );
    let up = wt
        .http
        .post(format!("{}/fserv/upload", wt.base))
        .bearer_auth(&alice.token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(up.status().as_u16(), 201);
    let up: Value = up.json().await.unwrap();
    let fid = up["fid"].as_str().unwrap().to_owned();
    let raw = wt
        .http
        .post(format!("{}/fserv/upload?name=notes.txt", wt.base))
        .bearer_auth(&alice.token)
        .header("content-type", "application/octet-stream")
        .body("some notes")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 201);
    let m = wt
        .expect(
            201,
            Method::POST,
            &msgs,
            a,
            Some(json!({"message": fid, "message_type": "image"})),
        )
        .await;
    assert_eq!(m["message"], fid.as_str());
    assert_eq!(m["message_type"], "image");
    let pushed = cs.next("message").await;
    assert_eq!(pushed["message"], fid.as_str());
    let down = wt
        .http
        .get(format!(
            "{}/f/fserv/download/{fid}?token={}",
            wt.base, carol.token
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(down.status().as_u16(), 200);
    assert_eq!(down.headers()["content-type"], "image/png");
    assert_eq!(
        &down.bytes().await.unwrap()[..],
        b"\x89PNG\r\n\x1a\nnot really"
    );
    wt.expect(
        404,
        Method::GET,
        &format!("/f/fserv/download/{fid}"),
        d,
        None,
    )
    .await;
    wt.expect(404, Method::GET, "/f/fserv/download/file_xxx123", a, None)
        .await;
    wt.expect(
        401,
        Method::GET,
        &format!("/f/fserv/download/{fid}"),
        Auth::None,
        None,
    )
    .await;

    // Block: bob blocks alice, who can no longer message him.
    let direct = wt
        .expect(
            201,
            Method::POST,
            "/chats",
            a,
            Some(json!({"target_user_id": bob.uid})),
        )
        .await;
    let dm = format!("/chats/{}/messages", direct["id"].as_str().unwrap());
    wt.expect(201, Method::POST, &dm, a, Some(json!({"message": "hi"})))
        .await;
    wt.expect(
        204,
        Method::POST,
        "/friend/block",
        b,
        Some(json!({"target_user_id": alice.uid})),
    )
    .await;
    wt.expect(
        403,
        Method::POST,
        "/chats",
        a,
        Some(json!({"target_user_id": bob.uid})),
    )
    .await;
    wt.expect(
        403,
        Method::POST,
        &dm,
        a,
        Some(json!({"message": "hello?"})),
    )
    .await;
    wt.expect(
        204,
        Method::DELETE,
        &format!("/friend/block/{}", alice.uid),
        b,
        None,
    )
    .await;
    wt.expect(
        201,
        Method::POST,
        &dm,
        a,
        Some(json!({"message": "hi again"})),
    )
    .await;

    // Disband (owner): 204; then the group is gone for its members' sends.
    wt.expect(204, Method::DELETE, &format!("/group/{gid}"), a, None)
        .await;
    let (status, _) = wt
        .raw(Method::POST, &msgs, c, Some(json!({"message": "anyone?"})))
        .await;
    assert!(status == 403 || status == 404, "{status}");

    // A bad token never upgrades.
    let refused = tokio_tungstenite::connect_async(format!("{}/ws?uid=nope", wt.ws)).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status().as_u16(), 401),
        other => panic!("upgraded with a bad token: {:?}", other.map(|_| ())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_header_trust_off_and_on() {
    // Off (the default): X-User-Id must carry a token; a bare id is refused.
    let s = TestServer::start().await;
    let wt = Wt::new(&s);
    let u = wt.register("erin", "web").await;
    wt.expect(
        401,
        Method::GET,
        "/users/profile",
        Auth::Header(&u.uid),
        None,
    )
    .await;
    let p = wt
        .expect(
            200,
            Method::GET,
            "/users/profile",
            Auth::Header(&u.token),
            None,
        )
        .await;
    assert_eq!(p["uid"], u.uid.as_str());
    let refused =
        tokio_tungstenite::connect_async(format!("{}/ws/chats?uid={}", wt.ws, u.uid)).await;
    assert!(
        refused.is_err(),
        "a bare uid must not open a socket with trust off"
    );
    // A header naming someone else than the bearer token's user.
    let other = wt.register("other", "web").await;
    let res = wt
        .http
        .get(format!("{}/users/profile", wt.base))
        .bearer_auth(&u.token)
        .header("X-User-Id", &other.uid)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    drop(s);

    // On: a bare user id (or account name) is trusted, on HTTP and on the socket.
    let s = TestServer::start_with(|c| c.compat.trust_user_header = true).await;
    let wt = Wt::new(&s);
    let u = wt.register("erin", "web").await;
    let v = wt.register("vic", "web").await;
    let p = wt
        .expect(
            200,
            Method::GET,
            "/users/profile",
            Auth::Header(&u.uid),
            None,
        )
        .await;
    assert_eq!(p["uid"], u.uid.as_str());
    let mut sock = wt.socket(&format!("/ws?uid={}", u.uid)).await;
    let chat = wt
        .expect(
            201,
            Method::POST,
            "/chats",
            Auth::Header("vic"),
            Some(json!({"target_user_id": u.uid})),
        )
        .await;
    let path = format!("/chats/{}/messages", chat["id"].as_str().unwrap());
    wt.expect(
        201,
        Method::POST,
        &path,
        Auth::Header(&v.uid),
        Some(json!({"message": "trusted"})),
    )
    .await;
    let m = sock.next("message").await;
    assert_eq!(
        (m["message"].as_str(), m["sender_uid"].as_str()),
        (Some("trusted"), Some(v.uid.as_str()))
    );
    wt.expect(401, Method::GET, "/users/profile", Auth::Header(""), None)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wetty_user_chats_with_a_native_client() {
    let s = TestServer::start().await;
    let wt = Wt::new(&s);
    let w = wt.register("walt", "web").await;
    let (native, mut events) = s.register(Transport::Tls, "nina").await;
    let nina = native.user_id().to_string();
    let mut sock = wt.socket(&format!("/ws?token={}", w.token)).await;

    let peer = PeerRef::User(w.uid.parse::<u64>().unwrap().try_into().unwrap());
    let direct = native.open_direct(peer).await.unwrap();
    native
        .send(
            direct.id,
            ContentType::Text,
            bytes::Bytes::from_static(b"hi walt"),
        )
        .await
        .unwrap();
    let m = sock.next("message").await;
    assert_eq!(m["message"], "hi walt");
    assert_eq!(m["sender_uid"], nina.as_str());
    assert_eq!(m["chat_id"], direct.id.to_string());

    let chat = wt
        .expect(
            201,
            Method::POST,
            "/chats",
            Auth::Bearer(&w.token),
            Some(json!({"target_user_id": nina})),
        )
        .await;
    assert_eq!(chat["id"], direct.id.to_string());
    let sent = wt
        .expect(
            201,
            Method::POST,
            &format!("/chats/{}/messages", direct.id),
            Auth::Bearer(&w.token),
            Some(json!({"message": "hi nina", "client_generated_id": "w-1"})),
        )
        .await;
    let got = next_message(&mut events).await;
    assert_eq!(&got.content[..], b"hi nina");
    assert_eq!(
        sent["id"],
        ((direct.id.get() << 32) | got.seq.get()).to_string()
    );
    assert_eq!(got.client_msg_id.as_str(), "w-1");
}
