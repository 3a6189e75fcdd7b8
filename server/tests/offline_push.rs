//! Offline push: a message for a user with no connected device is POSTed to the configured
//! webhook (a real HTTP listener here), with the user's push tokens, retried after a failure;
//! users online, users who muted the conversation, and users without tokens are not posted.
#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{stat, TestServer, WAIT};
use parley_client::Transport;
use parley_protocol::frames::{ContentType, ConversationPrefs, PeerRef};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const T: Transport = Transport::Tls;

/// Waits until the server counts `n` sessions (a closed client's session is gone server-side).
async fn online(s: &TestServer, n: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while common::sessions_online(s).await != n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "sessions did not settle"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// A webhook that fails its first request with 500 and accepts the rest, handing each accepted
/// body to the test.
async fn webhook() -> (
    String,
    mpsc::UnboundedReceiver<serde_json::Value>,
    Arc<AtomicUsize>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/push", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (tx, counter) = (tx.clone(), counter.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Headers, then Content-Length bytes of body.
                let (head_end, len) = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (i + 4, len);
                    }
                };
                while buf.len() < head_end + len {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let first = counter.fetch_add(1, Ordering::SeqCst) == 0;
                let status = if first {
                    "500 Internal Server Error"
                } else {
                    "200 OK"
                };
                let reply =
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = sock.write_all(reply.as_bytes()).await;
                if !first {
                    let body = serde_json::from_slice(&buf[head_end..head_end + len]).unwrap();
                    let _ = tx.send(body);
                }
            });
        }
    });
    (url, rx, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_for_offline_users_reach_the_webhook() {
    let (url, mut bodies, hits) = webhook().await;
    let s = TestServer::start_with(|c| c.push.webhook = url.clone()).await;
    let (alice, _a) = s.register(T, "alice").await;
    let (bob, _b) = s.register(T, "bob").await;
    let (carol, _c) = s.register(T, "carol").await;
    bob.set_push_token("fcm", "bob-token-1").await.unwrap();
    carol.set_push_token("apns", "carol-token").await.unwrap();
    let to_bob = alice
        .open_direct(PeerRef::User(bob.user_id()))
        .await
        .unwrap()
        .id;
    let to_carol = alice
        .open_direct(PeerRef::User(carol.user_id()))
        .await
        .unwrap()
        .id;
    // Carol mutes her conversation with alice; then both go offline.
    let mute = ConversationPrefs {
        muted: Some(true),
        ..Default::default()
    };
    carol.set_conversation_prefs(to_carol, mute).await.unwrap();
    bob.close().await;
    carol.close().await;
    online(&s, 1).await;

    alice
        .send(to_carol, ContentType::Text, "muted, not posted".into())
        .await
        .unwrap();
    alice
        .send(to_bob, ContentType::Text, "are you there?".into())
        .await
        .unwrap();
    let body = tokio::time::timeout(WAIT, bodies.recv())
        .await
        .expect("posted in time")
        .unwrap();
    assert_eq!(body["user_id"], bob.user_id().to_string());
    assert_eq!(body["conversation_id"], to_bob.to_string());
    assert_eq!(body["preview"], "are you there?");
    assert_eq!(body["sender_account"], "alice");
    assert_eq!(body["tokens"][0]["token"], "bob-token-1");
    assert_eq!(body["tokens"][0]["provider"], "fcm");
    assert!(
        hits.load(Ordering::SeqCst) >= 2,
        "the first attempt failed and was retried"
    );
    // The webhook hands the body over before the pusher has read its answer and counted it.
    let deadline = tokio::time::Instant::now() + WAIT;
    while stat(&s, "offline_push_sent_total").await != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the accepted post was counted as sent"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(bodies.try_recv().is_err(), "nothing for carol (muted)");

    // Bob online again: nothing is posted for him.
    let (_bob, _b2) = s.login(T, "bob", "dev-1").await;
    alice
        .send(to_bob, ContentType::Text, "welcome back".into())
        .await
        .unwrap();
    // A barrier: a later post for an offline user proves the earlier send was fan-out already.
    let (dave, _d) = s.register(T, "dave").await;
    dave.set_push_token("fcm", "dave-token").await.unwrap();
    let to_dave = alice
        .open_direct(PeerRef::User(dave.user_id()))
        .await
        .unwrap()
        .id;
    dave.close().await;
    online(&s, 2).await;
    alice
        .send(to_dave, ContentType::Text, "for dave".into())
        .await
        .unwrap();
    let body = tokio::time::timeout(WAIT, bodies.recv())
        .await
        .expect("posted in time")
        .unwrap();
    assert_eq!(
        body["user_id"],
        dave.user_id().to_string(),
        "bob was online"
    );
}
