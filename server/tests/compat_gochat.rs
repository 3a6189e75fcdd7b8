//! The GoChat dialect (`/compat/gochat`) against a real server on port 0, written from the seed
//! document and its contract (`00_openapi.yaml`): every HTTP answer of these tests is validated
//! against the contract's schema for its operation and status (a JSON Schema validator, through
//! `parley_admin_http::compat::contract`), every operation of the contract must have a route,
//! and the scenarios cover register, login, guest login and the world room, profile, user
//! search, friends, conversations, 1:1 and group chat over GoChat's WebSocket with acks, history
//! paging, mark-read, members, and the error shapes for bad tokens, bad input, non-members and
//! unknown ids. A GoChat user also chats with a native SDK client and logs in through /im/v1.
#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::{next_message, TestServer, WAIT};
use futures::{SinkExt, StreamExt};
use parley_admin_http::compat::contract::Contract;
use parley_admin_http::compat::gochat;
use parley_client::Transport;
use parley_protocol::frames::{ContentType, PeerRef};
use parley_protocol::ids::ConversationId;
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message as WsMessage;

fn contract() -> Arc<Contract> {
    Arc::new(Contract::from_yaml(gochat::OPENAPI).expect("the GoChat contract loads"))
}

/// A GoChat client of one server; every answer is checked against the contract.
struct Go {
    http: reqwest::Client,
    base: String,
    ws: String,
    contract: Arc<Contract>,
}

/// An answer: status and JSON body.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("<no code>")
    }

    fn data(&self) -> &Value {
        &self.body["data"]
    }
}

impl Go {
    fn new(s: &TestServer) -> Go {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Go {
            http: reqwest::Client::builder().timeout(WAIT).build().unwrap(),
            base: format!("http://{}/compat/gochat/api", s.http),
            ws: format!("ws://{}/compat/gochat/ws", s.http),
            contract: contract(),
        }
    }

    /// Calls the contract's operation `method template` with `params` in the path (and `query`
    /// after it), and checks the answer against the contract.
    async fn call(
        &self,
        method: Method,
        template: &str,
        params: &[&str],
        query: &str,
        token: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut path = template.to_owned();
        for p in params {
            let start = path.find('{').expect("a parameter to fill");
            let end = path[start..].find('}').unwrap() + start;
            path.replace_range(start..=end, p);
        }
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}{query}", self.base));
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let body: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
        if let Err(e) = self
            .contract
            .check(method.as_str(), template, status, &body)
        {
            panic!("the answer breaks the contract: {e}");
        }
        match status < 400 {
            true => assert_eq!(body["success"], true, "{body}"),
            false => assert_eq!(body["success"], false, "{body}"),
        }
        Answer { status, body }
    }

    /// Expects `status` and gives the answer.
    #[allow(clippy::too_many_arguments)]
    async fn expect(
        &self,
        status: u16,
        method: Method,
        template: &str,
        params: &[&str],
        query: &str,
        token: &str,
        body: Option<Value>,
    ) -> Answer {
        let a = self
            .call(method, template, params, query, token, body)
            .await;
        assert_eq!(a.status, status, "{template}: {}", a.body);
        a
    }

    /// Registers `name`: its token and user id.
    async fn register(&self, name: &str) -> (String, String) {
        let body = json!({"username": name, "password": "password-123"});
        let a = self
            .expect(201, Method::POST, "/auth/register", &[], "", "", Some(body))
            .await;
        let d = a.data();
        assert_eq!(d["user"]["username"], name);
        assert_eq!(d["user"]["isGuest"], false);
        (
            d["accessToken"].as_str().unwrap().to_owned(),
            d["user"]["id"].as_str().unwrap().to_owned(),
        )
    }

    async fn socket(&self, token: &str) -> Ws {
        let (ws, _) = tokio_tungstenite::connect_async(format!("{}?token={token}", self.ws))
            .await
            .unwrap();
        Ws(ws)
    }
}

struct Ws(
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
);

impl Ws {
    async fn send(&mut self, kind: &str, data: Value) {
        let frame = json!({"type": kind, "data": data});
        self.0
            .send(WsMessage::Text(frame.to_string().into()))
            .await
            .unwrap();
    }

    /// The next frame of type `kind` (others are skipped); every frame has a timestamp in
    /// seconds.
    async fn next(&mut self, kind: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.0.next())
                .await
                .unwrap_or_else(|_| panic!("no {kind} frame within {WAIT:?}"))
                .expect("socket open")
                .unwrap();
            let WsMessage::Text(text) = msg else {
                if let WsMessage::Close(c) = msg {
                    panic!("closed while waiting for {kind}: {c:?}");
                }
                continue;
            };
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            let ts = v["timestamp"].as_u64().expect("a timestamp");
            assert!(ts < 10_000_000_000, "timestamps are seconds: {ts}");
            if v["type"] == kind {
                return v;
            }
        }
    }

    /// Waits for the close frame; gives its code.
    async fn closed(&mut self) -> u16 {
        loop {
            match tokio::time::timeout(WAIT, self.0.next())
                .await
                .expect("closed in time")
            {
                Some(Ok(WsMessage::Close(Some(c)))) => return c.code.into(),
                Some(Ok(WsMessage::Close(None))) | None | Some(Err(_)) => return 0,
                Some(Ok(_)) => continue,
            }
        }
    }
}

/// Sends a text message over the WebSocket and gives its ack's data.
async fn ws_send(ws: &mut Ws, conv: &str, text: &str, key: &str) -> Value {
    ws.send(
        "send-message",
        json!({"conversationId": conv, "content": text, "messageType": 1, "client_msg_id": key}),
    )
    .await;
    let ack = ws.next("message-ack").await;
    assert_eq!(ack["data"]["client_msg_id"], key);
    assert_eq!(ack["data"]["status"], "success");
    assert!(ack["data"]["messageId"].as_str().is_some());
    ack["data"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_of_the_contract_has_a_route() {
    let c = contract();
    let documented: BTreeSet<(String, String)> = c.operations().into_iter().collect();
    let served: BTreeSet<(String, String)> = gochat::operations()
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
    // dialect's `404 NOT_FOUND` ("no such route") or `405`.
    let s = TestServer::start().await;
    let go = Go::new(&s);
    for (method, path) in &documented {
        let url = format!("{}{}", go.base, path.replace(['{', '}'], ""));
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let res = go.http.request(method.clone(), url).send().await.unwrap();
        let status = res.status().as_u16();
        let body: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
        assert!(
            status != 405 && !(status == 404 && body["message"] == "no such route"),
            "{method} {path} has no route: {status} {body}"
        );
        go.contract
            .check(method.as_str(), path, status, &body)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let a = go
        .http
        .get(format!("{}/nope", go.base))
        .send()
        .await
        .unwrap();
    assert_eq!(a.status().as_u16(), 404);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_login_profile_friends_conversations_and_chat() {
    let s = TestServer::start().await;
    let go = Go::new(&s);
    let (alice, alice_id) = go.register("alice").await;
    let (bob, bob_id) = go.register("bob").await;
    let (carol, carol_id) = go.register("carol").await;
    let (_dave, dave_id) = go.register("dave").await;

    // Register: an existing name and a bad one are 400s.
    let creds = |name: &str, pw: &str| Some(json!({"username": name, "password": pw}));
    let a = go
        .expect(
            400,
            Method::POST,
            "/auth/register",
            &[],
            "",
            "",
            creds("alice", "password-123"),
        )
        .await;
    assert_eq!(a.code(), "USER_ALREADY_EXISTS");
    let a = go
        .expect(
            400,
            Method::POST,
            "/auth/register",
            &[],
            "",
            "",
            creds("a b", "password-123"),
        )
        .await;
    assert_eq!(a.code(), "INVALID_PARAMS");
    go.expect(
        400,
        Method::POST,
        "/auth/register",
        &[],
        "",
        "",
        Some(json!({"username": "x"})),
    )
    .await;

    // Login: tokens, the user, an expiry in seconds; a wrong password is 401.
    let a = go
        .expect(
            200,
            Method::POST,
            "/auth/login",
            &[],
            "",
            "",
            creds("alice", "password-123"),
        )
        .await;
    let d = a.data();
    assert_eq!(d["user"]["id"], alice_id.as_str());
    assert_eq!(d["token"], d["accessToken"]);
    let exp = d["expiresIn"].as_u64().unwrap();
    assert!(
        exp > 1_600_000_000 && exp < 10_000_000_000,
        "seconds: {exp}"
    );
    let a = go
        .expect(
            401,
            Method::POST,
            "/auth/login",
            &[],
            "",
            "",
            creds("alice", "wrong-password"),
        )
        .await;
    assert_eq!(a.code(), "AUTH_FAILED");

    // Profile and avatar.
    let a = go
        .expect(200, Method::GET, "/users/profile", &[], "", &alice, None)
        .await;
    assert_eq!(a.data()["username"], "alice");
    assert!(a.data()["createdAt"].as_u64().unwrap() > 1_600_000_000);
    let url = "https://example.com/alice.png";
    let a = go
        .expect(
            200,
            Method::PUT,
            "/users/profile",
            &[],
            "",
            &alice,
            Some(json!({"avatarUrl": url})),
        )
        .await;
    assert_eq!(a.data()["avatarUrl"], url);
    let a = go
        .expect(
            400,
            Method::PUT,
            "/users/profile",
            &[],
            "",
            &alice,
            Some(json!({"avatarUrl": "nope"})),
        )
        .await;
    assert_eq!(a.code(), "INVALID_PARAMS");

    // Bad tokens.
    let a = go
        .expect(401, Method::GET, "/users/profile", &[], "", "", None)
        .await;
    assert_eq!(a.code(), "UNAUTHORIZED");
    let a = go
        .expect(
            401,
            Method::GET,
            "/users/profile",
            &[],
            "",
            "not-a-token",
            None,
        )
        .await;
    assert_eq!(a.code(), "AUTH_FAILED");
    let err = tokio_tungstenite::connect_async(format!("{}?token=not-a-token", go.ws))
        .await
        .expect_err("a bad token is refused before the upgrade");
    match err {
        tokio_tungstenite::tungstenite::Error::Http(r) => assert_eq!(r.status().as_u16(), 401),
        e => panic!("unexpected: {e}"),
    }

    // Search.
    let a = go
        .expect(
            200,
            Method::GET,
            "/users/search",
            &[],
            "?q=bo&limit=5",
            &alice,
            None,
        )
        .await;
    let users = a.data()["users"].as_array().unwrap();
    assert!(
        users.iter().any(|u| u["id"] == bob_id.as_str()),
        "{users:?}"
    );
    go.expect(400, Method::GET, "/users/search", &[], "", &alice, None)
        .await;

    // Friends: a request, its acceptance, both lists.
    go.expect(
        201,
        Method::POST,
        "/friends/requests",
        &[],
        "",
        &alice,
        Some(json!({"targetUserId": bob_id, "message": "hi"})),
    )
    .await;
    let a = go
        .expect(
            200,
            Method::GET,
            "/friends/requests",
            &[],
            "?type=received",
            &bob,
            None,
        )
        .await;
    let requests = a.data()["requests"].as_array().unwrap().clone();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["requesterId"], alice_id.as_str());
    let a = go
        .expect(
            200,
            Method::GET,
            "/friends/requests",
            &[],
            "?type=sent",
            &alice,
            None,
        )
        .await;
    assert_eq!(a.data()["requests"][0]["targetId"], bob_id.as_str());
    let id = requests[0]["id"].as_str().unwrap();
    let a = go
        .expect(
            404,
            Method::PUT,
            "/friends/requests/{requestId}",
            &["1-2"],
            "",
            &bob,
            Some(json!({"action": "accept"})),
        )
        .await;
    assert_eq!(a.code(), "REQUEST_NOT_FOUND");
    go.expect(
        200,
        Method::PUT,
        "/friends/requests/{requestId}",
        &[id],
        "",
        &bob,
        Some(json!({"action": "accept"})),
    )
    .await;
    let a = go
        .expect(200, Method::GET, "/friends", &[], "", &alice, None)
        .await;
    assert_eq!(a.data()["friends"][0]["friendId"], bob_id.as_str());
    assert_eq!(a.data()["friends"][0]["friend"]["username"], "bob");

    // Conversations: a single chat and a group.
    let a = go
        .expect(
            201,
            Method::POST,
            "/conversations",
            &[],
            "",
            &alice,
            Some(json!({"type": 1, "members": [bob_id]})),
        )
        .await;
    assert_eq!(a.data()["type"], 1);
    let single = a.data()["id"].as_str().unwrap().to_owned();
    let body = json!({"type": 2, "name": "team", "description": "the team", "members": [bob_id, carol_id]});
    let a = go
        .expect(
            201,
            Method::POST,
            "/conversations",
            &[],
            "",
            &alice,
            Some(body),
        )
        .await;
    assert_eq!(a.data()["type"], 2);
    assert_eq!(a.data()["name"], "team");
    assert_eq!(a.data()["description"], "the team");
    assert_eq!(a.data()["ownerId"], alice_id.as_str());
    assert_eq!(a.data()["memberCount"], 3);
    let group = a.data()["id"].as_str().unwrap().to_owned();
    go.expect(
        400,
        Method::POST,
        "/conversations",
        &[],
        "",
        &alice,
        Some(json!({"type": 2, "members": []})),
    )
    .await;
    go.expect(
        400,
        Method::POST,
        "/conversations",
        &[],
        "",
        &alice,
        Some(json!({"type": 7})),
    )
    .await;
    go.expect(
        400,
        Method::POST,
        "/conversations",
        &[],
        "",
        &alice,
        Some(json!({"name": "no type"})),
    )
    .await;

    let a = go
        .expect(200, Method::GET, "/conversations", &[], "", &alice, None)
        .await;
    let types: BTreeSet<u64> = a.data()["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_u64().unwrap())
        .collect();
    assert_eq!(
        types,
        BTreeSet::from([1, 2, 3]),
        "single, group and the world room"
    );
    let a = go
        .expect(
            200,
            Method::GET,
            "/conversations",
            &[],
            "?type=2&page=1&size=10",
            &alice,
            None,
        )
        .await;
    let list = a.data()["conversations"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], group.as_str());
    assert_eq!(a.data()["hasMore"], false);
    let a = go
        .expect(
            200,
            Method::GET,
            "/conversations/{conversationId}",
            &[&group],
            "",
            &bob,
            None,
        )
        .await;
    assert_eq!(a.data()["members"].as_array().unwrap().len(), 3);
    assert_eq!(a.data()["myMembership"]["role"], 1);

    // Chat over the WebSocket: acks, pushes with the sender, seqIds per conversation.
    let mut alice_ws = go.socket(&alice).await;
    let mut bob_ws = go.socket(&bob).await;
    alice_ws.send("ping", json!({})).await;
    alice_ws.next("pong").await;
    let ack = ws_send(&mut alice_ws, &single, "hello bob", "a-1").await;
    assert_eq!(ack["seqId"], 1);
    let m = bob_ws.next("new-message").await;
    assert_eq!(m["data"]["content"], "hello bob");
    assert_eq!(m["data"]["conversationId"], single.as_str());
    assert_eq!(m["data"]["seqId"], 1);
    assert_eq!(m["data"]["messageType"], 1);
    assert_eq!(m["data"]["id"], ack["messageId"]);
    assert_eq!(m["data"]["sender"]["username"], "alice");
    assert_eq!(m["data"]["sender"]["avatarUrl"], url);
    let ack = ws_send(&mut bob_ws, &group, "hello team", "b-1").await;
    // Per conversation: the group's first entries are its `Created` event and the description
    // set at its creation.
    assert_eq!(ack["seqId"], 3, "seqIds are per conversation");
    let m = alice_ws.next("new-message").await;
    assert_eq!(m["data"]["content"], "hello team");
    assert_eq!(m["data"]["sender"]["id"], bob_id.as_str());

    // The WebSocket's error frames.
    alice_ws.send("shout", json!({})).await;
    let e = alice_ws.next("error").await;
    assert_eq!(e["data"]["code"], "INVALID_MESSAGE");
    alice_ws
        .send(
            "send-message",
            json!({"conversationId": "99999999", "content": "x", "client_msg_id": "a-x"}),
        )
        .await;
    let e = alice_ws.next("error").await;
    assert_eq!(e["data"]["code"], "CONVERSATION_NOT_FOUND");
    assert_eq!(e["data"]["details"]["client_msg_id"], "a-x");
    alice_ws
        .send("send-message", json!({"conversationId": single}))
        .await;
    let e = alice_ws.next("error").await;
    assert_eq!(e["data"]["code"], "INVALID_MESSAGE");

    // REST sends: 201 once durable, idempotent by client_msg_id.
    let path = "/conversations/{conversationId}/messages";
    let send = |key: &str, text: &str| {
        Some(json!({"messageType": 1, "content": text, "client_msg_id": key}))
    };
    let first = go
        .expect(
            201,
            Method::POST,
            path,
            &[&single],
            "",
            &alice,
            send("a-2", "two"),
        )
        .await;
    let again = go
        .expect(
            201,
            Method::POST,
            path,
            &[&single],
            "",
            &alice,
            send("a-2", "two"),
        )
        .await;
    assert_eq!(first.data()["id"], again.data()["id"]);
    assert_eq!(first.data()["seqId"], 2);
    assert_eq!(again.data()["seqId"], 2);
    let m = bob_ws.next("new-message").await;
    assert_eq!(m["data"]["seqId"], 2);
    for i in 3..=7 {
        go.expect(
            201,
            Method::POST,
            path,
            &[&single],
            "",
            &alice,
            send(&format!("a-{i}"), &format!("m{i}")),
        )
        .await;
    }
    let a = go
        .expect(
            400,
            Method::POST,
            path,
            &[&single],
            "",
            &alice,
            Some(json!({"messageType": 1})),
        )
        .await;
    assert_eq!(a.code(), "INVALID_PARAMS");
    go.expect(
        400,
        Method::POST,
        path,
        &[&single],
        "",
        &alice,
        Some(json!({"messageType": 9, "content": "x"})),
    )
    .await;
    go.expect(
        400,
        Method::POST,
        path,
        &[&single],
        "",
        &alice,
        Some(json!({"messageType": 2, "content": "not media json"})),
    )
    .await;

    // History, newest first, paged by cursor until the start.
    let mut seqs = Vec::new();
    let mut query = "?limit=3".to_owned();
    loop {
        let a = go
            .expect(200, Method::GET, path, &[&single], &query, &bob, None)
            .await;
        let page: Vec<u64> = a.data()["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["seqId"].as_u64().unwrap())
            .collect();
        assert!(page.len() <= 3);
        assert!(
            page.windows(2).all(|w| w[0] > w[1]),
            "newest first: {page:?}"
        );
        seqs.extend(page);
        if a.data()["hasMore"] == false {
            break;
        }
        query = format!("?limit=3&cursor={}", a.data()["nextCursor"]);
    }
    assert_eq!(seqs, vec![7, 6, 5, 4, 3, 2, 1]);

    // Non-members and unknown ids.
    let a = go
        .expect(404, Method::GET, path, &[&single], "", &carol, None)
        .await;
    assert_eq!(a.code(), "CONVERSATION_NOT_FOUND");
    go.expect(
        404,
        Method::POST,
        path,
        &[&single],
        "",
        &carol,
        send("c-1", "let me in"),
    )
    .await;
    go.expect(404, Method::GET, path, &["424242424242"], "", &alice, None)
        .await;
    go.expect(
        404,
        Method::GET,
        "/conversations/{conversationId}",
        &["abc"],
        "",
        &alice,
        None,
    )
    .await;
    go.expect(
        404,
        Method::PUT,
        "/conversations/{conversationId}/read",
        &["424242"],
        "",
        &alice,
        Some(json!({"seqId": 1})),
    )
    .await;

    // Mark-read by seq, over REST and the WebSocket.
    let read = "/conversations/{conversationId}/read";
    let a = go
        .expect(
            200,
            Method::PUT,
            read,
            &[&single],
            "",
            &bob,
            Some(json!({"seqId": 5})),
        )
        .await;
    assert_eq!(a.data()["unreadCount"], 2);
    bob_ws
        .send("mark-read", json!({"conversationId": single, "seqId": 7}))
        .await;
    bob_ws.send("ping", json!({})).await;
    bob_ws.next("pong").await;
    let a = go
        .expect(
            200,
            Method::GET,
            "/conversations",
            &[],
            "?type=1",
            &bob,
            None,
        )
        .await;
    assert_eq!(a.data()["conversations"][0]["unreadCount"], 0);
    go.expect(
        400,
        Method::PUT,
        read,
        &[&single],
        "",
        &bob,
        Some(json!({"seq": 1})),
    )
    .await;

    // Members: list, add, roles, remove; only the owner changes roles.
    let members = "/conversations/{conversationId}/members";
    let member = "/conversations/{conversationId}/members/{userId}";
    go.expect(
        201,
        Method::POST,
        members,
        &[&group],
        "",
        &alice,
        Some(json!({"members": [dave_id]})),
    )
    .await;
    let a = go
        .expect(
            200,
            Method::GET,
            members,
            &[&group],
            "?page=1&size=2",
            &alice,
            None,
        )
        .await;
    assert_eq!(a.data()["members"].as_array().unwrap().len(), 2);
    assert_eq!(a.data()["hasMore"], true);
    let a = go
        .expect(
            200,
            Method::GET,
            members,
            &[&group],
            "?role=3",
            &alice,
            None,
        )
        .await;
    assert_eq!(a.data()["members"][0]["userId"], alice_id.as_str());
    go.expect(
        200,
        Method::PUT,
        member,
        &[&group, &dave_id],
        "",
        &alice,
        Some(json!({"role": 2})),
    )
    .await;
    let a = go
        .expect(
            403,
            Method::PUT,
            member,
            &[&group, &carol_id],
            "",
            &bob,
            Some(json!({"role": 2})),
        )
        .await;
    assert_eq!(a.code(), "FORBIDDEN");
    go.expect(
        400,
        Method::PUT,
        member,
        &[&group, &carol_id],
        "",
        &alice,
        Some(json!({"role": 5})),
    )
    .await;
    go.expect(
        200,
        Method::DELETE,
        member,
        &[&group, &dave_id],
        "",
        &alice,
        None,
    )
    .await;
    let a = go
        .expect(200, Method::GET, members, &[&group], "", &alice, None)
        .await;
    assert_eq!(a.data()["members"].as_array().unwrap().len(), 3);

    // Group updates: the owner may, a plain member may not.
    let conv = "/conversations/{conversationId}";
    let a = go
        .expect(
            200,
            Method::PUT,
            conv,
            &[&group],
            "",
            &alice,
            Some(json!({"name": "crew"})),
        )
        .await;
    assert_eq!(a.data()["name"], "crew");
    go.expect(
        403,
        Method::PUT,
        conv,
        &[&group],
        "",
        &carol,
        Some(json!({"name": "mine"})),
    )
    .await;

    // One socket per user: a new one closes the old.
    let mut alice_again = go.socket(&alice).await;
    assert_eq!(alice_ws.closed().await, 1000);
    alice_again.send("ping", json!({})).await;
    alice_again.next("pong").await;

    // Logout revokes the token.
    go.expect(200, Method::POST, "/auth/logout", &[], "", &carol, None)
        .await;
    go.expect(401, Method::GET, "/users/profile", &[], "", &carol, None)
        .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_share_the_world_room() {
    let s = TestServer::start().await;
    let go = Go::new(&s);
    let (erin, _) = go.register("erin").await;
    let a = go
        .expect(201, Method::POST, "/auth/guest", &[], "", "", None)
        .await;
    assert_eq!(a.data()["user"]["isGuest"], true);
    let guest = a.data()["accessToken"].as_str().unwrap().to_owned();
    let a = go
        .expect(
            201,
            Method::POST,
            "/auth/guest",
            &[],
            "",
            "",
            Some(json!({})),
        )
        .await;
    let guest2 = a.data()["accessToken"].as_str().unwrap().to_owned();

    // Guests may not edit profiles, search or create conversations.
    let a = go
        .expect(
            403,
            Method::PUT,
            "/users/profile",
            &[],
            "",
            &guest,
            Some(json!({"avatarUrl": "https://x.y/a.png"})),
        )
        .await;
    assert_eq!(a.code(), "FORBIDDEN");
    go.expect(
        403,
        Method::GET,
        "/users/search",
        &[],
        "?q=erin",
        &guest,
        None,
    )
    .await;
    go.expect(
        403,
        Method::POST,
        "/conversations",
        &[],
        "",
        &guest,
        Some(json!({"type": 2, "name": "g"})),
    )
    .await;

    // The world room: type 3, the same one for everyone.
    let world_of = |a: &Answer| {
        a.data()["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == 3)
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .expect("the world room is listed")
    };
    let a = go
        .expect(
            200,
            Method::GET,
            "/conversations",
            &[],
            "?type=3",
            &guest,
            None,
        )
        .await;
    let world = world_of(&a);
    let a = go
        .expect(200, Method::GET, "/conversations", &[], "", &erin, None)
        .await;
    assert_eq!(world_of(&a), world);

    let mut guest_ws = go.socket(&guest).await;
    let mut erin_ws = go.socket(&erin).await;
    ws_send(&mut erin_ws, &world, "welcome, guests", "e-1").await;
    let m = guest_ws.next("new-message").await;
    assert_eq!(m["data"]["content"], "welcome, guests");
    assert_eq!(m["data"]["conversationId"], world.as_str());
    let path = "/conversations/{conversationId}/messages";
    let body = json!({"messageType": 1, "content": "hi from a guest", "client_msg_id": "g-1"});
    go.expect(201, Method::POST, path, &[&world], "", &guest2, Some(body))
        .await;
    let m = erin_ws.next("new-message").await;
    assert_eq!(m["data"]["content"], "hi from a guest");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gochat_user_chats_with_a_native_client_on_the_same_account_base() {
    let s = TestServer::start().await;
    let go = Go::new(&s);
    let (frank, frank_id) = go.register("frank").await;
    let (native, mut events) = s.register(Transport::Tls, "nina").await;
    let nina_id = native.user_id().to_string();

    // Frank finds Nina and opens the single chat; she writes first, natively.
    let a = go
        .expect(
            200,
            Method::GET,
            "/users/search",
            &[],
            "?q=nina",
            &frank,
            None,
        )
        .await;
    assert_eq!(a.data()["users"][0]["id"], nina_id.as_str());
    let a = go
        .expect(
            201,
            Method::POST,
            "/conversations",
            &[],
            "",
            &frank,
            Some(json!({"type": 1, "members": [nina_id]})),
        )
        .await;
    let conv = a.data()["id"].as_str().unwrap().to_owned();
    let mut ws = go.socket(&frank).await;
    let peer = PeerRef::User(frank_id.parse::<u64>().unwrap().try_into().unwrap());
    let direct = native.open_direct(peer).await.unwrap();
    assert_eq!(
        direct.id,
        ConversationId::try_from(conv.parse::<u64>().unwrap()).unwrap()
    );
    native
        .send(
            direct.id,
            ContentType::Text,
            bytes::Bytes::from_static(b"hi frank"),
        )
        .await
        .unwrap();
    let m = ws.next("new-message").await;
    assert_eq!(m["data"]["content"], "hi frank");
    assert_eq!(m["data"]["sender"]["username"], "nina");

    let ack = ws_send(&mut ws, &conv, "hi nina", "f-1").await;
    let got = next_message(&mut events).await;
    assert_eq!(&got.content[..], b"hi nina");
    assert_eq!(got.seq.get(), ack["seqId"].as_u64().unwrap());
    assert_eq!(got.id.to_string(), ack["messageId"].as_str().unwrap());

    // The same account logs in through our own REST API.
    let res = reqwest::Client::new()
        .post(format!("http://{}/im/v1/auth/login", s.http))
        .json(&json!({"account": "frank", "password": "password-123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user_id"], frank_id.as_str());
    s.stop().await;
}
