//! Full-text search over a real server: words in any case, Chinese by characters, only the
//! caller's conversations, newest first with paging, edits and recalls followed, and the index
//! rebuilt from the log when its directory is deleted.
#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

mod common;

use common::{TestServer, WAIT};
use parley_client::{Client, HistoryPage, Transport};
use parley_protocol::frames::{ContentType, PeerRef};

const T: Transport = Transport::Tls;

/// Searches until `want(page)` holds: the index follows the log within a fraction of a second.
async fn until(
    c: &Client,
    query: &str,
    limit: u32,
    want: impl Fn(&HistoryPage) -> bool,
) -> HistoryPage {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let page = c.search_messages(query, None, 0, limit).await.unwrap();
        if want(&page) {
            return page;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "search {query:?} never gave what was expected: {page:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn texts(p: &HistoryPage) -> Vec<String> {
    p.messages
        .iter()
        .map(|m| String::from_utf8_lossy(&m.content).into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_found_by_words_and_characters_within_ones_conversations() {
    let s = TestServer::start().await;
    let (alice, _a) = s.register(T, "alice").await;
    let (bob, _b) = s.register(T, "bob").await;
    let (carol, _c) = s.register(T, "carol").await;
    let d = alice
        .open_direct(PeerRef::User(bob.user_id()))
        .await
        .unwrap()
        .id;
    let g = alice
        .create_group("g", vec![carol.user_id()])
        .await
        .unwrap()
        .id;
    let say = |conv, text: &str| {
        let text = bytes::Bytes::from(text.to_owned());
        let alice = &alice;
        async move { alice.send(conv, ContentType::Text, text).await.unwrap() }
    };
    say(d, "the quick brown fox").await;
    let hello = say(d, "Hello World").await;
    say(d, "你好世界").await;
    say(d, "rust编程很有趣").await;
    let story = say(d, "another fox story").await;
    say(g, "a fox in the group").await;

    let page = until(&bob, "FOX", 10, |p| p.messages.len() == 2).await;
    assert_eq!(texts(&page), ["another fox story", "the quick brown fox"]);
    assert_eq!(
        texts(&until(&bob, "世界", 10, |p| !p.messages.is_empty()).await),
        ["你好世界"]
    );
    assert_eq!(
        texts(&until(&bob, "编程", 10, |p| !p.messages.is_empty()).await),
        ["rust编程很有趣"]
    );
    assert!(bob
        .search_messages("界世", None, 0, 10)
        .await
        .unwrap()
        .messages
        .is_empty());
    // Only one's own conversations: carol sees the group's fox, not the 1:1 ones.
    let page = until(&carol, "fox", 10, |p| !p.messages.is_empty()).await;
    assert_eq!(texts(&page), ["a fox in the group"]);
    // One conversation only, and paging.
    let only_d = alice.search_messages("fox", Some(d), 0, 1).await.unwrap();
    assert_eq!(texts(&only_d), ["another fox story"]);
    assert!(only_d.has_more);
    let before = only_d.messages[0].id.get();
    let next = alice
        .search_messages("fox", Some(d), before, 1)
        .await
        .unwrap();
    assert_eq!(texts(&next), ["the quick brown fox"]);
    assert_eq!(
        alice
            .search_messages("fox", Some(g), 0, 10)
            .await
            .unwrap()
            .messages
            .len(),
        1
    );
    // Not a member: refused like an unknown conversation.
    assert!(bob.search_messages("fox", Some(g), 0, 10).await.is_err());

    // Edits and recalls are followed.
    alice
        .edit_message(d, hello.seq, "Goodbye Moon")
        .await
        .unwrap();
    alice.recall_message(d, story.seq).await.unwrap();
    until(&bob, "hello", 10, |p| p.messages.is_empty()).await;
    let page = until(&bob, "goodbye", 10, |p| !p.messages.is_empty()).await;
    assert_eq!(texts(&page), ["Goodbye Moon"]);
    until(&bob, "fox", 10, |p| p.messages.len() == 1).await;

    // The index is derived from the log: deleted, it is rebuilt at the next start.
    drop((alice, bob, carol));
    let dir = s.stop().await;
    std::fs::remove_dir_all(dir.path().join("search")).unwrap();
    let s = TestServer::start_in(dir).await;
    let (bob, _b) = s.login(T, "bob", "dev-2").await;
    let page = until(&bob, "fox", 10, |p| p.messages.len() == 1).await;
    assert_eq!(texts(&page), ["the quick brown fox"]);
    until(&bob, "goodbye", 10, |p| p.messages.len() == 1).await;
}
