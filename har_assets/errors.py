"""Errors that name what is wrong with a participant's data, where, and why."""

from __future__ import annotations


class RawDataError(ValueError):
    """Invalid raw input: names the participant, the file (and field/row when known) and the problem."""

    def __init__(self, participant: str, file: str, problem: str, *, field: str | None = None,
                 row: int | None = None) -> None:
        self.participant = participant
        self.file = file
        self.problem = problem
        self.field = field
        self.row = row
        where = file
        if field is not None:
            where += f", column '{field}'"
        if row is not None:
            where += f", row {row}"
        super().__init__(f"participant '{participant}': {where}: {problem}")


class PipelineDataError(RuntimeError):
    """A stage would drop or invent data (empty output, nothing usable): it fails loudly instead."""

    def __init__(self, participant: str, stage: str, problem: str) -> None:
        self.participant = participant
        self.stage = stage
        super().__init__(f"participant '{participant}': {stage}: {problem}")
