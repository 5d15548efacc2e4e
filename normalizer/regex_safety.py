"""Refuse regular expressions that can backtrack catastrophically.

Python's `re` backtracks, so a pattern such as `(a+)+$` or `\\w+\\s+\\w+` takes exponential or polynomial
time on the wrong input. The database is loaded from a file people edit, so every pattern is checked
before it is compiled into the matcher, in two ways:

1. statically, on the parsed pattern: no unbounded repeat inside another repeat (star height > 1), no
   alternation inside an unbounded repeat, at most one unbounded repeat per pattern, no backreferences;
2. dynamically: the pattern must search adversarial strings of 20,000 characters in well under a second.
"""

from __future__ import annotations

import re
import time

try:  # Python >= 3.11
    from re import _constants as _c  # type: ignore[attr-defined]
    from re import _parser as _p  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _p  # type: ignore[no-redef]

_REPEATS = {_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", _c.MAX_REPEAT)}
_BOUNDED_LIMIT = 20  # {0,20} is treated as bounded; {0,1000} is not


class UnsafePatternError(ValueError):
    pass


def _contains_branch(items) -> bool:
    for op, arg in items:
        if op == _c.BRANCH:
            return True
        if op == _c.SUBPATTERN and _contains_branch(arg[-1]):
            return True
        if op in _REPEATS and _contains_branch(arg[2]):
            return True
        if op in (_c.ASSERT, _c.ASSERT_NOT) and _contains_branch(arg[1]):
            return True
    return False


def _flatten(items):
    """Every (op, arg) in a parsed pattern, nested ones included."""
    for op, arg in items:
        yield op, arg
        if op == _c.SUBPATTERN:
            yield from _flatten(arg[-1])
        elif op in _REPEATS:
            yield from _flatten(arg[2])
        elif op == _c.BRANCH:
            for branch in arg[1]:
                yield from _flatten(branch)
        elif op in (_c.ASSERT, _c.ASSERT_NOT):
            yield from _flatten(arg[1])


def _walk(items, depth_unbounded: int, found: list[str], counter: list[int]) -> None:
    for op, arg in items:
        if op in _REPEATS:
            lo, hi, sub = arg
            unbounded = hi is _c.MAXREPEAT or hi > _BOUNDED_LIMIT
            if hi is _c.MAXREPEAT or hi > 1:
                if _contains_branch(sub):  # (?:k|kk){1,20} backtracks exponentially even when bounded
                    found.append("an alternation inside a repeat")
            if unbounded:
                counter[0] += 1
                if depth_unbounded:
                    found.append("a repeat nested inside an unbounded repeat")
            _walk(sub, depth_unbounded + (1 if unbounded else 0), found, counter)
        elif op == _c.SUBPATTERN:
            _walk(arg[-1], depth_unbounded, found, counter)
        elif op == _c.BRANCH:
            for branch in arg[1]:
                _walk(branch, depth_unbounded, found, counter)
        elif op in (_c.ASSERT, _c.ASSERT_NOT):
            _walk(arg[1], depth_unbounded, found, counter)
        elif op in (_c.GROUPREF, _c.GROUPREF_EXISTS):
            found.append("a backreference")
        if depth_unbounded and op in _REPEATS and arg[1] is not _c.MAXREPEAT and arg[1] > 1:
            found.append("a repeat nested inside an unbounded repeat")


_ADVERSARIAL_UNITS = ("a", "a ", "1", "aA1!", "\u0430", ". ")


def check_pattern(pattern: str, budget_seconds: float = 0.25) -> re.Pattern[str]:
    """Compile `pattern` if it is safe; raise UnsafePatternError saying why not."""
    try:
        parsed = _p.parse(pattern, re.IGNORECASE)
        compiled = re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise UnsafePatternError(f"not a valid regular expression: {exc}") from exc
    found: list[str] = []
    counter = [0]
    _walk(list(parsed), 0, found, counter)
    if counter[0] > 1:
        found.append(f"{counter[0]} unbounded repeats (at most one is allowed)")
    if found:
        raise UnsafePatternError("can backtrack catastrophically: " + "; ".join(sorted(set(found))))
    # Grow adversarial inputs step by step (small steps while short, then doubling), so that a pattern the
    # static check missed exceeds the time budget on a short input, before it can hang the loader.
    sizes = [*range(8, 64, 4), *(64 * 2**k for k in range(9))]
    literals = sorted({chr(arg).lower() for op, arg in _flatten(list(parsed)) if op == _c.LITERAL and arg < 0x110000})
    units = [*_ADVERSARIAL_UNITS, *literals, "".join(literals)] if literals else list(_ADVERSARIAL_UNITS)
    for unit in units:
        for repeat in sizes:
            probe = unit * repeat + "!"
            started = time.perf_counter()
            compiled.search(probe)
            if time.perf_counter() - started > budget_seconds:
                raise UnsafePatternError(f"too slow on a {len(probe)}-character adversarial input")
    return compiled
