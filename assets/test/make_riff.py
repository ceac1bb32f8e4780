"""Makes assets/test/riff.mid with mido, the reference the .mid import is tested against.

Run with a Python that has mido (`pip install mido`): python3 make_riff.py OUT.mid

Two tracks at 480 ticks per quarter: a named bass track of eight eighth notes (note-offs as
note-ons at velocity 0, as many tools write them), and a chord track with explicit note-offs,
overlapping notes of one pitch, a tempo and a time signature.
"""
import sys

import mido

file = mido.MidiFile(ticks_per_beat=480, type=1)

bass = mido.MidiTrack()
bass.append(mido.MetaMessage("track_name", name="Bass", time=0))
bass.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(100), time=0))
bass.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
# Eighths (240 ticks) held for 200 ticks: each starts 40 ticks after the one before ends.
for index, pitch in enumerate([36, 36, 48, 36, 43, 36, 48, 46]):
    velocity = 100 if index % 2 == 0 else 70
    gap = 0 if index == 0 else 40
    bass.append(mido.Message("note_on", note=pitch, velocity=velocity, time=gap, channel=1))
    bass.append(mido.Message("note_on", note=pitch, velocity=0, time=200, channel=1))
bass.append(mido.MetaMessage("end_of_track", time=0))
file.tracks.append(bass)

chords = mido.MidiTrack()
chords.append(mido.MetaMessage("track_name", name="Keys", time=0))
# A C major triad for a half note, then E held over a second E that starts a quarter later.
for pitch in (60, 64, 67):
    chords.append(mido.Message("note_on", note=pitch, velocity=90, time=0))
chords.append(mido.Message("note_off", note=60, velocity=0, time=960))
chords.append(mido.Message("note_off", note=64, velocity=0, time=0))
chords.append(mido.Message("note_off", note=67, velocity=0, time=0))
chords.append(mido.Message("note_on", note=64, velocity=80, time=0))
chords.append(mido.Message("note_on", note=64, velocity=60, time=480))
chords.append(mido.Message("note_off", note=64, velocity=0, time=480))
chords.append(mido.Message("note_off", note=64, velocity=0, time=480))
chords.append(mido.MetaMessage("end_of_track", time=0))
file.tracks.append(chords)

file.save(sys.argv[1])
