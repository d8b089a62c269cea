"""Checks what template.yaml must hold on AWS that neither validator knows about.

Run by scripts/lint-template with the project's .venv (it reads the template with
cfn-lint's loader, which understands the short intrinsic-function tags, and also runs SAM's
own transform, offline, to check what only the transformed template shows: the functions'
generated roles and dependency cycles through them). Where the Rust source holds a number,
a name or the AWS calls an adapter makes, the facts read it from there. Exits 1 naming
every fact that does not hold.
"""

import json
import re
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

# One source for limits: every number the functions read from a template parameter has the
# same default and range in src/config.rs as in the parameter.
config_rs = open("src/config.rs").read()
ranges = {
    name: (int(default.replace("_", "")), int(low.replace("_", "")), int(high.replace("_", "")))
    for name, default, low, high in re.findall(
        r'number\("([A-Z_]+)", ([0-9_]+), ([0-9_]+), ([0-9_]+)\)', config_rs
    )
}
variables = template["Globals"]["Function"]["Environment"]["Variables"]
parameters = template["Parameters"]
for variable, (default, low, high) in sorted(ranges.items()):
    ref = variables.get(variable, {})
    parameter = parameters.get(ref.get("Ref", "")) if isinstance(ref, dict) else None
    check(f"{variable} is set from a template parameter", parameter is not None)
    if parameter is None:
        continue
    check(
        f"{variable}: default {default}, range {low} to {high}, as its parameter "
        f"{ref['Ref']} ({parameter.get('Default')}, {parameter.get('MinValue')} to "
        f"{parameter.get('MaxValue')})",
        (int(parameter.get("Default", -1)), int(parameter.get("MinValue", -1)),
         int(parameter.get("MaxValue", -1))) == (default, low, high),
    )

# Failed SMS decide when a job is given up; the queue's maxReceiveCount is only a safety net
# above them (a job handed back for the rate or the deadline spends a receive, no attempt).
redrive = resources["SendQueue"]["Properties"]["RedrivePolicy"]
check(
    "SendQueue's maxReceiveCount is at least twice the largest SendMaxAttempts",
    int(redrive["maxReceiveCount"]) >= 2 * int(parameters["SendMaxAttempts"]["MaxValue"]),
)
senders = functions["SenderFunction"]["Events"].values()
check(
    "the sender consumes the send dead-letter queue (jobs there are given up)",
    any(
        e["Type"] == "SQS"
        and e["Properties"]["Queue"] == {"Fn::GetAtt": ["SendDeadLetterQueue", "Arn"]}
        for e in senders
    )
    and variables.get("SEND_DEAD_LETTER_QUEUE_ARN")
    == {"Fn::GetAtt": ["SendDeadLetterQueue", "Arn"]},
)

# A log batch of receipts that fails every try is kept for replay.
check(
    "the receipts function's failed batches go to ReceiptsFailedQueue",
    functions["ReceiptsFunction"].get("EventInvokeConfig", {}).get("DestinationConfig", {})
    .get("OnFailure", {}).get("Destination") == {"Fn::GetAtt": ["ReceiptsFailedQueue", "Arn"]},
)

# The outbox: the table's stream feeds EventsFunction with outbox items inserted, and a
# batch that fails every try is described on EventsFailedQueue for replay-events.
table = resources["RegistrationTable"]["Properties"]
check(
    "the table has a stream with new and old images (the outbox, batches' completion)",
    table.get("StreamSpecification", {}).get("StreamViewType") == "NEW_AND_OLD_IMAGES",
)
outbox_rs = open("src/adapters/dynamodb/outbox.rs").read()
outbox_kind = re.search(r'OUTBOX_KIND: &str = "([a-z_]+)"', outbox_rs)
batch_kind = re.search(r'BATCH_KIND: &str = "([a-z_]+)"', outbox_rs)
events_fn = functions.get("EventsFunction", {})
check(
    "EventsFunction builds the binary smsreg-events",
    resources.get("EventsFunction", {}).get("Metadata", {}).get("BuildProperties", {}).get("Binary")
    == "smsreg-events",
)
streams = [e["Properties"] for e in events_fn.get("Events", {}).values() if e["Type"] == "DynamoDB"]
check("EventsFunction reads the table's stream", any(
    m["Stream"] in ({"Fn::GetAtt": ["RegistrationTable", "StreamArn"]}, {"Fn::GetAtt": "RegistrationTable.StreamArn"})
    for m in streams))
for m in streams:
    patterns = [json.loads(f["Pattern"]) for f in m.get("FilterCriteria", {}).get("Filters", [])]
    check(
        "the stream mapping's filter keeps outbox items inserted and batch items written, "
        "of the kinds src/adapters/dynamodb/outbox.rs reads",
        outbox_kind is not None
        and batch_kind is not None
        and patterns == [
            {"eventName": ["INSERT"], "dynamodb": {"NewImage": {"kind": {"S": [outbox_kind.group(1)]}}}},
            {"eventName": ["INSERT", "MODIFY"], "dynamodb": {"NewImage": {"kind": {"S": [batch_kind.group(1)]}}}},
        ],
    )
    check("the stream mapping bisects a batch on error", m.get("BisectBatchOnFunctionError") is True)
    check("the stream mapping reads batchItemFailures", "ReportBatchItemFailures" in m.get("FunctionResponseTypes", []))
    check(
        "the stream mapping's retries and record age are bounded, within the stream's 24 h",
        0 <= int(m.get("MaximumRetryAttempts", -1)) <= 10000
        and 60 <= int(m.get("MaximumRecordAgeInSeconds", -1)) <= 86400,
    )
    check(
        "the stream mapping's failed batches go to EventsFailedQueue",
        m.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        == {"Fn::GetAtt": ["EventsFailedQueue", "Arn"]},
    )
outbox_days = re.search(r"OUTBOX_DAYS: u64 = ([0-9]+);", outbox_rs)
check(
    "outbox items outlive a failed batch on EventsFailedQueue (OUTBOX_DAYS in "
    "src/adapters/dynamodb/outbox.rs >= the queue's retention), so replay-events finds them",
    outbox_days is not None
    and int(outbox_days.group(1)) * 86400
    >= int(resources["EventsFailedQueue"]["Properties"]["MessageRetentionPeriod"]),
)
put_events = [
    s for s in statements(events_fn) if s["Effect"] == "Allow" and "events:PutEvents" in listed(s["Action"])
]
check(
    "EventsFunction may put events on its bus alone (never on *)",
    bool(put_events) and all(s["Resource"] != "*" for s in put_events),
)
check(
    "EventsFunction is given its bus as EVENT_BUS_NAME",
    events_fn.get("Environment", {}).get("Variables", {}).get("EVENT_BUS_NAME")
    == {"Fn::If": ["CreateEventBus", {"Ref": "EventBus"}, {"Ref": "EventBusName"}]},
)
rule = resources.get("EventsWebhookRule", {}).get("Properties", {})
targets = rule.get("Targets", [])
check(
    "the webhook rule targets the API destination with a retry policy and a dead-letter queue",
    bool(targets)
    and all(
        t.get("Arn") == {"Fn::GetAtt": ["EventsWebhookDestination", "Arn"]}
        and "RetryPolicy" in t
        and "DeadLetterConfig" in t
        for t in targets
    ),
)
check(
    "the webhook's connection and destination exist only with EventsWebhookUrl",
    all(
        resources.get(name, {}).get("Condition") == "HasEventsWebhook"
        for name in ("EventsWebhookConnection", "EventsWebhookDestination", "EventsWebhookRule")
    ),
)

# Listings by status are served by their index.
indexes = [
    i["IndexName"]
    for i in resources["RegistrationTable"]["Properties"]["GlobalSecondaryIndexes"]
]
check("the table has the status index gsi3", "gsi3" in indexes)

# Delivery receipts: SNS's two SMS delivery log groups feed the receipts function.
DELIVERY_LOG_GROUPS = {
    "successes": "sns/${AWS::Region}/${AWS::AccountId}/DirectPublishToPhoneNumber",
    "failures": "sns/${AWS::Region}/${AWS::AccountId}/DirectPublishToPhoneNumber/Failure",
}


def log_group_names(value):
    """The names a LogGroupName value can take: a string, a Sub, a Ref to a log group in
    the template, or each branch of an `Fn::If`."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict) and "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
        yield value["Fn::Sub"]
    elif isinstance(value, dict) and "Ref" in value and value["Ref"] in resources:
        yield from log_group_names(resources[value["Ref"]]["Properties"]["LogGroupName"])
    elif isinstance(value, dict) and "Fn::If" in value:
        for branch in value["Fn::If"][1:]:
            yield from log_group_names(branch)
    else:
        yield repr(value)


def names_function(value, function):
    """`!Ref F`, `!GetAtt F.Arn` or `!GetAtt [F, Arn]`."""
    return value in (
        {"Ref": function},
        {"Fn::GetAtt": [function, "Arn"]},
        {"Fn::GetAtt": f"{function}.Arn"},
    )


def sub_text(value):
    return value["Fn::Sub"] if isinstance(value, dict) and "Fn::Sub" in value else value


receipts = functions.get("ReceiptsFunction")
check("the receipts function ReceiptsFunction exists", receipts is not None)
if receipts is not None:
    check(
        "ReceiptsFunction builds the binary smsreg-receipts",
        resources["ReceiptsFunction"].get("Metadata", {}).get("BuildProperties", {}).get("Binary")
        == "smsreg-receipts",
    )
    check("ReceiptsFunction has a 60 s timeout", receipts.get("Timeout") == 60)
    receipts_actions = {
        action
        for s in statements(receipts)
        if s["Effect"] == "Allow"
        for action in listed(s["Action"])
    }
    check(
        "ReceiptsFunction may only GetItem, UpdateItem and Query",
        receipts_actions == {"dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Query"},
    )
    permissions = {
        name: r
        for name, r in resources.items()
        if r["Type"] == "AWS::Lambda::Permission"
        and names_function(r["Properties"]["FunctionName"], "ReceiptsFunction")
    }
    filters = [
        r
        for r in resources.values()
        if r["Type"] == "AWS::Logs::SubscriptionFilter"
        and names_function(r["Properties"]["DestinationArn"], "ReceiptsFunction")
    ]
    for kind, group in DELIVERY_LOG_GROUPS.items():
        on_group = [
            f
            for f in filters
            if set(log_group_names(f["Properties"]["LogGroupName"])) == {group}
        ]
        check(f"a subscription filter sends the delivery log of {kind} ({group}) to ReceiptsFunction", bool(on_group))
        group_arn = (
            "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
            + group
            + ":*"
        )
        allowing = [
            name
            for name, r in permissions.items()
            if r["Properties"]["Principal"] == "logs.amazonaws.com"
            and r["Properties"].get("Action") == "lambda:InvokeFunction"
            and sub_text(r["Properties"].get("SourceArn")) == group_arn
            and r["Properties"].get("SourceAccount") == {"Ref": "AWS::AccountId"}
        ]
        check(
            f"logs.amazonaws.com may invoke ReceiptsFunction for the {kind} log group only, "
            "in this account",
            bool(allowing),
        )
        check(
            f"the {kind} subscription filter is created after that permission (DependsOn)",
            bool(on_group)
            and all(set(listed(f.get("DependsOn", []))) & set(allowing) for f in on_group),
        )

# The role SNS assumes to write those logs.
role = resources.get("SmsDeliveryStatusRole", {})
check("the SMS delivery-status role SmsDeliveryStatusRole exists", role.get("Type") == "AWS::IAM::Role")
if role:
    trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    check(
        "SmsDeliveryStatusRole is assumable by sns.amazonaws.com, conditioned on the account",
        any(
            s["Effect"] == "Allow"
            and "sns.amazonaws.com" in listed(s.get("Principal", {}).get("Service", []))
            and "sts:AssumeRole" in listed(s["Action"])
            and "aws:SourceAccount" in str(s.get("Condition", {}))
            for s in trust
        ),
    )
    granted = [
        s
        for policy in role["Properties"].get("Policies", [])
        for s in policy["PolicyDocument"]["Statement"]
        if s["Effect"] == "Allow"
    ]
    for kind, group in DELIVERY_LOG_GROUPS.items():
        check(
            f"SmsDeliveryStatusRole may create and write the {kind} log group and its streams",
            any(
                {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"}
                <= set(listed(s["Action"]))
                and any(sub_text(r).endswith("log-group:" + group + ":*") for r in listed(s["Resource"]))
                and any(sub_text(r).endswith("log-group:" + group) for r in listed(s["Resource"]))
                for s in granted
            ),
        )
check(
    "the output SmsDeliveryStatusRoleArn gives the role's ARN",
    template.get("Outputs", {}).get("SmsDeliveryStatusRoleArn", {}).get("Value")
    in ({"Fn::GetAtt": ["SmsDeliveryStatusRole", "Arn"]}, {"Fn::GetAtt": "SmsDeliveryStatusRole.Arn"}),
)


# Alarms: each watches the metric it should and notifies AlarmTopicArn when set.
def alarm_metrics(props):
    """(namespace, metric name, dimensions) of every metric an alarm reads."""
    found = []
    if "MetricName" in props:
        found.append((props.get("Namespace"), props["MetricName"], props.get("Dimensions", [])))
    for query in props.get("Metrics", []):
        metric = query.get("MetricStat", {}).get("Metric")
        if metric:
            found.append((metric.get("Namespace"), metric["MetricName"], metric.get("Dimensions", [])))
    return found


def dimension(value_name, value):
    return {"Name": value_name, "Value": value}


RECEIPTS = [dimension("Function", "receipts")]
EXPECTED_ALARMS = {
    "SendDeadLetterAlarm": [
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible",
         [dimension("QueueName", {"Fn::GetAtt": ["SendDeadLetterQueue", "QueueName"]})]),
        ("AWS/SQS", "ApproximateNumberOfMessagesNotVisible",
         [dimension("QueueName", {"Fn::GetAtt": ["SendDeadLetterQueue", "QueueName"]})]),
    ],
    "InboundDeadLetterAlarm": [
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible",
         [dimension("QueueName", {"Fn::GetAtt": ["InboundDeadLetterQueue", "QueueName"]})]),
    ],
    "DeliveryFailureAlarm": [
        ("SmsRegistration", "ReceiptsFailed", RECEIPTS),
        ("SmsRegistration", "ReceiptsDelivered", RECEIPTS),
    ],
    "DailySmsSpendAlarm": [("SmsRegistration", "SmsPriceUSD", RECEIPTS)],
    "ReceiptsFailedAlarm": [
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible",
         [dimension("QueueName", {"Fn::GetAtt": ["ReceiptsFailedQueue", "QueueName"]})]),
    ],
    "SenderErrorsAlarm": [
        ("AWS/Lambda", "Errors", [dimension("FunctionName", {"Ref": "SenderFunction"})]),
    ],
    "ReceiptsErrorsAlarm": [
        ("AWS/Lambda", "Errors", [dimension("FunctionName", {"Ref": "ReceiptsFunction"})]),
    ],
    "EventsFailedAlarm": [
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible",
         [dimension("QueueName", {"Fn::GetAtt": ["EventsFailedQueue", "QueueName"]})]),
    ],
    "EventsErrorsAlarm": [
        ("AWS/Lambda", "Errors", [dimension("FunctionName", {"Ref": "EventsFunction"})]),
    ],
    "SmsSuspendedAlarm": [("SmsRegistration", "SmsSuspended", [dimension("Function", "sender")])],
    "AccountsFailedAlarm": [("SmsRegistration", "AccountsFailed", [dimension("Function", "accounts")])],
    "AccountsWaitingLongAlarm": [
        ("SmsRegistration", "AccountsWaitingLong", [dimension("Function", "accounts")]),
    ],
    "AccountsDeadLetterAlarm": [
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible",
         [dimension("QueueName", {"Fn::GetAtt": ["AccountsDeadLetterQueue", "QueueName"]})]),
    ],
    "AccountsErrorsAlarm": [
        ("AWS/Lambda", "Errors", [dimension("FunctionName", {"Ref": "AccountsFunction"})]),
    ],
}
ACTIONS = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
for name, expected in EXPECTED_ALARMS.items():
    alarm = resources.get(name, {})
    exists = alarm.get("Type") == "AWS::CloudWatch::Alarm"
    check(f"the alarm {name} exists", exists)
    if not exists:
        continue
    props = alarm["Properties"]
    read = alarm_metrics(props)
    for metric in expected:
        check(f"{name} reads {metric[0]} {metric[1]} {metric[2]}", metric in read)
    check(
        f"{name} notifies AlarmTopicArn (when set) as it goes off and clears",
        props.get("AlarmActions") == ACTIONS and props.get("OKActions") == ACTIONS,
    )
    check(f"{name} treats missing data as not breaching", props.get("TreatMissingData") == "notBreaching")
failure_share = resources.get("DeliveryFailureAlarm", {}).get("Properties", {})
expressions = [q["Expression"] for q in failure_share.get("Metrics", []) if "Expression" in q]
check(
    "DeliveryFailureAlarm's share of failures never divides by zero (IF or FILL guard), "
    "against FailedDeliveryPercentThreshold over one hour",
    bool(expressions)
    and all("IF(" in e or "FILL(" in e for e in expressions)
    and failure_share.get("Threshold") == {"Ref": "FailedDeliveryPercentThreshold"}
    and all(
        q["MetricStat"]["Period"] == 3600
        for q in failure_share.get("Metrics", [])
        if "MetricStat" in q
    ),
)
spend = resources.get("DailySmsSpendAlarm", {}).get("Properties", {})
check(
    "DailySmsSpendAlarm sums SmsPriceUSD over one day against DailySmsSpendThresholdUsd",
    spend.get("Statistic") == "Sum"
    and spend.get("Period") == 86400
    and spend.get("Threshold") == {"Ref": "DailySmsSpendThresholdUsd"},
)

# The dashboard shows every function, the dead-letter queues and the accounts' alarms.
dashboards = [r for r in resources.values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
check("a CloudWatch dashboard exists", bool(dashboards))
for dashboard in dashboards:
    body = str(dashboard["Properties"]["DashboardBody"])
    # JSON once substituted: parameters by their default (a number stays a bare number),
    # everything else by a placeholder string.
    text = sub_text(dashboard["Properties"]["DashboardBody"])
    defaults = {k: str(v.get("Default", "x")) for k, v in template.get("Parameters", {}).items()}
    try:
        json.loads(re.sub(r"\$\{([^}]+)\}", lambda m: defaults.get(m.group(1), "x"), text))
        is_json = True
    except (TypeError, ValueError):
        is_json = False
    check("the dashboard body is JSON once substituted", is_json)
    for needed in (
        "${ApiFunction}", "${SenderFunction}", "${InboundFunction}", "${ReceiptsFunction}",
        "${SendDeadLetterQueue.QueueName}", "${InboundDeadLetterQueue.QueueName}",
        "SmsPriceUSD", "ReceiptsFailed", "SmsSent", "InvitationsQueued",
        "${SmsSuspendedAlarm.Arn}", "SmsSuspended", "ReceiptsNotFinal",
        "${AccountsFunction}", "${AccountsDeadLetterQueue.QueueName}", "${AccountsQueue.QueueName}",
        "AccountsCreated", "AccountsFailed", "AccountsWaitingLong",
        "${AccountsFailedAlarm.Arn}", "${AccountsWaitingLongAlarm.Arn}",
        "${AccountsDeadLetterAlarm.Arn}", "${AccountsErrorsAlarm.Arn}",
    ):
        check(f"the dashboard shows {needed}", needed in body)

# Both SMS providers: SMS_PROVIDER from SmsProvider (sns by default, as src/config.rs);
# each provider's resources only with it; End User Messaging's delivery events reach the
# receipts function as SNS's delivery logs do; each function may use only its own part.
provider = parameters.get("SmsProvider", {})
check(
    "SmsProvider is sns or end-user-messaging, sns by default, and sets SMS_PROVIDER",
    provider.get("AllowedValues") == ["sns", "end-user-messaging"]
    and provider.get("Default") == "sns"
    and variables.get("SMS_PROVIDER") == {"Ref": "SmsProvider"}
    and 'Provider::Sns' in config_rs and '"end-user-messaging" => Ok(Provider::EndUserMessaging)' in config_rs,
)
conditions = template.get("Conditions", {})
check(
    "the conditions UsesSns and UsesEndUserMessaging test SmsProvider",
    conditions.get("UsesSns") == {"Fn::Equals": [{"Ref": "SmsProvider"}, "sns"]}
    and conditions.get("UsesEndUserMessaging")
    == {"Fn::Equals": [{"Ref": "SmsProvider"}, "end-user-messaging"]},
)
rule = template.get("Rules", {}).get("EndUserMessagingNeedsAnIdentity", {})
check(
    "a rule refuses end-user-messaging without SmsOriginationIdentityArn",
    "SmsOriginationIdentityArn" in str(rule.get("Assertions"))
    and "end-user-messaging" in str(rule.get("RuleCondition")),
)
SNS_ONLY = ["SmsDeliveryStatusRole", "ReceiptsInvokeFromSmsDeliveryLogs",
            "ReceiptsInvokeFromSmsDeliveryFailureLogs", "SmsDeliverySubscription",
            "SmsDeliveryFailureSubscription"]
for name in SNS_ONLY:
    check(f"{name} exists only with SNS", resources.get(name, {}).get("Condition") == "UsesSns")
for name in ("SmsDeliveryLogGroup", "SmsDeliveryFailureLogGroup"):
    check(
        f"{name} exists only with SNS (CreatesDeliveryLogGroups needs UsesSns)",
        resources.get(name, {}).get("Condition") == "CreatesDeliveryLogGroups"
        and {"Condition": "UsesSns"} in conditions.get("CreatesDeliveryLogGroups", {}).get("Fn::And", []),
    )
config_sets = {n: r for n, r in resources.items() if r["Type"] == "AWS::SMSVOICE::ConfigurationSet"}
check("one End User Messaging configuration set, only with End User Messaging",
      len(config_sets) == 1
      and all(r.get("Condition") == "UsesEndUserMessaging" for r in config_sets.values()))
for set_name, config_set in config_sets.items():
    check(
        f"SMS_CONFIGURATION_SET names {set_name} with End User Messaging",
        variables.get("SMS_CONFIGURATION_SET")
        == {"Fn::If": ["UsesEndUserMessaging", {"Ref": set_name}, ""]},
    )
    destinations = [
        d for d in config_set["Properties"].get("EventDestinations", [])
        if d.get("Enabled") and "CloudWatchLogsDestination" in d
    ]
    check(f"{set_name} has an enabled CloudWatch Logs event destination for every SMS event",
          any("TEXT_ALL" in d.get("MatchingEventTypes", []) for d in destinations))
    for d in destinations:
        dest = d["CloudWatchLogsDestination"]
        group = dest["LogGroupArn"].get("Fn::GetAtt", [None])[0] if isinstance(dest["LogGroupArn"], dict) else None
        role_name = dest["IamRoleArn"].get("Fn::GetAtt", [None])[0] if isinstance(dest["IamRoleArn"], dict) else None
        check(f"{set_name}'s events go to a log group of the stack ({group})",
              resources.get(group, {}).get("Type") == "AWS::Logs::LogGroup"
              and resources[group].get("Condition") == "UsesEndUserMessaging"
              and "RetentionInDays" in resources[group]["Properties"])
        on_group = [f for f in filters if f["Properties"]["LogGroupName"] == {"Ref": group}] if receipts else []
        check(f"a subscription filter sends {group} to ReceiptsFunction", bool(on_group))
        group_name = sub_text(resources.get(group, {}).get("Properties", {}).get("LogGroupName", ""))
        allowing = [
            name for name, r in permissions.items()
            if r["Properties"]["Principal"] == "logs.amazonaws.com"
            and sub_text(r["Properties"].get("SourceArn")) == (
                "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:" + group_name + ":*")
            and r["Properties"].get("SourceAccount") == {"Ref": "AWS::AccountId"}
        ] if receipts else []
        check(f"logs.amazonaws.com may invoke ReceiptsFunction for {group} only, and the filter waits for it",
              bool(allowing) and all(set(listed(f.get("DependsOn", []))) & set(allowing) for f in on_group))
        writer = resources.get(role_name, {})
        trust = writer.get("Properties", {}).get("AssumeRolePolicyDocument", {}).get("Statement", [])
        check(f"{role_name} is assumable by sms-voice.amazonaws.com of this account only",
              any("sms-voice.amazonaws.com" in listed(t.get("Principal", {}).get("Service", []))
                  and "aws:SourceAccount" in str(t.get("Condition", {})) for t in trust))
        granted = [st for pol in writer.get("Properties", {}).get("Policies", [])
                   for st in pol["PolicyDocument"]["Statement"]]
        check(f"{role_name} may write to {group} and nothing else",
              bool(granted) and all(group in str(st["Resource"]) for st in granted)
              and any("logs:PutLogEvents" in listed(st["Action"]) for st in granted))
sender_statements = list(statements(functions["SenderFunction"]))
sends = [st for st in sender_statements if "sms-voice:SendTextMessage" in listed(st["Action"])]
check(
    "the sender may SendTextMessage from SmsOriginationIdentityArn through the configuration set only",
    bool(sends)
    and all("*" not in listed(st["Resource"]) for st in sends)
    and all({"Ref": "SmsOriginationIdentityArn"} in listed(st["Resource"]) for st in sends)
    and all(any("SmsConfigurationSet" in str(r) for r in listed(st["Resource"])) for st in sends),
)
sns_sends = [st for st in sender_statements if st["Effect"] == "Allow" and "sns:Publish" in listed(st["Action"])]
check(
    "the sender's SNS permissions exist only with SNS",
    all(
        any(
            isinstance(raw, dict) and raw.get("Fn::If", [None])[0] == "UsesSns" and st in list(branches(raw))
            for policy in functions["SenderFunction"].get("Policies", []) if isinstance(policy, dict)
            for raw in policy.get("Statement", [])
        )
        for st in sns_sends
    ) and bool(sns_sends),
)
inbound_list = [st for st in statements(functions["InboundFunction"])
                if any(a.startswith("sms-voice:") for a in listed(st["Action"]))]
check(
    "the replies function may put and delete numbers of the opt-out list only",
    bool(inbound_list)
    and all(set(listed(st["Action"])) == {"sms-voice:PutOptedOutNumber", "sms-voice:DeleteOptedOutNumber"}
            and "opt-out-list/${SmsOptOutListName}" in str(st["Resource"]) for st in inbound_list),
)
for function_name, props in functions.items():
    if function_name in ("SenderFunction", "InboundFunction"):
        continue
    check(f"{function_name} has no End User Messaging permission",
          not any("sms-voice:" in str(st["Action"]) for st in statements(props)))

# ---- Worker accounts (docs/accounts.md): the pool, its client, the password key, the
# accounts queue and function, Secrets Manager. Numbers and names are read from the Rust
# source where it has them, so that a change there that the template does not follow fails
# here.


def rust_const(path, name, kind=r"[a-z0-9]+"):
    """The value of `const NAME: TYPE = VALUE;` in a Rust file, as text (None if absent)."""
    found = re.search(rf"const {name}: {kind} = ([^;]+);", open(path).read())
    return found.group(1).strip() if found else None


def rust_number(path, name):
    value = rust_const(path, name)
    return int(value.replace("_", "")) if value and re.fullmatch(r"[0-9_]+", value) else None


def rust_duration_secs(path, name):
    value = rust_const(path, name, "Duration")
    found = re.fullmatch(r"Duration::from_secs\(([0-9_]+)\)", value or "")
    return int(found.group(1).replace("_", "")) if found else None


def client_calls(text):
    """The AWS SDK operations a piece of Rust calls on its client (`.client.op()` or
    `client\n.op()`), as IAM actions' names: generate_data_key -> GenerateDataKey."""
    calls = re.findall(r"client\s*\.\s*([a-z_]+)\(\)", text)
    return {"".join(part.capitalize() for part in call.split("_")) for call in calls}


def get_att(name):
    return ({"Fn::GetAtt": [name, "Arn"]}, {"Fn::GetAtt": f"{name}.Arn"})


def raw_statements(props):
    for policy in props.get("Policies", []):
        if isinstance(policy, dict):
            yield from policy.get("Statement", [])


def only_under(props, condition, statement):
    """Whether `statement` of a function's policies exists only under `condition` (an
    `Fn::If` on it whose other branch is AWS::NoValue)."""
    return any(
        isinstance(raw, dict)
        and raw.get("Fn::If", [None])[0] == condition
        and raw["Fn::If"][1] == statement
        and raw["Fn::If"][2] == {"Ref": "AWS::NoValue"}
        for raw in raw_statements(props)
    )


ACCOUNT_FUNCTIONS = ("ApiFunction", "AccountsFunction")
accounts_fn = functions.get("AccountsFunction", {})
check(
    "AccountsFunction builds the binary smsreg-accounts (src/bin/accounts.rs, serve_accounts)",
    resources.get("AccountsFunction", {}).get("Metadata", {}).get("BuildProperties", {}).get("Binary")
    == "smsreg-accounts"
    and 'name = "smsreg-accounts"' in open("Cargo.toml").read()
    and "serve_accounts" in open("src/bin/accounts.rs").read(),
)

# The SAM transform: cfn-lint checks the template as written and skips cycles through SAM
# resources, so a key policy naming a function's generated role while that role's policy
# names the key would pass it. Transformed here (as sam deploy would), and checked.
import os  # noqa: E402

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
from samtranslator.translator.transform import transform as sam_transform  # noqa: E402


class NoManagedPolicies:
    def load(self):
        return {}


sam_input = json.loads(json.dumps(template))
for r in sam_input["Resources"].values():
    if r["Type"] == "AWS::Serverless::Function":
        r["Properties"]["CodeUri"] = "s3://bucket/key"
transformed = sam_transform(sam_input, {}, NoManagedPolicies())["Resources"]


def references(value, found):
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "Ref" and isinstance(v, str):
                found.add(v)
            elif k == "Fn::GetAtt":
                found.add(v[0] if isinstance(v, list) else v.split(".")[0])
            elif k == "Fn::Sub":
                text = v if isinstance(v, str) else v[0]
                found.update(n.split(".")[0] for n in re.findall(r"\$\{([^}!]+)\}", text))
                if not isinstance(v, str):
                    references(v[1], found)
            else:
                references(v, found)
    elif isinstance(value, list):
        for v in value:
            references(v, found)


depends = {}
for name, r in transformed.items():
    found = set()
    references({k: v for k, v in r.items() if k != "DependsOn"}, found)
    found.update(listed(r.get("DependsOn", [])))
    depends[name] = sorted(n for n in found if n in transformed and n != name)


def a_cycle():
    state, path = {}, []

    def visit(n):
        state[n] = "open"
        path.append(n)
        for m in depends[n]:
            if state.get(m) == "open":
                return path[path.index(m):] + [m]
            if m not in state:
                cycle = visit(m)
                if cycle:
                    return cycle
        state[n] = "done"
        path.pop()
        return None

    for n in sorted(depends):
        if n not in state:
            cycle = visit(n)
            if cycle:
                return cycle
    return None


# cfn-lint on what CloudFormation receives: it then checks the generated roles, mappings
# and permissions too (a mapped queue's visibility timeout against its function's, say).
# One known false positive is left out: in a generated role's policy it resolves
# SmsOriginationIdentityArn to its default "" although the statement exists only with
# UsesEndUserMessaging, where the rule EndUserMessagingNeedsAnIdentity requires an ARN.
from cfnlint.api import ManualArgs, lint as cfn_lint  # noqa: E402

transformed_problems = [
    f"{m.rule.id} {m.message} at {'/'.join(map(str, m.path))}"
    for m in cfn_lint(
        json.dumps({**{k: v for k, v in sam_input.items() if k not in ("Transform", "Globals")},
                    "Resources": transformed}),
        config=ManualArgs(regions=["us-east-1"]),
    )
    if not (m.rule.id == "W1030" and "SmsOriginationIdentityArn" in m.message)
]
check(
    "cfn-lint finds nothing in the SAM-transformed template"
    + "".join(f"\n       {p}" for p in transformed_problems),
    not transformed_problems,
)
for name, props in functions.items():
    for event_name, event in props.get("Events", {}).items():
        if event["Type"] != "SQS":
            continue
        queue = event["Properties"]["Queue"]
        queue_name = queue.get("Fn::GetAtt", [None])[0] if isinstance(queue, dict) else None
        visibility = int(resources.get(queue_name, {}).get("Properties", {}).get("VisibilityTimeout", 30))
        check(
            f"{name}.{event_name}: {queue_name}'s visibility timeout ({visibility} s) is at least "
            f"6 times the function's timeout ({props['Timeout']} s)",
            visibility >= 6 * int(props["Timeout"]),
        )

cycle = a_cycle()
check(
    "the SAM-transformed template has no circular dependency"
    + (f" (found {' -> '.join(cycle)})" if cycle else ""),
    cycle is None,
)

# The pool, as src/adapters/cognito_admin.rs makes one.
min_password = rust_number("src/domain/worker.rs", "MIN_PASSWORD_CHARS")
max_attribute = rust_number("src/adapters/cognito.rs", "MAX_ATTRIBUTE_CHARS")
custom_list = rust_const("src/adapters/cognito.rs", "CUSTOM_ATTRIBUTES", r"\[&str; [0-9]+\]")
custom_attributes = re.findall(r'"([a-z_]+)"', custom_list or "")
admin_rs = open("src/adapters/cognito_admin.rs").read()
check(
    "smsreg-admin create-user-pool still makes the pool these facts describe "
    "(src/adapters/cognito_admin.rs: case-insensitive, MIN_PASSWORD_CHARS and no class, "
    "admin-only, CUSTOM_ATTRIBUTES at MAX_ATTRIBUTE_CHARS, phone_number and email)",
    all(
        needle in admin_rs
        for needle in (
            ".case_sensitive(false)",
            ".minimum_length(MIN_PASSWORD_CHARS as i32)",
            ".require_uppercase(false)",
            ".require_lowercase(false)",
            ".require_numbers(false)",
            ".require_symbols(false)",
            ".allow_admin_create_user_only(true)",
            ".max_length(MAX_ATTRIBUTE_CHARS.to_string())",
            'string_attribute("phone_number", false)',
            'string_attribute("email", false)',
            ".generate_secret(false)",
        )
    )
    and min_password is not None
    and max_attribute is not None
    and bool(custom_attributes),
)
user_pool_parameter = parameters.get("UserPool", {})
pool_pattern = user_pool_parameter.get("AllowedPattern", "")
check(
    "the UserPool parameter takes create, none or a pool ID (create by default)",
    user_pool_parameter.get("Default") == "create"
    and all(re.fullmatch(pool_pattern, v) for v in ("create", "none", "us-east-1_AbCdEf123", "ap-southeast-2_x1"))
    and not any(re.fullmatch(pool_pattern, v) for v in ("", "*", "pool", "us-east-1_*")),
)
check(
    "the conditions CreateUserPool, HasUserPool and AllowsPasswordAuth test UserPool and "
    "UserPoolPasswordAuth",
    conditions.get("CreateUserPool") == {"Fn::Equals": [{"Ref": "UserPool"}, "create"]}
    and conditions.get("HasUserPool") == {"Fn::Not": [{"Fn::Equals": [{"Ref": "UserPool"}, "none"]}]}
    and conditions.get("AllowsPasswordAuth") == {"Fn::Equals": [{"Ref": "UserPoolPasswordAuth"}, "true"]}
    and parameters.get("UserPoolPasswordAuth", {}).get("AllowedValues") == ["true", "false"],
)
pool_resource = resources.get("WorkerUserPool", {})
pool = pool_resource.get("Properties", {})
check(
    "WorkerUserPool is a user pool, only with CreateUserPool, retained on deletion and "
    "replacement, protected from deletion",
    pool_resource.get("Type") == "AWS::Cognito::UserPool"
    and pool_resource.get("Condition") == "CreateUserPool"
    and pool_resource.get("DeletionPolicy") == "Retain"
    and pool_resource.get("UpdateReplacePolicy") == "Retain"
    and pool.get("DeletionProtection") == "ACTIVE",
)
check("WorkerUserPool's usernames ignore case",
      pool.get("UsernameConfiguration", {}).get("CaseSensitive") is False)
password_policy = pool.get("Policies", {}).get("PasswordPolicy", {})
check(
    f"WorkerUserPool's password rule is the form's: at least MIN_PASSWORD_CHARS ({min_password}) "
    "characters (src/domain/worker.rs), no character class required",
    password_policy.get("MinimumLength") == min_password
    and all(
        password_policy.get(k) is False
        for k in ("RequireUppercase", "RequireLowercase", "RequireNumbers", "RequireSymbols")
    ),
)
check("only administrators (the service) add users to WorkerUserPool",
      pool.get("AdminCreateUserConfig", {}).get("AllowAdminCreateUserOnly") is True)
schema = {a.get("Name"): a for a in pool.get("Schema", [])}
check(
    f"WorkerUserPool's schema is the custom attributes {custom_attributes} "
    "(CUSTOM_ATTRIBUTES in src/adapters/cognito.rs), phone_number and email",
    bool(custom_attributes) and set(schema) == set(custom_attributes) | {"phone_number", "email"},
)
for attribute in custom_attributes:
    a = schema.get(attribute, {})
    constraints = a.get("StringAttributeConstraints", {})
    check(
        f"custom:{attribute} is a mutable string of up to MAX_ATTRIBUTE_CHARS ({max_attribute}) "
        "characters",
        a.get("AttributeDataType") == "String"
        and a.get("Mutable") is True
        and str(constraints.get("MaxLength")) == str(max_attribute)
        and str(constraints.get("MinLength", "0")) == "0",
    )
for attribute in ("phone_number", "email"):
    check(f"{attribute} is a mutable string of WorkerUserPool",
          schema.get(attribute, {}).get("AttributeDataType") == "String"
          and schema.get(attribute, {}).get("Mutable") is True)

client_resource = resources.get("WorkerUserPoolClient", {})
client = client_resource.get("Properties", {})
check(
    "WorkerUserPoolClient is WorkerUserPool's app client, only with CreateUserPool, without a secret",
    client_resource.get("Type") == "AWS::Cognito::UserPoolClient"
    and client_resource.get("Condition") == "CreateUserPool"
    and client.get("UserPoolId") == {"Ref": "WorkerUserPool"}
    and client.get("GenerateSecret") is False,
)
flows = client.get("ExplicitAuthFlows")
flows_if = flows.get("Fn::If", []) if isinstance(flows, dict) else []
with_password, without_password = (flows_if[1], flows_if[2]) if len(flows_if) == 3 else ([], [])
check(
    "the app client allows SRP and refresh tokens always, USER_PASSWORD_AUTH only with "
    "AllowsPasswordAuth, and no other flow",
    len(flows_if) == 3
    and flows_if[0] == "AllowsPasswordAuth"
    and set(without_password) == {"ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"}
    and set(with_password) == set(without_password) | {"ALLOW_USER_PASSWORD_AUTH"},
)
outputs = template.get("Outputs", {})
check(
    "the outputs UserPoolId (with a pool) and UserPoolClientId (with the created pool)",
    outputs.get("UserPoolId", {}).get("Condition") == "HasUserPool"
    and outputs.get("UserPoolId", {}).get("Value")
    == {"Fn::If": ["CreateUserPool", {"Ref": "WorkerUserPool"}, {"Ref": "UserPool"}]}
    and outputs.get("UserPoolClientId", {}).get("Condition") == "CreateUserPool"
    and outputs.get("UserPoolClientId", {}).get("Value") == {"Ref": "WorkerUserPoolClient"},
)

# Every variable the functions read (src/config.rs) reaches the two functions that make
# accounts; the accounts' three come from the stack's resources, and to those two alone.
read_variables = sorted(set(re.findall(r'(?:get|number)\("([A-Z_]+)"', config_rs)) - {"EVENT_BUS_NAME"})
ACCOUNT_VARIABLES = {
    "USER_POOL_ID": {"Fn::If": ["CreateUserPool", {"Ref": "WorkerUserPool"},
                                {"Fn::If": ["HasUserPool", {"Ref": "UserPool"}, ""]}]},
    "PASSWORD_KEY_ID": {"Ref": "PasswordKey"},
    "ACCOUNTS_QUEUE_URL": {"Ref": "AccountsQueue"},
}
check(
    f"src/config.rs reads the accounts' variables {sorted(ACCOUNT_VARIABLES)}",
    set(ACCOUNT_VARIABLES) <= set(read_variables),
)
for name in ACCOUNT_FUNCTIONS:
    own = functions.get(name, {}).get("Environment", {}).get("Variables", {})
    given = {**variables, **own}
    missing = [v for v in read_variables if v not in given]
    check(f"{name} is given every variable src/config.rs reads{f' (missing {missing})' if missing else ''}",
          not missing and "RUST_LOG" in given)
    for variable, value in ACCOUNT_VARIABLES.items():
        check(f"{name}'s {variable} is {value}", own.get(variable) == value)
others = [
    n for n, p in functions.items()
    if n not in ACCOUNT_FUNCTIONS
    and set(ACCOUNT_VARIABLES) & set({**variables, **p.get("Environment", {}).get("Variables", {})})
]
check(f"only {', '.join(ACCOUNT_FUNCTIONS)} are given the accounts' variables{f' (also {others})' if others else ''}",
      not others)

# Who may do what in the pool: the calls src/adapters/cognito.rs makes (the part before
# `check`, which only smsreg-admin calls), on the pool, for the two functions alone.
cognito_rs = open("src/adapters/cognito.rs").read()
cognito_actions = {"cognito-idp:" + c for c in client_calls(cognito_rs.split("pub async fn check")[0])}
POOL_ARN = {"Fn::If": [
    "CreateUserPool",
    {"Fn::GetAtt": ["WorkerUserPool", "Arn"]},
    {"Fn::Sub": "arn:${AWS::Partition}:cognito-idp:${AWS::Region}:${AWS::AccountId}:userpool/${UserPool}"},
]}
check(f"src/adapters/cognito.rs makes accounts with {sorted(cognito_actions)}",
      cognito_actions == {"cognito-idp:AdminCreateUser", "cognito-idp:AdminSetUserPassword",
                          "cognito-idp:AdminGetUser"})
for name, props in functions.items():
    granted = [s for s in statements(props) if any(str(a).startswith("cognito-idp:") for a in listed(s["Action"]))]
    if name not in ACCOUNT_FUNCTIONS:
        check(f"{name} has no Cognito permission", not granted)
        continue
    check(
        f"{name} may only {sorted(cognito_actions)} on the deployment's pool, and only with one",
        len(granted) == 1
        and set(listed(granted[0]["Action"])) == cognito_actions
        and granted[0]["Resource"] == POOL_ARN
        and only_under(props, "HasUserPool", granted[0]),
    )

# The password key: the accounts function alone decrypts, the API only makes data keys,
# each call under the attempt's encryption context, and no IAM policy can add to that.
kms_rs = open("src/adapters/kms.rs").read()
context_key = re.search(r'const CONTEXT_KEY: &str = "([^"]+)";', kms_rs)
context_key = context_key.group(1) if context_key else None
seal_part = kms_rs.split("async fn seal")[1].split("async fn open")[0] if "async fn seal" in kms_rs else ""
open_part = kms_rs.split("async fn open")[1] if "async fn open" in kms_rs else ""
seal_actions = {"kms:" + c for c in client_calls(seal_part)}
open_actions = {"kms:" + c for c in client_calls(open_part)}
check(
    f"src/adapters/kms.rs seals with {sorted(seal_actions)} and opens with {sorted(open_actions)}, "
    f"under the encryption context key {context_key!r}",
    seal_actions == {"kms:GenerateDataKey"} and open_actions == {"kms:Decrypt"} and bool(context_key)
    and ".encryption_context(CONTEXT_KEY, context)" in seal_part
    and ".encryption_context(CONTEXT_KEY, context)" in open_part,
)
key_resource = resources.get("PasswordKey", {})
key_props = key_resource.get("Properties", {})
check(
    "PasswordKey is a symmetric KMS key with rotation",
    key_resource.get("Type") == "AWS::KMS::Key"
    and key_props.get("KeySpec", "SYMMETRIC_DEFAULT") == "SYMMETRIC_DEFAULT"
    and key_props.get("EnableKeyRotation") is True,
)
key_statements = key_props.get("KeyPolicy", {}).get("Statement", [])
ROOT = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}
API_ROLE = {"Fn::GetAtt": ["ApiFunctionRole", "Arn"]}
ACCOUNTS_ROLE = {"Fn::GetAtt": ["AccountsFunctionRole", "Arn"]}
# Every action that uses the key's material, or lets someone else use it (a grant).
KEY_USE = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo",
           "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:GenerateDataKeyPair",
           "kms:GenerateDataKeyPairWithoutPlaintext", "kms:GenerateMac", "kms:VerifyMac",
           "kms:Sign", "kms:Verify", "kms:DeriveSharedSecret", "kms:CreateGrant"]


def grants(statement, action):
    import fnmatch

    return statement.get("Effect") == "Allow" and any(
        fnmatch.fnmatchcase(action.lower(), str(a).lower()) for a in listed(statement.get("Action", []))
    )


def principals(statement):
    principal = statement.get("Principal", {})
    return listed(principal.get("AWS", [])) + listed(principal.get("Service", [])) if isinstance(principal, dict) else [principal]


def who_may(action):
    return [p for s in key_statements if grants(s, action) for p in principals(s)]


check("the password key names only the account, ApiFunctionRole and AccountsFunctionRole",
      all(p in (ROOT, API_ROLE, ACCOUNTS_ROLE) for s in key_statements for p in principals(s)))
check(
    "only AccountsFunctionRole may decrypt with the password key (no one may create a grant)",
    who_may("kms:Decrypt") == [ACCOUNTS_ROLE] and who_may("kms:CreateGrant") == [],
)
for role, actions in ((API_ROLE, seal_actions), (ACCOUNTS_ROLE, open_actions)):
    role_name = role["Fn::GetAtt"][0]
    allowed = [s for s in key_statements if role in principals(s) and s.get("Effect") == "Allow"]
    check(
        f"the password key lets {role_name} only {sorted(actions)}",
        bool(allowed) and {a for s in allowed for a in listed(s["Action"])} == actions,
    )
check(
    "the account may administer the password key but use it in no way (so no IAM policy can)",
    not any(a for a in KEY_USE if ROOT in who_may(a))
    and any(grants(s, "kms:PutKeyPolicy") and ROOT in principals(s) for s in key_statements),
)
EXACT_CONTEXT = {
    "ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": context_key},
    "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": context_key},
}
check(
    f"every use of the password key requires exactly the encryption context key {context_key!r}",
    all(
        s.get("Condition") == EXACT_CONTEXT
        for s in key_statements
        if any(grants(s, a) for a in KEY_USE)
    ),
)
role_types = {n: transformed.get(n, {}).get("Type") for n in ("ApiFunctionRole", "AccountsFunctionRole")}
check("ApiFunctionRole and AccountsFunctionRole are the functions' roles once transformed",
      set(role_types.values()) == {"AWS::IAM::Role"}
      and transformed.get("ApiFunction", {}).get("Properties", {}).get("Role") in get_att("ApiFunctionRole")
      and transformed.get("AccountsFunction", {}).get("Properties", {}).get("Role") in get_att("AccountsFunctionRole"))
for name, props in functions.items():
    kms_granted = [s for s in statements(props) if any(str(a).startswith("kms:") for a in listed(s["Action"]))]
    check(
        f"{name}'s IAM policy names no KMS key but the HQ secrets' (decrypting through Secrets "
        "Manager, only when named)",
        all(
            set(listed(s["Action"])) == {"kms:Decrypt"}
            and s["Resource"] == {"Ref": "CommCareHqKeySecretKmsKeyArns"}
            and s.get("Condition") == {"StringEquals": {"kms:ViaService": {"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"}}}
            and only_under(props, "HasCommCareHqSecretKeys", s)
            for s in kms_granted
        ),
    )

# Secrets Manager: the named secrets only, never "*", nothing when none is named.
secrets_actions = {"secretsmanager:" + c for c in client_calls(open("src/adapters/secrets.rs").read())}
secret_parameter = parameters.get("CommCareHqKeySecretArns", {})
secret_pattern = secret_parameter.get("AllowedPattern", "")
key_pattern = parameters.get("CommCareHqKeySecretKmsKeyArns", {}).get("AllowedPattern", "")
check(
    "CommCareHqKeySecretArns is a list of secret ARNs, empty by default, never * "
    "(nor CommCareHqKeySecretKmsKeyArns)",
    secret_parameter.get("Type") == "CommaDelimitedList"
    and secret_parameter.get("Default") == ""
    and re.fullmatch(secret_pattern, "")
    and re.fullmatch(secret_pattern, "arn:aws:secretsmanager:us-east-1:123456789012:secret:hq/demo-AbCdEf")
    and not any(re.fullmatch(secret_pattern, v) for v in (
        "*", "arn:aws:secretsmanager:us-east-1:123456789012:secret:*",
        "arn:aws:secretsmanager:*:*:secret:x", "arn:aws:s3:::bucket"))
    and re.fullmatch(key_pattern, "")
    and not re.fullmatch(key_pattern, "*")
    and not re.fullmatch(key_pattern, "arn:aws:kms:us-east-1:123456789012:key/*"),
)
check(
    "HasCommCareHqSecrets and HasCommCareHqSecretKeys hold when their lists name something",
    conditions.get("HasCommCareHqSecrets")
    == {"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "CommCareHqKeySecretArns"}]}, ""]}]}
    and conditions.get("HasCommCareHqSecretKeys")
    == {"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "CommCareHqKeySecretKmsKeyArns"}]}, ""]}]},
)
check(f"src/adapters/secrets.rs reads secrets with {sorted(secrets_actions)}",
      secrets_actions == {"secretsmanager:GetSecretValue"})
for name, props in functions.items():
    granted = [s for s in statements(props) if any(str(a).startswith("secretsmanager:") for a in listed(s["Action"]))]
    if name not in ACCOUNT_FUNCTIONS:
        check(f"{name} has no Secrets Manager permission", not granted)
        continue
    check(
        f"{name} may only {sorted(secrets_actions)} on the secrets CommCareHqKeySecretArns names, "
        "and nothing when it names none",
        len(granted) == 1
        and set(listed(granted[0]["Action"])) == secrets_actions
        and granted[0]["Resource"] == {"Ref": "CommCareHqKeySecretArns"}
        and only_under(props, "HasCommCareHqSecrets", granted[0]),
    )

# The accounts queue: a day of retries before the dead-letter queue, and a crashing job
# there before the queue forgets it.
job_delay = rust_number("src/ports/accounts.rs", "ACCOUNT_JOB_DELAY_SECONDS")
give_up = rust_number("src/service/accounts.rs", "ACCOUNT_GIVE_UP_SECONDS")
job_rs = open("src/domain/job.rs").read()
backoff = re.search(
    r"fn retry_delay_seconds\(receive_count: u32\) -> u32 \{\s*"
    r"let doubling = receive_count\.saturating_sub\(1\)\.min\(([0-9]+)\);\s*"
    r"\(([0-9]+)u32 << doubling\)\.min\(([0-9_]+)\)\s*\}",
    job_rs,
)
uses_backoff = "crate::domain::job::retry_delay_seconds(receive_count)" in open("src/service/accounts.rs").read()


def retry_delay(receive_count):
    most_doublings, first, longest = (int(g.replace("_", "")) for g in backoff.groups())
    return min(first << min(max(receive_count - 1, 0), most_doublings), longest)


day_receives = None
if backoff and job_delay is not None and give_up is not None:
    # Received first after the job's delay; handed back after retry_delay(n) at its n-th
    # receive; the receive at which the attempt is a day old fails it.
    at, day_receives = job_delay, 1
    while at < give_up:
        at += retry_delay(day_receives)
        day_receives += 1
check(
    f"a day of account retries takes {day_receives} receives (ACCOUNT_JOB_DELAY_SECONDS, "
    "ACCOUNT_GIVE_UP_SECONDS, account_retry_seconds' backoff retry_delay_seconds)",
    day_receives is not None and uses_backoff,
)
accounts_queue = resources.get("AccountsQueue", {}).get("Properties", {})
accounts_dlq = resources.get("AccountsDeadLetterQueue", {}).get("Properties", {})
accounts_redrive = accounts_queue.get("RedrivePolicy", {})
max_receives = int(accounts_redrive.get("maxReceiveCount", 0))
accounts_timeout = int(accounts_fn.get("Timeout", 0))
retention = int(accounts_queue.get("MessageRetentionPeriod", 345600))
check("AccountsQueue and AccountsDeadLetterQueue are encrypted (SQS-managed)",
      accounts_queue.get("SqsManagedSseEnabled") is True and accounts_dlq.get("SqsManagedSseEnabled") is True)
check(
    "AccountsQueue's visibility timeout is at least 6 times AccountsFunction's timeout",
    accounts_timeout > 0 and int(accounts_queue.get("VisibilityTimeout", 30)) >= 6 * accounts_timeout,
)
check(
    "AccountsQueue redrives to AccountsDeadLetterQueue",
    accounts_redrive.get("deadLetterTargetArn") in get_att("AccountsDeadLetterQueue"),
)
check(
    f"AccountsQueue's maxReceiveCount ({max_receives}) is at least twice a day of retries "
    f"({day_receives}), and at most SQS's 1000",
    day_receives is not None and 2 * day_receives <= max_receives <= 1000,
)
check(
    "a job crashing the function at every receive reaches AccountsDeadLetterQueue before "
    "AccountsQueue's retention ends (maxReceiveCount x visibility timeout <= retention)",
    max_receives * int(accounts_queue.get("VisibilityTimeout", 30)) <= retention,
)
check(
    "AccountsQueue keeps a job at least 4 days, and longer than its day of retries",
    retention >= 4 * 86400 and give_up is not None and job_delay is not None
    and retention > give_up + job_delay,
)
check("AccountsDeadLetterQueue keeps messages at least as long as AccountsQueue",
      int(accounts_dlq.get("MessageRetentionPeriod", 345600)) >= retention)
check(
    f"an account job's delay ({job_delay} s, ACCOUNT_JOB_DELAY_SECONDS) outlasts the "
    "registration page (the API's timeout), within SQS's 900 s",
    job_delay is not None and functions["ApiFunction"]["Timeout"] < job_delay <= 900,
)
deadline_margin = rust_duration_secs("src/functions/accounts.rs", "DEADLINE_MARGIN")
longest_wait = rust_duration_secs("src/functions/accounts.rs", "LONGEST_WAIT_IN_INVOCATION")
check(
    f"AccountsFunction's timeout ({accounts_timeout} s) is at least twice its deadline margin "
    f"({deadline_margin} s) and longest wait in an invocation ({longest_wait} s) together "
    "(src/functions/accounts.rs)",
    deadline_margin is not None and longest_wait is not None
    and accounts_timeout >= 2 * (deadline_margin + longest_wait),
)
jobs = [e["Properties"] for e in accounts_fn.get("Events", {}).values() if e["Type"] == "SQS"]
check(
    "AccountsFunction takes AccountsQueue's jobs, reporting the ones to retry "
    "(ReportBatchItemFailures), at most 2 instances at once (the least SQS allows)",
    len(jobs) == 1
    and jobs[0]["Queue"] in get_att("AccountsQueue")
    and "ReportBatchItemFailures" in jobs[0].get("FunctionResponseTypes", [])
    and jobs[0].get("ScalingConfig", {}).get("MaximumConcurrency") == 2,
)


def allows(props, action, resource):
    return any(
        s["Effect"] == "Allow" and action in listed(s["Action"]) and resource in listed(s["Resource"])
        for s in statements(props)
    )


check("the API may queue account jobs (sqs:SendMessage on AccountsQueue)",
      allows(functions["ApiFunction"], "sqs:SendMessage", {"Fn::GetAtt": ["AccountsQueue", "Arn"]}))
check("AccountsFunction may hand jobs back (sqs:ChangeMessageVisibility on AccountsQueue)",
      allows(accounts_fn, "sqs:ChangeMessageVisibility", {"Fn::GetAtt": ["AccountsQueue", "Arn"]}))
check("AccountsFunction may queue the Account ready SMS (sqs:SendMessage on SendQueue)",
      allows(accounts_fn, "sqs:SendMessage", {"Fn::GetAtt": ["SendQueue", "Arn"]}))
table_actions = {
    a for s in statements(accounts_fn) if s["Effect"] == "Allow"
    for a in listed(s["Action"]) if a.startswith("dynamodb:")
}
check(
    "AccountsFunction may only Query, GetItem, PutItem and UpdateItem, on the table alone",
    table_actions == {"dynamodb:Query", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}
    and all(
        s["Resource"] == {"Fn::GetAtt": ["RegistrationTable", "Arn"]}
        for s in statements(accounts_fn) if any(a.startswith("dynamodb:") for a in listed(s["Action"]))
    ),
)
check(
    "AccountsFunction's log group has the stack's retention",
    resources.get(str(accounts_fn.get("LoggingConfig", {}).get("LogGroup", {}).get("Ref")), {})
    .get("Properties", {}).get("RetentionInDays") == {"Ref": "LogRetentionDays"},
)
accounts_metrics_rs = open("src/functions/accounts.rs").read()
check(
    "src/functions/accounts.rs emits AccountsCreated, AccountsFailed, AccountsWaiting and "
    "AccountsWaitingLong under Function accounts (what the alarms and the dashboard read)",
    'Metrics::new("accounts")' in accounts_metrics_rs
    and all(f'"{m}"' in accounts_metrics_rs
            for m in ("AccountsCreated", "AccountsFailed", "AccountsWaiting", "AccountsWaitingLong")),
)

if failures:
    sys.exit(f"{len(failures)} template fact(s) do not hold")
print("template.yaml: every fact holds")
