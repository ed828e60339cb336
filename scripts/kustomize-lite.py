#!/usr/bin/env python3
"""Builds a kustomization offline when neither `kubectl kustomize` nor `kustomize` is
installed: the subset deploy/kubernetes uses (resources: files and directories with a
kustomization.yaml; namespace; images: newName/newTag; patches: strategic-merge files,
lists of maps merged by `name`). Anything else in a kustomization is an error, so it never
builds something different from kustomize silently. Prints multi-document YAML.

    scripts/kustomize-lite.py deploy/kubernetes/dev
"""
import os
import sys

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
CLUSTER_SCOPED = {"Namespace"}


def merge(base, patch):
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = merge(base[k], v) if k in base else v
        return out
    if isinstance(base, list) and isinstance(patch, list) and all(
        isinstance(x, dict) and "name" in x for x in base + patch
    ):
        out = list(base)
        for item in patch:
            i = next((i for i, b in enumerate(out) if b["name"] == item["name"]), None)
            if i is None:
                out.append(item)
            else:
                out[i] = merge(out[i], item)
        return out
    return patch


def build(path):
    with open(os.path.join(path, "kustomization.yaml")) as f:
        k = yaml.safe_load(f)
    unknown = set(k) - SUPPORTED
    if unknown:
        sys.exit(f"kustomize-lite: {path}: unsupported fields {sorted(unknown)}")
    objects = []
    for r in k.get("resources", []):
        p = os.path.join(path, r)
        if os.path.isdir(p):
            objects += build(p)
        else:
            with open(p) as f:
                objects += [d for d in yaml.safe_load_all(f) if d]
    for patch in k.get("patches", []):
        if set(patch) != {"path"}:
            sys.exit(f"kustomize-lite: {path}: only file patches (path:) are supported")
        with open(os.path.join(path, patch["path"])) as f:
            p = yaml.safe_load(f)
        targets = [
            i for i, o in enumerate(objects)
            if o["kind"] == p["kind"] and o["metadata"]["name"] == p["metadata"]["name"]
        ]
        if len(targets) != 1:
            sys.exit(f"kustomize-lite: {patch['path']}: matches {len(targets)} objects")
        objects[targets[0]] = merge(objects[targets[0]], p)
    for o in objects:
        if "namespace" in k and o["kind"] not in CLUSTER_SCOPED:
            o["metadata"]["namespace"] = k["namespace"]
        spec = o.get("spec", {}).get("template", {}).get("spec", {})
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            for img in k.get("images", []):
                name, _, tag = c["image"].partition(":")
                if name == img["name"]:
                    c["image"] = f"{img.get('newName', name)}:{img.get('newTag', tag or 'latest')}"
    return objects


if __name__ == "__main__":
    print(yaml.safe_dump_all(build(sys.argv[1]), sort_keys=True), end="")
