use ensemble_protocol::frame::{DEFAULT_MAX_FRAME, HEADER_LEN};
use ensemble_protocol::wire::check_protocol_version;
use ensemble_protocol::*;

use crate::fixture::*;

fn hello() -> ClientMsg {
    ClientMsg::Hello { protocol_version: PROTOCOL_VERSION, client: "ensemble-test".into() }
}

#[test]
fn a_frame_is_a_big_endian_length_then_the_body() {
    let bytes = FrameCodec::default().encode_to_vec(&hello()).unwrap();
    let len = u32::from_be_bytes(bytes[..HEADER_LEN].try_into().unwrap()) as usize;
    assert_eq!(len, bytes.len() - HEADER_LEN);
    let (message, used) = FrameCodec::default().decode::<ClientMsg>(&bytes).unwrap();
    assert_eq!((message, used), (hello(), bytes.len()));
}

#[test]
fn frames_follow_each_other_in_one_buffer() {
    let codec = FrameCodec::default();
    let mut bytes = Vec::new();
    let write = ClientMsg::Write(tx(vec![Op::Delete { target: KICK.into() }]));
    codec.encode(&hello(), &mut bytes).unwrap();
    codec.encode(&write, &mut bytes).unwrap();
    let (first, used) = codec.decode::<ClientMsg>(&bytes).unwrap();
    let (second, rest) = codec.decode::<ClientMsg>(&bytes[used..]).unwrap();
    assert_eq!((first, second, used + rest), (hello(), write, bytes.len()));
}

#[test]
fn an_oversize_frame_is_refused_from_its_header() {
    let codec = FrameCodec::new(64);
    let header = (DEFAULT_MAX_FRAME as u32 + 1).to_be_bytes();
    assert_eq!(codec.body_len(header), Err(FrameError::TooLarge { len: DEFAULT_MAX_FRAME + 1, max: 64 }));
    // The header alone is enough: the body is never awaited.
    assert_eq!(codec.decode::<ClientMsg>(&header), Err(FrameError::TooLarge { len: DEFAULT_MAX_FRAME + 1, max: 64 }));
}

#[test]
fn an_oversize_message_is_not_encoded() {
    let codec = FrameCodec::new(64);
    let mut out = vec![1, 2, 3];
    let big = ClientMsg::Hello { protocol_version: 1, client: "x".repeat(100) };
    assert!(matches!(codec.encode(&big, &mut out), Err(FrameError::TooLarge { max: 64, .. })));
    assert_eq!(out, vec![1, 2, 3], "a failed encode must leave the buffer as it was");
}

#[test]
fn a_short_buffer_is_truncated() {
    let bytes = FrameCodec::default().encode_to_vec(&hello()).unwrap();
    let codec = FrameCodec::default();
    assert_eq!(codec.decode::<ClientMsg>(&bytes[..2]), Err(FrameError::Truncated { needed: 4, available: 2 }));
    let cut = bytes.len() - 1;
    assert_eq!(
        codec.decode::<ClientMsg>(&bytes[..cut]),
        Err(FrameError::Truncated { needed: bytes.len(), available: cut })
    );
}

#[test]
fn a_body_that_is_not_a_message_is_malformed() {
    let codec = FrameCodec::default();
    let mut bytes = vec![0, 0, 0, 2, 200, 7];
    assert!(matches!(codec.decode::<ClientMsg>(&bytes), Err(FrameError::Malformed(_))));
    // A valid message followed by stray bytes inside the same frame is malformed too.
    let mut body = FrameCodec::default().encode_to_vec(&hello()).unwrap().split_off(HEADER_LEN);
    body.push(0);
    bytes = (body.len() as u32).to_be_bytes().to_vec();
    bytes.extend(&body);
    let error = codec.decode::<ClientMsg>(&bytes).unwrap_err();
    assert_eq!(error, FrameError::Malformed("1 bytes after the message".into()));
}

#[test]
fn a_string_claiming_more_than_the_frame_does_not_allocate_it() {
    // Hello, version 1, then a client name claiming u64::MAX bytes.
    let body = [0, 1, 255, 255, 255, 255, 255, 255, 255, 255, 255];
    let result = FrameCodec::default().decode_body::<ClientMsg>(&body);
    assert!(matches!(result, Err(FrameError::Malformed(_))), "{result:?}");
}

#[test]
fn the_handshake_refuses_another_protocol_version() {
    assert_eq!(check_protocol_version(PROTOCOL_VERSION), Ok(()));
    assert_eq!(
        check_protocol_version(PROTOCOL_VERSION + 1),
        Err(FrameError::VersionMismatch { ours: PROTOCOL_VERSION, theirs: PROTOCOL_VERSION + 1 })
    );
}
