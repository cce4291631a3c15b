"""Participants are dynamic partitions (a sensor adds one per valid raw folder); `study_participants` records
who joined the study and who left it."""

import dagster as dg

participants = dg.DynamicPartitionsDefinition(name="participants")

STUDY_PARTICIPANTS = dg.AssetSpec(
    "study_participants", group_name="training", kinds={"python"},
    description="The study's participants. Not computed: each removal or restore (`har participants remove`, "
                "raw folder) reports a materialization naming who was removed, by whom, why and what was "
                "archived; dataset_split follows it, so the next model is trained without them.")
