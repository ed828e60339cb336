//! `tree-leaves.bin`: the [`LeafStore`] of the audit Merkle tree, a file beside the trail
//! holding the 32-byte leaf hash of every record in completed chunks, chunk `c` at byte
//! `c · 2^CHUNK_BITS · 32`. It is derived data: rebuilt from the trail at every start and
//! after every recovery of the trail, never fsynced, and every chunk read back is checked against the root kept in memory before a
//! proof uses it ([`super::merkle`]).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::merkle::{Hash, LeafStore};

/// The leaf file's name in the audit directory.
pub const LEAVES_FILE: &str = "tree-leaves.bin";

/// A [`LeafStore`] on a file.
#[derive(Debug)]
pub struct FileLeaves {
    file: File,
    /// Leaves per chunk.
    chunk_len: u64,
}

impl FileLeaves {
    /// Starts a new, empty leaf file for a tree about to be (re)built, chunks of
    /// `chunk_len` leaves: `<dir>/tree-leaves.bin` is unlinked first, so a tree still
    /// answering proofs from the old file keeps reading it through its open handle.
    pub fn create(dir: &Path, chunk_len: u64) -> io::Result<Self> {
        let path = dir.join(LEAVES_FILE);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok(FileLeaves { file, chunk_len })
    }

    fn offset(&self, chunk: u64) -> u64 {
        chunk * self.chunk_len * 32
    }
}

impl LeafStore for FileLeaves {
    fn put(&mut self, chunk: u64, leaves: &[Hash]) -> io::Result<()> {
        self.file
            .write_all_at(leaves.as_flattened(), self.offset(chunk))
    }

    fn get(&self, chunk: u64, count: usize) -> io::Result<Vec<Hash>> {
        let mut bytes = vec![0u8; count * 32];
        self.file.read_exact_at(&mut bytes, self.offset(chunk))?;
        Ok(bytes
            .chunks_exact(32)
            .map(|c| c.try_into().expect("32 bytes"))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::merkle::{Tree, leaf_hash, verify_inclusion};

    #[test]
    fn chunks_round_trip_through_the_file_and_a_damaged_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileLeaves::create(dir.path(), 4).unwrap();
        let leaves: Vec<Hash> = (0..8u8).map(|i| leaf_hash(&[i])).collect();
        store.put(1, &leaves[4..]).unwrap();
        store.put(0, &leaves[..4]).unwrap();
        assert_eq!(store.get(0, 4).unwrap(), leaves[..4]);
        assert_eq!(store.get(1, 4).unwrap(), leaves[4..]);
        // Beyond the end: an error, not zeros.
        assert!(store.get(2, 4).is_err());
        let file = dir.path().join(LEAVES_FILE);
        assert_eq!(fs::metadata(&file).unwrap().len(), 8 * 32);

        // Starting again empties it, and a handle to the old file still reads the old one.
        let again = FileLeaves::create(dir.path(), 4).unwrap();
        assert_eq!(store.get(1, 4).unwrap(), leaves[4..]);
        assert_eq!(fs::metadata(&file).unwrap().len(), 0);
        drop(again);

        // A tree over the file; the file changed under it: proofs into that chunk refused.
        let store = FileLeaves::create(dir.path(), 4).unwrap();
        let mut tree = Tree::with_store(Box::new(store), 2);
        let all: Vec<Hash> = (0..10u8).map(|i| leaf_hash(&[i])).collect();
        for l in &all {
            tree.push(*l).unwrap();
        }
        let root = tree.root(10).unwrap();
        let path = tree.inclusion_proof(1, 10).unwrap();
        assert!(verify_inclusion(1, 10, &all[1], &path, &root));
        let f = OpenOptions::new().write(true).open(&file).unwrap();
        f.write_all_at(&[0xff], 33).unwrap();
        assert!(tree.inclusion_proof(1, 10).is_err());
        assert!(tree.inclusion_proof(5, 10).is_ok());
        // Truncated: refused too.
        f.set_len(40).unwrap();
        assert!(tree.inclusion_proof(5, 10).is_err());
    }
}
