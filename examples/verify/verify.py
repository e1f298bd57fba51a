#!/usr/bin/env python3
"""Check auditq's evidence without auditq: checkpoints, inclusion and consistency proofs.

Written from the texts alone -- RFC 9162 section 2.1 (Merkle trees, proofs), C2SP
signed-note and tlog-checkpoint -- with the standard library and `cryptography`.

  verify.py --key KEY checkpoint FILE           the checkpoint is signed by KEY
  verify.py --key KEY inclusion PROOFS.ndjson   each event (its raw JSON and id) is in
                                                the tree of the proof's signed checkpoint
  verify.py --key KEY consistency OLD PROOF     the tree of checkpoint file OLD is a prefix
                                                of the tree of the proof's checkpoint

KEY is the verifier key `name+hexid+base64` (or a file holding it). Exit status 0 when
everything checks, 1 when anything does not (each failure is printed), 2 on bad usage.
"""

import argparse
import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


class Bad(Exception):
    pass


def sha256(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


# --- C2SP signed-note --------------------------------------------------------------------

def read_key(text):
    """A verifier key: name+hexid+base64(0x01 || 32-byte Ed25519 public key)."""
    text = text.strip()
    name, sep, rest = text.partition("+")
    hexid, sep2, b64 = rest.partition("+")
    if not (sep and sep2 and name and len(hexid) == 8):
        raise Bad("not a verifier key: " + text)
    key = base64.b64decode(b64, validate=True)
    if len(key) != 33 or key[0] != 1:
        raise Bad("not an Ed25519 verifier key")
    key_id = sha256(name.encode() + b"\n" + key)[:4]
    if key_id.hex() != hexid:
        raise Bad("the key id does not match the key")
    return name, key_id, Ed25519PublicKey.from_public_bytes(key[1:])


def open_note(note, key):
    """The text of the note, when a signature line by `key` verifies over it."""
    name, key_id, public = key
    split = note.find("\n\n")
    if split < 0:
        raise Bad("not a signed note (no empty line before the signatures)")
    text, sigs = note[: split + 1], note[split + 2:]
    for line in sigs.splitlines():
        if not line.startswith("\u2014 "):
            raise Bad("not a signature line: %r" % line)
        sig_name, _, b64 = line[2:].partition(" ")
        blob = base64.b64decode(b64)
        if sig_name != name or len(blob) != 68 or blob[:4] != key_id:
            continue
        try:
            public.verify(blob[4:], text.encode())
        except InvalidSignature:
            raise Bad("the signature by %s does not verify" % name)
        return text
    raise Bad("the note has no signature by %s" % name)


def open_checkpoint(note, key):
    """(origin, size, root) of a C2SP tlog-checkpoint signed by `key`."""
    lines = open_note(note, key).split("\n")
    if len(lines) < 4:
        raise Bad("a checkpoint has an origin, a size and a root hash")
    origin, size, root = lines[0], int(lines[1]), base64.b64decode(lines[2], validate=True)
    if len(root) != 32:
        raise Bad("the root hash is not 32 bytes")
    return origin, size, root


# --- RFC 9162 section 2.1 -------------------------------------------------------------------

def leaf_hash(data):
    return sha256(b"\x00", data)


def node_hash(left, right):
    return sha256(b"\x01", left, right)


def event_leaf(event_id, raw):
    """auditq's leaf: "auditq/event/v1" 0x00 id 0x00 SHA-256(raw)."""
    return b"auditq/event/v1\x00" + event_id.encode() + b"\x00" + sha256(raw)


def verify_inclusion(leaf, index, size, path, root):
    """RFC 9162 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first, second, first_root, second_root, path):
    """RFC 9162 2.1.4.2."""
    if first == second:
        return not path and first_root == second_root
    if first == 0 or first > second or not path:
        return False
    if first & (first - 1) == 0:  # a power of two: the old root starts the path
        path = [first_root] + list(path)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0


# --- the commands -------------------------------------------------------------------------

def check_inclusion(proof, key):
    _, size, root = open_checkpoint(proof["checkpoint"], key)
    if proof["tree_size"] != size:
        raise Bad("the proof is for %d leaves, its checkpoint %d" % (proof["tree_size"], size))
    leaf = leaf_hash(event_leaf(proof["id"], proof["raw"].encode()))
    if base64.b64decode(proof["leaf_hash"]) != leaf:
        raise Bad("the leaf hash is not the hash of the event's id and raw JSON")
    raw_id = json.loads(proof["raw"]).get("id")
    if raw_id != proof["id"]:
        raise Bad("the raw JSON's id is %r" % raw_id)
    path = [base64.b64decode(h) for h in proof["inclusion_path"]]
    if not verify_inclusion(leaf, proof["leaf_index"], size, path, root):
        raise Bad("the inclusion path does not lead to the checkpoint's root")


def check_consistency(old_note, proof, key):
    _, old_size, old_root = open_checkpoint(old_note, key)
    _, new_size, new_root = open_checkpoint(proof["checkpoint"], key)
    if (proof["old_size"], proof["new_size"]) != (old_size, new_size):
        raise Bad("the proof is from %d to %d leaves, the checkpoints %d and %d"
                  % (proof["old_size"], proof["new_size"], old_size, new_size))
    path = [base64.b64decode(h) for h in proof["consistency_path"]]
    if not verify_consistency(old_size, new_size, old_root, new_root, path):
        raise Bad("the consistency path does not join the two roots")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--key", required=True, help="verifier key, or a file holding it")
    sub = ap.add_subparsers(dest="what", required=True)
    sub.add_parser("checkpoint").add_argument("file")
    sub.add_parser("inclusion").add_argument("proofs")
    c = sub.add_parser("consistency")
    c.add_argument("old")
    c.add_argument("proof")
    args = ap.parse_args()
    try:
        key = read_key(args.key)
    except (Bad, ValueError):
        try:
            with open(args.key) as f:
                key = read_key(f.read())
        except (OSError, Bad, ValueError) as e:
            print("bad key %r: %s" % (args.key, e), file=sys.stderr)
            return 2
    failures = 0
    if args.what == "checkpoint":
        with open(args.file) as f:
            try:
                origin, size, _ = open_checkpoint(f.read(), key)
                print("ok: %s, %d leaves" % (origin, size))
            except (Bad, ValueError) as e:
                print("FAIL %s: %s" % (args.file, e))
                failures += 1
    elif args.what == "inclusion":
        n = 0
        with open(args.proofs) as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                n += 1
                try:
                    check_inclusion(json.loads(line), key)
                except (Bad, ValueError, KeyError, TypeError) as e:
                    print("FAIL line %d: %s" % (number, e))
                    failures += 1
        if not failures:
            print("ok: %d events are in the signed tree" % n)
    else:
        with open(args.old) as f:
            old = f.read()
        with open(args.proof) as f:
            proof = json.load(f)
        try:
            check_consistency(old, proof, key)
            print("ok: the tree of %d leaves is a prefix of the tree of %d"
                  % (proof["old_size"], proof["new_size"]))
        except (Bad, ValueError, KeyError, TypeError) as e:
            print("FAIL: %s" % e)
            failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
