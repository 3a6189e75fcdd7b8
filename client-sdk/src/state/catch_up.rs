//! Catching up: sync rounds on behalf of the connection task. Pages go through the same
//! ordering as pushes, so the application sees one gapless stream whatever the source.

use parley_protocol::frames::{Request, Response, SyncRequest};
use parley_protocol::ids::Seq;

use super::{lost, End, State};
use crate::error::ClientError;
use crate::events::Event;
use crate::link::{now, Link, Pending};
use crate::sync::SyncWaiter;

impl State {
    /// Starts a sync round, or queues one after the running round.
    pub(super) async fn start_sync(
        &mut self,
        link: &mut Link,
        waiter: Option<SyncWaiter>,
    ) -> Result<(), End> {
        if link.going_away.is_some() {
            if let Some(w) = waiter {
                let _ = w.send(Err(ClientError::Disconnected));
            }
            return Ok(());
        }
        if self.sync.request(waiter) {
            self.request_sync_page(link).await?;
        }
        Ok(())
    }

    pub(super) async fn request_sync_page(&mut self, link: &mut Link) -> Result<(), End> {
        let request = Request::Sync(SyncRequest {
            epoch: self.epoch,
            positions: self.positions.snapshot(),
            limit: 0,
            from_conversation: self.sync.from(),
        });
        link.request(request, Pending::Sync).await.map_err(lost)?;
        Ok(())
    }

    pub(super) async fn on_sync_page(&mut self, link: &mut Link, r: Response) -> Result<(), End> {
        let page = match r {
            Response::Sync(page) => page,
            Response::Error(e) => {
                return self
                    .end_sync_round(link, Some(ClientError::Server(e)))
                    .await
            }
            other => {
                let e = ClientError::Protocol(format!("expected a sync page, got {other:?}"));
                return self.end_sync_round(link, Some(e)).await;
            }
        };
        if page.reset {
            self.positions.clear();
            self.emitter.emit(Event::Reset).await;
        }
        self.epoch = page.epoch;
        // A page progresses by messages or by listing conversations (a user in very many
        // conversations gets the list over several pages).
        let listed = self.sync.page(&page);
        // Nothing before a member's join is visible: start such conversations there.
        let mut out = Vec::new();
        for c in &page.conversations {
            if c.visible_from > Seq(1) {
                self.positions
                    .raise_floor(c.id, Seq(c.visible_from.get() - 1), &mut out);
            }
        }
        for m in out {
            self.emitter.emit(Event::Message(m)).await;
        }
        let progressed = listed || !page.messages.is_empty();
        self.deliver(link, page.messages).await?;
        for r in page.receipts {
            self.emitter.emit(Event::Receipt(r)).await;
        }
        match (page.has_more, progressed) {
            (true, true) => self.request_sync_page(link).await,
            (true, false) => {
                let e = ClientError::Protocol("sync page with has_more but no progress".into());
                self.end_sync_round(link, Some(e)).await
            }
            (false, _) => self.end_sync_round(link, None).await,
        }
    }

    async fn end_sync_round(
        &mut self,
        link: &mut Link,
        error: Option<ClientError>,
    ) -> Result<(), End> {
        if let Some(e) = &error {
            tracing::warn!("sync failed: {e}");
            if let (ClientError::Server(info), false) = (e, self.sync.has_waiters()) {
                // Nobody asked for this round: tell the application some other way.
                self.emitter.emit(Event::ServerError(info.clone())).await;
            }
        }
        let again = self.sync.finish(error);
        // Gaps the round did not fill get a fresh timeout (their message may have been
        // committed after the round's snapshot and be on its way as a push).
        self.positions.restart_gap_clocks(now());
        if std::mem::take(&mut self.sends_paused) {
            self.pump_sends(link).await?;
        }
        if again {
            self.request_sync_page(link).await?;
        }
        Ok(())
    }
}
