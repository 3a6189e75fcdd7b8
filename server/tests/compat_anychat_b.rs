//! The second half of the AnyChat dialect (`/compat/anychat`): groups, files, RTC calls and the
//! admin API, against a real server on port 0, written from the seed's contract
//! (`openapi.json`) and DIALECTS.md. Every answer of an operation of the contract is validated
//! against it (a JSON Schema validator, through `parley_admin_http::compat::contract`): a
//! success against the operation's schema, a failure (HTTP 200 with a non-zero `code`, as the
//! real gateway answered) against the contract's envelope. Scenarios: a group with roles and
//! join requests, the presigned file flow up and down (bytes compared; a tampered link, another
//! user's file refused), calls carrying their state, the admin login and a ban that stops a
//! user's token, and the error shapes.
#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

#[path = "common/anychat.rs"]
mod any_client;
mod common;

use any_client::Any;
use common::TestServer;
use parley_admin_http::compat::anychat;
use parley_admin_http::compat::contract::Contract;
use reqwest::Method;
use serde_json::{json, Value};

/// The admin token of the servers of these tests.
const ADMIN_TOKEN: &str = "anychat-admin-token-0123456789";

async fn server() -> TestServer {
    TestServer::start_with(|cfg| {
        cfg.admin.token = Some(ADMIN_TOKEN.into());
        // The production rule (test configurations turn it off): strangers are invited.
        cfg.rules.group_adds_need_consent = true;
    })
    .await
}

#[tokio::test]
async fn every_operation_of_this_half_has_a_route() {
    let contract = Contract::from_yaml(anychat::OPENAPI).unwrap();
    let served = anychat::operations();
    let mine = ["/groups", "/files", "/rtc/", "/admin/"];
    let mut count = 0;
    for (method, path) in contract.operations() {
        if !mine.iter().any(|p| path.starts_with(p)) {
            continue;
        }
        count += 1;
        assert!(
            served.iter().any(|(m, p)| *m == method && *p == path),
            "no route for {method} {path}"
        );
    }
    assert_eq!(
        count, 47,
        "groups, files, RTC and admin operations of the contract"
    );
}

#[tokio::test]
async fn a_group_with_roles_and_join_requests() {
    let s = server().await;
    let c = Any::new(&s);
    let (owner, owner_id) = c.register_email("gowner").await;
    let (bob, bob_id) = c.register_email("gbob").await;
    let (carol, carol_id) = c.register_email("gcarol").await;
    let (dave, dave_id) = c.register_email("gdave").await;

    // Create: the owner and Bob; joins need approval.
    let body = json!({"name": "技术交流群", "memberIds": [bob_id], "joinVerify": true,
        "avatar": "https://example.com/a.png"});
    let g = c
        .expect(0, Method::POST, "/groups", &[], "", &owner, Some(body))
        .await;
    let d = g.data();
    let gid = d["groupId"].as_str().unwrap().to_owned();
    assert_eq!(d["name"], "技术交流群");
    assert_eq!(d["ownerId"], owner_id.as_str());
    // Bob is no friend of the owner: the core invites him (issue 15) rather than adding him.
    assert_eq!(
        (d["memberCount"].as_u64(), d["myRole"].as_str()),
        (Some(1), Some("owner"))
    );
    assert_eq!(d["joinVerify"], true);
    assert_eq!(d["avatar"], "https://example.com/a.png");
    assert_eq!(gid.len(), 36, "group ids are UUIDs: {gid}");
    assert!(d["createdAt"].as_str().unwrap().ends_with('Z'), "{d}");

    // Bad input.
    let empty = json!({"name": "x", "memberIds": []});
    c.expect(400, Method::POST, "/groups", &[], "", &owner, Some(empty))
        .await;
    let nameless = json!({"name": " ", "memberIds": [bob_id]});
    c.expect(
        400,
        Method::POST,
        "/groups",
        &[],
        "",
        &owner,
        Some(nameless),
    )
    .await;

    // Bob accepts the invitation by joining: at once, whatever the join policy.
    let accepted = c
        .expect(
            0,
            Method::POST,
            "/groups/{id}/join",
            &[&gid],
            "",
            &bob,
            None,
        )
        .await;
    assert_eq!(accepted.data()["needVerify"], false);

    // Listed for its members, with their roles.
    let list = c
        .expect(0, Method::GET, "/groups", &[], "", &bob, None)
        .await;
    let mine = &list.data()["groups"];
    assert_eq!(list.data()["total"], 1);
    assert_eq!(mine[0]["groupId"], gid.as_str());
    assert_eq!(mine[0]["myRole"], "member");
    let info = c
        .expect(0, Method::GET, "/groups/{id}", &[&gid], "", &carol, None)
        .await;
    assert_eq!(info.data()["myRole"], "", "a visitor has no role");

    // Carol asks to join; only the owner and admins see requests.
    let joined = c
        .expect(
            0,
            Method::POST,
            "/groups/{id}/join",
            &[&gid],
            "",
            &carol,
            Some(json!({"message": "你好"})),
        )
        .await;
    assert_eq!(joined.data()["needVerify"], true);
    let carol_request = joined.data()["requestId"].as_i64().unwrap();
    assert!(carol_request > 0);
    c.expect(
        403,
        Method::GET,
        "/groups/{id}/requests",
        &[&gid],
        "",
        &carol,
        None,
    )
    .await;
    c.expect(
        403,
        Method::GET,
        "/groups/{id}/requests",
        &[&gid],
        "",
        &bob,
        None,
    )
    .await;
    let reqs = c
        .expect(
            0,
            Method::GET,
            "/groups/{id}/requests",
            &[&gid],
            "",
            &owner,
            None,
        )
        .await;
    let r = &reqs.data()["requests"][0];
    assert_eq!(reqs.data()["total"], 1);
    assert_eq!(
        (r["id"].as_i64(), r["userId"].as_str()),
        (Some(carol_request), Some(carol_id.as_str()))
    );
    assert_eq!(
        (r["message"].as_str(), r["status"].as_str()),
        (Some("你好"), Some("pending"))
    );
    assert_eq!(r["userInfo"]["nickname"], "gcarol");
    let answered = c
        .expect(
            0,
            Method::GET,
            "/groups/{id}/requests",
            &[&gid],
            "?status=accepted",
            &owner,
            None,
        )
        .await;
    assert_eq!(
        answered.data()["total"],
        0,
        "answered requests are not kept"
    );
    c.expect(
        0,
        Method::PUT,
        "/groups/{id}/requests/{requestId}",
        &[&gid, &carol_request.to_string()],
        "",
        &owner,
        Some(json!({"accept": true})),
    )
    .await;

    // Dave asks too and is rejected (the other form of the answer).
    let joined = c
        .expect(
            0,
            Method::POST,
            "/groups/{id}/join",
            &[&gid],
            "",
            &dave,
            None,
        )
        .await;
    let dave_request = joined.data()["requestId"].as_i64().unwrap().to_string();
    c.expect(
        400,
        Method::PUT,
        "/groups/{id}/requests/{requestId}",
        &[&gid, &dave_request],
        "",
        &owner,
        Some(json!({})),
    )
    .await;
    c.expect(
        0,
        Method::PUT,
        "/groups/{id}/requests/{requestId}",
        &[&gid, &dave_request],
        "",
        &owner,
        Some(json!({"action": "reject"})),
    )
    .await;
    c.expect(
        404,
        Method::PUT,
        "/groups/{id}/requests/{requestId}",
        &[&gid, &dave_request],
        "",
        &owner,
        Some(json!({"accept": true})),
    )
    .await;
    c.expect(
        404,
        Method::GET,
        "/groups/{id}/members",
        &[&gid],
        "",
        &dave,
        None,
    )
    .await;

    // Roles: Bob becomes an admin and sees requests; only the owner changes roles.
    c.expect(
        400,
        Method::PUT,
        "/groups/{id}/members/{userId}/role",
        &[&gid, &bob_id],
        "",
        &owner,
        Some(json!({"role": "boss"})),
    )
    .await;
    c.expect(
        0,
        Method::PUT,
        "/groups/{id}/members/{userId}/role",
        &[&gid, &bob_id],
        "",
        &owner,
        Some(json!({"role": "admin"})),
    )
    .await;
    c.expect(
        0,
        Method::GET,
        "/groups/{id}/requests",
        &[&gid],
        "",
        &bob,
        None,
    )
    .await;
    c.expect(
        403,
        Method::PUT,
        "/groups/{id}/members/{userId}/role",
        &[&gid, &carol_id],
        "",
        &bob,
        Some(json!({"role": "admin"})),
    )
    .await;

    // Carol's nickname; members paged.
    c.expect(
        0,
        Method::PUT,
        "/groups/{id}/nickname",
        &[&gid],
        "",
        &carol,
        Some(json!({"nickname": "小C"})),
    )
    .await;
    let p1 = c
        .expect(
            0,
            Method::GET,
            "/groups/{id}/members",
            &[&gid],
            "?page=1&pageSize=2",
            &carol,
            None,
        )
        .await;
    let p2 = c
        .expect(
            0,
            Method::GET,
            "/groups/{id}/members",
            &[&gid],
            "?page=2&pageSize=2",
            &carol,
            None,
        )
        .await;
    assert_eq!(
        (p1.data()["total"].as_u64(), p2.data()["page"].as_u64()),
        (Some(3), Some(2))
    );
    let mut all: Vec<Value> = p1.data()["members"].as_array().unwrap().clone();
    all.extend(p2.data()["members"].as_array().unwrap().iter().cloned());
    assert_eq!(all.len(), 3);
    let role_of = |id: &str| {
        all.iter()
            .find(|m| m["userId"] == id)
            .map(|m| m["role"].as_str().unwrap().to_owned())
    };
    assert_eq!(role_of(&owner_id).as_deref(), Some("owner"));
    assert_eq!(role_of(&bob_id).as_deref(), Some("admin"));
    assert_eq!(role_of(&carol_id).as_deref(), Some("member"));
    let carol_row = all
        .iter()
        .find(|m| m["userId"] == carol_id.as_str())
        .unwrap();
    assert_eq!(carol_row["groupNickname"], "小C");
    assert_eq!(carol_row["userInfo"]["nickname"], "gcarol");

    // Profile changes: free joining now, so Dave joins at once; then he is removed.
    c.expect(
        403,
        Method::PUT,
        "/groups/{id}",
        &[&gid],
        "",
        &carol,
        Some(json!({"name": "x"})),
    )
    .await;
    c.expect(
        0,
        Method::PUT,
        "/groups/{id}",
        &[&gid],
        "",
        &bob,
        Some(json!({"name": "新群名称", "announcement": "欢迎", "joinVerify": false})),
    )
    .await;
    let info = c
        .expect(0, Method::GET, "/groups/{id}", &[&gid], "", &bob, None)
        .await;
    assert_eq!(
        (
            info.data()["name"].as_str(),
            info.data()["announcement"].as_str()
        ),
        (Some("新群名称"), Some("欢迎"))
    );
    assert_eq!(
        (
            info.data()["joinVerify"].as_bool(),
            info.data()["myRole"].as_str()
        ),
        (Some(false), Some("admin"))
    );
    let joined = c
        .expect(
            0,
            Method::POST,
            "/groups/{id}/join",
            &[&gid],
            "",
            &dave,
            None,
        )
        .await;
    assert_eq!(
        (
            joined.data()["needVerify"].as_bool(),
            joined.data()["requestId"].as_i64()
        ),
        (Some(false), Some(0))
    );
    c.expect(
        0,
        Method::DELETE,
        "/groups/{id}/members/{userId}",
        &[&gid, &dave_id],
        "",
        &owner,
        None,
    )
    .await;
    c.expect(
        404,
        Method::GET,
        "/groups/{id}/members",
        &[&gid],
        "",
        &dave,
        None,
    )
    .await;
    // Invited back: not by a plain member, by an admin.
    c.expect(
        403,
        Method::POST,
        "/groups/{id}/members",
        &[&gid],
        "",
        &carol,
        Some(json!({"userIds": [dave_id]})),
    )
    .await;
    c.expect(
        0,
        Method::POST,
        "/groups/{id}/members",
        &[&gid],
        "",
        &bob,
        Some(json!({"userIds": [dave_id]})),
    )
    .await;
    // Invited, not yet in: he joins to accept.
    c.expect(
        404,
        Method::GET,
        "/groups/{id}/members",
        &[&gid],
        "",
        &dave,
        None,
    )
    .await;
    c.expect(
        0,
        Method::POST,
        "/groups/{id}/join",
        &[&gid],
        "",
        &dave,
        None,
    )
    .await;
    c.expect(
        0,
        Method::GET,
        "/groups/{id}/members",
        &[&gid],
        "",
        &dave,
        None,
    )
    .await;

    // Transfer, quit, disband.
    c.expect(
        403,
        Method::POST,
        "/groups/{id}/transfer",
        &[&gid],
        "",
        &bob,
        Some(json!({"newOwnerId": carol_id})),
    )
    .await;
    c.expect(
        0,
        Method::POST,
        "/groups/{id}/transfer",
        &[&gid],
        "",
        &owner,
        Some(json!({"newOwnerId": bob_id})),
    )
    .await;
    let info = c
        .expect(0, Method::GET, "/groups/{id}", &[&gid], "", &bob, None)
        .await;
    assert_eq!(
        (
            info.data()["ownerId"].as_str(),
            info.data()["myRole"].as_str()
        ),
        (Some(bob_id.as_str()), Some("owner"))
    );
    c.expect(
        0,
        Method::POST,
        "/groups/{id}/quit",
        &[&gid],
        "",
        &carol,
        None,
    )
    .await;
    let list = c
        .expect(0, Method::GET, "/groups", &[], "", &carol, None)
        .await;
    assert_eq!(list.data()["total"], 0);
    c.expect(
        403,
        Method::DELETE,
        "/groups/{id}",
        &[&gid],
        "",
        &owner,
        None,
    )
    .await;
    c.expect(0, Method::DELETE, "/groups/{id}", &[&gid], "", &bob, None)
        .await;
    let list = c
        .expect(0, Method::GET, "/groups", &[], "", &bob, None)
        .await;
    assert_eq!(list.data()["total"], 0, "disbanded groups are not listed");

    // Unknown ids, no token, a bad token.
    let unknown = "02000000-0000-8000-8000-0000000f4240";
    c.expect(404, Method::GET, "/groups/{id}", &[unknown], "", &bob, None)
        .await;
    c.expect(
        404,
        Method::GET,
        "/groups/{id}",
        &["not-an-id"],
        "",
        &bob,
        None,
    )
    .await;
    c.expect(401, Method::GET, "/groups", &[], "", "", None)
        .await;
    c.expect(401, Method::GET, "/groups", &[], "", "not-a-token", None)
        .await;
}

#[tokio::test]
async fn files_go_up_and_down_through_signed_urls() {
    let s = server().await;
    let c = Any::new(&s);
    let (alice, alice_id) = c.register_email("falice").await;
    let (bob, _) = c.register_email("fbob").await;
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();

    // Upload token, in the SDK's snake_case.
    let t = c
        .expect(
            0,
            Method::POST,
            "/files/upload-token",
            &[],
            "",
            &alice,
            Some(json!({"file_name": "data.bin", "file_size": bytes.len(),
                "mime_type": "application/octet-stream", "file_type": 4})),
        )
        .await;
    let d = t.data().clone();
    let upload_id = d["fileId"].as_str().unwrap().to_owned();
    assert_eq!(d["file_id"], upload_id.as_str());
    assert_eq!(d["expiresIn"], 3600);
    let upload_url = d["uploadUrl"].as_str().unwrap().to_owned();
    assert_eq!(d["upload_url"], upload_url.as_str());
    assert!(
        upload_url.starts_with("/files/"),
        "relative to the API base: {upload_url}"
    );

    // Bad requests for a token.
    c.expect(
        400,
        Method::POST,
        "/files/upload-token",
        &[],
        "",
        &alice,
        Some(json!({"fileName": "x"})),
    )
    .await;
    c.expect(
        400,
        Method::POST,
        "/files/upload-token",
        &[],
        "",
        &alice,
        Some(json!({"fileName": "a/b", "fileSize": 3})),
    )
    .await;

    // A tampered upload link is refused with a real 403; completing early is a conflict.
    let tampered = upload_url.replace("&s=", "&s=0");
    let res = c
        .raw(
            Method::PUT,
            &format!("{}{tampered}", c.base),
            Some(b"x".to_vec()),
        )
        .await;
    assert_eq!(res.status().as_u16(), 403);
    let other_user = upload_url.replace("u=01", "u=00");
    let res = c
        .raw(
            Method::PUT,
            &format!("{}{other_user}", c.base),
            Some(b"x".to_vec()),
        )
        .await;
    assert_eq!(res.status().as_u16(), 403);
    c.expect(
        409,
        Method::POST,
        "/files/{fileId}/complete",
        &[&upload_id],
        "",
        &alice,
        None,
    )
    .await;
    let pending = c
        .expect(
            0,
            Method::GET,
            "/files/{fileId}",
            &[&upload_id],
            "",
            &alice,
            None,
        )
        .await;
    assert_eq!(pending.data()["status"], "uploading");

    // The bytes, then complete: the file's own id.
    let res = c
        .raw(
            Method::PUT,
            &format!("{}{upload_url}", c.base),
            Some(bytes.clone()),
        )
        .await;
    assert_eq!(res.status().as_u16(), 200);
    let res = c
        .raw(
            Method::PUT,
            &format!("{}{upload_url}", c.base),
            Some(bytes.clone()),
        )
        .await;
    assert_eq!(
        res.status().as_u16(),
        409,
        "a second PUT does not add bytes"
    );
    c.expect(
        404,
        Method::POST,
        "/files/{fileId}/complete",
        &[&upload_id],
        "",
        &bob,
        None,
    )
    .await;
    let done = c
        .expect(
            0,
            Method::POST,
            "/files/{fileId}/complete",
            &[&upload_id],
            "",
            &alice,
            None,
        )
        .await;
    let f = done.data().clone();
    let file_id = f["fileId"].as_str().unwrap().to_owned();
    assert_eq!(f["file_id"], file_id.as_str());
    assert_eq!(
        (f["fileName"].as_str(), f["file_name"].as_str()),
        (Some("data.bin"), Some("data.bin"))
    );
    assert_eq!(
        (f["fileSize"].as_u64(), f["file_size"].as_u64()),
        (Some(bytes.len() as u64), Some(bytes.len() as u64))
    );
    assert_eq!(
        (f["fileType"].as_str(), f["ownerId"].as_str()),
        (Some("file"), Some(alice_id.as_str()))
    );
    c.expect(
        404,
        Method::POST,
        "/files/{fileId}/complete",
        &[&upload_id],
        "",
        &alice,
        None,
    )
    .await;

    // Info, and a download link that streams the same bytes.
    let info = c
        .expect(
            0,
            Method::GET,
            "/files/{fileId}",
            &[&file_id],
            "",
            &alice,
            None,
        )
        .await;
    assert_eq!(info.data()["status"], "completed");
    let link = c
        .expect(
            0,
            Method::GET,
            "/files/{fileId}/download",
            &[&file_id],
            "?expiresMinutes=5",
            &alice,
            None,
        )
        .await;
    assert_eq!(
        (
            link.data()["expiresIn"].as_u64(),
            link.data()["expires_in"].as_u64()
        ),
        (Some(300), Some(300))
    );
    let url = link.data()["downloadUrl"].as_str().unwrap().to_owned();
    assert_eq!(link.data()["download_url"], url.as_str());
    let res = c.raw(Method::GET, &format!("{}{url}", c.base), None).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_eq!(res.bytes().await.unwrap().as_ref(), bytes.as_slice());

    // Altered links are refused: another file, a later expiry, a changed signature.
    let other_file = url.replace(&file_id, &"0".repeat(32));
    let later = {
        let e = url.split("&e=").nth(1).unwrap().split('&').next().unwrap();
        let later: u64 = e.parse::<u64>().unwrap() + 3600;
        url.replace(&format!("e={e}"), &format!("e={later}"))
    };
    // The last signature digit changed (to a different one: a fixed replacement equals the
    // original one time in sixteen, and the link would then be valid).
    let last = if url.ends_with('0') { '1' } else { '0' };
    let resigned = format!("{}{last}", &url[..url.len() - 1]);
    for bad in [other_file, later, resigned] {
        let res = c.raw(Method::GET, &format!("{}{bad}", c.base), None).await;
        assert_eq!(res.status().as_u16(), 403, "{bad}");
    }

    // Bob cannot see Alice's private file, nor get a link to it, nor delete it.
    c.expect(
        404,
        Method::GET,
        "/files/{fileId}",
        &[&file_id],
        "",
        &bob,
        None,
    )
    .await;
    c.expect(
        404,
        Method::GET,
        "/files/{fileId}/download",
        &[&file_id],
        "",
        &bob,
        None,
    )
    .await;
    c.expect(
        404,
        Method::DELETE,
        "/files/{fileId}",
        &[&file_id],
        "",
        &bob,
        None,
    )
    .await;
    c.expect(
        404,
        Method::GET,
        "/files/{fileId}",
        &["nonsense"],
        "",
        &alice,
        None,
    )
    .await;
    c.expect(
        401,
        Method::GET,
        "/files/{fileId}",
        &[&file_id],
        "",
        "",
        None,
    )
    .await;

    // Listed for its uploader only, newest first, paged.
    let listed = c
        .expect(
            0,
            Method::GET,
            "/files",
            &[],
            "?page=1&pageSize=10",
            &alice,
            None,
        )
        .await;
    let d = listed.data();
    assert_eq!(
        (
            d["total"].as_u64(),
            d["page"].as_u64(),
            d["pageSize"].as_u64()
        ),
        (Some(1), Some(1), Some(10))
    );
    assert_eq!(d["files"][0]["fileId"], file_id.as_str());
    assert_eq!(d["files"][0]["file_name"], "data.bin");
    let beyond = c
        .expect(
            0,
            Method::GET,
            "/files",
            &[],
            "?page=2&pageSize=10",
            &alice,
            None,
        )
        .await;
    assert_eq!(beyond.data()["files"], json!([]));
    assert_eq!(beyond.data()["total"], 1);
    let none = c
        .expect(0, Method::GET, "/files", &[], "", &bob, None)
        .await;
    assert_eq!(
        (
            none.data()["total"].as_u64(),
            none.data()["files"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0))
    );
    // By kind: the uploaded bytes are no image, video or audio, so they are a `file`.
    let files = c
        .expect(
            0,
            Method::GET,
            "/files",
            &[],
            "?fileType=file",
            &alice,
            None,
        )
        .await;
    assert_eq!(files.data()["total"], 1);
    assert_eq!(files.data()["files"][0]["fileId"], file_id.as_str());
    let images = c
        .expect(
            0,
            Method::GET,
            "/files",
            &[],
            "?fileType=image",
            &alice,
            None,
        )
        .await;
    assert_eq!(
        (
            images.data()["total"].as_u64(),
            images.data()["files"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0))
    );
    c.expect(
        400,
        Method::GET,
        "/files",
        &[],
        "?fileType=pictures",
        &alice,
        None,
    )
    .await;
    c.expect(400, Method::GET, "/files", &[], "?page=x", &alice, None)
        .await;
    c.expect(
        400,
        Method::GET,
        "/files",
        &[],
        "?page=100000&pageSize=100",
        &alice,
        None,
    )
    .await;
    c.expect(401, Method::GET, "/files", &[], "", "", None)
        .await;

    // Deleted by its uploader: its info, its link and the link's bytes are gone.
    c.expect(
        0,
        Method::DELETE,
        "/files/{fileId}",
        &[&file_id],
        "",
        &alice,
        None,
    )
    .await;
    for template in ["/files/{fileId}", "/files/{fileId}/download"] {
        c.expect(404, Method::GET, template, &[&file_id], "", &alice, None)
            .await;
    }
    let res = c.raw(Method::GET, &format!("{}{url}", c.base), None).await;
    assert_eq!(res.status().as_u16(), 404, "a link made before the delete");
    c.expect(
        404,
        Method::DELETE,
        "/files/{fileId}",
        &[&file_id],
        "",
        &alice,
        None,
    )
    .await;
    let after = c
        .expect(0, Method::GET, "/files", &[], "", &alice, None)
        .await;
    assert_eq!(after.data()["total"], 0);
}

#[tokio::test]
async fn calls_carry_their_state() {
    let s = server().await;
    let c = Any::new(&s);
    let (alice, alice_id) = c.register_email("calice").await;
    let (bob, bob_id) = c.register_email("cbob").await;
    let (eve, _) = c.register_email("ceve").await;

    c.expect(
        400,
        Method::POST,
        "/rtc/calls",
        &[],
        "",
        &alice,
        Some(json!({"calleeId": bob_id, "callType": "hologram"})),
    )
    .await;
    c.expect(
        400,
        Method::POST,
        "/rtc/calls",
        &[],
        "",
        &alice,
        Some(json!({"calleeId": alice_id})),
    )
    .await;

    // Ringing, accepted, ended.
    let call = c
        .expect(
            0,
            Method::POST,
            "/rtc/calls",
            &[],
            "",
            &alice,
            Some(json!({"calleeId": bob_id, "callType": "video"})),
        )
        .await;
    let d = call.data().clone();
    let id = d["callId"].as_str().unwrap().to_owned();
    assert_eq!(
        (d["status"].as_str(), d["callType"].as_str()),
        (Some("ringing"), Some("video"))
    );
    assert_eq!(d["roomName"], format!("call-{id}"));
    assert!(d["token"].as_str().unwrap().contains(&id));
    c.expect(
        409,
        Method::POST,
        "/rtc/calls",
        &[],
        "",
        &alice,
        Some(json!({"calleeId": bob_id})),
    )
    .await;
    let ringing = c
        .expect(
            0,
            Method::GET,
            "/rtc/calls/{callId}",
            &[&id],
            "",
            &bob,
            None,
        )
        .await;
    assert_eq!(ringing.data()["status"], "ringing");
    assert_eq!(ringing.data()["calleeId"], bob_id.as_str());
    assert_eq!(ringing.data()["callType"], "video");
    c.expect(
        404,
        Method::POST,
        "/rtc/calls/{callId}/join",
        &[&id],
        "",
        &eve,
        None,
    )
    .await;
    let joined = c
        .expect(
            0,
            Method::POST,
            "/rtc/calls/{callId}/join",
            &[&id],
            "",
            &bob,
            None,
        )
        .await;
    assert_eq!(joined.data()["status"], "accepted");
    let live = c
        .expect(
            0,
            Method::GET,
            "/rtc/calls/{callId}",
            &[&id],
            "",
            &alice,
            None,
        )
        .await;
    assert_eq!(live.data()["status"], "accepted");
    c.expect(
        404,
        Method::GET,
        "/rtc/calls/{callId}",
        &[&id],
        "",
        &eve,
        None,
    )
    .await;
    c.expect(
        409,
        Method::POST,
        "/rtc/calls/{callId}/join",
        &[&id],
        "",
        &bob,
        None,
    )
    .await;
    let ended = c
        .expect(
            0,
            Method::POST,
            "/rtc/calls/{callId}/end",
            &[&id],
            "",
            &bob,
            None,
        )
        .await;
    assert_eq!(ended.data()["status"], "ended");
    c.expect(
        404,
        Method::POST,
        "/rtc/calls/{callId}/end",
        &[&id],
        "",
        &alice,
        None,
    )
    .await;
    let rec = c
        .expect(
            0,
            Method::GET,
            "/rtc/calls/{callId}",
            &[&id],
            "",
            &alice,
            None,
        )
        .await;
    assert_eq!(
        (
            rec.data()["status"].as_str(),
            rec.data()["calleeId"].as_str()
        ),
        (Some("ended"), Some(bob_id.as_str()))
    );
    assert!(rec.data()["duration"].is_u64());

    // Rejected.
    let call = c
        .expect(
            0,
            Method::POST,
            "/rtc/calls",
            &[],
            "",
            &alice,
            Some(json!({"calleeId": bob_id})),
        )
        .await;
    let rejected = call.data()["callId"].as_str().unwrap().to_owned();
    c.expect(
        0,
        Method::POST,
        "/rtc/calls/{callId}/reject",
        &[&rejected],
        "",
        &bob,
        None,
    )
    .await;
    // Cancelled: the caller hangs up while it rings.
    let call = c
        .expect(
            0,
            Method::POST,
            "/rtc/calls",
            &[],
            "",
            &alice,
            Some(json!({"calleeId": bob_id})),
        )
        .await;
    let cancelled = call.data()["callId"].as_str().unwrap().to_owned();
    let end = c
        .expect(
            0,
            Method::POST,
            "/rtc/calls/{callId}/end",
            &[&cancelled],
            "",
            &alice,
            None,
        )
        .await;
    assert_eq!(end.data()["status"], "cancelled");

    let list = c
        .expect(
            0,
            Method::GET,
            "/rtc/calls",
            &[],
            "?page=1&pageSize=2",
            &bob,
            None,
        )
        .await;
    let calls = list.data()["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        (calls[0]["callId"].as_str(), calls[0]["status"].as_str()),
        (Some(cancelled.as_str()), Some("cancelled"))
    );
    assert_eq!(
        (calls[1]["callId"].as_str(), calls[1]["status"].as_str()),
        (Some(rejected.as_str()), Some("rejected"))
    );
    assert_eq!(list.data()["hasMore"], true);
    let page2 = c
        .expect(
            0,
            Method::GET,
            "/rtc/calls",
            &[],
            "?page=2&pageSize=2",
            &bob,
            None,
        )
        .await;
    assert_eq!(page2.data()["calls"][0]["callId"], id.as_str());
    assert_eq!(page2.data()["hasMore"], false);
    c.expect(
        404,
        Method::GET,
        "/rtc/calls/{callId}",
        &[&id],
        "",
        &eve,
        None,
    )
    .await;
    c.expect(
        404,
        Method::GET,
        "/rtc/calls/{callId}",
        &["x"],
        "",
        &eve,
        None,
    )
    .await;

    // Meetings: compat_anychat_meet.rs.
    c.expect(401, Method::GET, "/rtc/meetings", &[], "", "", None)
        .await;
}

#[tokio::test]
async fn the_admin_logs_in_bans_and_disbands() {
    let s = server().await;
    let c = Any::new(&s);
    let (bob, bob_id) = c.register_email("abob").await;
    let (carol, carol_id) = c.register_email("acarol").await;

    // Login: only the operator's credential.
    let wrong = json!({"username": "admin", "password": "not-the-token"});
    c.expect(
        401,
        Method::POST,
        "/admin/auth/login",
        &[],
        "",
        "",
        Some(wrong),
    )
    .await;
    let other = json!({"username": "root", "password": ADMIN_TOKEN});
    c.expect(
        401,
        Method::POST,
        "/admin/auth/login",
        &[],
        "",
        "",
        Some(other),
    )
    .await;
    c.expect(
        400,
        Method::POST,
        "/admin/auth/login",
        &[],
        "",
        "",
        Some(json!({"username": "admin"})),
    )
    .await;
    let right = json!({"username": "admin", "password": ADMIN_TOKEN});
    let login = c
        .expect(
            0,
            Method::POST,
            "/admin/auth/login",
            &[],
            "",
            "",
            Some(right.clone()),
        )
        .await;
    assert_eq!(login.data()["expiresIn"], 8 * 3600);
    let admin = login.data()["token"].as_str().unwrap().to_owned();
    // The real admin service's paths too.
    let a = c
        .at(
            &c.api,
            Method::POST,
            "/admin/auth/login",
            &[],
            "",
            "",
            Some(right),
        )
        .await;
    assert_eq!(a.code(), 0);

    // Admin routes refuse users' tokens and no token.
    c.expect(401, Method::GET, "/admin/users", &[], "", "", None)
        .await;
    c.expect(401, Method::GET, "/admin/users", &[], "", &bob, None)
        .await;

    let users = c
        .expect(
            0,
            Method::GET,
            "/admin/users",
            &[],
            "?keyword=abo&page=1&pageSize=10",
            &admin,
            None,
        )
        .await;
    assert_eq!(users.data()["total"], 1);
    assert_eq!(users.data()["users"][0]["userId"], bob_id.as_str());
    let u = c
        .at(
            &c.api,
            Method::GET,
            "/admin/users/{userId}",
            &[&carol_id],
            "",
            &admin,
            None,
        )
        .await;
    assert_eq!(
        (u.code(), u.data()["nickname"].as_str()),
        (0, Some("acarol"))
    );
    c.expect(
        404,
        Method::GET,
        "/admin/users/{userId}",
        &["01000000-0000-8000-8000-0000000f4240"],
        "",
        &admin,
        None,
    )
    .await;

    // A ban: Bob's token stops working at once; an unban lets him log in again.
    c.expect(0, Method::GET, "/users/me", &[], "", &bob, None)
        .await;
    c.expect(
        0,
        Method::POST,
        "/admin/users/{userId}/ban",
        &[&bob_id],
        "",
        &admin,
        Some(json!({"reason": "spam"})),
    )
    .await;
    c.expect(401, Method::GET, "/users/me", &[], "", &bob, None)
        .await;
    let relogin = json!({"account": "abob@example.com", "password": "password123"});
    let refused = c
        .call(
            Method::POST,
            "/auth/login",
            &[],
            "",
            "",
            Some(relogin.clone()),
        )
        .await;
    assert_ne!(refused.code(), 0);
    let u = c
        .expect(
            0,
            Method::GET,
            "/admin/users/{userId}",
            &[&bob_id],
            "",
            &admin,
            None,
        )
        .await;
    assert_eq!(u.data()["banned"], true);
    c.expect(
        0,
        Method::POST,
        "/admin/users/{userId}/unban",
        &[&bob_id],
        "",
        &admin,
        None,
    )
    .await;
    let again = c
        .expect(0, Method::POST, "/auth/login", &[], "", "", Some(relogin))
        .await;
    let bob = again.data()["accessToken"].as_str().unwrap().to_owned();
    c.expect(0, Method::GET, "/users/me", &[], "", &bob, None)
        .await;

    // Groups: seen and disbanded by the operator.
    let g = c
        .expect(
            0,
            Method::POST,
            "/groups",
            &[],
            "",
            &carol,
            Some(json!({"name": "g", "memberIds": [bob_id]})),
        )
        .await;
    let gid = g.data()["groupId"].as_str().unwrap().to_owned();
    c.expect(
        0,
        Method::POST,
        "/groups/{id}/join",
        &[&gid],
        "",
        &bob,
        None,
    )
    .await;
    let seen = c
        .expect(
            0,
            Method::GET,
            "/admin/groups/{groupId}",
            &[&gid],
            "",
            &admin,
            None,
        )
        .await;
    assert_eq!(
        (
            seen.data()["memberCount"].as_u64(),
            seen.data()["ownerId"].as_str()
        ),
        (Some(2), Some(carol_id.as_str()))
    );
    c.expect(
        0,
        Method::DELETE,
        "/admin/groups/{groupId}",
        &[&gid],
        "",
        &admin,
        None,
    )
    .await;
    c.expect(
        403,
        Method::DELETE,
        "/admin/groups/{groupId}",
        &[&gid],
        "",
        &admin,
        None,
    )
    .await;
    let list = c
        .expect(0, Method::GET, "/groups", &[], "", &carol, None)
        .await;
    assert_eq!(list.data()["total"], 0);
    c.expect(
        404,
        Method::GET,
        "/admin/groups/{groupId}",
        &["nope"],
        "",
        &admin,
        None,
    )
    .await;

    // Stats, config without secrets, admins, audit.
    let stats = c
        .expect(
            0,
            Method::GET,
            "/admin/stats/overview",
            &[],
            "",
            &admin,
            None,
        )
        .await;
    let everyone = c
        .expect(0, Method::GET, "/admin/users", &[], "", &admin, None)
        .await;
    // Bob, Carol, and the server account that wrote the disband.
    assert_eq!(stats.data()["totalUsers"], everyone.data()["total"]);
    assert_eq!(stats.data()["bannedUsers"], 0);
    let config = c
        .expect(0, Method::GET, "/admin/config", &[], "", &admin, None)
        .await;
    assert!(!config.body.to_string().contains(ADMIN_TOKEN), "no secrets");
    let configs = config.data()["configs"].as_array().unwrap();
    assert!(configs
        .iter()
        .any(|kv| kv["key"] == "admin.token" && kv["value"] == "[redacted]"));
    c.expect(
        403,
        Method::PUT,
        "/admin/config/{key}",
        &["admin.announcer"],
        "",
        &admin,
        Some(json!({"value": "x"})),
    )
    .await;
    c.expect(
        404,
        Method::PUT,
        "/admin/config/{key}",
        &["no.such.key"],
        "",
        &admin,
        Some(json!({"value": "x"})),
    )
    .await;
    let admins = c
        .expect(0, Method::GET, "/admin/admins", &[], "", &admin, None)
        .await;
    assert_eq!(admins.data()["total"], 1);
    let admin_id = admins.data()["admins"][0]["adminId"]
        .as_str()
        .unwrap()
        .to_owned();
    // Admin accounts exist (tests: admin_accounts.rs); this password is too short.
    c.expect(
        400,
        Method::POST,
        "/admin/admins",
        &[],
        "",
        &admin,
        Some(json!({"username": "x", "password": "y"})),
    )
    .await;
    c.expect(
        403,
        Method::PUT,
        "/admin/admins/{adminId}/status",
        &[&admin_id],
        "",
        &admin,
        Some(json!({"status": 0})),
    )
    .await;
    c.expect(
        404,
        Method::PUT,
        "/admin/admins/{adminId}/status",
        &["someone"],
        "",
        &admin,
        Some(json!({"status": 0})),
    )
    .await;
    // The audit log: what was done above, newest first, with targets in the dialect's ids.
    let audit = c
        .expect(0, Method::GET, "/admin/audit-logs", &[], "", &admin, None)
        .await;
    let logs = audit.data()["logs"].as_array().unwrap().clone();
    let seen: Vec<(&str, &str, &str)> = logs
        .iter()
        .map(|l| {
            assert_eq!(l["adminId"], admin_id.as_str());
            assert!(l["createdAt"].as_str().unwrap().ends_with('Z'), "{l}");
            (
                l["action"].as_str().unwrap(),
                l["targetId"].as_str().unwrap(),
                l["result"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            // Refused admin and configuration changes are audited too.
            ("disable_admin", admin_id.as_str(), "FORBIDDEN"),
            ("create_admin", "x", "INVALID_ARGUMENT"),
            ("set_config", "no.such.key", "NOT_FOUND"),
            ("set_config", "admin.announcer", "FORBIDDEN"),
            ("disband_group", gid.as_str(), "DISBANDED"),
            ("disband_group", gid.as_str(), "ok"),
            ("unban", bob_id.as_str(), "ok"),
            ("ban", bob_id.as_str(), "ok"),
        ]
    );
    assert_eq!(audit.data()["total"], 8);
    let bans = c
        .expect(
            0,
            Method::GET,
            "/admin/audit-logs",
            &[],
            &format!("?action=ban&adminId={admin_id}&page=1&pageSize=1"),
            &admin,
            None,
        )
        .await;
    assert_eq!(bans.data()["total"], 1);
    assert_eq!(bans.data()["logs"][0]["targetType"], "user");
    let second = c
        .expect(
            0,
            Method::GET,
            "/admin/audit-logs",
            &[],
            "?page=3&pageSize=3",
            &admin,
            None,
        )
        .await;
    assert_eq!(second.data()["logs"][1]["action"], "ban");
    let nobody = c
        .expect(
            0,
            Method::GET,
            "/admin/audit-logs",
            &[],
            "?adminId=someone",
            &admin,
            None,
        )
        .await;
    assert_eq!(nobody.data()["total"], 0);
    c.expect(401, Method::GET, "/admin/audit-logs", &[], "", &bob, None)
        .await;

    // Logout: the token stops working.
    c.expect(0, Method::POST, "/admin/auth/logout", &[], "", &admin, None)
        .await;
    c.expect(401, Method::GET, "/admin/admins", &[], "", &admin, None)
        .await;
}

#[tokio::test]
async fn without_an_admin_token_nobody_logs_in_as_admin() {
    let s = TestServer::start().await;
    let c = Any::new(&s);
    for password in ["", "anything-at-all-0123456789"] {
        let a = c
            .call(
                Method::POST,
                "/admin/auth/login",
                &[],
                "",
                "",
                Some(json!({"username": "admin", "password": password})),
            )
            .await;
        assert!(a.code() == 400 || a.code() == 401, "{:?}", a.body);
        assert_eq!(a.status, 200);
    }
}
