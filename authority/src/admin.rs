//! Operator commands: users, projects and membership, run straight against the store.
//!
//! Membership changes go through the protocol's `apply` like any edit, so versions, the log and
//! the seq stay right. A running authority that has the project open notices the new seq on
//! its next commit and reloads before committing.

use ensemble_protocol::{
    Bpm, Field, MemberField, MemberId, Op, Project, ProjectId, ProjectState, Record, Role, TimeSignature, Transaction,
};

use crate::actor::apply_as_authority;
use crate::store::{ProjectRow, Store, UserRow};
use crate::{Error, auth};

/// Adds a user with a password.
pub async fn add_user<S: Store>(store: &S, name: &str, password: &str) -> Result<UserRow, Error> {
    ensemble_protocol::validate::person_name(name).map_err(|bad| Error::Config(bad.to_string()))?;
    check_password(password)?;
    let hash = auth::hash_password(password)?;
    let id = store.create_user(name, &hash).await?;
    Ok(UserRow { id, name: name.to_owned(), password_hash: hash })
}

/// Replaces a user's password.
pub async fn set_password<S: Store>(store: &S, name: &str, password: &str) -> Result<(), Error> {
    check_password(password)?;
    store.set_password(name, &auth::hash_password(password)?).await
}

fn check_password(password: &str) -> Result<(), Error> {
    if password.chars().count() < 8 {
        return Err(Error::Config("a password needs at least 8 characters".into()));
    }
    Ok(())
}

async fn user<S: Store>(store: &S, name: &str) -> Result<UserRow, Error> {
    store.user_by_name(name).await?.ok_or_else(|| Error::NotFound(format!("user {name:?}")))
}

/// Creates a project (120 BPM, 4/4, 48 kHz) owned by the user `owner`.
pub async fn create_project<S: Store>(store: &S, name: &str, owner: &str) -> Result<ProjectId, Error> {
    let owner = user(store, owner).await?;
    let id = ProjectId::new_v7();
    let project = Project {
        name: name.to_owned(),
        tempo: Bpm(120.0),
        time_signature: TimeSignature::FOUR_FOUR,
        loop_range: None,
        track_order: vec![],
        sample_rate: 48_000,
    };
    let mut state = ProjectState::new(id, project).map_err(|e| Error::Config(e.to_string()))?;
    let member = Record::Member(ensemble_protocol::Member { user: owner.id, role: Role::Owner });
    let owner_tx = Transaction::new(id, vec![Op::Create { id: MemberId::new_v7().into(), record: member }]);
    state.apply(&owner_tx).map_err(|e| Error::Config(e.to_string()))?;
    store.create_project(&state).await?;
    Ok(id)
}

/// Gives `user` the role `role` in `project`, adding them as a member if needed.
pub async fn grant<S: Store>(store: &S, project: ProjectId, name: &str, role: Role) -> Result<(), Error> {
    let user = user(store, name).await?;
    let loaded = store.load_project(project).await?.ok_or_else(|| Error::NotFound(format!("project {project}")))?;
    let membership = loaded.state.records().find_map(|(id, entry)| match &entry.record {
        Record::Member(member) if member.user == user.id => Some(id),
        _ => None,
    });
    let op = match membership {
        Some(id) => Op::Set { target: id, value: Field::Member(MemberField::Role(role)), expect: None },
        None => Op::Create {
            id: MemberId::new_v7().into(),
            record: Record::Member(ensemble_protocol::Member { user: user.id, role }),
        },
    };
    apply_as_authority(store, project, vec![op]).await.map(|_| ())
}

/// Every project.
pub async fn list_projects<S: Store>(store: &S) -> Result<Vec<ProjectRow>, Error> {
    store.projects().await
}
