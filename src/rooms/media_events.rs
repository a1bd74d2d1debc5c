//! The SFU's room events, as the platform tells them on `/api/ws` (the
//! stream's topic): `host_joined`, `host_left`, `active_speaker`,
//! `host_speaking`, `room_slots`, `room_topology` (to the hosts), `room_ended`. A host who (re)joins gets its
//! stored mutes and the room its stored layout back.

use onair_media::SfuEvent;

use super::Rooms;
use crate::realtime::Event;

/// Follows the SFU's events for as long as it runs.
pub fn follow(rooms: Rooms) {
    let mut events = rooms.sfu.event_sink();
    tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            rooms.on_event(e).await;
        }
    });
}

impl Rooms {
    async fn on_event(&self, e: SfuEvent) {
        let Ok(id) = e.stream().parse::<i64>() else { return };
        match e {
            SfuEvent::HostJoined { host, .. } => {
                self.restore_mutes(id, &host).await;
                self.restore_layout(id).await;
                self.to_stream(id, &Event::HostJoined { stream_id: id, user: host });
                self.announce_slots(id);
                self.refresh_topology(id).await;
            }
            SfuEvent::HostLeft { host, .. } => {
                if self.went_out(id, &host).await {
                    // `Rooms::remove_host` told it already (left or removed).
                    self.announce_slots(id);
                    self.refresh_topology(id).await;
                    return;
                }
                self.to_stream(id, &Event::HostLeft { stream_id: id, user: host, reason: "disconnected".into() });
                self.announce_slots(id);
                self.refresh_topology(id).await;
            }
            SfuEvent::ActiveSpeaker { host, .. } => {
                self.to_stream(id, &Event::ActiveSpeaker { stream_id: id, user: host });
                self.announce_slots(id);
            }
            SfuEvent::Speaking { host, speaking, .. } => self.to_stream(id, &Event::HostSpeaking { stream_id: id, user: host, speaking }),
            SfuEvent::StreamEnded { .. } => {
                self.forget_topology(id);
                self.to_stream(id, &Event::RoomEnded { stream_id: id });
            }
            _ => {}
        }
    }

    async fn went_out(&self, stream_id: i64, host: &str) -> bool {
        let row: Result<Option<(String,)>, _> = sqlx::query_as("SELECT rh.state FROM room_hosts rh JOIN users u ON u.id = rh.user_id WHERE rh.stream_id = $1 AND u.username = $2")
            .bind(stream_id)
            .bind(host)
            .fetch_optional(&self.pool)
            .await;
        matches!(row, Ok(Some((state,))) if state != "active")
    }

    async fn restore_mutes(&self, stream_id: i64, host: &str) {
        let row: Result<Option<(bool, bool)>, _> = sqlx::query_as(
            "SELECT rh.audio_muted <> 0, rh.video_muted <> 0 FROM room_hosts rh JOIN users u ON u.id = rh.user_id WHERE rh.stream_id = $1 AND u.username = $2",
        )
        .bind(stream_id)
        .bind(host)
        .fetch_optional(&self.pool)
        .await;
        if let Ok(Some((audio, video))) = row {
            if audio || video {
                self.sfu.set_muted(&stream_id.to_string(), host, Some(audio), Some(video));
            }
        }
    }
}
