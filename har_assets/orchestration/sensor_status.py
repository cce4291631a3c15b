"""Whether a sensor is deployed running: on by default, `<VAR>=0` deploys it stopped."""

import os

import dagster as dg


def default_status(env_var: str) -> dg.DefaultSensorStatus:
    """RUNNING unless the environment variable is "0"."""
    running = os.environ.get(env_var, "1") != "0"
    return dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED
