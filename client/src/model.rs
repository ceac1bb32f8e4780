//! The model: the project as ECS entities, mirrored from the replica's view.
//!
//! Every record is one entity carrying its [`RecordKey`], its [`RecordVersion`] and one typed
//! data component ([`ProjectData`], [`TrackData`], [`ClipData`], [`LaneData`], [`AssetData`],
//! [`MemberData`], [`EffectData`], [`NoteClipData`]). Clips, note clips, automation lanes and
//! effects are children of their track ([`ChildOf`]), so a
//! track's [`Children`] are what it holds. [`RecordIndex`] finds an entity by record id.
//!
//! Other systems read the model with queries and react with change detection:
//! `Query<&TrackData, Changed<TrackData>>` sees exactly the tracks whose values changed, because
//! [`ModelSystems::Mirror`] only writes a component when its value differs. The model is never
//! edited directly: edits go through [`crate::history`] as ops, and come back here through the
//! replica, so what is shown is always confirmed ⊕ pending.

use std::collections::{BTreeSet, HashMap};

use bevy::prelude::*;
use ensemble_protocol::{
    AudioAsset, AutomationLane, Bus, Clip, Effect, Member, NoteClip, Project, ProjectState, Record, RecordId, Track,
    Version,
};

use crate::replica::{Changes, Replica};
use crate::sync::{SyncSystems, configure_sets};

/// Keeps the model's entities equal to the replica's view.
pub struct ModelPlugin;

impl Plugin for ModelPlugin {
    fn build(&self, app: &mut App) {
        configure_sets(app);
        app.init_resource::<RecordIndex>()
            // Twice a frame: the authority's news before the frame uses the model, and this
            // frame's own edits before the next one draws.
            .configure_sets(PreUpdate, ModelSystems::Mirror.after(SyncSystems::Apply))
            .configure_sets(Last, ModelSystems::Mirror.after(SyncSystems::Edit).before(SyncSystems::Send))
            .add_systems(PreUpdate, mirror.in_set(ModelSystems::Mirror))
            .add_systems(Last, mirror.in_set(ModelSystems::Mirror));
    }
}

/// The model's system sets.
#[derive(SystemSet, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModelSystems {
    /// Entities take the replica's changes: after the authority's news at the frame's start,
    /// and after the frame's edits at its end.
    Mirror,
}

/// The record an entity stands for.
#[derive(Component, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RecordKey(pub RecordId);

/// The record's version: the authority's, or one ahead per pending edit.
#[derive(Component, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RecordVersion(pub Version);

macro_rules! data_components {
    ($($(#[$doc:meta])* $name:ident($record:ident);)*) => {
        $(
            $(#[$doc])*
            #[derive(Component, Clone, Debug, PartialEq, Deref)]
            pub struct $name(pub $record);
        )*

        /// Writes `record` into `entity`, changing only what differs; false when the kind changed
        /// (it never does: a record id keeps its kind).
        fn write_data(entity: &mut EntityWorldMut<'_>, record: &Record) -> bool {
            match record {
                $(Record::$record(value) => match entity.get_mut::<$name>() {
                    Some(mut data) => {
                        if data.0 != *value {
                            data.0 = value.clone();
                        }
                        true
                    }
                    None => false,
                },)*
            }
        }

        /// The components a new entity for `record` starts with.
        fn spawn_data(world: &mut World, key: RecordKey, version: RecordVersion, record: &Record) -> Entity {
            match record {
                $(Record::$record(value) => world.spawn((key, version, $name(value.clone()))).id(),)*
            }
        }

        /// The record an entity's data component holds.
        pub fn record_of(entity: EntityRef<'_>) -> Option<Record> {
            $(if let Some(data) = entity.get::<$name>() {
                return Some(Record::$record(data.0.clone()));
            })*
            None
        }
    };
}

data_components! {
    /// The project record: tempo, time signature, loop, track order, sample rate.
    ProjectData(Project);
    /// A track: name, colour, fader, pan, mute, solo, arm.
    TrackData(Track);
    /// A clip on a track.
    ClipData(Clip);
    /// An automation lane of a track.
    LaneData(AutomationLane);
    /// An audio file the project uses.
    AssetData(AudioAsset);
    /// A member of the project and their role.
    MemberData(Member);
    /// An effect on a track's chain.
    EffectData(Effect);
    /// A clip of notes on a track.
    NoteClipData(NoteClip);
}

/// Finds the entity of a record.
#[derive(Resource, Debug, Default)]
pub struct RecordIndex {
    entities: HashMap<RecordId, Entity>,
}

impl RecordIndex {
    /// The entity standing for record `id`.
    pub fn entity(&self, id: RecordId) -> Option<Entity> {
        self.entities.get(&id).copied()
    }

    /// How many records have entities.
    pub fn len(&self) -> usize {
        self.entities.len()
    }

    /// True when there are no record entities.
    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }
}

/// Brings the entities of the records the replica changed up to date with its view.
pub fn mirror(world: &mut World) {
    let Some(mut replica) = world.get_resource_mut::<Replica>() else { return };
    let changes = replica.take_changes();
    world.resource_scope(|world, replica: Mut<Replica>| {
        world.resource_scope(|world, mut index: Mut<RecordIndex>| {
            let ids = match changes {
                Changes::Some(ids) => ids,
                Changes::All => {
                    let mut ids: BTreeSet<RecordId> = index.entities.keys().copied().collect();
                    ids.extend(replica.view().records().map(|(id, _)| id));
                    ids
                }
            };
            apply_changes(world, &mut index, replica.view(), &ids);
        });
    });
}

fn apply_changes(world: &mut World, index: &mut RecordIndex, view: &ProjectState, ids: &BTreeSet<RecordId>) {
    let mut gone = Vec::new();
    let mut placed = Vec::new();
    for id in ids {
        let Some(entry) = view.entry(*id) else {
            if let Some(entity) = index.entities.remove(id) {
                gone.push(entity);
            }
            continue;
        };
        let version = RecordVersion(entry.version);
        let existing = index.entities.get(id).copied().and_then(|entity| world.get_entity_mut(entity).ok());
        let written = match existing {
            Some(mut entity) => {
                if let Some(mut current) = entity.get_mut::<RecordVersion>()
                    && *current != version
                {
                    *current = version;
                }
                write_data(&mut entity, &entry.record)
            }
            None => false,
        };
        if !written {
            if let Some(stale) = index.entities.remove(id)
                && let Ok(entity) = world.get_entity_mut(stale)
            {
                entity.despawn();
            }
            let entity = spawn_data(world, RecordKey(*id), version, &entry.record);
            index.entities.insert(*id, entity);
        }
        if let Some(track) = parent_track(&entry.record) {
            placed.push((*id, track));
        }
    }
    // Parents after every record exists: a clip may come before its new track in id order.
    for (id, track) in placed {
        let (Some(child), Some(parent)) = (index.entity(id), index.entity(track)) else { continue };
        if world.get::<ChildOf>(child).map(ChildOf::parent) != Some(parent) {
            world.entity_mut(child).insert(ChildOf(parent));
        }
    }
    // A deleted track's clips are deleted in the same transaction; take children first so
    // despawning a track never takes a child the index still knows.
    for entity in gone {
        if let Ok(mut entity) = world.get_entity_mut(entity) {
            entity.remove::<Children>();
            entity.despawn();
        }
    }
}

/// The track a record belongs under, for clips, automation lanes and effects.
fn parent_track(record: &Record) -> Option<RecordId> {
    match record {
        Record::Clip(clip) => Some(clip.track.into()),
        Record::AutomationLane(lane) => Some(lane.track.into()),
        Record::Effect(Effect { bus: Bus::Track(track), .. }) => Some((*track).into()),
        Record::NoteClip(clip) => Some(clip.track.into()),
        _ => None,
    }
}
