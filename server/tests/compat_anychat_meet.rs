//! AnyChat's meetings (`/rtc/meetings...`) and the notification a new group sends its members,
//! against a real server on port 0. Every HTTP answer is validated against the seed's contract
//! (`openapi.json`, through `parley_admin_http::compat::contract`): a success against the
//! operation's 200 schema, a failure (HTTP 200 with the status in `code`) against the schema
//! the operation documents for that status, or the contract's envelope. Every WebSocket frame
//! is validated against the asyncapi payload schema of its type.
//!
//! Meetings are the core's (docs/protocol.md section 25): a room name and a token of ours, the
//! password checked by the core, only the creator ends one, a full or ended one refuses joins.
#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

mod common;

use std::sync::Arc;

use common::{TestServer, WAIT};
use futures::StreamExt;
use parley_admin_http::compat::anychat;
use parley_admin_http::compat::contract::{AsyncContract, Component, Contract};
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// An AnyChat client of one server; every answer is checked against the contract.
struct Any {
    http: reqwest::Client,
    /// `http://HOST:PORT/compat/anychat/api/v1`
    base: String,
    /// `ws://HOST:PORT/compat/anychat/api/v1/ws`
    ws: String,
    contract: Arc<Contract>,
    envelope: Arc<Component>,
}

#[derive(Debug)]
struct Answer {
    body: Value,
}

impl Answer {
    fn data(&self) -> &Value {
        &self.body["data"]
    }
}

fn fill(template: &str, params: &[&str]) -> String {
    let mut path = template.to_owned();
    for p in params {
        let start = path.find('{').expect("a parameter to fill");
        let end = path[start..].find('}').unwrap() + start;
        path.replace_range(start..=end, p);
    }
    path
}

impl Any {
    fn new(s: &TestServer) -> Any {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Any {
            http: reqwest::Client::builder().timeout(WAIT).build().unwrap(),
            base: format!("http://{}/compat/anychat/api/v1", s.http),
            ws: format!("ws://{}/compat/anychat/api/v1/ws", s.http),
            contract: Arc::new(Contract::from_yaml(anychat::OPENAPI).expect("the contract")),
            envelope: Arc::new(
                Component::from_yaml(
                    anychat::OPENAPI,
                    "github_com_anychat_server_pkg_response.Response",
                )
                .expect("the envelope schema"),
            ),
        }
    }

    /// Calls the contract's operation `method template`, checks the answer against the
    /// contract, and expects `code` (0: success).
    #[allow(clippy::too_many_arguments)] // one call site per operation reads best spelled out
    async fn expect(
        &self,
        code: i64,
        method: Method,
        template: &str,
        params: &[&str],
        query: &str,
        token: &str,
        body: Option<Value>,
    ) -> Answer {
        let url = format!("{}{}{query}", self.base, fill(template, params));
        let mut req = self.http.request(method.clone(), url);
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let body: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
        let got = body["code"].as_i64().expect("every answer has a code");
        let checked = match (status, got) {
            (200, 0) => {
                assert_eq!(body["message"], "success", "{body}");
                self.contract.check(method.as_str(), template, 200, &body)
            }
            _ => {
                assert!(status == 200 || status >= 500, "{status} {body}");
                assert!(body["data"].is_null(), "{body}");
                let documented = u16::try_from(got)
                    .map_err(|_| format!("code {got}"))
                    .and_then(|c| self.contract.check(method.as_str(), template, c, &body));
                match documented {
                    Err(e) if !e.contains("an undocumented error status") => Err(e),
                    _ => self.envelope.check(&body),
                }
            }
        };
        if let Err(e) = checked {
            panic!("the answer breaks the contract: {e}");
        }
        assert_eq!(got, code, "{method} {template}: {body}");
        Answer { body }
    }

    /// Registers the user with this e-mail name: its access token and user id.
    async fn register(&self, name: &str) -> (String, String) {
        let body = json!({
            "email": format!("{name}@example.com"),
            "password": "password123",
            "verifyCode": "000000",
            "nickname": name,
            "deviceType": "web",
        });
        let a = self
            .expect(0, Method::POST, "/auth/register", &[], "", "", Some(body))
            .await;
        let d = a.data();
        (
            d["accessToken"].as_str().unwrap().to_owned(),
            d["userId"].as_str().unwrap().to_owned(),
        )
    }

    /// Opens `token`'s WebSocket.
    async fn socket(&self, token: &str) -> Ws {
        let (ws, _) = tokio_tungstenite::connect_async(format!("{}?token={token}", self.ws))
            .await
            .unwrap();
        Ws {
            ws,
            frames: Arc::new(AsyncContract::from_yaml(anychat::ASYNCAPI).expect("loads")),
        }
    }
}

/// An AnyChat WebSocket; every frame it receives is checked against the asyncapi document.
struct Ws {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    frames: Arc<AsyncContract>,
}

impl Ws {
    /// The data of the next `notification` of `kind` (other frames are skipped, still
    /// validated).
    async fn notification(&mut self, kind: &str) -> Value {
        loop {
            let m = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame in time")
                .expect("the socket is open")
                .unwrap();
            let WsMessage::Text(text) = m else { continue };
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            self.frames.check(&v).unwrap_or_else(|e| panic!("{e}"));
            if v["type"] == "notification" && v["payload"]["notificationType"] == kind {
                return v["payload"]["data"].clone();
            }
        }
    }
}

/// The room token's fields: room id, user id, expiry, signature.
fn token_parts(data: &Value) -> Vec<String> {
    data["token"]
        .as_str()
        .expect("a token")
        .split('.')
        .map(str::to_owned)
        .collect()
}

fn room_ids(list: &Value) -> Vec<String> {
    list["meetings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["roomId"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meetings_are_opened_joined_with_their_password_and_ended_by_their_creator() {
    let s = TestServer::start().await;
    let c = Any::new(&s);
    let (alice, alice_id) = c.register("alice").await;
    let (bob, bob_id) = c.register("bob").await;
    let (carol, _) = c.register("carol").await;
    let (post, get) = (Method::POST, Method::GET);

    // Bad input: no title, a blank one, a negative size. No token: 401.
    c.expect(
        400,
        post.clone(),
        "/rtc/meetings",
        &[],
        "",
        &alice,
        Some(json!({})),
    )
    .await;
    let blank = json!({"title": "  "});
    c.expect(
        400,
        post.clone(),
        "/rtc/meetings",
        &[],
        "",
        &alice,
        Some(blank),
    )
    .await;
    let negative = json!({"title": "t", "maxParticipants": -1});
    c.expect(
        400,
        post.clone(),
        "/rtc/meetings",
        &[],
        "",
        &alice,
        Some(negative),
    )
    .await;
    let t = json!({"title": "t"});
    c.expect(401, post.clone(), "/rtc/meetings", &[], "", "", Some(t))
        .await;

    // Alice opens a meeting for two, with a password: she is its creator and first
    // participant, with a token of hers for its room.
    let body = json!({"title": "Standup", "password": "s3cret", "maxParticipants": 2});
    let a = c
        .expect(
            0,
            post.clone(),
            "/rtc/meetings",
            &[],
            "",
            &alice,
            Some(body),
        )
        .await;
    let m = a.data().clone();
    let room = m["roomId"].as_str().unwrap().to_owned();
    assert_eq!(m["roomName"], format!("meeting-{room}"));
    assert_eq!(m["title"], "Standup");
    assert_eq!(m["creatorId"], alice_id.as_str());
    assert_eq!(m["hasPassword"], true);
    assert_eq!(m["maxParticipants"], 2);
    assert_eq!(m["status"], "active");
    assert_eq!(m["participants"], json!([alice_id]));
    assert!(m["createdAt"].as_u64().unwrap() > 0);
    let parts = token_parts(&m);
    assert_eq!(parts.len(), 4, "{m}");
    assert_eq!(
        (parts[0].as_str(), parts[1].as_str()),
        (room.as_str(), alice_id.as_str())
    );
    assert!(m["expiresIn"].as_u64().unwrap() > 0);

    // Bob has the id: he sees the meeting, not who is in it.
    let a = c
        .expect(
            0,
            get.clone(),
            "/rtc/meetings/{roomId}",
            &[&room],
            "",
            &bob,
            None,
        )
        .await;
    assert_eq!(a.data()["title"], "Standup");
    assert_eq!(a.data()["participants"], json!([]));
    assert_eq!(a.data()["participantCount"], 1);
    assert!(a.data().get("token").is_none(), "no token without joining");

    // Joining needs the password: none, or a wrong one, is 403 (the contract's "密码错误").
    let join = "/rtc/meetings/{roomId}/join";
    c.expect(403, post.clone(), join, &[&room], "", &bob, None)
        .await;
    let wrong = json!({"password": "s3cre"});
    c.expect(403, post.clone(), join, &[&room], "", &bob, Some(wrong))
        .await;
    let right = json!({"password": "s3cret"});
    let a = c
        .expect(
            0,
            post.clone(),
            join,
            &[&room],
            "",
            &bob,
            Some(right.clone()),
        )
        .await;
    assert_eq!(a.data()["participants"], json!([alice_id, bob_id]));
    assert_eq!(token_parts(a.data())[1], bob_id);
    // Again: nothing changes. Carol, with the password, finds it full.
    let a = c
        .expect(
            0,
            post.clone(),
            join,
            &[&room],
            "",
            &bob,
            Some(right.clone()),
        )
        .await;
    assert_eq!(a.data()["participantCount"], 2);
    c.expect(
        409,
        post.clone(),
        join,
        &[&room],
        "",
        &carol,
        Some(right.clone()),
    )
    .await;

    // A second meeting, open to all: Carol joins without a body.
    let body = json!({"title": "Open house"});
    let a = c
        .expect(
            0,
            post.clone(),
            "/rtc/meetings",
            &[],
            "",
            &alice,
            Some(body),
        )
        .await;
    let open = a.data()["roomId"].as_str().unwrap().to_owned();
    assert_eq!(a.data()["hasPassword"], false);
    c.expect(0, post.clone(), join, &[&open], "", &carol, None)
        .await;

    // Each lists the open meetings they are in, newest first, paged.
    let a = c
        .expect(0, get.clone(), "/rtc/meetings", &[], "", &alice, None)
        .await;
    assert_eq!(room_ids(a.data()), vec![open.clone(), room.clone()]);
    assert_eq!(a.data()["total"], 2);
    let a = c
        .expect(
            0,
            get.clone(),
            "/rtc/meetings",
            &[],
            "?page=2&pageSize=1",
            &alice,
            None,
        )
        .await;
    assert_eq!(room_ids(a.data()), vec![room.clone()]);
    assert_eq!(a.data()["hasMore"], false);
    let a = c
        .expect(
            0,
            get.clone(),
            "/rtc/meetings",
            &[],
            "?pageSize=1",
            &alice,
            None,
        )
        .await;
    assert_eq!(a.data()["hasMore"], true);
    let a = c
        .expect(0, get.clone(), "/rtc/meetings", &[], "", &bob, None)
        .await;
    assert_eq!(room_ids(a.data()), vec![room.clone()]);

    // Only the creator ends a meeting; then nobody joins it, and it leaves the lists.
    let end = "/rtc/meetings/{roomId}/end";
    c.expect(403, post.clone(), end, &[&room], "", &bob, None)
        .await;
    let a = c
        .expect(0, post.clone(), end, &[&room], "", &alice, None)
        .await;
    assert_eq!(a.data()["status"], "ended");
    c.expect(0, post.clone(), end, &[&room], "", &alice, None)
        .await;
    c.expect(409, post.clone(), join, &[&room], "", &carol, Some(right))
        .await;
    let a = c
        .expect(
            0,
            get.clone(),
            "/rtc/meetings/{roomId}",
            &[&room],
            "",
            &bob,
            None,
        )
        .await;
    assert_eq!(a.data()["status"], "ended");
    assert!(a.data()["endedAt"].as_u64().unwrap() > 0);
    let a = c
        .expect(0, get.clone(), "/rtc/meetings", &[], "", &bob, None)
        .await;
    assert_eq!(room_ids(a.data()), Vec::<String>::new());
    assert_eq!(a.data()["total"], 0);
    let a = c
        .expect(0, get.clone(), "/rtc/meetings", &[], "", &alice, None)
        .await;
    assert_eq!(room_ids(a.data()), vec![open]);

    // Unknown rooms, and ids that are no room's: 404.
    for id in ["12345", "abc", "0"] {
        c.expect(
            404,
            get.clone(),
            "/rtc/meetings/{roomId}",
            &[id],
            "",
            &bob,
            None,
        )
        .await;
        c.expect(404, post.clone(), join, &[id], "", &bob, None)
            .await;
        c.expect(404, post.clone(), end, &[id], "", &alice, None)
            .await;
    }
    c.expect(401, get, "/rtc/meetings", &[], "", "", None).await;

    // Passwords cannot be guessed at request speed: after 10 wrong ones, even the right one
    // waits (`429`).
    let body = json!({"title": "Vault", "password": "open sesame"});
    let a = c
        .expect(
            0,
            post.clone(),
            "/rtc/meetings",
            &[],
            "",
            &alice,
            Some(body),
        )
        .await;
    let vault = a.data()["roomId"].as_str().unwrap().to_owned();
    for i in 0..10 {
        let guess = json!({"password": format!("guess {i}")});
        c.expect(403, post.clone(), join, &[&vault], "", &carol, Some(guess))
            .await;
    }
    let right = json!({"password": "open sesame"});
    c.expect(
        429,
        post.clone(),
        join,
        &[&vault],
        "",
        &carol,
        Some(right.clone()),
    )
    .await;
    // Bob gave no wrong password lately: he joins.
    c.expect(0, post, join, &[&vault], "", &bob, Some(right))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_group_tells_its_members_at_once() {
    let s = TestServer::start().await;
    let c = Any::new(&s);
    let (alice, alice_id) = c.register("alice").await;
    let (bob, bob_id) = c.register("bob").await;
    let mut alice_ws = c.socket(&alice).await;
    let mut bob_ws = c.socket(&bob).await;

    let body = json!({"name": "Climbing", "memberIds": [bob_id]});
    let a = c
        .expect(0, Method::POST, "/groups", &[], "", &alice, Some(body))
        .await;
    let group = a.data()["groupId"].as_str().unwrap().to_owned();

    // Bob was put in the group by Alice: told as AnyChat tells an invited member.
    let n = bob_ws.notification("group.invited").await;
    assert_eq!(n["groupId"], group.as_str());
    assert_eq!(n["inviterId"], alice_id.as_str());
    assert_eq!(n["groupName"], "Climbing");
    // Alice's socket (her other device) hears who the group started with.
    let n = alice_ws.notification("group.member_joined").await;
    assert_eq!(n["groupId"], group.as_str());
    assert_eq!(n["userIds"], json!([alice_id, bob_id]));
    assert_eq!(n["created"], true);
}
