//! Live MIDI input: a controller's notes, for recording onto a track with an instrument.
//!
//! A thread of its own looks for a MIDI input port (through `midir`: ALSA's sequencer on
//! Linux, CoreMIDI, WinMM) every two seconds until one appears, connects the first, and hands
//! each note-on and note-off it sends to [`MidiIn`] with the instant it arrived; a port that
//! goes away is looked for again. With no port (CI, this machine) nothing arrives, and tests
//! hand their own events to [`MidiIn::sender`]. Recording ([`crate::record`]) turns the notes
//! played during a take into a note clip.
//!
//! The same thread also presses the playback's [`Keys`] as the notes arrive, so the armed
//! instrument sounds them at once, without waiting for the app's next frame.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bevy::prelude::*;
use ensemble_audio::keyboard::Keyboard;

use crate::playback::Keys;

/// Listens to a MIDI controller when there is one.
pub struct MidiInPlugin;

impl Plugin for MidiInPlugin {
    fn build(&self, app: &mut App) {
        let keys = app.world_mut().get_resource_or_init::<Keys>().0.clone();
        let input = MidiIn::new();
        input.listen(keys);
        app.insert_resource(input);
    }
}

/// A note from the controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MidiEvent {
    /// When it arrived.
    pub at: Instant,
    /// The key: 60 is middle C.
    pub pitch: u8,
    /// 1–127 for a key going down; 0 for one coming up.
    pub velocity: u8,
}

impl MidiEvent {
    /// The note in a MIDI message (note-on, or note-off, on any channel), if it holds one. A
    /// note-on at velocity 0 is a note-off, as running status senders use it.
    pub fn parse(at: Instant, message: &[u8]) -> Option<MidiEvent> {
        match *message {
            [status, pitch, velocity, ..] if status & 0xF0 == 0x90 => {
                Some(MidiEvent { at, pitch: pitch & 0x7F, velocity: velocity & 0x7F })
            }
            [status, pitch, _, ..] if status & 0xF0 == 0x80 => Some(MidiEvent { at, pitch: pitch & 0x7F, velocity: 0 }),
            _ => None,
        }
    }
}

/// The notes arriving from the controller, and which port it is.
#[derive(Resource)]
pub struct MidiIn {
    sender: Sender<MidiEvent>,
    events: Mutex<Receiver<MidiEvent>>,
    port: Arc<Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
}

/// How often the listener looks for a port while it has none.
const LOOK_EVERY: Duration = Duration::from_secs(2);

impl MidiIn {
    /// An input that receives only what is sent to [`MidiIn::sender`] (until it listens).
    pub fn new() -> MidiIn {
        let (sender, events) = channel();
        MidiIn { sender, events: Mutex::new(events), port: Arc::default(), stop: Arc::default() }
    }

    /// Where events come in: the controller's thread holds one, and tests may too.
    pub fn sender(&self) -> Sender<MidiEvent> {
        self.sender.clone()
    }

    /// The controller's port, while one is connected.
    pub fn port(&self) -> Option<String> {
        self.port.lock().ok().and_then(|port| port.clone())
    }

    /// Takes every event that has arrived, oldest first.
    pub fn drain(&self) -> Vec<MidiEvent> {
        self.events.lock().map(|events| events.try_iter().collect()).unwrap_or_default()
    }

    /// Starts the thread that connects to the first port there is, and keeps looking; it
    /// presses `keys` as the notes arrive.
    fn listen(&self, keys: Arc<Keyboard>) {
        let (sender, port, stop) = (self.sender.clone(), self.port.clone(), self.stop.clone());
        let spawned = std::thread::Builder::new().name("ensemble-midi-in".into()).spawn(move || {
            let mut connection = None;
            let mut said = false;
            while !stop.load(Ordering::Relaxed) {
                if connection.is_none() || !still_there(&port) {
                    if connection.take().is_some() {
                        // Gone mid-phrase: nothing it held may hang.
                        keys.lift_all();
                    }
                    if let Ok(mut port) = port.lock() {
                        *port = None;
                    }
                    match connect(sender.clone(), keys.clone()) {
                        Ok((made, name)) => {
                            info!("MIDI input: {name}");
                            connection = Some(made);
                            if let Ok(mut port) = port.lock() {
                                *port = Some(name);
                            }
                        }
                        Err(reason) if !said => {
                            info!("no MIDI input yet ({reason}); looking every {} s", LOOK_EVERY.as_secs());
                            said = true;
                        }
                        Err(_) => {}
                    }
                }
                std::thread::sleep(LOOK_EVERY);
            }
            drop(connection);
        });
        if let Err(error) = spawned {
            warn!("no MIDI input: {error}");
        }
    }
}

impl Default for MidiIn {
    fn default() -> Self {
        MidiIn::new()
    }
}

impl Drop for MidiIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Whether the system can have MIDI ports at all. On Linux that is ALSA's sequencer device:
/// without it every try would only have ALSA print its failure, every two seconds.
fn midi_possible() -> bool {
    !cfg!(target_os = "linux") || std::path::Path::new("/dev/snd/seq").exists()
}

/// Connects to the first MIDI input port, pressing `keys` and sending its notes to `sender`.
fn connect(sender: Sender<MidiEvent>, keys: Arc<Keyboard>) -> Result<(midir::MidiInputConnection<()>, String), String> {
    if !midi_possible() {
        return Err("no MIDI sequencer on this system".into());
    }
    let input = midir::MidiInput::new("Ensemble").map_err(|error| error.to_string())?;
    let ports = input.ports();
    let port = ports.first().ok_or("no MIDI input port")?;
    let name = input.port_name(port).map_err(|error| error.to_string())?;
    let connection = input
        .connect(
            port,
            "Ensemble input",
            move |_, message, ()| {
                if let Some(event) = MidiEvent::parse(Instant::now(), message) {
                    keys.press(event.pitch, event.velocity);
                    let _ = sender.send(event);
                }
            },
            (),
        )
        .map_err(|error| error.to_string())?;
    Ok((connection, name))
}

/// Whether the port `port` names is still offered (a controller unplugged is not).
fn still_there(port: &Mutex<Option<String>>) -> bool {
    let Some(name) = port.lock().ok().and_then(|port| port.clone()) else { return false };
    if !midi_possible() {
        return false;
    }
    let Ok(input) = midir::MidiInput::new("Ensemble probe") else { return false };
    input.ports().iter().any(|offered| input.port_name(offered).is_ok_and(|offered| offered == name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_read_from_note_on_and_note_off_on_any_channel() {
        let now = Instant::now();
        assert_eq!(MidiEvent::parse(now, &[0x93, 60, 100]), Some(MidiEvent { at: now, pitch: 60, velocity: 100 }));
        assert_eq!(MidiEvent::parse(now, &[0x80, 60, 64]), Some(MidiEvent { at: now, pitch: 60, velocity: 0 }));
        assert_eq!(MidiEvent::parse(now, &[0x90, 62, 0]), Some(MidiEvent { at: now, pitch: 62, velocity: 0 }));
        assert_eq!(MidiEvent::parse(now, &[0xB0, 7, 100]), None, "a controller change is not a note");
        assert_eq!(MidiEvent::parse(now, &[0x90, 60]), None, "cut short");
    }
}
