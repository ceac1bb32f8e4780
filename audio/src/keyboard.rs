//! The keys a player holds down now: how a controller is heard through an instrument while it
//! is played, before anything is recorded.
//!
//! A [`Keyboard`] is 128 atomics, one per MIDI pitch, each holding how many times the key has
//! gone down (its press count), whether it is down, and the velocity it was last struck at. The thread that
//! hears the controller writes it ([`Keyboard::press`], [`Keyboard::lift`]); the synth on the
//! monitored track reads it at the start of every stretch it renders ([`KeyReader`]) and starts
//! or releases its live voices from what changed. Nothing waits and nothing allocates on either
//! side, so the audio thread may read it; and since a press bumps the count, a key struck and
//! let go between two reads still sounds, briefly, rather than being missed.

use std::sync::atomic::{AtomicU32, Ordering};

/// MIDI pitches.
const KEYS: usize = 128;

/// A key's bit that says it is down; below it, the velocity it was last struck at (1–127);
/// above it, its press count.
const DOWN: u32 = 0x80;

/// The state of every key.
#[derive(Debug)]
pub struct Keyboard {
    keys: [AtomicU32; KEYS],
}

impl Default for Keyboard {
    fn default() -> Self {
        Keyboard { keys: std::array::from_fn(|_| AtomicU32::new(0)) }
    }
}

impl Keyboard {
    /// Puts key `pitch` down at `velocity` (1–127; 0 lifts it, as a MIDI note-on at 0 does).
    pub fn press(&self, pitch: u8, velocity: u8) {
        if velocity == 0 {
            return self.lift(pitch);
        }
        let Some(key) = self.keys.get(usize::from(pitch)) else { return };
        let velocity = u32::from(velocity.min(127));
        // Only the controller's thread writes, so a load and a store cannot lose a press.
        let presses = (key.load(Ordering::Relaxed) >> 8).wrapping_add(1) & 0x00FF_FFFF;
        key.store(presses << 8 | DOWN | velocity, Ordering::Release);
    }

    /// Lets key `pitch` up.
    pub fn lift(&self, pitch: u8) {
        if let Some(key) = self.keys.get(usize::from(pitch)) {
            key.fetch_and(!DOWN, Ordering::Release);
        }
    }

    /// Lets every key up (a controller that went away).
    pub fn lift_all(&self) {
        for key in &self.keys {
            key.fetch_and(!DOWN, Ordering::Release);
        }
    }

    /// Whether any key is down.
    pub fn any_down(&self) -> bool {
        self.keys.iter().any(|key| key.load(Ordering::Acquire) & DOWN != 0)
    }
}

/// What changed on a key since a reader last looked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyChange {
    /// Struck at this velocity (and still down).
    Down(u8),
    /// Let go.
    Up,
    /// Struck and let go between two looks: sound it, and release it at once.
    Tapped(u8),
}

/// One reader's view of a [`Keyboard`]: the state it last saw of every key.
#[derive(Clone, Debug)]
pub struct KeyReader {
    seen: [u32; KEYS],
    /// Whether `seen` is from the last look; a reader that was not looking starts from what
    /// is down now, without sounding keys struck while it was away.
    following: bool,
}

impl Default for KeyReader {
    fn default() -> Self {
        KeyReader { seen: [0; KEYS], following: false }
    }
}

impl KeyReader {
    /// Calls `change` for each key that changed since the last look, lowest pitch first. Never
    /// allocates.
    pub fn read(&mut self, keyboard: &Keyboard, mut change: impl FnMut(u8, KeyChange)) {
        let following = std::mem::replace(&mut self.following, true);
        for (pitch, (key, seen)) in keyboard.keys.iter().zip(self.seen.iter_mut()).enumerate() {
            let now = key.load(Ordering::Acquire);
            let before = std::mem::replace(seen, now);
            if now == before {
                continue;
            }
            let (pitch, velocity) = (pitch as u8, (now & 0x7F) as u8);
            let struck = now >> 8 != before >> 8;
            match (struck, now & DOWN != 0) {
                (true, true) => change(pitch, KeyChange::Down(velocity)),
                (true, false) if following => change(pitch, KeyChange::Tapped(velocity)),
                (false, false) if following => change(pitch, KeyChange::Up),
                _ => {}
            }
        }
    }

    /// Stops following: the next [`KeyReader::read`] starts from what is down then.
    pub fn stop(&mut self) {
        self.following = false;
    }

    /// Whether the last look was recent (no [`KeyReader::stop`] since).
    pub fn following(&self) -> bool {
        self.following
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(reader: &mut KeyReader, keyboard: &Keyboard) -> Vec<(u8, KeyChange)> {
        let mut seen = Vec::new();
        reader.read(keyboard, |pitch, change| seen.push((pitch, change)));
        seen
    }

    #[test]
    fn a_reader_sees_presses_lifts_and_taps_between_looks() {
        let keyboard = Keyboard::default();
        let mut reader = KeyReader::default();
        assert_eq!(changes(&mut reader, &keyboard), []);
        keyboard.press(60, 100);
        keyboard.press(64, 90);
        assert_eq!(changes(&mut reader, &keyboard), [(60, KeyChange::Down(100)), (64, KeyChange::Down(90))]);
        assert_eq!(changes(&mut reader, &keyboard), [], "nothing changed");
        keyboard.lift(60);
        assert_eq!(changes(&mut reader, &keyboard), [(60, KeyChange::Up)]);
        keyboard.press(67, 80);
        keyboard.lift(67);
        assert_eq!(changes(&mut reader, &keyboard), [(67, KeyChange::Tapped(80))]);
        keyboard.press(64, 50);
        assert_eq!(changes(&mut reader, &keyboard), [(64, KeyChange::Down(50))], "struck again while held");
        keyboard.press(64, 0);
        assert_eq!(changes(&mut reader, &keyboard), [(64, KeyChange::Up)], "a note-on at 0 lifts");
    }

    #[test]
    fn a_reader_that_was_away_does_not_sound_what_it_missed() {
        let keyboard = Keyboard::default();
        let mut reader = KeyReader::default();
        keyboard.press(60, 100);
        keyboard.lift(60);
        keyboard.press(62, 70);
        assert_eq!(changes(&mut reader, &keyboard), [(62, KeyChange::Down(70))], "only what is down now");
        reader.stop();
        keyboard.lift(62);
        keyboard.press(65, 40);
        keyboard.lift(65);
        assert_eq!(changes(&mut reader, &keyboard), []);
        assert!(!keyboard.any_down());
        keyboard.press(1, 1);
        keyboard.lift_all();
        assert!(!keyboard.any_down());
    }
}
