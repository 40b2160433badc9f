#!/usr/bin/env python3
"""Service start, scale and rolling update on a running estiba cluster,
timed with boto3 (polling every 50 ms).

  services_timing.py ENDPOINT KEY_ID SECRET RUNS [NETWORK_MODE]
    → JSON of medians, seconds

NETWORK_MODE is the task definition's networkMode (default: ECS's, bridge).
"""
import json
import statistics
import sys
import time

import boto3

endpoint, key, secret, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
network = sys.argv[5] if len(sys.argv) > 5 else None
ecs = boto3.client("ecs", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id=key, aws_secret_access_key=secret)


def register(command):
    mode = {"networkMode": network} if network else {}
    td = ecs.register_task_definition(family="bench", **mode, containerDefinitions=[{
        "name": "main", "image": "127.0.0.1:51670/busybox:latest", "memory": 16,
        # sleep as pid 1 ignores SIGTERM, so a stop waits out its grace: 10 s,
        # swarm's default --stop-grace-period, rather than ECS's 30 s.
        "stopTimeout": 10,
        "command": ["sleep", command]}])
    return td["taskDefinition"]["taskDefinitionArn"]


def running(name, arn=None):
    """Tasks of the service RUNNING and wanted RUNNING (of `arn` if given)."""
    arns = []
    for page in ecs.get_paginator("list_tasks").paginate(serviceName=name, desiredStatus="RUNNING"):
        arns += page["taskArns"]
    n = 0
    for i in range(0, len(arns), 100):
        for t in ecs.describe_tasks(tasks=arns[i:i + 100])["tasks"]:
            if t["lastStatus"] == "RUNNING" and (arn is None or t["taskDefinitionArn"] == arn):
                n += 1
    return n


def settled(name):
    """Every task of the service wanted STOPPED is STOPPED: its container is
    gone, as swarm's bench waits for its containers to be."""
    arns = []
    for page in ecs.get_paginator("list_tasks").paginate(serviceName=name, desiredStatus="STOPPED"):
        arns += page["taskArns"]
    for i in range(0, len(arns), 100):
        if any(t["lastStatus"] != "STOPPED" for t in ecs.describe_tasks(tasks=arns[i:i + 100])["tasks"]):
            return False
    return True


def until(check, limit=300):
    t0 = time.monotonic()
    while not check():
        if time.monotonic() - t0 > limit:
            raise SystemExit("timed out")
        time.sleep(0.05)


def gone(name):
    ecs.delete_service(service=name, force=True)
    until(lambda: ecs.describe_services(services=[name])["services"][0]["status"] == "INACTIVE")


creates, scales, updates = [], [], []
for run in range(runs):
    first = register("3600")
    name = f"bench{run}"
    t0 = time.monotonic()
    ecs.create_service(serviceName=name, taskDefinition=first, desiredCount=30)
    until(lambda: running(name) >= 30)
    creates.append(time.monotonic() - t0)
    ecs.update_service(service=name, desiredCount=3)
    until(lambda: running(name) <= 3 and settled(name))
    t0 = time.monotonic()
    ecs.update_service(service=name, desiredCount=30)
    until(lambda: running(name) >= 30)
    scales.append(time.monotonic() - t0)

    second = register(str(3601 + run))
    t0 = time.monotonic()
    ecs.update_service(service=name, taskDefinition=second,
                       deploymentConfiguration={"maximumPercent": 200, "minimumHealthyPercent": 100})

    def done():
        s = ecs.describe_services(services=[name])["services"][0]
        d = s["deployments"]
        return len(d) == 1 and d[0]["rolloutState"] == "COMPLETED" and running(name, second) >= 30
    until(done)
    updates.append(time.monotonic() - t0)
    gone(name)

print(json.dumps({k: round(statistics.median(v), 2) for k, v in
                  (("create", creates), ("scale", scales), ("update", updates))}))
