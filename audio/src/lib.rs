//! Ensemble's audio engine: it turns files into sound and pictures of sound.
//!
//! This crate will own decoding (symphonia), waveform peaks (rayon), sample-accurate timeline
//! playback on kira and offline render to WAV; see the "Audio engine" issue and DESIGN.md. It has
//! no network, no Bevy and no database. Nothing is implemented yet, so it exports nothing.
