#!/usr/bin/env python3
"""RunTask → RUNNING for one-container tasks, for bench/cluster.sh.

    cluster_tasks.py ENDPOINT KEY_ID SECRET FAMILY N

Runs N tasks one after another; for each, the time from sending RunTask to
the first DescribeTasks that shows it RUNNING (polled every 5 ms in this
one process, so no client start-up is counted), then stops it. Prints the
times in milliseconds, one per line.
"""
import sys
import time

import boto3

endpoint, key, secret, family, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
ecs = boto3.client("ecs", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id=key, aws_secret_access_key=secret)
ecs.list_clusters()  # connection and signing warmed up
for _ in range(n):
    t0 = time.monotonic()
    r = ecs.run_task(taskDefinition=family)
    if r["failures"]:
        sys.exit(f"RunTask failed: {r['failures']}")
    arn = r["tasks"][0]["taskArn"]
    while True:
        t = ecs.describe_tasks(tasks=[arn])["tasks"][0]
        if t["lastStatus"] == "RUNNING":
            break
        if t["lastStatus"] == "STOPPED":
            sys.exit(f"the task stopped: {t.get('stoppedReason')}")
        time.sleep(0.005)
    print(f"{(time.monotonic() - t0) * 1000:.1f}", flush=True)
    ecs.stop_task(task=arn)
