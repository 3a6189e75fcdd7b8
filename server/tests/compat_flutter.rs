//! The Flutter/Rust dialect (`/compat/flutter`) against a real server on port 0, written from
//! the seed document (`002_46efd1638f87fbc3.txt`, kept as `admin-http/src/compat/flutter/
//! seed-002.md`): every route the document names is served (read from the document itself),
//! register/login/refresh, the profile with an inline avatar, contacts, 1:1 and group chat with
//! the WebSocket's pushes and read receipts, history paging by message-id cursors, `temp_id`
//! idempotency, groups with roles, media upload with dimensions and media messages, calls with
//! SDP over REST and ICE over the WebSocket, the error shapes, and a Flutter client chatting
//! both ways with a native SDK client (including a recall).
#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

mod common;

use std::collections::BTreeSet;

use common::{next_message, TestServer, WAIT};
use futures::{SinkExt, StreamExt};
use parley_admin_http::compat::flutter;
use parley_client::Transport;
use parley_protocol::frames::{ContentType, CursorKind, PeerRef};
use parley_protocol::ids::{ConversationId, Seq};
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// A Flutter/Rust client of one server.
struct Fl {
    http: reqwest::Client,
    root: String,
    base: String,
    ws: String,
}

/// A registered user: (user id, access token, refresh token).
struct User {
    id: String,
    token: String,
    refresh: String,
}

impl Fl {
    fn new(s: &TestServer) -> Fl {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Fl {
            http: reqwest::Client::builder().timeout(WAIT).build().unwrap(),
            root: format!("http://{}", s.http),
            base: format!("http://{}/compat/flutter/v1", s.http),
            ws: format!("ws://{}/compat/flutter/ws", s.http),
        }
    }

    /// `method path` (below `/v1`) with a bearer token (if not empty): (status, body). Every
    /// error body is exactly `{code, message, details}` with `code` the status.
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        decode(res).await
    }

    /// Expects `status`.
    async fn expect(
        &self,
        status: u16,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Value {
        let (got, body) = self.call(method.clone(), path, token, body).await;
        assert_eq!(got, status, "{method} {path}: {body}");
        body
    }

    async fn register(&self, username: &str) -> User {
        let b = self
            .expect(
                201,
                Method::POST,
                "/auth/register",
                "",
                Some(json!({"username": username, "password": "securePassword123",
                            "email": format!("{username}@example.com"), "nickname": username.to_uppercase()})),
            )
            .await;
        assert_eq!(b["username"], username);
        assert!(b["token"].as_str().unwrap().len() > 10);
        User {
            id: b["user_id"].as_str().unwrap().to_owned(),
            token: b["token"].as_str().unwrap().to_owned(),
            refresh: b["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    async fn socket(&self, token: &str) -> Sock {
        let url = format!("{}?token={token}", self.ws);
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(&url))
            .await
            .unwrap()
            .unwrap();
        let mut sock = Sock { ws };
        // The push session is open once the socket answers a ping.
        sock.send("ping", json!({"timestamp": 1_623_331_800_000u64}))
            .await;
        let pong = sock.next("pong").await;
        assert_eq!(pong["data"]["timestamp"], 1_623_331_800_000u64);
        sock
    }

    /// Makes `a` and `b` contacts.
    async fn befriend(&self, a: &User, b: &User) {
        self.expect(
            201,
            Method::POST,
            "/contacts",
            &a.token,
            Some(json!({"user_id": b.id})),
        )
        .await;
        let back = self
            .expect(
                201,
                Method::POST,
                "/contacts",
                &b.token,
                Some(json!({"user_id": a.id, "remark": "Colleague"})),
            )
            .await;
        assert_eq!(back["pending"], false, "{back}");
    }

    /// The private conversation of `a` with `b`.
    async fn direct(&self, a: &User, b: &User) -> String {
        let c = self
            .expect(
                201,
                Method::POST,
                "/conversations",
                &a.token,
                Some(json!({"type": "private", "target_id": b.id})),
            )
            .await;
        assert_eq!(c["type"], "private");
        assert_eq!(c["target_id"], b.id.as_str());
        assert!(is_iso(&c["created_at"]), "{c}");
        c["conversation_id"].as_str().unwrap().to_owned()
    }

    async fn send(&self, user: &User, conv: &str, body: Value) -> Value {
        self.expect(
            201,
            Method::POST,
            &format!("/conversations/{conv}/messages"),
            &user.token,
            Some(body),
        )
        .await
    }
}

async fn decode(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let bytes = res.bytes().await.unwrap();
    if status == 204 {
        assert!(bytes.is_empty());
        return (status, Value::Null);
    }
    let body: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {bytes:?}"));
    if status >= 400 {
        assert_eq!(body["code"], status, "{body}");
        assert!(body["message"].is_string(), "{body}");
        assert!(body["details"].is_string(), "{body}");
        assert_eq!(body.as_object().unwrap().len(), 3, "{body}");
    }
    (status, body)
}

struct Sock {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Sock {
    async fn send(&mut self, kind: &str, data: Value) {
        let frame = json!({"type": kind, "data": data});
        self.ws
            .send(WsMessage::Text(frame.to_string().into()))
            .await
            .unwrap();
    }

    /// The next frame of type `kind` (others are skipped); every frame is `{type, data}`.
    async fn next(&mut self, kind: &str) -> Value {
        self.next_where(kind, |_| true).await
    }

    /// The next frame of type `kind` whose data passes `pred`.
    async fn next_where(&mut self, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            let m = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("a {kind} frame in time"))
                .unwrap_or_else(|| panic!("the socket ended before a {kind} frame"))
                .unwrap();
            let WsMessage::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            assert_eq!(v.as_object().unwrap().len(), 2, "{v}");
            assert!(v["type"].is_string() && v["data"].is_object(), "{v}");
            if v["type"] == kind && pred(&v["data"]) {
                return v;
            }
        }
    }
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn is_iso(v: &Value) -> bool {
    let s = v.as_str().unwrap_or("");
    s.len() == 20 && s.ends_with('Z') && s.as_bytes()[10] == b'T'
}

#[test]
fn base64_encodes() {
    assert_eq!(base64(b"hello"), "aGVsbG8=");
    assert_eq!(base64(b"hi!"), "aGkh");
    assert_eq!(base64(b"a"), "YQ==");
}

/// The `(METHOD, /v1 path)` pairs of the document's REST sections: each `- **URL**:` line and
/// the `- **方法**:` line after it.
fn document_routes() -> BTreeSet<(String, String)> {
    let tick = |line: &str| line.split('`').nth(1).map(str::to_owned);
    let mut out = BTreeSet::new();
    let mut url: Option<String> = None;
    for line in flutter::DOCUMENT.lines() {
        let line = line.trim();
        if line.starts_with("- **URL**") {
            url = tick(line);
        } else if line.starts_with("- **方法**") {
            let path = url.take().expect("a URL line before every method line");
            out.insert((tick(line).unwrap(), format!("/v1{path}")));
        }
    }
    out
}

/// The WebSocket frame types of the document: every `"type": "..."` of a `{type, data}` frame.
fn document_frames() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut lines = flutter::DOCUMENT.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(rest) = line.trim().strip_prefix("\"type\": \"") {
            // A frame's type is followed by its `data`; a message body's type is not.
            if lines
                .peek()
                .is_some_and(|l| l.trim().starts_with("\"data\""))
            {
                out.insert(rest.trim_end_matches(['"', ',']).to_owned());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_and_frame_of_the_document_is_served() {
    let doc = document_routes();
    assert!(doc.len() >= 23, "the document names 23 routes: {doc:?}");
    let served: BTreeSet<(String, String)> = flutter::operations()
        .into_iter()
        .map(|(m, p)| (m.to_owned(), format!("/v1{p}")))
        .collect();
    let missing: Vec<_> = doc.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "routes of the document not served: {missing:?}"
    );

    // And over HTTP: every route answers (no token: 401; the auth routes: bad input, or 501
    // for third-party login), never the dialect's "no such route".
    let s = TestServer::start().await;
    let fl = Fl::new(&s);
    for (method, path) in &doc {
        let path = path
            .replace("{provider}", "github")
            .replace("{user_id}", "1")
            .replace("{conversation_id}", "c1")
            .replace("{group_id}", "g1")
            .replace("{call_id}", "call1");
        let res = fl
            .http
            .request(
                method.parse().unwrap(),
                format!("{}{path}", fl.root.clone() + "/compat/flutter"),
            )
            .body("{}")
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap();
        let (status, body) = decode(res).await;
        let expected = if path.ends_with("/oauth/github") {
            501
        } else if path.starts_with("/v1/auth/") {
            400
        } else {
            401
        };
        assert_eq!(status, expected, "{method} {path}: {body}");
    }
    let body = fl
        .expect(404, Method::GET, "/no/such/route", "", None)
        .await;
    assert_eq!(body["details"], "no such route");
    fl.expect(405, Method::PUT, "/user/me", "", None).await;

    // The WebSocket frames: the document's, exactly those the scenarios below exercise.
    let mut frames = document_frames();
    // 7.2's format shows a placeholder type.
    assert!(frames.remove("message_type"));
    let known: BTreeSet<String> = [
        "ping",
        "pong",
        "message_read",
        "status_update",
        "new_message",
        "message_status",
        "contact_status",
        "group_update",
        "ice_candidate",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(frames, known, "the document's WebSocket frames changed");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_profile_contacts_and_error_shapes() {
    let s = TestServer::start().await;
    let fl = Fl::new(&s);
    let alice = fl.register("johndoe").await;
    let bob = fl.register("janedoe").await;
    fl.register("jimdoe").await;

    // Register, login, refresh, third-party login.
    fl.expect(
        409,
        Method::POST,
        "/auth/register",
        "",
        Some(json!({"username": "johndoe", "password": "securePassword123"})),
    )
    .await;
    let bad = fl
        .expect(
            400,
            Method::POST,
            "/auth/register",
            "",
            Some(json!({"username": "jo"})),
        )
        .await;
    assert_eq!(bad["message"], "Invalid request parameters");
    fl.expect(
        401,
        Method::POST,
        "/auth/login",
        "",
        Some(json!({"username": "johndoe", "password": "wrongPassword1"})),
    )
    .await;
    let login = fl
        .expect(
            200,
            Method::POST,
            "/auth/login",
            "",
            Some(json!({"username": "johndoe", "password": "securePassword123"})),
        )
        .await;
    assert_eq!(login["user_id"], alice.id.as_str());
    let refreshed = fl
        .expect(
            200,
            Method::POST,
            "/auth/refresh",
            "",
            Some(json!({"refresh_token": alice.refresh})),
        )
        .await;
    let token = refreshed["token"].as_str().unwrap().to_owned();
    assert_ne!(token, alice.token);
    fl.expect(200, Method::GET, "/user/me", &token, None).await;
    // The old pair is revoked.
    fl.expect(
        401,
        Method::POST,
        "/auth/refresh",
        "",
        Some(json!({"refresh_token": alice.refresh})),
    )
    .await;
    fl.expect(401, Method::GET, "/user/me", &alice.token, None)
        .await;
    fl.expect(
        401,
        Method::POST,
        "/auth/refresh",
        "",
        Some(json!({"refresh_token": "garbage"})),
    )
    .await;
    let oauth = fl
        .expect(
            501,
            Method::POST,
            "/auth/oauth/google",
            "",
            Some(json!({"code": "x", "redirect_uri": "app://callback"})),
        )
        .await;
    assert!(oauth["details"].as_str().unwrap().contains("google"));
    let alice = User { token, ..alice };

    // The profile, with an inline avatar and a status message.
    let me = fl
        .expect(200, Method::GET, "/user/me", &alice.token, None)
        .await;
    assert_eq!(me["user_id"], alice.id.as_str());
    assert_eq!(me["username"], "johndoe");
    assert_eq!(me["nickname"], "JOHNDOE");
    assert!(is_iso(&me["created_at"]), "{me}");
    let mut png = std::io::Cursor::new(Vec::new());
    image::RgbaImage::from_fn(32, 24, |x, y| image::Rgba([x as u8, y as u8, 9, 255]))
        .write_to(&mut png, image::ImageFormat::Png)
        .unwrap();
    let png = png.into_inner();
    let avatar = format!("base64:{}", base64(&png));
    let updated = fl
        .expect(
            200,
            Method::PATCH,
            "/user/me",
            &alice.token,
            Some(json!({"nickname": "John Doe", "avatar": avatar, "status_message": "Working from home"})),
        )
        .await;
    assert_eq!(updated["nickname"], "John Doe");
    assert_eq!(updated["status_message"], "Working from home");
    let url = updated["avatar"].as_str().unwrap().to_owned();
    let got = fl
        .http
        .get(format!("{}{url}", fl.root))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status().as_u16(), 200);
    assert_eq!(&got.bytes().await.unwrap()[..], &png[..]);
    fl.expect(
        400,
        Method::PATCH,
        "/user/me",
        &alice.token,
        Some(json!({"avatar": "base64:aGVsbG8="})),
    )
    .await;

    // Search.
    let found = fl
        .expect(
            200,
            Method::GET,
            "/users/search?query=doe&limit=1",
            &alice.token,
            None,
        )
        .await;
    assert_eq!(found["total"], 2, "{found}");
    assert_eq!(found["users"].as_array().unwrap().len(), 1);
    let next = fl
        .expect(
            200,
            Method::GET,
            "/users/search?query=doe&limit=1&offset=1",
            &alice.token,
            None,
        )
        .await;
    assert_ne!(found["users"][0]["user_id"], next["users"][0]["user_id"]);
    fl.expect(400, Method::GET, "/users/search", &alice.token, None)
        .await;

    // Contacts.
    fl.befriend(&alice, &bob).await;
    let list = fl
        .expect(200, Method::GET, "/contacts", &bob.token, None)
        .await;
    assert_eq!(list["total"], 1);
    let c = &list["contacts"][0];
    assert_eq!(c["user_id"], alice.id.as_str());
    assert_eq!(c["username"], "johndoe");
    assert_eq!(c["nickname"], "John Doe");
    assert_eq!(c["remark"], "Colleague");
    let patched = fl
        .expect(
            200,
            Method::PATCH,
            &format!("/contacts/{}", alice.id),
            &bob.token,
            Some(json!({"remark": "Team Lead"})),
        )
        .await;
    assert_eq!(patched, json!({"user_id": alice.id, "remark": "Team Lead"}));
    let list = fl
        .expect(200, Method::GET, "/contacts", &bob.token, None)
        .await;
    assert_eq!(list["contacts"][0]["remark"], "Team Lead");
    fl.expect(
        204,
        Method::DELETE,
        &format!("/contacts/{}", alice.id),
        &bob.token,
        None,
    )
    .await;
    fl.expect(
        404,
        Method::DELETE,
        &format!("/contacts/{}", alice.id),
        &bob.token,
        None,
    )
    .await;
    let list = fl
        .expect(200, Method::GET, "/contacts", &alice.token, None)
        .await;
    assert_eq!(list["total"], 0);

    // Error shapes: no token, a bad token, bad input, unknown ids.
    fl.expect(401, Method::GET, "/contacts", "", None).await;
    fl.expect(401, Method::GET, "/contacts", "not-a-token", None)
        .await;
    fl.expect(400, Method::GET, "/contacts?limit=0", &alice.token, None)
        .await;
    fl.expect(
        400,
        Method::POST,
        "/contacts",
        &alice.token,
        Some(json!({"remark": "x"})),
    )
    .await;
    fl.expect(
        404,
        Method::POST,
        "/contacts",
        &alice.token,
        Some(json!({"user_id": "999999"})),
    )
    .await;
    fl.expect(
        400,
        Method::POST,
        "/contacts",
        &alice.token,
        Some(json!({"user_id": alice.id})),
    )
    .await;
    fl.expect(404, Method::GET, "/groups/g999999", &alice.token, None)
        .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_chat_pushes_receipts_paging_and_presence() {
    let s = TestServer::start().await;
    let fl = Fl::new(&s);
    let alice = fl.register("alice").await;
    let bob = fl.register("bob").await;
    let dave = fl.register("dave").await;
    fl.befriend(&alice, &bob).await;
    let mut a = fl.socket(&alice.token).await;
    let mut b = fl.socket(&bob.token).await;

    let conv = fl.direct(&alice, &bob).await;
    assert_eq!(
        fl.direct(&alice, &bob).await,
        conv,
        "one private conversation per pair"
    );
    assert_eq!(fl.direct(&bob, &alice).await, conv);

    // A send echoes temp_id; a retry with the same temp_id is the same message.
    let sent = fl
        .send(
            &alice,
            &conv,
            json!({"content": "Hello world!", "type": "text", "temp_id": "client-temp-id-123"}),
        )
        .await;
    assert_eq!(sent["temp_id"], "client-temp-id-123");
    assert_eq!(sent["conversation_id"], conv.as_str());
    assert_eq!(sent["sender_id"], alice.id.as_str());
    assert_eq!(sent["status"], "sent");
    assert!(is_iso(&sent["created_at"]));
    let again = fl
        .send(
            &alice,
            &conv,
            json!({"content": "Hello world!", "type": "text", "temp_id": "client-temp-id-123"}),
        )
        .await;
    assert_eq!(again["message_id"], sent["message_id"]);
    let id = sent["message_id"].as_str().unwrap().to_owned();

    let m = b.next("new_message").await;
    assert_eq!(m["data"]["message_id"], id.as_str());
    assert_eq!(m["data"]["content"], "Hello world!");
    assert_eq!(m["data"]["sender_name"], "ALICE");
    assert_eq!(m["data"]["type"], "text");
    assert!(is_iso(&m["data"]["created_at"]));
    let own = a.next("new_message").await;
    assert_eq!(own["data"]["temp_id"], "client-temp-id-123");

    // Read receipts both ways through the socket.
    b.send(
        "message_read",
        json!({"conversation_id": conv, "message_id": id}),
    )
    .await;
    let st = a.next("message_status").await;
    assert_eq!(st["data"]["message_id"], id.as_str());
    assert_eq!(st["data"]["status"], "read");
    assert_eq!(st["data"]["user_id"], bob.id.as_str());

    // Paging: newest first, with message-id cursors.
    for i in 0..5 {
        fl.send(
            &bob,
            &conv,
            json!({"content": format!("n{i}"), "temp_id": format!("bob-{i}")}),
        )
        .await;
    }
    let page = fl
        .expect(
            200,
            Method::GET,
            &format!("/conversations/{conv}/messages?limit=2"),
            &alice.token,
            None,
        )
        .await;
    let contents = |p: &Value| -> Vec<String> {
        p["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(contents(&page), ["n4", "n3"]);
    assert_eq!(page["conversation_id"], conv.as_str());
    let oldest = page["messages"][1]["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let older = fl
        .expect(
            200,
            Method::GET,
            &format!("/conversations/{conv}/messages?limit=10&before={oldest}"),
            &alice.token,
            None,
        )
        .await;
    assert_eq!(contents(&older), ["n2", "n1", "n0", "Hello world!"]);
    let first = &older["messages"][3];
    assert_eq!(first["status"], "read", "bob read alice's message: {first}");
    assert_eq!(first["sender_name"], "ALICE");
    let newer = fl
        .expect(
            200,
            Method::GET,
            &format!("/conversations/{conv}/messages?after={id}&limit=2"),
            &alice.token,
            None,
        )
        .await;
    assert_eq!(contents(&newer), ["n1", "n0"]);

    // The conversation list: the target, the last message, unread counts.
    let list = fl
        .expect(
            200,
            Method::GET,
            "/conversations?type=private",
            &alice.token,
            None,
        )
        .await;
    assert_eq!(list["total"], 1);
    let c = &list["conversations"][0];
    assert_eq!(c["conversation_id"], conv.as_str());
    assert_eq!(c["target_id"], bob.id.as_str());
    assert_eq!(c["target_name"], "BOB");
    assert_eq!(c["last_message"]["content"], "n4");
    assert_eq!(c["unread_count"], 5);
    let groups = fl
        .expect(
            200,
            Method::GET,
            "/conversations?type=group",
            &alice.token,
            None,
        )
        .await;
    assert_eq!(groups["total"], 0);
    fl.expect(
        400,
        Method::GET,
        "/conversations?type=world",
        &alice.token,
        None,
    )
    .await;

    // Presence: a status update reaches the contact.
    a.send(
        "status_update",
        json!({"status": "away", "custom_message": "In a meeting"}),
    )
    .await;
    let cs = b
        .next_where("contact_status", |d| d["status"] == "away")
        .await;
    assert_eq!(cs["data"]["user_id"], alice.id.as_str());
    assert_eq!(cs["data"]["custom_message"], "In a meeting");

    // Errors: a non-member, bad cursors, bad frames.
    fl.expect(
        404,
        Method::GET,
        &format!("/conversations/{conv}/messages"),
        &dave.token,
        None,
    )
    .await;
    fl.expect(
        404,
        Method::POST,
        &format!("/conversations/{conv}/messages"),
        &dave.token,
        Some(json!({"content": "let me in"})),
    )
    .await;
    fl.expect(
        404,
        Method::GET,
        &format!("/conversations/{conv}/messages?before=m98765"),
        &alice.token,
        None,
    )
    .await;
    fl.expect(
        400,
        Method::GET,
        &format!("/conversations/{conv}/messages?before=m1_1"),
        &alice.token,
        None,
    )
    .await;
    fl.expect(
        400,
        Method::POST,
        &format!("/conversations/{conv}/messages"),
        &alice.token,
        Some(json!({"content": ""})),
    )
    .await;
    fl.expect(
        400,
        Method::POST,
        &format!("/conversations/{conv}/messages"),
        &alice.token,
        Some(json!({"content": "x", "type": "hologram"})),
    )
    .await;
    a.send("what_is_this", json!({})).await;
    let e = a.next("error").await;
    assert_eq!(e["data"]["code"], 400);
    assert_eq!(e["data"]["type"], "what_is_this");
    a.send(
        "message_read",
        json!({"conversation_id": "c999999", "message_id": "m999999_1"}),
    )
    .await;
    let e = a.next("error").await;
    assert_eq!(e["data"]["code"], 404, "{e}");
    assert_eq!(e["data"]["type"], "message_read");
    a.ws.send(WsMessage::Text("not json".into())).await.unwrap();
    assert_eq!(a.next("error").await["data"]["code"], 400);

    // The socket refuses a bad token before the upgrade.
    let res = fl
        .http
        .get(format!("{}/compat/flutter/ws?token=nope", fl.root))
        .send()
        .await
        .unwrap();
    assert_eq!(decode(res).await.0, 401);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_with_roles_and_group_chat() {
    let s = TestServer::start().await;
    let fl = Fl::new(&s);
    let alice = fl.register("alice").await;
    let bob = fl.register("bob").await;
    let carol = fl.register("carol").await;
    let dave = fl.register("dave").await;
    let mut b = fl.socket(&bob.token).await;

    let g = fl
        .expect(
            201,
            Method::POST,
            "/conversations",
            &alice.token,
            Some(json!({"type": "group", "name": "Project Team", "members": [bob.id]})),
        )
        .await;
    assert_eq!(g["type"], "group");
    let group = g["target_id"].as_str().unwrap().to_owned();
    let conv = g["conversation_id"].as_str().unwrap().to_owned();
    assert!(group.starts_with('g') && conv.starts_with('c'));

    let info = fl
        .expect(
            200,
            Method::GET,
            &format!("/groups/{group}"),
            &bob.token,
            None,
        )
        .await;
    assert_eq!(info["group_id"], group.as_str());
    assert_eq!(info["name"], "Project Team");
    assert_eq!(info["owner_id"], alice.id.as_str());
    assert_eq!(info["member_count"], 2);
    assert!(is_iso(&info["created_at"]), "{info}");

    let members = fl
        .expect(
            200,
            Method::GET,
            &format!("/groups/{group}/members"),
            &alice.token,
            None,
        )
        .await;
    assert_eq!(members["total"], 2);
    let role = |id: &str| {
        members["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["user_id"] == id)
            .map(|m| m["role"].as_str().unwrap().to_owned())
    };
    assert_eq!(role(&alice.id).as_deref(), Some("owner"));
    assert_eq!(role(&bob.id).as_deref(), Some("member"));
    assert!(is_iso(&members["members"][0]["joined_at"]));

    // Only the owner (and managers) change the group.
    fl.expect(
        403,
        Method::PATCH,
        &format!("/groups/{group}"),
        &bob.token,
        Some(json!({"name": "Mine now"})),
    )
    .await;
    fl.expect(
        403,
        Method::POST,
        &format!("/groups/{group}/members"),
        &bob.token,
        Some(json!({"user_ids": [dave.id]})),
    )
    .await;
    let patched = fl
        .expect(
            200,
            Method::PATCH,
            &format!("/groups/{group}"),
            &alice.token,
            Some(json!({"name": "Project Alpha Team", "announcement": "Our next meeting is on Friday"})),
        )
        .await;
    assert_eq!(patched["name"], "Project Alpha Team");
    assert_eq!(patched["announcement"], "Our next meeting is on Friday");
    let up = b.next("group_update").await;
    assert_eq!(up["data"]["update_type"], "info_updated");
    assert_eq!(up["data"]["group_id"], group.as_str());

    let invited = fl
        .expect(
            200,
            Method::POST,
            &format!("/groups/{group}/members"),
            &alice.token,
            Some(json!({"user_ids": [carol.id]})),
        )
        .await;
    assert_eq!(
        invited,
        json!({"success": true, "invited_users": [carol.id]})
    );
    let up = b
        .next_where("group_update", |d| d["update_type"] == "new_member")
        .await;
    assert_eq!(up["data"]["user_id"], carol.id.as_str());
    assert_eq!(up["data"]["user_name"], "CAROL");
    assert!(is_iso(&up["data"]["updated_at"]));

    // Group chat: a new member speaks, the others hear it.
    let mut a = fl.socket(&alice.token).await;
    let sent = fl
        .send(
            &carol,
            &conv,
            json!({"content": "Meeting at 2PM", "temp_id": "carol-1"}),
        )
        .await;
    for sock in [&mut a, &mut b] {
        let m = sock.next("new_message").await;
        assert_eq!(m["data"]["message_id"], sent["message_id"]);
        assert_eq!(m["data"]["conversation_id"], conv.as_str());
        assert_eq!(m["data"]["sender_name"], "CAROL");
    }
    // The group id names the same conversation.
    let page = fl
        .expect(
            200,
            Method::GET,
            &format!("/conversations/{group}/messages"),
            &bob.token,
            None,
        )
        .await;
    assert_eq!(page["messages"][0]["content"], "Meeting at 2PM");
    let list = fl
        .expect(
            200,
            Method::GET,
            "/conversations?type=group",
            &bob.token,
            None,
        )
        .await;
    let c = &list["conversations"][0];
    assert_eq!(c["target_id"], group.as_str());
    assert_eq!(c["target_name"], "Project Alpha Team");
    assert_eq!(c["last_message"]["sender_name"], "CAROL");

    // Outsiders see nothing.
    fl.expect(
        404,
        Method::GET,
        &format!("/groups/{group}/members"),
        &dave.token,
        None,
    )
    .await;
    fl.expect(
        404,
        Method::GET,
        &format!("/conversations/{conv}/messages"),
        &dave.token,
        None,
    )
    .await;
    fl.expect(
        400,
        Method::POST,
        "/conversations",
        &alice.token,
        Some(json!({"type": "group", "members": []})),
    )
    .await;
    fl.expect(
        400,
        Method::POST,
        "/conversations",
        &alice.token,
        Some(json!({"type": "channel"})),
    )
    .await;
    fl.expect(
        404,
        Method::POST,
        "/conversations",
        &alice.token,
        Some(json!({"type": "private", "target_id": "999999"})),
    )
    .await;
    s.stop().await;
}

/// A PNG of `w`×`h` pixels.
fn png(w: u32, h: u32) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]))
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_upload_with_dimensions_and_media_messages() {
    let s = TestServer::start().await;
    let fl = Fl::new(&s);
    let alice = fl.register("alice").await;
    let bob = fl.register("bob").await;
    let dave = fl.register("dave").await;
    let conv = fl.direct(&alice, &bob).await;
    let mut b = fl.socket(&bob.token).await;

    let bytes = png(800, 600);
    let form = reqwest::multipart::Form::new().text("type", "image").part(
        "file",
        reqwest::multipart::Part::bytes(bytes.clone())
            .file_name("photo.png")
            .mime_str("image/png")
            .unwrap(),
    );
    let res = fl
        .http
        .post(format!("{}/media/upload", fl.base))
        .bearer_auth(&alice.token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, media) = decode(res).await;
    assert_eq!(status, 201, "{media}");
    assert_eq!(media["type"], "image");
    assert_eq!(media["size"], bytes.len());
    assert_eq!(
        (media["width"].as_u64(), media["height"].as_u64()),
        (Some(800), Some(600))
    );
    assert!(media["duration"].is_null());
    assert_eq!(media["filename"], "photo.png");
    let media_id = media["media_id"].as_str().unwrap().to_owned();
    let url = media["url"].as_str().unwrap().to_owned();

    let sent = fl
        .send(
            &alice,
            &conv,
            json!({"type": "image", "content": media_id, "caption": "Check out this photo!"}),
        )
        .await;
    assert_eq!(sent["content"], media_id.as_str());
    assert_eq!(sent["caption"], "Check out this photo!");
    let m = b.next("new_message").await;
    assert_eq!(m["data"]["type"], "image");
    assert_eq!(m["data"]["content"], media_id.as_str());
    assert_eq!(m["data"]["caption"], "Check out this photo!");
    let page = fl
        .expect(
            200,
            Method::GET,
            &format!("/conversations/{conv}/messages"),
            &bob.token,
            None,
        )
        .await;
    assert_eq!(page["messages"][0]["content"], media_id.as_str());

    // Down: the recipient may read it (the send granted it), an outsider gets 404.
    let get = |token: String| {
        let req = fl.http.get(format!("{}{url}", fl.root)).bearer_auth(token);
        async move { req.send().await.unwrap() }
    };
    let got = get(bob.token.clone()).await;
    assert_eq!(got.status().as_u16(), 200);
    assert_eq!(&got.bytes().await.unwrap()[..], &bytes[..]);
    assert_eq!(get(dave.token.clone()).await.status().as_u16(), 404);

    // A file larger than axum's default body limit (2 MiB) streams through.
    let big = vec![0x5au8; 3 * 1024 * 1024];
    let form = reqwest::multipart::Form::new().text("type", "file").part(
        "file",
        reqwest::multipart::Part::bytes(big.clone()).file_name("big.bin"),
    );
    let res = fl
        .http
        .post(format!("{}/media/upload", fl.base))
        .bearer_auth(&alice.token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, file) = decode(res).await;
    assert_eq!(status, 201, "{file}");
    assert_eq!(file["size"], big.len());
    assert_eq!(file["type"], "file");
    assert!(file["width"].is_null());

    // Bad uploads.
    let empty = reqwest::multipart::Form::new().text("type", "image");
    let res = fl
        .http
        .post(format!("{}/media/upload", fl.base))
        .bearer_auth(&alice.token)
        .multipart(empty)
        .send()
        .await
        .unwrap();
    assert_eq!(decode(res).await.0, 400);
    let bad_type = reqwest::multipart::Form::new()
        .text("type", "hologram")
        .part(
            "file",
            reqwest::multipart::Part::bytes(vec![1, 2, 3]).file_name("x.bin"),
        );
    let res = fl
        .http
        .post(format!("{}/media/upload", fl.base))
        .bearer_auth(&alice.token)
        .multipart(bad_type)
        .send()
        .await
        .unwrap();
    assert_eq!(decode(res).await.0, 400);
    let res = fl
        .http
        .post(format!("{}/media/upload", fl.base))
        .multipart(reqwest::multipart::Form::new())
        .send()
        .await
        .unwrap();
    assert_eq!(decode(res).await.0, 401);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_carry_sdp_over_rest_and_ice_over_the_socket() {
    let s = TestServer::start().await;
    let fl = Fl::new(&s);
    let alice = fl.register("alice").await;
    let bob = fl.register("bob").await;
    let dave = fl.register("dave").await;
    fl.befriend(&alice, &bob).await;
    let mut a = fl.socket(&alice.token).await;
    let mut b = fl.socket(&bob.token).await;

    let call = fl
        .expect(
            201,
            Method::POST,
            "/calls",
            &alice.token,
            Some(json!({"target_id": bob.id, "type": "video", "offer_sdp": "v=0 offer"})),
        )
        .await;
    assert_eq!(call["status"], "ringing");
    assert_eq!(call["type"], "video");
    assert_eq!(call["target_id"], bob.id.as_str());
    let id = call["call_id"].as_str().unwrap().to_owned();
    fl.expect(
        409,
        Method::POST,
        "/calls",
        &alice.token,
        Some(json!({"target_id": bob.id, "type": "audio", "offer_sdp": "again"})),
    )
    .await;

    let inc = b.next("incoming_call").await;
    assert_eq!(inc["data"]["call_id"], id.as_str());
    assert_eq!(inc["data"]["caller_id"], alice.id.as_str());
    assert_eq!(inc["data"]["offer_sdp"], "v=0 offer");
    assert_eq!(inc["data"]["type"], "video");

    b.send("ice_candidate", json!({"call_id": id, "candidate": "candidate:1 1 UDP 2013266431 192.168.1.100 54572 typ host"}))
        .await;
    let ice = a.next("ice_candidate").await;
    assert_eq!(ice["data"]["call_id"], id.as_str());
    assert_eq!(
        ice["data"]["candidate"],
        "candidate:1 1 UDP 2013266431 192.168.1.100 54572 typ host"
    );

    fl.expect(
        404,
        Method::POST,
        &format!("/calls/{id}/accept"),
        &dave.token,
        Some(json!({"answer_sdp": "x"})),
    )
    .await;
    let acc = fl
        .expect(
            200,
            Method::POST,
            &format!("/calls/{id}/accept"),
            &bob.token,
            Some(json!({"answer_sdp": "v=0 answer"})),
        )
        .await;
    assert_eq!(acc["status"], "connected");
    assert!(is_iso(&acc["updated_at"]));
    let got = a.next("call_accepted").await;
    assert_eq!(got["data"]["answer_sdp"], "v=0 answer");

    // With the WebRTC fields, they travel together.
    a.send(
        "ice_candidate",
        json!({"call_id": id, "candidate": "candidate:2", "sdpMid": "0", "sdpMLineIndex": 0}),
    )
    .await;
    let ice = b.next("ice_candidate").await;
    assert_eq!(ice["data"]["candidate"], "candidate:2");
    assert_eq!(ice["data"]["sdpMid"], "0");
    assert_eq!(ice["data"]["sdpMLineIndex"], 0);

    let ended = fl
        .expect(
            200,
            Method::POST,
            &format!("/calls/{id}/end"),
            &bob.token,
            None,
        )
        .await;
    assert_eq!(ended["status"], "ended");
    assert!(ended["duration"].is_u64(), "{ended}");
    a.next("call_ended").await;
    fl.expect(
        404,
        Method::POST,
        &format!("/calls/{id}/end"),
        &alice.token,
        None,
    )
    .await;

    // The caller hangs up before an answer: a cancel.
    let call = fl
        .expect(
            201,
            Method::POST,
            "/calls",
            &alice.token,
            Some(json!({"target_id": bob.id, "type": "audio", "offer_sdp": "o2"})),
        )
        .await;
    let id = call["call_id"].as_str().unwrap().to_owned();
    let ended = fl
        .expect(
            200,
            Method::POST,
            &format!("/calls/{id}/end"),
            &alice.token,
            None,
        )
        .await;
    assert_eq!(ended["duration"], 0);
    b.next_where("call_ended", |d| d["call_id"] == id.as_str())
        .await;
    fl.expect(
        400,
        Method::POST,
        "/calls",
        &alice.token,
        Some(json!({"target_id": bob.id, "type": "hologram"})),
    )
    .await;
    fl.expect(404, Method::POST, "/calls/nope/end", &alice.token, None)
        .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flutter_user_chats_with_a_native_client() {
    let s = TestServer::start().await;
    let fl = Fl::new(&s);
    let frank = fl.register("frank").await;
    let mut f = fl.socket(&frank.token).await;
    let (native, mut events) = s.register(Transport::Tls, "nina").await;
    let nina = native.user_id().to_string();

    // Native → Flutter.
    let peer = PeerRef::User(frank.id.parse::<u64>().unwrap().try_into().unwrap());
    let direct = native.open_direct(peer).await.unwrap();
    let ack = native
        .send(
            direct.id,
            ContentType::Text,
            bytes::Bytes::from_static(b"hi frank"),
        )
        .await
        .unwrap();
    let m = f.next("new_message").await;
    assert_eq!(m["data"]["content"], "hi frank");
    assert_eq!(m["data"]["sender_id"], nina.as_str());
    assert_eq!(m["data"]["sender_name"], "nina");
    let conv = format!("c{}", direct.id);
    assert_eq!(m["data"]["conversation_id"], conv.as_str());
    assert_eq!(
        m["data"]["message_id"],
        format!("m{}_{}", direct.id, ack.seq.get()).as_str()
    );

    // Flutter → native.
    let sent = fl
        .send(
            &frank,
            &conv,
            json!({"content": "hi nina", "temp_id": "frank-1"}),
        )
        .await;
    let got = next_message(&mut events).await;
    assert_eq!(&got.content[..], b"hi nina");
    assert_eq!(got.client_msg_id.as_str(), "frank-1");
    assert_eq!(
        sent["message_id"],
        format!("m{}_{}", got.conversation, got.seq.get()).as_str()
    );

    // The native client reads it: the Flutter socket hears the receipt.
    native
        .ack(got.conversation, CursorKind::Read, got.seq)
        .await
        .unwrap();
    let st = f
        .next_where("message_status", |d| d["status"] == "read")
        .await;
    assert_eq!(st["data"]["message_id"], sent["message_id"]);
    assert_eq!(st["data"]["user_id"], nina.as_str());

    // The native client recalls its message: the socket says so, and history shows it.
    native
        .recall_message(
            ConversationId::try_from(direct.id.get()).unwrap(),
            Seq(ack.seq.get()),
        )
        .await
        .unwrap();
    let st = f
        .next_where("message_status", |d| d["status"] == "recalled")
        .await;
    assert_eq!(
        st["data"]["message_id"],
        format!("m{}_{}", direct.id, ack.seq.get()).as_str()
    );
    let page = fl
        .expect(
            200,
            Method::GET,
            &format!("/conversations/{conv}/messages"),
            &frank.token,
            None,
        )
        .await;
    let recalled = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["sender_id"] == nina.as_str())
        .unwrap();
    assert_eq!(recalled["status"], "recalled");
    assert_eq!(recalled["content"], "");
    s.stop().await;
}
