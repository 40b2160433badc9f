#!/usr/bin/env python3
"""Scheduler throughput: create services for TASKS tasks on the simulated
nodes, and time from the first CreateService until every task is placed
(PENDING or RUNNING in DescribeServices: persisted in the store).

  scheduler_load.py ENDPOINT KEY_ID SECRET TASKS  → prints JSON
"""
import json
import sys
import time

import boto3

endpoint, key, secret, total = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ecs = boto3.client("ecs", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id=key, aws_secret_access_key=secret)
ecs.register_task_definition(family="sim", containerDefinitions=[
    {"name": "main", "image": "busybox", "memory": 16, "cpu": 1, "command": ["true"]}])
PER_SERVICE = 5000  # ECS's quota of tasks per service
names = []
start = time.monotonic()
left = total
while left > 0:
    n = min(PER_SERVICE, left)
    name = f"sim{len(names):03d}"
    ecs.create_service(serviceName=name, taskDefinition="sim", desiredCount=n,
                       deploymentConfiguration={"minimumHealthyPercent": 0, "maximumPercent": 100})
    names.append(name)
    left -= n
placed, samples = 0, []
while placed < total:
    time.sleep(0.2)
    placed = 0
    for i in range(0, len(names), 10):
        for s in ecs.describe_services(services=names[i:i + 10])["services"]:
            placed += s["pendingCount"] + s["runningCount"]
    samples.append((round(time.monotonic() - start, 2), placed))
    if time.monotonic() - start > 1800:
        break
took = time.monotonic() - start
print(json.dumps({"tasks": total, "placed": placed, "seconds": round(took, 2),
                  "per_second": round(placed / took), "samples": samples}))
