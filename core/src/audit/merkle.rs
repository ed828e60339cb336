//! The audit trail as a Merkle tree (RFC 9162 §2.1): leaf hash = SHA-256(0x00 ‖ record
//! line without its newline), node hash = SHA-256(0x01 ‖ left ‖ right), a tree of `n`
//! leaves split at the largest power of two smaller than `n`. Leaf `i` is the record of
//! `seq = i + 1` (seq is monotonic across file rotation, so the tree spans all files).
//!
//! [`Tree`] keeps in memory the hash of each *complete* aligned subtree of at least one
//! chunk (1024 leaves): about `2n / 1024` hashes, ~1/16 byte per record, so a gateway that
//! audits for months does not grow with its trail. Those never change as the tree grows.
//! The leaves of completed chunks go to a [`LeafStore`] (`tree-leaves.bin` beside the
//! trail, [`super::leaves`]); a proof that reaches below a chunk's root reads that chunk
//! back (32 KiB) and uses it only if it hashes to the root kept in memory.
//!
//! Pure: no I/O but through the [`LeafStore`], no clock. The verification functions are the RFC's §2.1.3.2 (inclusion)
//! and §2.1.4.2 (consistency) algorithms, written independently of the proof generation.

use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The leaf hash of a record line (its bytes without the newline).
pub fn leaf_hash(line: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(line);
    h.finalize().into()
}

/// The hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: SHA-256 of no bytes.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Lowercase hex of a hash.
pub fn to_hex(h: &Hash) -> String {
    crate::hexfmt::lower(h)
}

/// A hash from 64 hex digits (either case).
pub fn from_hex(s: &str) -> Option<Hash> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// The largest power of two smaller than `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// Why a proof cannot be given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf is not in a tree of that size.
    #[error("leaf {index} is not in a tree of {size} leaves")]
    LeafOutOfRange {
        /// The leaf index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The tree is not (yet) that large.
    #[error("the tree has {have} leaves, not {asked}")]
    TooLarge {
        /// The size asked for.
        asked: u64,
        /// The tree's size.
        have: u64,
    },
    /// A consistency proof needs `0 < from <= to`.
    #[error("a consistency proof needs 0 < from <= to (from {from}, to {to})")]
    BadRange {
        /// The older size.
        from: u64,
        /// The newer size.
        to: u64,
    },
    /// The leaves of a completed chunk could not be read back from the [`LeafStore`], or
    /// what was read does not hash to the chunk's root kept in memory (the store was
    /// changed or damaged): nothing is computed from them.
    #[error("the leaf hashes of records {}..={} cannot be used: {why}", .first + 1, .last + 1)]
    Store {
        /// The first leaf index of the chunk (the record of seq `first + 1`).
        first: u64,
        /// Its last leaf index.
        last: u64,
        /// What went wrong.
        why: String,
    },
}

/// Where the [`Tree`] keeps the leaf hashes of its completed chunks (`2^chunk_bits`
/// leaves each) out of memory. Only proofs read them back, and every chunk read is
/// checked against its root kept in memory before use.
pub trait LeafStore: Send + Sync {
    /// Keeps the leaves of chunk `chunk` (exactly one chunk's worth).
    fn put(&mut self, chunk: u64, leaves: &[Hash]) -> std::io::Result<()>;
    /// The leaves of chunk `chunk`, as put (`count` of them).
    fn get(&self, chunk: u64, count: usize) -> std::io::Result<Vec<Hash>>;
}

/// A [`LeafStore`] in memory (tests; 32 bytes per leaf, unbounded).
#[derive(Debug, Default)]
pub struct MemoryLeaves {
    chunks: Vec<Vec<Hash>>,
}

impl LeafStore for MemoryLeaves {
    fn put(&mut self, chunk: u64, leaves: &[Hash]) -> std::io::Result<()> {
        let i = chunk as usize;
        if self.chunks.len() <= i {
            self.chunks.resize(i + 1, Vec::new());
        }
        self.chunks[i] = leaves.to_vec();
        Ok(())
    }

    fn get(&self, chunk: u64, _count: usize) -> std::io::Result<Vec<Hash>> {
        self.chunks
            .get(chunk as usize)
            .filter(|c| !c.is_empty())
            .cloned()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such chunk"))
    }
}

/// A [`LeafStore`] that keeps nothing: for a tree whose roots are only ever asked at its
/// current size (`hcgw audit verify` streaming through a trail), which never reads one.
#[derive(Debug, Default)]
pub struct NoLeaves;

impl LeafStore for NoLeaves {
    fn put(&mut self, _chunk: u64, _leaves: &[Hash]) -> std::io::Result<()> {
        Ok(())
    }

    fn get(&self, _chunk: u64, _count: usize) -> std::io::Result<Vec<Hash>> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "this tree keeps no leaves",
        ))
    }
}

/// Leaves per chunk, as a power of two: 1024, so memory holds ~1/16 byte per record and a
/// proof reads back at most a few 32 KiB chunks.
pub const CHUNK_BITS: u32 = 10;

/// The tree, in bounded memory: the hashes of every complete aligned subtree of at least
/// one chunk (`2^chunk_bits` leaves), level by level (about `2n / 2^chunk_bits`
/// hashes), and the leaves of the incomplete last chunk. The leaves of completed chunks
/// go to a [`LeafStore`]; a proof reaching below a chunk's root reads that chunk back and
/// checks it hashes to the root kept here.
pub struct Tree {
    chunk_bits: u32,
    /// `upper[j][i]` = hash of leaves `i·2^(c+j) .. (i+1)·2^(c+j)` (`c` = `chunk_bits`).
    upper: Vec<Vec<Hash>>,
    /// The leaves of the last, incomplete chunk.
    frontier: Vec<Hash>,
    store: Box<dyn LeafStore>,
    /// Completed chunks the store failed to keep: held here and retried.
    unstored: std::collections::BTreeMap<u64, Vec<Hash>>,
}

impl std::fmt::Debug for Tree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tree")
            .field("size", &self.size())
            .field("chunk_bits", &self.chunk_bits)
            .field("unstored_chunks", &self.unstored.len())
            .finish_non_exhaustive()
    }
}

impl Default for Tree {
    fn default() -> Self {
        Tree::new()
    }
}

/// The RFC's MTH of a slice of leaves (at most one chunk here).
fn mth(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n as u64) as usize;
            node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

impl Tree {
    /// The empty tree, its leaves kept in memory ([`MemoryLeaves`]).
    pub fn new() -> Self {
        Tree::with_store(Box::new(MemoryLeaves::default()), CHUNK_BITS)
    }

    /// The empty tree keeping completed chunks of `2^chunk_bits` leaves in `store`.
    pub fn with_store(store: Box<dyn LeafStore>, chunk_bits: u32) -> Self {
        assert!(chunk_bits < 32, "chunks of 2^{chunk_bits} leaves");
        Tree {
            chunk_bits,
            upper: Vec::new(),
            frontier: Vec::new(),
            store,
            unstored: Default::default(),
        }
    }

    fn chunk_len(&self) -> u64 {
        1 << self.chunk_bits
    }

    /// Leaves in the tree.
    pub fn size(&self) -> u64 {
        let chunks = self.upper.first().map_or(0, |l| l.len() as u64);
        (chunks << self.chunk_bits) + self.frontier.len() as u64
    }

    /// Completed chunks held in memory because the store could not keep them.
    pub fn unstored_chunks(&self) -> usize {
        self.unstored.len()
    }

    /// Appends a leaf (its [`leaf_hash`]). When it completes a chunk, the chunk goes to
    /// the store; `Err`: the store failed (the leaf is in the tree all the same, its chunk
    /// held in memory and offered to the store again with the next completed chunk).
    pub fn push(&mut self, leaf: Hash) -> std::io::Result<()> {
        self.frontier.push(leaf);
        if (self.frontier.len() as u64) < self.chunk_len() {
            return Ok(());
        }
        let leaves = std::mem::take(&mut self.frontier);
        let chunk = self.upper.first().map_or(0, |l| l.len() as u64);
        self.carry(mth(&leaves));
        self.unstored.insert(chunk, leaves);
        let mut result = Ok(());
        while let Some((&c, leaves)) = self.unstored.first_key_value() {
            if let Err(e) = self.store.put(c, leaves) {
                result = Err(e);
                break;
            }
            self.unstored.remove(&c);
        }
        result
    }

    /// Adds a completed chunk's root and the aligned subtrees it completes.
    fn carry(&mut self, root: Hash) {
        if self.upper.is_empty() {
            self.upper.push(Vec::new());
        }
        self.upper[0].push(root);
        let mut j = 0;
        while self.upper[j].len().is_multiple_of(2) {
            let l = &self.upper[j];
            let node = node_hash(&l[l.len() - 2], &l[l.len() - 1]);
            if self.upper.len() == j + 1 {
                self.upper.push(Vec::new());
            }
            self.upper[j + 1].push(node);
            j += 1;
        }
    }

    /// The hash of leaf `index` (`index < size`).
    pub fn leaf(&self, index: u64) -> Result<Hash, ProofError> {
        self.check_size(index + 1)?;
        let reader = Reader::new(self);
        let leaves = reader.chunk(index >> self.chunk_bits)?;
        Ok(leaves[(index & (self.chunk_len() - 1)) as usize])
    }

    /// The root of the tree's first `size` leaves.
    pub fn root(&self, size: u64) -> Result<Hash, ProofError> {
        self.check_size(size)?;
        if size == 0 {
            return Ok(empty_root());
        }
        Reader::new(self).subtree(0, size)
    }

    fn check_size(&self, size: u64) -> Result<(), ProofError> {
        if size > self.size() {
            return Err(ProofError::TooLarge {
                asked: size,
                have: self.size(),
            });
        }
        Ok(())
    }

    /// The inclusion proof (audit path, RFC 9162 §2.1.3.1) of leaf `index` in the tree of
    /// the first `size` leaves, from the leaf up.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(size)?;
        if index >= size {
            return Err(ProofError::LeafOutOfRange { index, size });
        }
        let mut path = Vec::new();
        Reader::new(self).path(index, 0, size, &mut path)?;
        Ok(path)
    }

    /// The consistency proof (RFC 9162 §2.1.4.1) between the trees of the first `from`
    /// and `to` leaves (`0 < from <= to <= size`; empty when `from == to`).
    pub fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(to)?;
        if from == 0 || from > to {
            return Err(ProofError::BadRange { from, to });
        }
        let mut out = Vec::new();
        Reader::new(self).subproof(from, 0, to, true, &mut out)?;
        Ok(out)
    }
}

/// One proof's view of a [`Tree`]: the chunks it read back, each read (and checked) once.
struct Reader<'t> {
    tree: &'t Tree,
    read: std::cell::RefCell<Vec<(u64, std::rc::Rc<Vec<Hash>>)>>,
}

impl<'t> Reader<'t> {
    fn new(tree: &'t Tree) -> Self {
        Reader {
            tree,
            read: Default::default(),
        }
    }

    /// The leaves of chunk `c`: the frontier, a chunk held in memory, or one read back
    /// from the store and checked against its root.
    fn chunk(&self, c: u64) -> Result<std::rc::Rc<Vec<Hash>>, ProofError> {
        let t = self.tree;
        if let Some((_, leaves)) = self.read.borrow().iter().find(|(i, _)| *i == c) {
            return Ok(leaves.clone());
        }
        let complete = t.upper.first().map_or(0, |l| l.len() as u64);
        if c == complete {
            let leaves = std::rc::Rc::new(t.frontier.clone());
            self.read.borrow_mut().push((c, leaves.clone()));
            return Ok(leaves);
        }
        let n = t.chunk_len();
        let refuse = |why: String| ProofError::Store {
            first: c * n,
            last: c * n + n - 1,
            why,
        };
        let leaves = match t.unstored.get(&c) {
            Some(l) => l.clone(),
            None => t
                .store
                .get(c, n as usize)
                .map_err(|e| refuse(e.to_string()))?,
        };
        if leaves.len() as u64 != n {
            return Err(refuse(format!(
                "{} leaves where {n} were kept",
                leaves.len()
            )));
        }
        if mth(&leaves) != t.upper[0][c as usize] {
            return Err(refuse(
                "they do not hash to the chunk's root (the leaf store was changed)".into(),
            ));
        }
        let leaves = std::rc::Rc::new(leaves);
        self.read.borrow_mut().push((c, leaves.clone()));
        Ok(leaves)
    }

    /// MTH of leaves `start..end` (`start < end <= size`), for the subtrees the RFC's
    /// recursion visits: each lies inside one aligned block of the next power of two
    /// above its size, so one below a chunk lies inside one chunk.
    fn subtree(&self, start: u64, end: u64) -> Result<Hash, ProofError> {
        let t = self.tree;
        let n = end - start;
        let bits = t.chunk_bits;
        if n.is_power_of_two() && start.is_multiple_of(n) && n >= t.chunk_len() {
            let j = (n.trailing_zeros() - bits) as usize;
            return Ok(t.upper[j][(start / n) as usize]);
        }
        if start >> bits == (end - 1) >> bits {
            let leaves = self.chunk(start >> bits)?;
            let base = (start >> bits) << bits;
            return Ok(mth(&leaves[(start - base) as usize..(end - base) as usize]));
        }
        let k = split(n);
        Ok(node_hash(
            &self.subtree(start, start + k)?,
            &self.subtree(start + k, end)?,
        ))
    }

    fn path(&self, m: u64, start: u64, end: u64, out: &mut Vec<Hash>) -> Result<(), ProofError> {
        let n = end - start;
        if n == 1 {
            return Ok(());
        }
        let k = split(n);
        if m - start < k {
            self.path(m, start, start + k, out)?;
            out.push(self.subtree(start + k, end)?);
        } else {
            self.path(m, start + k, end, out)?;
            out.push(self.subtree(start, start + k)?);
        }
        Ok(())
    }

    fn subproof(
        &self,
        m: u64,
        start: u64,
        end: u64,
        whole: bool,
        out: &mut Vec<Hash>,
    ) -> Result<(), ProofError> {
        let n = end - start;
        if m == n {
            if !whole {
                out.push(self.subtree(start, end)?);
            }
            return Ok(());
        }
        let k = split(n);
        if m <= k {
            self.subproof(m, start, start + k, whole, out)?;
            out.push(self.subtree(start + k, end)?);
        } else {
            self.subproof(m - k, start + k, end, false, out)?;
            out.push(self.subtree(start, start + k)?);
        }
        Ok(())
    }
}

/// RFC 9162 §2.1.3.2: whether `path` proves leaf `index` (hash `leaf`) is in the tree of
/// `size` leaves whose root is `root`.
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, path: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == *root
}

/// RFC 9162 §2.1.4.2: whether `path` proves the tree of `from` leaves (root `from_root`)
/// is a prefix of the tree of `to` leaves (root `to_root`). `from == to` needs an empty
/// path and equal roots; `from == 0` is refused (nothing to prove).
pub fn verify_consistency(
    from: u64,
    to: u64,
    from_root: &Hash,
    to_root: &Hash,
    path: &[Hash],
) -> bool {
    if from == 0 || from > to {
        return false;
    }
    if from == to {
        return path.is_empty() && from_root == to_root;
    }
    let mut path: Vec<Hash> = path.to_vec();
    if from.is_power_of_two() {
        path.insert(0, *from_root);
    }
    if path.is_empty() {
        return false;
    }
    let (mut fn_, mut sn) = (from - 1, to - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    fr == *from_root && sr == *to_root && sn == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    // The reference root is the module's `mth`, the RFC's recursive definition over a
    // slice; `the_rfc_6962_reference_roots` pins it to published vectors.

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("{{\"seq\":{}}}", i + 1).as_bytes()))
            .collect()
    }

    /// Chunk sizes the proof tests run with: every leaf its own chunk, small chunks whose
    /// boundaries 70 leaves cross many times, and the production size (all in memory).
    const BITS: [u32; 5] = [0, 1, 2, 3, CHUNK_BITS];

    fn tree_with(n: u64, bits: u32) -> Tree {
        let mut t = Tree::with_store(Box::new(MemoryLeaves::default()), bits);
        for l in leaves(n) {
            t.push(l).unwrap();
        }
        t
    }

    #[test]
    fn prefixes_are_domain_separated() {
        let l = leaf_hash(b"");
        // SHA-256(0x00), the RFC 6962 test vector for the empty leaf.
        assert_eq!(
            to_hex(&l),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        assert_eq!(
            to_hex(&empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_ne!(node_hash(&l, &l), leaf_hash(&[l, l].concat()));
    }

    #[test]
    fn roots_match_the_recursive_definition_for_every_size_and_prefix() {
        let all = leaves(70);
        for bits in BITS {
            let t = tree_with(70, bits);
            for size in 0..=70u64 {
                assert_eq!(t.root(size).unwrap(), mth(&all[..size as usize]), "{size}");
            }
            for (i, l) in all.iter().enumerate() {
                assert_eq!(t.leaf(i as u64).unwrap(), *l);
            }
            assert!(matches!(t.root(71), Err(ProofError::TooLarge { .. })));
            assert!(matches!(t.leaf(70), Err(ProofError::TooLarge { .. })));
        }
    }

    #[test]
    fn every_inclusion_proof_of_sizes_1_to_70_verifies_and_fails_when_tampered() {
        for bits in BITS {
            inclusion_proofs(bits);
        }
    }

    fn inclusion_proofs(bits: u32) {
        let all = leaves(70);
        let t = tree_with(70, bits);
        for size in 1..=70u64 {
            let root = t.root(size).unwrap();
            for i in 0..size {
                let path = t.inclusion_proof(i, size).unwrap();
                let leaf = all[i as usize];
                assert!(verify_inclusion(i, size, &leaf, &path, &root), "{i}/{size}");
                // Wrong leaf, index, root, or a changed/missing/extra hash: refused. (The size
                // is bound by the root, which the signed tree head binds to it.)
                let mut other = leaf;
                other[0] ^= 1;
                assert!(!verify_inclusion(i, size, &other, &path, &root));
                if size > 1 {
                    assert!(!verify_inclusion((i + 1) % size, size, &leaf, &path, &root));
                }
                let mut bad_root = root;
                bad_root[31] ^= 0x80;
                assert!(!verify_inclusion(i, size, &leaf, &path, &bad_root));
                for j in 0..path.len() {
                    let mut p = path.clone();
                    p[j][5] ^= 4;
                    assert!(!verify_inclusion(i, size, &leaf, &p, &root));
                }
                if !path.is_empty() {
                    assert!(!verify_inclusion(
                        i,
                        size,
                        &leaf,
                        &path[..path.len() - 1],
                        &root
                    ));
                }
                let mut longer = path.clone();
                longer.push(root);
                assert!(!verify_inclusion(i, size, &leaf, &longer, &root));
            }
            assert!(matches!(
                t.inclusion_proof(size, size),
                Err(ProofError::LeafOutOfRange { .. })
            ));
            assert!(!verify_inclusion(size, size, &all[0], &[], &root));
        }
    }

    #[test]
    fn every_consistency_proof_of_sizes_1_to_70_verifies_and_fails_when_tampered() {
        for bits in BITS {
            consistency_proofs(bits);
        }
    }

    fn consistency_proofs(bits: u32) {
        let t = tree_with(70, bits);
        for to in 1..=70u64 {
            let to_root = t.root(to).unwrap();
            for from in 1..=to {
                let from_root = t.root(from).unwrap();
                let path = t.consistency_proof(from, to).unwrap();
                assert!(
                    verify_consistency(from, to, &from_root, &to_root, &path),
                    "{from}->{to}"
                );
                let mut bad = from_root;
                bad[0] ^= 1;
                assert!(!verify_consistency(from, to, &bad, &to_root, &path));
                let mut bad = to_root;
                bad[0] ^= 1;
                assert!(!verify_consistency(from, to, &from_root, &bad, &path));
                for j in 0..path.len() {
                    let mut p = path.clone();
                    p[j][9] ^= 2;
                    assert!(!verify_consistency(from, to, &from_root, &to_root, &p));
                }
                if from < to {
                    assert!(!path.is_empty());
                    assert!(!verify_consistency(
                        from,
                        to,
                        &from_root,
                        &to_root,
                        &path[..path.len() - 1]
                    ));
                    // A proof for other sizes does not pass for these.
                    if from > 1 {
                        let other = t.root(from - 1).unwrap();
                        assert!(!verify_consistency(from - 1, to, &other, &to_root, &path));
                    }
                }
                let mut longer = path.clone();
                longer.push(to_root);
                assert!(!verify_consistency(from, to, &from_root, &to_root, &longer));
            }
        }
        assert!(matches!(
            t.consistency_proof(0, 5),
            Err(ProofError::BadRange { .. })
        ));
        assert!(matches!(
            t.consistency_proof(6, 5),
            Err(ProofError::BadRange { .. })
        ));
        assert!(matches!(
            t.consistency_proof(5, 71),
            Err(ProofError::TooLarge { .. })
        ));
        let r = t.root(3).unwrap();
        assert!(!verify_consistency(0, 3, &empty_root(), &r, &[]));
        assert!(!verify_consistency(4, 3, &r, &r, &[]));
    }

    #[test]
    fn a_changed_leaf_changes_every_later_root_but_no_earlier_one() {
        let mut all = leaves(40);
        let t = tree_with(40, 2);
        all[17] = leaf_hash(b"changed");
        let mut u = Tree::with_store(Box::new(MemoryLeaves::default()), 2);
        for l in &all {
            u.push(*l).unwrap();
        }
        for size in 1..=40u64 {
            assert_eq!(t.root(size) == u.root(size), size <= 17, "{size}");
        }
        // The old root does not verify the new leaf's inclusion.
        let path = u.inclusion_proof(17, 40).unwrap();
        assert!(!verify_inclusion(
            17,
            40,
            &all[17],
            &path,
            &t.root(40).unwrap()
        ));
        // Nor is the rewritten tree consistent with a head taken before the change...
        let p = u.consistency_proof(20, 40).unwrap();
        assert!(!verify_consistency(
            20,
            40,
            &t.root(20).unwrap(),
            &u.root(40).unwrap(),
            &p
        ));
    }

    #[test]
    fn the_rfc_6962_reference_roots() {
        // The eight test leaves of RFC 6962 / certificate-transparency-go's merkle tests.
        let data: [&[u8]; 8] = [
            b"",
            &[0x00],
            &[0x10],
            &[0x20, 0x21],
            &[0x30, 0x31],
            &[0x40, 0x41, 0x42, 0x43],
            &[0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
            &[
                0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d,
                0x6e, 0x6f,
            ],
        ];
        let roots = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let mut t = Tree::new();
        for (i, d) in data.iter().enumerate() {
            t.push(leaf_hash(d)).unwrap();
            assert_eq!(
                to_hex(&t.root(i as u64 + 1).unwrap()),
                roots[i],
                "{}",
                i + 1
            );
        }
    }

    /// A store whose chunks a test can damage, or make fail.
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<(MemoryLeaves, bool)>>);

    impl LeafStore for Shared {
        fn put(&mut self, chunk: u64, leaves: &[Hash]) -> std::io::Result<()> {
            let mut s = self.0.lock().unwrap();
            if s.1 {
                return Err(std::io::Error::other("disk full"));
            }
            s.0.put(chunk, leaves)
        }
        fn get(&self, chunk: u64, count: usize) -> std::io::Result<Vec<Hash>> {
            self.0.lock().unwrap().0.get(chunk, count)
        }
    }

    #[test]
    fn memory_holds_one_hash_per_chunk_level_not_per_leaf() {
        let t = tree_with(100_000, CHUNK_BITS);
        let held: usize = t.upper.iter().map(Vec::len).sum::<usize>() + t.frontier.len();
        // 97 chunks of 1024 (+ their ancestors) and the 672 leaves of the last one.
        assert_eq!(t.upper[0].len(), 97);
        assert!(held < 97 * 2 + 672, "{held}");
        let all = leaves(100_000);
        assert_eq!(t.root(100_000).unwrap(), mth(&all));
        assert_eq!(t.root(54_321).unwrap(), mth(&all[..54_321]));
        let path = t.inclusion_proof(5_000, 99_999).unwrap();
        assert!(verify_inclusion(
            5_000,
            99_999,
            &all[5_000],
            &path,
            &mth(&all[..99_999])
        ));
    }

    #[test]
    fn a_changed_leaf_store_is_refused_not_used() {
        let store = Shared::default();
        let mut t = Tree::with_store(Box::new(store.clone()), 2);
        for l in leaves(20) {
            t.push(l).unwrap();
        }
        // Chunk 1 (leaves 4..=7) is changed under the tree.
        {
            let mut s = store.0.lock().unwrap();
            let mut c = s.0.get(1, 4).unwrap();
            c[2][0] ^= 1;
            s.0.put(1, &c).unwrap();
        }
        let refused = |r: Result<Vec<Hash>, ProofError>| {
            matches!(
                r,
                Err(ProofError::Store {
                    first: 4,
                    last: 7,
                    ..
                })
            )
        };
        assert!(refused(t.inclusion_proof(5, 20)));
        assert!(refused(t.consistency_proof(6, 20)));
        assert!(matches!(t.root(6), Err(ProofError::Store { .. })));
        assert!(matches!(t.leaf(6), Err(ProofError::Store { .. })));
        // Proofs that stay out of chunk 1 are still given, and still verify.
        let all = leaves(20);
        let p = t.inclusion_proof(13, 20).unwrap();
        assert!(verify_inclusion(13, 20, &all[13], &p, &t.root(20).unwrap()));
        // A chunk missing from the store is refused the same way.
        store.0.lock().unwrap().0.chunks[2].clear();
        assert!(matches!(
            t.inclusion_proof(9, 20),
            Err(ProofError::Store { first: 8, .. })
        ));
    }

    #[test]
    fn chunks_a_failing_store_cannot_keep_are_held_and_offered_again() {
        let store = Shared::default();
        let mut t = Tree::with_store(Box::new(store.clone()), 2);
        let all = leaves(24);
        store.0.lock().unwrap().1 = true;
        let results: Vec<bool> = all[..12].iter().map(|l| t.push(*l).is_ok()).collect();
        // Every fourth leaf completes a chunk, which the store refuses.
        assert_eq!(results.iter().filter(|ok| !**ok).count(), 3);
        assert_eq!(t.unstored_chunks(), 3);
        // Proofs are given from the chunks held in memory meanwhile.
        let p = t.inclusion_proof(1, 12).unwrap();
        assert!(verify_inclusion(1, 12, &all[1], &p, &mth(&all[..12])));
        store.0.lock().unwrap().1 = false;
        for l in &all[12..16] {
            t.push(*l).unwrap();
        }
        assert_eq!(t.unstored_chunks(), 0);
        assert_eq!(store.0.lock().unwrap().0.chunks.len(), 4);
        let p = t.inclusion_proof(2, 16).unwrap();
        assert!(verify_inclusion(2, 16, &all[2], &p, &mth(&all[..16])));
    }

    #[test]
    fn hex_round_trips_and_rejects_bad_text() {
        let h = leaf_hash(b"x");
        assert_eq!(from_hex(&to_hex(&h)), Some(h));
        assert_eq!(from_hex(&to_hex(&h).to_uppercase()), Some(h));
        assert_eq!(from_hex("00"), None);
        assert_eq!(from_hex(&"g".repeat(64)), None);
    }
}
