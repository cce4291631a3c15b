"""Train / validation / test split *by participant* (never by window: that leaks a person into the test set).

Participants are ranked by a seeded hash of their id and cut by quota: the first ones are test,
then validation, the rest training. The ranking of the existing participants does not change
when a new one arrives, so successive retrains mostly keep their test participants. Explicit
lists override the quota for their role.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field, model_validator

ROLES = ("train", "validation", "test")


class SplitError(ValueError):
    """The participants cannot be split as configured (too few, unknown or overlapping)."""


class SplitConfig(BaseModel):
    """How participants are divided; shares apply to the labelled participants not listed explicitly."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = Field(0, ge=0, description="Seed of the participant ranking.")
    test_share: float = Field(0.25, gt=0, lt=1, description="Share of labelled participants held out for testing.")
    validation_share: float = Field(
        0.0, ge=0, lt=1, description="Share of labelled participants held out for early stopping (0: none; every "
        "non-test participant trains for the full schedule, which measured better on real people)."
    )
    train: list[str] | None = Field(None, description="Explicit training participants (the rest is unused).")
    validation: list[str] | None = Field(None, description="Explicit validation participants.")
    test: list[str] | None = Field(None, description="Explicit test participants.")

    @model_validator(mode="after")
    def _consistent(self) -> SplitConfig:
        if self.test_share + self.validation_share >= 1:
            raise ValueError("test_share + validation_share must leave a share for training")
        listed = [p for role in ROLES for p in (getattr(self, role) or [])]
        twice = sorted({p for p in listed if listed.count(p) > 1})
        if twice:
            raise ValueError(f"participants listed in more than one role: {twice}")
        return self


class DatasetSplit(BaseModel):
    """The participants of each role, plus the labelled ones left out and the unlabelled ones."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    train: list[str]
    validation: list[str]
    test: list[str]
    unused: list[str] = Field(default_factory=list, description="Labelled but in no role (explicit lists).")
    unlabelled: list[str] = Field(default_factory=list, description="No labelled window: scored, not trained on.")
    seed: int = 0
    fingerprints: dict[str, str] = Field(
        default_factory=dict, description="Content hash of each labelled participant's windows (data lineage)."
    )

    def role_of(self, participant: str) -> str:
        for role in (*ROLES, "unused", "unlabelled"):
            if participant in getattr(self, role):
                return role
        return "none"

    @property
    def labelled(self) -> list[str]:
        return sorted([*self.train, *self.validation, *self.test])

    def version(self) -> str:
        """Hash of what training sees: the roles, the seed and the windows' fingerprints (not the unlabelled or
        unused participants, so their arrival does not call for a retrain)."""
        doc = self.model_dump_json(exclude={"unlabelled", "unused"})
        return hashlib.sha256(doc.encode()).hexdigest()[:16]


def participant_rank(participant: str, seed: int) -> str:
    """Seeded, stable sort key of a participant (independent of the other participants)."""
    return hashlib.sha256(f"{seed}:{participant}".encode()).hexdigest()


def split_participants(labelled: Iterable[str], config: SplitConfig, unlabelled: Iterable[str] = ()) -> DatasetSplit:
    """Assign every labelled participant a role; raises SplitError when a role would be empty."""
    labelled = sorted(set(labelled))
    unlabelled = sorted(set(unlabelled) - set(labelled))
    known = set(labelled)
    fixed = {role: list(getattr(config, role) or []) for role in ROLES}
    for role, members in fixed.items():
        bad = sorted(set(members) - known)
        if bad:
            why = "have no labelled windows" if set(bad) <= set(unlabelled) else "are not available"
            raise SplitError(f"{role} participants {bad} {why}; labelled participants: {labelled}")
    free = sorted(known - {p for m in fixed.values() for p in m}, key=lambda p: participant_rank(p, config.seed))
    n = len(labelled)
    want = {"test": max(1, round(config.test_share * n)),
            "validation": max(1, round(config.validation_share * n)) if config.validation_share > 0 else 0}
    roles: dict[str, list[str]] = {}
    for role in ("test", "validation"):
        if getattr(config, role) is not None:
            roles[role] = sorted(fixed[role])
        else:
            roles[role], free = sorted(free[:want[role]]), free[want[role]:]
    if config.train is not None:
        roles["train"], unused = sorted(fixed["train"]), sorted(free)
    else:
        roles["train"], unused = sorted(free), []
    needed = {"train": 1, "test": 1, "validation": int(config.validation is None and config.validation_share > 0)}
    short = [role for role, k in needed.items() if len(roles[role]) < k]
    if short:
        raise SplitError(
            f"too few labelled participants to split: {n} ({labelled}) leave no participant for {', '.join(short)}; "
            f"need at least {sum(needed.values())} labelled participants"
        )
    return DatasetSplit(train=roles["train"], validation=roles["validation"], test=roles["test"], unused=unused,
                        unlabelled=unlabelled, seed=config.seed)
