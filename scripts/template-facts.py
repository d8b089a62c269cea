"""Checks what template.yaml must hold on AWS that neither validator knows about.

Run by scripts/lint-template with the project's .venv (it reads the template with
cfn-lint's loader, which understands the short intrinsic-function tags). Exits 1 naming
every fact that does not hold.
"""

import sys

from cfnlint.decode import decode

API_GATEWAY_MAX_MS = 30_000
failures = []


def check(fact, holds):
    print(("ok   " if holds else "FAIL ") + fact)
    if not holds:
        failures.append(fact)


template, problems = decode("template.yaml")
if problems:
    sys.exit(f"template.yaml does not load: {problems}")
resources = template["Resources"]
functions = {
    name: r["Properties"]
    for name, r in resources.items()
    if r["Type"] == "AWS::Serverless::Function"
}


def branches(value):
    """A statement, or both branches of an `Fn::If` (skipping `AWS::NoValue`)."""
    if isinstance(value, dict) and "Fn::If" in value:
        for branch in value["Fn::If"][1:]:
            yield from branches(branch)
    elif isinstance(value, dict) and "Effect" in value:
        yield value


def statements(props):
    for policy in props.get("Policies", []):
        if isinstance(policy, dict):
            for statement in policy.get("Statement", []):
                yield from branches(statement)


def listed(value):
    return value if isinstance(value, list) else [value]


# Every function called by API Gateway answers before API Gateway gives up.
for name, props in functions.items():
    for event_name, event in props.get("Events", {}).items():
        if event["Type"] != "HttpApi":
            continue
        limit = event["Properties"].get("TimeoutInMillis", API_GATEWAY_MAX_MS)
        check(
            f"{name}.{event_name}: timeout {props['Timeout']} s below the integration's {limit} ms",
            props["Timeout"] * 1000 < min(limit, API_GATEWAY_MAX_MS),
        )

# The replies topic: a key End User Messaging can use, and a policy letting it publish.
topic = resources["InboundSmsTopic"]["Properties"]
key = topic.get("KmsMasterKeyId")
check(
    "InboundSmsTopic is not under the AWS-managed alias/aws/sns",
    key != "alias/aws/sns" and not (isinstance(key, str) and key.startswith("alias/aws/")),
)
if isinstance(key, dict) and "Ref" in key:
    key_policy = resources[key["Ref"]]["Properties"]["KeyPolicy"]["Statement"]
    check(
        "the replies topic's key lets sms-voice.amazonaws.com use it",
        any(
            "sms-voice.amazonaws.com" in listed(s.get("Principal", {}).get("Service", []))
            and s["Effect"] == "Allow"
            for s in key_policy
        ),
    )
topic_policies = [
    r["Properties"]
    for r in resources.values()
    if r["Type"] == "AWS::SNS::TopicPolicy"
    and {"Ref": "InboundSmsTopic"} in r["Properties"]["Topics"]
]
check(
    "a topic policy lets sms-voice.amazonaws.com publish, conditioned on the account",
    any(
        s["Effect"] == "Allow"
        and "sms-voice.amazonaws.com" in listed(s["Principal"].get("Service", []))
        and "sns:Publish" in listed(s["Action"])
        and "aws:SourceAccount" in str(s.get("Condition", {}))
        for p in topic_policies
        for s in p["PolicyDocument"]["Statement"]
    ),
)

# A reply that fails every retry is kept, not dropped.
inbound = functions["InboundFunction"]
replies = [e for e in inbound["Events"].values() if e["Type"] == "SNS"]
check(
    "the replies subscription has a dead-letter queue",
    all("RedrivePolicy" in e["Properties"] for e in replies) and bool(replies),
)
check(
    "the replies function's failed invocations go to a destination",
    "OnFailure" in inbound.get("EventInvokeConfig", {}).get("DestinationConfig", {}),
)

# Texting phones never comes with the right to publish to every topic of the account.
for name, props in functions.items():
    stmts = list(statements(props))
    publish_anywhere = any(
        s["Effect"] == "Allow" and "sns:Publish" in listed(s["Action"]) and s["Resource"] == "*"
        for s in stmts
    )
    if publish_anywhere:
        check(
            f"{name}: sns:Publish on * is denied on every topic",
            any(
                s["Effect"] == "Deny"
                and "sns:Publish" in listed(s["Action"])
                and "sns:*:*:*" in str(s["Resource"])
                for s in stmts
            ),
        )

# The send queue outlasts six times the sender's timeout (AWS's rule for a mapped queue).
check(
    "SendQueue's visibility timeout is at least 6 times the sender's timeout",
    resources["SendQueue"]["Properties"]["VisibilityTimeout"]
    >= 6 * functions["SenderFunction"]["Timeout"],
)

# Listings by status are served by their index.
indexes = [
    i["IndexName"]
    for i in resources["RegistrationTable"]["Properties"]["GlobalSecondaryIndexes"]
]
check("the table has the status index gsi3", "gsi3" in indexes)

if failures:
    sys.exit(f"{len(failures)} template fact(s) do not hold")
print("template.yaml: every fact holds")
