//! The dialects' shared WebSocket adapter: the socket loop every dialect's push socket runs,
//! with the dialect supplying only its frames. Ready for use by every dialect.
//!
//! A dialect implements [`Dialect`]: it parses an inbound text frame into an [`Action`] (a
//! frame to answer at once — a pong, an error, an answer it computed itself —, a request for
//! the adapter to run, or a close), renders the answers of the requests the adapter ran, renders
//! pushes, and names its [`Limits`]. [`serve`] owns the rest:
//!
//! - the push session of the socket's user ([`crate::Backend::open_session`]), the same fan-out
//!   every transport gets. [`Push::GoAway`] closes the socket with 1001; a session that fell
//!   behind (its bounded push queue overflowed: pushes were dropped) with 1013 and the dialect's
//!   [`Dialect::FELL_BEHIND`] reason, telling the client how it catches up from the store; a
//!   session replaced by the same device's newer one with 1000; a signed-out one with 1008.
//! - one socket per user, when the dialect passes its [`Sockets`]: a new socket closes the old
//!   one with 1000 ("replaced by a newer connection").
//! - bounded in-flight requests: [`Action::Run`] requests run concurrently (so a burst of sends
//!   shares group commits instead of waiting for one fsync each), at most
//!   [`Limits::max_inflight`]; at that bound the socket is not read until one is answered, so a
//!   client cannot queue unbounded work. Answers come in completion order.
//! - the idle timeout: without any inbound frame (text, binary, or WebSocket ping/pong) for
//!   [`Limits::idle`] the socket is closed with 1000.
//! - the frame-size limit: [`Limits::apply`] sets it on the upgrade, so a larger frame fails the
//!   read and ends the socket before it is buffered whole.
//!
//! A peer that goes away (read error, close frame, failed write) ends the socket without a
//! close frame. A dialect that authenticates inside the socket (IM系统's `login` frame) does
//! that on the [`WebSocket`] itself, then hands it to [`serve`].
//!
//! Using it, in a dialect's upgrade handler (GoChat's `ws.rs` and IM系统's are the examples):
//! authenticate first (refuse before the upgrade where the dialect can), then
//!
//! ```ignore
//! <MySocket as socket::Dialect>::LIMITS
//!     .apply(ws)
//!     .on_upgrade(move |ws| socket::serve(ws, backend, me, MySocket { .. }, Some(sockets)))
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use futures::stream::{FuturesUnordered, SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use parley_protocol::frames::{ErrorInfo, Push, Request, Response};
use parley_protocol::ids::UserId;
use parley_protocol::session::Identity;
use tokio::sync::oneshot;

use crate::compat::call;
use crate::{Backend, PushSession, SessionEvent};

/// A dialect's socket limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest inbound frame (and message), in bytes.
    pub max_frame: usize,
    /// [`Action::Run`] requests awaiting their answer per socket at most (at least 1: the
    /// socket is read only below it).
    pub max_inflight: usize,
    /// Silence after which the socket is closed.
    pub idle: Duration,
}

impl Limits {
    /// The upgrade with the frame-size limit set (call before `on_upgrade`).
    pub fn apply(&self, ws: WebSocketUpgrade) -> WebSocketUpgrade {
        ws.max_message_size(self.max_frame)
            .max_frame_size(self.max_frame)
    }
}

/// What to do with an inbound text frame.
pub enum Action<P> {
    /// Nothing to send (a frame answered later by a push, or silently).
    Nothing,
    /// Send this frame now: a pong, an error, an answer the dialect computed.
    Reply(Message),
    /// Run this request as the socket's user, concurrently with the socket's other requests
    /// (see [`Limits::max_inflight`]); its result goes to [`Dialect::answer`] with `P`.
    Run(Request, P),
    /// Close the socket with this code and reason.
    Close(u16, &'static str),
}

/// What a dialect supplies to [`serve`]: its frames, nothing of the loop. One value per socket,
/// so it may keep per-socket state (caches, the keys of its own sends to not echo them).
pub trait Dialect: Send + 'static {
    /// What an [`Action::Run`] request carries to its answer (the client's message key, ...).
    type Pending: Send + 'static;
    /// The socket's limits.
    const LIMITS: Limits;
    /// The reason of the 1013 close when the session fell behind: how the client catches up.
    const FELL_BEHIND: &'static str;

    /// Parses one inbound text frame.
    fn frame(&mut self, text: &str) -> impl Future<Output = Action<Self::Pending>> + Send;

    /// The answer to a binary frame, if any.
    fn binary(&mut self) -> Option<Message>;

    /// Renders the result of an [`Action::Run`] request (`None`: nothing to send).
    fn answer(
        &mut self,
        pending: Self::Pending,
        result: Result<Response, ErrorInfo>,
    ) -> Option<Message>;

    /// Renders a push (`None`: nothing the dialect shows). [`Push::GoAway`] never comes here.
    fn push(&mut self, push: Push) -> impl Future<Output = Option<Message>> + Send;
}

/// The users' current sockets, for dialects that allow one socket per user (clone it into the
/// dialect's state and pass it to every [`serve`]).
#[derive(Clone, Default)]
pub struct Sockets(Arc<Mutex<HashMap<UserId, Slot>>>);

/// A user's current socket, and how to close it.
struct Slot {
    id: u64,
    close: oneshot::Sender<()>,
}

impl Sockets {
    fn lock(&self) -> MutexGuard<'_, HashMap<UserId, Slot>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes socket `id` the user's, closing the previous one; resolves when it is replaced.
    fn claim(&self, user: UserId, id: u64) -> oneshot::Receiver<()> {
        let (close, closed) = oneshot::channel();
        if let Some(old) = self.lock().insert(user, Slot { id, close }) {
            let _ = old.close.send(());
        }
        closed
    }

    /// Forgets socket `id` if it is still the user's.
    fn release(&self, user: UserId, id: u64) {
        let mut sockets = self.lock();
        if sockets.get(&user).is_some_and(|s| s.id == id) {
            sockets.remove(&user);
        }
    }
}

static NEXT_SOCKET: AtomicU64 = AtomicU64::new(1);

/// A close frame to send, or nothing (the peer is gone).
type End = Option<(u16, String)>;

type Tx = SplitSink<WebSocket, Message>;
type Rx = SplitStream<WebSocket>;
type Running<P> = Pin<Box<dyn Future<Output = (P, Result<Response, ErrorInfo>)> + Send>>;

/// Serves an upgraded, authenticated socket of `me` until it ends (see the module doc).
/// `sockets`: one socket per user among those served with it; `None`: any number.
pub async fn serve<D: Dialect>(
    socket: WebSocket,
    backend: Arc<dyn Backend>,
    me: Identity,
    mut dialect: D,
    sockets: Option<Sockets>,
) {
    let id = NEXT_SOCKET.fetch_add(1, Ordering::Relaxed);
    let replaced = sockets.as_ref().map(|s| s.claim(me.user, id));
    let session = backend.open_session(me.clone());
    let (mut tx, mut rx) = socket.split();
    let mut conn = Conn {
        backend,
        me: me.clone(),
        inflight: FuturesUnordered::new(),
    };
    let end = conn
        .run(&mut dialect, &mut tx, &mut rx, &*session, replaced)
        .await;
    if let Some((code, reason)) = end {
        let close = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = tx.send(Message::Close(Some(close))).await;
    }
    drop(session);
    if let Some(sockets) = sockets {
        sockets.release(me.user, id);
    }
}

/// The adapter's side of one socket.
struct Conn<P> {
    backend: Arc<dyn Backend>,
    me: Identity,
    inflight: FuturesUnordered<Running<P>>,
}

fn close(code: u16, reason: &str) -> End {
    Some((code, reason.to_owned()))
}

impl<P: Send + 'static> Conn<P> {
    async fn run<D: Dialect<Pending = P>>(
        &mut self,
        dialect: &mut D,
        tx: &mut Tx,
        rx: &mut Rx,
        session: &dyn PushSession,
        replaced: Option<oneshot::Receiver<()>>,
    ) -> End {
        let limits = D::LIMITS;
        let replaced = async move {
            match replaced {
                // A dropped sender also means the slot is no longer this socket's.
                Some(r) => drop(r.await),
                None => std::future::pending().await,
            }
        };
        tokio::pin!(replaced);
        let idle = tokio::time::sleep(limits.idle);
        tokio::pin!(idle);
        loop {
            // Every arm is cancel-safe: the session's `next`, the stream's and the futures
            // set's `next`, the oneshot and the timer lose nothing when another arm wins.
            let out = tokio::select! {
                () = &mut replaced => return close(1000, "replaced by a newer connection"),
                event = session.next() => match event {
                    SessionEvent::Pushes(pushes) => {
                        for push in pushes {
                            let Ok(push) = push.push() else { continue };
                            if let Push::GoAway { .. } = push {
                                return close(1001, "the server is going away");
                            }
                            if let Some(out) = dialect.push(push).await {
                                if tx.send(out).await.is_err() {
                                    return None;
                                }
                            }
                        }
                        None
                    }
                    SessionEvent::SyncNeeded => return close(1013, D::FELL_BEHIND),
                    SessionEvent::Replaced => return close(1000, "replaced by a newer connection"),
                    SessionEvent::SignedOut => return close(1008, "signed out"),
                },
                Some((pending, result)) = self.inflight.next(), if !self.inflight.is_empty() => {
                    dialect.answer(pending, result)
                }
                message = rx.next(), if self.inflight.len() < limits.max_inflight.max(1) => {
                    idle.as_mut().reset(tokio::time::Instant::now() + limits.idle);
                    match message {
                        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
                        Some(Ok(Message::Text(text))) => match dialect.frame(text.as_str()).await {
                            Action::Nothing => None,
                            Action::Reply(out) => Some(out),
                            Action::Run(request, pending) => {
                                self.start(request, pending);
                                None
                            }
                            Action::Close(code, reason) => return close(code, reason),
                        },
                        Some(Ok(Message::Binary(_))) => dialect.binary(),
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => None,
                    }
                }
                () = &mut idle => {
                    let reason = format!("no frame for {} seconds", limits.idle.as_secs());
                    return Some((1000, reason));
                }
            };
            if let Some(out) = out {
                if tx.send(out).await.is_err() {
                    return None;
                }
            }
        }
    }

    /// Starts a request as the socket's user.
    fn start(&mut self, request: Request, pending: P) {
        let backend = self.backend.clone();
        let me = self.me.clone();
        self.inflight.push(Box::pin(async move {
            let result = call(&*backend, Some(me), request).await;
            (pending, result)
        }));
    }
}

#[cfg(test)]
mod tests {
    //! The loop over real sockets on port 0, with a backend whose push session the test
    //! drives (and the clock paused for the idle timeout).

    use super::*;
    use axum::routing::get;
    use futures::future::BoxFuture;
    use parley_protocol::frames::{Device, SharedPush};
    use parley_protocol::ids::{Account, DeviceId, SessionId};
    use tokio::sync::mpsc;
    use tokio_tungstenite::tungstenite::Message as Client;

    #[test]
    fn a_new_socket_closes_the_old_and_only_the_current_one_is_released() {
        let sockets = Sockets::default();
        let user = UserId::try_from(7).expect("user id");
        let mut first = sockets.claim(user, 1);
        assert!(first.try_recv().is_err(), "a fresh socket is not replaced");
        let mut second = sockets.claim(user, 2);
        assert!(first.try_recv().is_ok(), "the old socket is told to close");
        sockets.release(user, 1);
        assert!(
            second.try_recv().is_err(),
            "releasing the old socket leaves the new one in place"
        );
        sockets.release(user, 2);
        assert!(sockets.lock().is_empty());
    }

    /// Runs every request as a pong; sessions get what the test sends.
    struct Driven {
        events: Mutex<Option<mpsc::Receiver<SessionEvent>>>,
    }

    struct Session(tokio::sync::Mutex<Option<mpsc::Receiver<SessionEvent>>>);

    impl PushSession for Session {
        fn id(&self) -> SessionId {
            SessionId::new(parley_protocol::ids::NodeId(0), 1)
        }

        fn next(&self) -> BoxFuture<'_, SessionEvent> {
            Box::pin(async move {
                let mut rx = self.0.lock().await;
                match rx.as_mut() {
                    Some(rx) => match rx.recv().await {
                        Some(event) => event,
                        None => std::future::pending().await,
                    },
                    None => std::future::pending().await,
                }
            })
        }
    }

    impl Backend for Driven {
        fn stats(&self) -> crate::Stats {
            crate::Stats::default()
        }

        fn execute(&self, _: Option<Identity>, _: Request) -> BoxFuture<'static, Response> {
            Box::pin(async {
                Response::Pong {
                    client_time_ms: 0,
                    server_time_ms: 0,
                }
            })
        }

        fn authenticate(
            &self,
            _: String,
            _: Device,
        ) -> BoxFuture<'static, Result<Identity, ErrorInfo>> {
            unreachable!("the test authenticates nobody")
        }

        fn set_banned(&self, _: UserId, _: bool) -> BoxFuture<'static, Result<(), ErrorInfo>> {
            unreachable!("not routed")
        }

        fn open_session(&self, _: Identity) -> Box<dyn PushSession> {
            let rx = self.events.lock().unwrap_or_else(|e| e.into_inner()).take();
            Box::new(Session(tokio::sync::Mutex::new(rx)))
        }
    }

    /// `ping` → `pong`, `run` → a request answered `ran <n>`, `close` → 4000, binary → `text!`.
    struct Echo(u32);

    impl Dialect for Echo {
        type Pending = u32;
        const LIMITS: Limits = Limits {
            max_frame: 1024,
            max_inflight: 2,
            idle: Duration::from_secs(300),
        };
        const FELL_BEHIND: &'static str = "fell behind: resync";

        async fn frame(&mut self, text: &str) -> Action<u32> {
            match text {
                "ping" => Action::Reply(Message::Text("pong".into())),
                "run" => {
                    self.0 += 1;
                    Action::Run(Request::Ping { client_time_ms: 1 }, self.0)
                }
                "close" => Action::Close(4000, "asked"),
                _ => Action::Nothing,
            }
        }

        fn binary(&mut self) -> Option<Message> {
            Some(Message::Text("text!".into()))
        }

        fn answer(&mut self, n: u32, result: Result<Response, ErrorInfo>) -> Option<Message> {
            let ok = matches!(result, Ok(Response::Pong { .. }));
            Some(Message::Text(format!("ran {n} {ok}").into()))
        }

        async fn push(&mut self, _: Push) -> Option<Message> {
            Some(Message::Text("push".into()))
        }
    }

    fn me() -> Identity {
        Identity {
            user: UserId::try_from(7).expect("user id"),
            account: Account::try_from("seven").expect("account"),
            device: DeviceId::try_from("d7").expect("device"),
        }
    }

    /// A server of `Echo` sockets (all of one user, one at a time) and the sender of its
    /// first session's events.
    async fn server() -> (String, mpsc::Sender<SessionEvent>) {
        let (tx, rx) = mpsc::channel(4);
        let backend: Arc<dyn Backend> = Arc::new(Driven {
            events: Mutex::new(Some(rx)),
        });
        let sockets = Sockets::default();
        let app = axum::Router::new().route(
            "/ws",
            get(move |ws: WebSocketUpgrade| async move {
                Echo::LIMITS
                    .apply(ws)
                    .on_upgrade(move |ws| serve(ws, backend, me(), Echo(0), Some(sockets)))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        (format!("ws://{addr}/ws"), tx)
    }

    type Ws = tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >;

    async fn connect(url: &str) -> Ws {
        tokio_tungstenite::connect_async(url)
            .await
            .expect("connect")
            .0
    }

    /// The next frame that is not a WebSocket ping or pong (`None`: the connection ended).
    async fn next(ws: &mut Ws) -> Option<Client> {
        loop {
            match ws.next().await {
                Some(Ok(Client::Ping(_) | Client::Pong(_))) => {}
                Some(Ok(m)) => return Some(m),
                _ => return None,
            }
        }
    }

    fn close_code(m: Option<Client>) -> (u16, String) {
        match m {
            Some(Client::Close(Some(c))) => (c.code.into(), c.reason.to_string()),
            other => panic!("expected a close frame, got {other:?}"),
        }
    }

    async fn say(ws: &mut Ws, text: &str) {
        ws.send(Client::Text(text.into())).await.expect("send");
    }

    #[tokio::test]
    async fn replies_and_runs() {
        let (url, _events) = server().await;
        let mut ws = connect(&url).await;
        say(&mut ws, "ping").await;
        assert_eq!(next(&mut ws).await, Some(Client::Text("pong".into())));
        say(&mut ws, "run").await;
        say(&mut ws, "run").await;
        let mut answers = vec![next(&mut ws).await, next(&mut ws).await];
        answers.sort_by_key(|m| format!("{m:?}"));
        assert_eq!(
            answers,
            [
                Some(Client::Text("ran 1 true".into())),
                Some(Client::Text("ran 2 true".into()))
            ]
        );
        ws.send(Client::Binary(vec![1, 2].into()))
            .await
            .expect("send");
        assert_eq!(next(&mut ws).await, Some(Client::Text("text!".into())));
    }

    // Paused: the clock runs to the idle timeout as soon as nothing else is ready (only this
    // test may wait with it paused: any wait would end the socket).
    #[tokio::test(start_paused = true)]
    async fn a_silent_socket_is_closed_when_idle() {
        let (url, _events) = server().await;
        let mut ws = connect(&url).await;
        assert_eq!(
            close_code(next(&mut ws).await),
            (1000, "no frame for 300 seconds".to_owned())
        );
    }

    #[tokio::test]
    async fn pushes_flow_and_the_session_or_the_dialect_close() {
        let (url, events) = server().await;
        let mut ws = connect(&url).await;
        say(&mut ws, "ping").await;
        assert_eq!(next(&mut ws).await, Some(Client::Text("pong".into())));
        let typing = Push::Typing {
            conversation: parley_protocol::ids::ConversationId::try_from(3).expect("id"),
            user: me().user,
        };
        let pushes = vec![SharedPush::new(typing.clone()), SharedPush::new(typing)];
        events
            .send(SessionEvent::Pushes(pushes))
            .await
            .expect("event");
        assert_eq!(next(&mut ws).await, Some(Client::Text("push".into())));
        assert_eq!(next(&mut ws).await, Some(Client::Text("push".into())));
        events.send(SessionEvent::SyncNeeded).await.expect("event");
        assert_eq!(
            close_code(next(&mut ws).await),
            (1013, "fell behind: resync".to_owned())
        );
        let mut ws = connect(&url).await;
        say(&mut ws, "close").await;
        assert_eq!(close_code(next(&mut ws).await), (4000, "asked".to_owned()));
    }

    #[tokio::test]
    async fn a_new_socket_of_the_user_replaces_the_old_one() {
        let (url, _events) = server().await;
        let mut old = connect(&url).await;
        say(&mut old, "ping").await;
        assert_eq!(next(&mut old).await, Some(Client::Text("pong".into())));
        let mut new = connect(&url).await;
        assert_eq!(
            close_code(next(&mut old).await),
            (1000, "replaced by a newer connection".to_owned())
        );
        say(&mut new, "ping").await;
        assert_eq!(next(&mut new).await, Some(Client::Text("pong".into())));
    }

    #[tokio::test]
    async fn a_frame_over_the_limit_ends_the_socket() {
        let (url, _events) = server().await;
        let mut ws = connect(&url).await;
        let _ = ws.send(Client::Text("x".repeat(4096).into())).await;
        let end = next(&mut ws).await;
        assert!(
            matches!(end, None | Some(Client::Close(_))),
            "the oversized frame was answered: {end:?}"
        );
    }
}
