//! Files named by content: the blake3 of their bytes, as uploads announce them and the
//! authority stores them.

use std::io::Read;
use std::path::Path;

use ensemble_protocol::ContentHash;

/// The hash of everything `reader` yields, read in 8 MiB blocks (each hashed across the cores
/// where there are threads).
pub fn hash_reader(mut reader: impl Read) -> std::io::Result<ContentHash> {
    let mut hasher = blake3::Hasher::new();
    let mut buffer = vec![0; 8 << 20];
    loop {
        let mut filled = 0;
        while filled < buffer.len() {
            let read = reader.read(&mut buffer[filled..])?;
            if read == 0 {
                break;
            }
            filled += read;
        }
        if filled == 0 {
            break;
        }
        hasher.update_rayon(&buffer[..filled]);
    }
    Ok(ContentHash(*hasher.finalize().as_bytes()))
}

/// The hash of the file at `path`.
pub fn hash_file(path: &Path) -> std::io::Result<ContentHash> {
    hash_reader(std::fs::File::open(path)?)
}
