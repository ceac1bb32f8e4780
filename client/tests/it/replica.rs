use std::collections::VecDeque;

use ensemble_client::replica::{Notice, Replica};
use ensemble_protocol::wire::{Bump, Rejection};
use ensemble_protocol::*;
use proptest::prelude::*;

use crate::harness::track;

const PROJECT: ProjectId = ProjectId::from_u128(1);
const USERS: [UserId; 2] = [UserId::from_u128(10), UserId::from_u128(11)];

/// The authority's part, in memory: apply in arrival order, answer the author, bump everyone.
struct Authority {
    state: ProjectState,
    seq: Seq,
}

impl Authority {
    fn new() -> Authority {
        let project = crate::harness::project("Sim");
        let mut state = ProjectState::new(PROJECT, project).unwrap();
        let members = USERS
            .iter()
            .enumerate()
            .map(|(i, user)| Op::Create {
                id: MemberId::from_u128(100 + i as u128).into(),
                record: Record::Member(Member { user: *user, role: Role::Owner }),
            })
            .collect();
        state.apply(&Transaction::new(PROJECT, members)).unwrap();
        Authority { state, seq: Seq(1) }
    }

    fn handle(&mut self, author: UserId, tx: &Transaction) -> (ServerMsg, Option<Bump>) {
        match self.state.apply(tx) {
            Ok(applied) => {
                self.seq = self.seq.next();
                let changes: Vec<RecordChange> = applied.changed.iter().map(|id| self.state.change(*id)).collect();
                let versions = changes.iter().map(|c| (c.id, c.version)).collect();
                let bump = Bump { project: PROJECT, seq: self.seq, tx_id: tx.id, author, changes };
                (ServerMsg::Committed { tx_id: tx.id, seq: self.seq, versions }, Some(bump))
            }
            Err(error) => (ServerMsg::Rejected { tx_id: tx.id, reason: Rejection::Apply(error) }, None),
        }
    }
}

fn tracks(view: &ProjectState) -> Vec<TrackId> {
    view.project().track_order.clone()
}

/// An edit a user might make, chosen against what they see.
#[derive(Clone, Debug)]
enum Edit {
    AddTrack,
    Gain { pick: usize, gain: f32, expect: bool },
    Rename { pick: usize, name: u8 },
    RemoveTrack { pick: usize },
    Move { pick: usize, to_start: bool },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        Just(Edit::AddTrack),
        (any::<usize>(), -40.0f32..6.0, any::<bool>()).prop_map(|(pick, gain, expect)| Edit::Gain {
            pick,
            gain,
            expect
        }),
        (any::<usize>(), any::<u8>()).prop_map(|(pick, name)| Edit::Rename { pick, name }),
        any::<usize>().prop_map(|pick| Edit::RemoveTrack { pick }),
        (any::<usize>(), any::<bool>()).prop_map(|(pick, to_start)| Edit::Move { pick, to_start }),
    ]
}

fn make(view: &ProjectState, edit: &Edit) -> Option<Transaction> {
    let order = tracks(view);
    let pick = |i: usize| (!order.is_empty()).then(|| order[i % order.len()]);
    let ops = match *edit {
        Edit::AddTrack => {
            let id = TrackId::new_v7();
            vec![
                Op::Create { id: id.into(), record: Record::Track(track("new")) },
                Op::ListInsert { target: PROJECT.into(), item: ListItem::Track(id), at: ListPosition::End },
            ]
        }
        Edit::Gain { pick: i, gain, expect } => {
            let id = pick(i)?;
            let current = Field::Track(TrackField::Gain(0.0)).read(&view.entry(id.into())?.record)?;
            let expect = expect.then_some(current);
            vec![Op::Set { target: id.into(), value: Field::Track(TrackField::Gain(gain)), expect }]
        }
        Edit::Rename { pick: i, name } => {
            vec![Op::Set {
                target: pick(i)?.into(),
                value: Field::Track(TrackField::Name(format!("t{name}"))),
                expect: None,
            }]
        }
        Edit::RemoveTrack { pick: i } => {
            let id = pick(i)?;
            vec![Op::ListRemove { target: PROJECT.into(), item: id.0 }, Op::Delete { target: id.into() }]
        }
        Edit::Move { pick: i, to_start } => {
            let id = pick(i)?;
            let at = if to_start { ListPosition::Start } else { ListPosition::End };
            vec![
                Op::ListRemove { target: PROJECT.into(), item: id.0 },
                Op::ListInsert { target: PROJECT.into(), item: ListItem::Track(id), at },
            ]
        }
    };
    Some(Transaction::new(PROJECT, ops))
}

/// What can happen next in the simulation.
#[derive(Clone, Debug)]
enum Step {
    Edit(usize, Edit),
    ToAuthority(usize),
    ToClient(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..2usize, edit()).prop_map(|(c, e)| Step::Edit(c, e)),
        2 => (0..2usize).prop_map(Step::ToAuthority),
        2 => (0..2usize).prop_map(Step::ToClient),
    ]
}

struct Sim {
    authority: Authority,
    replicas: Vec<Replica>,
    uplink: Vec<VecDeque<Transaction>>,
    downlink: Vec<VecDeque<ServerMsg>>,
    notices: Vec<(usize, Notice)>,
}

impl Sim {
    fn new() -> Sim {
        let authority = Authority::new();
        let replica = Replica::new(authority.state.clone(), authority.seq);
        Sim {
            replicas: vec![replica.clone(), replica],
            authority,
            uplink: vec![VecDeque::new(), VecDeque::new()],
            downlink: vec![VecDeque::new(), VecDeque::new()],
            notices: Vec::new(),
        }
    }

    fn run(&mut self, step: &Step) {
        match step {
            Step::Edit(client, edit) => {
                if let Some(tx) = make(self.replicas[*client].view(), edit)
                    && self.replicas[*client].propose(tx.clone()).is_ok()
                {
                    self.uplink[*client].push_back(tx);
                }
            }
            Step::ToAuthority(client) => {
                if let Some(tx) = self.uplink[*client].pop_front() {
                    let (answer, bump) = self.authority.handle(USERS[*client], &tx);
                    self.downlink[*client].push_back(answer);
                    if let Some(bump) = bump {
                        for downlink in &mut self.downlink {
                            downlink.push_back(ServerMsg::Bump(bump.clone()));
                        }
                    }
                }
            }
            Step::ToClient(client) => {
                if let Some(message) = self.downlink[*client].pop_front() {
                    let notices = self.replicas[*client].receive(&message);
                    self.notices.extend(notices.into_iter().map(|notice| (*client, notice)));
                }
            }
        }
    }

    fn settle(&mut self) {
        for client in 0..2 {
            while !self.uplink[client].is_empty() {
                self.run(&Step::ToAuthority(client));
            }
        }
        for client in 0..2 {
            while !self.downlink[client].is_empty() {
                self.run(&Step::ToClient(client));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Two users editing concurrently, with messages interleaved at random, end up seeing
    /// exactly the authority's state: values and versions.
    #[test]
    fn replicas_converge_to_the_authority(steps in prop::collection::vec(step(), 0..120)) {
        let mut sim = Sim::new();
        for step in &steps {
            sim.run(step);
        }
        sim.settle();
        for replica in &sim.replicas {
            prop_assert_eq!(replica.pending().len(), 0);
            prop_assert_eq!(replica.seq(), sim.authority.seq);
            prop_assert_eq!(replica.view(), &sim.authority.state);
        }
    }
}

/// A transaction setting `track`'s gain, expecting `expect` there if given.
fn set_gain(track: TrackId, gain: f32, expect: Option<f32>) -> Transaction {
    let value = Field::Track(TrackField::Gain(gain));
    let expect = expect.map(|expect| Field::Track(TrackField::Gain(expect)));
    Transaction::new(PROJECT, vec![Op::Set { target: track.into(), value, expect }])
}

#[test]
fn a_local_edit_shows_at_once_and_a_rejection_rolls_it_back() {
    let mut sim = Sim::new();
    sim.run(&Step::Edit(0, Edit::AddTrack));
    let drums = tracks(sim.replicas[0].view())[0];
    sim.settle();
    // Both users rename; user 1 then sets gain expecting the old value, after user 0 changed it.
    let gain = |g: f32, expect: Option<f32>| set_gain(drums, g, expect);
    sim.replicas[0].propose(gain(-3.0, None)).unwrap();
    sim.uplink[0].push_back(gain(-3.0, None));
    let stale = gain(-9.0, Some(0.0));
    sim.replicas[1].propose(stale.clone()).unwrap();
    sim.uplink[1].push_back(stale.clone());
    let shown = |sim: &Sim, client: usize| match &sim.replicas[client].view().entry(drums.into()).unwrap().record {
        Record::Track(track) => track.gain_db,
        _ => unreachable!(),
    };
    assert_eq!(shown(&sim, 1), -9.0, "the edit shows before the authority answers");
    sim.settle();
    assert_eq!(shown(&sim, 1), -3.0, "the rejected edit is rolled back to the authority's value");
    // The user hears of it once: here the bump that made it stale arrives before the rejection,
    // so it is dropped while still pending.
    let told: Vec<&Notice> = sim
        .notices
        .iter()
        .map(|(_, notice)| notice)
        .filter(|n| matches!(n, Notice::Rejected { tx_id, .. } | Notice::Dropped { tx_id, .. } if *tx_id == stale.id))
        .collect();
    assert_eq!(told.len(), 1, "{told:?}");
}

#[test]
fn a_change_a_collaborator_replaces_later_is_told_to_its_author_once() {
    let mut sim = Sim::new();
    sim.run(&Step::Edit(0, Edit::AddTrack));
    let drums = tracks(sim.replicas[0].view())[0];
    sim.settle();
    let gain = |g: f32| set_gain(drums, g, None);
    // User 0's change commits first; user 1's, made meanwhile, commits after it and stands.
    for (client, value) in [(0, -3.0), (1, -9.0)] {
        let tx = gain(value);
        sim.replicas[client].propose(tx.clone()).unwrap();
        sim.uplink[client].push_back(tx);
    }
    sim.settle();
    let told = |sim: &Sim, client: usize| -> Vec<(RecordId, &'static str)> {
        sim.notices
            .iter()
            .filter(|(to, _)| *to == client)
            .filter_map(|(_, notice)| match notice {
                Notice::Overridden { record, field } => Some((*record, *field)),
                _ => None,
            })
            .collect()
    };
    assert_eq!(told(&sim, 0), vec![(drums.into(), "gain_db")], "the author whose change was replaced is told");
    assert!(told(&sim, 1).is_empty(), "the one whose change stands is not");
    // A later change by the same collaborator is not news a second time.
    let again = gain(-12.0);
    sim.replicas[1].propose(again.clone()).unwrap();
    sim.uplink[1].push_back(again);
    sim.settle();
    assert_eq!(told(&sim, 0).len(), 1);
}
