#!/usr/bin/env python3
"""Regenerates functions/api/src/s3control/model.json, the shape table of the S3 Control wire API.

    .venv/bin/python infra/s3control-model.py [--check] [--out PATH]

The REST-XML converter (functions/api/src/s3control/xml.rs) walks this table to turn the XML
that stock clients (`aws s3control`, boto3, aws-sdk-s3control) send into the JSON that
`CreateJobRequest` deserialises, and the JSON batchops answers with back into XML. The table is
taken from botocore's own model (`botocore/data/s3control/2018-08-20/service-2.json[.gz]`, read
from whichever botocore this python imports: the venv's, pinned through aws-sam-cli), so element
names, list item names and types are the ones the clients use.

What is kept:
- only the shapes reachable from the input and output of the eight job operations (CreateJob,
  DescribeJob, ListJobs, UpdateJobStatus, UpdateJobPriority, Get/Put/DeleteJobTagging);
- per shape only what the converter reads: `type`; a structure's body `members` (each its
  `shape` and, when the XML element is named otherwise, `locationName`); a list's `member` (item
  shape and item element name); a map's `key`/`value`; `union`. Members bound to the URI, the
  query string or a header (`AccountId`, `JobId`, `jobStatuses`, ...) are dropped: the handlers
  read those themselves, and only body members matter here.
- `operations`: each operation's input and output shape names.
- `botocoreVersion`: which botocore the table came from.

Then an overlay adds what batchops accepts beyond the model (`CreateJobRequest`'s `DryRun` and
`FailureThreshold`, the `S3DeleteObject` operation): each overlay member and shape carries
`"x-batchops": true`, and the top-level `x-batchops` lists the overlay members as
`Shape.Member`, so the model-drift test (model.rs) can tell them apart.

Output is stable: sorted keys, two-space indentation, a final newline. `--check` compares
instead of writing (exit 1 when the file is stale).
"""

import argparse
import gzip
import json
import sys
from pathlib import Path

import botocore

OPERATIONS = [
    "CreateJob",
    "DescribeJob",
    "ListJobs",
    "UpdateJobStatus",
    "UpdateJobPriority",
    "GetJobTagging",
    "PutJobTagging",
    "DeleteJobTagging",
]

# The shape types the converter knows. Anything else (blob, float, double, a flattened list,
# an XML attribute) makes this script fail rather than produce a table xml.rs misreads.
TYPES = {"structure", "list", "map", "string", "boolean", "integer", "long", "timestamp"}

# Members batchops has and the model lacks (compare functions/core/src/job/spec.rs and
# functions/core/src/ops/*.rs). Keys are `Shape.Member`; each names its shape, and a shape that
# is not in the model is defined in OVERLAY_SHAPES.
OVERLAY_MEMBERS = {
    # "DryRun": check each object and report what would be done, without doing it.
    "CreateJobRequest.DryRun": "Boolean",
    # "FailureThreshold": {MinTasks u64, Percent u8}: when the job fails.
    "CreateJobRequest.FailureThreshold": "FailureThreshold",
    # The S3DeleteObject operation (ops/delete.rs, `DeleteParams {}`).
    "JobOperation.S3DeleteObject": "S3DeleteObjectOperation",
}
OVERLAY_SHAPES = {
    "FailureThreshold": {
        "type": "structure",
        "members": {
            "MinTasks": {"shape": "FailureThresholdMinTasks"},
            "Percent": {"shape": "FailureThresholdPercent"},
        },
    },
    "FailureThresholdMinTasks": {"type": "long"},
    "FailureThresholdPercent": {"type": "integer"},
    "S3DeleteObjectOperation": {"type": "structure", "members": {}},
}

OUT = Path(__file__).resolve().parent.parent / "functions/api/src/s3control/model.json"


def load_service_model() -> dict:
    base = Path(botocore.__file__).parent / "data/s3control/2018-08-20"
    plain, packed = base / "service-2.json", base / "service-2.json.gz"
    if plain.exists():
        return json.loads(plain.read_text(encoding="utf-8"))
    if packed.exists():
        with gzip.open(packed, "rt", encoding="utf-8") as f:
            return json.load(f)
    sys.exit(f"s3control-model: no service-2.json(.gz) under {base}")


def item(ref: dict) -> dict:
    """A list member or map key/value reference: its shape and element name."""
    out = {"shape": ref["shape"]}
    if "locationName" in ref:
        out["locationName"] = ref["locationName"]
    return out


def trim(name: str, shape: dict) -> dict:
    """The parts of one botocore shape the converter reads."""
    kind = shape["type"]
    if kind not in TYPES:
        sys.exit(f"s3control-model: {name} has type {kind!r}, which xml.rs does not handle")
    if shape.get("flattened"):
        sys.exit(f"s3control-model: {name} is a flattened list, which xml.rs does not handle")
    out: dict = {"type": kind}
    if kind == "structure":
        members = {}
        for member, ref in shape.get("members", {}).items():
            if ref.get("xmlAttribute"):
                sys.exit(f"s3control-model: {name}.{member} is an XML attribute")
            if "location" in ref:  # uri, querystring or header: not in the body
                continue
            members[member] = item(ref)
        out["members"] = members
        if shape.get("union"):
            out["union"] = True
    elif kind == "list":
        out["member"] = item(shape["member"])
    elif kind == "map":
        out["key"] = item(shape["key"])
        out["value"] = item(shape["value"])
    return out


def build(service: dict) -> dict:
    shapes = service["shapes"]
    operations = {}
    roots = []
    for op in OPERATIONS:
        spec = service["operations"][op]
        entry = {"input": spec["input"]["shape"], "output": spec["output"]["shape"]}
        operations[op] = entry
        roots += [entry["input"], entry["output"]]

    kept: dict = {}
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in kept:
            continue
        shape = trim(name, shapes[name])
        kept[name] = shape
        refs = list(shape.get("members", {}).values())
        refs += [shape[k] for k in ("member", "key", "value") if k in shape]
        pending += [r["shape"] for r in refs]

    # The overlay, after reachability: its shapes are only reachable through it.
    for name, shape in OVERLAY_SHAPES.items():
        if name in kept:
            sys.exit(f"s3control-model: overlay shape {name} is now in the model; drop it here")
        kept[name] = {**shape, "x-batchops": True}
    for path, target in OVERLAY_MEMBERS.items():
        owner, member = path.split(".")
        if member in kept[owner]["members"]:
            sys.exit(f"s3control-model: {path} is now in the model; drop it from the overlay")
        if target not in kept:
            sys.exit(f"s3control-model: overlay member {path} names unknown shape {target}")
        kept[owner]["members"][member] = {"shape": target, "x-batchops": True}

    return {
        "botocoreVersion": botocore.__version__,
        "apiVersion": service["metadata"]["apiVersion"],
        "xmlNamespace": service["operations"]["CreateJob"]["input"]["xmlNamespace"]["uri"],
        "operations": operations,
        "shapes": kept,
        "x-batchops": sorted(OVERLAY_MEMBERS),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    text = json.dumps(build(load_service_model()), indent=2, sort_keys=True) + "\n"
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            sys.exit(f"s3control-model: {args.out} is stale; run infra/s3control-model.py")
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    shapes = len(json.loads(text)["shapes"])
    print(f"wrote {args.out} ({shapes} shapes, botocore {botocore.__version__})")


if __name__ == "__main__":
    main()
