//! The asset cache: a downloaded file is whole, verified, and there when the authority is not.

use ensemble_client::assets::{AssetCache, CachedFile};
use ensemble_client::sync::UploadSource;
use ensemble_net::hash::hash_file;
use ensemble_net::remote::Uploaded;
use ensemble_protocol::transfer::Served;

use crate::harness::Authority;

#[test]
fn a_fetched_asset_plays_offline_and_an_uploaded_one_is_never_downloaded() {
    let mut authority = Authority::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hook.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 44_100,
        bits_per_sample: 24,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(&file, spec).unwrap();
    for i in 0..44_100 {
        writer.write_sample(((i as f32 * 0.05).sin() * 4_000_000.0) as i32).unwrap();
    }
    writer.finalize().unwrap();
    let hash = hash_file(&file).unwrap();

    let alice = authority.remote("alice");
    let uploaded = authority.runtime.block_on(alice.upload(authority.project, &file, "hook.wav", None)).unwrap();
    let Uploaded::Stored { asset, .. } = uploaded else { panic!("not stored: {uploaded:?}") };
    let alice_cache = AssetCache::new(dir.path().join("alice-cache")).unwrap();
    authority.runtime.block_on(alice_cache.insert(hash, &UploadSource::File(file.clone()))).unwrap();
    assert!(alice_cache.get(hash).is_some(), "the uploader keeps its own copy");

    let bob = authority.transport("bob");
    let cache = AssetCache::new(dir.path().join("bob-cache")).unwrap();
    assert_eq!(cache.get(hash), None);
    let fetched = authority.runtime.block_on(cache.fetch(&bob, authority.project, asset, hash, Served::Audio)).unwrap();
    assert_eq!(fetched, CachedFile::Path(cache.path(hash)));

    authority.stop();
    let offline = cache.get(hash).expect("cached");
    let name = offline.with_extension("audio");
    let cached = ensemble_audio::decode::decode_bytes(std::fs::read(&offline).unwrap(), &name, None).unwrap();
    assert_eq!(cached, ensemble_audio::decode::decode_file(&file, None).unwrap(), "the same samples, offline");
    let again = authority.runtime.block_on(cache.fetch(&bob, authority.project, asset, hash, Served::Audio)).unwrap();
    assert_eq!(again, CachedFile::Path(offline), "a cached file needs no authority");
}
