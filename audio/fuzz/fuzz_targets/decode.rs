//! Feeds arbitrary bytes to the decoder under every file name it knows, as an uploaded file
//! would arrive: it must return audio or an error, never panic or hang.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Some((&selector, data)) = bytes.split_first() else { return };
    let name = ["x.wav", "x.aiff", "x.flac", "x.mp3", "x.ogg"][usize::from(selector) % 5];
    if let Ok(pcm) = ensemble_audio::decode::decode_bytes(data.to_vec(), Path::new(name), None) {
        assert!(pcm.channels.iter().all(|channel| channel.len() == pcm.frames()));
    }
});
