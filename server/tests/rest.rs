//! The REST API (`/im/v1`) against a real server on port 0, over real HTTP with reqwest: accounts,
//! profiles, friends, 1:1 and group chat, history both ways, reactions, recalls, the
//! conversation list and read cursors, search, calls, blocks, and a message sent over REST
//! arriving at an SDK client as a push. Error answers are checked body and status.
#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

mod common;

use common::{wait_for, TestServer, WAIT};
use parley_client::{Event, Transport};
use reqwest::Method;
use serde_json::{json, Value};

/// A REST client of one server.
struct Api {
    http: reqwest::Client,
    base: String,
}

/// An answer: status and JSON body (`Null` when empty).
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    /// The error code of an error body.
    fn code(&self) -> &str {
        self.body["error"]["code"]
            .as_str()
            .unwrap_or("<no error body>")
    }
}

impl Api {
    fn new(s: &TestServer) -> Api {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Api {
            http: reqwest::Client::builder().timeout(WAIT).build().unwrap(),
            base: format!("http://{}/im/v1", s.http),
        }
    }

    async fn call(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Answer {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let bytes = res.bytes().await.unwrap();
        let body = match bytes.is_empty() {
            true => Value::Null,
            false => serde_json::from_slice(&bytes).unwrap(),
        };
        Answer { status, body }
    }

    async fn get(&self, path: &str, token: &str) -> Answer {
        self.call(Method::GET, path, token, None).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// Expects `status`, gives the body.
    async fn ok(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
        status: u16,
    ) -> Value {
        let a = self.call(method.clone(), path, token, body).await;
        assert_eq!(a.status, status, "{method} {path}: {}", a.body);
        a.body
    }

    /// Registers `account` (with the password the SDK harness logs in with): (token, user id).
    async fn register(&self, account: &str) -> (String, String) {
        let body = json!({"account": account, "password": "password-123", "platform": "web"});
        let b = self
            .ok(Method::POST, "/auth/register", "", Some(body), 201)
            .await;
        let token = b["access_token"].as_str().unwrap().to_owned();
        let id = b["user_id"].as_str().unwrap().to_owned();
        assert!(
            id.parse::<u64>().is_ok_and(|v| v > 0),
            "ids are decimal strings: {b}"
        );
        (token, id)
    }

    /// Sends a text message: its seq.
    async fn say(&self, token: &str, conversation: &str, key: &str, text: &str) -> u64 {
        let body = json!({"client_msg_id": key, "content": text});
        let path = format!("/conversations/{conversation}/messages");
        let b = self.ok(Method::POST, &path, token, Some(body), 201).await;
        b["seq"].as_u64().unwrap()
    }
}

fn conversation<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["conversations"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["conversation_id"] == id))
        .unwrap_or_else(|| panic!("conversation {id} is listed: {list}"))
}

fn texts(page: &Value) -> Vec<String> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_friends_and_one_to_one_chat() {
    let s = TestServer::start().await;
    let api = Api::new(&s);
    let (_, alice_id) = api.register("alice").await;
    let (bob, bob_id) = api.register("bob").await;

    // A password login gives a new device its own token; the bearer works for every route.
    let login = json!({"account": "alice", "password": "password-123", "device_id": "laptop"});
    let b = api
        .ok(Method::POST, "/auth/login", "", Some(login), 200)
        .await;
    assert_eq!(
        (b["device_id"].as_str(), b["user_id"].as_str()),
        (Some("laptop"), Some(alice_id.as_str()))
    );
    let alice = b["access_token"].as_str().unwrap().to_owned();
    let wrong = json!({"account": "alice", "password": "not-her-password"});
    let a = api.post("/auth/login", "", wrong).await;
    assert_eq!((a.status, a.code()), (401, "AUTH_FAILED"));

    // Profiles.
    let me = api.ok(Method::GET, "/users/me", &alice, None, 200).await;
    assert_eq!(
        (me["account"].as_str(), me["user_id"].as_str()),
        (Some("alice"), Some(alice_id.as_str()))
    );
    let change = json!({"nickname": "Alice", "bio": "hi there"});
    api.ok(Method::PATCH, "/users/me", &alice, Some(change), 204)
        .await;
    let seen = api
        .ok(Method::GET, &format!("/users/{alice_id}"), &bob, None, 200)
        .await;
    assert_eq!(
        (seen["nickname"].as_str(), seen["bio"].as_str()),
        (Some("Alice"), Some("hi there"))
    );
    let a = api.get("/users/999999", &bob).await;
    assert_eq!((a.status, a.code()), (404, "NOT_FOUND"));

    // Friends: a request with a message, accepted with a remark.
    let ask = json!({"user_id": bob_id, "message": "hi bob, it's alice"});
    let b = api
        .ok(Method::POST, "/friends/requests", &alice, Some(ask), 200)
        .await;
    assert_eq!(b["pending"], true);
    let incoming = api
        .ok(Method::GET, "/friends/requests", &bob, None, 200)
        .await;
    assert_eq!(
        incoming["requests"][0]["profile"]["user_id"],
        alice_id.as_str()
    );
    assert_eq!(incoming["requests"][0]["message"], "hi bob, it's alice");
    let path = format!("/friends/requests/{alice_id}/accept");
    api.ok(
        Method::POST,
        &path,
        &bob,
        Some(json!({"remark": "Al"})),
        204,
    )
    .await;
    let friends = api.ok(Method::GET, "/friends", &bob, None, 200).await;
    assert_eq!(
        friends["friends"][0]["profile"]["user_id"],
        alice_id.as_str()
    );
    assert_eq!(friends["friends"][0]["remark"], "Al");
    let friends = api.ok(Method::GET, "/friends", &alice, None, 200).await;
    assert_eq!(friends["friends"][0]["profile"]["account"], "bob");

    // Bob's phone runs the SDK: what alice sends over REST reaches it as a push.
    let (_phone, mut phone_events) = s.login(Transport::Tls, "bob", "phone").await;

    let open = json!({"user_id": bob_id});
    let d = api
        .ok(
            Method::POST,
            "/conversations/direct",
            &alice,
            Some(open),
            200,
        )
        .await;
    assert_eq!(d["kind"], "direct");
    let d = d["conversation_id"].as_str().unwrap().to_owned();
    let seq = api.say(&alice, &d, "m-1", "hello bob").await;
    assert_eq!(seq, 1);
    let pushed = wait_for(&mut phone_events, |e| match e {
        Event::Message(m) if m.content.as_ref() == b"hello bob" => Some(m.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        (pushed.seq.get(), pushed.conversation.to_string()),
        (1, d.clone())
    );
    assert_eq!(pushed.sender.to_string(), alice_id);

    // A retry with the same key is the same message (200, duplicate).
    let retry = json!({"client_msg_id": "m-1", "content": "hello bob"});
    let b = api
        .ok(
            Method::POST,
            &format!("/conversations/{d}/messages"),
            &alice,
            Some(retry),
            200,
        )
        .await;
    assert_eq!(
        (b["seq"].as_u64(), b["duplicate"].as_bool()),
        (Some(1), Some(true))
    );
    for (i, text) in ["two", "three", "four"].iter().enumerate() {
        api.say(&alice, &d, &format!("m-{}", i + 2), text).await;
    }

    // The list: bob has 4 unread in the 1:1 conversation.
    let list = api.ok(Method::GET, "/conversations", &bob, None, 200).await;
    let c = conversation(&list, &d);
    assert_eq!(
        (c["unread"].as_u64(), c["head_seq"].as_u64()),
        (Some(4), Some(4))
    );
    assert_eq!(c["last_message"]["content"], "four");

    // History both ways.
    let history = format!("/conversations/{d}/messages");
    let page = api.ok(Method::GET, &history, &bob, None, 200).await;
    // From the head and backwards: newest first; forwards: oldest first.
    assert_eq!(texts(&page), ["four", "three", "two", "hello bob"]);
    assert_eq!(page["messages"][3]["sender_id"], alice_id.as_str());
    let back = api
        .ok(
            Method::GET,
            &format!("{history}?before=4&limit=2"),
            &bob,
            None,
            200,
        )
        .await;
    assert_eq!(texts(&back), ["three", "two"]);
    assert_eq!(back["has_more"], true);
    let fwd = api
        .ok(
            Method::GET,
            &format!("{history}?after=1&limit=2"),
            &bob,
            None,
            200,
        )
        .await;
    assert_eq!(texts(&fwd), ["two", "three"]);
    let a = api.get(&format!("{history}?before=2&after=1"), &bob).await;
    assert_eq!((a.status, a.code()), (400, "INVALID_ARGUMENT"));

    // The read cursor: unread goes to 0, and alice sees how far bob read.
    let cursor = format!("/conversations/{d}/cursors/read");
    api.ok(Method::PUT, &cursor, &bob, Some(json!({"seq": 4})), 204)
        .await;
    let list = api.ok(Method::GET, "/conversations", &bob, None, 200).await;
    assert_eq!(conversation(&list, &d)["unread"], 0);
    let state = api
        .ok(
            Method::GET,
            &format!("/conversations/{d}/read-state"),
            &alice,
            None,
            200,
        )
        .await;
    let bobs = state["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["user_id"] == bob_id.as_str());
    assert_eq!(
        bobs.map(|r| (r["kind"].clone(), r["seq"].clone())),
        Some((json!("read"), json!(4)))
    );

    // Presence: bob's phone is online.
    let p = api
        .ok(
            Method::GET,
            &format!("/presence?ids={bob_id}"),
            &alice,
            None,
            200,
        )
        .await;
    assert_eq!(p["presences"][0]["status"], "online");

    // A call, invited and cancelled: its record lists it.
    let invite = json!({"conversation_id": d, "media": "audio", "payload": "offer"});
    let call = api
        .ok(Method::POST, "/calls", &alice, Some(invite), 201)
        .await;
    let call_id = call["call_id"].as_str().unwrap().to_owned();
    let cancel = json!({"action": "cancel"});
    api.ok(
        Method::POST,
        &format!("/calls/{call_id}/signal"),
        &alice,
        Some(cancel),
        200,
    )
    .await;
    let calls = api.ok(Method::GET, "/calls", &alice, None, 200).await;
    assert_eq!(calls["calls"][0]["call_id"], call_id.as_str());
    assert_eq!(calls["calls"][0]["outcome"], "cancelled");

    // Blocking: alice can no longer write to bob, and gets the error body.
    api.ok(Method::PUT, &format!("/blocks/{alice_id}"), &bob, None, 204)
        .await;
    let blocked = api.ok(Method::GET, "/blocks", &bob, None, 200).await;
    assert_eq!(blocked["users"][0]["user_id"], alice_id.as_str());
    let a = api
        .post(
            &history,
            &alice,
            json!({"client_msg_id": "m-9", "content": "hello?"}),
        )
        .await;
    assert_eq!(a.status, 403);
    assert_eq!(a.code(), "BLOCKED");
    assert!(a.body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert_eq!(
        a.body.as_object().map(|o| o.len()),
        Some(1),
        "only `error`: {}",
        a.body
    );

    // Someone else cannot read the conversation: 404, as if it did not exist.
    let (carol, _) = api.register("carol").await;
    let a = api.get(&history, &carol).await;
    assert_eq!((a.status, a.code()), (404, "NOT_FOUND"));

    // A logged-out token is refused.
    api.ok(Method::POST, "/auth/logout", &alice, None, 204)
        .await;
    let a = api.get("/users/me", &alice).await;
    assert_eq!((a.status, a.code()), (401, "AUTH_FAILED"));
    let a = api.get("/users/me", "").await;
    assert_eq!((a.status, a.code()), (401, "UNAUTHENTICATED"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_reactions_recalls_and_search() {
    let s = TestServer::start().await;
    let api = Api::new(&s);
    let (alice, _) = api.register("alice").await;
    let (bob, bob_id) = api.register("bob").await;
    let (carol, carol_id) = api.register("carol").await;
    let (_bob_phone, mut bob_events) = s.login(Transport::Quic, "bob", "phone").await;

    let create = json!({"name": "team", "member_ids": [bob_id]});
    let g = api
        .ok(Method::POST, "/groups", &alice, Some(create), 201)
        .await;
    assert_eq!(
        (g["kind"].as_str(), g["my_role"].as_str()),
        (Some("group"), Some("owner"))
    );
    let g = g["conversation_id"].as_str().unwrap().to_owned();
    let add = json!({"user_ids": [carol_id]});
    api.ok(
        Method::POST,
        &format!("/groups/{g}/members"),
        &alice,
        Some(add),
        204,
    )
    .await;
    let members = api
        .ok(
            Method::GET,
            &format!("/groups/{g}/members?limit=2"),
            &carol,
            None,
            200,
        )
        .await;
    assert_eq!(
        (members["total"].as_u64(), members["has_more"].as_bool()),
        (Some(3), Some(true))
    );
    let info = api
        .ok(Method::GET, &format!("/groups/{g}"), &bob, None, 200)
        .await;
    assert_eq!(
        (
            info["profile"]["name"].as_str(),
            info["member_count"].as_u64()
        ),
        (Some("team"), Some(3))
    );
    let path = format!("/groups/{g}");
    let a = api
        .call(
            Method::PATCH,
            &path,
            &bob,
            Some(json!({"announcement": "mine now"})),
        )
        .await;
    assert_eq!((a.status, a.code()), (403, "FORBIDDEN"));

    // Messages in the group, a reaction and a recall.
    let recall_me = api.say(&alice, &g, "g-1", "oops, wrong group").await;
    let keep = api.say(&alice, &g, "g-2", "hello team").await;
    wait_for(&mut bob_events, |e| match e {
        Event::Message(m) if m.content.as_ref() == b"hello team" => Some(()),
        _ => None,
    })
    .await;
    let react = format!("/conversations/{g}/messages/{keep}/reactions/%F0%9F%91%8D");
    api.ok(Method::PUT, &react, &bob, None, 204).await;
    let recall = format!("/conversations/{g}/messages/{recall_me}/recall");
    api.ok(Method::POST, &recall, &alice, None, 204).await;
    let a = api
        .post(
            &format!("/conversations/{g}/messages/{keep}/recall"),
            &carol,
            json!({}),
        )
        .await;
    assert_eq!((a.status, a.code()), (403, "FORBIDDEN"));
    let page = api
        .ok(
            Method::GET,
            &format!("/conversations/{g}/messages"),
            &carol,
            None,
            200,
        )
        .await;
    let by_seq = |seq: u64| {
        page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["seq"] == seq)
            .unwrap_or_else(|| panic!("#{seq} in {page}"))
            .clone()
    };
    let recalled = by_seq(recall_me);
    assert_eq!(recalled["recalled"], true);
    assert!(
        recalled.get("content").is_none_or(|c| c == ""),
        "{recalled}"
    );
    let kept = by_seq(keep);
    assert_eq!(kept["content"], "hello team");
    assert_eq!(
        kept["reactions"],
        json!([{"emoji": "👍", "user_ids": [bob_id]}])
    );
    // The membership change that added carol is an entry too, rendered as an event.
    let events: Vec<Value> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m.get("event").cloned())
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "membership" && e["added_ids"] == json!([carol_id])),
        "{events:?}"
    );

    // Unread for carol, then read.
    let list = api
        .ok(Method::GET, "/conversations", &carol, None, 200)
        .await;
    let c = conversation(&list, &g);
    assert!(c["unread"].as_u64().unwrap() >= 2, "{c}");
    let head = c["head_seq"].as_u64().unwrap();
    let cursor = format!("/conversations/{g}/cursors/read");
    api.ok(
        Method::PUT,
        &cursor,
        &carol,
        Some(json!({"seq": head})),
        204,
    )
    .await;
    let list = api
        .ok(Method::GET, "/conversations", &carol, None, 200)
        .await;
    assert_eq!(conversation(&list, &g)["unread"], 0);

    // Search follows the log within moments (the indexer commits every 200 ms at most).
    let deadline = tokio::time::Instant::now() + WAIT;
    let found = loop {
        let r = api
            .ok(Method::GET, "/search/messages?q=hello", &carol, None, 200)
            .await;
        if !r["messages"].as_array().unwrap().is_empty() {
            break r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "search never found the message"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(texts(&found), ["hello team"]);
    assert_eq!(found["messages"][0]["conversation_id"], g.as_str());
    let a = api.get("/search/messages?q=%20", &carol).await;
    assert_eq!((a.status, a.code()), (400, "INVALID_ARGUMENT"));

    // Leaving, and a disbanded group.
    api.ok(
        Method::POST,
        &format!("/groups/{g}/leave"),
        &carol,
        None,
        204,
    )
    .await;
    let a = api
        .get(&format!("/conversations/{g}/messages"), &carol)
        .await;
    assert_eq!((a.status, a.code()), (404, "NOT_FOUND"));
    api.ok(Method::DELETE, &format!("/groups/{g}"), &alice, None, 204)
        .await;
    let a = api
        .post(
            &format!("/conversations/{g}/messages"),
            &bob,
            json!({"client_msg_id": "late", "content": "anyone?"}),
        )
        .await;
    assert_eq!((a.status, a.code()), (403, "DISBANDED"));

    // The document is served by the real server too.
    let doc = api.ok(Method::GET, "/openapi.json", "", None, 200).await;
    assert!(doc["paths"]["/im/v1/conversations/{conversation_id}/messages"]["post"].is_object());
    s.stop().await;
}
