"""Whether a sensor is deployed running or stopped (`HarSettings.autostart_*`)."""

import dagster as dg


def sensor_status(running: bool) -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED
