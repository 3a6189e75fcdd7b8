//! A group of 2,000 members over a real server: one send reaches every online member, and
//! costs the store exactly the writes it costs in a 2-member group (nothing is written per
//! member), as `/api/v1/stats` counts them. Members are guests (no password hashing) on plain
//! TCP connections, so the test stays quick.
#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

mod common;

use bytes::Bytes;
use common::raw::Raw;
use common::{stat, TestServer};
use futures::future::join_all;
use parley_protocol::frames::{
    ContentType, Device, Platform, Push, Request, Response, SendRequest, ServerFrame,
};
use parley_protocol::ids::{ClientMsgId, ConversationId, DeviceId, Seq, UserId};

const MEMBERS: usize = 2_000;

async fn guest(s: &TestServer, n: usize) -> (Raw, UserId) {
    let mut raw = Raw::connect(s.tcp).await;
    raw.send(
        1,
        Request::GuestLogin {
            device: Device {
                id: DeviceId::try_from(format!("d{n}")).unwrap(),
                platform: Platform::Cli,
            },
            nickname: String::new(),
        },
    )
    .await;
    match raw.response(1).await {
        Response::Login(l) => (raw, l.user),
        other => panic!("{other:?}"),
    }
}

async fn send_n(raw: &mut Raw, conv: ConversationId, n: u64, tag: &str) -> Seq {
    let mut seq = Seq::ZERO;
    for i in 0..n {
        let id = 100 + i;
        raw.send(
            id,
            Request::Send(SendRequest {
                conversation: conv,
                content_type: ContentType::Text,
                content: Bytes::from(format!("{tag} {i}")),
                client_msg_id: ClientMsgId::try_from(format!("{tag}-{i}")).unwrap(),
                reply_to: Seq::ZERO,
                mentions: vec![],
                mention_all: false,
            }),
        )
        .await;
        match raw.response(id).await {
            Response::SendAck(a) => seq = a.seq,
            other => panic!("{other:?}"),
        }
    }
    seq
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_to_two_thousand_members_costs_what_it_costs_for_two() {
    let s = TestServer::start().await;
    // The owner registers (a real account: guests may not create groups), then sends from a
    // raw connection.
    let (owner, _) = s.register(parley_client::Transport::Tls, "owner").await;
    owner.close().await;
    let mut sender = Raw::connect(s.tcp).await;
    sender
        .send(
            1,
            Request::Login {
                credential: parley_protocol::frames::Credential::Password {
                    account: "owner".try_into().unwrap(),
                    password: "password-123".try_into().unwrap(),
                },
                device: Device {
                    id: DeviceId::try_from("sender").unwrap(),
                    platform: Platform::Cli,
                },
            },
        )
        .await;
    assert!(matches!(sender.response(1).await, Response::Login(_)));

    let mut members = Vec::with_capacity(MEMBERS - 1);
    for chunk in (0..MEMBERS - 1).collect::<Vec<_>>().chunks(100) {
        members.extend(join_all(chunk.iter().map(|n| guest(&s, *n))).await);
    }
    let ids: Vec<UserId> = members.iter().map(|(_, u)| *u).collect();

    let create = |name: &str, members: Vec<UserId>| Request::CreateGroup {
        name: name.try_into().unwrap(),
        members,
    };
    sender.send(2, create("pair", vec![ids[0]])).await;
    let Response::Conversation(pair) = sender.response(2).await else {
        panic!("pair");
    };
    sender.send(3, create("everyone", ids.clone())).await;
    let Response::Conversation(big) = sender.response(3).await else {
        panic!("big group");
    };
    assert_eq!(big.members.len(), MEMBERS);

    // The same number of sends in each, writes counted around each.
    const SENDS: u64 = 20;
    let before = stat(&s, "store_writes_total").await;
    send_n(&mut sender, pair.id, SENDS, "pair").await;
    let pair_writes = stat(&s, "store_writes_total").await - before;
    let before = stat(&s, "store_writes_total").await;
    let last = send_n(&mut sender, big.id, SENDS, "big").await;
    let big_writes = stat(&s, "store_writes_total").await - before;
    assert_eq!(pair_writes, SENDS, "one log record per message");
    assert_eq!(big_writes, pair_writes, "no write per member");

    // Every online member got the last message.
    let reached = join_all(members.iter_mut().map(|(raw, _)| async move {
        loop {
            match raw.recv().await {
                Some(ServerFrame::Push(Push::Message(m))) if m.conversation == big.id => {
                    if m.seq == last {
                        return true;
                    }
                }
                Some(_) => continue,
                None => return false,
            }
        }
    }))
    .await;
    assert_eq!(reached.iter().filter(|r| **r).count(), MEMBERS - 1);
}
