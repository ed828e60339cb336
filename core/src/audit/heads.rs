//! Signed tree heads ("signed checkpoints" of the audit log, issue 15): every
//! `audit.checkpoint_s` and at shutdown, when the Merkle tree over the records grew, the
//! writer signs `{tree_size, root_hash, time}` with the answer-signing key and appends it
//! to `<audit dir>/tree-heads.jsonl` (append-only JSON lines). Named *tree heads* in the
//! code: "checkpoint" already names a caller role and the chain tips logged every 1000
//! records ([`super::ChainTip`]).
//!
//! The signature is over a fixed text encoding, never over JSON ([`TreeHead::signed_text`]):
//!
//! ```text
//! hcgw-audit-tree-head/v1
//! tree_size: 1234
//! root_hash: <64 lowercase hex>
//! time: 2026-12-02T03:00:00Z
//! key_id: <the key's RFC 7638 thumbprint>
//! algorithm: ecdsa-p256-sha256
//! ```
//!
//! (six lines, each ending in `\n`); `signature` is its standard base64.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::merkle::{self, Hash, NoLeaves, ProofError, Tree};
use crate::signing::{SignatureError, Signer, VerifyingKey};

/// The tree heads file in the audit directory.
pub const HEADS_FILE: &str = "tree-heads.jsonl";

/// The first line of the signed text.
pub const SIGNED_TEXT_TAG: &str = "hcgw-audit-tree-head/v1";

/// A signed tree head: the root of the Merkle tree over the first `tree_size` records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TreeHead {
    /// Records in the tree (the records of seq 1..=tree_size).
    pub tree_size: u64,
    /// Lowercase hex of the RFC 9162 root hash.
    pub root_hash: String,
    /// When it was signed (RFC 3339, UTC, whole seconds, `Z`).
    pub time: String,
    /// The signing key's id (its RFC 7638 thumbprint, as in `/v1/signing-keys`).
    pub key_id: String,
    /// `ecdsa-p256-sha256` or `ed25519`.
    pub algorithm: String,
    /// Standard base64 of the signature over [`TreeHead::signed_text`].
    pub signature: String,
}

impl TreeHead {
    /// The text the signature covers (see the module documentation).
    pub fn signed_text(
        tree_size: u64,
        root_hash: &str,
        time: &str,
        key_id: &str,
        algorithm: &str,
    ) -> String {
        format!(
            "{SIGNED_TEXT_TAG}\ntree_size: {tree_size}\nroot_hash: {root_hash}\ntime: {time}\nkey_id: {key_id}\nalgorithm: {algorithm}\n"
        )
    }

    /// Signs the head of a tree of `tree_size` records with root `root` at `time`.
    pub fn sign(tree_size: u64, root: &Hash, time: DateTime<Utc>, signer: &dyn Signer) -> Self {
        let root_hash = merkle::to_hex(root);
        let time = time.to_rfc3339_opts(SecondsFormat::Secs, true);
        let algorithm = signer.algorithm().as_str().to_owned();
        let text = Self::signed_text(tree_size, &root_hash, &time, signer.key_id(), &algorithm);
        let signature =
            base64::engine::general_purpose::STANDARD.encode(signer.sign(text.as_bytes()));
        TreeHead {
            tree_size,
            root_hash,
            time,
            key_id: signer.key_id().to_owned(),
            algorithm,
            signature,
        }
    }

    /// The root hash, when it is 64 hex digits.
    pub fn root(&self) -> Option<Hash> {
        merkle::from_hex(&self.root_hash)
    }

    /// Checks the signature with `key` (whose id and algorithm must be the head's).
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), SignatureError> {
        if key.key_id() != self.key_id || key.algorithm().as_str() != self.algorithm {
            return Err(SignatureError::Invalid);
        }
        let sig = base64::engine::general_purpose::STANDARD
            .decode(&self.signature)
            .map_err(|_| SignatureError::Invalid)?;
        let text = Self::signed_text(
            self.tree_size,
            &self.root_hash,
            &self.time,
            &self.key_id,
            &self.algorithm,
        );
        key.verify(text.as_bytes(), &sig)
    }
}

/// Reads a tree heads file: each line's head, or why it is not one (1-based line numbers).
pub fn read_heads(path: &Path) -> io::Result<Vec<(u64, Result<TreeHead, String>)>> {
    let text = fs::read(path)?;
    let mut out = Vec::new();
    let complete = text.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    // The complete lines, without the newline that ends the last one.
    let body = &text[..complete.saturating_sub(1)];
    if complete > 0 {
        for (i, line) in body.split(|&b| b == b'\n').enumerate() {
            out.push((
                i as u64 + 1,
                serde_json::from_slice::<TreeHead>(line).map_err(|e| e.to_string()),
            ));
        }
    }
    if complete < text.len() {
        let n = out.len() as u64 + 1;
        out.push((n, Err("incomplete last line".into())));
    }
    Ok(out)
}

/// How tree heads are made: where, with which key, how often.
#[derive(Clone, Debug)]
pub struct HeadOptions {
    /// The tree heads file.
    pub path: PathBuf,
    /// The answer-signing key.
    pub signer: Arc<dyn Signer>,
    /// `audit.checkpoint_s`.
    pub every: std::time::Duration,
}

/// Why a proof is not given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofRefusal {
    /// No Merkle tree is kept: no `[signing]` key, or the trail does not start at seq 1.
    #[error(
        "this gateway keeps no signed tree heads (no [signing] key, or the trail does not start at seq 1)"
    )]
    NoTree,
    /// No record has this seq (yet).
    #[error("no audit record has seq {0}")]
    UnknownSeq(u64),
    /// The record is newer than the latest signed tree head.
    #[error(
        "record {seq} is not yet covered by a signed tree head (the latest covers {latest} records); retry after the next one, within {every_s} s"
    )]
    NotYetSigned {
        /// The record's seq.
        seq: u64,
        /// The latest head's tree size (0: none yet).
        latest: u64,
        /// `audit.checkpoint_s`.
        every_s: u64,
    },
    /// A consistency proof between sizes that are not both signed tree heads.
    #[error("no signed tree head has size {0}")]
    NoSuchHead(u64),
    /// A consistency proof with `from > to` or `from == 0`.
    #[error("{0}")]
    Range(ProofError),
    /// The leaf hashes the proof needs cannot be read back, or do not match the tree
    /// (`tree-leaves.bin` changed or damaged): retry later; an operator looks.
    #[error("{0}")]
    Unavailable(ProofError),
}

impl From<ProofError> for ProofRefusal {
    fn from(e: ProofError) -> Self {
        match e {
            ProofError::Store { .. } => ProofRefusal::Unavailable(e),
            other => ProofRefusal::Range(other),
        }
    }
}

/// An inclusion proof of one record against the latest signed tree head.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Inclusion {
    /// The record's seq.
    pub seq: u64,
    /// Its leaf index (`seq - 1`).
    pub leaf_index: u64,
    /// The head's tree size.
    pub tree_size: u64,
    /// Lowercase hex of the leaf hash, SHA-256(0x00 ‖ record line).
    pub leaf_hash: String,
    /// The RFC 9162 audit path, from the leaf up (lowercase hex).
    pub audit_path: Vec<String>,
    /// The signed tree head the path leads to.
    pub checkpoint: TreeHead,
}

/// A consistency proof between two signed tree heads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Consistency {
    /// The older head's tree size.
    pub from: u64,
    /// The newer head's tree size.
    pub to: u64,
    /// The older head's root (lowercase hex).
    pub from_root: String,
    /// The newer head's root (lowercase hex).
    pub to_root: String,
    /// The RFC 9162 consistency proof (lowercase hex).
    pub proof: Vec<String>,
}

/// The Merkle tree and its signed heads, shared by the writer (which grows them) and the
/// API (which reads proofs from them).
#[derive(Debug, Default)]
pub struct Ledger {
    state: RwLock<LedgerState>,
    every_s: u64,
}

#[derive(Debug, Default)]
pub(super) struct LedgerState {
    /// `None`: no tree is kept.
    pub tree: Option<Tree>,
    /// Every signed head's size and root, in order.
    pub heads: Vec<(u64, Hash)>,
    /// The latest signed head.
    pub latest: Option<TreeHead>,
}

impl Ledger {
    pub(super) fn new(tree: Option<Tree>, every_s: u64) -> Self {
        Ledger {
            state: RwLock::new(LedgerState {
                tree,
                ..LedgerState::default()
            }),
            every_s,
        }
    }

    pub(super) fn write(&self) -> std::sync::RwLockWriteGuard<'_, LedgerState> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, LedgerState> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The latest signed tree head.
    pub fn latest(&self) -> Option<TreeHead> {
        self.read().latest.clone()
    }

    /// Records in the tree (`None`: no tree is kept).
    pub fn tree_size(&self) -> Option<u64> {
        self.read().tree.as_ref().map(Tree::size)
    }

    /// The inclusion proof of record `seq` against the latest signed head.
    pub fn inclusion(&self, seq: u64) -> Result<Inclusion, ProofRefusal> {
        let s = self.read();
        let tree = s.tree.as_ref().ok_or(ProofRefusal::NoTree)?;
        if seq == 0 || seq > tree.size() {
            return Err(ProofRefusal::UnknownSeq(seq));
        }
        let head = match &s.latest {
            Some(h) if h.tree_size >= seq => h.clone(),
            other => {
                return Err(ProofRefusal::NotYetSigned {
                    seq,
                    latest: other.as_ref().map_or(0, |h| h.tree_size),
                    every_s: self.every_s,
                });
            }
        };
        let path = tree.inclusion_proof(seq - 1, head.tree_size)?;
        Ok(Inclusion {
            seq,
            leaf_index: seq - 1,
            tree_size: head.tree_size,
            leaf_hash: merkle::to_hex(&tree.leaf(seq - 1)?),
            audit_path: path.iter().map(merkle::to_hex).collect(),
            checkpoint: head,
        })
    }

    /// The consistency proof between the signed heads of sizes `from` and `to`.
    pub fn consistency(&self, from: u64, to: u64) -> Result<Consistency, ProofRefusal> {
        let s = self.read();
        let tree = s.tree.as_ref().ok_or(ProofRefusal::NoTree)?;
        let root_of = |n: u64| {
            s.heads
                .binary_search_by_key(&n, |(size, _)| *size)
                .map(|i| s.heads[i].1)
                .map_err(|_| ProofRefusal::NoSuchHead(n))
        };
        if from == 0 || from > to {
            return Err(ProofRefusal::Range(ProofError::BadRange { from, to }));
        }
        let (from_root, to_root) = (root_of(from)?, root_of(to)?);
        let proof = tree.consistency_proof(from, to)?;
        Ok(Consistency {
            from,
            to,
            from_root: merkle::to_hex(&from_root),
            to_root: merkle::to_hex(&to_root),
            proof: proof.iter().map(merkle::to_hex).collect(),
        })
    }
}

/// Appends one head to the file (one line, fsynced).
pub(super) fn append_head(path: &Path, head: &TreeHead) -> io::Result<()> {
    let mut line = serde_json::to_vec(head).map_err(io::Error::other)?;
    line.push(b'\n');
    let mut f = OpenOptions::new().create(true).append(true).open(path)?;
    f.write_all(&line)?;
    f.sync_data()
}

/// Loads the heads already written into `state`, checking each against the tree rebuilt
/// from the trail. A head the trail does not match is logged at error level (the trail
/// was changed after it was signed; `hcgw audit verify` reports it) and not served.
/// A partial last line (a write cut off) is cut off.
pub(super) fn load_heads(path: &Path, state: &mut LedgerState) -> io::Result<()> {
    let Ok(meta) = fs::metadata(path) else {
        return Ok(());
    };
    let text = fs::read(path)?;
    let complete = text.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1) as u64;
    if complete < meta.len() {
        tracing::warn!(file = %path.display(), "the tree heads file ended in a partial line; cut it off");
        OpenOptions::new()
            .write(true)
            .open(path)?
            .set_len(complete)?;
    }
    let Some(tree) = state.tree.as_ref() else {
        return Ok(());
    };
    for (line, head) in read_heads(path)? {
        let head = match head {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(file = %path.display(), line, error = %e, "unreadable tree head");
                continue;
            }
        };
        let matches = head.root().is_some()
            && tree.root(head.tree_size).ok() == head.root()
            && state.heads.last().is_none_or(|(n, _)| *n < head.tree_size);
        if !matches {
            tracing::error!(
                file = %path.display(),
                line,
                tree_size = head.tree_size,
                "a signed tree head does not match the audit trail (records changed or removed after it was signed); run hcgw audit verify"
            );
            continue;
        }
        if let Some(root) = head.root() {
            state.heads.push((head.tree_size, root));
        }
        state.latest = Some(head);
    }
    Ok(())
}

/// Whether a head's signature verifies with one of `keys` (the one with its key id):
/// `None` when no key is given.
pub fn head_signature(head: &TreeHead, keys: &[VerifyingKey]) -> Option<bool> {
    if keys.is_empty() {
        return None;
    }
    Some(
        keys.iter()
            .filter(|k| k.key_id() == head.key_id)
            .any(|k| head.verify(k).is_ok()),
    )
}

/// What [`verify_heads`] checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadsReport {
    /// Tree heads checked.
    pub heads: u64,
    /// The largest tree size among them.
    pub latest_size: Option<u64>,
    /// Whether their signatures were checked (a key was given).
    pub signatures_checked: bool,
}

/// Checks a tree heads file against the trail `files` (in order, from seq 1): every line is
/// a head, sizes grow, each root is the root recomputed from the trail's first
/// `tree_size` records, and (with `keys`) each signature verifies. An error names the line.
pub fn verify_heads(
    files: &[PathBuf],
    heads: &Path,
    keys: &[VerifyingKey],
) -> Result<HeadsReport, String> {
    // Streamed: the tree grows record by record and each head's root is taken when the
    // tree reaches its size (heads must grow), so memory stays bounded whatever the trail.
    let mut tree = Tree::with_store(Box::new(NoLeaves), merkle::CHUNK_BITS);
    let mut lines = files
        .iter()
        .flat_map(
            |path| -> Box<dyn Iterator<Item = Result<Vec<u8>, String>>> {
                let shown = path.display().to_string();
                match fs::File::open(path) {
                    Ok(f) => Box::new(
                        io::BufRead::split(io::BufReader::new(f), b'\n')
                            .map(move |l| l.map_err(|e| format!("{shown}: {e}"))),
                    ),
                    Err(e) => Box::new(std::iter::once(Err(format!("{shown}: {e}")))),
                }
            },
        )
        .filter(|l| l.as_ref().map_or(true, |l| !l.is_empty()));
    let name = heads.display();
    let mut report = HeadsReport {
        heads: 0,
        latest_size: None,
        signatures_checked: !keys.is_empty(),
    };
    for (line, head) in read_heads(heads).map_err(|e| format!("{name}: {e}"))? {
        let head = head.map_err(|e| format!("{name}:{line}: not a tree head ({e})"))?;
        if report.latest_size.is_some_and(|n| n >= head.tree_size) {
            return Err(format!(
                "{name}:{line}: tree size {} does not grow (the previous head has {})",
                head.tree_size,
                report.latest_size.unwrap_or_default()
            ));
        }
        while tree.size() < head.tree_size {
            match lines.next() {
                Some(l) => {
                    let _ = tree.push(merkle::leaf_hash(&l?));
                }
                None => break,
            }
        }
        let root = tree.root(head.tree_size).map_err(|_| {
            format!(
                "{name}:{line}: the head covers {} records but the trail holds {}: records were removed",
                head.tree_size,
                tree.size()
            )
        })?;
        if head.root() != Some(root) {
            return Err(format!(
                "{name}:{line}: the root of the trail's first {} records is {}, not the signed {}: the trail was changed after the head was signed",
                head.tree_size,
                merkle::to_hex(&root),
                head.root_hash
            ));
        }
        if head_signature(&head, keys) == Some(false) {
            return Err(format!(
                "{name}:{line}: the signature does not verify with the given key(s) (key id {})",
                head.key_id
            ));
        }
        report.heads += 1;
        report.latest_size = Some(head.tree_size);
    }
    Ok(report)
}
