//! Four dialects in one group (issue 14): an AnyChat WebSocket client, a GoChat WebSocket
//! client, a Wetty client (HTTP sends, push WebSocket) and a native SDK client, each registered
//! through its own dialect, befriend the group's owner (the Wetty user) and share a group. Each
//! sends several messages — in rounds, the four sends of a round at the same time — and every
//! client must receive every message exactly once, in the group's seq order, rendered in its own
//! format:
//!
//! - AnyChat: `notification` `message.new` with UUID ids and second timestamps; its own sends
//!   as `message.sent` acks (AnyChat does not echo a socket's sends back to it).
//! - GoChat: `new-message` with decimal ids, `seqId` and second timestamps; its own sends as
//!   `message-ack`.
//! - Wetty: `{type:"message", payload}` with message ids `chat_id << 32 | seq` and RFC 3339
//!   times, its own sends included (Wetty sends over HTTP and shows a chat from the pushes).
//! - SDK: `Event::Message`; its own sends as `SendAck`s (the protocol does not repeat them).
//!
//! Pushes must come in strictly increasing seq; an ack carries its seq, and the union of a
//! client's pushes and acks must be exactly the group's messages. No sleeps: every wait is for
//! a frame with a deadline ([`WAIT`]); unrelated pushes (presence, notices) are skipped. A
//! last message from the Wetty user marks the end: pushes are ordered per session, so once a
//! client has it, every push of an earlier message (and any duplicate) has arrived.
#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

mod common;

use std::collections::{BTreeMap, HashMap};

use common::{TestServer, WAIT};
use futures::stream::SplitStream;
use futures::{SinkExt, StreamExt};
use parley_admin_http::compat::anychat::views as any_ids;
use parley_client::{Event, Events, Transport};
use parley_protocol::frames::ContentType;
use parley_protocol::ids::{ConversationId, Seq, UserId};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type Sink = futures::stream::SplitSink<Socket, WsMessage>;

/// Rounds of sends: each of the four sends one message per round.
const ROUNDS: usize = 3;
/// The four clients, by the name their messages carry.
const WHO: [&str; 4] = ["any", "go", "wt", "sdk"];
/// The content of the last message (from the Wetty user).
const END: &str = "x-end-wt";

fn content(round: usize, who: &str) -> String {
    format!("x-{round}-{who}")
}

/// The sender a message's content names.
fn sender_of(content: &str) -> &str {
    content.rsplit('-').next().unwrap()
}

/// Every message of the test, in no particular order.
fn all_contents() -> Vec<String> {
    let mut v: Vec<String> = (0..ROUNDS)
        .flat_map(|r| WHO.iter().map(move |w| content(r, w)))
        .collect();
    v.push(END.to_owned());
    v
}

/// Plain HTTP with JSON.
struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    /// `POST path` with `body` (and `token` as a bearer): status and JSON body.
    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self.client.post(format!("{}{path}", self.base)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v)
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let res = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap())
    }
}

/// Opens a WebSocket.
async fn connect(url: &str) -> Socket {
    tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("the socket opens in time")
        .unwrap_or_else(|e| panic!("{url}: {e}"))
        .0
}

/// Sends `ping` and waits for a frame `is_pong` accepts (others are skipped): the socket's push
/// session is open once the socket reads frames.
async fn ready(ws: &mut Socket, ping: &str, is_pong: impl Fn(&str) -> bool) {
    ws.send(WsMessage::Text(ping.into())).await.unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let m = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("a pong in time")
            .expect("the socket is open")
            .unwrap();
        if let WsMessage::Text(t) = m {
            if is_pong(t.as_str()) {
                return;
            }
        }
    }
}

/// Reads a socket's text frames (as JSON; a non-JSON text as a string) into a channel.
fn reader(mut ws: SplitStream<Socket>, who: &'static str) -> mpsc::UnboundedReceiver<Value> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(m) = ws.next().await {
            match m {
                Ok(WsMessage::Text(t)) => {
                    let v = serde_json::from_str(t.as_str())
                        .unwrap_or_else(|_| Value::String(t.to_string()));
                    if tx.send(v).is_err() {
                        return;
                    }
                }
                Ok(WsMessage::Close(c)) => {
                    let _ = tx.send(json!({ "closed": format!("{who}: {c:?}") }));
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.send(json!({ "closed": format!("{who}: {e}") }));
                    return;
                }
            }
        }
    });
    rx
}

/// The next frame of a socket, by the test's deadline.
async fn frame(rx: &mut mpsc::UnboundedReceiver<Value>, deadline: Instant, who: &str) -> Value {
    let v = tokio::time::timeout_at(deadline, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("{who}: no frame within {WAIT:?}"))
        .unwrap_or_else(|| panic!("{who}: the socket ended"));
    assert!(v.get("closed").is_none(), "the socket closed: {v}");
    v
}

/// What one client received of the test's messages.
struct Seen {
    who: &'static str,
    /// seq → content, from pushes and acks.
    by_seq: BTreeMap<u64, String>,
    /// The seqs of pushes, in arrival order.
    pushed: Vec<u64>,
}

impl Seen {
    fn new(who: &'static str) -> Seen {
        Seen {
            who,
            by_seq: BTreeMap::new(),
            pushed: Vec::new(),
        }
    }

    /// Records a message received as a push (`pushed`) or an ack.
    fn add(&mut self, seq: u64, content: &str, pushed: bool) {
        let who = self.who;
        if let Some(old) = self.by_seq.insert(seq, content.to_owned()) {
            panic!("{who} received seq {seq} twice ({old:?}, then {content:?})");
        }
        if pushed {
            if let Some(last) = self.pushed.last() {
                assert!(
                    seq > *last,
                    "{who}: pushes out of order: seq {seq} after {last}"
                );
            }
            self.pushed.push(seq);
        }
    }

    fn has(&self, content: &str) -> bool {
        self.by_seq.values().any(|c| c == content)
    }
}

/// Seconds since the epoch, as AnyChat and GoChat render times.
fn assert_seconds(v: &Value, what: &str) {
    let t = v
        .as_u64()
        .unwrap_or_else(|| panic!("{what}: not a number: {v}"));
    assert!(
        (1_600_000_000..10_000_000_000).contains(&t),
        "{what}: seconds, got {t}"
    );
}

/// An AnyChat UUID (`8-4-4-4-12` hex).
fn assert_uuid(v: &Value, what: &str) {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("{what}: not a string: {v}"));
    let parts: Vec<usize> = s.split('-').map(str::len).collect();
    assert_eq!(parts, [8, 4, 4, 4, 12], "{what}: a UUID, got {s}");
    assert!(s.chars().all(|c| c == '-' || c.is_ascii_hexdigit()), "{s}");
}

/// The AnyChat client: reads its frames into `seen` until `done` holds.
struct AnyClient {
    rx: mpsc::UnboundedReceiver<Value>,
    sink: Sink,
    group: String,
    conv: ConversationId,
    /// Sender name → AnyChat user id (UUID).
    users: HashMap<String, String>,
    /// localId → content of this socket's sends.
    sent: HashMap<String, String>,
    seen: Seen,
}

impl AnyClient {
    async fn send(&mut self, text: &str) {
        let local = format!("l-{text}");
        self.sent.insert(local.clone(), text.to_owned());
        let f = json!({"type": "message.send", "payload": {
            "conversationId": self.group, "conversationType": "group",
            "contentType": "text", "content": text, "localId": local,
        }});
        self.sink
            .send(WsMessage::Text(f.to_string().into()))
            .await
            .unwrap();
    }

    async fn until(&mut self, deadline: Instant, done: impl Fn(&Seen) -> bool) {
        while !done(&self.seen) {
            let v = frame(&mut self.rx, deadline, "anychat").await;
            let p = &v["payload"];
            match v["type"].as_str() {
                Some("message.error") => panic!("anychat: a send failed: {v}"),
                Some("message.sent") => {
                    let Some(text) = p["localId"].as_str().and_then(|l| self.sent.get(l)) else {
                        continue;
                    };
                    let seq = p["sequence"].as_u64().unwrap();
                    assert_eq!(
                        p["messageId"].as_str(),
                        Some(any_ids::message_id(self.conv, Seq(seq)).as_str()),
                        "{v}"
                    );
                    assert_uuid(&p["messageId"], "messageId");
                    assert_seconds(&p["timestamp"], "message.sent timestamp");
                    let text = text.clone();
                    self.seen.add(seq, &text, false);
                }
                Some("notification") if p["notificationType"] == "message.new" => {
                    let d = &p["data"];
                    if d["conversationId"] != self.group.as_str() {
                        continue;
                    }
                    assert_seconds(&p["timestamp"], "notification timestamp");
                    assert_seconds(&d["timestamp"], "message timestamp");
                    assert_uuid(&d["messageId"], "messageId");
                    assert_uuid(&d["senderId"], "senderId");
                    assert_eq!(d["conversationType"], "group", "{v}");
                    let seq = d["sequence"].as_u64().unwrap();
                    let text = d["content"].as_str().unwrap();
                    assert_eq!(
                        d["messageId"].as_str(),
                        Some(any_ids::message_id(self.conv, Seq(seq)).as_str())
                    );
                    assert_eq!(
                        d["senderId"].as_str(),
                        self.users.get(sender_of(text)).map(String::as_str),
                        "{v}"
                    );
                    assert_ne!(sender_of(text), "any", "anychat: its own send echoed: {v}");
                    self.seen.add(seq, text, true);
                }
                _ => {}
            }
        }
    }
}

/// The GoChat client.
struct GoClient {
    rx: mpsc::UnboundedReceiver<Value>,
    sink: Sink,
    group: String,
    /// Sender name → GoChat user id (decimal).
    users: HashMap<String, String>,
    sent: HashMap<String, String>,
    seen: Seen,
}

impl GoClient {
    async fn send(&mut self, text: &str) {
        let key = format!("k-{text}");
        self.sent.insert(key.clone(), text.to_owned());
        let f = json!({"type": "send-message", "data": {
            "conversationId": self.group, "content": text, "messageType": 1, "client_msg_id": key,
        }});
        self.sink
            .send(WsMessage::Text(f.to_string().into()))
            .await
            .unwrap();
    }

    async fn until(&mut self, deadline: Instant, done: impl Fn(&Seen) -> bool) {
        while !done(&self.seen) {
            let v = frame(&mut self.rx, deadline, "gochat").await;
            let d = &v["data"];
            match v["type"].as_str() {
                Some("error") => panic!("gochat: {v}"),
                Some("message-ack") => {
                    let Some(text) = d["client_msg_id"].as_str().and_then(|k| self.sent.get(k))
                    else {
                        continue;
                    };
                    assert_eq!(d["status"], "success", "{v}");
                    assert!(d["messageId"].as_str().is_some(), "{v}");
                    assert_seconds(&v["timestamp"], "message-ack timestamp");
                    let text = text.clone();
                    self.seen.add(d["seqId"].as_u64().unwrap(), &text, false);
                }
                Some("new-message") => {
                    if d["conversationId"] != self.group.as_str() {
                        continue;
                    }
                    assert_seconds(&v["timestamp"], "new-message timestamp");
                    let text = d["content"].as_str().unwrap();
                    assert_eq!(d["messageType"], 1, "{v}");
                    assert_eq!(
                        d["sender"]["id"].as_str(),
                        self.users.get(sender_of(text)).map(String::as_str),
                        "{v}"
                    );
                    assert_ne!(sender_of(text), "go", "gochat: its own send echoed: {v}");
                    self.seen.add(d["seqId"].as_u64().unwrap(), text, true);
                }
                _ => {}
            }
        }
    }
}

/// The Wetty client: sends over HTTP, receives on its push socket.
struct WtClient {
    rx: mpsc::UnboundedReceiver<Value>,
    gid: u64,
    /// Sender name → Wetty uid.
    users: HashMap<String, String>,
    seen: Seen,
}

impl WtClient {
    async fn until(&mut self, deadline: Instant, done: impl Fn(&Seen) -> bool) {
        while !done(&self.seen) {
            let v = frame(&mut self.rx, deadline, "wetty").await;
            if v["type"] != "message" {
                continue;
            }
            let m = &v["payload"];
            if m["chat_id"] != self.gid.to_string().as_str() {
                continue;
            }
            let id: u64 = m["id"].as_str().unwrap().parse().unwrap();
            assert_eq!(id >> 32, self.gid, "a message id names its chat: {v}");
            let text = m["message"].as_str().unwrap();
            assert_eq!(m["message_type"], "text", "{v}");
            assert_eq!(
                m["sender_uid"].as_str(),
                self.users.get(sender_of(text)).map(String::as_str),
                "{v}"
            );
            let at = m["created_at"].as_str().unwrap();
            assert!(at.ends_with('Z') && at.contains('T'), "RFC 3339: {at}");
            self.seen.add(id & 0xffff_ffff, text, true);
        }
    }
}

/// The native client's events.
async fn sdk_until(
    events: &mut Events,
    conv: ConversationId,
    users: &HashMap<String, UserId>,
    seen: &mut Seen,
    deadline: Instant,
    done: impl Fn(&Seen) -> bool,
) {
    while !done(seen) {
        let ev = tokio::time::timeout_at(deadline, events.next())
            .await
            .unwrap_or_else(|_| panic!("sdk: no event within {WAIT:?}"))
            .expect("the event stream is open");
        let Event::Message(m) = ev else { continue };
        if m.conversation != conv || m.event.is_some() {
            continue;
        }
        let text = std::str::from_utf8(&m.content).unwrap();
        assert_eq!(m.content_type, ContentType::Text);
        assert_eq!(Some(&m.sender), users.get(sender_of(text)), "{m:?}");
        assert_ne!(sender_of(text), "sdk", "sdk: its own send repeated: {m:?}");
        seen.add(m.seq.get(), text, true);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_dialects_in_one_group_see_the_same_messages_in_the_same_order() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let s = TestServer::start().await;
    let http = Http {
        client: reqwest::Client::builder().timeout(WAIT).build().unwrap(),
        base: format!("http://{}/compat", s.http),
    };
    let ws_base = format!("ws://{}/compat", s.http);

    // Registration, each through its own dialect.
    let (st, v) = http
        .post(
            "/anychat/api/v1/auth/register",
            None,
            json!({
                "phoneNumber": "13800138099", "password": "password123", "verifyCode": "123456",
                "nickname": "Ann", "deviceType": "iOS", "deviceId": "dev-ann",
            }),
        )
        .await;
    assert_eq!((st, v["code"].as_u64()), (200, Some(0)), "{v}");
    let any_token = v["data"]["accessToken"].as_str().unwrap().to_owned();
    let any_uuid = v["data"]["userId"].as_str().unwrap().to_owned();
    let any_user =
        UserId::try_from(any_ids::number_of(any_ids::Kind::User, &any_uuid).unwrap()).unwrap();

    let (st, v) = http
        .post(
            "/gochat/api/auth/register",
            None,
            json!({"username": "gus", "password": "password-123"}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let go_token = v["data"]["accessToken"].as_str().unwrap().to_owned();
    let go_user: UserId = v["data"]["user"]["id"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .unwrap()
        .try_into()
        .unwrap();

    let (st, v) = http
        .post(
            "/wetty/users/auth/register",
            None,
            json!({"username": "walt", "password": "password-123", "client_type": "web"}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let wt_token = v["token"].as_str().unwrap().to_owned();
    let wt_user: UserId = v["uid"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .unwrap()
        .try_into()
        .unwrap();

    let (sdk, mut events) = s.register(Transport::Tls, "nina").await;
    let sdk_user = sdk.user_id();

    let users: HashMap<String, UserId> = [
        ("any", any_user),
        ("go", go_user),
        ("wt", wt_user),
        ("sdk", sdk_user),
    ]
    .into_iter()
    .map(|(k, u)| (k.to_owned(), u))
    .collect();

    // Friends of the owner (the Wetty user): each asks in its own dialect, the owner asks back
    // (which befriends at once whatever the add policies are).
    let (st, v) = http
        .post(
            "/anychat/api/v1/friends/requests",
            Some(&any_token),
            json!({"userId": any_ids::user_id(wt_user)}),
        )
        .await;
    assert_eq!((st, v["code"].as_u64()), (200, Some(0)), "{v}");
    let (st, v) = http
        .post(
            "/gochat/api/friends/requests",
            Some(&go_token),
            json!({"targetUserId": wt_user.to_string(), "message": "hi"}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    tokio::time::timeout(WAIT, sdk.add_friend(wt_user, "hi", ""))
        .await
        .unwrap()
        .unwrap();
    for u in [any_user, go_user, sdk_user] {
        let (st, v) = http
            .post(
                "/wetty/friend/apply",
                Some(&wt_token),
                json!({"target_user_id": u.to_string()}),
            )
            .await;
        assert_eq!((st, v["pending"].as_bool()), (201, Some(false)), "{v}");
    }

    // The group, made by the Wetty user with the three others.
    let (st, g) = http
        .post(
            "/wetty/group",
            Some(&wt_token),
            json!({"name": "four", "members": [any_user.to_string(), go_user.to_string(), sdk_user.to_string()]}),
        )
        .await;
    assert_eq!(st, 201, "{g}");
    assert_eq!(g["member_count"], 4, "{g}");
    let gid: u64 = g["id"].as_str().unwrap().parse().unwrap();
    let conv = ConversationId::try_from(gid).unwrap();

    // The sockets, each ready (its push session open) once it answers a ping.
    let mut any_ws = connect(&format!("{ws_base}/anychat/api/v1/ws?token={any_token}")).await;
    ready(&mut any_ws, r#"{"type":"ping"}"#, |t| {
        t.contains("\"pong\"")
    })
    .await;
    let mut go_ws = connect(&format!("{ws_base}/gochat/ws?token={go_token}")).await;
    ready(&mut go_ws, r#"{"type":"ping","data":{}}"#, |t| {
        t.contains("\"pong\"")
    })
    .await;
    let mut wt_ws = connect(&format!("{ws_base}/wetty/ws/chats?uid={wt_token}")).await;
    ready(&mut wt_ws, "ping", |t| t == "pong").await;

    let (any_sink, any_rx) = any_ws.split();
    let (go_sink, go_rx) = go_ws.split();
    let (_, wt_rx) = wt_ws.split();
    let mut any = AnyClient {
        rx: reader(any_rx, "anychat"),
        sink: any_sink,
        group: any_ids::conversation_id(conv),
        conv,
        users: users
            .iter()
            .map(|(k, u)| (k.clone(), any_ids::user_id(*u)))
            .collect(),
        sent: HashMap::new(),
        seen: Seen::new("anychat"),
    };
    let mut go = GoClient {
        rx: reader(go_rx, "gochat"),
        sink: go_sink,
        group: gid.to_string(),
        users: users
            .iter()
            .map(|(k, u)| (k.clone(), u.to_string()))
            .collect(),
        sent: HashMap::new(),
        seen: Seen::new("gochat"),
    };
    let mut wt = WtClient {
        rx: reader(wt_rx, "wetty"),
        gid,
        users: users
            .iter()
            .map(|(k, u)| (k.clone(), u.to_string()))
            .collect(),
        seen: Seen::new("wetty"),
    };
    let mut sdk_seen = Seen::new("sdk");

    // The sends: per round, all four at once.
    let wt_path = format!("/wetty/chats/{gid}/messages");
    let mut wt_answers = Vec::new();
    for round in 0..ROUNDS {
        let (a, g) = (content(round, "any"), content(round, "go"));
        let (w, n) = (content(round, "wt"), content(round, "sdk"));
        let wt_send = http.post(
            &wt_path,
            Some(&wt_token),
            json!({"message": w, "client_generated_id": format!("c-{w}")}),
        );
        let sdk_send = sdk.send(conv, ContentType::Text, bytes::Bytes::from(n.clone()));
        let ((), (), (st, m), ack) = tokio::join!(any.send(&a), go.send(&g), wt_send, sdk_send);
        assert_eq!(st, 201, "{m}");
        wt_answers.push(m);
        let ack = ack.unwrap();
        assert_eq!(ack.conversation, conv);
        sdk_seen.add(ack.seq.get(), &n, false);
    }

    // The socket senders' acks, then the last message, which every client must get pushed.
    let deadline = Instant::now() + WAIT;
    let acked =
        |who: &'static str| move |seen: &Seen| (0..ROUNDS).all(|r| seen.has(&content(r, who)));
    any.until(deadline, acked("any")).await;
    go.until(deadline, acked("go")).await;
    let (st, last) = http
        .post(
            &wt_path,
            Some(&wt_token),
            json!({"message": END, "client_generated_id": "c-end"}),
        )
        .await;
    assert_eq!(st, 201, "{last}");
    wt_answers.push(last);
    let deadline = Instant::now() + WAIT;
    let ended = |seen: &Seen| seen.has(END);
    any.until(deadline, ended).await;
    go.until(deadline, ended).await;
    wt.until(deadline, ended).await;
    sdk_until(&mut events, conv, &users, &mut sdk_seen, deadline, ended).await;

    // The truth: the group's history, in seq order.
    let (st, h) = http
        .get(&format!("/wetty/chats/{gid}/messages?max=100"), &wt_token)
        .await;
    assert_eq!(st, 200, "{h}");
    let truth: BTreeMap<u64, String> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| {
            let text = m["message"].as_str()?;
            text.starts_with("x-").then(|| {
                let id: u64 = m["id"].as_str().unwrap().parse().unwrap();
                assert_eq!(id >> 32, gid);
                (id & 0xffff_ffff, text.to_owned())
            })
        })
        .collect();
    let mut expected = all_contents();
    expected.sort();
    let mut got: Vec<String> = truth.values().cloned().collect();
    got.sort();
    assert_eq!(got, expected, "the group holds every message once");
    // Wetty's send answers carry the ids the history has.
    for m in &wt_answers {
        let id: u64 = m["id"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            truth.get(&(id & 0xffff_ffff)).map(String::as_str),
            m["message"].as_str()
        );
    }
    // Each round's messages went out at once: some interleaving of senders is expected, but
    // not asserted (it depends on scheduling); every client must agree with the group.
    for seen in [&any.seen, &go.seen, &wt.seen, &sdk_seen] {
        assert_eq!(
            seen.by_seq, truth,
            "{}: every message exactly once, at its seq",
            seen.who
        );
    }
    // Wetty gets every message pushed, its own included: the whole group in seq order.
    assert_eq!(
        wt.seen.pushed,
        truth.keys().copied().collect::<Vec<_>>(),
        "wetty: every message pushed, in order"
    );
    drop(sdk);
}
