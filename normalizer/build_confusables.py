"""Regenerate `confusables_latin.json`: non-ASCII letters that look like one ASCII letter or digit.

Source: Unicode Technical Standard #39 confusables data, as packaged by `confusable-homoglyphs`
(a dev dependency). Output is a flat {char: ascii} map used to fold look-alikes in mixed-script
words. Characters that NFKD already folds to ASCII (fullwidth, mathematical alphanumerics) are left
out: Unicode normalisation handles those first.

    uv run python -m normalizer.build_confusables
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

OUT = Path(__file__).with_name("confusables_latin.json")


def build() -> dict[str, str]:
    import confusable_homoglyphs

    data_path = Path(confusable_homoglyphs.__file__).with_name("confusables.json")
    data = json.loads(data_path.read_text(encoding="utf-8"))
    table: dict[str, str] = {}
    for char, homoglyphs in data.items():
        if len(char) != 1 or char.isascii() or not char.isalpha():
            continue
        folded = unicodedata.normalize("NFKD", char)
        if folded.isascii():
            continue
        targets = {h["c"].lower() for h in homoglyphs if len(h["c"]) == 1 and h["c"].isascii() and h["c"].isalnum()}
        if len(targets) == 1:
            table[char] = targets.pop()
    # Text is case-folded before look-alikes are folded, so a confusable capital (Cyrillic К)
    # must also be found as its lower case (к), which Unicode lists under a different glyph.
    for char, target in list(table.items()):
        lower = char.lower()
        if len(lower) == 1 and lower != char and not lower.isascii():
            table.setdefault(lower, target)
    return dict(sorted(table.items()))


def main() -> None:
    table = build()
    OUT.write_text(json.dumps(table, ensure_ascii=False, indent=0, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {len(table)} look-alikes to {OUT}")


if __name__ == "__main__":
    main()
