"""The classifier prompt, shared by data preparation, training and serving.

Training records and serving requests both come from `build_messages`, so the model sees at serving time
exactly the prompt it was trained on. The assistant's answer is one label from LABELS, nothing else.
"""

from __future__ import annotations

from core.labels import LABELS

__all__ = ["LABELS", "SYSTEM_PROMPT", "USER_TEMPLATE", "build_messages", "build_training_messages"]

SYSTEM_PROMPT = (
    "You are a content moderation classifier. Read the user's text, including any coded language "
    "(algospeak: misspellings, leetspeak, spacing, look-alike characters, emoji or euphemisms that stand in "
    "for harmful words), and rate how harmful it is. Answer with exactly one label: "
    + ", ".join(LABELS)
    + "."
)

# The text goes where {text} is; nothing else in the template changes per request.
USER_TEMPLATE = "Classify this text:\n\n{text}"


def build_messages(text: str) -> list[dict[str, str]]:
    """The chat messages (Qwen chat format: system, then user) that ask the model to classify `text`."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": USER_TEMPLATE.format(text=text)},
    ]


def build_training_messages(text: str, label: str) -> list[dict[str, str]]:
    """`build_messages(text)` followed by the assistant's answer, the label: one supervised example."""
    if label not in LABELS:
        raise ValueError(f"unknown label {label!r}; expected one of {', '.join(LABELS)}")
    return [*build_messages(text), {"role": "assistant", "content": label}]
