//! The world room: one public group that every user may join freely, made on first use and
//! owned by the server account (admin.rs). It exists for the seed dialects whose systems had
//! one shared room (GoChat's world chat, where guests are put): a plain group underneath, so
//! every client renders, syncs and moderates it like any other.

use parley_protocol::frames::{ConversationInfo, JoinPolicy};
use parley_protocol::ids::{ConversationId, SessionId};
use parley_protocol::session::Identity;
use parley_protocol::values::GroupName;
use parley_protocol::ErrorCode;

use super::{err, internal, Core, CoreResult, Join};
use crate::clock::now_ms;
use crate::store::GroupSettings;

/// The world room's name when it is made (its managers may rename it).
const WORLD_NAME: &str = "World";

impl Core {
    /// The world room, made on first use. Two callers racing to make it both make a group, the
    /// store keeps the first one recorded, and the other group is disbanded unused.
    pub async fn world_room(&self) -> CoreResult<ConversationId> {
        if let Some(conv) = self.store.world_room().map_err(internal)? {
            return Ok(conv);
        }
        let server = self.server_account().await?;
        let name = GroupName::try_from(WORLD_NAME.to_owned())
            .map_err(|_| err(ErrorCode::Internal, "internal error"))?;
        let settings = GroupSettings {
            public: true,
            join_policy: JoinPolicy::Free.to_wire(),
            ..GroupSettings::default()
        };
        let made = self
            .store
            .create_group(server.user, &name, &[], settings, now_ms())
            .map_err(internal)?;
        let world = self.store.set_world_room(made).map_err(internal)?;
        self.durable().await?;
        if world != made {
            // Disbanding waits for its entry to be durable; an error leaves an empty group.
            let _ = self.disband_group(&server, None, made, None).await?.await;
        } else {
            tracing::info!(conversation = world.get(), "created the world room");
        }
        Ok(world)
    }

    /// Joins the caller to the world room (nothing to do if it is a member) and gives the room
    /// as the caller sees it once the membership is durable.
    pub async fn join_world(
        &self,
        me: &Identity,
        origin: Option<SessionId>,
    ) -> CoreResult<ConversationInfo> {
        let world = self.world_room().await?;
        if let Join::Committing(pending) = self
            .join_group(me, origin, world, String::new(), None)
            .await?
        {
            if let parley_protocol::frames::Response::Error(e) = pending.await {
                return Err(e);
            }
        }
        self.conversation_info(world, me.user)
    }
}
