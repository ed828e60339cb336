//! The audit trail as a Merkle tree (RFC 9162 §2.1): leaf hash = SHA-256(0x00 ‖ record
//! line without its newline), node hash = SHA-256(0x01 ‖ left ‖ right), a tree of `n`
//! leaves split at the largest power of two smaller than `n`. Leaf `i` is the record of
//! `seq = i + 1` (seq is monotonic across file rotation, so the tree spans all files).
//!
//! [`Tree`] keeps, for every level `k`, the hash of each *complete* aligned subtree of
//! `2^k` leaves (about `2n` hashes, 64 bytes per record). Those never change as the tree
//! grows, so the root of any earlier size, an inclusion proof and a consistency proof are
//! computed from them with O(log² n) hash operations and no I/O.
//!
//! Pure: no I/O, no clock. The verification functions are the RFC's §2.1.3.2 (inclusion)
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
}

/// The tree: the hashes of every complete aligned subtree, level by level.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    /// `levels[k][i]` = hash of leaves `i·2^k .. (i+1)·2^k`.
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    /// The empty tree.
    pub fn new() -> Self {
        Tree::default()
    }

    /// Leaves in the tree.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// The hash of leaf `index` (`index < size`).
    pub fn leaf(&self, index: u64) -> Hash {
        self.levels[0][index as usize]
    }

    /// Appends a leaf (its [`leaf_hash`]).
    pub fn push(&mut self, leaf: Hash) {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].push(leaf);
        let mut k = 0;
        while self.levels[k].len().is_multiple_of(2) {
            let l = &self.levels[k];
            let node = node_hash(&l[l.len() - 2], &l[l.len() - 1]);
            if self.levels.len() == k + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[k + 1].push(node);
            k += 1;
        }
    }

    /// MTH of leaves `start..end` (`start < end <= size`), where `start` is a multiple of
    /// the largest power of two not above `end - start` — true of every subtree the RFC's
    /// recursion visits.
    fn subtree(&self, start: u64, end: u64) -> Hash {
        let n = end - start;
        if n.is_power_of_two() && start.is_multiple_of(n) {
            let k = n.trailing_zeros() as usize;
            return self.levels[k][(start / n) as usize];
        }
        let k = split(n);
        node_hash(
            &self.subtree(start, start + k),
            &self.subtree(start + k, end),
        )
    }

    /// The root of the tree's first `size` leaves.
    pub fn root(&self, size: u64) -> Result<Hash, ProofError> {
        self.check_size(size)?;
        Ok(if size == 0 {
            empty_root()
        } else {
            self.subtree(0, size)
        })
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
        self.path(index, 0, size, &mut path);
        Ok(path)
    }

    fn path(&self, m: u64, start: u64, end: u64, out: &mut Vec<Hash>) {
        let n = end - start;
        if n == 1 {
            return;
        }
        let k = split(n);
        if m - start < k {
            self.path(m, start, start + k, out);
            out.push(self.subtree(start + k, end));
        } else {
            self.path(m, start + k, end, out);
            out.push(self.subtree(start, start + k));
        }
    }

    /// The consistency proof (RFC 9162 §2.1.4.1) between the trees of the first `from`
    /// and `to` leaves (`0 < from <= to <= size`; empty when `from == to`).
    pub fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(to)?;
        if from == 0 || from > to {
            return Err(ProofError::BadRange { from, to });
        }
        let mut out = Vec::new();
        self.subproof(from, 0, to, true, &mut out);
        Ok(out)
    }

    fn subproof(&self, m: u64, start: u64, end: u64, whole: bool, out: &mut Vec<Hash>) {
        let n = end - start;
        if m == n {
            if !whole {
                out.push(self.subtree(start, end));
            }
            return;
        }
        let k = split(n);
        if m <= k {
            self.subproof(m, start, start + k, whole, out);
            out.push(self.subtree(start + k, end));
        } else {
            self.subproof(m - k, start + k, end, false, out);
            out.push(self.subtree(start, start + k));
        }
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

    /// The RFC's recursive MTH, straight from the definition (the reference).
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

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("{{\"seq\":{}}}", i + 1).as_bytes()))
            .collect()
    }

    fn tree(n: u64) -> Tree {
        let mut t = Tree::new();
        for l in leaves(n) {
            t.push(l);
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
        let t = tree(70);
        for size in 0..=70u64 {
            assert_eq!(t.root(size).unwrap(), mth(&all[..size as usize]), "{size}");
        }
        assert!(matches!(t.root(71), Err(ProofError::TooLarge { .. })));
    }

    #[test]
    fn every_inclusion_proof_of_sizes_1_to_70_verifies_and_fails_when_tampered() {
        let all = leaves(70);
        let t = tree(70);
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
        let t = tree(70);
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
        let t = tree(40);
        all[17] = leaf_hash(b"changed");
        let mut u = Tree::new();
        for l in &all {
            u.push(*l);
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
            t.push(leaf_hash(d));
            assert_eq!(
                to_hex(&t.root(i as u64 + 1).unwrap()),
                roots[i],
                "{}",
                i + 1
            );
        }
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
