#!/usr/bin/env python3
"""Deploys template.yaml on the moto emulator -- the closest thing to `sam deploy` without an AWS
account -- and checks what CloudFormation made of it:

- the SAM transform (aws-sam-translator, offline) gives every function its own role, with no
  managed policy and no wildcard action;
- the stack creates (twice: with AllowedBuckets and KmsKeyArns set, and with the defaults);
- every variable functions/core/src/config.rs requires (read from its `required("…")` calls)
  is set on every function, BATCHOPS_MAX_RECEIVES equals every queue's redrive
  maxReceiveCount, BATCHOPS_ALLOWED_BUCKETS is the stack bucket plus AllowedBuckets, and
  BATCHOPS_WORK_DLQ_URLS names the work queues' dead-letter queues;
- each queue's visibility timeout is six times its consumer's timeout;
- the roles' statements on user buckets and KMS keys render to the right ARNs, and vanish when
  the parameters are empty;
- the opt-in powers (AllowDeleteObject, AllowGovernanceBypass, AllowComplianceLock,
  AllowPublicGrants) reach every function, and the worker role grants delete and governance
  bypass only when enabled and denies COMPLIANCE locks and public ACLs unless enabled;
- at the longest AllowedBuckets (MaxLength, 63-character names), every role's inline policies
  fit IAM's 10,240 characters and every function's environment Lambda's 4 KB;
- with IntakeWriterArns, the stack bucket's policy lets only those principals write intake/;
- job events: every function may put events on EventBusName (only there, and not at all when it
  is empty) and is told the bus and the account; with NotificationTopicArn, a rule sends the
  events of ended jobs to that topic (moto's PutEvents fails when a rule targets SNS, so this is
  checked here, not end to end).

moto does not create the HTTP API's resources (AWS::ApiGatewayV2::*) nor Lambda permissions,
so those are checked only by cfn-lint and `sam validate --lint`.

Usage: template-check.py [--moto PATH_TO_moto_server]   (make validate runs it)
"""

import argparse
import ast
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import boto3
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
USER_BUCKETS = "my-data,my-reports,archive-20??-*"
KMS_KEYS = [f"arn:aws:kms:{REGION}:123456789012:key/{k}" for k in ("k1", "k2")]
MAX_RECEIVES = "7"
ROLE_PATTERN = "arn:aws:iam::123456789012:role/batchops-job-*"
TOPIC = "arn:aws:sns:us-east-1:123456789012:batchops-jobs-ended"
INTAKE_WRITERS = ["arn:aws:iam::123456789012:role/uploader-*", "arn:aws:iam::123456789012:user/ci"]

passed = failed = 0


def check(what, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok    {what}")
    else:
        failed += 1
        print(f"FAIL  {what}{': ' + detail if detail else ''}")


class NoManagedPolicies:
    """The transform may ask for AWS managed policy ARNs; the template names none."""

    def load(self):
        return {}


def transformed_template():
    template = yaml_parse((ROOT / "template.yaml").read_text())
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://code-bucket/code.zip"
    # The transform resolves AWS::Region from the default session's region.
    os.environ["AWS_DEFAULT_REGION"] = REGION
    return transform(template, {}, NoManagedPolicies())


def static_checks(cfn):
    resources = cfn["Resources"]
    roles = {n: r for n, r in resources.items() if r["Type"] == "AWS::IAM::Role"}
    functions = {n: r for n, r in resources.items() if r["Type"] == "AWS::Lambda::Function"}
    check(f"{len(functions)} functions, each with its own role",
          len(functions) == 4 and len({json.dumps(f["Properties"]["Role"]) for f in functions.values()}) == 4)
    for name, role in sorted(roles.items()):
        check(f"{name}: no managed policy", "ManagedPolicyArns" not in role["Properties"],
              str(role["Properties"].get("ManagedPolicyArns")))
        wild = []
        for policy in role["Properties"].get("Policies", []):
            for st in policy["PolicyDocument"]["Statement"]:
                for branch in ([st] if "Fn::If" not in st else st["Fn::If"][1:]):
                    if not isinstance(branch, dict) or "Action" not in branch:
                        continue
                    actions = branch["Action"] if isinstance(branch["Action"], list) else [branch["Action"]]
                    wild += [a for a in actions if "*" in a]
        check(f"{name}: no wildcard action", not wild, str(wild))
    for name, fn in sorted(functions.items()):
        p = fn["Properties"]
        check(f"{name}: provided.al2023, arm64, handler bootstrap",
              (p["Runtime"], p["Architectures"], p["Handler"]) == ("provided.al2023", ["arm64"], "bootstrap"))
    esms = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    check(f"{len(esms)} SQS event sources (plan, intake, work, work-high, finalize), all ReportBatchItemFailures",
          len(esms) == 5 and all(e.get("FunctionResponseTypes") == ["ReportBatchItemFailures"] for e in esms))
    routes = {(r["Properties"]["RouteKey"]) for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Route"} \
        or {f'{e["Properties"]["Method"]} {e["Properties"]["Path"]}'
            for fn in template_functions(cfn) for e in fn.get("Events", {}).values() if e["Type"] == "HttpApi"}
    json_routes = {r for r in routes if " /jobs" in r}
    console_routes = {"GET /console", "GET /console/{asset}"}
    check(f"{len(routes)} API routes: each JSON route /jobs... has its S3 Control twin /v20180820/jobs..., "
          "and the console's two",
          len(json_routes) == 8 and routes == json_routes | console_routes
          | {r.replace(" /jobs", " /v20180820/jobs") for r in json_routes},
          str(sorted(routes)))
    raw = yaml_parse((ROOT / "template.yaml").read_text())["Resources"]
    api_events = [e for fn in template_functions(cfn) for e in fn.get("Events", {}).values()
                  if e["Type"] == "HttpApi"]
    check("the API's default authoriser is IAM and no route opts out (the console's routes too: a "
          "browser reaches them through batchops console, which signs)",
          raw["HttpApi"]["Properties"]["Auth"]["DefaultAuthorizer"] == "AWS_IAM"
          and not any("Auth" in e["Properties"] for e in api_events))
    scaled = [e for e in esms if "ScalingConfig" in e]
    check("the two work queues' event sources have MaximumConcurrency",
          len(scaled) == 2 and all("Worker" in json.dumps(e["FunctionName"]) for e in scaled))


def template_functions(_cfn):
    """The SAM functions' properties, as written (the transform turns HttpApi events into routes
    of an API it may inline)."""
    template = yaml_parse((ROOT / "template.yaml").read_text())
    return [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::Serverless::Function"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(binary):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    proc = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
            return proc, url
        except OSError:
            time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGTERM)
    sys.exit("template-check: moto did not start")


def client(name, url):
    return boto3.client(name, endpoint_url=url, region_name=REGION,
                        aws_access_key_id="test", aws_secret_access_key="test")


def deploy(url, body, stack, params):
    cf = client("cloudformation", url)
    cf.create_stack(StackName=stack, TemplateBody=body, Capabilities=["CAPABILITY_IAM"],
                    Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()])
    for _ in range(600):
        status = cf.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
        if not status.endswith("IN_PROGRESS"):
            break
        time.sleep(0.1)
    reasons = [f'{e["LogicalResourceId"]}: {e.get("ResourceStatusReason")}'
               for e in cf.describe_stack_events(StackName=stack)["StackEvents"]
               if "FAILED" in e["ResourceStatus"]]
    check(f"{stack}: stack created", status == "CREATE_COMPLETE", f"{status} {reasons}")
    summaries = cf.list_stack_resources(StackName=stack)["StackResourceSummaries"]
    return {r["LogicalResourceId"]: r.get("PhysicalResourceId") for r in summaries}


def role_actions(iam, role_name):
    """{Sid: (Effect, sorted actions)} of the role's inline policies."""
    out = {}
    for policy in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
        doc = iam.get_role_policy(RoleName=role_name, PolicyName=policy)["PolicyDocument"]
        if isinstance(doc, str):
            doc = ast.literal_eval(doc)
        for st in filter(None, doc["Statement"]):
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            out[st["Sid"]] = (st["Effect"], sorted(actions))
    return out


POWERS = {"AllowDeleteObject": "BATCHOPS_ALLOW_DELETE",
          "AllowGovernanceBypass": "BATCHOPS_ALLOW_GOVERNANCE_BYPASS",
          "AllowComplianceLock": "BATCHOPS_ALLOW_COMPLIANCE_LOCK",
          "AllowPublicGrants": "BATCHOPS_ALLOW_PUBLIC_GRANTS"}
DENIALS = ["NoComplianceLocks", "NoPublicCannedAcls", "NoPublicReadGrants", "NoPublicFullControlGrants"]


def power_checks(url, res, stack, enabled, user_buckets):
    """The opt-in powers (functions/core/src/ops/powers.rs): each function reads the parameter,
    and the worker role grants the power's actions only when it is enabled, and denies COMPLIANCE
    locks and public ACLs unless they are."""
    lam, iam = client("lambda", url), client("iam", url)
    for fn in ["ApiFunction", "PlannerFunction", "WorkerFunction", "FinalizerFunction"]:
        env = lam.get_function_configuration(FunctionName=res[fn])["Environment"]["Variables"]
        got = {p: env.get(v) for p, v in POWERS.items()}
        want = {p: "true" if enabled else "false" for p in POWERS}
        check(f"{stack} {fn}: the powers' variables follow the parameters", got == want, str(got))
    worker = role_actions(iam, res["WorkerFunctionRole"])
    granted = sorted(a for effect, actions in worker.values() if effect == "Allow" for a in actions)
    for action in ["s3:DeleteObject", "s3:DeleteObjectVersion", "s3:BypassGovernanceRetention"]:
        # s3:DeleteObject on the stack bucket's own prefixes (results/, parked/) is not a power.
        on_user_objects = [sid for sid, (e, a) in worker.items()
                           if e == "Allow" and action in a and sid.startswith("UserBuckets")]
        want = bool(enabled and user_buckets)
        check(f"{stack} worker: {action} on user buckets {'granted' if want else 'not granted'}",
              bool(on_user_objects) == want, f"{on_user_objects} of {granted}")
    denied = sorted(sid for sid, (e, _) in worker.items() if e == "Deny" and sid in DENIALS)
    check(f"{stack} worker: COMPLIANCE locks and public ACLs {'allowed' if enabled else 'denied'}",
          denied == ([] if enabled else sorted(DENIALS)), str(denied))


def intake_policy_checks(cfn):
    """With IntakeWriterArns, the stack bucket's policy denies intake/ writes by anyone else.
    moto creates no AWS::S3::BucketPolicy, so this reads the template itself."""
    statements = cfn["Resources"]["StackBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    guarded = [st["Fn::If"] for st in statements if isinstance(st, dict) and "Fn::If" in st
               and st["Fn::If"][1].get("Sid") == "IntakeWritersOnly"]
    cond, st, otherwise = guarded[0] if guarded else (None, {}, None)
    check("stack bucket policy: only IntakeWriterArns may write intake/ (when set)",
          cond == "HasIntakeWriters" and otherwise == {"Ref": "AWS::NoValue"}
          and st.get("Effect") == "Deny" and st.get("Principal") == "*" and st.get("Action") == "s3:PutObject"
          and st.get("Resource") == {"Fn::Sub": "${StackBucket.Arn}/intake/*"}
          and st.get("Condition") == {"ArnNotLike": {"aws:PrincipalArn": {"Ref": "IntakeWriterArns"}}}
          and cfn["Conditions"].get("HasIntakeWriters") == {"Fn::Not": [{"Fn::Equals": [
              {"Fn::Join": ["", {"Ref": "IntakeWriterArns"}]}, ""]}]},
          json.dumps(guarded))


def size_checks(url, res, stack):
    """IAM's limit on a role's inline policies (10,240 characters, whitespace not counted) and
    Lambda's on a function's environment (4 KB), at the longest AllowedBuckets."""
    iam, lam = client("iam", url), client("lambda", url)
    for logical in ["ApiFunctionRole", "PlannerFunctionRole", "WorkerFunctionRole", "FinalizerFunctionRole"]:
        size = 0
        for policy in iam.list_role_policies(RoleName=res[logical])["PolicyNames"]:
            doc = iam.get_role_policy(RoleName=res[logical], PolicyName=policy)["PolicyDocument"]
            if isinstance(doc, str):
                doc = ast.literal_eval(doc)
            doc["Statement"] = [st for st in doc["Statement"] if st]
            size += len(json.dumps(doc, separators=(",", ":")))
        check(f"{stack} {logical}: inline policies {size} characters <= 10,240", size <= 10240)
    for fn in ["ApiFunction", "PlannerFunction", "WorkerFunction", "FinalizerFunction"]:
        env = lam.get_function_configuration(FunctionName=res[fn])["Environment"]["Variables"]
        size = sum(len(k) + len(str(v)) for k, v in env.items())
        check(f"{stack} {fn}: environment {size} bytes <= 4,096", size <= 4096)


def stack_bucket_fence_checks(iam, res, stack):
    """Whatever AllowedBuckets says (`*`, or a pattern the stack bucket matches), each role's
    explicit denies keep the stack bucket's prefixes out of a job's reach (security issue §1):
    no role reads other jobs' results and reports but the finalizer, no report or job lands in
    intake/, and the worker's task actions never apply to the stack bucket."""
    bucket = res["StackBucket"]
    under = lambda *prefixes: sorted(f"arn:aws:s3:::{bucket}/{p}/*" for p in prefixes)
    roles = {fn: (role_statements(iam, res[f"{fn.capitalize()}FunctionRole"]),
                  role_actions(iam, res[f"{fn.capitalize()}FunctionRole"]))
             for fn in ("planner", "worker", "finalizer")}
    want = {
        "planner": {"StackBucketResultsUnreadable": (["s3:GetObject", "s3:GetObjectVersion"], under("results", "reports")),
                    "StackBucketWritesOnlyPlanAndGenerated": (["s3:PutObject"], under("intake", "results", "reports", "parked"))},
        "worker": {"StackBucketOutOfJobsReach": (["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
                                                 under("intake", "reports", "generated", "plan")),
                   "StackBucketNoTaskActions": (None, [f"arn:aws:s3:::{bucket}/*"])},
        "finalizer": {"StackBucketReportsOnlyUnderReports": (["s3:PutObject"],
                                                            under("intake", "results", "parked", "generated", "plan"))},
    }
    for fn, sids in want.items():
        resources, actions = roles[fn]
        for sid, (acts, res_want) in sids.items():
            effect, got_actions = actions.get(sid, ("", []))
            ok = effect == "Deny" and resources.get(sid) == res_want and (acts is None or got_actions == acts)
            check(f"{stack} {fn}: denies {sid} on {', '.join(r.split(':::')[1] for r in res_want)}", ok,
                  f"{effect} {got_actions} on {resources.get(sid)}")
    task_actions = set(roles["worker"][1].get("UserBucketsObjectOperations", ("", []))[1]) \
        | {"s3:DeleteObjectVersion", "s3:BypassGovernanceRetention"}
    denied = set(roles["worker"][1].get("StackBucketNoTaskActions", ("", []))[1])
    own = {"s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"}  # its own results/ and parked/
    check(f"{stack} worker: every task action but its own results' reads and writes is denied on the stack bucket",
          not (task_actions - own - denied), str(sorted(task_actions - own - denied)))
    finalizer_reports = roles["finalizer"][0].get("StackBucketReports")
    check(f"{stack} finalizer: writes reports in the stack bucket under reports/ only",
          finalizer_reports == under("reports"), str(finalizer_reports))


def role_statements(iam, role_name):
    out = {}
    for policy in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
        doc = iam.get_role_policy(RoleName=role_name, PolicyName=policy)["PolicyDocument"]
        if isinstance(doc, str):  # moto returns the document as Python's repr
            doc = ast.literal_eval(doc)
        # CloudFormation drops an AWS::NoValue list element; moto leaves None in its place.
        for st in filter(None, doc["Statement"]):
            res = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            out[st["Sid"]] = sorted(res)
    return out


def event_checks(url, res, stack, bus, topic):
    """Job events: every function may put events on the bus (and has its name), none when the
    bus is empty; the ended-jobs rule to the SNS topic exists only with a topic."""
    iam, lam = client("iam", url), client("lambda", url)
    want = [f"arn:aws:events:{REGION}:123456789012:event-bus/{bus}"] if bus else None
    for fn in ["Api", "Planner", "Worker", "Finalizer"]:
        got = role_statements(iam, res[f"{fn}FunctionRole"]).get("JobEvents")
        actions = role_actions(iam, res[f"{fn}FunctionRole"]).get("JobEvents")
        check(f"{stack} {fn.lower()}: events:PutEvents on {bus or 'no bus'} only",
              got == want and (actions == ("Allow", ["events:PutEvents"]) if bus else actions is None),
              f"{got} {actions}")
        env = lam.get_function_configuration(FunctionName=res[f"{fn}Function"])["Environment"]["Variables"]
        check(f"{stack} {fn.lower()}: BATCHOPS_EVENT_BUS={bus!r}, BATCHOPS_ACCOUNT_ID set",
              env.get("BATCHOPS_EVENT_BUS", "") == bus and env.get("BATCHOPS_ACCOUNT_ID") == "123456789012",
              str({k: env.get(k) for k in ("BATCHOPS_EVENT_BUS", "BATCHOPS_ACCOUNT_ID")}))
    rule = res.get("JobEndedNotificationRule")
    if not topic:
        check(f"{stack}: no notification rule without NotificationTopicArn", rule is None, str(rule))
        return
    events = client("events", url)
    name = rule.split("|")[-1].split("/")[-1] if rule else ""
    described = events.describe_rule(Name=name, EventBusName=bus) if rule else {}
    pattern = json.loads(described.get("EventPattern", "{}"))
    targets = events.list_targets_by_rule(Rule=name, EventBusName=bus)["Targets"] if rule else []
    check(f"{stack}: the notification rule sends ended jobs' events to the topic",
          pattern == {"source": ["batchops"], "detail-type": ["Job Status Change"],
                      "detail": {"status": ["Complete", "Failed", "Cancelled"]}}
          and [t["Arn"] for t in targets] == [topic],
          f"{pattern} {targets}")


def stack_checks(url, res, stack, user_buckets, kms_keys, max_receives):
    lam, sqs, iam = client("lambda", url), client("sqs", url), client("iam", url)
    required = sorted(set(re.findall(r'required\("(BATCHOPS_[A-Z_]+)"\)',
                                     (ROOT / "functions/core/src/config.rs").read_text())))
    bucket = res["StackBucket"]
    queues = ["PlanQueue", "WorkQueue", "WorkHighQueue", "FinalizeQueue", "IntakeQueue"]
    consumer = {"PlanQueue": "PlannerFunction", "IntakeQueue": "PlannerFunction",
                "WorkQueue": "WorkerFunction", "WorkHighQueue": "WorkerFunction",
                "FinalizeQueue": "FinalizerFunction"}
    timeouts = {}
    for fn in ["ApiFunction", "PlannerFunction", "WorkerFunction", "FinalizerFunction"]:
        conf = lam.get_function_configuration(FunctionName=res[fn])
        timeouts[fn] = conf["Timeout"]
        env = {k: str(v) for k, v in conf["Environment"]["Variables"].items()}
        missing = [v for v in required + ["BATCHOPS_WORK_HIGH_QUEUE_URL", "BATCHOPS_WORK_DLQ_URLS",
                                          "BATCHOPS_MAX_RECEIVES", "BATCHOPS_HIGH_PRIORITY",
                                          "BATCHOPS_ALLOWED_BUCKETS", "RUST_LOG"] if not env.get(v)]
        check(f"{stack} {fn}: sets {', '.join(required)} and the rest", not missing, f"missing {missing}")
        allowed = ",".join([bucket] + ([user_buckets] if user_buckets else []))
        check(f"{stack} {fn}: BATCHOPS_ALLOWED_BUCKETS={env.get('BATCHOPS_ALLOWED_BUCKETS')}",
              env.get("BATCHOPS_ALLOWED_BUCKETS") == allowed, f"expected {allowed}")
        dlqs = sorted(env.get("BATCHOPS_WORK_DLQ_URLS", "").split(","))
        check(f"{stack} {fn}: BATCHOPS_WORK_DLQ_URLS names the two work DLQs",
              dlqs == sorted([res["WorkDeadLetterQueue"], res["WorkHighDeadLetterQueue"]]), str(dlqs))
        check(f"{stack} {fn}: BATCHOPS_MAX_RECEIVES={env.get('BATCHOPS_MAX_RECEIVES')}",
              env.get("BATCHOPS_MAX_RECEIVES") == max_receives)
    for q in queues:
        attrs = sqs.get_queue_attributes(QueueUrl=res[q], AttributeNames=["All"])["Attributes"]
        redrive = json.loads(attrs.get("RedrivePolicy", "{}"))
        check(f"{stack} {q}: redrive after {redrive.get('maxReceiveCount')} receives to its DLQ",
              str(redrive.get("maxReceiveCount")) == max_receives and "DeadLetterQueue" in redrive.get("deadLetterTargetArn", ""))
        visibility, timeout = int(attrs["VisibilityTimeout"]), timeouts[consumer[q]]
        check(f"{stack} {q}: visibility {visibility} s = 6 x {consumer[q]} timeout {timeout} s",
              visibility == 6 * timeout)
    worker = role_statements(iam, res["WorkerFunctionRole"])
    planner = role_statements(iam, res["PlannerFunctionRole"])
    finalizer = role_statements(iam, res["FinalizerFunctionRole"])
    if user_buckets:
        names = user_buckets.split(",")
        objects = sorted(f"arn:*:s3:::{b}/*" for b in names)
        check(f"{stack} worker: object operations on {objects}",
              worker.get("UserBucketsObjectOperations") == objects, str(worker.get("UserBucketsObjectOperations")))
        check(f"{stack} worker: ListBucket on the user buckets",
              worker.get("UserBucketsList") == sorted(f"arn:*:s3:::{b}" for b in names))
        check(f"{stack} planner: reads manifests in the user buckets", planner.get("ManifestsRead") == objects)
        check(f"{stack} finalizer: writes reports to the user buckets", finalizer.get("UserBucketsReports") == objects)
    else:
        present = [sid for sid in list(worker) + list(planner) + list(finalizer) if "User" in sid or "Manifests" in sid]
        check(f"{stack}: no statement on user buckets", not present, str(present))
    kms = [sid for sid in list(worker) + list(planner) + list(finalizer) if "Kms" in sid]
    if kms_keys:
        check(f"{stack}: KMS statements name the keys",
              len(kms) == 3 and worker.get("UserObjectsKms") == sorted(kms_keys), str(kms))
    else:
        check(f"{stack}: no KMS statement", not kms, str(kms))
    for fn, statements in (("planner", planner), ("worker", worker), ("finalizer", finalizer)):
        want = [f"arn:aws:logs:{REGION}:123456789012:log-group:/batchops/{stack}/{fn}:*"]
        check(f"{stack} {fn}: logs to {want[0]}", statements.get("Logs") == want, str(statements.get("Logs")))
    check(f"{stack} worker: results/ of the stack bucket only",
          worker.get("ChunkResults") == [f"arn:aws:s3:::{bucket}/results/*"], str(worker.get("ChunkResults")))
    check(f"{stack} planner: reads only intake/ and parked/ of the stack bucket",
          planner.get("StackBucketRead") == sorted([f"arn:aws:s3:::{bucket}/intake/*", f"arn:aws:s3:::{bucket}/parked/*"]),
          str(planner.get("StackBucketRead")))
    check(f"{stack} planner: writes generated manifests under generated/ of the stack bucket",
          planner.get("GeneratedOutput") == [f"arn:aws:s3:::{bucket}/generated/*"], str(planner.get("GeneratedOutput")))
    if kms_keys:
        kms_actions = role_actions(iam, res["PlannerFunctionRole"]).get("ManifestsKms", ("", []))[1]
        check(f"{stack} planner: kms:Decrypt and kms:GenerateDataKey (generated manifests in SSE-KMS buckets)",
              kms_actions == ["kms:Decrypt", "kms:GenerateDataKey"], str(kms_actions))
    stack_bucket_fence_checks(iam, res, stack)
    api = role_statements(iam, res["ApiFunctionRole"])
    parked = [f"arn:aws:s3:::{bucket}/parked/*"]
    for fn, statements in (("api", api), ("planner", planner), ("worker", worker), ("finalizer", finalizer)):
        check(f"{stack} {fn}: parked chunks under parked/ of the stack bucket only",
              statements.get("ParkedChunks") == parked, str(statements.get("ParkedChunks")))
    work_arns = [sqs.get_queue_attributes(QueueUrl=res[q], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
                 for q in ("WorkQueue", "WorkHighQueue")]
    for fn, sid in (("api", "QueueJobs"), ("finalizer", "SweepReplansAndFinalizes")):
        sent = api.get(sid, []) if fn == "api" else finalizer.get(sid, [])
        check(f"{stack} {fn}: can queue parked chunks again", all(a in sent for a in work_arns), str(sent))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--moto", default=str(Path(sys.executable).parent / "moto_server"))
    args = parser.parse_args()
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

    cfn = transformed_template()
    static_checks(cfn)
    intake_policy_checks(cfn)
    body = json.dumps(cfn)

    proc, url = start_moto(args.moto)
    try:
        s3 = client("s3", url)
        s3.create_bucket(Bucket="code-bucket")
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as z:
            z.writestr("bootstrap", "#!/bin/sh\n")
        s3.put_object(Bucket="code-bucket", Key="code.zip", Body=code.getvalue())

        res = deploy(url, body, "users", {"AllowedBuckets": USER_BUCKETS, "KmsKeyArns": ",".join(KMS_KEYS),
                                          "MaxReceiveCount": MAX_RECEIVES,
                                          "IntakeWriterArns": ",".join(INTAKE_WRITERS),
                                          "NotificationTopicArn": TOPIC})
        stack_checks(url, res, "users", USER_BUCKETS, KMS_KEYS, MAX_RECEIVES)
        event_checks(url, res, "users", "default", TOPIC)
        power_checks(url, res, "users", False, USER_BUCKETS)
        res = deploy(url, body, "defaults", {})
        stack_checks(url, res, "defaults", "", [], "5")
        event_checks(url, res, "defaults", "default", "")
        defaults_worker = role_statements(client("iam", url), res["WorkerFunctionRole"])
        check("defaults worker: no sts:AssumeRole without RoleArnPattern",
              "AssumeJobRoles" not in defaults_worker, str(list(defaults_worker)))
        power_checks(url, res, "defaults", False, "")
        res = deploy(url, body, "powers", {"AllowedBuckets": USER_BUCKETS, "RoleArnPattern": ROLE_PATTERN,
                                           "EventBusName": "", "NotificationTopicArn": TOPIC,
                                           **{p: "true" for p in POWERS}})
        event_checks(url, res, "powers", "", "")
        power_checks(url, res, "powers", True, USER_BUCKETS)
        longest = int(cfn["Parameters"]["AllowedBuckets"]["MaxLength"])
        names, n = [], 0
        while len(",".join(names + [f"b{n:03d}-" + "x" * 58])) <= longest:
            names.append(f"b{n:03d}-" + "x" * 58)
            n += 1
        names.append(("b" + "x" * 62)[: longest - len(",".join(names)) - 1])
        big = ",".join(names)
        check(f"the longest AllowedBuckets is {len(big)} characters", len(big) == longest)
        res_big = deploy(url, body, "longest", {"AllowedBuckets": big, "RoleArnPattern": ROLE_PATTERN,
                                                "KmsKeyArns": ",".join(KMS_KEYS), "IntakeWriterArns": ",".join(INTAKE_WRITERS),
                                                **{p: "true" for p in POWERS}})
        size_checks(url, res_big, "longest")
        worker = role_statements(client("iam", url), res["WorkerFunctionRole"])
        check("powers worker: sts:AssumeRole on RoleArnPattern only",
              worker.get("AssumeJobRoles") == [ROLE_PATTERN], str(worker.get("AssumeJobRoles")))
        env = client("lambda", url).get_function_configuration(FunctionName=res["WorkerFunction"])["Environment"]["Variables"]
        check("powers worker: BATCHOPS_ROLE_ARN_PATTERN is the parameter",
              env.get("BATCHOPS_ROLE_ARN_PATTERN") == ROLE_PATTERN, str(env.get("BATCHOPS_ROLE_ARN_PATTERN")))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    print(f"template-check: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
