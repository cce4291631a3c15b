"""When retraining pays: the evidence gathered since the current model, and the decision with its reason.

Pure: `retrain_trigger` reads the figures from the Dagster instance; here they are compared and judged.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

LISTED = 8  # participants named in a reason; the rest are counted


@dataclass(frozen=True)
class RetrainEvidence:
    """What changed since the current model: labelled minutes per participant, and who became flagged."""

    minutes: dict[str, float]  # participant -> change in labelled minutes (a newcomer: all of theirs; removed: -all)
    newly_flagged: list[str]

    @classmethod
    def compare(cls, trained: Mapping[str, float | None], current: Mapping[str, float | None],
                flagged_then: set[str], flagged_now: set[str]) -> RetrainEvidence:
        """`trained` and `current`: labelled minutes per participant in the model's split and in the latest one
        (absent: none; None: not known, and that participant is not compared)."""
        change = {p: round((current.get(p) or 0.0) - (trained.get(p) or 0.0), 3) for p in {*trained, *current}
                  if trained.get(p, 0.0) is not None and current.get(p, 0.0) is not None}
        return cls({p: d for p, d in sorted(change.items()) if d}, sorted(flagged_now - flagged_then))

    @property
    def changed_minutes(self) -> float:
        """Labelled minutes added or removed, across participants."""
        return round(sum(abs(d) for d in self.minutes.values()), 3)

    def key(self, model_id: int) -> str:
        """One name per evidence state on top of one model: asked for once (a run key, the sensor's cursor)."""
        doc = json.dumps([model_id, self.minutes, self.newly_flagged])
        return "retrain-" + hashlib.sha256(doc.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RetrainDecision:
    retrain: bool
    reason: str


@dataclass(frozen=True)
class RetrainPolicy:
    """Retrain when at least `min_labelled_minutes` labelled minutes changed since the data the current model was
    trained on, or when at least `min_flagged_people` participants became flagged since it was trained and some
    labelled minutes changed: people the model cannot be trusted on lower the bar for new labels, but the same
    data would only train the same model again, so flagged people alone ask for their labels instead."""

    min_labelled_minutes: float
    min_flagged_people: int

    def __post_init__(self) -> None:
        if self.min_labelled_minutes <= 0 or self.min_flagged_people < 1:
            raise ValueError("the thresholds must be positive: a zero threshold would retrain on no evidence")

    def decide(self, evidence: RetrainEvidence) -> RetrainDecision:
        minutes_met = evidence.changed_minutes >= self.min_labelled_minutes
        enough_flagged = len(evidence.newly_flagged) >= self.min_flagged_people
        flagged_met = enough_flagged and evidence.changed_minutes > 0
        minutes = (f"{evidence.changed_minutes:.1f} new labelled minutes"
                   + (f" ({listed([f'{p} {d:+.1f}' for p, d in evidence.minutes.items()])})" if evidence.minutes
                      else "")
                   + f" {'>=' if minutes_met else '<'} {self.min_labelled_minutes:g}")
        n, names = len(evidence.newly_flagged), listed(evidence.newly_flagged)
        flagged = (f"{n} newly flagged {'person' if n == 1 else 'people'}"
                   + ((f": {names}" if flagged_met else f" ({names})" if enough_flagged
                       else f" ({names}) < {self.min_flagged_people}") if n else f" < {self.min_flagged_people}"))
        if enough_flagged and not flagged_met:
            flagged += (" but no labelled minutes changed: the same data would train the same model; their labels "
                        f"would help (har labels request {evidence.newly_flagged[0]})")
        elif flagged_met:
            flagged += f", with {evidence.changed_minutes:.1f} new labelled minutes"
        met = [part for part, ok in ((minutes, minutes_met), (flagged, flagged_met)) if ok]
        return RetrainDecision(bool(met), "; ".join(met or [minutes, flagged]))


def listed(items: list[str]) -> str:
    """The first LISTED items, then how many more."""
    return ", ".join(items[:LISTED]) + (f" and {len(items) - LISTED} more" if len(items) > LISTED else "")
