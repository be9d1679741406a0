#!/usr/bin/env python3
"""Helpers for running the four Lambda functions under `cargo lambda watch` against the emulator.

    local.py stack  --endpoint URL --stack NAME --env-file PATH
        Creates the stack's table, queues (each with a dead-letter queue) and bucket on the
        emulator when missing -- the same names as `batchops dev`
        (functions/core/src/adapters/stack.rs::ensure_stack): <stack>-jobs, <stack>-bucket,
        <stack>-plan, <stack>-work, <stack>-work-high, <stack>-finalize, <stack>-intake and
        <stack>-<queue>-dlq -- and writes the functions' environment (the variables template.yaml
        sets in AWS) as KEY=VALUE lines for `cargo lambda watch --env-file`.
    local.py seed   --env-file PATH --source BUCKET --target BUCKET
        Puts sample objects and a manifest (two rows name missing objects) in BUCKET.
    local.py intake --env-file PATH --source BUCKET --target BUCKET
        Puts a CSV manifest with job metadata under intake/ in the stack bucket; prints its key.
    local.py event  TEMPLATE OUT [KEY=VALUE ...]
        Copies a sample event, replacing each KEY with VALUE everywhere in its text.
    local.py receive --env-file PATH --queue VAR --out PATH
        Receives one message from the queue named by VAR (e.g. BATCHOPS_WORK_QUEUE_URL) and writes
        the SQS event Lambda's event source mapping would deliver for it.
    local.py get    PATH EXPR
        Prints a value of the JSON document (or API Gateway response body) at PATH, where EXPR is
        a dotted path such as `body.Job.Status` or `batchItemFailures.0.itemIdentifier`.

Only boto3 is needed (the virtualenv has it: moto depends on it). Endpoint and credentials come
from the environment written by `stack` (AWS_ENDPOINT_URL, dummy keys).
"""

import argparse
import hashlib
import json
import os
import sys
import time
import uuid

import boto3
from botocore.config import Config

MAX_RECEIVES = 5  # stack.rs MAX_RECEIVES; template.yaml's MaxReceiveCount default
QUEUES = ["plan", "work", "finalize", "intake", "work-high"]


def read_env(path):
    env = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                env[key] = value
    return env


def clients(endpoint, region="us-east-1"):
    session = boto3.session.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name=region
    )
    cfg = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5, "mode": "standard"})
    return {
        name: session.client(name, endpoint_url=endpoint, config=cfg)
        for name in ("s3", "sqs", "dynamodb")
    }


# What the job indexes project (functions/core/src/adapters/dynamo.rs, SUMMARY_ATTRIBUTES).
SUMMARY_ATTRIBUTES = [
    "job_id",
    "status",
    "priority",
    "creation_time",
    "termination_date",
    "total_tasks",
    "succeeded",
    "failed",
    "operation",
    "description",
]


def ensure_table(ddb, table):
    try:
        ddb.describe_table(TableName=table)
        return
    except ddb.exceptions.ResourceNotFoundException:
        pass
    attrs = [
        {"AttributeName": n, "AttributeType": "S"}
        for n in ("pk", "sk", "gsi1pk", "gsi1sk", "open")
    ]

    def index(name, hash_key):
        # As the template: only a job's summary is projected.
        return {
            "IndexName": name,
            "KeySchema": [
                {"AttributeName": hash_key, "KeyType": "HASH"},
                {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": SUMMARY_ATTRIBUTES},
        }

    ddb.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=attrs,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[index("jobs", "gsi1pk"), index("open", "open")],
    )


def ensure_bucket(s3, bucket):
    try:
        s3.head_bucket(Bucket=bucket)
    except s3.exceptions.ClientError:
        s3.create_bucket(Bucket=bucket)


def queue_arn(sqs, url):
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]


def ensure_queue(sqs, name, visibility):
    dlq = sqs.create_queue(
        QueueName=f"{name}-dlq", Attributes={"MessageRetentionPeriod": "1209600"}
    )["QueueUrl"]
    redrive = json.dumps({"deadLetterTargetArn": queue_arn(sqs, dlq), "maxReceiveCount": MAX_RECEIVES})
    url = sqs.create_queue(
        QueueName=name,
        Attributes={"VisibilityTimeout": str(visibility), "RedrivePolicy": redrive},
    )["QueueUrl"]
    return url, dlq


def cmd_stack(args):
    c = clients(args.endpoint)
    table, bucket = f"{args.stack}-jobs", f"{args.stack}-bucket"
    ensure_table(c["dynamodb"], table)
    ensure_bucket(c["s3"], bucket)
    urls, dlqs = {}, {}
    for name in QUEUES:
        urls[name], dlqs[name] = ensure_queue(c["sqs"], f"{args.stack}-{name}", args.visibility)
    c["s3"].put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "Id": "batchops-intake",
                    "QueueArn": queue_arn(c["sqs"], urls["intake"]),
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "intake/"}]}},
                }
            ]
        },
    )
    env = {
        # What template.yaml's Globals set in AWS ...
        "BATCHOPS_TABLE": table,
        "BATCHOPS_BUCKET": bucket,
        "BATCHOPS_PLAN_QUEUE_URL": urls["plan"],
        "BATCHOPS_WORK_QUEUE_URL": urls["work"],
        "BATCHOPS_WORK_HIGH_QUEUE_URL": urls["work-high"],
        "BATCHOPS_FINALIZE_QUEUE_URL": urls["finalize"],
        "BATCHOPS_WORK_DLQ_URLS": f"{dlqs['work']},{dlqs['work-high']}",
        "BATCHOPS_MAX_RECEIVES": str(MAX_RECEIVES),
        "BATCHOPS_HIGH_PRIORITY": "100",
        "BATCHOPS_CHUNK_SIZE": "1000",
        "BATCHOPS_TASK_CONCURRENCY": "32",
        "BATCHOPS_ALLOWED_BUCKETS": args.allowed_buckets,
        "BATCHOPS_EVENT_BUS": "default",
        "BATCHOPS_ACCOUNT_ID": "123456789012",
        "RUST_LOG": os.environ.get("RUST_LOG", "info"),
        # ... and what only the emulator needs.
        "BATCHOPS_S3_PATH_STYLE": "true",
        "AWS_ENDPOINT_URL": args.endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        # The intake queue is the planner's second event source; not read by the functions.
        "BATCHOPS_INTAKE_QUEUE_URL": urls["intake"],
    }
    with open(args.env_file, "w", encoding="utf-8") as f:
        for key, value in env.items():
            f.write(f"{key}={value}\n")
    print(f"stack {args.stack} ready on {args.endpoint}; environment in {args.env_file}")


SAMPLE_KEYS = ["photos/cat.jpg", "photos/a b.jpg", "docs/r\u00e9sum\u00e9.txt", "docs/100%+sure.txt"]
MISSING_KEYS = ["missing/gone.txt", "missing/also gone.txt"]


def manifest_key(key):
    """A manifest's key column: URL-encoded, `+` written as %2B (see README, Formats)."""
    from urllib.parse import quote

    return quote(key, safe="/")


def cmd_seed(args):
    env = read_env(args.env_file)
    s3 = clients(env["AWS_ENDPOINT_URL"])["s3"]
    for bucket in (args.source, args.target):
        ensure_bucket(s3, bucket)
    for key in SAMPLE_KEYS:
        s3.put_object(Bucket=args.source, Key=key, Body=f"body-of:{key}".encode())
    rows = [f"{args.source},{manifest_key(k)}" for k in SAMPLE_KEYS + MISSING_KEYS]
    body = ("\n".join(rows) + "\n").encode()
    s3.put_object(Bucket=args.source, Key="manifest.csv", Body=body)
    print(f"seeded s3://{args.source}: {len(SAMPLE_KEYS)} objects, manifest.csv "
          f"({len(rows)} rows, etag {hashlib.md5(body).hexdigest()})")


def cmd_intake(args):
    env = read_env(args.env_file)
    s3 = clients(env["AWS_ENDPOINT_URL"])["s3"]
    rows = [f"{args.source},{manifest_key(k)}" for k in SAMPLE_KEYS]
    key = f"intake/nightly-{uuid.uuid4().hex[:8]}.csv"
    s3.put_object(
        Bucket=env["BATCHOPS_BUCKET"],
        Key=key,
        Body=("\n".join(rows) + "\n").encode(),
        ContentType="text/csv",
        Metadata={
            "operation": "S3PutObjectTagging",
            "tags": "team=storage&source=intake",
            "description": "tagging from an intake upload",
        },
    )
    print(key)


def cmd_event(args):
    with open(args.template, encoding="utf-8") as f:
        text = f.read()
    for pair in args.replace:
        old, new = pair.split("=", 1)
        if old not in text:
            sys.exit(f"{args.template} does not contain {old!r}")
        text = text.replace(old, new)
    json.loads(text)  # still a JSON document
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)


def cmd_receive(args):
    env = read_env(args.env_file)
    sqs = clients(env["AWS_ENDPOINT_URL"])["sqs"]
    url = env[args.queue]
    deadline = time.monotonic() + args.wait
    while True:
        got = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=1,
            WaitTimeSeconds=1,
            VisibilityTimeout=60,
            AttributeNames=["All"],
        ).get("Messages", [])
        if got or time.monotonic() > deadline:
            break
    if not got:
        sys.exit(f"no message on {args.queue} within {args.wait} s")
    m = got[0]
    arn = queue_arn(sqs, url)
    record = {
        "messageId": m["MessageId"],
        "receiptHandle": m["ReceiptHandle"],
        "body": m["Body"],
        "attributes": m.get("Attributes", {}),
        "messageAttributes": {},
        "md5OfBody": m["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": "us-east-1",
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"Records": [record]}, f, indent=2)
    # Lambda's event source mapping deletes what the function did not report as failed; the
    # caller invokes the function, so the message is deleted here (the check is what follows).
    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def xml_tree(text):
    """An XML answer (the S3 Control wire) as nested dicts by local element name, from the root:
    `body.DescribeJobResult.Job.JobArn`. A repeated element keeps its first occurrence."""
    import xml.etree.ElementTree as ET

    def local(tag):
        return tag.rsplit("}", 1)[-1]

    def walk(el):
        children = list(el)
        if not children:
            return el.text or ""
        out = {}
        for c in children:
            out.setdefault(local(c.tag), walk(c))
        return out

    root = ET.fromstring(text)
    return {local(root.tag): walk(root)}


def cmd_get(args):
    with open(args.path, encoding="utf-8") as f:
        value = json.load(f)
    for part in args.expr.split("."):
        if part == "body" and isinstance(value, dict) and isinstance(value.get("body"), str):
            body = value["body"]
            value = xml_tree(body) if body.lstrip().startswith("<") else json.loads(body)
        elif isinstance(value, list):
            value = value[int(part)]
        else:
            value = value[part]
    print(value if isinstance(value, str) else json.dumps(value))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("stack")
    s.add_argument("--endpoint", required=True)
    s.add_argument("--stack", required=True)
    s.add_argument("--env-file", required=True)
    s.add_argument("--visibility", type=int, default=60)
    s.add_argument("--allowed-buckets", default="*")
    s.set_defaults(func=cmd_stack)
    for name, func in (("seed", cmd_seed), ("intake", cmd_intake)):
        s = sub.add_parser(name)
        s.add_argument("--env-file", required=True)
        s.add_argument("--source", required=True)
        s.add_argument("--target", required=True)
        s.set_defaults(func=func)
    s = sub.add_parser("event")
    s.add_argument("template")
    s.add_argument("out")
    s.add_argument("replace", nargs="*")
    s.set_defaults(func=cmd_event)
    s = sub.add_parser("receive")
    s.add_argument("--env-file", required=True)
    s.add_argument("--queue", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--wait", type=float, default=10)
    s.set_defaults(func=cmd_receive)
    s = sub.add_parser("get")
    s.add_argument("path")
    s.add_argument("expr")
    s.set_defaults(func=cmd_get)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
