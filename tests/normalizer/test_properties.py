"""Properties that hold for every input: offsets map back, output is deterministic and idempotent, nothing
crashes it, and time grows linearly with the input."""

import random
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# Pieces that exercise every path: known forms, leet, separators, look-alikes, invisibles, emoji, digits.
PIECES = [
    "unalive", "unal1ve", "sewer slide", "s3wer", "k1ll", "k i l l", "k.i.l.l", "kiiill", "k\u0456ll",
    "k\u200bill", "ｋｉｌｌ", "f*ck", "$uicide", "kys", "corn", "star", "killed it", "dying to see", "❄️", "❄",
    "1488", "in", "$100", "2024", "a", "b", " ", "  ", "\t", "\n", ".", "-", "*", "!", "@", "1", "3",
    "\u0301", "\u202e", "\U000e0041", "é", "ß", "İ", "ﬁ", "½", "🏻", "\u200d", "a1b2",
]  # fmt: skip
texts = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(PIECES), max_size=30).map("".join),
    st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=5)), max_size=20).map(" ".join),
)
fast = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_invariants(normalizer, text):
    result = normalizer.normalize(text)
    previous_end = 0
    for m in result.matches:
        assert 0 <= m.start <= m.end <= len(text)
        assert m.start >= previous_end, "matches overlap"
        previous_end = m.end
        assert text[m.start : m.end] == m.original
        assert result.text[m.norm_start : m.norm_end] == m.replacement
    # Outside matches, the normalized text is the original, character for character.
    rebuilt, last = [], 0
    for m in result.matches:
        rebuilt.append(text[last : m.start])
        rebuilt.append(m.replacement)
        last = m.end
    rebuilt.append(text[last:])
    assert "".join(rebuilt) == result.text
    return result


@fast
@given(texts)
def test_offsets_map_back_and_nothing_changes_unexplained(mini, text):
    check_invariants(mini, text)


@fast
@given(texts)
def test_deterministic(mini, text):
    assert mini.normalize(text).as_dict() == mini.normalize(text).as_dict()


@fast
@given(texts)
def test_idempotent(mini, text):
    once = mini.normalize(text).text
    assert mini.normalize(once).text == once


@fast
@given(texts)
def test_product_database_invariants(product, text):
    result = check_invariants(product, text)
    assert product.normalize(result.text).text == result.text


def test_no_crash_on_control_characters_and_random_unicode(mini):
    rng = random.Random(7)
    for _ in range(200):
        text = "".join(chr(rng.randrange(0, 0x110000)) for _ in range(rng.randrange(0, 300)))
        text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        check_invariants(mini, text)
    check_invariants(mini, "".join(chr(i) for i in range(0, 0x3000)))


@pytest.mark.slow
def test_one_megabyte_strings(mini):
    rng = random.Random(1)
    words = ["hello", "k1ll", "unalive", "k i l l", "ｋｉｌｌ", "the", "2024", "kіll", "❄️"]
    big = " ".join(rng.choice(words) for _ in range(170_000))[:1_000_000]
    result = mini.normalize(big)
    assert len(result.matches) > 10_000
    assert "k1ll" not in result.text
    assert mini.normalize("a" * 1_000_000).text == "a" * 1_000_000


def _seconds(normalizer, text, repeat=5):
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        normalizer.normalize(text)
        best = min(best, time.perf_counter() - started)
    return best


@pytest.mark.slow
def test_adversarial_input_is_linear(mini, product):
    """100 KB of the inputs that hurt backtracking matchers: 4x the input may cost at most 10x the time
    (linear is 4x, quadratic 16x; the margin absorbs a busy machine)."""
    cases = [
        "a" * 100_000,
        "k " * 50_000,
        "k." * 50_000,
        "1" * 100_000,
        "a1" * 50_000,
        "\u0430a" * 50_000,
        "\u200b" * 100_000,
        "unal" * 25_000,
        "sewer " * 16_000,
    ]
    for normalizer in (mini, product):
        for case in cases:
            small, large = case[:25_000], case[:100_000]
            ratio = _seconds(normalizer, large) / max(_seconds(normalizer, small), 1e-4)
            assert ratio < 10, f"{case[:8]!r}...: 4x the input took {ratio:.1f}x the time"


# The texts of the 200,000-text fuzz corpus (bench/bench_idempotence.py) that changed on a second normalization
# before the fix: a word written in for an emoji fused with a look-alike after it ("🍑€" read "butt€", then
# "butte"), a hashtag lost its boundary ("❄#fvck" read "cocaine#fvck", no longer a hashtag), and a database form
# matched part of a token whose rest then read differently ("k.i.l.lsss" read "kill.lsss", then "kills").
FUZZ_PRODUCT = [
    "Maybe !next time he'k.i.l.lll think twice before pickinunaliveg fights.",
    "Can I have a bad bitch without no flawws❄k.i.l.lsss",
    "a\u202e+ĸyŞƘ˙kiiill🔫|<",
    "¶˘\x91Ɖ2024@m3th🍑fvck€|2",
    "+sui.cide3send nudes🍑€\t",
    "send nudes3śʮȳƋb🍑\u200d£",
]
FUZZ_MINI = ["k i l lr\x83t3rr0ristûFǮÑ❄#fvck+", "\u202c\U000e0041k.i.l.l1488❄️#h@te", "sui.cide❄️#fu(k"]


@pytest.mark.parametrize("text", FUZZ_PRODUCT)
def test_fuzz_finds_are_idempotent_with_the_product_database(product, text):
    result = check_invariants(product, text)
    assert product.normalize(result.text).text == result.text


@pytest.mark.parametrize("text", FUZZ_MINI)
def test_fuzz_finds_are_idempotent_with_the_fixture(mini, text):
    result = check_invariants(mini, text)
    assert mini.normalize(result.text).text == result.text


def test_a_word_for_an_emoji_is_set_apart_from_a_look_alike(product):
    assert product.normalize("send nudes🍑€").text == "send nudes butt €"
    assert product.normalize("send nudes🍑!").text == "send nudes butt!"  # sentence punctuation stays put


def test_a_rewrite_that_makes_a_new_token_is_read_again_as_one_change(product):
    result = check_invariants(product, "no flaws k.i.l.lsss")
    assert result.text == "no flaws kills"
    [match] = [m for m in result.matches if m.action == "rewrite"]
    assert (match.original, match.replacement) == ("k.i.l.lsss", "kills")
    assert "spacing" in match.techniques  # the first reading's technique is kept


def test_two_rewrites_read_again_are_two_changes_each_with_its_severity(product):
    result = check_invariants(product, "k.i.l.lsss and k.i.l.lsss")
    assert result.text == "kills and kills"
    got = [(m.original, m.replacement, m.entry_id, m.severity, m.start, m.end, m.norm_start, m.norm_end)
           for m in result.matches]
    assert got == [("k.i.l.lsss", "kills", "violence.unalive", 2, 0, 10, 0, 5),
                   ("k.i.l.lsss", "kills", "violence.unalive", 2, 15, 25, 10, 15)]  # fmt: skip


def test_a_change_read_again_right_after_another_change_starts_where_its_own_characters_start(product):
    result = check_invariants(product, "🔫k.i.l.lsss")
    assert result.text == "gun kills"
    got = [(m.original, m.replacement, m.start, m.end, m.norm_start, m.norm_end) for m in result.matches]
    assert got == [("🔫", "gun ", 0, 1, 0, 4), ("k.i.l.lsss", "kills", 1, 11, 4, 9)]


def test_many_changes_read_again_each_keep_their_place_in_the_original(product):
    """A long text whose every coded word changes again on a second reading: each change maps back to its own
    characters of the original (the composition looks positions up by bisection among hundreds of changes)."""
    unit = "k.i.l.lsss 🍑€ ok ❄#fvck "
    result = check_invariants(product, unit * 300)
    assert result.text == product.normalize(unit).text * 300
    rewrites = [m for m in result.matches if m.replacement != m.original]
    assert len(rewrites) == 300 * len([m for m in product.normalize(unit).matches if m.replacement != m.original])
    assert all(result.original[m.start : m.end] == m.original for m in result.matches)
    assert [m.original for m in rewrites[-3:]] == [m.original for m in rewrites[:3]]


def test_a_second_reading_keeps_the_annotations_and_safe_contexts_around_its_change(mini):
    """The second reading ("kill.sss" read "kills") reports the safe context and the annotation again; each keeps
    its place in the original text."""
    text = "star.k.i.l.l.e.d.it . k.i.l.l.sss . corn"
    result = check_invariants(mini, text)
    assert result.text == "star.k.i.l.l.e.d.it . kills . corn"
    got = [(m.original, m.replacement, m.entry_id, m.action, m.severity, m.start, m.end) for m in result.matches]
    assert got == [
        ("k.i.l.l.e.d.it", "k.i.l.l.e.d.it", "safe_context.killed_it", "protect", 0, 5, 19),
        ("k.i.l.l.sss", "kills", "open_vocabulary.violence", "rewrite", 1, 22, 33),
        ("corn", "corn", "sexual.corn", "annotate", 1, 36, 40),
    ]


def test_a_decoding_never_starts_inside_one_written_character(mini, product):
    """"⅚" folds to "5⁄6": its "6" is not a "b" that starts "bitch"."""
    for normalizer in (mini, product):
        assert normalizer.normalize("⅚itch").text == "⅚itch"
        assert normalizer.normalize("c*nts⅚itch").matches == []
