"""Checks what template.yaml must hold on AWS that neither validator knows about.

Run by scripts/lint-template with the project's .venv (it reads the template with
cfn-lint's loader, which understands the short intrinsic-function tags). Exits 1 naming
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

# The dashboard shows every function and both dead-letter queues.
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

if failures:
    sys.exit(f"{len(failures)} template fact(s) do not hold")
print("template.yaml: every fact holds")
