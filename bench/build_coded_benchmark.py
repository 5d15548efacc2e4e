"""Builds `data/dataset/coded_forms_benchmark.json`: coded forms with their meanings, each with its source.

    uv run --all-extras python -m bench.build_coded_benchmark      # rewrites the data file (seeded: same output)

Run once to assemble the benchmark; `bench.coded_forms` measures the normalizer on it. Nothing here looks at
what the decoder can do: forms come from a published list, from a published substitution table applied to
listed harm words (including substitutions the decoder has no table for), from glossaries of emoji codes, and
from real labelled texts. Families:

- `leet_symbol` (surge_profanity): obfuscated spellings as listed in Surge AI's profanity list (MIT), each with
  the plain word it spells, written here by hand. Forms whose meaning is not an ordinary word are left out.
- `lookalike_swap`, `in_word_punctuation`, `masking` (wp_leet + harm word): one listed harm word each, with
  letters swapped for look-alikes drawn at random from the leet table of Wikipedia's "Leet" article (one or
  two swaps, multi-character ones such as "|<" and "ph" included), split by punctuation, or masked with "*".
- `emoji_harmful` (dea2021_emoji and the other glossaries the database cites): each code emoji in a sentence of
  the harmful context its glossary describes, constructed for this benchmark.
- `emoji_innocent`: real texts labelled safe in /work/shared/data that contain a code emoji (source: the data
  set), plus constructed everyday uses where the data has too few.
- `minced_acronym` (wp_minced_oath, wp_algospeak, lorenz2022): minced oaths, acronyms and coded phrases in daily
  use; words that are coded only in context ("corn", "accountant") are given a sentence of that context.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "data" / "dataset" / "coded_forms_benchmark.json"

SOURCES = {
    "surge_profanity": {
        "title": "Surge AI profanity list (profanity_en.csv), github.com/surge-ai/profanity",
        "authors": "Surge AI", "year": 2021, "licence": "MIT",
    },
    "wp_leet": {"title": "Leet (Wikipedia), table of letter substitutions", "year": 2024},
    "wp_minced_oath": {"title": "Minced oath (Wikipedia), examples in English", "year": 2024},
    "wp_algospeak": {"title": "Algospeak (Wikipedia)", "year": 2024},
    "dea2021_emoji": {"title": "DEA Intelligence Brief: Emoji Drug Code, Decoded", "authors": "US Drug Enforcement Administration", "year": 2021},
    "adl_hate_symbols": {"title": "ADL Hate Symbols Database", "authors": "Anti-Defamation League"},
    "lorenz2022": {"title": "Internet 'algospeak' is changing our language in real time (The Washington Post)", "authors": "Taylor Lorenz", "year": 2022},
    "bbc2022_carrot": {"title": "Anti-vax groups use carrot emojis to hide Facebook posts (BBC News)", "authors": "Marianna Spring", "year": 2022},
    "calhoun2023": {"title": "'They Edited Out Her Nip Nops': Linguistic Innovation as Textual Censorship Avoidance on TikTok", "authors": "Kendra Calhoun, Alexia Fawcett", "year": 2023},
    "nyt2021_suicide_site": {"title": "Where the Despairing Log On, and Learn Ways to Die (The New York Times)", "authors": "Megan Twohey, Gabriel J.X. Dance", "year": 2021},
    "shared_data": {"title": "Texts labelled safe in the project's shared labelled data (see /work/shared/data/README.md for each set's licence)"},
    "pattern_db": {"title": "Plain meanings (replacement words) of the project's pattern database rewrite entries"},
}  # fmt: skip

# Surge AI profanity list: coded form -> the plain word it spells (meaning written by hand).
SURGE = {
    "@55": "ass", "@sshole": "asshole", "0rg@sm": "orgasm", "3jakulating": "ejaculating", "4r5e": "arse",
    "4r5es": "arses", "5h17": "shit", "5h1t": "shit", "5kank": "skank", "a_s_s": "ass", "b！tch": "bitch",
    "b00bz": "boobs", "b0llock": "bollock", "b0llocks": "bollocks", "b1+ch": "bitch", "b17ch": "bitch",
    "b1tch": "bitch", "b1tch1ng": "bitching", "b1tch3s": "bitches", "b1tches": "bitches", "b1tching": "bitching",
    "b1tchy": "bitchy", "bi+ch": "bitch", "c*nt": "cunt", "c*nts": "cunts", "c00n": "coon", "c0ck": "cock",
    "c0cks": "cocks", "c0cksucker": "cocksucker", "ch1nk": "chink", "d!ck": "dick", "d!cks": "dicks",
    "d!ld0": "dildo", "d!ldo": "dildo", "d1ck": "dick", "d1ckhead": "dickhead", "d1cks": "dicks", "d1ldo": "dildo",
    "dild0": "dildo", "dipsh1t": "dipshit", "dlck": "dick", "dlcks": "dicks", "dogsh1t": "dogshit",
    "dumb@ss": "dumbass", "f_u_c_k": "fuck", "f@ck": "fuck", "f@g": "fag", "f@gg0t": "faggot", "f@ggot": "faggot",
    "f@gs": "fags", "f0ck": "fuck", "fag0t": "faggot", "fagg0t": "faggot", "fcuk": "fuck", "fvck": "fuck",
    "fvcker": "fucker", "fvckers": "fuckers", "fvckin": "fucking", "fvcking": "fucking", "fxck": "fuck",
    "fxcked": "fucked", "fxcker": "fucker", "fxcking": "fucking", "fuk1ng": "fucking", "g0ddamn": "goddamn",
    "g0ddamned": "goddamned", "godd@mnit": "goddamnit", "ja!lbait": "jailbait", "ja1lbait": "jailbait",
    "jailba!t": "jailbait", "j3rk": "jerk", "k1k3": "kike", "k1ke": "kike", "m0f0": "mofo",
    "m0therfucker": "motherfucker", "m0thafucker": "motherfucker", "n1gg3r": "nigger", "n1gga": "nigga",
    "n1gger": "nigger", "n1ggers": "niggers", "n1ggas": "niggas", "nigg3r": "nigger", "nigg@": "nigga",
    "ph@ggots": "faggots", "phuck": "fuck", "phucking": "fucking", "phuk": "fuck", "pu$sy": "pussy",
    "pu55y": "pussy", "s-lut": "slut", "s/h/i/t": "shit", "sh!+": "shit", "sh1t": "shit", "sh1te": "shite",
    "sh1tty": "shitty", "sh1ts": "shits", "sh3male": "shemale", "shi+": "shit", "shi+e": "shite", "shi+y": "shitty",
    "sk@nks": "skanks", "sk@nky": "skanky", "tw@t": "twat", "twa+": "twat", "wank3r": "wanker",
    "asshol3": "asshole", "c0ckhead": "cockhead", "cockh3ad": "cockhead", "d1cksucker": "dicksucker",
    "sh1thead": "shithead", "sh1theads": "shitheads", "b0ll0cks": "bollocks", "n1ggah": "niggah",
    "fuk": "fuck", "fukker": "fucker", "fukking": "fucking", "fuq": "fuck", "azz": "ass", "azzhole": "asshole",
    "biatch": "bitch", "beeotch": "bitch", "fck": "fuck", "fcking": "fucking", "fcker": "fucker",
    "sh1tfuck": "shitfuck", "l3itch": "bitch", "masturb8r": "masturbator", "3jakulaten": "ejaculating",
    "fux0r": "fucker", "c0xux0r": "cocksucker",
}  # fmt: skip

# Harm words for the constructed families: the pattern database's plain meanings and ordinary harm words of
# the families (violence, weapons, drugs, self-harm, hate, sexual, harassment).
HARM_WORDS = [
    "kill", "killed", "killing", "murder", "stab", "shoot", "shooting", "suicide", "suicidal", "overdose",
    "bomb", "explode", "explosive", "grenade", "rifle", "terrorist", "terrorism", "massacre", "behead",
    "strangle", "torture", "hang", "die", "dead", "death", "weapon", "gun", "knife", "bullet",
    "meth", "cocaine", "heroin", "fentanyl", "xanax", "percocet", "ketamine", "marijuana", "weed", "ecstasy",
    "oxycodone", "steroids", "amphetamine", "drugs", "dealer",
    "hate", "racist", "nazi", "hitler", "faggot", "nigger", "retard", "kike", "slut", "whore", "bitch",
    "porn", "sex", "sexy", "naked", "nudes", "penis", "vagina", "rape", "raped", "rapist", "molest",
    "pedophile", "horny", "boobs", "masturbate", "orgasm", "idiot", "stupid", "loser", "ugly",
    "pathetic", "disgusting", "fuck", "shit", "cunt", "dick", "pussy", "asshole", "bastard",
    "starve", "anorexia", "cutting", "noose", "scam", "fraud", "isis", "jihad", "genocide",
]  # fmt: skip

# Leet table (Wikipedia, "Leet"): letter -> published substitutions (several per letter; some multi-character).
LEET_TABLE = {
    "a": ["4", "@", "/\\", "^"], "b": ["8", "|3", "ß"], "c": ["(", "¢", "<", "©"], "d": ["|)", "cl"],
    "e": ["3", "€", "£"], "f": ["ph", "|="], "g": ["9", "6"], "h": ["#", "|-|"], "i": ["1", "!", "|", "¡"],
    "k": ["|<"], "l": ["1", "|", "£"], "o": ["0", "()", "ø"], "s": ["5", "$", "§"], "t": ["7", "+"],
    "u": ["v", "|_|", "µ"], "x": ["><"], "y": ["¥"], "z": ["2"], "n": ["|\\|"], "m": ["|\\/|"], "r": ["|2"],
}  # fmt: skip
PUNCT = [".", "-", "_", "*", "·"]

# Emoji codes with a harmful-context sentence built from the glossary's description, and constructed everyday
# uses. (emoji, meaning, source, [harmful sentences], [innocent sentences])
EMOJI = [
    ("🍑", "butt", "lorenz2022", ["send me pics of that 🍑 tonight", "that 🍑 is so thick i want to smash"],
     ["peach cobbler season 🍑 at the farm market", "georgia peaches 🍑 are the best fruit"]),
    ("🍆", "penis", "lorenz2022", ["my 🍆 is hard for you, send nudes", "want to suck my 🍆 tonight?"],
     ["grilled 🍆 parmesan recipe for dinner", "the garden gave us three 🍆 this year"]),
    ("💦", "ejaculation", "lorenz2022", ["so horny rn 💦 dm me", "she gets so wet 💦 onlyfans link in bio"],
     ["water balloon fight 💦 at the park", "hot day, sweating 💦 after the run"]),
    ("🌽", "porn", "wp_algospeak", ["watching 🌽 videos all night", "link to free 🌽 site in bio"],
     ["fresh 🌽 on the cob at the fair", "corn maze 🌽 with the kids today"]),
    ("🐱", "vagina", "lorenz2022", ["wanna eat my 🐱 tonight, so wet", "lick my 🐱 daddy"],
     ["my 🐱 knocked the mug off the table", "adopted a 🐱 from the shelter"]),
    ("🔫", "gun", "adl_hate_symbols", ["the opps gonna get the 🔫 tonight", "pull up and shoot 🔫 them all"],
     ["summer fun with the kids and a water 🔫", "new laser tag 🔫 set for christmas"]),
    ("🔪", "stab", "wp_algospeak", ["watch your back 🔪 i will stab you", "gonna cut you 🔪 bleed"],
     ["sharpened my kitchen 🔪 before dinner prep", "chef 🔪 skills class this weekend"]),
    ("💣", "bomb", "wp_algospeak", ["we will plant a 💣 at the school", "blow up the building 💣 detonate"],
     ["that new album is the 💣", "this burger is da 💣"]),
    ("❄", "cocaine", "dea2021_emoji", ["got ❄ for sale, dm the plug, grams available", "❄ lines tonight, hmu for price"],
     ["first ❄ of the winter today", "❄ day, schools closed"]),
    ("🔌", "drug dealer", "dea2021_emoji", ["new 🔌 got gas and carts, hmu", "need a 🔌 for pills dm me"],
     ["phone charger 🔌 broke again", "unplug 🔌 before you leave"]),
    ("🍃", "marijuana", "dea2021_emoji", ["rolling a blunt 🍃 with the gas", "🍃 zips available, dm the plug"],
     ["autumn 🍃 walk in the park", "fresh mint 🍃 for the tea"]),
    ("💊", "pills", "dea2021_emoji", ["pressed 💊 percs available dm me", "plug got 💊 xans and blues, hmu"],
     ["take your 💊 after breakfast, says the doctor", "vitamin 💊 every morning"]),
    ("🍄", "magic mushrooms", "dea2021_emoji", ["🍄 eighth for the trip, dm me", "microdose 🍄 caps available"],
     ["mario 🍄 power up", "mushroom 🍄 risotto for lunch"]),
    ("💎", "meth", "dea2021_emoji", ["clear 💎 shards, smoke it, dm for price", "got that 💎 tina, hmu points"],
     ["diamond 💎 ring for our anniversary", "minecraft 💎 found at last"]),
    ("🐉", "heroin", "dea2021_emoji", ["chasing the 🐉 on foil", "plug has 🐉 bags, dm"],
     ["house of the 🐉 finale tonight", "chinese new year 🐉 parade"]),
    ("🍇", "codeine cough syrup drink", "dea2021_emoji", ["sipping 🍇 lean in my cup with sprite", "pour the 🍇 wock, pint ready"],
     ["fresh 🍇 from the vineyard", "🍇 juice for the kids"]),
    ("🥛", "white supremacy", "adl_hate_symbols", ["🥛 pure white blood, 14 88", "white 🥛 aryan race forever"],
     ["🥛 and cookies before bed", "oat 🥛 latte please"]),
    ("👌", "white power", "adl_hate_symbols", ["white 👌 power, 14 words", "aryan 👌 wp forever"],
     ["dinner was 👌", "all good 👌 see you tomorrow"]),
    ("🐒", "racist monkey insult", "adl_hate_symbols", ["black players missed the penalty 🐒 go back to the jungle", "🐒 ape go back to africa"],
     ["zoo trip, saw the 🐒 swinging", "cheeky 🐒 stole my banana"]),
    ("🥕", "vaccine", "bbc2022_carrot", ["took the 🥕 and died suddenly of myocarditis", "🥕 injuries covered up, pfizer"],
     ["🥕 cake recipe for easter", "feed the horse a 🥕"]),
    ("💉", "vaccine", "bbc2022_carrot", ["💉 is a bioweapon, depopulation", "the 💉 killing people, clots and turbo cancer"],
     ["blood test 💉 this morning", "flu shot 💉 done, arm sore"]),
    ("🍫", "xanax", "dea2021_emoji", ["🍫 bars available, 2mg pressed, dm", "plug got 🍫 xans, hmu"],
     ["dark 🍫 is my weakness", "hot 🍫 by the fire"]),
    ("🚀", "high potency drugs", "dea2021_emoji", ["🚀 pressed pills, potent gas, dm", "new strain 🚀 potency crazy, plug menu"],
     ["spacex 🚀 launch today", "stocks to the moon 🚀"]),
    ("🐓", "penis", "lorenz2022", ["suck my big 🐓", "ride my hard 🐓"],
     ["the 🐓 woke me at dawn", "farm visit, fed the 🐓 and hens"]),
    ("💨", "high quality marijuana", "dea2021_emoji", ["smoking 💨 gas, zips available", "this strain is 💨 loud, dm the plug"],
     ["gone in a flash 💨", "windy day 💨 at the beach"]),
    ("🍌", "percocet", "dea2021_emoji", ["🍌 percs pressed m30, dm", "plug got 🍌 blues, hmu price"],
     ["🍌 bread recipe", "monkey ate the 🍌"]),
    ("🧊", "meth", "dea2021_emoji", ["🧊 shards, smoke, dm for price", "got 🧊 tina, points available"],
     ["add 🧊 to my drink please", "🧊 cold water after the gym"]),
    ("🍁", "marijuana", "dea2021_emoji", ["🍁 blunt rolling tonight, gas zips", "dispo 🍁 strains menu, dm"],
     ["canada day 🍁 celebrations", "autumn 🍁 colours are gorgeous"]),
]  # fmt: skip

MINCED = [
    # (text, meaning, source)
    ("what the heck", "hell", "wp_minced_oath"), ("oh heck no", "hell", "wp_minced_oath"),
    ("darn it all", "damn", "wp_minced_oath"), ("dang it", "damn", "wp_minced_oath"),
    ("frick off", "fuck", "wp_minced_oath"), ("what the frick", "fuck", "wp_minced_oath"),
    ("fricking idiot", "fucking", "wp_minced_oath"), ("freaking idiot", "fucking", "wp_minced_oath"),
    ("frigging hell", "fucking", "wp_minced_oath"), ("effing moron", "fucking", "wp_minced_oath"),
    ("eff off", "fuck", "wp_minced_oath"), ("eff you", "fuck", "wp_minced_oath"),
    ("oh shoot", "shit", "wp_minced_oath"), ("shucks", "shit", "wp_minced_oath"),
    ("oh fudge", "fuck", "wp_minced_oath"), ("oh my gosh", "god", "wp_minced_oath"),
    ("golly", "god", "wp_minced_oath"), ("jeez", "jesus", "wp_minced_oath"), ("cripes", "christ", "wp_minced_oath"),
    ("crikey", "christ", "wp_minced_oath"), ("the f word", "fuck", "wp_minced_oath"),
    ("he said the f-word", "fuck", "wp_minced_oath"), ("the s word", "shit", "wp_minced_oath"),
    ("she used the n word", "nigger", "wp_minced_oath"), ("the c word", "cunt", "wp_minced_oath"),
    ("the b word", "bitch", "wp_minced_oath"), ("son of a gun", "son of a bitch", "wp_minced_oath"),
    ("that sob stole my car", "son of a bitch", "wp_minced_oath"), ("mofo", "motherfucker", "wp_minced_oath"),
    ("this mf really said that", "motherfucker", "wp_minced_oath"), ("what the eff", "fuck", "wp_minced_oath"),
    ("holy crap", "shit", "wp_minced_oath"), ("bullcrap", "bullshit", "wp_minced_oath"),
    ("that is total bs", "bullshit", "wp_minced_oath"), ("dagnabbit", "damn", "wp_minced_oath"), ("gosh darn", "god damn", "wp_minced_oath"),
    ("goldarn", "god damn", "wp_minced_oath"), ("gadzooks", "god", "wp_minced_oath"), ("zounds", "god", "wp_minced_oath"),
    ("kys", "kill yourself", "wp_algospeak"), ("just kys", "kill yourself", "wp_algospeak"),
    ("kms", "kill myself", "wp_algospeak"), ("stfu", "shut the fuck up", "wp_algospeak"),
    ("gtfo", "get the fuck out", "wp_algospeak"), ("wtf", "what the fuck", "wp_algospeak"),
    ("fml", "fuck my life", "wp_algospeak"), ("ffs", "for fuck's sake", "wp_algospeak"),
    ("lmfao", "laughing my fucking ass off", "wp_algospeak"), ("gfy", "go fuck yourself", "wp_algospeak"),
    ("foad", "fuck off and die", "wp_algospeak"), ("stfd", "sit the fuck down", "wp_algospeak"),
    ("you absolute pos", "piece of shit", "wp_algospeak"), ("smd", "suck my dick", "wp_algospeak"),
    ("dtf", "down to fuck", "wp_algospeak"), ("af", "as fuck", "wp_algospeak"),
    ("kysa", "kill yourself", "wp_algospeak"), ("unalive yourself", "kill", "lorenz2022"),
    ("sewer slide", "suicide", "lorenz2022"), ("seggs", "sex", "lorenz2022"), ("le dollar bean", "lesbian", "lorenz2022"),
    ("free corn videos, link in bio", "porn", "lorenz2022"), ("she is an accountant on onlyfans, link in bio", "sex worker", "lorenz2022"), ("he did mascara to me without my consent", "sexual assault", "lorenz2022"),
    ("yt people", "white", "wp_algospeak"), ("during the panini everything was closed", "pandemic", "lorenz2022"), ("spicy eggplant", "vibrator", "lorenz2022"),
    ("he graped her at the party", "rape", "wp_algospeak"), ("sa'd", "sexually assaulted", "wp_algospeak"), ("surviving s/a", "sexual assault", "wp_algospeak"),
    ("forever nap", "suicide", "wp_algospeak"), ("kermit sewer slide", "suicide", "wp_algospeak"),
    ("self delete", "suicide", "wp_algospeak"), ("self-unalive", "suicide", "wp_algospeak"),
    ("ctb", "suicide", "nyt2021_suicide_site"), ("catch the bus", "suicide", "nyt2021_suicide_site"),
    ("pew pew", "gun", "wp_algospeak"), ("unalived", "killed", "lorenz2022"), ("h8", "hate", "wp_leet"),
    ("n00dz", "nudes", "wp_algospeak"), ("pr0n", "porn", "wp_leet"), ("pron", "porn", "wp_leet"),
    ("nip nops", "nipples", "calhoun2023"), ("s3x", "sex", "wp_leet"), ("secks", "sex", "wp_algospeak"),
]  # fmt: skip


def _swap(word: str, rng: random.Random) -> str:
    positions = [i for i, c in enumerate(word) if c in LEET_TABLE]
    if not positions:
        return word
    chosen = sorted(rng.sample(positions, min(len(positions), rng.choice((1, 2)))))
    out, last = [], 0
    for i in chosen:
        out.append(word[last:i])
        out.append(rng.choice(LEET_TABLE[word[i]]))
        last = i + 1
    out.append(word[last:])
    return "".join(out)


def _punctuate(word: str, rng: random.Random) -> str:
    mark = rng.choice(PUNCT)
    if rng.random() < 0.5 or len(word) < 5:
        return mark.join(word)  # every letter: "k-i-l-l"
    cut = rng.randrange(2, len(word) - 1)
    return word[:cut] + mark + word[cut:]  # once: "sui.cide"


def _mask(word: str, rng: random.Random) -> str:
    vowels = [i for i, c in enumerate(word) if c in "aeiou" and 0 < i]
    if not vowels:
        vowels = [i for i in range(1, len(word) - 1)]
    i = rng.choice(vowels)
    return word[:i] + "*" + word[i + 1 :]


def _shared_innocent(emoji: set[str]) -> list[dict]:
    """Real texts labelled safe in the shared data that contain a code emoji."""
    try:
        from data.readers import load_shared_sources
    except ImportError:
        return []
    df = load_shared_sources()
    out = []
    for text, label, source in zip(df["text"].to_list(), df["label"].to_list(), df["source"].to_list()):
        if label != "safe" or len(text) > 400:
            continue
        present = [e for e in emoji if e in text]
        if present:
            out.append({"text": text, "emoji": present[0], "source": f"shared_data:{source}"})
    return out


def build(seed: int = 16) -> dict:
    rng = random.Random(seed)
    items: list[dict] = []
    for form, meaning in SURGE.items():
        items.append({"family": "leet_symbol", "text": form, "form": form, "meaning": meaning, "source": "surge_profanity"})
    for word in HARM_WORDS:
        items.append({"family": "lookalike_swap", "text": (f := _swap(word, rng)), "form": f, "meaning": word,
                      "source": "wp_leet"})  # fmt: skip
        items.append({"family": "in_word_punctuation", "text": (f := _punctuate(word, rng)), "form": f,
                      "meaning": word, "source": "wp_leet"})  # fmt: skip
        items.append({"family": "masking", "text": (f := _mask(word, rng)), "form": f, "meaning": word, "source": "wp_leet"})
    meaning_of = {e: m for e, m, *_ in EMOJI}
    for emoji, meaning, source, harmful, innocent in EMOJI:
        for text in harmful:
            items.append({"family": "emoji_harmful", "text": text, "form": emoji, "meaning": meaning, "source": source})
        for text in innocent:
            items.append({"family": "emoji_innocent", "text": text, "form": emoji, "meaning": meaning,
                          "source": "constructed (everyday use)"})  # fmt: skip
    real = _shared_innocent(set(meaning_of))
    rng.shuffle(real)
    per_emoji: dict[str, int] = {}
    for row in real:
        if per_emoji.get(row["emoji"], 0) >= 8:
            continue
        per_emoji[row["emoji"]] = per_emoji.get(row["emoji"], 0) + 1
        items.append({"family": "emoji_innocent", "text": row["text"], "form": row["emoji"],
                      "meaning": meaning_of[row["emoji"]], "source": row["source"]})  # fmt: skip
    for text, meaning, source in MINCED:
        items.append({"family": "minced_acronym", "text": text, "form": text, "meaning": meaning, "source": source})
    seen: set[tuple[str, str]] = set()
    unique = []
    for item in items:
        key = (item["family"], item["text"])
        if key not in seen:
            seen.add(key)
            unique.append(item)
    for i, item in enumerate(unique):
        item["id"] = i
    return {
        "description": "Coded forms and their meanings for measuring Stage 1 (issue 16). Built by "
        "bench/build_coded_benchmark.py; measured by bench/coded_forms.py. Not written from the decoder's tests.",
        "sources": SOURCES,
        "items": unique,
    }


def main() -> int:
    document = build()
    OUT.write_text(json.dumps(document, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    by_family: dict[str, int] = {}
    for item in document["items"]:
        by_family[item["family"]] = by_family.get(item["family"], 0) + 1
    print(f"wrote {OUT}: {len(document['items'])} items", by_family)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
