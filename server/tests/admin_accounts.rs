//! Admin accounts and runtime settings (core/admins.rs, core/settings.rs), through AnyChat's
//! admin API (`/compat/anychat/api/v1/admin/...`, every answer checked against the seed's
//! contract by the shared client) and through `/admin/v1`, against a real server on port 0:
//! a super admin creates admins; an admin signs in with its own name and password, bans a user
//! and is named in the audit log; an `admin` cannot manage admins; disabling an admin stops its
//! token at its next request; runtime settings change behaviour at once and survive a restart.
#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

#[path = "common/anychat.rs"]
mod any_client;
mod common;

use any_client::Any;
use common::TestServer;
use parley_admin_http::compat::anychat::views;
use reqwest::Method;
use serde_json::{json, Value};

/// The operator's credential on these servers.
const ADMIN_TOKEN: &str = "admin-accounts-token-0123456789";

async fn server() -> TestServer {
    TestServer::start_with(|cfg| cfg.admin.token = Some(ADMIN_TOKEN.into())).await
}

/// Logs in as `username`; the token, or the failure's code.
async fn login(c: &Any, username: &str, password: &str) -> Result<(String, Value), u64> {
    let body = json!({"username": username, "password": password});
    let a = c
        .call(Method::POST, "/admin/auth/login", &[], "", "", Some(body))
        .await;
    match a.code() {
        0 => Ok((
            a.data()["token"].as_str().unwrap().to_owned(),
            a.data().clone(),
        )),
        code => Err(code),
    }
}

async fn create(c: &Any, token: &str, username: &str, role: &str) -> Value {
    let body =
        json!({"username": username, "password": format!("{username}-password"), "role": role});
    let a = c
        .expect(0, Method::POST, "/admin/admins", &[], "", token, Some(body))
        .await;
    let d = a.data().clone();
    assert_eq!(
        (d["username"].as_str(), d["role"].as_str()),
        (Some(username), Some(role))
    );
    assert_eq!(d["status"], 1);
    d
}

async fn set_status(c: &Any, token: &str, id: &str, status: i64) -> u64 {
    c.call(
        Method::PUT,
        "/admin/admins/{adminId}/status",
        &[id],
        "",
        token,
        Some(json!({"status": status})),
    )
    .await
    .code()
}

/// `(adminName, action, result)` of the audit log, newest first.
async fn audit(c: &Any, token: &str, query: &str) -> Vec<(String, String, String)> {
    let a = c
        .expect(0, Method::GET, "/admin/audit-logs", &[], query, token, None)
        .await;
    a.data()["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let s = |k: &str| l[k].as_str().unwrap().to_owned();
            (s("adminName"), s("action"), s("result"))
        })
        .collect()
}

/// `GET /admin/config`'s entries.
async fn config(c: &Any, token: &str) -> Vec<Value> {
    let a = c
        .expect(0, Method::GET, "/admin/config", &[], "", token, None)
        .await;
    a.data()["configs"].as_array().unwrap().clone()
}

/// The value and `editable` of `key` in `configs`.
fn entry(configs: &[Value], key: &str) -> (String, bool) {
    let kv = configs.iter().find(|kv| kv["key"] == key).unwrap();
    (
        kv["value"].as_str().unwrap().to_owned(),
        kv["editable"].as_bool().unwrap(),
    )
}

/// `PUT /admin/config/{key}`: the answer's code.
async fn put(c: &Any, token: &str, key: &str, value: &str) -> u64 {
    c.call(
        Method::PUT,
        "/admin/config/{key}",
        &[key],
        "",
        token,
        Some(json!({"value": value})),
    )
    .await
    .code()
}

fn row(name: &str, action: &str, result: &str) -> (String, String, String) {
    (name.to_owned(), action.to_owned(), result.to_owned())
}

#[tokio::test]
async fn admins_act_under_their_own_names_and_disabling_stops_their_tokens() {
    let s = server().await;
    let c = Any::new(&s);
    let (op, op_data) = login(&c, "admin", ADMIN_TOKEN).await.unwrap();
    assert_eq!(op_data["role"], "super_admin");

    // The operator creates a super admin and an admin; names are unique; input is checked.
    let ann = create(&c, &op, "ann", "super_admin").await;
    let bob = create(&c, &op, "bob", "admin").await;
    let ann_id = ann["adminId"].as_str().unwrap().to_owned();
    let bob_id = bob["adminId"].as_str().unwrap().to_owned();
    let dup = json!({"username": "bob", "password": "another-password"});
    c.expect(409, Method::POST, "/admin/admins", &[], "", &op, Some(dup))
        .await;
    for bad in [
        json!({"username": "carl", "password": "short"}),
        json!({"username": "carl", "password": "long-enough", "role": "root"}),
        json!({"username": "has space", "password": "long-enough"}),
    ] {
        c.expect(400, Method::POST, "/admin/admins", &[], "", &op, Some(bad))
            .await;
    }
    c.expect(
        409,
        Method::POST,
        "/admin/admins",
        &[],
        "",
        &op,
        Some(json!({"username": "admin", "password": "long-enough"})),
    )
    .await;
    let list = c
        .expect(0, Method::GET, "/admin/admins", &[], "", &op, None)
        .await;
    let names: Vec<&str> = list.data()["admins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "ann", "bob"]);

    // Ann signs in with her own password (a wrong one, or an unknown name: 401) and bans a user.
    assert_eq!(login(&c, "ann", "wrong-password").await.unwrap_err(), 401);
    assert_eq!(
        login(&c, "nobody", "whatever-password").await.unwrap_err(),
        401
    );
    let (ann_token, ann_login) = login(&c, "ann", "ann-password").await.unwrap();
    assert_eq!(ann_login["adminId"], ann_id.as_str());
    assert_eq!(ann_login["role"], "super_admin");
    let (victim, victim_id) = c.register_email("victim").await;
    c.expect(0, Method::GET, "/users/me", &[], "", &victim, None)
        .await;
    c.expect(
        0,
        Method::POST,
        "/admin/users/{userId}/ban",
        &[&victim_id],
        "",
        &ann_token,
        Some(json!({"reason": "spam"})),
    )
    .await;
    c.expect(401, Method::GET, "/users/me", &[], "", &victim, None)
        .await;

    // Bob, an `admin`, works on users but manages no admins.
    let (bob_token, _) = login(&c, "bob", "bob-password").await.unwrap();
    c.expect(0, Method::GET, "/admin/users", &[], "", &bob_token, None)
        .await;
    let carl = json!({"username": "carl", "password": "carl-password"});
    c.expect(
        403,
        Method::POST,
        "/admin/admins",
        &[],
        "",
        &bob_token,
        Some(carl),
    )
    .await;
    assert_eq!(set_status(&c, &bob_token, &ann_id, 0).await, 403);

    // Nobody disables the operator; a super admin does not disable itself.
    assert_eq!(set_status(&c, &ann_token, "admin", 0).await, 403);
    assert_eq!(set_status(&c, &ann_token, &ann_id, 0).await, 403);
    assert_eq!(set_status(&c, &ann_token, &ann_id, 7).await, 400);
    let unknown = views::uuid(views::Kind::Admin, 999);
    assert_eq!(set_status(&c, &ann_token, &unknown, 0).await, 404);

    // Ann disables Bob: his token fails at its next request, and he cannot sign in.
    assert_eq!(set_status(&c, &ann_token, &bob_id, 0).await, 0);
    c.expect(401, Method::GET, "/admin/users", &[], "", &bob_token, None)
        .await;
    assert_eq!(login(&c, "bob", "bob-password").await.unwrap_err(), 403);
    // Enabled again: the old token stays revoked; a new login works.
    assert_eq!(set_status(&c, &ann_token, &bob_id, 1).await, 0);
    c.expect(401, Method::GET, "/admin/users", &[], "", &bob_token, None)
        .await;
    let (bob_again, _) = login(&c, "bob", "bob-password").await.unwrap();
    c.expect(0, Method::GET, "/admin/users", &[], "", &bob_again, None)
        .await;

    // The audit log names who did what, refused attempts included.
    let log = audit(&c, &op, "").await;
    assert_eq!(
        log,
        vec![
            row("ann", "enable_admin", "ok"),
            row("ann", "disable_admin", "ok"),
            row("ann", "disable_admin", "NOT_FOUND"),
            row("ann", "disable_admin", "FORBIDDEN"),
            row("ann", "disable_admin", "FORBIDDEN"),
            row("bob", "disable_admin", "FORBIDDEN"),
            row("bob", "create_admin", "FORBIDDEN"),
            row("ann", "ban", "ok"),
            row("admin", "create_admin", "CONFLICT"),
            row("admin", "create_admin", "INVALID_ARGUMENT"),
            row("admin", "create_admin", "INVALID_ARGUMENT"),
            row("admin", "create_admin", "INVALID_ARGUMENT"),
            row("admin", "create_admin", "CONFLICT"),
            row("admin", "create_admin", "ok"),
            row("admin", "create_admin", "ok"),
        ]
    );
    let anns = audit(&c, &op, &format!("?adminId={ann_id}&action=ban")).await;
    assert_eq!(anns, vec![row("ann", "ban", "ok")]);
    assert_eq!(audit(&c, &op, "?action=disable_admin").await.len(), 5);
}

#[tokio::test]
async fn runtime_settings_change_behaviour_at_once_and_survive_a_restart() {
    let s = server().await;
    let c = Any::new(&s);
    let (op, _) = login(&c, "admin", ADMIN_TOKEN).await.unwrap();
    let configs = config(&c, &op).await;
    assert_eq!(
        entry(&configs, "auth.registration_open"),
        ("true".to_owned(), true)
    );
    assert_eq!(
        entry(&configs, "limits.recall_window_ms"),
        ("120000".to_owned(), true)
    );
    assert!(!entry(&configs, "admin.announcer").1);

    // Read-only, unknown, bad values.
    assert_eq!(put(&c, &op, "admin.announcer", "x").await, 403);
    assert_eq!(put(&c, &op, "no.such.key", "x").await, 404);
    assert_eq!(put(&c, &op, "auth.registration_open", "maybe").await, 400);
    assert_eq!(put(&c, &op, "limits.recall_window_ms", "-5").await, 400);
    assert_eq!(
        put(&c, &op, "limits.recall_window_ms", "99999999999999").await,
        400
    );

    // Registration closed: AnyChat's and the REST API's registrations are refused at once.
    c.register_email("before").await;
    assert_eq!(put(&c, &op, "auth.registration_open", "false").await, 0);
    let body = json!({"email": "after@example.com", "password": "password123",
        "verifyCode": "000000", "nickname": "after", "deviceType": "web"});
    c.expect(
        403,
        Method::POST,
        "/auth/register",
        &[],
        "",
        "",
        Some(body.clone()),
    )
    .await;
    let rest = c
        .http
        .post(format!("http://{}/im/v1/auth/register", s.http))
        .json(&json!({"account": "rest-after", "password": "password123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status().as_u16(), 403);
    let configs = config(&c, &op).await;
    assert_eq!(entry(&configs, "auth.registration_open").0, "false");

    // An admin account survives the restart (the restarted server has no [admin] token).
    create(&c, &op, "carol", "admin").await;
    let s = s.restart().await;
    let c = Any::new(&s);
    assert_eq!(login(&c, "admin", ADMIN_TOKEN).await.unwrap_err(), 401);
    let (carol, _) = login(&c, "carol", "carol-password").await.unwrap();
    let configs = config(&c, &carol).await;
    assert_eq!(
        entry(&configs, "auth.registration_open"),
        ("false".to_owned(), true)
    );
    c.expect(
        403,
        Method::POST,
        "/auth/register",
        &[],
        "",
        "",
        Some(body.clone()),
    )
    .await;
    // Reopened by Carol: registration works again, without a restart.
    let reopen = c
        .expect(
            0,
            Method::PUT,
            "/admin/config/{key}",
            &["auth.registration_open"],
            "",
            &carol,
            Some(json!({"value": "true"})),
        )
        .await;
    assert_eq!(reopen.data()["value"], "true");
    c.expect(0, Method::POST, "/auth/register", &[], "", "", Some(body))
        .await;
    let log = audit(&c, &carol, "?action=set_config").await;
    assert_eq!(log[0], row("carol", "set_config", "ok"));
    assert_eq!(log[1], row("admin", "set_config", "ok"));
    assert_eq!(log.len(), 7, "{log:?}");

    // `parley check` verifies the admin and settings trees.
    let dir = s.stop().await;
    let report = offline_check(dir.path()).await;
    assert!(report.damage.is_empty(), "{:?}", report.damage);
    let lines = report.verified.join("\n");
    assert!(lines.contains("admins: 1 records"), "{lines}");
    assert!(lines.contains("settings: 1 records"), "{lines}");
    assert!(lines.contains("admin_names: 1 records"), "{lines}");
    assert!(
        lines.contains("admins: 1 accounts, each found by its name"),
        "{lines}"
    );
}

/// `parley check` of `dir`, once the stopped server's store lets go of its lock (sled's threads
/// release it a moment after the last handle is dropped; retried for up to 10 s).
async fn offline_check(dir: &std::path::Path) -> parley_server::store::CheckReport {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let report = parley_server::store::check(dir);
        let locked = report.damage.iter().any(|d| d.contains("is in use"));
        if !locked || tokio::time::Instant::now() > deadline {
            return report;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_admin_api_manages_admins_and_settings_too() {
    let s = server().await;
    let http = reqwest::Client::new();
    let base = format!("http://{}/admin/v1", s.http);
    let call = |method: Method, path: &str, body: Option<Value>| {
        let mut req = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            (status, body)
        }
    };
    let (status, made) = call(
        Method::POST,
        "/admins",
        Some(json!({"username": "dora", "password": "dora-password", "role": "admin"})),
    )
    .await;
    assert_eq!(status, 200, "{made}");
    assert_eq!(
        (made["username"].as_str(), made["enabled"].as_bool()),
        (Some("dora"), Some(true))
    );
    let id = made["id"].as_str().unwrap().to_owned();
    let (status, dup) = call(
        Method::POST,
        "/admins",
        Some(json!({"username": "dora", "password": "dora-password"})),
    )
    .await;
    assert_eq!(
        (status, dup["error"]["code"].as_str()),
        (409, Some("CONFLICT"))
    );
    let (status, list) = call(Method::GET, "/admins", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["admins"][0]["username"], "admin");
    assert_eq!(list["admins"][1]["id"], id.as_str());
    let (status, off) = call(
        Method::PUT,
        &format!("/admins/{id}/status"),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!((status, off["enabled"].as_bool()), (200, Some(false)));
    let (status, _) = call(
        Method::PUT,
        "/admins/1/status",
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(status, 403);

    let (status, settings) = call(Method::GET, "/settings", None).await;
    assert_eq!(status, 200);
    assert_eq!(settings["settings"][0]["key"], "auth.registration_open");
    let (status, set) = call(
        Method::PUT,
        "/settings/limits.recall_window_ms",
        Some(json!({"value": 5000})),
    )
    .await;
    assert_eq!((status, set["value"].as_str()), (200, Some("5000")));
    let (status, _) = call(
        Method::PUT,
        "/settings/limits.recall_window_ms",
        Some(json!({"value": true})),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = call(
        Method::PUT,
        "/settings/limits.max_frame_bytes",
        Some(json!({"value": 1})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = call(Method::PUT, "/settings/nope", Some(json!({"value": 1}))).await;
    assert_eq!(status, 404);
    let (status, audit) = call(Method::GET, "/audit-logs?action=set_config", None).await;
    assert_eq!(status, 200);
    let outcomes: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["NOT_FOUND", "FORBIDDEN", "INVALID_ARGUMENT", "ok"]
    );
    assert_eq!(audit["entries"][3]["actor"], "operator");
    assert_eq!(
        audit["entries"][3]["target"],
        "config:limits.recall_window_ms"
    );
}

/// `limits.recall_window_ms` set through AnyChat's admin API applies to the next recall, with
/// no restart: a window of 1 ms refuses the recall of a message sent before it
/// (`RECALL_EXPIRED`); widened again, the same recall goes through.
#[tokio::test]
async fn the_recall_window_applies_at_once() {
    use parley_client::Transport;
    use parley_protocol::frames::{ContentType, PeerRef};
    use parley_protocol::ErrorCode;

    let s = server().await;
    let c = Any::new(&s);
    let (op, _) = login(&c, "admin", ADMIN_TOKEN).await.unwrap();
    let (alice, _a) = s.register(Transport::Tls, "alice").await;
    let (bob, _b) = s.register(Transport::Tls, "bob").await;
    let d = alice
        .open_direct(PeerRef::User(bob.user_id()))
        .await
        .unwrap()
        .id;
    let send = |text: &'static str| {
        alice.send(
            d,
            ContentType::Text,
            bytes::Bytes::from_static(text.as_bytes()),
        )
    };
    let first = send("one").await.unwrap().seq;
    let second = send("two").await.unwrap().seq;

    assert_eq!(put(&c, &op, "limits.recall_window_ms", "1").await, 0);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(
        common::code(alice.recall_message(d, first).await),
        ErrorCode::RecallExpired
    );
    assert_eq!(put(&c, &op, "limits.recall_window_ms", "600000").await, 0);
    alice.recall_message(d, first).await.unwrap();
    alice.recall_message(d, second).await.unwrap();
}
