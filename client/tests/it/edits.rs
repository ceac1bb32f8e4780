//! The DAW's actions as ops: each applies, keeps the project valid, and means what it says
//! (a split plays exactly what the clip played; a trim keeps the audio under the clip in place).

use std::collections::HashMap;
use std::sync::Arc;

use ensemble_audio::Pcm;
use ensemble_audio::arrangement::Arrangement;
use ensemble_audio::render::render_mix;
use ensemble_client::edits;
use ensemble_protocol::*;

/// A project at 120 BPM and 48 kHz with one track, one asset and one clip.
struct Song {
    state: ProjectState,
    track: TrackId,
    asset: AssetId,
    clip: RecordId,
    audio: HashMap<AssetId, Pcm>,
}

const RATE: u32 = 48_000;

impl Song {
    /// The asset runs at `asset_rate` and lasts `seconds`; the clip starts at beat 2, one bar
    /// long, from `offset` frames into the asset, with fades.
    fn new(asset_rate: u32, seconds: u32, offset: u64) -> Song {
        let project = crate::harness::project("Edits");
        let mut state = ProjectState::new(ProjectId::new_v7(), project).unwrap();
        let (track, ops) = edits::add_track(state.id().into(), "Keys".into(), 0);
        apply(&mut state, ops);
        let frames = (asset_rate * seconds) as usize;
        let ramp: Vec<f32> = (0..frames).map(|i| ((i % 1000) as f32 / 1000.0) - 0.5).collect();
        let asset = AssetId::new_v7();
        let record = AudioAsset {
            hash: ContentHash([3; 32]),
            name: "ramp.wav".into(),
            sample_rate: asset_rate,
            channels: 1,
            frames: Frames(frames as u64),
            ..ensemble_testkit::records::asset()
        };
        apply(&mut state, vec![Op::Create { id: asset.into(), record: Record::AudioAsset(record) }]);
        let clip = ClipId::new_v7();
        let record = Clip {
            start: Ticks(960),
            source_offset: Frames(offset),
            gain_db: -1.0,
            fade_in: Ticks(240),
            fade_out: Ticks(480),
            name: "ramp".into(),
            ..ensemble_testkit::records::clip(track, asset)
        };
        apply(&mut state, vec![Op::Create { id: clip.into(), record: Record::Clip(record) }]);
        let audio = HashMap::from([(asset, Pcm::new(asset_rate, vec![ramp]))]);
        Song { state, track, asset, clip: clip.into(), audio }
    }

    fn clip(&self) -> Clip {
        self.clip_at(self.clip)
    }

    fn clip_at(&self, id: RecordId) -> Clip {
        match &self.state.entry(id).unwrap().record {
            Record::Clip(clip) => clip.clone(),
            other => panic!("not a clip: {other:?}"),
        }
    }

    fn timebase(&self) -> Timebase {
        Timebase::new(Bpm(120.0), RATE)
    }

    fn mix(&self) -> Pcm {
        render_mix(Arc::new(Arrangement::from_project(&self.state, &self.audio)))
    }

    fn clips(&self) -> Vec<(RecordId, Clip)> {
        let mut clips: Vec<(RecordId, Clip)> = self
            .state
            .records()
            .filter_map(|(id, entry)| match &entry.record {
                Record::Clip(clip) => Some((id, clip.clone())),
                _ => None,
            })
            .collect();
        clips.sort_by_key(|(_, clip)| clip.start);
        clips
    }
}

fn apply(state: &mut ProjectState, ops: Vec<Op>) {
    let tx = Transaction::new(state.id(), ops);
    if let Err(error) = state.apply(&tx) {
        panic!("{error}: {tx:?}");
    }
}

#[test]
fn a_split_plays_exactly_what_the_clip_played() {
    for at in [961, 1500, 2880, 4799] {
        let mut song = Song::new(RATE, 4, 1_234);
        let before = song.mix();
        let clip = song.clip();
        let ops = edits::split_clip(song.clip, &clip, Ticks(at), song.timebase(), RATE).expect("inside the clip");
        apply(&mut song.state, ops);
        let clips = song.clips();
        assert_eq!(clips.len(), 2);
        let ((_, head), (_, tail)) = (&clips[0], &clips[1]);
        assert_eq!((head.start, head.start + head.length), (Ticks(960), Ticks(at)));
        assert_eq!((tail.start, tail.start + tail.length), (Ticks(at), Ticks(4800)));
        assert_eq!((head.fade_out, tail.fade_in), (Ticks(0), Ticks(0)), "no fade at the cut");
        let after = song.mix();
        let (at_frame, end) = (song.timebase().frames(Ticks(at)).0 as usize, before.frames());
        // The fades now end at the cut: compare where they did not reach.
        let fade_in_end = song.timebase().frames(Ticks(960 + 240)).0 as usize;
        let fade_out_start = song.timebase().frames(Ticks(4800 - 480)).0 as usize;
        for frame in (fade_in_end..fade_out_start).filter(|f| *f < end) {
            let (was, is) = (before.channels[0][frame], after.channels[0][frame]);
            assert!((was - is).abs() < 1e-6, "split at {at} (frame {at_frame}): frame {frame}: {was} became {is}");
        }
    }
    let song = Song::new(RATE, 4, 0);
    let clip = song.clip();
    for outside in [960, 4800, 0, 9000] {
        assert_eq!(edits::split_clip(song.clip, &clip, Ticks(outside), song.timebase(), RATE), None, "at {outside}");
    }
}

#[test]
fn a_split_counts_the_assets_own_frames() {
    // A 44.1 kHz file in a 48 kHz project: one beat at 120 BPM is 22,050 of the file's frames.
    let mut song = Song::new(44_100, 4, 100);
    let clip = song.clip();
    let ops = edits::split_clip(song.clip, &clip, Ticks(1920), song.timebase(), 44_100).unwrap();
    apply(&mut song.state, ops);
    assert_eq!(song.clips()[1].1.source_offset, Frames(100 + 22_050));
}

#[test]
fn trimming_the_start_keeps_the_audio_in_place_and_stops_at_its_first_frame() {
    let mut song = Song::new(RATE, 4, 24_000); // half a second in: a beat's room to the left
    let clip = song.clip();
    let later = edits::trim_start(song.clip, &clip, Ticks(1440), song.timebase(), RATE);
    apply(&mut song.state, later);
    let trimmed = song.clip();
    assert_eq!((trimmed.start, trimmed.length, trimmed.source_offset), (Ticks(1440), Ticks(3360), Frames(36_000)));
    let earlier = edits::trim_start(song.clip, &trimmed, Ticks(0), song.timebase(), RATE);
    apply(&mut song.state, earlier);
    let trimmed = song.clip();
    assert_eq!(
        (trimmed.start, trimmed.length, trimmed.source_offset),
        (Ticks(0), Ticks(4800), Frames(0)),
        "the asset's start"
    );
    let past_end = edits::trim_start(song.clip, &trimmed, Ticks(10_000), song.timebase(), RATE);
    apply(&mut song.state, past_end);
    let trimmed = song.clip();
    assert_eq!((trimmed.start, trimmed.length), (Ticks(4799), Ticks(1)), "a tick is left");
    assert_eq!((trimmed.fade_in, trimmed.fade_out), (Ticks(1), Ticks(0)), "the fades shrank to fit");
    assert_eq!(edits::trim_start(song.clip, &trimmed, Ticks(4799), song.timebase(), RATE), vec![], "no change");
}

#[test]
fn trimming_the_end_stops_at_the_audios_end_and_shrinks_the_fades() {
    let mut song = Song::new(RATE, 4, 48_000); // 3 s of audio left: 5,760 ticks
    let clip = song.clip();
    let left = edits::asset_length(song.timebase(), RATE, Frames(4 * 48_000 - 48_000));
    assert_eq!(left, Ticks(5760));
    apply(&mut song.state, edits::trim_end(song.clip, &clip, Ticks(20_000), Some(left)));
    assert_eq!(song.clip().length, Ticks(5760));
    let clip = song.clip();
    apply(&mut song.state, edits::trim_end(song.clip, &clip, Ticks(1260), Some(left)));
    let clip = song.clip();
    assert_eq!((clip.length, clip.fade_in, clip.fade_out), (Ticks(300), Ticks(240), Ticks(60)));
}

#[test]
fn fades_are_clamped_to_what_the_clip_leaves() {
    let mut song = Song::new(RATE, 4, 0);
    let clip = song.clip();
    apply(&mut song.state, edits::fade_in(song.clip, &clip, Ticks(10_000)));
    assert_eq!(song.clip().fade_in, Ticks(3840 - 480));
    let clip = song.clip();
    apply(&mut song.state, edits::fade_out(song.clip, &clip, Ticks(-5)));
    assert_eq!(song.clip().fade_out, Ticks(0));
    let clip = song.clip();
    assert_eq!(edits::fade_out(song.clip, &clip, Ticks(0)), vec![], "no change, no op");
}

#[test]
fn moving_and_duplicating_clips() {
    let mut song = Song::new(RATE, 4, 0);
    let (other, ops) = edits::add_track(song.state.id().into(), "Bass".into(), 1);
    apply(&mut song.state, ops);
    let clip = song.clip();
    apply(&mut song.state, edits::move_clip(song.clip, &clip, Ticks(-100), other));
    assert_eq!((song.clip().start, song.clip().track), (Ticks(0), other), "never before zero");
    let clip = song.clip();
    let (copy, ops) = edits::duplicate_clip(&clip);
    apply(&mut song.state, ops);
    assert_eq!(song.clip_at(copy.into()).start, Ticks(3840), "right after the original");
    assert_eq!(edits::move_clip(song.clip, &clip, clip.start, clip.track), vec![]);
}

#[test]
fn automation_points_are_added_moved_and_removed_and_the_first_makes_the_lane() {
    let mut song = Song::new(RATE, 4, 0);
    let (first, ops) = edits::add_point(None, song.track, Parameter::Pan, Ticks(0), -3.0);
    apply(&mut song.state, ops);
    let lane_of = |state: &ProjectState| {
        state
            .records()
            .find_map(|(id, entry)| match &entry.record {
                Record::AutomationLane(lane) => Some((id, lane.clone())),
                _ => None,
            })
            .expect("a lane")
    };
    let (lane_id, lane) = lane_of(&song.state);
    assert_eq!((lane.track, lane.parameter, lane.points.len()), (song.track, Parameter::Pan, 1));
    assert_eq!(lane.points[0].value, -1.0, "clamped to the parameter's range");
    let (second, ops) = edits::add_point(Some(lane_id), song.track, Parameter::Pan, Ticks(960), 0.5);
    apply(&mut song.state, ops);
    let (third, ops) = edits::add_point(Some(lane_id), song.track, Parameter::Pan, Ticks(960), 0.25);
    apply(&mut song.state, ops);
    // Moving the middle point keeps its place among points on the same tick.
    let (_, lane) = lane_of(&song.state);
    apply(&mut song.state, edits::move_point(lane_id, &lane, second, Ticks(960), 0.75));
    let (_, lane) = lane_of(&song.state);
    let order: Vec<(PointId, f32)> = lane.points.iter().map(|p| (p.id, p.value)).collect();
    assert_eq!(order, vec![(first, -1.0), (second, 0.75), (third, 0.25)]);
    apply(&mut song.state, edits::move_point(lane_id, &lane, first, Ticks(-50), 2.0));
    let (_, lane) = lane_of(&song.state);
    assert_eq!((lane.points[0].tick, lane.points[0].value), (Ticks(0), 1.0));
    assert_eq!(edits::move_point(lane_id, &lane, PointId::new_v7(), Ticks(1), 0.0), vec![], "no such point");
    apply(&mut song.state, edits::remove_point(lane_id, second));
    assert_eq!(lane_of(&song.state).1.points.len(), 2);
}

#[test]
fn deleting_a_track_takes_what_it_holds_and_undo_brings_it_all_back() {
    let mut song = Song::new(RATE, 4, 0);
    let (_, ops) = edits::add_point(None, song.track, Parameter::Gain, Ticks(0), -6.0);
    apply(&mut song.state, ops);
    let before: Vec<(RecordId, Record)> = song.state.records().map(|(id, e)| (id, e.record.clone())).collect();
    let lane = before.iter().find(|(_, r)| matches!(r, Record::AutomationLane(_))).unwrap().0;
    let ops = edits::delete_track(song.state.id().into(), song.track, [song.clip, lane]);
    let tx = Transaction::new(song.state.id(), ops);
    let applied = song.state.apply(&tx).unwrap();
    assert!(song.state.project().track_order.is_empty());
    assert_eq!(song.clips().len(), 0);
    apply(&mut song.state, applied.inverse);
    let after: Vec<(RecordId, Record)> = song.state.records().map(|(id, e)| (id, e.record.clone())).collect();
    assert_eq!(after, before);
    let _ = song.asset;
}

#[test]
fn moving_an_effect_sets_one_position_until_the_numbers_run_out() {
    let track = TrackId::new_v7();
    let effects: Vec<(RecordId, Effect)> = [1.0, 2.0, 3.0]
        .map(|position| {
            (RecordId::from(EffectId::new_v7()), Effect::new(Bus::Track(track), EffectKind::Delay, position))
        })
        .to_vec();
    let chain: Vec<(RecordId, &Effect)> = effects.iter().map(|(id, effect)| (*id, effect)).collect();
    let position = |ops: &[Op]| match ops {
        [Op::Set { value: Field::Effect(EffectField::Position(position)), .. }] => *position,
        other => panic!("expected one position, got {other:?}"),
    };
    assert_eq!(position(&edits::move_effect(&chain, 2, 0)), 0.0, "to the front: before the first");
    assert_eq!(position(&edits::move_effect(&chain, 0, 1)), 2.5, "between its new neighbours");
    assert_eq!(position(&edits::move_effect(&chain, 0, 2)), 4.0, "to the end: after the last");
    assert!(edits::move_effect(&chain, 1, 1).is_empty());
    // Two effects added at once tie: the move numbers the chain afresh in its new order.
    let tied: Vec<(RecordId, Effect)> =
        effects.iter().map(|(id, effect)| (*id, Effect { position: 1.0, ..effect.clone() })).collect();
    let chain: Vec<(RecordId, &Effect)> = tied.iter().map(|(id, effect)| (*id, effect)).collect();
    let ops = edits::move_effect(&chain, 2, 1);
    let mut state: Vec<(RecordId, Effect)> = tied.clone();
    for op in &ops {
        let Op::Set { target, value: Field::Effect(EffectField::Position(position)), .. } = op else {
            panic!("{op:?}")
        };
        state.iter_mut().find(|(id, _)| id == target).unwrap().1.position = *position;
    }
    let mut order: Vec<(RecordId, &Effect)> = state.iter().map(|(id, effect)| (*id, effect)).collect();
    edits::in_playing_order(&mut order);
    let ids: Vec<RecordId> = order.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, vec![chain[0].0, chain[2].0, chain[1].0]);
}

#[test]
fn quantizing_moves_starts_to_the_nearest_step_and_keeps_lengths() {
    let clip = RecordId::from(NoteClipId::new_v7());
    let note =
        |start: i64| Note { id: NoteId::new_v7(), pitch: 60, velocity: 100, start: Ticks(start), length: Ticks(100) };
    let notes = [note(0), note(130), note(100), note(365)];
    let ops = edits::quantize(clip, &notes, 240);
    // The first is on the grid already; the others move to 240, 0 and 480.
    let moved: Vec<(i64, i64)> = ops
        .iter()
        .filter_map(|op| match op {
            Op::ListInsert { item: ListItem::Note(note), .. } => Some((note.start.0, note.length.0)),
            _ => None,
        })
        .collect();
    assert_eq!(moved, vec![(240, 100), (0, 100), (480, 100)]);
    assert_eq!(ops.len(), 6, "each moved note is taken out and put back");
}

#[test]
fn a_preset_sets_the_knobs_that_differ_in_one_edit() {
    use ensemble_protocol::effect::SYNTH_PRESETS;
    let id = RecordId::from(EffectId::new_v7());
    let synth = Effect::new(Bus::Track(TrackId::new_v7()), EffectKind::Synth, 1.0);
    let (_, pad) = SYNTH_PRESETS[1];
    let ops = edits::apply_preset(id, &synth, pad);
    assert_eq!(ops.len(), pad.len(), "each of the preset's knobs, and no other");
    let mut after = synth.clone();
    for op in &ops {
        let Op::Set { value: Field::Effect(field), .. } = op else { panic!("{op:?}") };
        after = {
            let mut next = after.clone();
            field.clone().replace(&mut next).unwrap();
            next
        };
    }
    for (param, value) in pad {
        assert_eq!(after.param(*param), Some(*value));
    }
    assert!(edits::apply_preset(id, &after, pad).is_empty(), "a preset already set changes nothing");
    // Back to another preset: knobs the first one set and the second does not go to defaults.
    let (_, lead) = SYNTH_PRESETS[2];
    let back = edits::apply_preset(id, &after, lead);
    assert!(back.iter().any(|op| matches!(op, Op::Set { value: Field::Effect(EffectField::Param(EffectParam::AmpAttack, v)), .. } if *v == 5.0)));
}
