//! Who may read and write a project.
//!
//! Access is per project and comes from the user's [`Member`](crate::Member) record:
//!
//! | role | read | edit music | change membership |
//! |---|---|---|---|
//! | not a member | no | no | no |
//! | [`Role::Viewer`] | yes | no | no |
//! | [`Role::Editor`] | yes | yes | no |
//! | [`Role::Owner`] | yes | yes | yes |
//!
//! Audio asset records are facts about uploaded files, so only the authority creates them or
//! marks their peaks ready; members may rename them and delete unused ones. The authority calls
//! these checks before [`crate::ProjectState::apply`]; the client calls them to grey out what its
//! user cannot do.

use serde::{Deserialize, Serialize};

use crate::ids::UserId;
use crate::op::{Op, Transaction};
use crate::record::{AssetField, Field, Record, RecordKind};
use crate::state::ProjectState;

/// A member's role, from least to most able.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Reads and listens.
    Viewer,
    /// Also edits the music.
    Editor,
    /// Also manages who is a member.
    Owner,
}

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Denied {
    /// The user is not a member of the project.
    #[error("you are not a member of this project")]
    NotMember,
    /// Viewers cannot write.
    #[error("viewers cannot edit this project")]
    ReadOnly,
    /// Only owners change membership; `op` is the offending op's index.
    #[error("op {op}: only owners can change who is a member")]
    OwnersOnly {
        /// Index of the op in its transaction.
        op: usize,
    },
    /// Asset records come from verified uploads; `op` is the offending op's index.
    #[error("op {op}: audio assets are created by the authority after an upload")]
    AuthorityOnly {
        /// Index of the op in its transaction.
        op: usize,
    },
}

impl ProjectState {
    /// The role of `user` in this project, if they are a member.
    pub fn role_of(&self, user: UserId) -> Option<Role> {
        self.records().find_map(|(_, entry)| match &entry.record {
            Record::Member(member) if member.user == user => Some(member.role),
            _ => None,
        })
    }
}

/// Checks that a user with `role` may read the project.
pub fn authorize_read(role: Option<Role>) -> Result<(), Denied> {
    role.map(|_| ()).ok_or(Denied::NotMember)
}

/// Checks that a user with `role` may submit `tx` to the project in `state`.
pub fn authorize_write(role: Option<Role>, state: &ProjectState, tx: &Transaction) -> Result<(), Denied> {
    let role = role.ok_or(Denied::NotMember)?;
    if role == Role::Viewer {
        return Err(Denied::ReadOnly);
    }
    for (index, op) in tx.ops.iter().enumerate() {
        let touches = |kind: RecordKind| match op {
            Op::Create { record, .. } => record.kind() == kind,
            Op::Set { value, .. } => value.kind() == kind,
            Op::ListInsert { .. } | Op::ListRemove { .. } => false,
            Op::Delete { target } => state.entry(*target).is_some_and(|e| e.record.kind() == kind),
        };
        if touches(RecordKind::Member) && role != Role::Owner {
            return Err(Denied::OwnersOnly { op: index });
        }
        let authority_only = match op {
            Op::Create { record, .. } => record.kind() == RecordKind::AudioAsset,
            Op::Set { value, .. } => matches!(value, Field::AudioAsset(AssetField::PeaksReady(_))),
            _ => false,
        };
        if authority_only {
            return Err(Denied::AuthorityOnly { op: index });
        }
    }
    Ok(())
}
