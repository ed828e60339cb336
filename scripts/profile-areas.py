#!/usr/bin/env python3
"""Groups `perf script -F comm,ip,sym,dso` output (call chains, frame pointers) into areas.

Reads the samples on stdin and prints four tables, each in % of all samples:
- by thread (the gateway names its threads: hcgw-audit, hcgw-log, tokio-runtime-w…);
- by owner: each sample goes to the area (signing, audit, TLS, HTTP, logging, JSON…) of
  the innermost frame that belongs to one, so an allocation or a system call counts for
  the code that made it and the owners add up to 100%; and the kernel's part of each;
- by leaf: what the sampled instruction itself was (crypto, allocator, copy, kernel…).

Used by scripts/profile.sh; `python3 scripts/profile-areas.py --self-test` checks the parser.
"""
import collections
import re
import sys

# Owners: (name, pattern on a frame's symbol). Each sample goes to the owner of the innermost
# frame (nearest the sampled instruction) that matches one, so the owners add up to 100%:
# an allocation or a system call counts for the code that made it. aws-lc's assembly has
# no frame pointers, so its leaves are matched by name (Ed25519 and SHA-512 sign answers;
# nothing else on this path uses them).
AREAS = [
    ("answer signing (RFC 9421, Ed25519)", r"hcgw(_core)?::(api::)?signing|ed25519|Ledwards25519|sha512"),
    ("audit trail (record, chain, Merkle tree, write, fsync)", r"hcgw_core::audit|hcgw::api::audit"),
    ("access log and tracing events", r"tracing_subscriber|tracing_core::event|hcgw::logging|tracing::__macro_support"),
    ("metrics", r"^metrics::|metrics_exporter|metrics_util|hcgw::metrics"),
    ("TLS (rustls, AES-GCM)", r"rustls|aes_gcm|aes_hw|gcm_|chacha"),
    ("HTTP/1 parsing and encoding (hyper, http)", r"hyper::proto|^http::|httparse"),
    ("JSON (serde_json)", r"serde_json"),
    ("cache (moka)", r"moka::"),
    ("domain (recognition, status, subjects, adapters)", r"hcgw_core::(recognition|status|subject|qr)|hcgw_adapters"),
    ("gateway handlers and middleware (hcgw::api, axum, tower)", r"hcgw::|hcgw_core::|axum::|axum_core::|tower::"),
    ("tokio runtime, scheduling and I/O readiness", r"tokio::|tokio_util::|mio::"),
]

# Exclusive leaves: (name, pattern on the leaf frame's symbol or dso).
LEAVES = [
    ("kernel", r"\[kernel|vmlinux|^\[unknown\]$"),
    ("crypto (aws-lc: curves, AES-GCM, SHA)", r"aws_lc|aws-lc|ed25519|x25519|sha256|sha512|SHA|aes|gcm|p256|ec_|bn_|fiat"),
    ("allocator (malloc/free)", r"malloc|free|realloc|calloc|_int_|tcache|mi_|je_|sdallocx|__rust_alloc|__rust_dealloc"),
    ("memory copy and set", r"memcpy|memmove|memset|memcmp|__memcpy|__memmove"),
    ("formatting (core::fmt)", r"core::fmt|alloc::fmt"),
    ("hashing (non-crypto)", r"hash|Hash|siphash|ahash|foldhash"),
    ("futex and locks", r"futex|lock|Mutex|parking_lot"),
]

FRAME = re.compile(r"^\s+([0-9a-f]+)\s+(.*?)\s+\((.*)\)\s*$")


def samples(lines):
    """Yields (comm, [(symbol, dso), …] leaf first) for each sample."""
    comm, frames = None, []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if comm is not None:
                yield comm, frames
            comm, frames = None, []
            continue
        if not line[0].isspace():
            if comm is not None:
                yield comm, frames
            comm, frames = line.split()[0], []
            continue
        m = FRAME.match(line)
        if m and comm is not None:
            frames.append((m.group(2), m.group(3)))
    if comm is not None:
        yield comm, frames


def classify(stream):
    total = 0
    threads, areas, leaves, kernel = (collections.Counter() for _ in range(4))
    area_re = [(n, re.compile(p)) for n, p in AREAS]
    leaf_re = [(n, re.compile(p)) for n, p in LEAVES]
    for comm, frames in samples(stream):
        total += 1
        threads[re.sub(r"[-_]?\d+$", "", comm)] += 1
        owner = "other (thread start, unresolved frames)"
        for sym, _ in frames:
            hit = next((n for n, rx in area_re if rx.search(sym)), None)
            if hit:
                owner = hit
                break
        areas[owner] += 1
        leaf = frames[0] if frames else ("[unknown]", "[unknown]")
        if "kernel" in leaf[1]:
            kernel[owner] += 1
        leaf_text = f"{leaf[0]} {leaf[1]}"
        for name, rx in leaf_re:
            if rx.search(leaf_text):
                leaves[name] += 1
                break
        else:
            leaves["other"] += 1
    return total, threads, areas, leaves, kernel


def table(title, counter, total, order=None):
    out = [f"{title}", ""]
    keys = order if order is not None else [k for k, _ in counter.most_common()]
    for k in keys:
        if counter.get(k):
            out.append(f"  {100 * counter[k] / total:5.1f}%  {k}")
    out.append("")
    return out


def report(stream):
    total, threads, areas, leaves, kernel = classify(stream)
    if total == 0:
        return "no samples\n"
    out = [f"{total} samples", ""]
    out += table("By thread", threads, total)
    out += table("By owner (the innermost frame's area; adds up to 100%)", areas, total)
    out += table("Of which in the kernel (system calls, network stack, scheduler), by owner", kernel, total)
    out += table("By leaf (what the sampled instruction was)", leaves, total)
    return "\n".join(out)


SELF_TEST = """\
tokio-runtime-w 
\t    55aa01 aws_lc_0_29_ed25519_sign (/hcgw)
\t    55aa02 hcgw::api::signing::sign_answer (/hcgw)
\t    55aa03 hyper::proto::h1::dispatch::Dispatcher::poll (/hcgw)

hcgw-audit 
\t    ffff01 entry_SYSCALL_64 ([kernel.kallsyms])
\t    55aa10 hcgw_core::audit::writer::Writer::flush (/hcgw)

tokio-runtime-w 
\t    55aa20 malloc (/usr/lib/libc.so.6)
\t    55aa21 rustls::conn::ConnectionCommon::write (/hcgw)
"""


def self_test():
    total, threads, areas, leaves, kernel = classify(SELF_TEST.splitlines(True))
    assert total == 3, total
    assert threads == {"tokio-runtime-w": 2, "hcgw-audit": 1}, threads
    # The innermost matching frame owns the sample: Ed25519 (matched by name) for the first,
    # the audit writer for the kernel's fdatasync, rustls for the malloc it made.
    assert areas == {"answer signing (RFC 9421, Ed25519)": 1,
                     "audit trail (record, chain, Merkle tree, write, fsync)": 1,
                     "TLS (rustls, AES-GCM)": 1}, areas
    assert kernel == {"audit trail (record, chain, Merkle tree, write, fsync)": 1}, kernel
    assert leaves["crypto (aws-lc: curves, AES-GCM, SHA)"] == 1, leaves
    assert leaves["allocator (malloc/free)"] == 1, leaves
    assert leaves["kernel"] == 1, leaves
    print("profile-areas: self-test passed")


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        self_test()
    else:
        sys.stdout.write(report(sys.stdin))
