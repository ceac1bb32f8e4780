//! Feeds arbitrary bytes to the frame decoder (main-stream messages and the transfer streams'
//! frames) and to the LAN jam's decoders (beacons, peer messages), as a hostile peer would: it
//! must return a message
//! or an error, never panic, and a decoded message must encode back to a frame that decodes to
//! the same message.
#![no_main]

use ensemble_protocol::jam::{Beacon, JamMsg};
use ensemble_protocol::transfer::{Chunk, TransferReply, TransferRequest};
use ensemble_protocol::{ClientMsg, FrameCodec, ServerMsg};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let codec = FrameCodec::default();
    if let Ok((message, used)) = codec.decode::<ClientMsg>(bytes) {
        assert!(used <= bytes.len());
        let again = codec.encode_to_vec(&message).expect("a decoded message encodes");
        let (twice, _) = codec.decode::<ClientMsg>(&again).expect("an encoded message decodes");
        // NaN floats are not equal to themselves; compare the encodings instead.
        assert_eq!(codec.encode_to_vec(&twice).expect("re-encode"), again);
    }
    let _ = codec.decode::<ServerMsg>(bytes);
    // The first frame of every transfer stream, and each upload chunk's header.
    let _ = codec.decode::<TransferRequest>(bytes);
    let _ = codec.decode::<Chunk>(bytes);
    let _ = codec.decode::<TransferReply>(bytes);
    let _ = codec.decode_body::<ClientMsg>(bytes);
    let _ = codec.decode_body::<ServerMsg>(bytes);
    // Anything on the LAN: a datagram on the beacon port, a renet message from a peer.
    let _ = Beacon::decode(bytes);
    if let Ok(message) = JamMsg::decode(bytes) {
        let again = message.encode().expect("a decoded jam message encodes");
        assert_eq!(JamMsg::decode(&again).map(|m| m.encode().ok()), Ok(Some(again.clone())));
    }
});
