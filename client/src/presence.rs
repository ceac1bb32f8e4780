//! Presence: who else is in the project, and what they are doing.
//!
//! The window keeps [`LocalPresence`] up to date (playhead, selection, pointer); when it
//! changes, [`PresencePlugin`] hands it to the sync worker, at most ten times a second, and the
//! authority relays it to the project's other subscribers. What they send arrives as
//! [`Peers`]: one entry per session (a user may have two windows open), each with a colour
//! that every client derives the same way from the user's id. Presence is never stored: it
//! is dropped when its session leaves, and all of it when this client goes offline.

use std::collections::BTreeMap;
use std::time::Duration;

use bevy::prelude::*;
use ensemble_protocol::{Colour, Presence, ServerMsg, UserId};

use crate::sync::{Connection, FromAuthority, Outbound, SyncStatus, SyncSystems, configure_sets};

/// Sessions whose key has this bit set came over a LAN jam's link, not from the authority
/// (see [`crate::jam`]); a user in the jam is shown once, by the jam's entry.
pub const JAM_SESSION: u64 = 1 << 63;

/// The shortest time between two presence updates sent.
pub const PRESENCE_INTERVAL: Duration = Duration::from_millis(100);

/// Shares this user's presence and collects everyone else's.
pub struct PresencePlugin;

impl Plugin for PresencePlugin {
    fn build(&self, app: &mut App) {
        configure_sets(app);
        app.init_resource::<LocalPresence>()
            .init_resource::<Peers>()
            .add_message::<FromAuthority>()
            .add_message::<Outbound>()
            .add_systems(
                PreUpdate,
                (take_peers.after(SyncSystems::Receive).before(SyncSystems::Edit), share.in_set(SyncSystems::Edit)),
            );
    }
}

/// What this user is doing, as the window sees it.
#[derive(Resource, Debug, Default, Clone, PartialEq)]
pub struct LocalPresence(pub Presence);

/// The other sessions in the project, by session.
#[derive(Resource, Debug, Default)]
pub struct Peers {
    /// Everyone else here now.
    pub sessions: BTreeMap<u64, Peer>,
}

/// Another session in the project.
#[derive(Debug, Clone, PartialEq)]
pub struct Peer {
    /// Who.
    pub user: UserId,
    /// Their display name.
    pub name: String,
    /// Their colour, the same on every client.
    pub colour: Colour,
    /// What they are doing.
    pub presence: Presence,
}

/// The colours collaborators are shown in: bright, and unlike the track colours' greens.
const PEER_COLOURS: [Colour; 10] = [
    Colour { r: 255, g: 105, b: 180 },
    Colour { r: 255, g: 160, b: 40 },
    Colour { r: 120, g: 200, b: 255 },
    Colour { r: 200, g: 150, b: 255 },
    Colour { r: 255, g: 230, b: 90 },
    Colour { r: 130, g: 255, b: 210 },
    Colour { r: 255, g: 120, b: 100 },
    Colour { r: 170, g: 230, b: 90 },
    Colour { r: 90, g: 140, b: 255 },
    Colour { r: 240, g: 240, b: 240 },
];

/// A user's colour, derived from their id so every client agrees: an FNV-1a hash of the id's
/// bytes picks it (the id's leading bytes are a timestamp, alike for users made together).
pub fn colour_of(user: UserId) -> Colour {
    let hash = user
        .0
        .as_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3));
    PEER_COLOURS[(hash % PEER_COLOURS.len() as u64) as usize]
}

fn take_peers(status: Option<Res<SyncStatus>>, mut messages: MessageReader<FromAuthority>, mut peers: ResMut<Peers>) {
    for FromAuthority(message) in messages.read() {
        let ServerMsg::Presence { peer, .. } = message else { continue };
        match &peer.presence {
            // In a jam, a member's presence comes faster over the jam's link.
            Some(_)
                if peers.sessions.iter().any(|(key, jammer)| key & JAM_SESSION != 0 && jammer.user == peer.user) =>
            {
                peers.sessions.remove(&peer.session);
            }
            Some(presence) => {
                let entry = Peer {
                    user: peer.user,
                    name: peer.name.clone(),
                    colour: colour_of(peer.user),
                    presence: presence.clone(),
                };
                peers.sessions.insert(peer.session, entry);
            }
            None => {
                peers.sessions.remove(&peer.session);
            }
        }
    }
    let online = status.is_none_or(|status| matches!(status.connection, Connection::Online { .. }));
    if !online && !peers.sessions.is_empty() {
        peers.sessions.clear();
    }
}

/// Sends this user's presence when it changed, no more often than [`PRESENCE_INTERVAL`].
fn share(
    jam: Option<Res<crate::jam::Jam>>,
    time: Res<Time<Real>>,
    local: Res<LocalPresence>,
    mut last_sent: Local<Option<Duration>>,
    mut waiting: Local<bool>,
    mut outbound: MessageWriter<Outbound>,
) {
    *waiting |= local.is_changed();
    // In a LAN jam, presence travels over the jam's link instead.
    if jam.is_some_and(|jam| jam.is_active()) {
        return;
    }
    let now = time.elapsed();
    let due = last_sent.is_none_or(|sent| now.saturating_sub(sent) >= PRESENCE_INTERVAL);
    if *waiting && due {
        outbound.write(Outbound::Presence(local.0.clone()));
        *last_sent = Some(now);
        *waiting = false;
    }
}
