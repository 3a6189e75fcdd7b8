//! Crash safety on the real binary (DESIGN.md, "Bad input and failure": a kill -9 at any moment
//! loses no acknowledged message, leaves the store openable and keeps seqs gapless).
//!
//! Four senders stream messages over TLS into their own 1:1 conversation with a shared receiver
//! and into one group of everyone, each keeping [`WINDOW`] sends in flight and recording every
//! ack as it arrives. Once the acks of the round reach its kill point the server gets SIGKILL
//! while sends are still in flight, and is started again on the same data dir. That it prints
//! its ready line proves the store reopened; then the whole history is read back through raw
//! sync pages as the receiver (a member of every conversation) and checked:
//!
//! - every acked message is stored at its acked seq with its id, sender, client_msg_id and
//!   content;
//! - per conversation the seqs are exactly 1..=head: no gap, no duplicate, in order;
//! - no send is stored twice; everything stored was sent, with the content it was sent with;
//! - one session's messages are stored in the order they were sent, and what a round stored of
//!   a sender's stream is a prefix of it (an fsync'd batch never follows a lost one);
//! - resending an acked client_msg_id answers the same seq and id with `duplicate`; resending
//!   a stored-but-unacked one (among the sender's last `IDEMPOTENCY_WINDOW`) does too; resending a lost one stores it at head + 1; new sends
//!   continue at head + 1.
//!
//! Rounds with different kill points run in the same data dir, so repeated crashes and
//! restarts are covered too; at the end a graceful stop and restart must keep everything.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use parley_client::{Client, ClientError, Transport};
use parley_protocol::frames::{
    AddPolicy, ContentType, ConversationEvent, Message, PeerRef, Request, Response, SendAck,
    SendRequest, SettingsChange, SyncRequest,
};
use parley_protocol::ids::{ClientMsgId, ConversationId, MessageId, Seq, UserId};
use parley_server::store::IDEMPOTENCY_WINDOW;
use tokio::sync::watch;

use common::binary::ServerProcess;
use common::WAIT;

/// Concurrent senders (each also a member of the group).
const SENDERS: usize = 4;
/// Sends each sender keeps in flight.
const WINDOW: usize = 32;
/// Acks received in a round before the server is killed: right at the first ack, early, and
/// deep into the stream (more batches, a bigger log to recover).
const KILL_POINTS: [usize; 5] = [1, 30, 300, 1500, 4000];
const PASSWORD: &str = "password-123";
/// Requested sync page size.
const PAGE: u32 = 1000;

/// Where a send was issued: in a round's stream (before a kill) or in the checks after a
/// restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Stream(usize),
    Probe(usize),
}

/// One send as issued (resends reuse it).
#[derive(Clone, Debug)]
struct Sent {
    sender: usize,
    /// Issue order of this sender's new sends, over the whole test.
    order: u64,
    phase: Phase,
    conversation: ConversationId,
    client_msg_id: ClientMsgId,
    content: Bytes,
}

impl Sent {
    fn request(&self) -> SendRequest {
        SendRequest {
            conversation: self.conversation,
            content_type: ContentType::Text,
            content: self.content.clone(),
            client_msg_id: self.client_msg_id.clone(),
            reply_to: Seq::ZERO,
            mentions: vec![],
            mention_all: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct AckedAt {
    seq: Seq,
    message_id: MessageId,
}

/// Key of a send: sender index and client_msg_id.
type Key = (usize, String);

/// What the test knows: the users, their conversations, everything sent and acked.
struct World {
    receiver: UserId,
    senders: Vec<UserId>,
    directs: Vec<ConversationId>,
    group: ConversationId,
    epoch: u64,
    sent: HashMap<Key, Sent>,
    acked: HashMap<Key, AckedAt>,
    next_order: Vec<u64>,
}

impl World {
    fn issue(&mut self, sender: usize, phase: Phase, conversation: ConversationId) -> Sent {
        let order = self.next_order[sender];
        self.next_order[sender] += 1;
        new_sent(sender, order, phase, conversation)
    }

    fn record_ack(&mut self, sent: &Sent, ack: &SendAck) {
        assert_eq!(
            ack.conversation, sent.conversation,
            "ack for another conversation"
        );
        let at = AckedAt {
            seq: ack.seq,
            message_id: ack.message_id,
        };
        let key = (sent.sender, sent.client_msg_id.to_string());
        if let Some(before) = self.acked.insert(key, at) {
            assert_eq!(before, at, "{sent:?} acked twice with different outcomes");
        }
    }

    fn sender_index(&self, user: UserId) -> Option<usize> {
        self.senders.iter().position(|u| *u == user)
    }
}

fn new_sent(sender: usize, order: u64, phase: Phase, conversation: ConversationId) -> Sent {
    let tag = match phase {
        Phase::Stream(r) => format!("r{r}"),
        Phase::Probe(r) => format!("p{r}"),
    };
    let client_msg_id = ClientMsgId::try_from(format!("s{sender}-{tag}-o{order}")).expect("id");
    // Some bulk, so batches span more than a page of the store's log.
    let content = format!("sender {sender} {tag} #{order} {}", "x".repeat(64));
    Sent {
        sender,
        order,
        phase,
        conversation,
        client_msg_id,
        content: Bytes::from(content),
    }
}

/// What one sender's stream produced before the server died.
struct StreamOutcome {
    issued: Vec<Sent>,
    acked: Vec<(Sent, SendAck)>,
    failure: Option<ClientError>,
}

/// Sends as fast as acks come back, [`WINDOW`] in flight, until a send fails (the server died)
/// or `limit` sends were issued; then collects what is still in flight.
async fn stream(client: Client, plan: Vec<Sent>, acks: Arc<watch::Sender<usize>>) -> StreamOutcome {
    let mut plan = plan.into_iter();
    let mut issued = Vec::new();
    let mut acked = Vec::new();
    let mut failure = None;
    let mut in_flight = FuturesUnordered::new();
    loop {
        while failure.is_none() && in_flight.len() < WINDOW {
            let Some(sent) = plan.next() else { break };
            issued.push(sent.clone());
            let client = client.clone();
            // Futures are first polled in push order, so sends reach the connection in issue
            // order (the ordering checks rely on it).
            in_flight.push(async move {
                let result = client.send_request(sent.request()).await;
                (sent, result)
            });
        }
        match tokio::time::timeout(WAIT, in_flight.next()).await {
            Err(_) => panic!("no ack and no error within {WAIT:?}"),
            Ok(None) => break,
            Ok(Some((sent, Ok(ack)))) => {
                acked.push((sent, ack));
                acks.send_modify(|n| *n += 1);
            }
            Ok(Some((_, Err(e)))) => {
                failure.get_or_insert(e);
            }
        }
    }
    StreamOutcome {
        issued,
        acked,
        failure,
    }
}

/// The store as the receiver sees it after a restart.
struct Snapshot {
    /// Per conversation, messages by seq.
    conversations: BTreeMap<ConversationId, Vec<Message>>,
    heads: HashMap<ConversationId, Seq>,
}

/// Reads every conversation of the receiver through raw sync pages.
async fn read_back(server: &ServerProcess, world: &World, label: &str) -> Snapshot {
    // Events are dropped: the SDK's own sync must not wait for a reader.
    let (receiver, _) = server
        .connect(
            Transport::Tls,
            "receiver",
            &format!("verify-{label}"),
            PASSWORD,
            false,
        )
        .await;
    assert_eq!(receiver.user_id(), world.receiver);
    let login = receiver.login_result();
    assert_eq!(
        login.epoch, world.epoch,
        "[{label}] the store's epoch changed: the data dir was not reopened as the same store"
    );
    let total_sent = world.sent.len();
    let max_pages = total_sent / PAGE as usize + 20;
    let mut positions: BTreeMap<ConversationId, Seq> = BTreeMap::new();
    let mut conversations: BTreeMap<ConversationId, Vec<Message>> = BTreeMap::new();
    let mut heads = HashMap::new();
    let mut pages = 0;
    loop {
        assert!(
            pages < max_pages,
            "[{label}] sync did not finish within {max_pages} pages"
        );
        pages += 1;
        let request = SyncRequest {
            epoch: world.epoch,
            positions: positions.iter().map(|(c, s)| (*c, *s)).collect(),
            limit: PAGE,
            from_conversation: None,
        };
        let response = match receiver.request(Request::Sync(request)).await {
            Ok(Response::Sync(r)) => r,
            other => panic!("[{label}] sync page {pages}: {other:?}"),
        };
        assert!(
            !response.reset,
            "[{label}] the server reported a reset store"
        );
        assert_eq!(response.epoch, world.epoch);
        for m in response.messages {
            let at = positions.entry(m.conversation).or_insert(Seq::ZERO);
            assert_eq!(
                m.seq,
                at.next(),
                "[{label}] conversation {}: after seq {at} came seq {} (gap, duplicate or \
                 disorder)",
                m.conversation,
                m.seq
            );
            *at = m.seq;
            if matches!(m.event.as_deref(), Some(ConversationEvent::Created { .. })) {
                continue; // the group's first entry, written by the server at its creation
            }
            conversations.entry(m.conversation).or_default().push(m);
        }
        for info in response.conversations {
            heads.insert(info.id, info.head);
        }
        if !response.has_more {
            break;
        }
    }
    receiver.close().await;
    for (conv, head) in &heads {
        let have = positions.get(conv).copied().unwrap_or(Seq::ZERO);
        assert_eq!(
            have, *head,
            "[{label}] conversation {conv}: head {head} but sync delivered up to {have}"
        );
    }
    Snapshot {
        conversations,
        heads,
    }
}

/// Checks the snapshot against everything the test sent and was acked. Returns, per send that
/// is stored, where.
fn check(world: &World, snapshot: &Snapshot, label: &str) -> HashMap<Key, AckedAt> {
    let mut expected: Vec<ConversationId> = world.directs.clone();
    expected.push(world.group);
    expected.sort();
    let mut present: Vec<ConversationId> = snapshot.heads.keys().copied().collect();
    present.sort();
    assert_eq!(present, expected, "[{label}] the receiver's conversations");

    let mut stored: HashMap<Key, AckedAt> = HashMap::new();
    let mut ids = HashMap::new();
    for (conv, messages) in &snapshot.conversations {
        for m in messages {
            let where_ = format!("[{label}] conversation {conv} seq {}", m.seq);
            if let Some(other) = ids.insert(m.id, (m.conversation, m.seq)) {
                panic!("{where_}: message id {} also used at {other:?}", m.id);
            }
            let sender = world
                .sender_index(m.sender)
                .unwrap_or_else(|| panic!("{where_}: unknown sender {}", m.sender));
            let key = (sender, m.client_msg_id.to_string());
            let sent = world
                .sent
                .get(&key)
                .unwrap_or_else(|| panic!("{where_}: {key:?} was never sent"));
            assert_eq!(m.conversation, sent.conversation, "{where_}: conversation");
            assert_eq!(m.content, sent.content, "{where_}: content");
            let at = AckedAt {
                seq: m.seq,
                message_id: m.id,
            };
            if let Some(first) = stored.insert(key.clone(), at) {
                panic!("{where_}: {key:?} is stored twice (also at {first:?})");
            }
        }
    }

    // Every ack is honoured.
    let mut missing = Vec::new();
    for (key, acked) in &world.acked {
        match stored.get(key) {
            Some(at) if at == acked => {}
            Some(at) => panic!("[{label}] {key:?} was acked as {acked:?} but is stored as {at:?}"),
            None => missing.push((key.clone(), world.sent[key].conversation, *acked)),
        }
    }
    if !missing.is_empty() {
        missing.sort_by_key(|(_, c, a)| (*c, a.seq));
        let heads: Vec<_> = snapshot.heads.iter().collect();
        panic!(
            "[{label}] {} acked messages are missing after the restart (heads {heads:?}); \
             first ones: {:?}",
            missing.len(),
            &missing[..missing.len().min(20)]
        );
    }

    // One session's messages are stored in issue order, per sender and conversation, up to the
    // reordering the SDK may do among the (at most WINDOW) sends a caller has in flight at once:
    // the SDK does not promise to put concurrent calls on the wire in call order ...
    let mut last: HashMap<(usize, ConversationId), (u64, Seq)> = HashMap::new();
    for messages in snapshot.conversations.values() {
        for m in messages {
            let sender = world.sender_index(m.sender).unwrap_or(usize::MAX);
            let sent = &world.sent[&(sender, m.client_msg_id.to_string())];
            if let Some((order, seq)) = last.insert((sender, m.conversation), (sent.order, m.seq)) {
                assert!(
                    order < sent.order + WINDOW as u64,
                    "[{label}] sender {sender} in conversation {}: #{} is stored at seq {} after \
                     #{order} at seq {seq}, though it was sent first",
                    m.conversation,
                    sent.order,
                    m.seq
                );
            }
        }
    }
    // ... and what a round's stream stored is a prefix of it (with the same allowance): no lost
    // batch before a kept one.
    let mut streams: HashMap<(usize, usize), Vec<&Sent>> = HashMap::new();
    for sent in world.sent.values() {
        if let Phase::Stream(round) = sent.phase {
            streams.entry((sent.sender, round)).or_default().push(sent);
        }
    }
    for ((sender, round), mut sends) in streams {
        sends.sort_by_key(|s| s.order);
        let flags: Vec<bool> = sends
            .iter()
            .map(|s| stored.contains_key(&(s.sender, s.client_msg_id.to_string())))
            .collect();
        let kept = flags.iter().take_while(|f| **f).count();
        if let Some(hole) = flags[kept..]
            .iter()
            .enumerate()
            .position(|(i, f)| *f && i >= WINDOW)
        {
            panic!(
                "[{label}] sender {sender} round {round}: send #{} is lost but the later #{} is \
                 stored",
                sends[kept].order,
                sends[kept + hole].order
            );
        }
    }
    stored
}

/// After a restart: resends (acked, stored-unacked, lost) and new sends behave as specified.
async fn probe(
    world: &mut World,
    clients: &[Client],
    stored: &HashMap<Key, AckedAt>,
    heads: &mut HashMap<ConversationId, Seq>,
    round: usize,
    label: &str,
) {
    for (i, client) in clients.iter().enumerate() {
        // The newest acked send: same seq and id, flagged duplicate.
        let newest_acked = world
            .sent
            .iter()
            .filter(|(k, _)| k.0 == i && world.acked.contains_key(*k))
            .map(|(_, s)| s)
            .max_by_key(|s| s.order)
            .cloned();
        if let Some(sent) = newest_acked {
            let key = (i, sent.client_msg_id.to_string());
            let ack = resend(client, &sent, label).await;
            let before = world.acked[&key];
            assert!(
                ack.duplicate,
                "[{label}] resent acked {key:?}: not a duplicate"
            );
            assert_eq!(
                (ack.seq, ack.message_id),
                (before.seq, before.message_id),
                "[{label}] resent acked {key:?}"
            );
        }
        // A send stored but never acked (the ack died with the server): the same, for the
        // oldest such send the server still recognises, i.e. among the sender's last
        // IDEMPOTENCY_WINDOW stored messages (the SDK re-sends its unacknowledged messages first
        // after a reconnect, so a real retry is always among them).
        let mut mine: Vec<&Sent> = world
            .sent
            .iter()
            .filter(|(k, _)| k.0 == i && stored.contains_key(*k))
            .map(|(_, s)| s)
            .collect();
        mine.sort_by_key(|s| s.order);
        let recent = mine[mine.len().saturating_sub(IDEMPOTENCY_WINDOW)..]
            .first()
            .map_or(0, |s| s.order);
        let stored_unacked = oldest(world, i, |k, s| {
            s.order >= recent && stored.contains_key(k) && !world.acked.contains_key(k)
        });
        if let Some(sent) = stored_unacked {
            let key = (i, sent.client_msg_id.to_string());
            let ack = resend(client, &sent, label).await;
            assert!(
                ack.duplicate,
                "[{label}] resent stored {key:?}: not a duplicate"
            );
            assert_eq!(
                AckedAt {
                    seq: ack.seq,
                    message_id: ack.message_id
                },
                stored[&key],
                "[{label}] resent stored {key:?}"
            );
            world.record_ack(&sent, &ack);
        }
        // The first send of this round's stream that was lost: stored now, at head + 1. (The
        // first one, so that the sender's messages stay in issue order.)
        let lost = oldest(world, i, |k, s| {
            s.phase == Phase::Stream(round) && !stored.contains_key(k)
        });
        if let Some(sent) = lost {
            let key = (i, sent.client_msg_id.to_string());
            let head = heads.entry(sent.conversation).or_insert(Seq::ZERO);
            let ack = resend(client, &sent, label).await;
            assert!(!ack.duplicate, "[{label}] resent lost {key:?}: duplicate?");
            assert_eq!(ack.seq, head.next(), "[{label}] resent lost {key:?}");
            *head = ack.seq;
            world.record_ack(&sent, &ack);
        }
        // A new message continues the conversation.
        let conv = world.directs[i];
        let sent = world.issue(i, Phase::Probe(round), conv);
        world
            .sent
            .insert((i, sent.client_msg_id.to_string()), sent.clone());
        let ack = resend(client, &sent, label).await;
        let head = heads.entry(conv).or_insert(Seq::ZERO);
        assert!(!ack.duplicate);
        assert_eq!(ack.seq, head.next(), "[{label}] new send in {conv}");
        *head = ack.seq;
        world.record_ack(&sent, &ack);
    }
    let group = world.group;
    let sent = world.issue(0, Phase::Probe(round), group);
    world
        .sent
        .insert((0, sent.client_msg_id.to_string()), sent.clone());
    let ack = resend(&clients[0], &sent, label).await;
    let head = heads.entry(group).or_insert(Seq::ZERO);
    assert_eq!(ack.seq, head.next(), "[{label}] new send in the group");
    *head = ack.seq;
    world.record_ack(&sent, &ack);
}

/// The earliest-issued send of `sender` matching `pred`.
fn oldest(world: &World, sender: usize, pred: impl Fn(&Key, &Sent) -> bool) -> Option<Sent> {
    world
        .sent
        .iter()
        .filter(|(k, s)| k.0 == sender && pred(k, s))
        .map(|(_, s)| s)
        .min_by_key(|s| s.order)
        .cloned()
}

async fn resend(client: &Client, sent: &Sent, label: &str) -> SendAck {
    tokio::time::timeout(WAIT, client.send_request(sent.request()))
        .await
        .unwrap_or_else(|_| panic!("[{label}] send {} timed out", sent.client_msg_id))
        .unwrap_or_else(|e| panic!("[{label}] send {}: {e}", sent.client_msg_id))
}

async fn log_in_senders(server: &ServerProcess, round: usize) -> Vec<Client> {
    let mut clients = Vec::new();
    for i in 0..SENDERS {
        let (c, _) = server
            .connect(
                Transport::Tls,
                &format!("sender{i}"),
                &format!("dev-r{round}"),
                PASSWORD,
                false,
            )
            .await;
        clients.push(c);
    }
    clients
}

/// Restart, read back, check, probe: returns the new server and the logged-in senders.
async fn restart_and_check(
    dir: &std::path::Path,
    world: &mut World,
    round: usize,
    label: &str,
) -> (ServerProcess, Vec<Client>) {
    let started = tokio::time::Instant::now();
    // Printing the ready line means the store opened.
    let server = ServerProcess::start(dir).await;
    let snapshot = read_back(&server, world, label).await;
    let stored = check(world, &snapshot, label);
    let unacked_stored = stored
        .keys()
        .filter(|k| !world.acked.contains_key(*k))
        .count();
    eprintln!(
        "[{label}] store reopened and checked in {:?}: {} messages stored ({} acked, {} stored \
         without an ack), {} sends lost unacked; heads {:?}",
        started.elapsed(),
        stored.len(),
        world.acked.len(),
        unacked_stored,
        world.sent.len() - stored.len(),
        snapshot.heads
    );
    let mut heads = snapshot.heads.clone();
    let clients = log_in_senders(&server, round).await;
    probe(world, &clients, &stored, &mut heads, round, label).await;
    (server, clients)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_messages_survive_kill_9_at_any_point() {
    let test_start = tokio::time::Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = ServerProcess::start(dir.path()).await;

    // Users and conversations.
    let (receiver, _) = server
        .connect(Transport::Tls, "receiver", "dev-1", PASSWORD, true)
        .await;
    let epoch = receiver.login_result().epoch;
    let mut clients = Vec::new();
    let mut senders = Vec::new();
    let mut directs = Vec::new();
    for i in 0..SENDERS {
        let (c, _) = server
            .connect(
                Transport::Tls,
                &format!("sender{i}"),
                "dev-r0",
                PASSWORD,
                true,
            )
            .await;
        let conv = c
            .open_direct(PeerRef::User(receiver.user_id()))
            .await
            .expect("open direct");
        senders.push(c.user_id());
        directs.push(conv.id);
        clients.push(c);
    }
    let mut members = senders.clone();
    members.push(receiver.user_id());
    // Group adds need consent (docs/security.md): the members accept being put in by anyone.
    for c in clients.iter().chain(std::iter::once(&receiver)) {
        c.update_settings(accept_anyone())
            .await
            .expect("accept group adds");
    }
    let group = clients[0]
        .create_group("everyone", members)
        .await
        .expect("create group")
        .id;
    let mut world = World {
        receiver: receiver.user_id(),
        senders,
        directs,
        group,
        epoch,
        sent: HashMap::new(),
        acked: HashMap::new(),
        next_order: vec![0; SENDERS],
    };
    receiver.close().await;

    for (round, &base) in KILL_POINTS.iter().enumerate() {
        // Up to half again, at random: different CI runs kill at different moments (the
        // point actually used is printed).
        let kill_point = base + rand::random::<usize>() % (base / 2 + 1);
        let round_start = tokio::time::Instant::now();
        // Each sender alone could reach the kill point and then some: the kill always lands
        // mid-stream, with sends in flight.
        let (acks_tx, mut acks_rx) = watch::channel(0usize);
        let acks_tx = Arc::new(acks_tx);
        let mut tasks = Vec::new();
        for (i, client) in clients.iter().enumerate() {
            let plan: Vec<Sent> = (0..kill_point + 8 * WINDOW)
                .map(|n| {
                    let conv = if n % 4 == 3 {
                        world.group
                    } else {
                        world.directs[i]
                    };
                    world.issue(i, Phase::Stream(round), conv)
                })
                .collect();
            tasks.push(tokio::spawn(stream(client.clone(), plan, acks_tx.clone())));
        }
        let reached = tokio::time::timeout(WAIT, acks_rx.wait_for(|n| *n >= kill_point))
            .await
            .is_ok_and(|r| r.is_ok());
        assert!(
            reached,
            "round {round}: {} acks within {WAIT:?}, wanted {kill_point}",
            *acks_rx.borrow()
        );
        let status = server.kill9().await;
        let at_kill = *acks_rx.borrow();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "killed by SIGKILL"
        );

        let mut failed = 0;
        for task in tasks {
            let outcome = tokio::time::timeout(WAIT, task)
                .await
                .expect("sender stops once the server is gone")
                .expect("sender task");
            for sent in &outcome.issued {
                let key = (sent.sender, sent.client_msg_id.to_string());
                world.sent.insert(key, sent.clone());
            }
            for (sent, ack) in &outcome.acked {
                assert!(
                    !ack.duplicate,
                    "round {round}: a fresh send was a duplicate"
                );
                world.record_ack(sent, ack);
            }
            if let Some(e) = outcome.failure {
                assert!(
                    matches!(e, ClientError::Disconnected | ClientError::Closed),
                    "round {round}: a send failed with {e}"
                );
                failed += 1;
            }
        }
        assert!(
            failed > 0,
            "round {round}: no send was in flight at the kill"
        );
        for c in &clients {
            c.close().await;
        }
        eprintln!(
            "[round {round}] killed after {at_kill} acks (kill point {kill_point}), {:?} into \
             the round; {} acked so far",
            round_start.elapsed(),
            world.acked.len()
        );

        let label = format!("after kill {round}");
        (server, clients) = restart_and_check(dir.path(), &mut world, round, &label).await;
    }

    // A graceful stop after all the crashes, and one more reopen: still everything.
    for c in &clients {
        c.close().await;
    }
    let status = server.terminate().await;
    assert!(status.success(), "graceful stop: {status:?}");
    let (server, clients) = restart_and_check(
        dir.path(),
        &mut world,
        KILL_POINTS.len(),
        "after clean stop",
    )
    .await;
    for c in &clients {
        c.close().await;
    }
    let status = server.terminate().await;
    assert!(status.success(), "graceful stop: {status:?}");
    eprintln!("crash test took {:?}", test_start.elapsed());
}

/// What a client was told is done before a crash must not be undone by it either: an account
/// whose registration was answered, the token it got, and the conversations created.
///
/// The server answers these only after a committer barrier (one shared fsync); without it a
/// kill -9 before the next flush lost them and a reconnecting SDK was refused with `AuthFailed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_registrations_and_conversations_survive_kill_9() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start(dir.path()).await;
    let (alice, _) = server
        .connect(Transport::Tls, "alice", "dev-1", PASSWORD, true)
        .await;
    let (bob, _) = server
        .connect(Transport::Tls, "bobby", "dev-1", PASSWORD, true)
        .await;
    let token = alice.login_result().access_token;
    let direct = alice
        .open_direct(PeerRef::User(bob.user_id()))
        .await
        .expect("open direct")
        .id;
    bob.update_settings(accept_anyone())
        .await
        .expect("accept group adds");
    let group = alice
        .create_group("pair", vec![bob.user_id()])
        .await
        .expect("create group")
        .id;
    server.kill9().await;

    let server = ServerProcess::start(dir.path()).await;
    let connect = |credentials| {
        parley_client::Client::connect(server.client_config(Transport::Tls, "dev-1"), credentials)
    };
    let by_token = connect(parley_client::Credentials::Token(token)).await;
    assert!(
        by_token.is_ok(),
        "the access token from before the crash: {:?}",
        by_token.err()
    );
    let (bob, _) = server
        .connect(Transport::Tls, "bobby", "dev-2", PASSWORD, false)
        .await;
    let sync = SyncRequest {
        epoch: 0,
        positions: vec![],
        limit: PAGE,
        from_conversation: None,
    };
    let Ok(Response::Sync(page)) = bob.request(Request::Sync(sync)).await else {
        panic!("sync failed");
    };
    let mut have: Vec<ConversationId> = page.conversations.iter().map(|c| c.id).collect();
    have.sort();
    let mut want = vec![direct, group];
    want.sort();
    assert_eq!(have, want, "bob's conversations after the crash");
}

/// Settings that let anyone put the user into groups (group adds need consent by default).
fn accept_anyone() -> SettingsChange {
    SettingsChange {
        add_policy: Some(AddPolicy::Anyone),
        ..Default::default()
    }
}
