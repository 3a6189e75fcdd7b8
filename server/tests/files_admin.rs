//! A user's own files (`ListFiles`, `DeleteFile` through `/im/v1/files`) and the admin audit
//! log (`/admin/v1/audit-logs`), against a real server on port 0: listing newest first in
//! pages, deletion by the uploader only (everyone else, and a second delete, get the one
//! "no such file"), downloads answering 404 after a delete, blobs kept while another file has
//! the same bytes and removed with the last one; and bans, unbans and refused bans showing in
//! the audit log, which only the admin credential reads.
#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

mod common;

use std::collections::HashSet;
use std::path::Path;

use common::{TestServer, WAIT};
use parley_client::Transport;
use serde_json::Value;
use sha2::{Digest, Sha256};

const T: Transport = Transport::Tls;
const TOKEN: &str = "files-admin-token-0123456789";

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().timeout(WAIT).build().unwrap()
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let body = res.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Uploads `bytes` as `name` for `token`; the new file's id.
async fn upload(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    name: &str,
    bytes: &[u8],
) -> String {
    let req = http
        .post(format!("{base}?name={name}"))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(bytes.to_vec());
    let (status, v) = send(req).await;
    assert_eq!(status, 201, "{v}");
    v["file_id"].as_str().unwrap().to_owned()
}

/// Whether a file named `sha` exists anywhere under `dir` (the blob directory).
fn blob_exists(dir: &Path, sha: &str) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let path = e.unwrap().path();
        match path.is_dir() {
            true => blob_exists(&path, sha),
            false => path.file_name().is_some_and(|n| n == sha),
        }
    })
}

fn ids(page: &Value) -> Vec<String> {
    page["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_listed_newest_first_and_deleted_by_their_uploader_only() {
    let s = TestServer::start().await;
    let http = client();
    let base = format!("http://{}/im/v1/files", s.http);
    let (alice, _a) = s.register(T, "alice").await;
    let (bob, _b) = s.register(T, "bob").await;
    let (a, b) = (
        alice.login_result().access_token,
        bob.login_result().access_token,
    );
    let shared = b"the same bytes, uploaded twice".to_vec();
    let own = b"bytes only alice has".to_vec();
    let mut mine = Vec::new();
    mine.push(upload(&http, &base, &a, "one.txt", &own).await);
    mine.push(upload(&http, &base, &a, "two.txt", &shared).await);
    mine.push(upload(&http, &base, &a, "three.txt", b"third").await);
    let bobs = upload(&http, &base, &b, "bob.txt", &shared).await;

    // Pages: newest first, disjoint, together every file of the caller and only those.
    let (status, first) = send(http.get(format!("{base}?limit=2")).bearer_auth(&a)).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        (first["total"].as_u64(), first["has_more"].as_bool()),
        (Some(3), Some(true))
    );
    let (_, rest) = send(http.get(format!("{base}?limit=2&offset=2")).bearer_auth(&a)).await;
    assert_eq!(
        (rest["total"].as_u64(), rest["has_more"].as_bool()),
        (Some(3), Some(false))
    );
    let listed: Vec<String> = ids(&first).into_iter().chain(ids(&rest)).collect();
    assert_eq!(listed.len(), 3);
    assert_eq!(
        listed.iter().collect::<HashSet<_>>(),
        mine.iter().collect::<HashSet<_>>()
    );
    let times: Vec<u64> = [&first, &rest]
        .iter()
        .flat_map(|p| p["files"].as_array().unwrap().clone())
        .map(|f| f["created_at_ms"].as_u64().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    let (_, theirs) = send(http.get(base.clone()).bearer_auth(&b)).await;
    assert_eq!(ids(&theirs), vec![bobs.clone()]);

    // One kind only, by the bytes' type: a real PNG is an image, the text files are not.
    let mut png = std::io::Cursor::new(Vec::new());
    image::RgbaImage::from_fn(4, 4, |x, y| image::Rgba([x as u8, y as u8, 9, 255]))
        .write_to(&mut png, image::ImageFormat::Png)
        .unwrap();
    let pic = upload(&http, &base, &a, "pic.png", &png.into_inner()).await;
    let (status, images) = send(http.get(format!("{base}?kind=image")).bearer_auth(&a)).await;
    assert_eq!(status, 200, "{images}");
    assert_eq!(
        (ids(&images), images["total"].as_u64()),
        (vec![pic.clone()], Some(1))
    );
    let (_, other) = send(
        http.get(format!("{base}?kind=other&limit=2"))
            .bearer_auth(&a),
    )
    .await;
    assert_eq!(
        (other["total"].as_u64(), other["has_more"].as_bool()),
        (Some(3), Some(true))
    );
    assert!(ids(&other).iter().all(|id| mine.contains(id)));
    let (_, video) = send(http.get(format!("{base}?kind=video")).bearer_auth(&a)).await;
    assert_eq!(video["total"].as_u64(), Some(0));
    let (status, _) = send(http.get(format!("{base}?kind=pictures")).bearer_auth(&a)).await;
    assert_eq!(status, 400);
    let (status, _) = send(http.delete(format!("{base}/{pic}")).bearer_auth(&a)).await;
    assert_eq!(status, 204);

    // Bad input and no caller.
    let (status, _) = send(http.get(format!("{base}?limit=101")).bearer_auth(&a)).await;
    assert_eq!(status, 400);
    let (status, _) = send(http.get(format!("{base}?offset=10001")).bearer_auth(&a)).await;
    assert_eq!(status, 400);
    let (status, _) = send(http.get(base.clone())).await;
    assert_eq!(status, 401);
    let (status, _) = send(http.delete(format!("{base}/{}", mine[0]))).await;
    assert_eq!(status, 401);

    // Bob cannot delete Alice's file: the same 404 as an unknown id; it is still there.
    let (status, v) = send(http.delete(format!("{base}/{}", mine[0])).bearer_auth(&b)).await;
    assert_eq!(
        (status, &v["error"]["code"]),
        (404, &Value::from("NOT_FOUND"))
    );
    let (status, _) = send(
        http.delete(format!("{base}/{}", "0".repeat(32)))
            .bearer_auth(&a),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = send(http.delete(format!("{base}/nonsense")).bearer_auth(&a)).await;
    assert_eq!(status, 404);
    let (status, _) = send(http.get(format!("{base}/{}", mine[0])).bearer_auth(&a)).await;
    assert_eq!(status, 200);

    // Alice deletes her copy of the shared bytes: gone for her, Bob's copy still downloads.
    let blobs = s.dir.path().join("files");
    let shared_sha = hex::encode(Sha256::digest(&shared));
    let res = http
        .delete(format!("{base}/{}", mine[1]))
        .bearer_auth(&a)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 204);
    for path in [
        format!("{base}/{}", mine[1]),
        format!("{base}/{}/meta", mine[1]),
    ] {
        let (status, v) = send(http.get(path).bearer_auth(&a)).await;
        assert_eq!(
            (status, &v["error"]["code"]),
            (404, &Value::from("NOT_FOUND"))
        );
    }
    let (status, _) = send(http.delete(format!("{base}/{}", mine[1])).bearer_auth(&a)).await;
    assert_eq!(status, 404, "a second delete finds nothing");
    let res = http
        .get(format!("{base}/{bobs}"))
        .bearer_auth(&b)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.bytes().await.unwrap().to_vec(), shared);
    assert!(
        blob_exists(&blobs, &shared_sha),
        "Bob's file keeps the blob"
    );

    // Her own bytes go with her last file that has them.
    let own_sha = hex::encode(Sha256::digest(&own));
    assert!(blob_exists(&blobs, &own_sha));
    let (status, _) = send(http.delete(format!("{base}/{}", mine[0])).bearer_auth(&a)).await;
    assert_eq!(status, 204);
    assert!(
        !blob_exists(&blobs, &own_sha),
        "no file has these bytes any more"
    );
    let (_, left) = send(http.get(base.clone()).bearer_auth(&a)).await;
    assert_eq!(ids(&left), vec![mine[2].clone()]);
    assert_eq!(left["total"], 1);

    // Bob's delete of the last copy removes the shared blob.
    let (status, _) = send(http.delete(format!("{base}/{bobs}")).bearer_auth(&b)).await;
    assert_eq!(status, 204);
    assert!(!blob_exists(&blobs, &shared_sha));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_shows_admin_actions_to_the_admin_only() {
    let s = TestServer::start_with(|cfg| cfg.admin.token = Some(TOKEN.to_owned())).await;
    let http = client();
    let (alice, _a) = s.register(T, "alice").await;
    let id = alice.user_id().get();
    let base = format!("http://{}/admin/v1", s.http);
    let admin = |req: reqwest::RequestBuilder| send(req.bearer_auth(TOKEN));

    let (status, v) = admin(http.get(format!("{base}/audit-logs"))).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["entries"], Value::Array(Vec::new()), "nothing done yet");

    let (status, _) = admin(http.post(format!("{base}/users/{id}/ban"))).await;
    assert_eq!(status, 200);
    let (status, _) = admin(http.post(format!("{base}/users/{id}/unban"))).await;
    assert_eq!(status, 200);
    let (status, _) = admin(http.post(format!("{base}/users/999999/ban"))).await;
    assert_eq!(status, 404);

    // Newest first, with who, what, on what, and how it went.
    let (status, v) = admin(http.get(format!("{base}/audit-logs"))).await;
    assert_eq!(status, 200, "{v}");
    let entries = v["entries"].as_array().unwrap();
    let seen: Vec<(&str, String, &str)> = entries
        .iter()
        .map(|e| {
            assert_eq!(e["actor"], "operator");
            assert!(e["at_ms"].as_u64().unwrap() > 0);
            (
                e["action"].as_str().unwrap(),
                e["target"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("ban", "user:999999".to_owned(), "NOT_FOUND"),
            ("unban", format!("user:{id}"), "ok"),
            ("ban", format!("user:{id}"), "ok"),
        ]
    );
    assert_eq!(v["next_before"], Value::Null);

    // Filtered, and paged.
    let (_, bans) = admin(http.get(format!("{base}/audit-logs?action=ban"))).await;
    assert_eq!(bans["entries"].as_array().unwrap().len(), 2);
    let (_, one) = admin(http.get(format!("{base}/audit-logs?limit=1"))).await;
    assert_eq!(one["entries"][0]["target"], "user:999999");
    let next = one["next_before"].as_str().unwrap().to_owned();
    let (_, two) = admin(http.get(format!("{base}/audit-logs?limit=2&before={next}"))).await;
    let targets: Vec<&Value> = two["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["action"])
        .collect();
    assert_eq!(targets, vec!["unban", "ban"]);
    assert_eq!(two["next_before"], Value::Null);
    let (status, _) = admin(http.get(format!("{base}/audit-logs?limit=0"))).await;
    assert_eq!(status, 400);
    let (status, _) = admin(http.get(format!("{base}/audit-logs?before=x"))).await;
    assert_eq!(status, 400);

    // Only with the admin credential.
    let (status, _) = send(http.get(format!("{base}/audit-logs"))).await;
    assert_eq!(status, 401);
    let wrong = http
        .get(format!("{base}/audit-logs"))
        .bearer_auth("not-the-admin-token-at-all");
    let (status, _) = send(wrong).await;
    assert_eq!(status, 401);
    let user_token = alice.login_result().access_token;
    let as_user = http
        .get(format!("{base}/audit-logs"))
        .bearer_auth(user_token);
    let (status, _) = send(as_user).await;
    assert_eq!(status, 401);
    s.stop().await;
}
