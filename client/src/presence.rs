//! Presence: who else is in the project, and what they are doing.
//!
//! The window keeps [`LocalPresence`] up to date (playhead, selection, pointer); when it
//! changes, [`PresencePlugin`] hands it to the sync worker, at most ten times a second, and the
//! authority relays it to the project's other subscribers. What they send arrives as
//! [`Peers`]: one entry per session (a user may have two windows open), each with a colour
//! that every client derives the same way from the user's id. Presence is never stored: it
//! is dropped when its session leaves, and all of it when this client goes offline.
//!
//! Another plugin may carry presence over a link of its own (a LAN jam does, faster than the
//! authority's relay): it sets [`PresenceRoute::Direct`] while it does, so this plugin stops
//! sending to the authority, and it puts the peers it hears under [`PeerKey::Direct`], which
//! then stand in for the same people's sessions at the authority.

use std::collections::BTreeMap;
use std::time::Duration;

use bevy::prelude::*;
use ensemble_protocol::{Colour, Presence, ServerMsg, UserId};

use crate::sync::{Connection, FromAuthority, Outbound, SyncStatus, SyncSystems, configure_sets};

/// Who a [`Peer`] is to this client: a session the authority relays, or someone heard directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeerKey {
    /// A session at the authority (a user may have two).
    Session(u64),
    /// A user heard over a direct link (a LAN jam), whose entry replaces their sessions'.
    Direct(UserId),
}

/// Which way this user's presence travels.
#[derive(Resource, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PresenceRoute {
    /// Through the authority, which relays it to the project.
    #[default]
    Authority,
    /// Over a direct link another plugin keeps (a LAN jam): nothing goes to the authority.
    Direct,
}

/// The shortest time between two presence updates sent.
pub const PRESENCE_INTERVAL: Duration = Duration::from_millis(100);

/// Shares this user's presence and collects everyone else's.
pub struct PresencePlugin;

impl Plugin for PresencePlugin {
    fn build(&self, app: &mut App) {
        configure_sets(app);
        app.init_resource::<LocalPresence>()
            .init_resource::<Peers>()
            .init_resource::<PresenceRoute>()
            .add_message::<FromAuthority>()
            .add_message::<Outbound>()
            .add_systems(PreUpdate, take_peers.after(SyncSystems::Receive))
            .add_systems(Last, share.in_set(SyncSystems::Edit));
    }
}

/// What this user is doing, as the window sees it.
#[derive(Resource, Debug, Default, Clone, PartialEq)]
pub struct LocalPresence(pub Presence);

/// The other sessions in the project.
#[derive(Resource, Debug, Default)]
pub struct Peers {
    /// Everyone else here now.
    pub sessions: BTreeMap<PeerKey, Peer>,
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
        let key = PeerKey::Session(peer.session);
        match &peer.presence {
            // Someone heard directly is shown by that entry, which comes faster.
            Some(_) if peers.sessions.contains_key(&PeerKey::Direct(peer.user)) => {
                peers.sessions.remove(&key);
            }
            Some(presence) => {
                let entry = Peer {
                    user: peer.user,
                    name: peer.name.clone(),
                    colour: colour_of(peer.user),
                    presence: presence.clone(),
                };
                peers.sessions.insert(key, entry);
            }
            None => {
                peers.sessions.remove(&key);
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
    route: Res<PresenceRoute>,
    time: Res<Time<Real>>,
    local: Res<LocalPresence>,
    mut last_sent: Local<Option<Duration>>,
    mut waiting: Local<bool>,
    mut outbound: MessageWriter<Outbound>,
) {
    *waiting |= local.is_changed();
    if *route == PresenceRoute::Direct {
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
