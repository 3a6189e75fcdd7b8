//! The authorization matrix (issue 15): every operation of the protocol against every relation
//! between the caller and its target, with the answer the server must give, from one table.
//!
//! One real server on port 0 (fresh temp data dir, production rules: group adds need consent),
//! reached over TLS with raw frame clients. The setup builds every relation once:
//!
//! - `alice` (the caller of the first five columns) is friends with `fred`, a stranger to `sam`,
//!   blocked by `bob`, and has blocked `cat` herself; she has a notices conversation (fred's
//!   friend request);
//! - the group `g` is owned by `olga`, with `mia` as manager, `max` and `xav` as plain members,
//!   a guest account as a member, `rob`, who joined and left again, `kim`, who joined and was
//!   removed by `mia`, and `moe`, a plain member muted (for an hour) by `olga`;
//! - the group `d`, owned by `olga` with `dan` as a plain member, was disbanded by `olga` after
//!   she wrote, called and shared a file in it (`dan` stays a member of it);
//! - `zed` logged in and was then banned through the admin API (his session must be closed).
//!
//! Columns (the caller acting on its target):
//!
//! | column | caller | user target | conversation target | message target |
//! |---|---|---|---|---|
//! | self | alice | alice | her notices | her own message in her 1:1 with fred |
//! | friend | alice | fred | her 1:1 with fred | fred's message there |
//! | stranger | alice | sam | a 1:1 of sam and fred (group ops: `g`, which she never joined) | sam's message in it |
//! | blocked | alice | bob (who blocked her) | her 1:1 with bob | bob's message there (sent before the block) |
//! | blocking | alice | cat (whom she blocked) | her 1:1 with cat | cat's message there (sent before the block) |
//! | member, removed, manager, owner | max, rob, mia, olga | — | `g` | xav's message in `g` |
//! | guest | the guest | sam | `g` (it is a member) | xav's message in `g` |
//! | banned | zed, on a fresh connection (his login is refused) | sam | `g` | xav's message in `g` |
//! | muted | moe | — | `g` | xav's message in `g` (recall: his own, sent before the mute) |
//! | disbanded | dan | — | `d` (forward: into his 1:1 with olga) | olga's message in `d` |
//! | kicked | kim | — | `g` | xav's message in `g` |
//!
//! Group roles and states (member, removed, manager, owner, muted, disbanded, kicked) relate a
//! user to a group, not to another user: for operations on users, on the caller's own state, on
//! meetings and on sessions, those columns are `n/a` (a co-member is a stranger to user
//! operations, which the stranger column covers). A muted member reads like any member but
//! gets `MUTED` on the writes of the write gate (docs/protocol.md section 16); a disbanded
//! group stays readable to its members and answers every write and management request
//! `DISBANDED` (section 17, "Disbanding"); a member removed by a manager is in the state of one
//! who left (`NOT_FOUND`). Operations that end the caller's session (`Logout`,
//! `ChangePassword`, signing out the current device) run their `self` and `guest` cells on a
//! fresh session of a throwaway user or guest.
//!
//! The table must list exactly the client requests of `Frame`'s `oneof body` in
//! proto/parley/v1/parley.proto, and every row's request is classified by an exhaustive `match`
//! over `Request` (no wildcard arm): a new request fails this test (or its compilation) until it
//! has a row. A second test checks that a member who joined late reaches nothing from before
//! its join. Run: `cargo test -p parley-server --test authz_matrix`.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use common::raw::Raw;
use common::{TestServer, WAIT};
use parley_client::Transport;
use parley_protocol::frames::{
    AddPolicy, CallAction, CallMedia, CallSignal, ContentType, ConversationKind, ConversationPrefs,
    Credential, CursorKind, Device, FileId, GoAwayReason, GroupProfileChange, MemberRole, NewFile,
    PeerRef, Platform, PresenceStatus, ProfileChange, Push, Request, Response, SendRequest,
    ServerFrame, SettingsChange, SyncRequest, UploadToken,
};
use parley_protocol::ids::{Account, ClientMsgId, ConversationId, DeviceId, Seq, UserId};
use parley_protocol::values::{GroupName, NewPassword, Password};
use parley_protocol::ErrorCode;

const T: Transport = Transport::Tls;
const PASSWORD: &str = "password-123";
const ADMIN_TOKEN: &str = "authz-matrix-admin-token-0123";
/// The device of the throwaway sessions of rows that end their session.
const FRESH_DEVICE: &str = "t-fresh";

// ---- the relations ------------------------------------------------------------------------

/// How the caller relates to the target of the operation (the columns of the table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Rel {
    Myself,
    Friend,
    Stranger,
    Blocked,
    Blocking,
    Member,
    Removed,
    Manager,
    Owner,
    Guest,
    Banned,
    Muted,
    Disbanded,
    Kicked,
}

const RELS: [Rel; 14] = [
    Rel::Myself,
    Rel::Friend,
    Rel::Stranger,
    Rel::Blocked,
    Rel::Blocking,
    Rel::Member,
    Rel::Removed,
    Rel::Manager,
    Rel::Owner,
    Rel::Guest,
    Rel::Banned,
    Rel::Muted,
    Rel::Disbanded,
    Rel::Kicked,
];

/// The answer a cell expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    /// Any response that is not an `Error`.
    Ok,
    /// An `Error` with this code.
    Err(ErrorCode),
    /// The relation cannot apply to this operation (the row's comment says why).
    Na,
}

const OK: Want = Want::Ok;
const NA: Want = Want::Na;
const NF: Want = Want::Err(ErrorCode::NotFound);
const FB: Want = Want::Err(ErrorCode::Forbidden);
const BL: Want = Want::Err(ErrorCode::Blocked);
const IA: Want = Want::Err(ErrorCode::InvalidArgument);
const UN: Want = Want::Err(ErrorCode::Unauthenticated);
const AF: Want = Want::Err(ErrorCode::AuthFailed);
const ALI: Want = Want::Err(ErrorCode::AlreadyLoggedIn);
const CONFLICT: Want = Want::Err(ErrorCode::Conflict);
const BANNED: Want = Want::Err(ErrorCode::Banned);
const MU: Want = Want::Err(ErrorCode::Muted);
const DB: Want = Want::Err(ErrorCode::Disbanded);

/// One operation: its proto field name, the expected answer per relation (in [`RELS`] order),
/// the request per relation, an optional request that undoes a success (sent by the same
/// caller, so later rows find the relations intact), and the columns that run on a throwaway
/// session because the operation ends the session it runs on.
struct Row {
    op: &'static str,
    want: [Want; 14],
    build: fn(&World, Rel) -> Request,
    undo: Option<Undo>,
    fresh: &'static [Rel],
}

/// Undoes a cell's success (`None`: nothing to undo for that relation).
type Undo = fn(&World, Rel, &Response) -> Option<Request>;

const fn row(op: &'static str, want: [Want; 14], build: fn(&World, Rel) -> Request) -> Row {
    Row {
        op,
        want,
        build,
        undo: None,
        fresh: &[],
    }
}

/// Only the caller itself (its own state, no target), a guest doing the same, and a banned
/// account (whose login is refused, so it never gets past `UNAUTHENTICATED`).
const CALLER_ONLY: [Want; 14] = [OK, NA, NA, NA, NA, NA, NA, NA, NA, OK, UN, NA, NA, NA];
/// As [`CALLER_ONLY`], refused to guests.
const CALLER_ONLY_NO_GUESTS: [Want; 14] = [OK, NA, NA, NA, NA, NA, NA, NA, NA, FB, UN, NA, NA, NA];
/// Reading a conversation: members only (notices, a blocked 1:1, a muted member and a
/// disbanded group included).
const READ_CONV: [Want; 14] = [OK, OK, NF, OK, OK, OK, NF, OK, OK, OK, UN, OK, OK, NF];

// `[self, friend, stranger, blocked, blocking, member, removed, manager, owner, guest, banned,
//   muted, disbanded, kicked]`
const TABLE: &[Row] = &[
    // ---- sessions and accounts (section 4, 21) ----
    // Login-type requests on a logged-in session; a banned account on a fresh connection.
    // Group columns: n/a (a session is the caller's own, whatever groups it is in).
    row(
        "register",
        [
            ALI, NA, NA, NA, NA, NA, NA, NA, NA, ALI, CONFLICT, NA, NA, NA,
        ],
        |w, r| Request::Register {
            account: account(w.account_of(r)),
            password: NewPassword::try_from(PASSWORD).expect("password"),
            device: device("again"),
        },
    ),
    row(
        "login",
        [ALI, NA, NA, NA, NA, NA, NA, NA, NA, ALI, BANNED, NA, NA, NA],
        |w, r| Request::Login {
            credential: Credential::Password {
                account: account(w.account_of(r)),
                password: Password::try_from(PASSWORD).expect("password"),
            },
            device: device("again"),
        },
    ),
    // Friend, stranger, blocked: alice's logged-in session presents the other user's refresh
    // token with that user's device id (it must not log her in as them, nor revoke their
    // token: checked after the table).
    row(
        "refresh",
        [OK, AF, AF, AF, AF, NA, NA, NA, NA, OK, AF, NA, NA, NA],
        |w, r| Request::Refresh {
            refresh_token: w.refresh[&r].clone(),
            device: device(w.device_of(r)),
        },
    ),
    Row {
        fresh: &[Rel::Myself, Rel::Guest],
        ..row(
            "logout",
            [OK, NA, NA, NA, NA, NA, NA, NA, NA, OK, UN, NA, NA, NA],
            |_, _| Request::Logout,
        )
    },
    // A banned person may still become a new guest: the ban is on the account.
    row(
        "guest_login",
        [ALI, NA, NA, NA, NA, NA, NA, NA, NA, ALI, OK, NA, NA, NA],
        |_, _| Request::GuestLogin {
            device: device("again"),
            nickname: String::new(),
        },
    ),
    Row {
        fresh: &[Rel::Myself],
        ..row("change_password", CALLER_ONLY_NO_GUESTS, |_, _| {
            Request::ChangePassword {
                old: Password::try_from(PASSWORD).expect("password"),
                new: NewPassword::try_from(PASSWORD).expect("password"),
            }
        })
    },
    row("list_devices", CALLER_ONLY, |_, _| Request::ListDevices),
    // Self/guest: the current device. Friend, stranger, blocked: a device id only the other
    // user has (device ids are per user: it must not sign the other user out).
    Row {
        fresh: &[Rel::Myself, Rel::Guest],
        ..row(
            "sign_out_device",
            [OK, NF, NF, NF, NF, NA, NA, NA, NA, OK, UN, NA, NA, NA],
            |_, r| {
                Request::SignOutDevice(
                    DeviceId::try_from(match r {
                        Rel::Friend => "fred-dev",
                        Rel::Stranger => "sam-dev",
                        Rel::Blocked => "bob-dev",
                        Rel::Blocking => "cat-dev",
                        _ => FRESH_DEVICE,
                    })
                    .expect("device"),
                )
            },
        )
    },
    // Allowed before login: a banned account's fresh connection gets its pong.
    row(
        "ping",
        [OK, NA, NA, NA, NA, NA, NA, NA, NA, OK, OK, NA, NA, NA],
        |_, _| Request::Ping { client_time_ms: 1 },
    ),
    // ---- messages, cursors, sync (sections 7-10, 16, 18) ----
    // Notices take no writes; a blocked 1:1 takes none either, nor a muted member (`MUTED`)
    // or a disbanded group (`DISBANDED`).
    row(
        "send",
        [FB, OK, NF, BL, BL, OK, NF, OK, OK, OK, UN, MU, DB, NF],
        |w, r| Request::Send(send(w.conv(r), b"hello")),
    ),
    // Only the sender edits; the write gate (BLOCKED, MUTED, DISBANDED) comes first.
    row(
        "edit_message",
        [OK, FB, NF, BL, BL, FB, NF, FB, FB, FB, UN, MU, DB, NF],
        |w, r| {
            let (conversation, seq) = w.msg(r);
            Request::EditMessage {
                conversation,
                seq,
                content: Bytes::from_static(b"edited"),
                request_key: None,
            }
        },
    ),
    // The sender (within the window) or a group's owner and managers; blocks do not apply.
    // Self, manager and owner recall messages of their own (one each: a recall is final).
    // Muted: moe recalls his own message within the window (mutes do not apply, section 17);
    // disbanded: the disband check comes before the recall rules.
    row(
        "recall_message",
        [OK, FB, NF, FB, FB, FB, NF, OK, OK, FB, UN, OK, DB, NF],
        |w, r| {
            let (conversation, seq) = match r {
                Rel::Myself => (w.dm_af, w.a_recall),
                Rel::Manager => (w.g, w.x_recall_mgr),
                Rel::Owner => (w.g, w.x_recall_owner),
                Rel::Muted => (w.g, w.mo_recall),
                _ => w.msg(r),
            };
            Request::RecallMessage {
                conversation,
                seq,
                request_key: None,
            }
        },
    ),
    row(
        "react",
        [OK, OK, NF, BL, BL, OK, NF, OK, OK, OK, UN, MU, DB, NF],
        |w, r| {
            let (conversation, seq) = w.msg(r);
            Request::React {
                conversation,
                seq,
                emoji: "+1".into(),
                remove: false,
                request_key: None,
            }
        },
    ),
    row("get_history", READ_CONV, |w, r| Request::GetHistory {
        conversation: w.conv(r),
        before: Seq::ZERO,
        after: Seq::ZERO,
        limit: 0,
    }),
    row("cursor_ack", READ_CONV, |w, r| Request::CursorAck {
        conversation: w.conv(r),
        kind: CursorKind::Read,
        seq: Seq(1),
    }),
    // Sync lists only the caller's own conversations.
    row("sync", CALLER_ONLY, |_, _| {
        Request::Sync(SyncRequest::default())
    }),
    row("typing", READ_CONV, |w, r| Request::Typing {
        conversation: w.conv(r),
    }),
    // Forward a message the caller can read into a conversation it may write to (its 1:1
    // with fred; `g` for the group columns, where a muted member meets the target's write
    // gate; dan forwards out of the disbanded `d`, still readable, into his 1:1 with olga).
    row(
        "forward_message",
        [OK, OK, NF, OK, OK, OK, NF, OK, OK, OK, UN, MU, OK, NF],
        |w, r| {
            let (from, seq) = w.msg(r);
            Request::ForwardMessage {
                from,
                seq,
                to: w.writable(r),
                client_msg_id: fresh_key(),
            }
        },
    ),
    // On second messages, so later rows still see the first ones.
    row(
        "delete_for_me",
        [OK, OK, NF, OK, OK, OK, NF, OK, OK, OK, UN, OK, OK, NF],
        |w, r| {
            let (conversation, seq) = w.msg2(r);
            Request::DeleteForMe {
                conversation,
                seqs: vec![seq],
            }
        },
    ),
    row("get_read_state", READ_CONV, |w, r| Request::GetReadState {
        conversation: w.conv(r),
        after: 0,
        limit: 0,
    }),
    row("search_messages", READ_CONV, |w, r| {
        Request::SearchMessages {
            query: "hello".into(),
            conversation: Some(w.conv(r)),
            before: 0,
            limit: 0,
        }
    }),
    // ---- conversations and groups (sections 6, 16, 17, 20) ----
    // Users as targets; group columns n/a (see the module docs). Oneself: the caller's own
    // 1:1 conversation (notes to self).
    row(
        "open_direct",
        [OK, OK, OK, BL, BL, NA, NA, NA, NA, FB, UN, NA, NA, NA],
        |w, r| Request::OpenDirect(PeerRef::User(w.user(r))),
    ),
    // A group naming the target user: a friend is added, a stranger invited, a blocker
    // refused.
    row(
        "create_group",
        [OK, OK, OK, BL, OK, NA, NA, NA, NA, FB, UN, NA, NA, NA],
        |w, r| Request::CreateGroup {
            name: GroupName::try_from("made").expect("name"),
            members: vec![w.user(r)],
        },
    ),
    // Adding sam (invited: he is nobody's friend here): managers and owners only.
    row(
        "change_members",
        [IA, IA, NF, IA, IA, FB, NF, OK, OK, FB, UN, FB, DB, NF],
        |w, r| Request::ChangeMembers {
            conversation: w.group_conv(r),
            add: vec![w.sam],
            remove: vec![],
            request_key: None,
        },
    ),
    row("list_conversations", CALLER_ONLY, |_, _| {
        Request::ListConversations {
            limit: 0,
            offset: 0,
        }
    }),
    row("set_conversation_prefs", READ_CONV, |w, r| {
        Request::SetConversationPrefs {
            conversation: w.conv(r),
            prefs: ConversationPrefs {
                pinned: Some(true),
                ..ConversationPrefs::default()
            },
        }
    }),
    row(
        "update_group",
        [IA, IA, NF, IA, IA, FB, NF, OK, OK, FB, UN, FB, DB, NF],
        |w, r| Request::UpdateGroup {
            conversation: w.group_conv(r),
            change: GroupProfileChange {
                description: Some("matrix".into()),
                ..GroupProfileChange::default()
            },
            request_key: None,
        },
    ),
    // Making xav a manager (undone): the owner only.
    Row {
        undo: Some(|w, _, _| {
            Some(Request::SetMemberRole {
                conversation: w.g,
                user: w.xav,
                role: MemberRole::Member,
                request_key: None,
            })
        }),
        ..row(
            "set_member_role",
            [IA, IA, NF, IA, IA, FB, NF, FB, OK, FB, UN, FB, DB, NF],
            |w, r| Request::SetMemberRole {
                conversation: w.group_conv(r),
                user: w.xav,
                role: MemberRole::Manager,
                request_key: None,
            },
        )
    },
    // Muting xav, a plain member (undone).
    Row {
        undo: Some(|w, _, _| {
            Some(Request::MuteMember {
                conversation: w.g,
                user: Some(w.xav),
                duration_ms: 0,
                request_key: None,
            })
        }),
        ..row(
            "mute_member",
            [IA, IA, NF, IA, IA, FB, NF, OK, OK, FB, UN, FB, DB, NF],
            |w, r| Request::MuteMember {
                conversation: w.group_conv(r),
                user: Some(w.xav),
                duration_ms: 60_000,
                request_key: None,
            },
        )
    },
    // The owner disbands a group of its own made for this row (`g` must live on).
    row(
        "disband_group",
        [IA, IA, NF, IA, IA, FB, NF, FB, OK, FB, UN, FB, DB, NF],
        |w, r| Request::DisbandGroup {
            conversation: match r {
                Rel::Owner => w.g_disposable,
                _ => w.group_conv(r),
            },
            request_key: None,
        },
    ),
    row(
        "set_group_nickname",
        [IA, IA, NF, IA, IA, OK, NF, OK, OK, OK, UN, OK, DB, NF],
        |w, r| Request::SetGroupNickname {
            conversation: w.group_conv(r),
            nickname: "nick".into(),
            request_key: None,
        },
    ),
    // Works in a 1:1 too (section 17, "Members").
    row("list_members", READ_CONV, |w, r| Request::ListMembers {
        conversation: w.group_conv(r),
        after: 0,
        limit: 0,
    }),
    // `g` is private: to non-members it does not exist; members get `pending: false` at once.
    // A disbanded group answers `JoinGroup` with `DISBANDED` (section 17, "Disbanding").
    row(
        "join_group",
        [NF, NF, NF, NF, NF, OK, NF, OK, OK, OK, UN, OK, DB, NF],
        |w, r| Request::JoinGroup {
            conversation: w.group_conv(r),
            message: String::new(),
            request_key: None,
        },
    ),
    // Answering a request fred never made: managers and owners get NOT_FOUND, others are
    // stopped before (a plain member or a guest may not answer at all).
    row(
        "answer_join_request",
        [IA, IA, NF, IA, IA, FB, NF, NF, NF, FB, UN, FB, DB, NF],
        |w, r| Request::AnswerJoinRequest {
            conversation: w.group_conv(r),
            user: w.fred,
            approve: true,
            request_key: None,
        },
    ),
    row(
        "get_group",
        [NF, NF, NF, NF, NF, OK, NF, OK, OK, OK, UN, OK, OK, NF],
        |w, r| Request::GetGroup {
            conversation: w.group_conv(r),
        },
    ),
    // ---- users, friends, blocks (section 19); group columns n/a (module docs) ----
    row(
        "get_profiles",
        [OK, OK, OK, OK, OK, NA, NA, NA, NA, OK, UN, NA, NA, NA],
        |w, r| Request::GetProfiles(vec![w.user(r)]),
    ),
    row("update_profile", CALLER_ONLY, |_, _| {
        Request::UpdateProfile(ProfileChange {
            bio: Some("matrix".into()),
            ..ProfileChange::default()
        })
    }),
    row("get_settings", CALLER_ONLY, |_, _| Request::GetSettings),
    row("update_settings", CALLER_ONLY, |_, _| {
        Request::UpdateSettings(SettingsChange {
            language: Some("en".into()),
            ..SettingsChange::default()
        })
    }),
    row("search_users", CALLER_ONLY_NO_GUESTS, |_, _| {
        Request::SearchUsers {
            query: "sam".into(),
            after: 0,
            limit: 0,
        }
    }),
    // Friend: already friends (answered at once); stranger: a request waits.
    row(
        "add_friend",
        [IA, OK, OK, BL, BL, NA, NA, NA, NA, FB, UN, NA, NA, NA],
        |w, r| Request::AddFriend {
            user: w.user(r),
            message: String::new(),
            remark: String::new(),
        },
    ),
    // Nobody asked alice (fred's request was answered in the setup).
    row(
        "answer_friend_request",
        [NF, NF, NF, NF, NF, NA, NA, NA, NA, FB, UN, NA, NA, NA],
        |w, r| Request::AnswerFriendRequest {
            user: w.user(r),
            accept: true,
            remark: String::new(),
        },
    ),
    // Removing fred is undone by asking again (fred accepts anyone).
    Row {
        undo: Some(|w, _, _| {
            Some(Request::AddFriend {
                user: w.fred,
                message: String::new(),
                remark: String::new(),
            })
        }),
        ..row(
            "remove_friend",
            [NF, OK, NF, NF, NF, NA, NA, NA, NA, NF, UN, NA, NA, NA],
            |w, r| Request::RemoveFriend(w.user(r)),
        )
    },
    row(
        "set_friend_remark",
        [NF, OK, NF, NF, NF, NA, NA, NA, NA, NF, UN, NA, NA, NA],
        |w, r| Request::SetFriendRemark {
            user: w.user(r),
            remark: "pal".into(),
        },
    ),
    row("list_friends", CALLER_ONLY, |_, _| Request::ListFriends),
    row("list_friend_requests", CALLER_ONLY, |_, _| {
        Request::ListFriendRequests { outgoing: false }
    }),
    // Anyone may block anyone but itself (undone).
    Row {
        // Alice keeps the block she had before the row.
        undo: Some(|w, r, _| {
            (r != Rel::Blocking).then(|| Request::SetBlocked {
                user: w.user(r),
                blocked: false,
            })
        }),
        ..row(
            "set_blocked",
            [IA, OK, OK, OK, OK, NA, NA, NA, NA, OK, UN, NA, NA, NA],
            |w, r| Request::SetBlocked {
                user: w.user(r),
                blocked: true,
            },
        )
    },
    row("list_blocked", CALLER_ONLY, |_, _| Request::ListBlocked),
    // ---- presence and calls (sections 22, 23) ----
    row("set_presence", CALLER_ONLY, |_, _| Request::SetPresence {
        status: Some(PresenceStatus::Online),
        text: None,
    }),
    // Anyone may ask about anyone (a blocker shows as offline).
    row(
        "get_presence",
        [OK, OK, OK, OK, OK, NA, NA, NA, NA, OK, UN, NA, NA, NA],
        |w, r| Request::GetPresence(vec![w.user(r)]),
    ),
    // An INVITE passes the write gate; a call that starts is cancelled again.
    Row {
        undo: Some(|_, _, resp| {
            let Response::CallAnswer { call } = resp else {
                panic!("an invite is answered by CallAnswer, got {resp:?}");
            };
            Some(Request::CallSignal(CallSignal {
                call: *call,
                action: CallAction::Cancel,
                conversation: None,
                media: CallMedia::Unspecified,
                payload: String::new(),
            }))
        }),
        ..row(
            "call_signal",
            [FB, OK, NF, BL, BL, OK, NF, OK, OK, OK, UN, MU, DB, NF],
            |w, r| {
                Request::CallSignal(CallSignal {
                    call: 0,
                    action: CallAction::Invite,
                    conversation: Some(w.conv(r)),
                    media: CallMedia::Audio,
                    payload: "sdp".into(),
                })
            },
        )
    },
    row("list_calls", CALLER_ONLY, |_, _| Request::ListCalls {
        before: 0,
        limit: 0,
    }),
    // Self: alice's call to fred; friend: fred's call to her; stranger: sam's call to fred;
    // blocked: bob's call to her (before the block); group columns: xav's call in `g`, made
    // after rob left and kim was removed; disbanded: olga's call in `d`, before the disband.
    row(
        "get_call",
        [OK, OK, NF, OK, OK, OK, NF, OK, OK, OK, UN, OK, OK, NF],
        |w, r| Request::GetCall { call: w.call(r) },
    ),
    row("set_push_token", CALLER_ONLY, |_, _| {
        Request::SetPushToken {
            provider: "fcm".into(),
            token: "device-token".into(),
        }
    }),
    // ---- files (docs/files.md) ----
    // Upload tokens exist only inside the HTTP side-service (which registers its uploads
    // itself), so on the wire every token is one the caller never got: NOT_FOUND. The files
    // tests cover the uploader's path.
    row(
        "register_file",
        [NF, NA, NA, NA, NA, NA, NA, NA, NA, NF, UN, NA, NA, NA],
        |_, _| Request::RegisterFile {
            upload: UploadToken::try_from("0123456789abcdef0123456789abcdef".to_owned())
                .expect("token"),
            file: NewFile::new("forged.bin".into(), "application/octet-stream", false)
                .expect("file"),
        },
    ),
    // Private files: the uploader's, or sent in a conversation the caller is a member of
    // (xav's file sent in `g`; rob left `g` and kim was removed before; olga's file in `d`,
    // whose members stay members after the disband).
    row(
        "get_file",
        [OK, NF, NF, NF, NF, OK, NF, OK, OK, OK, UN, OK, OK, NF],
        |w, r| Request::GetFile(w.file(r)),
    ),
    row("list_files", CALLER_ONLY, |_, _| Request::ListFiles {
        limit: 20,
        offset: 0,
        kind: None,
    }),
    // The uploader only (alice deletes a file kept for this row).
    row(
        "delete_file",
        [OK, NF, NF, NF, NF, NF, NF, NF, NF, NF, UN, NF, NF, NF],
        |w, r| {
            Request::DeleteFile(match r {
                Rel::Myself => w.file_a_delete,
                _ => w.file(r),
            })
        },
    ),
    row("join_world", CALLER_ONLY, |_, _| Request::JoinWorld),
    // ---- meetings (section 25): found by id, not by relation; group columns n/a ----
    row("create_meeting", CALLER_ONLY_NO_GUESTS, |_, _| {
        Request::CreateMeeting {
            title: "standup".into(),
            password: String::new(),
            max_participants: 10,
        }
    }),
    // Self: her own; friend and blocked: their open meetings; stranger: sam's, which has a
    // password she does not give; guest: fred's.
    row(
        "join_meeting",
        [OK, OK, FB, OK, OK, NA, NA, NA, NA, OK, UN, NA, NA, NA],
        |w, r| Request::JoinMeeting {
            meeting: w.meeting(r),
            password: String::new(),
        },
    ),
    // The creator only (alice ends a meeting kept for this row).
    row(
        "end_meeting",
        [OK, FB, FB, FB, FB, NA, NA, NA, NA, FB, UN, NA, NA, NA],
        |w, r| Request::EndMeeting {
            meeting: match r {
                Rel::Myself => w.meeting_a_end,
                _ => w.meeting(r),
            },
        },
    ),
    row(
        "get_meeting",
        [OK, OK, OK, OK, OK, NA, NA, NA, NA, OK, UN, NA, NA, NA],
        |w, r| Request::GetMeeting {
            meeting: w.meeting(r),
        },
    ),
    row("list_meetings", CALLER_ONLY, |_, _| Request::ListMeetings {
        offset: 0,
        limit: 20,
    }),
];

/// The proto field name of a request. Exhaustive, without a wildcard arm: a new `Request`
/// variant does not compile until it is named here, and a name here that has no row fails
/// [`the_table_covers_every_request_of_the_protocol`].
fn op_name(r: &Request) -> &'static str {
    match r {
        Request::Register { .. } => "register",
        Request::Login { .. } => "login",
        Request::Refresh { .. } => "refresh",
        Request::Logout => "logout",
        Request::GuestLogin { .. } => "guest_login",
        Request::ChangePassword { .. } => "change_password",
        Request::ListDevices => "list_devices",
        Request::SignOutDevice(_) => "sign_out_device",
        Request::SetPresence { .. } => "set_presence",
        Request::GetPresence(_) => "get_presence",
        Request::CallSignal(_) => "call_signal",
        Request::ForwardMessage { .. } => "forward_message",
        Request::DeleteForMe { .. } => "delete_for_me",
        Request::GetReadState { .. } => "get_read_state",
        Request::SearchMessages { .. } => "search_messages",
        Request::SetPushToken { .. } => "set_push_token",
        Request::ListCalls { .. } => "list_calls",
        Request::GetCall { .. } => "get_call",
        Request::Send(_) => "send",
        Request::CursorAck { .. } => "cursor_ack",
        Request::Sync(_) => "sync",
        Request::Ping { .. } => "ping",
        Request::OpenDirect(_) => "open_direct",
        Request::CreateGroup { .. } => "create_group",
        Request::ChangeMembers { .. } => "change_members",
        Request::Typing { .. } => "typing",
        Request::ListConversations { .. } => "list_conversations",
        Request::SetConversationPrefs { .. } => "set_conversation_prefs",
        Request::UpdateGroup { .. } => "update_group",
        Request::SetMemberRole { .. } => "set_member_role",
        Request::MuteMember { .. } => "mute_member",
        Request::DisbandGroup { .. } => "disband_group",
        Request::SetGroupNickname { .. } => "set_group_nickname",
        Request::ListMembers { .. } => "list_members",
        Request::JoinGroup { .. } => "join_group",
        Request::AnswerJoinRequest { .. } => "answer_join_request",
        Request::EditMessage { .. } => "edit_message",
        Request::RecallMessage { .. } => "recall_message",
        Request::React { .. } => "react",
        Request::GetHistory { .. } => "get_history",
        Request::GetGroup { .. } => "get_group",
        Request::GetProfiles(_) => "get_profiles",
        Request::UpdateProfile(_) => "update_profile",
        Request::GetSettings => "get_settings",
        Request::UpdateSettings(_) => "update_settings",
        Request::SearchUsers { .. } => "search_users",
        Request::AddFriend { .. } => "add_friend",
        Request::AnswerFriendRequest { .. } => "answer_friend_request",
        Request::RemoveFriend(_) => "remove_friend",
        Request::SetFriendRemark { .. } => "set_friend_remark",
        Request::ListFriends => "list_friends",
        Request::ListFriendRequests { .. } => "list_friend_requests",
        Request::SetBlocked { .. } => "set_blocked",
        Request::ListBlocked => "list_blocked",
        Request::RegisterFile { .. } => "register_file",
        Request::GetFile(_) => "get_file",
        Request::ListFiles { .. } => "list_files",
        Request::DeleteFile(_) => "delete_file",
        Request::JoinWorld => "join_world",
        Request::CreateMeeting { .. } => "create_meeting",
        Request::JoinMeeting { .. } => "join_meeting",
        Request::EndMeeting { .. } => "end_meeting",
        Request::GetMeeting { .. } => "get_meeting",
        Request::ListMeetings { .. } => "list_meetings",
    }
}

/// The client requests of `Frame`'s `oneof body` in the schema (field numbers 10..=49 and
/// 130..=199), by field name.
fn protocol_requests() -> BTreeSet<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../proto/parley/v1/parley.proto"
    );
    let text = std::fs::read_to_string(path).expect("read the schema");
    let frame = text.find("message Frame {").expect("message Frame");
    let body = frame + text[frame..].find("oneof body {").expect("oneof body");
    let end = body + text[body..].find("\n  }").expect("end of oneof");
    let mut out = BTreeSet::new();
    for line in text[body..end].lines().skip(1) {
        let line = line.split("//").next().unwrap_or("").trim();
        let parts: Vec<&str> = line.split_whitespace().collect();
        if let [_ty, name, "=", number] = parts[..] {
            let n: u32 = number.trim_end_matches(';').parse().expect("field number");
            if (10..=49).contains(&n) || (130..=199).contains(&n) {
                out.insert(name.to_owned());
            }
        }
    }
    assert!(out.len() > 50, "parsed too few requests: {out:?}");
    out
}

// ---- the world the rows act on ------------------------------------------------------------

/// Ids of everything the setup made.
struct World {
    alice: UserId,
    fred: UserId,
    sam: UserId,
    bob: UserId,
    cat: UserId,
    xav: UserId,
    notices_a: ConversationId,
    dm_af: ConversationId,
    dm_sf: ConversationId,
    dm_ab: ConversationId,
    dm_ac: ConversationId,
    g: ConversationId,
    g_disposable: ConversationId,
    d: ConversationId,
    dm_do: ConversationId,
    a_msg: Seq,
    a_msg2: Seq,
    a_recall: Seq,
    f_msg: Seq,
    f_msg2: Seq,
    s_msg: Seq,
    s_msg2: Seq,
    b_msg: Seq,
    b_msg2: Seq,
    c_msg: Seq,
    c_msg2: Seq,
    x_msg: Seq,
    x_msg2: Seq,
    x_recall_mgr: Seq,
    x_recall_owner: Seq,
    mo_recall: Seq,
    d_msg: Seq,
    d_msg2: Seq,
    call_a: u64,
    call_f: u64,
    call_sf: u64,
    call_b: u64,
    call_c: u64,
    call_g: u64,
    call_d: u64,
    file_a: FileId,
    file_a_delete: FileId,
    file_f: FileId,
    file_s: FileId,
    file_b: FileId,
    file_c: FileId,
    file_g: FileId,
    file_d: FileId,
    meeting_a: u64,
    meeting_a_end: u64,
    meeting_f: u64,
    meeting_s: u64,
    meeting_b: u64,
    meeting_c: u64,
    /// The refresh token each column's `refresh` cell presents.
    refresh: HashMap<Rel, String>,
}

impl World {
    /// The user an operation on users targets.
    fn user(&self, r: Rel) -> UserId {
        match r {
            Rel::Myself => self.alice,
            Rel::Friend => self.fred,
            Rel::Blocked => self.bob,
            Rel::Blocking => self.cat,
            _ => self.sam,
        }
    }

    /// The conversation an operation on conversations targets.
    fn conv(&self, r: Rel) -> ConversationId {
        match r {
            Rel::Myself => self.notices_a,
            Rel::Friend => self.dm_af,
            Rel::Stranger => self.dm_sf,
            Rel::Blocked => self.dm_ab,
            Rel::Blocking => self.dm_ac,
            Rel::Disbanded => self.d,
            _ => self.g,
        }
    }

    /// As [`World::conv`], but a stranger's target is the group she never joined.
    fn group_conv(&self, r: Rel) -> ConversationId {
        match r {
            Rel::Stranger => self.g,
            _ => self.conv(r),
        }
    }

    /// Where the caller may write (the target of a forward).
    fn writable(&self, r: Rel) -> ConversationId {
        match r {
            Rel::Myself | Rel::Friend | Rel::Stranger | Rel::Blocked | Rel::Blocking => self.dm_af,
            Rel::Disbanded => self.dm_do,
            _ => self.g,
        }
    }

    /// The message an operation on messages targets.
    fn msg(&self, r: Rel) -> (ConversationId, Seq) {
        match r {
            Rel::Myself => (self.dm_af, self.a_msg),
            Rel::Friend => (self.dm_af, self.f_msg),
            Rel::Stranger => (self.dm_sf, self.s_msg),
            Rel::Blocked => (self.dm_ab, self.b_msg),
            Rel::Blocking => (self.dm_ac, self.c_msg),
            Rel::Disbanded => (self.d, self.d_msg),
            _ => (self.g, self.x_msg),
        }
    }

    /// Another message of the same kind as [`World::msg`].
    fn msg2(&self, r: Rel) -> (ConversationId, Seq) {
        match r {
            Rel::Myself => (self.dm_af, self.a_msg2),
            Rel::Friend => (self.dm_af, self.f_msg2),
            Rel::Stranger => (self.dm_sf, self.s_msg2),
            Rel::Blocked => (self.dm_ab, self.b_msg2),
            Rel::Blocking => (self.dm_ac, self.c_msg2),
            Rel::Disbanded => (self.d, self.d_msg2),
            _ => (self.g, self.x_msg2),
        }
    }

    fn call(&self, r: Rel) -> u64 {
        match r {
            Rel::Myself => self.call_a,
            Rel::Friend => self.call_f,
            Rel::Stranger => self.call_sf,
            Rel::Blocked => self.call_b,
            Rel::Blocking => self.call_c,
            Rel::Disbanded => self.call_d,
            _ => self.call_g,
        }
    }

    fn file(&self, r: Rel) -> FileId {
        match r {
            Rel::Myself => self.file_a,
            Rel::Friend => self.file_f,
            Rel::Stranger => self.file_s,
            Rel::Blocked => self.file_b,
            Rel::Blocking => self.file_c,
            Rel::Disbanded => self.file_d,
            _ => self.file_g,
        }
    }

    fn meeting(&self, r: Rel) -> u64 {
        match r {
            Rel::Myself => self.meeting_a,
            Rel::Friend | Rel::Guest => self.meeting_f,
            Rel::Stranger => self.meeting_s,
            Rel::Blocking => self.meeting_c,
            _ => self.meeting_b,
        }
    }

    /// The account a login-type cell names.
    fn account_of(&self, r: Rel) -> &'static str {
        match r {
            Rel::Banned => "zed",
            _ => "alice",
        }
    }

    /// The device of the caller's session in a column.
    fn device_of(&self, r: Rel) -> &'static str {
        match r {
            Rel::Friend => "fred-dev",
            Rel::Stranger => "sam-dev",
            Rel::Blocked => "bob-dev",
            Rel::Blocking => "cat-dev",
            Rel::Guest => "guest-dev",
            Rel::Banned => "zed-dev",
            _ => "alice-dev",
        }
    }
}

fn account(name: &str) -> Account {
    Account::try_from(name).expect("account")
}

fn device(id: &str) -> Device {
    Device {
        id: DeviceId::try_from(id).expect("device"),
        platform: Platform::Cli,
    }
}

fn fresh_key() -> ClientMsgId {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    ClientMsgId::try_from(format!("authz-{n}")).expect("key")
}

fn send(conversation: ConversationId, text: &'static [u8]) -> SendRequest {
    SendRequest {
        conversation,
        content_type: ContentType::Text,
        content: Bytes::from_static(text),
        client_msg_id: fresh_key(),
        reply_to: Seq::ZERO,
        mentions: vec![],
        mention_all: false,
    }
}

// ---- connections --------------------------------------------------------------------------

/// A raw connection with its own request ids.
struct Conn {
    raw: Raw,
    next: u64,
}

impl Conn {
    async fn open(s: &TestServer) -> Conn {
        Conn {
            raw: Raw::connect_to(s, T).await,
            next: 1,
        }
    }

    async fn ask(&mut self, request: Request) -> Response {
        let id = self.next;
        self.next += 1;
        self.raw.send(id, request).await;
        self.raw.response(id).await
    }

    /// `request`, which must succeed.
    async fn ok(&mut self, request: Request) -> Response {
        let what = op_name(&request);
        match self.ask(request).await {
            Response::Error(e) => panic!("setup {what} refused: {e}"),
            r => r,
        }
    }

    async fn register(s: &TestServer, name: &str) -> (Conn, UserId, String, String) {
        let mut c = Conn::open(s).await;
        let r = c
            .ok(Request::Register {
                account: account(name),
                password: NewPassword::try_from(PASSWORD).expect("password"),
                device: device(&format!("{name}-dev")),
            })
            .await;
        let Response::Login(l) = r else {
            panic!("register answered {r:?}")
        };
        (c, l.user, l.access_token, l.refresh_token)
    }

    async fn login(s: &TestServer, name: &str, dev: &str) -> Conn {
        let mut c = Conn::open(s).await;
        c.ok(Request::Login {
            credential: Credential::Password {
                account: account(name),
                password: Password::try_from(PASSWORD).expect("password"),
            },
            device: device(dev),
        })
        .await;
        c
    }

    async fn guest(s: &TestServer, dev: &str) -> (Conn, UserId, String, String) {
        let mut c = Conn::open(s).await;
        let r = c
            .ok(Request::GuestLogin {
                device: device(dev),
                nickname: String::new(),
            })
            .await;
        let Response::Login(l) = r else {
            panic!("guest login answered {r:?}")
        };
        (c, l.user, l.access_token, l.refresh_token)
    }

    async fn open_direct(&mut self, peer: UserId) -> ConversationId {
        match self.ok(Request::OpenDirect(PeerRef::User(peer))).await {
            Response::Conversation(c) => c.id,
            r => panic!("open direct answered {r:?}"),
        }
    }

    async fn create_group(&mut self, name: &str, members: Vec<UserId>) -> ConversationId {
        let r = self
            .ok(Request::CreateGroup {
                name: GroupName::try_from(name).expect("name"),
                members,
            })
            .await;
        match r {
            Response::Conversation(c) => c.id,
            r => panic!("create group answered {r:?}"),
        }
    }

    async fn say(&mut self, conversation: ConversationId) -> Seq {
        self.send_content(conversation, ContentType::Text, b"hello there".to_vec())
            .await
    }

    async fn send_content(
        &mut self,
        conversation: ConversationId,
        content_type: ContentType,
        content: Vec<u8>,
    ) -> Seq {
        let r = self
            .ok(Request::Send(SendRequest {
                content_type,
                content: Bytes::from(content),
                ..send(conversation, b"")
            }))
            .await;
        match r {
            Response::SendAck(a) => a.seq,
            r => panic!("send answered {r:?}"),
        }
    }

    /// Starts a call in `conversation` and cancels it: an ended call with a record.
    async fn ended_call(&mut self, conversation: ConversationId) -> u64 {
        let r = self
            .ok(Request::CallSignal(CallSignal {
                call: 0,
                action: CallAction::Invite,
                conversation: Some(conversation),
                media: CallMedia::Audio,
                payload: "sdp".into(),
            }))
            .await;
        let Response::CallAnswer { call } = r else {
            panic!("invite answered {r:?}")
        };
        self.ok(Request::CallSignal(CallSignal {
            call,
            action: CallAction::Cancel,
            conversation: None,
            media: CallMedia::Unspecified,
            payload: String::new(),
        }))
        .await;
        call
    }

    async fn meeting(&mut self, password: &str) -> u64 {
        let r = self
            .ok(Request::CreateMeeting {
                title: "meet".into(),
                password: password.into(),
                max_participants: 10,
            })
            .await;
        match r {
            Response::Meeting(m) => m.id,
            r => panic!("create meeting answered {r:?}"),
        }
    }

    async fn join(&mut self, g: ConversationId) {
        self.ok(Request::JoinGroup {
            conversation: g,
            message: String::new(),
            request_key: None,
        })
        .await;
    }
}

/// Uploads a private file over HTTP as the holder of `token`.
async fn upload(http: &reqwest::Client, s: &TestServer, token: &str, name: &str) -> FileId {
    let res = http
        .post(format!(
            "http://{}/im/v1/files?name={name}&public=false",
            s.http
        ))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(format!("the bytes of {name}"))
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status().as_u16(), 201, "upload {name}");
    let v: serde_json::Value = res.json().await.expect("json");
    v["file_id"]
        .as_str()
        .expect("file_id")
        .parse()
        .expect("file id")
}

/// The logged-in sessions of the callers.
struct Callers {
    alice: Conn,
    max: Conn,
    rob: Conn,
    mia: Conn,
    olga: Conn,
    guest: Conn,
    moe: Conn,
    dan: Conn,
    kim: Conn,
}

impl Callers {
    fn of(&mut self, r: Rel) -> &mut Conn {
        match r {
            Rel::Myself | Rel::Friend | Rel::Stranger | Rel::Blocked | Rel::Blocking => {
                &mut self.alice
            }
            Rel::Member => &mut self.max,
            Rel::Removed => &mut self.rob,
            Rel::Manager => &mut self.mia,
            Rel::Owner => &mut self.olga,
            Rel::Guest => &mut self.guest,
            Rel::Muted => &mut self.moe,
            Rel::Disbanded => &mut self.dan,
            Rel::Kicked => &mut self.kim,
            Rel::Banned => unreachable!("the banned column runs on fresh connections"),
        }
    }
}

/// Builds every relation of the module docs.
async fn setup(s: &TestServer) -> (World, Callers) {
    // reqwest's rustls wants a process-wide provider (plain HTTP here, but the client checks).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .timeout(WAIT)
        .build()
        .expect("http client");
    let (mut alice, a, a_token, a_refresh) = Conn::register(s, "alice").await;
    let (mut fred, f, f_token, f_refresh) = Conn::register(s, "fred").await;
    let (mut sam, sid, s_token, s_refresh) = Conn::register(s, "sam").await;
    let (mut bob, b, b_token, b_refresh) = Conn::register(s, "bob").await;
    let (mut cat, c, c_token, c_refresh) = Conn::register(s, "cat").await;
    let (mut olga, o, o_token, _) = Conn::register(s, "olga").await;
    let (mut mia, mg, _, _) = Conn::register(s, "mia").await;
    let (mut max, m, _, _) = Conn::register(s, "max").await;
    let (mut rob, rb, _, _) = Conn::register(s, "rob").await;
    let (mut xav, x, x_token, _) = Conn::register(s, "xav").await;
    let (mut zed, z, _, z_refresh) = Conn::register(s, "zed").await;
    let (mut moe, mo, _, _) = Conn::register(s, "moe").await;
    let (mut dan, dn, _, _) = Conn::register(s, "dan").await;
    let (mut kim, ki, _, _) = Conn::register(s, "kim").await;
    // The throwaway user of the rows that end their session.
    Conn::register(s, "tim").await;
    let (mut guest, gu, _, gu_refresh) = Conn::guest(s, "guest-dev").await;

    // Fred asks alice (a notice for her), she accepts; fred accepts anyone from now on (so a
    // removed friendship can be restored).
    fred.ok(Request::AddFriend {
        user: a,
        message: String::new(),
        remark: String::new(),
    })
    .await;
    alice
        .ok(Request::AnswerFriendRequest {
            user: f,
            accept: true,
            remark: String::new(),
        })
        .await;
    fred.ok(Request::UpdateSettings(SettingsChange {
        add_policy: Some(AddPolicy::Anyone),
        ..SettingsChange::default()
    }))
    .await;
    let Response::Sync(sync) = alice.ok(Request::Sync(SyncRequest::default())).await else {
        panic!("sync")
    };
    let notices_a = sync
        .conversations
        .iter()
        .find(|c| c.kind == ConversationKind::Notices)
        .expect("alice has notices")
        .id;

    // 1:1 conversations, their messages and calls (bob's before he blocks alice).
    let dm_af = alice.open_direct(f).await;
    let a_msg = alice.say(dm_af).await;
    let a_msg2 = alice.say(dm_af).await;
    let a_recall = alice.say(dm_af).await;
    let f_msg = fred.say(dm_af).await;
    let f_msg2 = fred.say(dm_af).await;
    let dm_sf = sam.open_direct(f).await;
    let s_msg = sam.say(dm_sf).await;
    let s_msg2 = sam.say(dm_sf).await;
    let dm_ab = bob.open_direct(a).await;
    let b_msg = bob.say(dm_ab).await;
    let b_msg2 = bob.say(dm_ab).await;
    let call_a = alice.ended_call(dm_af).await;
    let call_f = fred.ended_call(dm_af).await;
    let call_sf = sam.ended_call(dm_sf).await;
    let call_b = bob.ended_call(dm_ab).await;
    bob.ok(Request::SetBlocked {
        user: a,
        blocked: true,
    })
    .await;
    // Cat writes and calls before alice blocks him.
    let dm_ac = cat.open_direct(a).await;
    let c_msg = cat.say(dm_ac).await;
    let c_msg2 = cat.say(dm_ac).await;
    let call_c = cat.ended_call(dm_ac).await;
    alice
        .ok(Request::SetBlocked {
            user: c,
            blocked: true,
        })
        .await;

    // The group: everyone named is invited (nobody is olga's friend) and accepts.
    let g = olga
        .create_group("matrix", vec![mg, m, rb, x, gu, mo, ki])
        .await;
    for c in [
        &mut mia, &mut max, &mut rob, &mut xav, &mut guest, &mut moe, &mut kim,
    ] {
        c.join(g).await;
    }
    olga.ok(Request::SetMemberRole {
        conversation: g,
        user: mg,
        role: MemberRole::Manager,
        request_key: None,
    })
    .await;
    rob.ok(Request::ChangeMembers {
        conversation: g,
        add: vec![],
        remove: vec![rb],
        request_key: None,
    })
    .await;
    // Kim is removed by the manager, like rob before anything below was written.
    mia.ok(Request::ChangeMembers {
        conversation: g,
        add: vec![],
        remove: vec![ki],
        request_key: None,
    })
    .await;
    let x_msg = xav.say(g).await;
    let x_msg2 = xav.say(g).await;
    let x_recall_mgr = xav.say(g).await;
    let x_recall_owner = xav.say(g).await;
    let call_g = xav.ended_call(g).await;
    let g_disposable = olga.create_group("disposable", vec![]).await;

    // Files: private ones of each user; xav's is sent in `g`.
    let file_a = upload(&http, s, &a_token, "a.bin").await;
    let file_a_delete = upload(&http, s, &a_token, "a2.bin").await;
    let file_f = upload(&http, s, &f_token, "f.bin").await;
    let file_s = upload(&http, s, &s_token, "s.bin").await;
    let file_b = upload(&http, s, &b_token, "b.bin").await;
    let file_c = upload(&http, s, &c_token, "c.bin").await;
    let file_g = upload(&http, s, &x_token, "x.bin").await;
    xav.send_content(
        g,
        ContentType::File,
        format!(r#"{{"file_id":"{file_g}","name":"x.bin"}}"#).into_bytes(),
    )
    .await;

    // Dan's group `d`: olga writes, calls and shares a file in it, then disbands it (dan stays
    // a member). Dan has a 1:1 with olga to forward into.
    let d = olga.create_group("gone", vec![dn]).await;
    dan.join(d).await;
    let d_msg = olga.say(d).await;
    let d_msg2 = olga.say(d).await;
    let call_d = olga.ended_call(d).await;
    let file_d = upload(&http, s, &o_token, "d.bin").await;
    olga.send_content(
        d,
        ContentType::File,
        format!(r#"{{"file_id":"{file_d}","name":"d.bin"}}"#).into_bytes(),
    )
    .await;
    let dm_do = dan.open_direct(o).await;
    olga.ok(Request::DisbandGroup {
        conversation: d,
        request_key: None,
    })
    .await;

    let meeting_a = alice.meeting("").await;
    let meeting_a_end = alice.meeting("").await;
    let meeting_f = fred.meeting("").await;
    let meeting_s = sam.meeting("sesame").await;
    let meeting_b = bob.meeting("").await;
    let meeting_c = cat.meeting("").await;

    // Zed is banned by the operator: his session is told and closed.
    let res = http
        .post(format!("http://{}/admin/v1/users/{}/ban", s.http, z.get()))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("ban");
    assert_eq!(res.status().as_u16(), 200, "ban");
    let mut told = false;
    while let Some(frame) = zed.raw.recv().await {
        if let ServerFrame::Push(Push::GoAway { reason, .. }) = frame {
            assert_eq!(reason, GoAwayReason::LoggedOut);
            told = true;
        }
    }
    assert!(told, "the banned session got no GoAway before its close");

    // Moe writes one message (his to recall) and is then muted in `g` for an hour.
    let mo_recall = moe.say(g).await;
    olga.ok(Request::MuteMember {
        conversation: g,
        user: Some(mo),
        duration_ms: 3_600_000,
        request_key: None,
    })
    .await;

    let refresh = HashMap::from([
        (Rel::Myself, a_refresh),
        (Rel::Friend, f_refresh),
        (Rel::Stranger, s_refresh),
        (Rel::Blocked, b_refresh),
        (Rel::Blocking, c_refresh),
        (Rel::Guest, gu_refresh),
        (Rel::Banned, z_refresh),
    ]);
    let world = World {
        alice: a,
        fred: f,
        sam: sid,
        bob: b,
        cat: c,
        xav: x,
        notices_a,
        dm_af,
        dm_sf,
        dm_ab,
        dm_ac,
        g,
        g_disposable,
        d,
        dm_do,
        a_msg,
        a_msg2,
        a_recall,
        f_msg,
        f_msg2,
        s_msg,
        s_msg2,
        b_msg,
        b_msg2,
        c_msg,
        c_msg2,
        x_msg,
        x_msg2,
        x_recall_mgr,
        x_recall_owner,
        mo_recall,
        d_msg,
        d_msg2,
        call_a,
        call_f,
        call_sf,
        call_b,
        call_c,
        call_g,
        call_d,
        file_a,
        file_a_delete,
        file_f,
        file_s,
        file_b,
        file_c,
        file_g,
        file_d,
        meeting_a,
        meeting_a_end,
        meeting_f,
        meeting_s,
        meeting_b,
        meeting_c,
        refresh,
    };
    let callers = Callers {
        alice,
        max,
        rob,
        mia,
        olga,
        guest,
        moe,
        dan,
        kim,
    };
    (world, callers)
}

// ---- the tests ----------------------------------------------------------------------------

#[test]
fn the_table_covers_every_request_of_the_protocol() {
    let mut seen = BTreeSet::new();
    for row in TABLE {
        assert!(seen.insert(row.op.to_owned()), "{} has two rows", row.op);
        let rel = RELS
            .iter()
            .zip(row.want)
            .find(|(_, w)| *w != Want::Na)
            .map(|(r, _)| *r)
            .unwrap_or_else(|| panic!("{}: every cell is n/a", row.op));
        // The world is not needed to classify a request: build from a placeholder.
        let req = (row.build)(&placeholder_world(), rel);
        assert_eq!(
            op_name(&req),
            row.op,
            "row {} builds another request",
            row.op
        );
        for fresh in row.fresh {
            assert_ne!(
                *fresh,
                Rel::Banned,
                "{}: the banned column is always fresh",
                row.op
            );
        }
    }
    let protocol = protocol_requests();
    let missing: Vec<_> = protocol.difference(&seen).collect();
    let unknown: Vec<_> = seen.difference(&protocol).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "requests of the protocol without a row: {missing:?}; rows for no request: {unknown:?}"
    );
}

/// A world of arbitrary ids, for classifying requests without a server.
fn placeholder_world() -> World {
    let u = UserId::try_from(1).expect("id");
    let c = ConversationId::try_from(1).expect("id");
    let f = FileId::from_bytes([1; 16]);
    World {
        alice: u,
        fred: u,
        sam: u,
        bob: u,
        cat: u,
        xav: u,
        notices_a: c,
        dm_af: c,
        dm_sf: c,
        dm_ab: c,
        dm_ac: c,
        g: c,
        g_disposable: c,
        d: c,
        dm_do: c,
        a_msg: Seq(1),
        a_msg2: Seq(1),
        a_recall: Seq(1),
        f_msg: Seq(1),
        f_msg2: Seq(1),
        s_msg: Seq(1),
        s_msg2: Seq(1),
        b_msg: Seq(1),
        b_msg2: Seq(1),
        c_msg: Seq(1),
        c_msg2: Seq(1),
        x_msg: Seq(1),
        x_msg2: Seq(1),
        x_recall_mgr: Seq(1),
        x_recall_owner: Seq(1),
        mo_recall: Seq(1),
        d_msg: Seq(1),
        d_msg2: Seq(1),
        call_a: 1,
        call_f: 1,
        call_sf: 1,
        call_b: 1,
        call_c: 1,
        call_g: 1,
        call_d: 1,
        file_a: f,
        file_a_delete: f,
        file_f: f,
        file_s: f,
        file_b: f,
        file_c: f,
        file_g: f,
        file_d: f,
        meeting_a: 1,
        meeting_a_end: 1,
        meeting_f: 1,
        meeting_s: 1,
        meeting_b: 1,
        meeting_c: 1,
        refresh: RELS.iter().map(|r| (*r, "token".to_owned())).collect(),
    }
}

/// What a cell got.
fn got(r: &Response) -> Want {
    match r {
        Response::Error(e) => Want::Err(e.code),
        _ => Want::Ok,
    }
}

fn show(w: Want) -> String {
    match w {
        Want::Ok => "OK".into(),
        Want::Na => "n/a".into(),
        Want::Err(c) => format!("{c:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_against_every_relation() {
    let s = TestServer::start_with(|cfg| {
        cfg.admin.token = Some(ADMIN_TOKEN.into());
        // The server's default: nobody is put into a group without consent.
        cfg.rules.group_adds_need_consent = true;
    })
    .await;
    let (world, mut callers) = setup(&s).await;

    let mut wrong = Vec::new();
    let mut cells = 0;
    for row in TABLE {
        for (rel, want) in RELS.iter().copied().zip(row.want) {
            if want == Want::Na {
                continue;
            }
            cells += 1;
            let request = (row.build)(&world, rel);
            let mut fresh;
            let conn = if rel == Rel::Banned {
                // His login is refused, so his requests come from a connection that never
                // logged in.
                fresh = Conn::open(&s).await;
                &mut fresh
            } else if row.fresh.contains(&rel) {
                fresh = match rel {
                    Rel::Guest => Conn::guest(&s, FRESH_DEVICE).await.0,
                    _ => Conn::login(&s, "tim", FRESH_DEVICE).await,
                };
                &mut fresh
            } else {
                callers.of(rel)
            };
            let response = conn.ask(request).await;
            let answer = got(&response);
            if answer != want {
                wrong.push(format!(
                    "{} as {rel:?}: want {}, got {} ({response:?})",
                    row.op,
                    show(want),
                    show(answer)
                ));
            }
            if let (Some(undo), Want::Ok) = (row.undo, answer) {
                let Some(undo) = undo(&world, rel, &response) else {
                    continue;
                };
                let again = conn.ask(undo).await;
                assert!(
                    !matches!(again, Response::Error(_)),
                    "undoing {} as {rel:?}: {again:?}",
                    row.op
                );
            }
        }
    }
    // Alice presented fred's refresh token and named his device: both still work for him.
    let mut fred = Conn::open(&s).await;
    let again = fred
        .ask(Request::Refresh {
            refresh_token: world.refresh[&Rel::Friend].clone(),
            device: device("fred-dev"),
        })
        .await;
    assert!(
        matches!(again, Response::Login(_)),
        "fred's refresh token was spoiled by alice's attempts: {again:?}"
    );
    println!(
        "authorization matrix: {} operations x {} relations, {cells} cells run",
        TABLE.len(),
        RELS.len()
    );
    assert!(
        wrong.is_empty(),
        "{} of {cells} cells differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    s.stop().await;
}

/// A member reaches nothing of its group from before its join (docs/protocol.md sections 6 and
/// 18: `visible_from_seq`): not by reading, searching or syncing, nor by naming an earlier seq
/// in a request that acts on a message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_reaches_nothing_from_before_its_join() {
    let s = TestServer::start_with(|cfg| cfg.rules.group_adds_need_consent = true).await;
    let (mut olga, _, _, _) = Conn::register(&s, "olga").await;
    let (mut lea, l, _, _) = Conn::register(&s, "lea").await;
    let h = olga.create_group("early", vec![]).await;
    let early = olga.say(h).await;
    olga.ok(Request::ChangeMembers {
        conversation: h,
        add: vec![l],
        remove: vec![],
        request_key: None,
    })
    .await;
    lea.join(h).await;
    let late = olga.say(h).await;

    let on_early = [
        Request::EditMessage {
            conversation: h,
            seq: early,
            content: Bytes::from_static(b"mine now"),
            request_key: None,
        },
        Request::RecallMessage {
            conversation: h,
            seq: early,
            request_key: None,
        },
        Request::React {
            conversation: h,
            seq: early,
            emoji: "+1".into(),
            remove: false,
            request_key: None,
        },
        Request::ForwardMessage {
            from: h,
            seq: early,
            to: h,
            client_msg_id: fresh_key(),
        },
        Request::DeleteForMe {
            conversation: h,
            seqs: vec![early],
        },
    ];
    for request in on_early {
        let what = op_name(&request);
        let answer = lea.ask(request).await;
        assert_eq!(got(&answer), NF, "{what} on a message from before her join");
    }
    // The message after her join is hers to react to.
    let answer = lea
        .ask(Request::React {
            conversation: h,
            seq: late,
            emoji: "+1".into(),
            remove: false,
            request_key: None,
        })
        .await;
    assert_eq!(got(&answer), OK, "react after her join: {answer:?}");

    let seqs = |messages: &[parley_protocol::frames::Message]| -> Vec<Seq> {
        messages
            .iter()
            .filter(|m| m.conversation == h)
            .map(|m| m.seq)
            .collect()
    };
    // From the head backwards, forwards from just before the early message, and backwards
    // from the late one.
    for (before, after) in [
        (Seq::ZERO, Seq::ZERO),
        (Seq::ZERO, Seq(early.get() - 1)),
        (late, Seq::ZERO),
    ] {
        let r = lea
            .ok(Request::GetHistory {
                conversation: h,
                before,
                after,
                limit: 0,
            })
            .await;
        let Response::History { messages, .. } = r else {
            panic!("history answered {r:?}")
        };
        assert!(!seqs(&messages).contains(&early), "history showed {early}");
    }
    let r = lea.ok(Request::Sync(SyncRequest::default())).await;
    let Response::Sync(sync) = r else {
        panic!("sync answered {r:?}")
    };
    let synced = seqs(&sync.messages);
    assert!(
        synced.contains(&late) && !synced.contains(&early),
        "{synced:?}"
    );

    // Search: once the later message (same text) is indexed, the earlier one must not show.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = lea
            .ok(Request::SearchMessages {
                query: "hello".into(),
                conversation: None,
                before: 0,
                limit: 0,
            })
            .await;
        let Response::SearchResult { messages, .. } = r else {
            panic!("search answered {r:?}")
        };
        let found = seqs(&messages);
        assert!(!found.contains(&early), "search found {early}");
        if found.contains(&late) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the later message was never indexed"
        );
        // The index follows the log off the ack path and announces nothing: poll it.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    s.stop().await;
}
