"""Open-vocabulary decoding (issue 16): obfuscated ordinary words are decoded; what is not obfuscated stays."""

import pytest

from normalizer.vocabulary import english_counts


def _rewrites(normalizer, text):
    return [m for m in normalizer.normalize(text).matches if m.action == "rewrite"]


@pytest.mark.parametrize(
    "coded, word",
    [
        ("m3th", "meth"), ("h@te", "hate"), ("t3rr0rist", "terrorist"), ("r@c1st", "racist"), ("p*rn", "porn"),
        ("b!tch", "bitch"), ("€xplode", "explode"), ("expl0s1ve", "explosive"), ("sui.cide", "suicide"),
        ("k-i-l-l-e-d", "killed"), ("wh*re", "whore"), ("fu(k", "fuck"), ("fvck", "fuck"), ("f**k", "fuck"),
        ("¢ocaine", "cocaine"), ("g()d", "god"), ("h3ll0", "hello"), ("£ucking", "fucking"), ("gr€nade", "grenade"),
    ],
)  # fmt: skip
def test_coded_ordinary_words_are_decoded(product, coded, word):
    result = product.normalize(f"i said {coded} today")
    assert result.text == f"i said {word} today"


def test_decoded_harm_words_carry_their_category(product):
    categories = {m.replacement: m.category for m in _rewrites(product, "m3th and expl0s1ves and t3rr0rists")}
    assert categories.get("meth") == "drugs"
    assert categories.get("terrorists") == "hate"


@pytest.mark.parametrize(
    "text",
    [
        "call me at 555-0199 or at 10:30pm, it costs $100 or 4.99",  # numbers, times, prices
        "upgrade to v2.0.1 or python3.11 before 2024-05-01",  # versions, dates
        "see https://ex4mple.com/h3ll0 and www.t3st.org or mail b0b@ex4mple.com",  # URLs, emails
        "thanks @h4ter_99 and @m3th0d for the #h3lp",  # handles, hashtags
        "run `x = a1 + b2` then `k1ll -9`",  # code
        "a b2b deal, an mp3, a 4x4, covid19, gr8 stuff, perl5 and ssse3, haplogroup r1b, 1st and 3rd, 10am",
        "sooo good, yesss, e-mail me, the U.S.A., co-op, re-enter, i.e. and e.g.",
        "jeg har møtt henne, $end it with $watch",
        # hyphenated and camel-case compounds, identifiers and handles stay as written
        "an anti-fascist 5-year-old, removeClass(), a mixtape, a navbars mixin, ho@user, C<3 u, x<y and b<3",
    ],
)
def test_never_touched(product, text):
    assert product.normalize(text).text == text


def test_capitalised_ordinary_words_never_fire(product):
    words = sorted(english_counts(), key=english_counts().get, reverse=True)[:3000]
    text = " ".join(w.capitalize() for w in words)
    fired = [m.original for m in product.normalize(text).matches if m.rule == "decode"]
    assert fired == []


def test_ambiguous_readings_stay_as_written(product):
    # "he11" reads as "hell" or "heil" or "heli": with no clear winner it must not turn into the slogan
    assert "heil" not in product.normalize("what the he11").text


def test_emoji_codes_are_reported_everywhere_and_rewritten_in_context(product):
    innocent = product.normalize("peach cobbler season 🍑 at the farm market")
    assert innocent.text == "peach cobbler season 🍑 at the farm market"
    harmful = product.normalize("send me pics of that 🍑 tonight")
    assert "butt" in harmful.text
    gun = product.normalize("the opps gonna get the 🔫")
    assert any(m.action == "rewrite" and m.replacement == "gun" for m in gun.matches)
    water_pistol = product.normalize("summer fun with the kids and a water 🔫")
    assert water_pistol.text == "summer fun with the kids and a water 🔫"
    assert any(m.action == "annotate" and m.original == "🔫" for m in water_pistol.matches)


@pytest.mark.parametrize(
    "text",
    [
        "h3ll0 w0rld", "sui.cide k-i-l-l-e-d", "send me pics of that 🍑", "fu(k th@t", "fu(k 🍑", "un@11ve 🔫 £",
        # texts that changed on a second normalization before (issue 13): a context judged before a neighbour
        # was rewritten, a run read from symbols, words joined by punctuation, a symbol before a decoded word
        "IN:0❄1488", "cocaine*3", "❄*3f*ck", "ß.sewer slide", "ß-$uicide🍑$uicide", "£wh*re", "h@teİ❄sui.cide🔫",
        "kіll½k.i.l.l(",
    ],
)  # fmt: skip
def test_decoding_is_idempotent(product, mini, text):
    for normalizer in (product, mini):
        once = normalizer.normalize(text).text
        assert normalizer.normalize(once).text == once


@pytest.mark.parametrize(
    "coded, word",
    [
        ("horsesh1t", "horseshit"), ("d!ckheads", "dickheads"),  # a harm word compounded, not in the word list
        ("fvckers", "fuckers"),  # an inflection of a harm word, from weak evidence ("v" for "u")
        ("p0ssy", "pussy"), ("f@ck", "fuck"),  # a look-alike that reads as no word stands for a hidden letter
        ("r*pe", "rape"), ("no*se", "noose"),  # a mask hides the harm reading ("ripe", "noise" are not hidden)
        ("s<rew", "screw"), ("ha2ard", "hazard"),  # "<" for c, "2" for z (the Leet table)
        ("k1llecl", "killed"), ("n/\\kecl", "naked"),  # "cl" for d
    ],
)  # fmt: skip
def test_classes_of_coded_forms_beyond_single_substitutions(product, coded, word):
    assert product.normalize(f"i said {coded} today").text == f"i said {word} today"


def test_a_phrase_revealed_by_a_decoding_is_read_as_one_change(product):
    """"pressed 💊" reads "pressed pills", the database's phrase for counterfeit pills: one change, both techniques."""
    result = product.normalize("pressed 💊 for cheap, hmu")
    assert result.text == "counterfeit pills for cheap, hmu"
    [match] = result.matches
    assert (match.original, match.entry_id) == ("pressed 💊", "drugs.pressies")
    assert {"emoji", "euphemism"} <= set(match.techniques)


def test_a_word_far_into_a_text_is_read_like_one_at_its_start(mini):
    """The open vocabulary skips tokens over 64 characters long, not tokens that start past character 64."""
    text = "this is a rather long sentence that goes on and on before it says $tupid"
    assert text.index("$tupid") > 64
    assert mini.normalize(text).text == text.replace("$tupid", "stupid")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("k1ll£|2", "killer"),  # the whole token's reading replaces the reading of its "k1ll"
        ("k1ll£|2 k1ll", "killer kill"),  # a decoding later in the text does not stop it
    ],
)
def test_a_whole_token_reading_supersedes_a_reading_of_its_part(mini, text, expected):
    assert mini.normalize(text).text == expected


def test_a_database_form_is_not_taken_apart_by_a_reading_of_its_part(product):
    [match] = product.normalize("£wh*re").matches  # not "£ whore": "£wh*re" is a form of its own
    assert (match.original, match.entry_id, match.replacement) == ("£wh*re", "scam.ewhoring", "sextortion catfish scammer")


def test_an_emoji_code_after_another_match_is_judged_where_it_stands(product):
    """The eggplant is rewritten only in a sexual context; here the words around it are not one, although the
    annotated phrase before it shifts the text as it will read."""
    text = ("Do everyone a favour and jump off a br1dge..@user @user @user Funny How Liberals Love My Presidents "
            "🍆 😂🇺🇸")  # fmt: skip
    result = product.normalize(text)
    assert result.text == text
    assert [(m.original, m.action) for m in result.matches] == [("jump off a br1dge", "annotate"), ("🍆", "annotate")]


def test_a_long_text_without_spaces_keeps_its_hashtag_and_handle_and_decodes_every_token_between(product):
    """One 15 KB chunk (no spaces) of coded words between a hashtag and a handle: the hashtag ("#h3lpk1ll") and
    the handle stay as written, every coded word between them is decoded. The chunk's protected spans are found
    once for all its tokens (once per token, "a1#" * 6667 took 2.6 s)."""
    text = "#h3lp" + "k1ll#" * 3000 + "@m3th0d"
    result = product.normalize(text)
    assert result.text.startswith("#h3lpk1ll# kill # ") and result.text.endswith("kill #@m3th0d")
    assert result.text.count(" kill ") == 2999 and len(result.matches) == 2999 and not result.degraded


def test_a_chunk_of_many_handles_and_hashtags_keeps_the_last_one_too(product):
    """Twelve handles and a hashtag in one chunk (the many-spans path): none is decoded, the last included, while
    a plain coded word after them still is."""
    text = "@m3th0d/" * 12 + "#h3lp"
    assert product.normalize(text).text == text
    assert product.normalize("#h3lp/" * 12 + "k1ll").text == "#h3lp/" * 12 + "kill"
