"""Participants are dynamic partitions: a sensor adds one per valid raw folder."""

import dagster as dg

participants = dg.DynamicPartitionsDefinition(name="participants")
