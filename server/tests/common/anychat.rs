//! An AnyChat client for the `/compat/anychat` dialect's tests, which checks every answer
//! against the seed's contracts: HTTP answers against `openapi.json`, WebSocket frames against
//! `asyncapi.yaml` (a JSON Schema validator, through `parley_admin_http::compat::contract`).
//!
//! Include it next to `mod common;` in a test crate:
//!
//! ```ignore
//! mod common;
//! #[path = "common/anychat.rs"]
//! mod any_client;
//! use any_client::{Any, Answer, User, Ws};
//! ```
//!
//! Every answer, of any route, must be the contract's envelope (`{code, message, data}`):
//! `code: 0` with HTTP 200 and `message: "success"`; a failure with HTTP 200 (the server's own
//! 500 and 503 with that HTTP status too) and `data: null`. An answer of an operation of the
//! contract ([`Any::call`], [`Any::at`], [`Any::expect`]) must also match the schema the
//! operation documents for its status (for a failure, the status in `code`), unless the
//! operation documents none for that failure. [`Any::extra`] calls the routes beyond the
//! contract, checked for the envelope only.
#![allow(dead_code)] // each test crate uses a different part of the client

use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use parley_admin_http::compat::anychat::{ASYNCAPI, OPENAPI};
use parley_admin_http::compat::contract::{AsyncContract, Component, Contract};
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::common::{TestServer, WAIT};

/// The contract's response envelope.
pub const ENVELOPE: &str = "github_com_anychat_server_pkg_response.Response";

/// An AnyChat client of one server.
pub struct Any {
    pub http: reqwest::Client,
    /// `http://HOST:PORT/compat/anychat/api/v1`: the contract's paths are below it.
    pub base: String,
    /// `http://HOST:PORT/compat/anychat/api` (the real admin service's base).
    pub api: String,
    /// `http://HOST:PORT/compat/anychat` (`/health`).
    pub root: String,
    /// `ws://HOST:PORT/compat/anychat/api/v1/ws`
    pub ws: String,
    pub contract: Arc<Contract>,
    pub envelope: Arc<Component>,
}

/// An answer: HTTP status and JSON body, already checked against the contract.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// The envelope's `code` (0: success).
    pub fn code(&self) -> u64 {
        self.body["code"].as_u64().expect("a numeric code")
    }

    pub fn data(&self) -> &Value {
        &self.body["data"]
    }
}

/// A user registered by phone number: its access token, id and refresh token.
pub struct User {
    pub token: String,
    pub id: String,
    pub refresh: String,
}

/// `template` with its `{...}` parameters replaced by `params`, in order.
pub fn fill(template: &str, params: &[&str]) -> String {
    let mut path = template.to_owned();
    for p in params {
        let start = path.find('{').expect("a parameter to fill");
        let end = path[start..].find('}').expect("a closing brace") + start;
        path.replace_range(start..=end, p);
    }
    path
}

impl Any {
    pub fn new(s: &TestServer) -> Any {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Any {
            http: reqwest::Client::builder().timeout(WAIT).build().unwrap(),
            base: format!("http://{}/compat/anychat/api/v1", s.http),
            api: format!("http://{}/compat/anychat/api", s.http),
            root: format!("http://{}/compat/anychat", s.http),
            ws: format!("ws://{}/compat/anychat/api/v1/ws", s.http),
            contract: Arc::new(Contract::from_yaml(OPENAPI).expect("the contract loads")),
            envelope: Arc::new(Component::from_yaml(OPENAPI, ENVELOPE).expect("the envelope")),
        }
    }

    /// Sends one request to `base` + the filled `template` + `query`, with `token` as bearer
    /// (none when empty) and `body` as JSON, and checks the answer: the envelope always, and
    /// the contract's schema of `template` when `documented`.
    #[allow(clippy::too_many_arguments)]
    async fn exchange(
        &self,
        documented: bool,
        base: &str,
        method: Method,
        template: &str,
        params: &[&str],
        query: &str,
        token: &str,
        body: Option<Value>,
    ) -> Answer {
        let url = format!("{base}{}{query}", fill(template, params));
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
        // The envelope always: `{code, message, data}`, `data` present even when null.
        self.envelope.check(&body).unwrap_or_else(|e| panic!("{e}"));
        assert!(body.get("data").is_some(), "{body}");
        let code = body["code"].as_u64().expect("a numeric code");
        match code {
            0 => assert_eq!((status, body["message"].as_str()), (200, Some("success"))),
            _ => {
                match code {
                    500 | 503 => assert_eq!(u64::from(status), code, "{body}"),
                    _ => assert_eq!(status, 200, "failures travel with HTTP 200: {body}"),
                }
                assert!(body["data"].is_null(), "{body}");
            }
        }
        if documented {
            // Failures: the schema of the status the code names, where documented.
            let as_status = if code == 0 {
                status
            } else {
                u16::try_from(code).unwrap_or_else(|_| panic!("code {code}: {body}"))
            };
            if let Err(e) = self
                .contract
                .check(method.as_str(), template, as_status, &body)
            {
                assert!(
                    code != 0 && e.contains("an undocumented error status"),
                    "the answer breaks the contract: {e}"
                );
            }
        }
        Answer { status, body }
    }

    /// Calls the contract's operation `method template` (below [`Any::base`]) with `params` in
    /// the path and `query` after it, and checks the answer.
    pub async fn call(
        &self,
        method: Method,
        template: &str,
        params: &[&str],
        query: &str,
        token: &str,
        body: Option<Value>,
    ) -> Answer {
        self.at(&self.base, method, template, params, query, token, body)
            .await
    }

    /// [`Any::call`] below another base (such as [`Any::api`]).
    #[allow(clippy::too_many_arguments)] // one call site per operation reads best spelled out
    pub async fn at(
        &self,
        base: &str,
        method: Method,
        template: &str,
        params: &[&str],
        query: &str,
        token: &str,
        body: Option<Value>,
    ) -> Answer {
        self.exchange(true, base, method, template, params, query, token, body)
            .await
    }

    /// [`Any::call`], expecting `code` (0: success).
    #[allow(clippy::too_many_arguments)] // one call site per operation reads best spelled out
    pub async fn expect(
        &self,
        code: u64,
        method: Method,
        template: &str,
        params: &[&str],
        query: &str,
        token: &str,
        body: Option<Value>,
    ) -> Answer {
        let a = self
            .call(method.clone(), template, params, query, token, body)
            .await;
        assert_eq!(a.code(), code, "{method} {template}: {}", a.body);
        a
    }

    /// A route beyond the contract (below [`Any::base`]), without a body, expecting `code`.
    pub async fn extra(
        &self,
        code: u64,
        method: Method,
        template: &str,
        params: &[&str],
        query: &str,
        token: &str,
    ) -> Answer {
        let a = self
            .exchange(
                false, &self.base, method, template, params, query, token, None,
            )
            .await;
        assert_eq!(a.code(), code, "{template}: {}", a.body);
        a
    }

    /// A request to a URL outside the envelope (the signed file links), unchecked.
    pub async fn raw(&self, method: Method, url: &str, body: Option<Vec<u8>>) -> reqwest::Response {
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.body(b);
        }
        req.send().await.unwrap()
    }

    /// Registers the phone number `phone` (and `nickname`).
    pub async fn register_phone(&self, phone: &str, nickname: &str) -> User {
        let body = json!({
            "phoneNumber": phone, "password": "password123", "verifyCode": "123456",
            "nickname": nickname, "deviceType": "iOS", "deviceId": format!("dev-{phone}"),
        });
        let a = self
            .expect(0, Method::POST, "/auth/register", &[], "", "", Some(body))
            .await;
        let d = a.data();
        assert_eq!(d["user"]["phone"], phone);
        assert_eq!(d["user"]["nickname"], nickname);
        assert_eq!(d["user"]["userId"], d["userId"]);
        assert!(d["expiresIn"].as_u64().unwrap() > 0);
        User {
            token: d["accessToken"].as_str().unwrap().to_owned(),
            id: d["userId"].as_str().unwrap().to_owned(),
            refresh: d["refreshToken"].as_str().unwrap().to_owned(),
        }
    }

    /// Registers `name@example.com` (nickname `name`): its access token and user id.
    pub async fn register_email(&self, name: &str) -> (String, String) {
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
    pub async fn socket(&self, token: &str) -> Ws {
        let (ws, _) = tokio_tungstenite::connect_async(format!("{}?token={token}", self.ws))
            .await
            .unwrap();
        Ws {
            ws,
            frames: Arc::new(AsyncContract::from_yaml(ASYNCAPI).expect("loads")),
        }
    }
}

/// An AnyChat WebSocket; every frame it receives is checked against the asyncapi document.
pub struct Ws {
    pub ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    frames: Arc<AsyncContract>,
}

impl Ws {
    pub async fn send(&mut self, frame: Value) {
        self.ws
            .send(WsMessage::Text(frame.to_string().into()))
            .await
            .unwrap();
    }

    /// The next text frame, validated (`message.error`, the real gateway's frame beyond the
    /// document, by its own shape).
    pub async fn next(&mut self) -> Value {
        loop {
            let m = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame in time")
                .expect("the socket is open")
                .unwrap();
            let WsMessage::Text(text) = m else { continue };
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            match v["type"].as_str() {
                Some("message.error") => {
                    let p = &v["payload"];
                    assert!(p["code"].is_u64() && p["message"].is_string(), "{v}");
                    assert!(p["localId"].is_string(), "{v}");
                }
                _ => self.frames.check(&v).unwrap_or_else(|e| panic!("{e}")),
            }
            return v;
        }
    }

    /// The next frame that `pred` accepts (others are skipped, still validated).
    pub async fn until(&mut self, mut pred: impl FnMut(&Value) -> bool) -> Value {
        loop {
            let v = self.next().await;
            if pred(&v) {
                return v;
            }
        }
    }

    /// The data of the next `notification` of `kind`.
    pub async fn notification(&mut self, kind: &str) -> Value {
        let v = self
            .until(|v| v["type"] == "notification" && v["payload"]["notificationType"] == kind)
            .await;
        v["payload"]["data"].clone()
    }

    /// Sends `content` to `conversation` and waits for its ack (or error).
    pub async fn say(
        &mut self,
        conversation: &str,
        kind: &str,
        content: &str,
        local: &str,
    ) -> Value {
        self.send(json!({"type": "message.send", "payload": {
            "conversationId": conversation, "conversationType": kind,
            "contentType": "text", "content": content, "localId": local,
        }}))
        .await;
        self.until(|v| {
            (v["type"] == "message.sent" || v["type"] == "message.error")
                && v["payload"]["localId"] == local
        })
        .await
    }
}
