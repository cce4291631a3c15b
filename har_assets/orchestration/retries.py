"""Transient failures are retried: one retry policy for every asset that talks to a store or service.

A step that fails because S3, MLflow or PostgreSQL was unreachable is retried after 3, 6, 12, 24 and
48 s: about a minute and a half, enough for a service restart (no jitter: a study's few concurrent
runs make no thundering herd, and the wait stays predictable). Data errors never are: they raise
`dg.Failure(allow_retries=False)` (a bad file stays bad until it changes; an input never stored stays
missing: the IO manager says so the same way), and a failed blocking check fails the run without a
retry. Any other exception (a bug) is retried like a transient one: it costs the same minute and a
half before the run fails. What is still failing after the last retry is asked
for again by `recover_failed_runs` (sensors.py) for preprocessing, and otherwise shows as a failed
run in the UI.
"""

import dagster as dg

TRANSIENT_RETRY = dg.RetryPolicy(max_retries=5, delay=3, backoff=dg.Backoff.EXPONENTIAL)
