"""Labelled probes: texts with known answers that any serving model must get right, so a health or smoke check
fails a random, untrained or wrongly loaded model instead of only checking the answer's shape.

A probe passes when the model puts at least half its probability on the expected side: P(safe) for a clearly
safe text, P(harmful) + P(extremely_harmful) for a clearly harmful one (plain or coded). A model answering at
random (about a quarter on each label) fails the safe probes; one answering one label for everything fails
either the safe or the harmful ones. With a `label_mass` (the share of the next-token probability the language
model put on the four label tokens, before renormalising), it must be at least LABEL_MASS_FLOOR: an untrained
model spreads its mass over the whole vocabulary (about 3e-5 on the labels) and only looks like it answers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.labels import LABELS, SEVERITY

SAFE, HARMFUL = "safe", "harmful_or_worse"
LABEL_MASS_FLOOR = 0.5
PASS_SHARE = 0.5


@dataclass(frozen=True)
class Probe:
    text: str
    expect: str  # SAFE or HARMFUL
    kind: str  # plain or coded


PROBES: tuple[Probe, ...] = (
    Probe("have a nice day", SAFE, "plain"),
    Probe("thank you so much for helping me today", SAFE, "plain"),
    Probe("go kill yourself", HARMFUL, "plain"),
    Probe("i am going to kill you", HARMFUL, "plain"),
    Probe("go k1ll yourself", HARMFUL, "coded"),
)
TEXTS: tuple[str, ...] = tuple(p.text for p in PROBES)


def side_share(scores: Mapping[str, float], expect: str) -> float:
    """The probability a model gave the side `expect` names."""
    if expect == SAFE:
        return float(scores["safe"])
    return float(sum(scores[label] for label in LABELS if SEVERITY[label] >= SEVERITY["harmful"]))


def failures(answers: Sequence[Mapping], probes: Sequence[Probe] = PROBES) -> list[str]:
    """One line per probe the answers get wrong (empty: all passed). Each answer has `scores` (label ->
    probability) and, from the Stage 2 inference core, `label_mass`."""
    if len(answers) != len(probes):
        return [f"expected {len(probes)} probe answers, got {len(answers)}"]
    out = []
    for probe, answer in zip(probes, answers):
        scores = answer.get("scores") if isinstance(answer, Mapping) else None
        if not isinstance(scores, Mapping) or set(scores) != set(LABELS):
            out.append(f"{probe.text!r}: no scores over {', '.join(LABELS)} (got {scores!r:.120})")
            continue
        share = side_share(scores, probe.expect)
        if not math.isfinite(share) or share < PASS_SHARE:
            out.append(f"{probe.text!r} ({probe.kind}): P({probe.expect}) {share:.3f} < {PASS_SHARE}")
        mass = answer.get("label_mass")
        if mass is not None and (not isinstance(mass, int | float) or not mass >= LABEL_MASS_FLOOR):
            out.append(f"{probe.text!r}: label_mass {mass!r} < {LABEL_MASS_FLOOR} (the model barely answers "
                       "with a label: untrained or the wrong model)")
    return out
