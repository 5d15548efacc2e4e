"""Stage 1: decode algospeak to plain words, explaining every change.

    from normalizer import load_database, Normalizer
    result = Normalizer(load_database()).normalize("time to unalive myself")
"""

from normalizer.database import Entry, PatternDatabase, PatternDatabaseError, load_database
from normalizer.matcher import Match, NormalizationResult, Normalizer

__all__ = [
    "Entry",
    "Match",
    "NormalizationResult",
    "Normalizer",
    "PatternDatabase",
    "PatternDatabaseError",
    "load_database",
]
