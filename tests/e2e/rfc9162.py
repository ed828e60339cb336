#!/usr/bin/env python3
"""An independent RFC 9162 (Certificate Transparency v2, section 2.1) check of the proofs a
gateway served, written from the RFC and not from the gateway's code.

usage: rfc9162.py AUDIT_DIR PROOFS.json

AUDIT_DIR holds the trail (audit-*.jsonl, sorted by name = chronological, seq monotonic
across files) and tree-heads.jsonl. PROOFS.json is {"inclusion": [<GET /v1/audit/proof
bodies>], "consistency": [<GET /v1/audit/consistency bodies>]}.

Checks: every signed tree head's root is the MTH of the trail's first tree_size lines;
every inclusion proof verifies (section 2.1.3.2) against its head and is the path the
recursive definition (2.1.3.1) gives; every consistency proof verifies (2.1.4.2) and is the
one 2.1.4.1 gives. Prints one line per check; exit 1 on the first failure.
"""
import hashlib
import json
import pathlib
import sys


def sha(b):
    return hashlib.sha256(b).digest()


def leaf(line):
    return sha(b"\x00" + line)


def node(l, r):
    return sha(b"\x01" + l + r)


def k_of(n):
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(d):
    if len(d) == 0:
        return sha(b"")
    if len(d) == 1:
        return leaf(d[0])
    k = k_of(len(d))
    return node(mth(d[:k]), mth(d[k:]))


def path(m, d):
    if len(d) <= 1:
        return []
    k = k_of(len(d))
    if m < k:
        return path(m, d[:k]) + [mth(d[k:])]
    return path(m - k, d[k:]) + [mth(d[:k])]


def subproof(m, d, b):
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = k_of(n)
    if m <= k:
        return subproof(m, d[:k], b) + [mth(d[k:])]
    return subproof(m - k, d[k:], False) + [mth(d[:k])]


def verify_inclusion(index, size, leaf_hash, proof, root):
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first, second, first_hash, second_hash, proof):
    if first == second:
        return not proof and first_hash == second_hash
    if first == 0 or first > second:
        return False
    proof = list(proof)
    if first & (first - 1) == 0:
        proof.insert(0, first_hash)
    if not proof:
        return False
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node(c, fr)
            sr = node(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_hash and sr == second_hash and sn == 0


def fail(msg):
    print("FAIL " + msg)
    sys.exit(1)


def main():
    audit = pathlib.Path(sys.argv[1])
    proofs = json.loads(pathlib.Path(sys.argv[2]).read_text())
    files = sorted(p for p in audit.iterdir() if p.name.startswith("audit-") and p.name.endswith(".jsonl"))
    lines = []
    for f in files:
        data = f.read_bytes()
        if not data.endswith(b"\n"):
            fail(f"{f.name}: partial last line")
        lines += data[:-1].split(b"\n")
    for i, line in enumerate(lines):
        if json.loads(line)["seq"] != i + 1:
            fail(f"line {i}: seq is not {i + 1}")
    print(f"ok trail: {len(lines)} records in {len(files)} files")
    if len(files) < 2:
        fail("the trail did not rotate")
    heads = [json.loads(l) for l in (audit / "tree-heads.jsonl").read_text().splitlines()]
    for h in heads:
        root = mth(lines[: h["tree_size"]]).hex()
        if root != h["root_hash"]:
            fail(f"head of size {h['tree_size']}: root {h['root_hash']} but the trail gives {root}")
    print(f"ok heads: {len(heads)} roots recomputed")
    for p in proofs["inclusion"]:
        size, index = p["tree_size"], p["leaf_index"]
        line = p["record_line"].encode()
        if line != lines[index]:
            fail(f"seq {p['seq']}: record_line is not the trail's line")
        if index != p["seq"] - 1 or p["checkpoint"]["tree_size"] != size:
            fail(f"seq {p['seq']}: index or size mismatch")
        audit_path = [bytes.fromhex(x) for x in p["audit_path"]]
        root = bytes.fromhex(p["checkpoint"]["root_hash"])
        if leaf(line).hex() != p["leaf_hash"]:
            fail(f"seq {p['seq']}: leaf hash")
        if not verify_inclusion(index, size, leaf(line), audit_path, root):
            fail(f"seq {p['seq']}: inclusion proof does not verify")
        if audit_path != path(index, lines[:size]):
            fail(f"seq {p['seq']}: not the RFC's audit path")
        bad = list(audit_path)
        if bad:
            bad[0] = sha(bad[0])
            if verify_inclusion(index, size, leaf(line), bad, root):
                fail(f"seq {p['seq']}: a changed proof verifies")
        print(f"ok inclusion: seq {p['seq']} in tree of {size} ({len(audit_path)} hashes)")
    for c in proofs["consistency"]:
        a, b = c["from"], c["to"]
        proof = [bytes.fromhex(x) for x in c["proof"]]
        fr, to = bytes.fromhex(c["from_root"]), bytes.fromhex(c["to_root"])
        if fr != mth(lines[:a]) or to != mth(lines[:b]):
            fail(f"consistency {a}->{b}: roots are not the trail's")
        if not verify_consistency(a, b, fr, to, proof):
            fail(f"consistency {a}->{b}: does not verify")
        if a < b and proof != subproof(a, lines[:b], True):
            fail(f"consistency {a}->{b}: not the RFC's proof")
        print(f"ok consistency: {a} -> {b} ({len(proof)} hashes)")
    if not proofs["inclusion"] or not proofs["consistency"]:
        fail("nothing to check")


main()
