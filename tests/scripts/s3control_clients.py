"""Drives batchops' S3 Control wire API with stock clients, unmodified: boto3's `s3control`
client and the AWS CLI (`aws s3control ...`). Both reach `batchops dev` the way S3CONTROL.md
describes: an http:// endpoint whose account-prefixed name (123456789012.localhost) is never
resolved, because the request goes to HTTP_PROXY, which is batchops dev itself.

Usage: s3control_clients.py PORT BUCKET MANIFEST_KEY ETAG
Prints one JSON object with what each client saw; tests/tests/s3control.rs asserts on it.
"""

import json
import os
import subprocess
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ACCOUNT = "123456789012"


def body(bucket, manifest_key, etag, description):
    """A CreateJob request in S3 Control's member names (what --cli-input-json takes)."""
    return {
        "AccountId": ACCOUNT,
        "ConfirmationRequired": False,
        "Operation": {"S3PutObjectTagging": {"TagSet": [{"Key": "by", "Value": description}]}},
        "Report": {"Bucket": f"arn:aws:s3:::{bucket}", "Format": "Report_CSV_20180820", "Enabled": True,
                   "Prefix": "reports", "ReportScope": "AllTasks"},
        "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                     "Location": {"ObjectArn": f"arn:aws:s3:::{bucket}/{manifest_key}", "ETag": etag}},
        "Priority": 5,
        "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/batch-ops",
        "Description": description,
        "Tags": [{"Key": "client", "Value": description}],
    }


def error_code(call):
    try:
        call()
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


def until_complete(describe, job_id):
    for _ in range(600):
        job = describe(job_id)
        if job["Status"] in ("Complete", "Failed", "Cancelled"):
            return job
        time.sleep(0.1)
    raise SystemExit(f"job {job_id} did not end: {job}")


def main():
    port, bucket, manifest_key, etag = sys.argv[1:5]
    proxy = f"http://127.0.0.1:{port}"
    endpoint = f"http://localhost:{port}"
    out = {}

    # boto3
    c = boto3.client("s3control", region_name="us-east-1", endpoint_url=endpoint,
                     aws_access_key_id="test", aws_secret_access_key="test",
                     config=Config(proxies={"http": proxy}, retries={"max_attempts": 1}))
    job_id = c.create_job(**body(bucket, manifest_key, etag, "boto3"))["JobId"]
    job = until_complete(lambda j: c.describe_job(AccountId=ACCOUNT, JobId=j)["Job"], job_id)
    listed = c.list_jobs(AccountId=ACCOUNT, JobStatuses=["Complete"])["Jobs"]
    out["boto3"] = {
        "job_id": job_id,
        "status": job["Status"],
        "arn": job.get("JobArn"),
        "progress": job["ProgressSummary"],
        "listed": [j["JobId"] for j in listed],
        "tags": c.get_job_tagging(AccountId=ACCOUNT, JobId=job_id)["Tags"],
        "confirm_complete": error_code(lambda: c.update_job_status(
            AccountId=ACCOUNT, JobId=job_id, RequestedJobStatus="Ready")),
        "describe_missing": error_code(lambda: c.describe_job(AccountId=ACCOUNT, JobId="no-such-job")),
    }

    # The AWS CLI (v1, from the same virtualenv as this python)
    aws = os.path.join(os.path.dirname(sys.executable), "aws")
    env = dict(os.environ, HTTP_PROXY=proxy, http_proxy=proxy, NO_PROXY="", no_proxy="",
               AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1",
               AWS_ENDPOINT_URL_S3_CONTROL=endpoint, AWS_CONFIG_FILE="/dev/null",
               AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_MAX_ATTEMPTS="1")
    for k in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        env.pop(k, None)

    def cli(*args):
        r = subprocess.run([aws, "s3control", *args, "--account-id", ACCOUNT, "--output", "json"],
                           env=env, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            return {"error": r.stderr.strip()}
        return json.loads(r.stdout) if r.stdout.strip() else {}

    request = body(bucket, manifest_key, etag, "cli")
    del request["AccountId"]
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"create-job-{os.getpid()}.json")
    with open(path, "w") as f:
        json.dump(request, f)
    created = cli("create-job", "--cli-input-json", f"file://{path}")
    os.remove(path)
    if "error" in created:
        raise SystemExit(f"aws s3control create-job: {created['error']}")
    cli_id = created["JobId"]
    job = until_complete(lambda j: cli("describe-job", "--job-id", j)["Job"], cli_id)
    out["cli"] = {
        "job_id": cli_id,
        "status": job["Status"],
        "progress": job["ProgressSummary"],
        "listed": [j["JobId"] for j in cli("list-jobs", "--job-statuses", "Complete")["Jobs"]],
        "describe_missing": cli("describe-job", "--job-id", "no-such-job").get("error", ""),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
