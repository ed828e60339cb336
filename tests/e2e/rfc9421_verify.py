#!/usr/bin/env python3
"""An independent check of hcgw's signed answers: RFC 9421 with the PyPI package
`http-message-signatures` (pyauth), RFC 9530 Content-Digest with hashlib.

Reads one JSON object on stdin: {"status": int, "headers": [[name, value], ...],
"body_b64": str, "keys": {"<keyid>": "<certificate PEM>"}} and prints "ok <keyid>" or
exits 1 with the reason. Used by tests/e2e/signing.rs."""
import base64
import hashlib
import json
import sys

from cryptography import x509
from http_message_signatures import HTTPMessageVerifier, HTTPSignatureKeyResolver, algorithms
from http_message_signatures.structures import CaseInsensitiveDict

COVERED = ["@status", "content-digest", "content-type", "x-request-id"]


class Keys(HTTPSignatureKeyResolver):
    def __init__(self, pems):
        self.keys = {k: x509.load_pem_x509_certificate(v.encode()).public_key() for k, v in pems.items()}

    def resolve_public_key(self, key_id):
        return self.keys[key_id]


class Response:
    """What the verifier reads of a response: status_code and headers."""

    def __init__(self, status, headers):
        self.status_code = status
        self.headers = CaseInsensitiveDict()
        for name, value in headers:
            if name in self.headers:
                self.headers[name] = self.headers[name] + ", " + value
            else:
                self.headers[name] = value


def main():
    msg = json.load(sys.stdin)
    body = base64.b64decode(msg["body_b64"])
    resp = Response(msg["status"], msg["headers"])
    want = "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"
    if resp.headers.get("content-digest") != want:
        sys.exit("content-digest does not match the body")
    alg_name = resp.headers.get("signature-input", "").split('alg="')[-1].rstrip('"')
    alg = {"ecdsa-p256-sha256": algorithms.ECDSA_P256_SHA256, "ed25519": algorithms.ED25519}[alg_name]
    verifier = HTTPMessageVerifier(signature_algorithm=alg, key_resolver=Keys(msg["keys"]))
    try:
        results = verifier.verify(resp, require_components=COVERED, body=body)
    except Exception as e:  # the library's InvalidSignature and friends
        sys.exit(f"signature: {type(e).__name__}: {e}")
    for r in results:
        if r.label != "hcgw":
            sys.exit(f"signature label {r.label}, expected hcgw")
        covered = [k.strip('"') for k in r.covered_components if k.strip('"') != "@signature-params"]
        if covered != COVERED:
            sys.exit(f"covered components {covered}, expected {COVERED}")
        print("ok", r.parameters["keyid"])
        return
    sys.exit("no signature verified")


if __name__ == "__main__":
    main()
