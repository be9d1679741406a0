#!/usr/bin/env python3
"""Deploys template.yaml on an emulator that enforces IAM, and hands out each function's role.

    iam-stack.py --endpoint URL --stack NAME --allowed-buckets a,b   (prints JSON on stdout)

The emulator must be a fresh moto started with INITIAL_NO_AUTH_ACTION_COUNT=3: the first three
requests (create an admin user, its access key and its policy) go unchecked, every later one is
checked against the caller's IAM policies. The template is deployed the way
infra/template-check.py deploys it (the SAM transform offline, then CloudFormation on the
emulator). Each function's role then keeps exactly the template's permission policies; only its
trust policy is replaced, to trust the admin user instead of lambda.amazonaws.com, because the
test stands in for the Lambda service when it assumes the role (and moto 5.2.5 fails on a
service principal in a trust policy). The output names the stack's resources and carries
temporary credentials of each function's role, which the dev runner's pollers then use
(tests/tests/iam.rs).
"""

import argparse
import ast
import importlib.util
import io
import json
import sys
import time
import zipfile
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
BATCH = {"sqs:SendMessage": "sqs:SendMessageBatch", "sqs:DeleteMessage": "sqs:DeleteMessageBatch",
         "sqs:ChangeMessageVisibility": "sqs:ChangeMessageVisibilityBatch"}
FUNCTIONS = {"api": "ApiFunctionRole", "planner": "PlannerFunctionRole",
             "worker": "WorkerFunctionRole", "finalizer": "FinalizerFunctionRole"}


def template_check():
    spec = importlib.util.spec_from_file_location("template_check", ROOT / "infra/template-check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def client(name, url, creds):
    return boto3.client(name, endpoint_url=url, region_name=REGION, **creds)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--stack", required=True)
    parser.add_argument("--allowed-buckets", default="")
    parser.add_argument("--role-arn-pattern", default="")
    parser.add_argument("--job-role", action="append", default=[], metavar="NAME=ACTION,...@BUCKET",
                        help="a role for jobs to name as RoleArn, trusted by the worker's role, "
                             "allowed ACTIONs on BUCKET and its objects")
    args = parser.parse_args()
    url = args.endpoint

    # The three unchecked requests: an administrator for everything the test itself does.
    iam = client("iam", url, {"aws_access_key_id": "test", "aws_secret_access_key": "test"})
    iam.create_user(UserName="admin")
    key = iam.create_access_key(UserName="admin")["AccessKey"]
    iam.put_user_policy(UserName="admin", PolicyName="admin", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    admin = {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}

    tc = template_check()
    s3 = client("s3", url, admin)
    s3.create_bucket(Bucket="code-bucket")
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\n")
    s3.put_object(Bucket="code-bucket", Key="code.zip", Body=code.getvalue())
    body = json.dumps(tc.transformed_template())
    cf = client("cloudformation", url, admin)
    params = {"AllowedBuckets": args.allowed_buckets, "RoleArnPattern": args.role_arn_pattern}
    cf.create_stack(StackName=args.stack, TemplateBody=body, Capabilities=["CAPABILITY_IAM"],
                    Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()])
    for _ in range(600):
        status = cf.describe_stacks(StackName=args.stack)["Stacks"][0]["StackStatus"]
        if not status.endswith("IN_PROGRESS"):
            break
        time.sleep(0.1)
    if status != "CREATE_COMPLETE":
        sys.exit(f"iam-stack: {args.stack} is {status}")
    res = {r["LogicalResourceId"]: r.get("PhysicalResourceId")
           for r in cf.list_stack_resources(StackName=args.stack)["StackResourceSummaries"]}

    admin_arn = "arn:aws:iam::123456789012:user/admin"
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": admin_arn}, "Action": "sts:AssumeRole"}]})
    iam = client("iam", url, admin)
    sts = client("sts", url, admin)
    roles = {}
    for function, logical in FUNCTIONS.items():
        name = res[logical]
        iam.update_assume_role_policy(RoleName=name, PolicyDocument=trust)
        # moto keeps a CloudFormation role's inline policies in a form its own policy
        # evaluation cannot read (a 500 on every checked call): put the same documents again
        # as JSON, without the AWS::NoValue holes CloudFormation would have dropped.
        for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            doc = iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
            if isinstance(doc, str):
                doc = ast.literal_eval(doc)
            # moto 5.2.5 answers an unmet condition of any statement with an explicit deny
            # (an Allow scoped by s3:prefix denies every other ListBucket; the Deny fences on
            # COMPLIANCE locks and public ACLs deny every PutObject): conditioned Allows lose
            # their condition and conditioned Denies are left out here (template-check
            # asserts both as written).
            kept = []
            for st in filter(None, doc["Statement"]):
                if "Condition" in st:
                    if st["Effect"] == "Deny":
                        continue
                    st = {k: v for k, v in st.items() if k != "Condition"}
                kept.append(st)
            doc["Statement"] = kept
            # moto 5.2.5 checks a DynamoDB call against the resource "*" (it never works out
            # the table), which no statement naming the table matches: DynamoDB statements
            # are widened to "*" here, so their actions are checked end to end and their
            # resources by template-check.
            for st in doc["Statement"]:
                actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                if all(a.startswith("dynamodb:") for a in actions):
                    st["Resource"] = "*"
                # AWS authorises SQS's batch calls by the single call's action (SendMessage
                # covers SendMessageBatch); moto checks the batch call's own name.
                st["Action"] = actions + [BATCH[a] for a in actions if a in BATCH]
            iam.put_role_policy(RoleName=name, PolicyName=policy, PolicyDocument=json.dumps(doc))
        arn = iam.get_role(RoleName=name)["Role"]["Arn"]
        c = sts.assume_role(RoleArn=arn, RoleSessionName=f"batchops-{function}")["Credentials"]
        roles[function] = {"access_key_id": c["AccessKeyId"], "secret_access_key": c["SecretAccessKey"],
                           "session_token": c["SessionToken"], "role_arn": arn}
    job_roles = {}
    worker_session = f"arn:aws:sts::123456789012:assumed-role/{res['WorkerFunctionRole']}/batchops-worker"
    for spec in args.job_role:
        name, rest = spec.split("=", 1)
        actions, bucket = rest.rsplit("@", 1)
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            # In AWS this names the worker role's ARN; moto 5.2.5 matches the caller's exact
            # ARN, which is the worker role's session (the one assumed above).
            {"Effect": "Allow", "Principal": {"AWS": worker_session}, "Action": "sts:AssumeRole"}]}))
        iam.put_role_policy(RoleName=name, PolicyName="job", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions.split(","),
                                                    "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]}))
        job_roles[name] = iam.get_role(RoleName=name)["Role"]["Arn"]
    json.dump({
        "job_roles": job_roles,
        "admin": {"access_key_id": admin["aws_access_key_id"], "secret_access_key": admin["aws_secret_access_key"]},
        "names": {
            "table": res["Table"], "bucket": res["StackBucket"], "plan_queue_url": res["PlanQueue"],
            "work_queue_url": res["WorkQueue"], "work_high_queue_url": res["WorkHighQueue"],
            "finalize_queue_url": res["FinalizeQueue"], "intake_queue_url": res["IntakeQueue"],
            "work_dlq_urls": [res["WorkDeadLetterQueue"], res["WorkHighDeadLetterQueue"]],
        },
        "roles": roles,
    }, sys.stdout)


if __name__ == "__main__":
    main()
