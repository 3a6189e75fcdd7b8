//! The connection task: one per client. It owns the connection and serves it with a single
//! `select!` over the server's frames, the handles' commands, the heartbeat/gap timer and the
//! shutdown signal; when the connection is lost it reconnects with jittered exponential backoff,
//! logs in with the stored tokens, syncs, and re-sends what was not acknowledged.

use std::sync::Arc;
use std::time::Duration;

use parley_protocol::backoff::Backoff;
use parley_protocol::frames::{Device, LoginResult};
use tokio::sync::mpsc;

use crate::auth::{relogin, LoginFailure, Tokens};
use crate::error::ClientError;
use crate::events::Event;
use crate::link::{Incoming, Link};
use crate::state::{Command, End, State};
use crate::transport::Connector;

/// How long a closing connection may take to say goodbye.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Commands handled in one go before the writes are flushed.
const MAX_BATCH: usize = 64;

pub(crate) struct Driver {
    pub(crate) state: State,
    pub(crate) connector: Connector,
    pub(crate) tokens: Tokens,
    pub(crate) commands: mpsc::Receiver<Command>,
}

enum Step {
    Shutdown,
    Frame(Result<Incoming, String>),
    Command(Option<Command>),
    Timer,
}

impl Driver {
    /// Runs until the client is closed, logged out, or gives up reconnecting.
    pub(crate) async fn run(mut self, mut link: Link, mut login: LoginResult) {
        let failure = loop {
            let end = self.serve(&mut link, login).await;
            self.state.connection_lost(&mut link);
            link.close(CLOSE_TIMEOUT).await;
            match end {
                End::Shutdown => break ClientError::Closed,
                End::Final(reason) => {
                    tracing::info!("connection ended: {reason}");
                    self.state
                        .emitter
                        .emit(Event::Disconnected { reason })
                        .await;
                    break ClientError::Closed;
                }
                End::Lost(reason) => {
                    tracing::info!("connection lost: {reason}");
                    self.state
                        .emitter
                        .emit(Event::Disconnected { reason })
                        .await;
                    if !self.state.config.reconnect {
                        break ClientError::Disconnected;
                    }
                    if let Some(tokens) = self.state.new_tokens.take() {
                        self.tokens.merge(tokens);
                    }
                    match self.reconnect().await {
                        Ok((l, lr)) => {
                            link = l;
                            login = lr;
                        }
                        Err(e) => break e,
                    }
                }
            }
        };
        self.finish(failure).await;
    }

    /// Serves one logged-in connection until it ends.
    async fn serve(&mut self, link: &mut Link, login: LoginResult) -> End {
        if let Err(end) = self.state.on_connected(link, login).await {
            return end;
        }
        loop {
            if let Err(e) = link.flush().await {
                return End::Lost(format!("write failed: {e}"));
            }
            let mut deadline = link.session.poll_timeout();
            if let Some(gap) = self.state.gap_deadline(link) {
                deadline = deadline.min(gap);
            }
            // Every arm is cancel-safe: `FramedRead` keeps partial frames, `recv` loses
            // nothing, and the sleep and the cancellation are recreated each turn.
            let step = tokio::select! {
                biased;
                _ = self.state.emitter.shutdown.cancelled() => Step::Shutdown,
                frame = link.next() => Step::Frame(frame),
                cmd = self.commands.recv() => Step::Command(cmd),
                _ = tokio::time::sleep_until(deadline.into()) => Step::Timer,
            };
            let result = match step {
                Step::Shutdown | Step::Command(None) => return End::Shutdown,
                Step::Frame(Ok(incoming)) => self.state.on_incoming(link, incoming).await,
                Step::Frame(Err(reason)) => Err(self.state.end_of(link, reason)),
                Step::Command(Some(cmd)) => {
                    let mut result = self.state.on_command(link, cmd).await;
                    // Batch what is already queued into the same flush.
                    for _ in 1..MAX_BATCH {
                        let Ok(cmd) = self.commands.try_recv() else {
                            break;
                        };
                        if result.is_err() {
                            // The connection is gone: the command waits or fails offline.
                            self.state.offline(cmd);
                        } else {
                            result = self.state.on_command(link, cmd).await;
                        }
                    }
                    result
                }
                Step::Timer => self.state.on_timer(link).await,
            };
            if let Err(end) = result {
                return end;
            }
        }
    }

    /// Reconnects with backoff, serving commands meanwhile. `Err` is why the client stops.
    async fn reconnect(&mut self) -> Result<(Link, LoginResult), ClientError> {
        let config = Arc::clone(&self.state.config);
        let mut backoff = Backoff::new(config.backoff_base, config.backoff_max);
        let mut failures = 0u32;
        loop {
            let delay = backoff.next_delay(rand::random::<f64>());
            tracing::debug!(?delay, "reconnecting after delay");
            let sleep = tokio::time::sleep(delay);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    biased;
                    _ = self.state.emitter.shutdown.cancelled() => return Err(ClientError::Closed),
                    _ = &mut sleep => break,
                    cmd = self.commands.recv() => match cmd {
                        Some(cmd) => self.state.offline(cmd),
                        None => return Err(ClientError::Closed),
                    },
                }
            }

            let attempt = attempt(
                &self.connector,
                &mut self.tokens,
                &config.device,
                config.request_timeout,
            );
            tokio::pin!(attempt);
            let result = loop {
                tokio::select! {
                    biased;
                    _ = self.state.emitter.shutdown.cancelled() => return Err(ClientError::Closed),
                    r = &mut attempt => break r,
                    cmd = self.commands.recv() => match cmd {
                        Some(cmd) => self.state.offline(cmd),
                        None => return Err(ClientError::Closed),
                    },
                }
            };
            match result {
                Ok(connected) => return Ok(connected),
                Err(LoginFailure::Rejected(e)) => {
                    tracing::warn!("server refused the stored credentials: {e}");
                    self.state.emitter.emit(Event::ServerError(e.clone())).await;
                    return Err(ClientError::Server(e));
                }
                Err(LoginFailure::Transient(e)) => {
                    failures += 1;
                    tracing::info!(failures, "reconnect attempt failed: {e}");
                    if config
                        .max_reconnect_attempts
                        .is_some_and(|max| failures >= max)
                    {
                        return Err(ClientError::Disconnected);
                    }
                }
            }
        }
    }

    /// Fails everything still waiting, says goodbye, and emits the last event.
    async fn finish(mut self, failure: ClientError) {
        self.state.outbox.fail_all(&failure);
        self.state.sync.abort(&failure);
        self.commands.close();
        while let Ok(cmd) = self.commands.try_recv() {
            State::refuse(cmd, &failure);
        }
        self.connector.shutdown(CLOSE_TIMEOUT).await;
        let emitter = &self.state.emitter;
        if emitter.shutdown.is_cancelled() {
            // `close` does not wait for a reader; if the channel is full the application sees
            // the stream end instead.
            let _ = emitter.tx.try_send(Event::Closed);
        } else {
            emitter.emit(Event::Closed).await;
        }
    }
}

/// One reconnect attempt: connect, then log in with the stored tokens.
async fn attempt(
    connector: &Connector,
    tokens: &mut Tokens,
    device: &Device,
    timeout: Duration,
) -> Result<(Link, LoginResult), LoginFailure> {
    let stream = connector.connect().await.map_err(LoginFailure::Transient)?;
    let mut link = Link::new(stream, timeout);
    match relogin(&mut link, tokens, device, timeout).await {
        Ok(login) => Ok((link, login)),
        Err(e) => {
            link.close(CLOSE_TIMEOUT).await;
            Err(e)
        }
    }
}
