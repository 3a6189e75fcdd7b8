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

#[path = "common/anychat.rs"]
mod any_client;
mod common;

use any_client::Any;
use common::TestServer;
use reqwest::Method;
use serde_json::{json, Value};

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
    let (alice, alice_id) = c.register_email("alice").await;
    let (bob, bob_id) = c.register_email("bob").await;
    let (carol, _) = c.register_email("carol").await;
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
    let (alice, alice_id) = c.register_email("alice").await;
    let (bob, bob_id) = c.register_email("bob").await;
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
