//! The IM系统 dialect (`/compat/imsys`) against a real server on port 0, written from the seed
//! document (`003_4a44bf8363cbc573.txt`): WebSocket login, 1:1 and group messages with delivery
//! and read acks, offline sync by last message id, group join and leave, the error shapes for a
//! bad token, bad input, a non-member and unknown ids, header trust on and off, an IM系统 user
//! chatting with a native SDK client, and the document's JavaScript and Python clients run
//! unchanged but for their base URL (`compat_imsys/client.js`, `compat_imsys/client.py`).
#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

mod common;

use std::process::Stdio;

use common::{next_message, TestServer, WAIT};
use futures::{SinkExt, StreamExt};
use parley_client::Transport;
use parley_protocol::frames::{ContentType, PeerRef};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// An IM系统 client of one server.
struct Im {
    http: reqwest::Client,
    base: String,
    ws: String,
    native: String,
}

impl Im {
    fn new(s: &TestServer) -> Im {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Im {
            http: reqwest::Client::builder().timeout(WAIT).build().unwrap(),
            base: format!("http://{}/compat/imsys", s.http),
            ws: format!("ws://{}/compat/imsys/ws", s.http),
            native: format!("http://{}/im/v1", s.http),
        }
    }

    /// Registers `account` through our REST API: (user id, access token).
    async fn register(&self, account: &str) -> (String, String) {
        let res = self
            .http
            .post(format!("{}/auth/register", self.native))
            .json(&json!({"account": account, "password": "password-123", "device_id": "rest"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 201);
        let body: Value = res.json().await.unwrap();
        (
            body["user_id"].as_str().unwrap().to_owned(),
            body["access_token"].as_str().unwrap().to_owned(),
        )
    }

    /// `method path` with `X-User-ID: user` (if not empty): (status, body).
    async fn call(
        &self,
        method: Method,
        path: &str,
        user: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if !user.is_empty() {
            req = req.header("X-User-ID", user);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let body: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
        if status >= 400 {
            assert!(
                body["error"].is_string(),
                "an error body is {{error}}: {body}"
            );
            assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
        }
        (status, body)
    }

    /// Expects `status`.
    async fn expect(
        &self,
        status: u16,
        method: Method,
        path: &str,
        user: &str,
        body: Option<Value>,
    ) -> Value {
        let (got, body) = self.call(method.clone(), path, user, body).await;
        assert_eq!(got, status, "{method} {path}: {body}");
        body
    }

    /// A WebSocket logged in with `login` data; gives the socket and the login answer.
    async fn socket(&self, login: Value) -> (Sock, Value) {
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(&self.ws))
            .await
            .unwrap()
            .unwrap();
        let mut sock = Sock { ws };
        sock.send("login", login).await;
        let answer = sock.next("login").await;
        (sock, answer)
    }

    /// A socket of the user with this token, logged in.
    async fn login(&self, user_id: &str, token: &str) -> Sock {
        let (sock, answer) = self
            .socket(json!({"user_id": user_id, "token": token, "platform": "web"}))
            .await;
        assert_eq!(answer["data"]["success"], true, "{answer}");
        assert_eq!(answer["data"]["user_id"], user_id);
        assert_eq!(answer["data"]["message"], "Login successful");
        sock
    }
}

struct Sock {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Sock {
    async fn send(&mut self, kind: &str, data: Value) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let frame = json!({"type": kind, "data": data, "timestamp": now});
        self.ws
            .send(WsMessage::Text(frame.to_string().into()))
            .await
            .unwrap();
    }

    /// The next frame of type `kind` (others are skipped); every frame has `{type, data,
    /// timestamp(ms)}`.
    async fn next(&mut self, kind: &str) -> Value {
        loop {
            let m = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("a {kind} frame in time"))
                .unwrap_or_else(|| panic!("the socket ended before a {kind} frame"))
                .unwrap();
            let WsMessage::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            assert!(v["timestamp"].as_u64().unwrap() > 1_000_000_000_000, "{v}");
            if v["type"] == kind {
                return v;
            }
        }
    }

    /// Sends `kind` and gives its answer.
    async fn ask(&mut self, kind: &str, data: Value) -> Value {
        self.send(kind, data).await;
        self.next(kind).await
    }

    /// Whether the socket was closed (with no frame of `kind` before the close).
    async fn closed_without(&mut self, kind: &str) -> bool {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await.unwrap() {
                None | Some(Err(_)) | Some(Ok(WsMessage::Close(_))) => return true,
                Some(Ok(WsMessage::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    if v["type"] == kind {
                        return false;
                    }
                }
                Some(Ok(_)) => {}
            }
        }
    }
}

/// The conversation and seq of a message id `msg_<conversation>_<seq>`.
fn parts(id: &str) -> (u64, u64) {
    let rest = id.strip_prefix("msg_").unwrap();
    let (c, s) = rest.split_once('_').unwrap();
    (c.parse().unwrap(), s.parse().unwrap())
}

fn is_iso(v: &Value) -> bool {
    let s = v.as_str().unwrap_or("");
    s.len() == 20 && s.ends_with('Z') && s.as_bytes()[10] == b'T'
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_acks_offline_sync_groups_and_errors() {
    let s = TestServer::start().await;
    let im = Im::new(&s);
    let health = im.expect(200, Method::GET, "/health", "", None).await;
    assert_eq!(health["status"], "ok");
    assert!(health["timestamp"].as_u64().unwrap() > 1_000_000_000_000);

    let (alice, alice_t) = im.register("alice").await;
    let (bob, bob_t) = im.register("bob").await;
    let (carol, carol_t) = im.register("carol").await;

    // Login: by token, with the user id next to it, and (as the document's JavaScript client
    // does with its user id) with the token in `user_id`.
    let mut a = im.login(&alice, &alice_t).await;
    let mut b = im.login(&bob, &bob_t).await;
    let hb = a.ask("heartbeat", json!({"user_id": alice})).await;
    assert!(hb["data"]["timestamp"].as_u64().unwrap() > 1_000_000_000_000);

    // 1:1 over the WebSocket, with delivery and read acks.
    let sent = a
        .ask(
            "send_message",
            json!({"receiver_id": bob, "type": "text", "content": "Hello, world!"}),
        )
        .await;
    let d = &sent["data"];
    assert_eq!(d["success"], true, "{sent}");
    let id = d["message_id"].as_str().unwrap().to_owned();
    assert_eq!(d["message"]["id"], id.as_str());
    assert_eq!(d["message"]["sender_id"], alice.as_str());
    assert_eq!(d["message"]["receiver_id"], bob.as_str());
    assert_eq!(d["message"]["status"], "sent");
    assert_eq!(d["message"]["type"], "text");
    let pushed = b.next("new_message").await;
    assert_eq!(pushed["message_id"], id.as_str());
    assert_eq!(pushed["data"]["id"], id.as_str());
    assert_eq!(pushed["data"]["content"], "Hello, world!");
    assert_eq!(pushed["data"]["sender_id"], alice.as_str());
    assert_eq!(pushed["data"]["timestamp"], d["message"]["timestamp"]);

    let acked = b
        .ask("ack", json!({"message_id": id, "status": "delivered"}))
        .await;
    assert_eq!(acked["data"]["success"], true, "{acked}");
    let receipt = a.next("ack").await;
    assert_eq!(receipt["data"]["message_id"], id.as_str());
    assert_eq!(receipt["data"]["status"], "delivered");
    assert_eq!(receipt["data"]["user_id"], bob.as_str());
    // Others' delivered positions are pushed, not kept for queries: still `sent` here.
    let got = im
        .expect(
            200,
            Method::GET,
            &format!("/api/v1/messages/{id}"),
            &alice_t,
            None,
        )
        .await;
    assert_eq!(got["message"]["status"], "sent");
    // Bob sees his own position.
    let got = im
        .expect(
            200,
            Method::GET,
            &format!("/api/v1/messages/{id}"),
            &bob_t,
            None,
        )
        .await;
    assert_eq!(got["message"]["status"], "delivered");
    // Read over REST this time.
    let ok = im
        .expect(
            200,
            Method::POST,
            &format!("/api/v1/messages/{id}/ack"),
            &bob_t,
            Some(json!({"status": "read"})),
        )
        .await;
    assert_eq!(ok, json!({"success": true}));
    let receipt = a.next("ack").await;
    assert_eq!(receipt["data"]["status"], "read");
    let got = im
        .expect(
            200,
            Method::GET,
            &format!("/api/v1/messages/{id}"),
            &alice_t,
            None,
        )
        .await;
    assert_eq!(got["message"]["status"], "read");
    assert_eq!(got["message"]["content"], "Hello, world!");

    // REST send, with the user id in X-User-ID and the token as a bearer token.
    let res = im
        .http
        .post(format!("{}/api/v1/messages", im.base))
        .header("X-User-ID", bob.as_str())
        .bearer_auth(&bob_t)
        .json(&json!({"receiver_id": alice, "type": "text", "content": "Hi there!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["success"], true);
    assert_eq!(body["message_id"], body["message"]["id"]);
    let pushed = a.next("new_message").await;
    assert_eq!(pushed["data"]["content"], "Hi there!");
    assert_eq!(pushed["data"]["receiver_id"], alice.as_str());

    // Offline sync by last message id: Bob is away while Alice writes three more.
    drop(b);
    let mut ids = Vec::new();
    for n in 1..=3 {
        let body = im
            .expect(
                200,
                Method::POST,
                "/api/v1/messages",
                &alice_t,
                Some(json!({"receiver_id": bob, "type": "text", "content": format!("away {n}")})),
            )
            .await;
        ids.push(body["message_id"].as_str().unwrap().to_owned());
    }
    let (c0, s0) = parts(&id);
    let (c1, s1) = parts(&ids[0]);
    assert_eq!(c0, c1);
    assert!(s1 > s0);
    let mut b = im.login(&bob, &bob_t).await;
    let sync = b
        .ask(
            "sync_offline",
            json!({"last_message_id": ids[0], "limit": 50}),
        )
        .await;
    let contents: Vec<&str> = sync["data"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["away 2", "away 3"]);
    assert_eq!(sync["data"]["has_more"], false);
    let page = im
        .expect(
            200,
            Method::GET,
            &format!(
                "/api/v1/messages/offline?last_message_id={}&limit=1",
                ids[0]
            ),
            &bob_t,
            None,
        )
        .await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
    assert_eq!(page["messages"][0]["id"], ids[1].as_str());
    assert_eq!(page["has_more"], true);
    // Without a last id: everything after Bob's delivered position.
    let all = im
        .expect(200, Method::GET, "/api/v1/messages/offline", &bob_t, None)
        .await;
    let contents: Vec<&str> = all["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    // (Bob's own "Hi there!" moved his own cursors: it is not offline for him.)
    assert_eq!(contents, ["away 1", "away 2", "away 3"]);

    // A group: create, chat, join, leave.
    let g = im
        .expect(
            200,
            Method::POST,
            "/api/v1/groups",
            &alice_t,
            Some(json!({"name": "My Group", "description": "A test group", "members": [bob]})),
        )
        .await;
    let group = &g["group"];
    let gid = group["id"].as_str().unwrap().to_owned();
    assert_eq!(group["name"], "My Group");
    assert_eq!(group["description"], "A test group");
    assert_eq!(group["owner_id"], alice.as_str());
    assert_eq!(group["members"], json!([bob]));
    assert!(is_iso(&group["created_at"]), "{group}");
    assert!(is_iso(&group["updated_at"]), "{group}");
    let sent = a
        .ask(
            "send_message",
            json!({"group_id": gid, "type": "text", "content": "Hello everyone!"}),
        )
        .await;
    assert_eq!(sent["data"]["message"]["group_id"], gid.as_str());
    let pushed = b.next("new_group_message").await;
    assert_eq!(pushed["data"]["group_id"], gid.as_str());
    assert_eq!(pushed["data"]["content"], "Hello everyone!");
    assert_eq!(pushed["message_id"], sent["data"]["message_id"]);

    // Carol is not a member: she cannot write there.
    let (status, _) = im
        .call(
            Method::POST,
            "/api/v1/messages",
            &carol_t,
            Some(json!({"group_id": gid, "content": "let me in"})),
        )
        .await;
    assert!(status == 403 || status == 404, "{status}");
    let mut c = im.login(&carol, &carol_t).await;
    let joined = c.ask("join_group", json!({"group_id": gid})).await;
    assert_eq!(joined["data"]["success"], true, "{joined}");
    let members = im
        .expect(
            200,
            Method::GET,
            &format!("/api/v1/groups/{gid}/members"),
            &alice_t,
            None,
        )
        .await;
    let members = members["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    for m in members {
        assert_eq!(m["group_id"], gid.as_str());
        assert_eq!(
            m["id"],
            format!("member_{gid}_{}", m["user_id"].as_str().unwrap())
        );
        assert!(is_iso(&m["joined_at"]), "{m}");
        let want = if m["user_id"] == alice.as_str() {
            "owner"
        } else {
            "member"
        };
        assert_eq!(m["role"], want, "{m}");
    }
    // Carol sees her own join, not the entries from before it.
    let members = im
        .expect(
            200,
            Method::GET,
            &format!("/api/v1/groups/{gid}/members"),
            &carol_t,
            None,
        )
        .await;
    for m in members["members"].as_array().unwrap() {
        let own = m["user_id"] == carol.as_str();
        assert_eq!(is_iso(&m["joined_at"]), own, "{m}");
        assert_eq!(m["joined_at"].is_null(), !own, "{m}");
    }
    let sent = b
        .ask(
            "send_message",
            json!({"group_id": gid, "content": "welcome carol"}),
        )
        .await;
    assert_eq!(sent["data"]["success"], true);
    assert_eq!(
        c.next("new_group_message").await["data"]["content"],
        "welcome carol"
    );
    let left = im
        .expect(
            200,
            Method::POST,
            &format!("/api/v1/groups/{gid}/leave"),
            &carol_t,
            None,
        )
        .await;
    assert_eq!(left, json!({"success": true}));
    let g = im
        .expect(
            200,
            Method::GET,
            &format!("/api/v1/groups/{gid}"),
            &bob_t,
            None,
        )
        .await;
    assert_eq!(g["group"]["members"], json!([bob]));
    // Leaving over the WebSocket, then writing there, is refused in the frame's own type.
    let left = b.ask("leave_group", json!({"group_id": gid})).await;
    assert_eq!(left["data"]["success"], true);
    let refused = b
        .ask(
            "send_message",
            json!({"group_id": gid, "content": "still here?"}),
        )
        .await;
    assert_eq!(refused["data"]["success"], false);
    assert!(refused["data"]["error"].is_string());

    // Error shapes.
    im.expect(401, Method::GET, "/api/v1/messages/offline", "", None)
        .await;
    im.expect(
        401,
        Method::GET,
        "/api/v1/messages/offline",
        "not-a-token",
        None,
    )
    .await;
    // A user id alone is not trusted by default.
    im.expect(401, Method::GET, "/api/v1/messages/offline", &alice, None)
        .await;
    // A user id that is not the bearer token's user.
    let res = im
        .http
        .get(format!("{}/api/v1/messages/offline", im.base))
        .header("X-User-ID", alice.as_str())
        .bearer_auth(&bob_t)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    im.expect(
        400,
        Method::POST,
        "/api/v1/messages",
        &alice_t,
        Some(json!({"receiver_id": bob})),
    )
    .await;
    im.expect(
        400,
        Method::POST,
        "/api/v1/messages",
        &alice_t,
        Some(json!({"receiver_id": bob, "type": "hologram", "content": "x"})),
    )
    .await;
    im.expect(
        400,
        Method::POST,
        "/api/v1/messages",
        &alice_t,
        Some(json!([1])),
    )
    .await;
    im.expect(
        400,
        Method::POST,
        &format!("/api/v1/messages/{id}/ack"),
        &alice_t,
        Some(json!({"status": "lost"})),
    )
    .await;
    im.expect(
        400,
        Method::GET,
        "/api/v1/messages/offline?limit=0",
        &alice_t,
        None,
    )
    .await;
    im.expect(404, Method::GET, "/api/v1/messages/msg_123", &alice_t, None)
        .await;
    im.expect(
        404,
        Method::GET,
        "/api/v1/messages/msg_999999_1",
        &alice_t,
        None,
    )
    .await;
    im.expect(
        404,
        Method::GET,
        &format!("/api/v1/messages/msg_{c0}_999"),
        &alice_t,
        None,
    )
    .await;
    // Carol is in no conversation with Alice and Bob: their message is unknown to her.
    im.expect(
        404,
        Method::GET,
        &format!("/api/v1/messages/{id}"),
        &carol_t,
        None,
    )
    .await;
    im.expect(404, Method::GET, "/api/v1/groups/group123", &alice_t, None)
        .await;
    im.expect(
        404,
        Method::POST,
        "/api/v1/messages",
        &alice_t,
        Some(json!({"receiver_id": "nobody-here", "content": "x"})),
    )
    .await;
    im.expect(404, Method::GET, "/api/v1/nothing", &alice_t, None)
        .await;
    im.expect(405, Method::DELETE, "/api/v1/messages", &alice_t, None)
        .await;
    let bad = c.ask("ack", json!({"message_id": "msg_1"})).await;
    assert_eq!(bad["data"]["success"], false);
    c.send("teleport", json!({})).await;
    let unknown = c.next("error").await;
    assert!(unknown["data"]["error"]
        .as_str()
        .unwrap()
        .contains("teleport"));
    let (mut x, answer) = im
        .socket(json!({"user_id": alice, "token": "test_token", "platform": "web"}))
        .await;
    assert_eq!(answer["data"]["success"], false, "{answer}");
    assert!(x.closed_without("heartbeat").await);
    let (_, answer) = im
        .socket(json!({"user_id": alice, "token": bob_t, "platform": "web"}))
        .await;
    assert_eq!(answer["data"]["success"], false, "{answer}");

    // Stats: signed-in callers only.
    im.expect(401, Method::GET, "/api/v1/stats", "", None).await;
    let stats = im
        .expect(200, Method::GET, "/api/v1/stats", &alice_t, None)
        .await;
    assert!(stats["connections"].as_u64().unwrap() >= 3, "{stats}");
    assert!(stats["online_users"].as_u64().unwrap() >= 3, "{stats}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_trust_is_an_operator_switch() {
    let s = TestServer::start_with(|c| c.compat.trust_user_header = true).await;
    let im = Im::new(&s);
    let (dora, _) = im.register("dora").await;
    let (eve, eve_t) = im.register("eve").await;
    // The id, or the account name, is trusted; tokens still work.
    let sent = im
        .expect(
            200,
            Method::POST,
            "/api/v1/messages",
            &dora,
            Some(json!({"receiver_id": "eve", "content": "from the gateway"})),
        )
        .await;
    assert_eq!(sent["message"]["sender_id"], dora.as_str());
    assert_eq!(sent["message"]["receiver_id"], eve.as_str());
    let page = im
        .expect(200, Method::GET, "/api/v1/messages/offline", "eve", None)
        .await;
    assert_eq!(page["messages"][0]["content"], "from the gateway");
    // From the very start of a conversation, oldest first, a page at a time.
    for n in 2..=3 {
        im.expect(
            200,
            Method::POST,
            "/api/v1/messages",
            "dora",
            Some(json!({"receiver_id": eve, "content": format!("gateway {n}")})),
        )
        .await;
    }
    let page = im
        .expect(
            200,
            Method::GET,
            "/api/v1/messages/offline?limit=2",
            "eve",
            None,
        )
        .await;
    let contents: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["from the gateway", "gateway 2"]);
    assert_eq!(page["has_more"], true);
    im.expect(200, Method::GET, "/api/v1/messages/offline", &eve_t, None)
        .await;
    // Unknown users are still refused.
    im.expect(
        401,
        Method::GET,
        "/api/v1/messages/offline",
        "mallory",
        None,
    )
    .await;
    im.expect(401, Method::GET, "/api/v1/messages/offline", "999999", None)
        .await;
    let (_, answer) = im
        .socket(json!({"user_id": "dora", "token": "anything", "platform": "web"}))
        .await;
    assert_eq!(answer["data"]["success"], true, "{answer}");
    assert_eq!(answer["data"]["user_id"], dora.as_str());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imsys_user_chats_with_a_native_client() {
    let s = TestServer::start().await;
    let im = Im::new(&s);
    let (frank, frank_t) = im.register("frank").await;
    let (native, mut events) = s.register(Transport::Tls, "nina").await;
    let nina = native.user_id().to_string();
    let mut f = im.login(&frank, &frank_t).await;

    let peer = PeerRef::User(frank.parse::<u64>().unwrap().try_into().unwrap());
    let direct = native.open_direct(peer).await.unwrap();
    native
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
    assert_eq!(parts(m["message_id"].as_str().unwrap()).0, direct.id.get());

    let sent = f
        .ask(
            "send_message",
            json!({"receiver_id": "nina", "content": "hi nina"}),
        )
        .await;
    let got = next_message(&mut events).await;
    assert_eq!(&got.content[..], b"hi nina");
    let (conv, seq) = parts(sent["data"]["message_id"].as_str().unwrap());
    assert_eq!((conv, seq), (got.conversation.get(), got.seq.get()));

    // A /im/v1 user sends through our REST API; the IM系统 socket shows it.
    let (_, nina_t) = {
        let res = im
            .http
            .post(format!("{}/auth/login", im.native))
            .json(&json!({"account": "nina", "password": "password-123", "device_id": "rest"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let body: Value = res.json().await.unwrap();
        ((), body["access_token"].as_str().unwrap().to_owned())
    };
    let res = im
        .http
        .post(format!("{}/conversations/{conv}/messages", im.native))
        .bearer_auth(&nina_t)
        .json(&json!({"client_msg_id": "nina-rest-1", "content": "via rest"}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{:?}", res.text().await);
    let m = f.next("new_message").await;
    assert_eq!(m["data"]["content"], "via rest");
    s.stop().await;
}

/// Whether `program args` runs and exits 0.
async fn works(program: &str, args: &[&str]) -> bool {
    tokio::process::Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// Whether the snippets can run here; without `node` (with `--experimental-websocket`) or
/// Python's `requests`, the test is skipped with a message unless `PARLEY_DIALECT_SNIPPETS=1`
/// (CI) makes it fail.
async fn snippets_can_run() -> bool {
    let node = works(
        "node",
        &[
            "--experimental-websocket",
            "-e",
            "process.exit(typeof WebSocket === 'function' ? 0 : 1)",
        ],
    )
    .await;
    let python = works("python3", &["-c", "import requests"]).await;
    if node && python {
        return true;
    }
    let msg = format!(
        "the IM系统 snippets need node >= 20.10 (--experimental-websocket: {node}) and \
         python3 with requests ({python})"
    );
    if std::env::var("PARLEY_DIALECT_SNIPPETS").as_deref() == Ok("1") {
        panic!("{msg}");
    }
    eprintln!("skipped: {msg}");
    false
}

fn snippet(name: &str) -> String {
    let path = format!("{}/tests/compat_imsys/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap()
}

/// Runs the document's Python client (base URL replaced, and `user123` too if `user` is
/// given): its printed result.
async fn run_python(http: std::net::SocketAddr, user: Option<&str>) -> String {
    run_python_then(http, user, "").await
}

/// [`run_python`], then `more` (Python using the document's `client`), appended after it.
async fn run_python_then(http: std::net::SocketAddr, user: Option<&str>, more: &str) -> String {
    let mut code = snippet("client.py").replace(
        "IMClient('http://localhost:8080'",
        &format!("IMClient('http://{http}/compat/imsys'"),
    );
    code.push('\n');
    code.push_str(more);
    if let Some(u) = user {
        let from = format!("IMClient('http://{http}/compat/imsys', 'user123')");
        assert!(code.contains(&from));
        code = code.replace(
            &from,
            &format!("IMClient('http://{http}/compat/imsys', '{u}')"),
        );
    }
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new("python3")
            .args(["-c", &code])
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs the document's JavaScript client (base URL replaced, and `user123` too if `user` is
/// given) until it printed `until`, or the socket closed; gives its output.
async fn run_js(
    http: std::net::SocketAddr,
    user: Option<&str>,
    until: &str,
    meanwhile: impl std::future::Future<Output = ()>,
) -> String {
    let from = "new IMClient('ws://localhost:8080/ws', 'user123')";
    assert!(snippet("client.js").contains(from));
    let to = format!(
        "new IMClient('ws://{http}/compat/imsys/ws', '{}')",
        user.unwrap_or("user123")
    );
    let code = snippet("client.js").replace(from, &to);
    let mut child = tokio::process::Command::new("node")
        .args(["--experimental-websocket", "--no-warnings", "-e", &code])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut out = String::new();
    let mut meanwhile = Box::pin(meanwhile);
    let mut started = false;
    loop {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("node printed {until:?} in time; it printed:\n{out}"))
            .unwrap();
        let Some(line) = line else { break };
        out.push_str(&line);
        out.push('\n');
        if line.contains(until) {
            // The rest of the printed object, up to its closing brace.
            while let Ok(Ok(Some(line))) = tokio::time::timeout(WAIT, lines.next_line()).await {
                out.push_str(&line);
                out.push('\n');
                if line == "}" || !line.starts_with(' ') {
                    break;
                }
            }
            break;
        }
        if !started && line.contains("Login successful") {
            started = true;
            meanwhile.as_mut().await;
        }
    }
    let _ = child.kill().await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documents_clients_run_unchanged() {
    if !snippets_can_run().await {
        return;
    }
    // Behind a trusting gateway, as the document's clients assume: user ids as they are.
    let s = TestServer::start_with(|c| c.compat.trust_user_header = true).await;
    let im = Im::new(&s);
    let (u123, _) = im.register("user123").await;
    let (u456, u456_t) = im.register("user456").await;
    let printed = run_python(s.http, None).await;
    assert!(printed.contains("'success': True"), "{printed}");
    assert!(
        printed.contains(&format!("'receiver_id': '{u456}'")),
        "{printed}"
    );
    assert!(printed.contains("'content': 'Hello!'"), "{printed}");
    let http = s.http;
    let out = run_js(http, None, "New message:", async {
        let body = im
            .expect(
                200,
                Method::POST,
                "/api/v1/messages",
                &u456_t,
                Some(json!({"receiver_id": u123, "content": "to the js client"})),
            )
            .await;
        assert_eq!(body["success"], true);
    })
    .await;
    assert!(out.contains("Connected to IM server"), "{out}");
    assert!(out.contains("Login successful"), "{out}");
    assert!(out.contains("New message:"), "{out}");
    s.stop().await;

    // Default trust: the same clients, given access tokens where they put the user id.
    let s = TestServer::start().await;
    let im = Im::new(&s);
    let (u123, u123_t) = im.register("user123").await;
    let (_u456, u456_t) = im.register("user456").await;
    // Unchanged, the bare id is refused.
    let printed = run_python(s.http, None).await;
    assert!(printed.contains("'error'"), "{printed}");
    // The client's other methods, driven after the document's usage lines.
    let more = "print(client.get_offline_messages(limit=10))\n\
                print(client.create_group('Py Group', 'made by the snippet', ['user456']))\n";
    let printed = run_python_then(s.http, Some(&u123_t), more).await;
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 3, "{printed}");
    assert!(lines[0].contains("'success': True"), "{printed}");
    assert!(lines[1].contains("'messages': ["), "{printed}");
    assert!(lines[1].contains("'has_more': False"), "{printed}");
    assert!(lines[2].contains("'name': 'Py Group'"), "{printed}");
    assert!(
        lines[2].contains(&format!("'owner_id': '{u123}'")),
        "{printed}"
    );
    let refused = run_js(s.http, None, "Disconnected from IM server", async {}).await;
    assert!(refused.contains("success: false"), "{refused}");
    let out = run_js(s.http, Some(&u123_t), "New message:", async {
        im.expect(
            200,
            Method::POST,
            "/api/v1/messages",
            &u456_t,
            Some(json!({"receiver_id": u123, "content": "to the js client"})),
        )
        .await;
    })
    .await;
    assert!(out.contains("Login successful"), "{out}");
    assert!(out.contains("to the js client"), "{out}");
    s.stop().await;
}
