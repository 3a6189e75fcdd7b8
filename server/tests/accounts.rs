//! Guests, password changes, the device list and signing a device out, and token lifetimes
//! per platform, through the SDK against a real server.
#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

mod common;

use common::{code, wait_for, TestServer, WAIT};
use parley_client::{Client, ClientError, Credentials, Event, Transport};
use parley_protocol::frames::{ContentType, GroupProfileChange, JoinPolicy, PeerRef, Platform};
use parley_protocol::ids::{Account, DeviceId};
use parley_protocol::ErrorCode;

const T: Transport = Transport::Tls;

async fn closed(events: &mut parley_client::Events) {
    wait_for(events, |e| matches!(e, Event::Closed).then_some(())).await;
}

fn password(account: &str, password: &str) -> Credentials {
    Credentials::Password {
        account: Account::try_from(account).unwrap(),
        password: password.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_chat_where_allowed_and_nowhere_else() {
    let s = TestServer::start().await;
    let (alice, _a) = s.register(T, "alice").await;
    let g = alice.create_group("lobby", vec![]).await.unwrap().id;
    let open = GroupProfileChange {
        public: Some(true),
        join_policy: Some(JoinPolicy::Free),
        ..Default::default()
    };
    alice.update_group(g, open).await.unwrap();

    let (guest, _g) = tokio::time::timeout(
        WAIT,
        Client::connect(
            s.config(T, "guest-dev"),
            Credentials::Guest {
                nickname: "visitor".into(),
            },
        ),
    )
    .await
    .unwrap()
    .unwrap();
    let login = guest.login_result();
    assert!(login.account.starts_with("guest-"));
    let profile = &alice.get_profiles(vec![guest.user_id()]).await.unwrap()[0];
    assert_eq!(profile.nickname, "visitor");

    // What a guest may do: join a free public group and talk there.
    assert!(!guest.join_group(g, "").await.unwrap());
    guest
        .send(g, ContentType::Text, "hello from a guest".into())
        .await
        .unwrap();

    // What it may not.
    assert_eq!(
        code(guest.create_group("mine", vec![]).await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(guest.open_direct(PeerRef::User(alice.user_id())).await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(guest.add_friend(alice.user_id(), "", "").await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(guest.search_users("alice", 0, 0).await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(guest.change_members(g, vec![alice.user_id()], vec![]).await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(guest.change_password("x", "new-password").await),
        ErrorCode::Forbidden
    );
    // Guests are not found by search, and leaving is allowed.
    assert!(alice
        .search_users("guest-", 0, 0)
        .await
        .unwrap()
        .users
        .is_empty());
    guest
        .change_members(g, vec![], vec![guest.user_id()])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_change_signs_the_other_devices_out() {
    let s = TestServer::start().await;
    let (one, _e1) = s.register(T, "alice").await;
    let (two, mut e2) = s.login(T, "alice", "dev-2").await;
    let two_token = two.login_result().access_token;

    assert_eq!(
        code(
            one.change_password("wrong-password", "new-password-1")
                .await
        ),
        ErrorCode::AuthFailed
    );
    assert!(
        matches!(
            one.change_password("password-123", "short").await,
            Err(ClientError::Invalid(_))
        ),
        "checked before sending"
    );
    one.change_password("password-123", "new-password-1")
        .await
        .unwrap();
    closed(&mut e2).await;

    // The old password and the other device's tokens are dead; this device goes on.
    let old = Client::connect(s.config(T, "dev-3"), password("alice", "password-123")).await;
    assert_eq!(code(old), ErrorCode::AuthFailed);
    let stale = Client::connect(s.config(T, "dev-2"), Credentials::Token(two_token)).await;
    assert_eq!(code(stale), ErrorCode::AuthFailed);
    let (fresh, _e3) = tokio::time::timeout(
        WAIT,
        Client::connect(s.config(T, "dev-3"), password("alice", "new-password-1")),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(fresh.user_id(), one.user_id());
    let me = one.create_group("still here", vec![]).await.unwrap();
    assert_eq!(me.owner, Some(one.user_id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_are_listed_and_signed_out_one_by_one() {
    let s = TestServer::start().await;
    let (one, _e1) = s.register(T, "alice").await;
    let mut cfg = s.config(T, "phone");
    cfg.device.platform = Platform::Android;
    let (phone, mut phone_ev) = tokio::time::timeout(
        WAIT,
        Client::connect(cfg, password("alice", "password-123")),
    )
    .await
    .unwrap()
    .unwrap();
    let mut web_cfg = s.config(T, "browser");
    web_cfg.device.platform = Platform::Web;
    let (web, _ew) = tokio::time::timeout(
        WAIT,
        Client::connect(web_cfg, password("alice", "password-123")),
    )
    .await
    .unwrap()
    .unwrap();

    // Token lifetimes follow the platform: web shorter than desktop, mobile refresh longest.
    let life = |c: &Client| {
        let l = c.login_result();
        (
            l.access_expires_at_ms - l.server_time_ms,
            l.refresh_expires_at_ms - l.server_time_ms,
        )
    };
    let (web_access, web_refresh) = life(&web);
    let (desk_access, desk_refresh) = life(&one);
    let (_, phone_refresh) = life(&phone);
    assert!(web_access < desk_access, "{web_access} vs {desk_access}");
    assert!(web_refresh < desk_refresh && desk_refresh < phone_refresh);

    let devices = one.devices().await.unwrap();
    let ids: Vec<&str> = devices.iter().map(|d| d.device.as_str()).collect();
    assert_eq!(devices.len(), 3, "{ids:?}");
    let phone_entry = devices
        .iter()
        .find(|d| d.device.as_str() == "phone")
        .unwrap();
    assert_eq!(phone_entry.platform, Platform::Android);
    assert!(phone_entry.online && !phone_entry.current);
    assert!(
        devices
            .iter()
            .find(|d| d.device.as_str() == "dev-1")
            .unwrap()
            .current
    );

    one.sign_out_device(DeviceId::try_from("phone").unwrap())
        .await
        .unwrap();
    closed(&mut phone_ev).await;
    let devices = one.devices().await.unwrap();
    assert!(devices.iter().all(|d| d.device.as_str() != "phone"));
    assert_eq!(
        code(
            one.sign_out_device(DeviceId::try_from("nope").unwrap())
                .await
        ),
        ErrorCode::NotFound
    );
    web.ack(
        one.create_group("g", vec![]).await.unwrap().id,
        parley_protocol::frames::CursorKind::Read,
        parley_protocol::ids::Seq(0),
    )
    .await
    .unwrap();
}
