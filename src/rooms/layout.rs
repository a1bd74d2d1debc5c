//! A room's layout: grid (2x2 up to four hosts, 3x3 beyond), spotlight,
//! sidebar or picture-in-picture, with a focus host and an order. Stored
//! (a restarted or re-published room gets it back) and handed to the SFU,
//! whose slots follow it; every viewer gets `room_layout` and `room_slots`.

use std::collections::BTreeMap;

use onair_media::{Layout, LayoutKind};
use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Permission, Rooms};
use crate::accounts::Principal;
use crate::db::DbResult;
use crate::realtime::Event;
use crate::streams::Stream;

/// How the hosts are arranged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = LayoutKind)]
pub enum Kind {
    /// Equal tiles: 2x2 up to four hosts, 3x3 beyond.
    #[default]
    Grid,
    /// The focus host fills the screen.
    Spotlight,
    /// The focus host large, the others in a column.
    Sidebar,
    /// The focus host full, another in a small inset.
    Pip,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Grid => "grid",
            Kind::Spotlight => "spotlight",
            Kind::Sidebar => "sidebar",
            Kind::Pip => "pip",
        }
    }

    fn parse(s: &str) -> Kind {
        match s {
            "spotlight" => Kind::Spotlight,
            "sidebar" => Kind::Sidebar,
            "pip" => Kind::Pip,
            _ => Kind::Grid,
        }
    }

    fn media(self) -> LayoutKind {
        match self {
            Kind::Grid => LayoutKind::Grid,
            Kind::Spotlight => LayoutKind::Spotlight,
            Kind::Sidebar => LayoutKind::Sidebar,
            Kind::Pip => LayoutKind::Pip,
        }
    }
}

/// A room's layout (`PUT /api/streams/{id}/layout`, and the `room_layout` event).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoomLayout {
    /// Grid, spotlight, sidebar or pip.
    pub kind: Kind,
    /// The host shown large (and to one-slot players), by username.
    #[serde(default)]
    pub focus: Option<String>,
    /// Preferred order of the hosts (usernames); others follow in the order they joined.
    #[serde(default)]
    pub order: Vec<String>,
}

impl RoomLayout {
    fn media(&self) -> Layout {
        Layout { kind: self.kind.media(), focus: self.focus.clone(), order: self.order.clone() }
    }
}

impl Rooms {
    /// `s`'s layout (grid until set).
    pub async fn layout(&self, stream_id: i64) -> Result<RoomLayout, ApiError> {
        let row: Option<(String, Option<String>, String)> = sqlx::query_as("SELECT kind, focus, host_order FROM room_layouts WHERE stream_id = $1")
            .bind(stream_id)
            .fetch_optional(&self.pool)
            .await
            .db()?;
        Ok(row.map(|(kind, focus, order)| RoomLayout { kind: Kind::parse(&kind), focus, order: serde_json::from_str(&order).unwrap_or_default() }).unwrap_or_default())
    }

    /// Sets `s`'s layout (its primary host, or a co-host with `layout`).
    /// The focus and the order name hosts of the room.
    pub async fn set_layout(&self, s: &Stream, by: &Principal, input: RoomLayout, now: i64) -> Result<RoomLayout, ApiError> {
        Self::check_open(s)?;
        if !self.standing(s, by.id()).await?.may(Permission::Layout) {
            return Err(ApiError::forbidden("only the primary host, or a co-host allowed to, changes the layout"));
        }
        let hosts: Vec<String> = self.hosts(s).await?.into_iter().map(|h| h.user).collect();
        let mut fields = BTreeMap::new();
        if let Some(f) = &input.focus {
            if !hosts.contains(f) {
                fields.insert("focus".to_owned(), format!("{f} is not a host of this room"));
            }
        }
        let mut order: Vec<String> = Vec::new();
        for name in &input.order {
            if !hosts.contains(name) {
                fields.insert("order".to_owned(), format!("{name} is not a host of this room"));
            } else if !order.contains(name) {
                order.push(name.clone());
            }
        }
        if !fields.is_empty() {
            return Err(ApiError::validation(fields));
        }
        let layout = RoomLayout { kind: input.kind, focus: input.focus, order };
        sqlx::query(
            "INSERT INTO room_layouts (stream_id, kind, focus, host_order, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (stream_id) DO UPDATE SET kind = excluded.kind, focus = excluded.focus, host_order = excluded.host_order, updated_at = excluded.updated_at",
        )
        .bind(s.id)
        .bind(layout.kind.as_str())
        .bind(&layout.focus)
        .bind(serde_json::to_string(&layout.order).unwrap_or_else(|_| "[]".into()))
        .bind(now)
        .execute(&self.pool)
        .await
        .db()?;
        self.sfu.set_layout(&s.media_name(), layout.media());
        self.to_stream(s.id, &Event::RoomLayout { stream_id: s.id, layout: layout.clone() });
        self.announce_slots(s.id);
        Ok(layout)
    }

    /// Gives the SFU's room the stored layout (a room starts on grid).
    pub(crate) async fn restore_layout(&self, stream_id: i64) {
        if let Ok(layout) = self.layout(stream_id).await {
            if layout != RoomLayout::default() {
                self.sfu.set_layout(&stream_id.to_string(), layout.media());
            }
        }
    }

    /// Which host is in which slot now, and the program, for
    /// `room_slots`. A viewer with K slots (K >= 2) gets the first K.
    pub fn slots(&self, stream_id: i64) -> (Vec<Option<String>>, Option<String>) {
        slots_in(&self.sfu, stream_id)
    }

    /// Pushes `room_slots` to the stream's viewers.
    pub fn announce_slots(&self, stream_id: i64) {
        let (slots, program) = self.slots(stream_id);
        self.to_stream(stream_id, &Event::RoomSlots { stream_id, slots, program });
    }
}

/// [`Rooms::slots`] of the media core's room of `stream_id` (a linked
/// room's slots include the other room's hosts: a PK battle).
pub fn slots_in(sfu: &onair_media::Sfu, stream_id: i64) -> (Vec<Option<String>>, Option<String>) {
    let name = stream_id.to_string();
    let slots = sfu.room_slots(&name, super::MAX_HOSTS, None).unwrap_or_default();
    let program = sfu.room_slots(&name, 1, None).and_then(|p| p.into_iter().next().flatten());
    (slots, program)
}
