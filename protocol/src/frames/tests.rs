use bytes::{Bytes, BytesMut};
use prost::Message as _;

use super::*;
use crate::codec::FrameCodec;
use crate::error::{DecodeError, ErrorCode};
use crate::ids::*;
use crate::wire as w;

fn body_of(encoded: Bytes) -> Bytes {
    let mut buf = BytesMut::from(&encoded[..]);
    FrameCodec::new(1 << 20).decode(&mut buf).unwrap().unwrap()
}

fn device() -> Device {
    Device {
        id: DeviceId::try_from("phone-1").unwrap(),
        platform: Platform::Ios,
    }
}

#[test]
fn requests_round_trip() {
    let conv = ConversationId::try_from(9).unwrap();
    let requests = vec![
        Request::Register {
            account: Account::try_from("alice").unwrap(),
            password: crate::values::NewPassword::try_from("correct horse").unwrap(),
            device: device(),
        },
        Request::Login {
            credential: Credential::AccessToken("tok".into()),
            device: device(),
        },
        Request::Send(SendRequest {
            conversation: conv,
            content_type: ContentType::Text,
            content: Bytes::from_static(b"hi"),
            client_msg_id: ClientMsgId::try_from("c1").unwrap(),
            reply_to: Seq(3),
            mentions: vec![UserId::try_from(4).unwrap()],
            mention_all: false,
        }),
        Request::CursorAck {
            conversation: conv,
            kind: CursorKind::Read,
            seq: Seq(5),
        },
        Request::Sync(SyncRequest {
            epoch: 77,
            positions: vec![(conv, Seq(2))],
            limit: 10,
            from_conversation: Some(conv),
        }),
        Request::OpenDirect(PeerRef::Account(Account::try_from("bob").unwrap())),
        Request::Logout,
        Request::GetCall { call: 12 },
        Request::CreateMeeting {
            title: "standup".into(),
            password: "pw".into(),
            max_participants: 10,
        },
        Request::JoinMeeting {
            meeting: 7,
            password: String::new(),
        },
        Request::EndMeeting { meeting: 7 },
        Request::GetMeeting { meeting: 7 },
        Request::ListMeetings {
            offset: 3,
            limit: 20,
        },
        Request::CreateGroup {
            name: crate::values::GroupName::try_from("team").unwrap(),
            members: vec![UserId::try_from(4).unwrap()],
        },
        Request::ChangeMembers {
            conversation: conv,
            add: vec![UserId::try_from(4).unwrap()],
            remove: vec![],
            request_key: Some(ClientMsgId::try_from("k1").unwrap()),
        },
        Request::ChangeMembers {
            conversation: conv,
            add: vec![],
            remove: vec![UserId::try_from(5).unwrap()],
            request_key: None,
        },
        Request::ListConversations {
            limit: 20,
            offset: 40,
        },
    ];
    for (i, request) in requests.into_iter().enumerate() {
        let frame = ClientFrame {
            request_id: RequestId::try_from(i as u64 + 1).unwrap(),
            request,
        };
        let decoded = ClientFrame::decode(body_of(frame.clone().encode())).unwrap();
        assert_eq!(decoded, frame);
    }
}

#[test]
fn server_frames_round_trip() {
    let msg = Message {
        id: MessageId::try_from(1).unwrap(),
        conversation: ConversationId::try_from(2).unwrap(),
        seq: Seq(1),
        sender: UserId::try_from(3).unwrap(),
        sender_device: DeviceId::try_from("d").unwrap(),
        content_type: ContentType::Text,
        content: Bytes::from_static(b"x"),
        client_msg_id: ClientMsgId::try_from("c").unwrap(),
        server_time_ms: 1234,
        reply_to: Seq::ZERO,
        mentions: vec![],
        event: None,
        amended: None,
        thread_root: Default::default(),
        forwarded_from: None,
        mention_all: false,
    };
    assert_eq!(Message::from_bytes(&msg.to_bytes()).unwrap(), msg);
    let event = Message {
        content_type: ContentType::System,
        content: Bytes::new(),
        event: Some(Box::new(crate::frames::ConversationEvent::Membership {
            added: vec![UserId::try_from(7).unwrap()],
            removed: vec![UserId::try_from(8).unwrap()],
        })),
        ..msg.clone()
    };
    assert_eq!(Message::from_bytes(&event.to_bytes()).unwrap(), event);
    // The head decode reads the same ids and position as the full one, events included.
    for m in [&msg, &event] {
        let head = Message::head_from_bytes(&m.to_bytes()).unwrap();
        assert_eq!(
            (head.id, head.conversation, head.seq, head.sender),
            (m.id, m.conversation, m.seq, m.sender)
        );
    }
    assert!(Message::head_from_bytes(&[0xff]).is_err());
    // Out of tag order (not how prost writes) it decodes the same.
    let mut reordered = vec![0x20, 9, 0x18, 3, 0x10, 2, 0x08, 1];
    reordered.extend_from_slice(&[0x3a, 1, b'x']);
    let head = Message::head_from_bytes(&reordered).unwrap();
    assert_eq!(
        (
            head.id.get(),
            head.conversation.get(),
            head.seq.get(),
            head.sender.get()
        ),
        (1, 2, 3, 9)
    );
    // A head field repeated after another field: the full decode takes the last value, and so
    // does the head (found by the store_records fuzz target).
    let mut repeated = msg.to_bytes().to_vec();
    repeated.extend_from_slice(&[0x18, 77, 0x08, 55]);
    let full = Message::from_bytes(&repeated).unwrap();
    let head = Message::head_from_bytes(&repeated).unwrap();
    assert_eq!((full.seq.get(), full.id.get()), (77, 55));
    assert_eq!(
        (head.id, head.conversation, head.seq, head.sender),
        (full.id, full.conversation, full.seq, full.sender)
    );
    // A zero (absent) id is refused either way.
    assert!(Message::head_from_bytes(&[0x10, 2, 0x18, 3, 0x20, 9]).is_err());
    for frame in [
        ServerFrame::Push(Push::Message(msg.clone())),
        ServerFrame::Push(Push::Message(event)),
        ServerFrame::Response(
            RequestId::try_from(6).unwrap(),
            Response::ConversationList {
                conversations: vec![],
                total_unread: 3,
                total: 7,
            },
        ),
        ServerFrame::Push(Push::SyncNeeded),
        ServerFrame::Response(
            RequestId::try_from(5).unwrap(),
            Response::Error(ErrorInfo::new(ErrorCode::Forbidden, "no")),
        ),
        ServerFrame::error(0, ErrorInfo::new(ErrorCode::BadFrame, "bad")),
    ] {
        assert_eq!(
            ServerFrame::decode(body_of(frame.clone().encode())).unwrap(),
            frame
        );
    }
}

#[test]
fn bad_client_frames_are_rejected_with_their_request_id() {
    // Not protobuf at all.
    let e = ClientFrame::decode(Bytes::from_static(&[0xff, 0xff, 0xff])).unwrap_err();
    assert_eq!(e.request_id, 0);
    assert_eq!(e.error.code(), ErrorCode::BadFrame);

    // Request id 0.
    let f = w::Frame {
        request_id: 0,
        body: Some(w::frame::Body::Ping(w::Ping { client_time_ms: 1 })),
    };
    let e = ClientFrame::decode(f.encode_to_vec().into()).unwrap_err();
    assert_eq!(e.error.code(), ErrorCode::BadRequestId);

    // Zero conversation id.
    let f = w::Frame {
        request_id: 8,
        body: Some(w::frame::Body::Typing(w::Typing { conversation_id: 0 })),
    };
    let e = ClientFrame::decode(f.encode_to_vec().into()).unwrap_err();
    assert_eq!(e.request_id, 8);
    assert!(matches!(e.error, DecodeError::Invalid(_)));

    // A push sent by a client.
    let f = w::Frame {
        request_id: 9,
        body: Some(w::frame::Body::SyncNeeded(w::SyncNeeded {})),
    };
    let e = ClientFrame::decode(f.encode_to_vec().into()).unwrap_err();
    assert_eq!(e.error.code(), ErrorCode::BadFrame);
}

proptest::proptest! {
    /// Arbitrary bytes never panic the decoders.
    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(0u8..=255, 0..256)) {
        let _ = ClientFrame::decode(Bytes::from(bytes.clone()));
        let _ = Message::head_from_bytes(&bytes);
        let _ = ServerFrame::decode(Bytes::from(bytes));
    }
}
