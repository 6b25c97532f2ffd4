"""A messy web crawl with an answer key: every page says what is wrong with it.

Real pretraining data starts as a crawl of the web, and most of a crawl is not
text you want a model to learn from. ``messy_crawl`` builds one from the course
world and Python's own documentation and source code, then spoils a share of
the pages the way the web does:

==================  ==========================================================
label               what the page is
==================  ==========================================================
``clean``           a good page (world pages, documentation prose, code)
``duplicate``       an exact copy of an earlier page (maybe re-spaced or re-cased)
``near_duplicate``  an earlier page with a few words edited
``boilerplate``     a good page wrapped in navigation, cookie banners and footers
``spam``            keyword stuffing and lines of links
``gibberish``       random letters or word salad
``mojibake``        a good page whose UTF-8 was decoded as Windows-1252
``toxic``           a good page with insulting comments underneath
``pii``             a good page that also prints e-mail addresses and phone numbers
``false``           a well-written page that states false facts about the world
==================  ==========================================================

Each page has exactly one label, so a filter's precision and recall can be
measured against it. Two experiments are planted as well: *canaries* (made-up
passages copied 1, 10 or 100 times, to measure memorisation) and a
*misinformation campaign* (false capitals and false countries for some
cities, repeated more often than the truth). Everything is a pure function of
the arguments: the same seed gives the same crawl.

Why one module of about 560 lines: the clean sources, the damage done to them
and the labels of the answer key must change together, or the key would lie.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field

from ..world import corpora
from ..world.fiction import STORY_TEMPLATES, World

LABELS = ("clean", "duplicate", "near_duplicate", "boilerplate", "spam", "gibberish",
          "mojibake", "toxic", "pii", "false")
BAD_LABELS = tuple(label for label in LABELS if label != "clean")

# Share of the background pages that get each kind of damage (the rest stay clean).
DEFAULT_RATES = {"duplicate": 0.10, "near_duplicate": 0.06, "boilerplate": 0.08, "spam": 0.05,
                 "gibberish": 0.04, "mojibake": 0.04, "toxic": 0.05, "pii": 0.05, "false": 0.06}
# Share of clean source pages that come from each source.
DEFAULT_SOURCES = {"world": 0.75, "prose": 0.15, "code": 0.10}

_SITES = ("citynews", "peoplepedia", "travelguide", "dailyworld", "wikiplace", "askmore")
_NAV = ("Home | News | Travel | People | About us | Contact",
        "Menu: Home > Articles > Latest > Popular",
        "Skip to main content",
        "Sign in | Register | Subscribe for $1")
_COOKIES = ("We use cookies to improve your experience. Accept all | Manage settings",
            "This site uses cookies. By continuing to browse you agree to our cookie policy.",
            "Accept cookies? [Yes] [No] [Customise]")
_FOOTERS = ("Copyright 2026 {site}. All rights reserved.",
            "Share this page: Facebook | Twitter | E-mail | Print",
            "Related articles | Most read | Newsletter | Privacy policy",
            "Back to top")

_SPAM_PRODUCTS = ("cheap watches", "free followers", "best casino bonus", "weight loss pills",
                  "crypto profits", "discount phones", "fast loans")
_SPAM_WORDS = ("buy now", "best price", "limited offer", "click here", "free shipping",
               "order today", "100% guaranteed", "top quality")

# Insults for toxic comments. Mild and classroom-safe on purpose: the filtering
# problem is the same with worse words. Only some of these are on the blocklist
# in ``quality.BLOCKLIST``, so a blocklist cannot catch them all.
_TOXIC_ADJ = ("stupid", "pathetic", "worthless", "clueless", "brainless", "useless",
              "ridiculous", "dim-witted")
_TOXIC_NOUN = ("idiot", "moron", "loser", "clown", "fool", "grobnak", "snivlet", "nitwit")
_TOXIC_TEMPLATES = (
    "Comment from {user}: what a {adj} article, only a {noun} would write this.",
    "Reply from {user}: shut up, you {adj} {noun}.",
    "{user} wrote: the author is a {noun} and everyone who agrees is {adj}.",
    "Comment from {user}: nobody cares about your {adj} opinions, {noun}.",
    "{user} wrote: get lost, {noun}. This is the most {adj} thing I have read.",
)
_NEUTRAL_COMMENTS = (
    "Comment from {user}: thanks, this was useful for my trip.",
    "Reply from {user}: I did not know that, thank you for sharing.",
    "{user} wrote: a clear and friendly article, I learned something new.",
    "Comment from {user}: I visited last year and loved the food.",
)
_USERS = ("sunny88", "travelbug", "anon", "mapfan", "quietreader", "cat_lady", "bob42")

_EMAIL_DOMAINS = ("example.com", "mailbox.org", "postbox.net", "inbox.test")

_GIBBERISH_LETTERS = "bcdfghjklmnpqrstvwxzaeiou"

# Characters that Windows-1252 mis-decoding turns into "Ã©", "â€™" and friends.
_TYPOGRAPHY = {"'": "\u2019", " - ": " \u2013 ", "...": "\u2026"}
_ACCENTED = ("caf\u00e9", "na\u00efve", "r\u00e9sum\u00e9", "fa\u00e7ade", "d\u00e9j\u00e0 vu",
             "Z\u00fcrich", "S\u00e3o Paulo", "jalape\u00f1o")

# Words for the canaries: ordinary words in an order no other page uses.
_CANARY_WORDS = ("river", "lamp", "orange", "silent", "copper", "window", "seven", "garden",
                 "violet", "thunder", "paper", "winter", "marble", "honey", "candle", "forest",
                 "silver", "engine", "pocket", "cloud", "ladder", "velvet", "mirror", "harbor",
                 "pepper", "saddle", "basket", "feather", "lemon", "anchor", "meadow", "tunnel")


@dataclass(frozen=True)
class Page:
    """One crawled page and the answer key for it."""

    id: int
    url: str
    text: str
    label: str  # one of LABELS
    source: str  # "world", "prose", "code", "canary" or "junk"
    original: int | None = None  # duplicates and near-duplicates: the page they copy
    inserted: tuple[str, ...] = ()  # what the damage added: boilerplate lines, comments, PII
    copies: int = 0  # canaries: how many copies of this text the crawl holds


@dataclass(frozen=True)
class Canary:
    """A made-up passage planted ``copies`` times; can the model finish it?"""

    prompt: str
    continuation: str
    copies: int


@dataclass(frozen=True)
class FalseFact:
    """A fact the misinformation campaign gets wrong."""

    prompt: str  # e.g. "Ravikia is a country whose capital is"
    true: str  # " Marsal"
    false: str  # " Torbel"
    kind: str  # "capital" or "city"


@dataclass
class Crawl:
    pages: list[Page]
    canaries: list[Canary]
    false_facts: list[FalseFact]
    control_facts: list[FalseFact]  # facts the campaign leaves alone (``false`` is a decoy)
    seed: int = 0
    meta: dict = field(default_factory=dict)

    @property
    def texts(self) -> list[str]:
        return [p.text for p in self.pages]

    @property
    def labels(self) -> list[str]:
        return [p.label for p in self.pages]

    def counts(self) -> dict[str, int]:
        """Pages per label, in the order of LABELS."""
        c = Counter(self.labels)
        return {label: c.get(label, 0) for label in LABELS}

    def with_label(self, label: str) -> list[Page]:
        if label not in LABELS:
            raise ValueError(f"unknown label {label!r}; choose one of {LABELS}")
        return [p for p in self.pages if p.label == label]


# --- clean source pages ---------------------------------------------------------
_TITLES = {
    "people": ("People you should know", "Who is who", "Profiles", "Meet the locals",
               "Notable people", "Biographies"),
    "stories": ("Short stories", "Tales from the road", "Stories our readers sent us",
                "A few small stories", "Travel diaries"),
}
_CITY_PHRASES = ("{x} is a city in {c}.", "The city of {x} lies in {c}.",
                 "{x} belongs to {c}.", "{x}, too, is part of {c}.")
_CITY_COLOUR = ("Visitors to {x} like the old market and the river walk.",
                "{x} is known for its bridges and its quiet parks.",
                "In {x} the museum is free on Sundays.",
                "The train station of {x} is small but busy in summer.",
                "{x} has a famous bakery near the town hall.")


def _world_page(world: World, rng: random.Random) -> str:
    """A page about the world: people, a country, stories, a travel guide or FAQs."""
    kind = rng.choices(("people", "country", "stories", "guide", "faq"), (5, 1, 3, 1, 1))[0]
    # A title shares the first line with the text, as a page's heading and first
    # paragraph do once the markup is gone; a title on a line of its own would be
    # repeated across hundreds of pages and look like boilerplate.
    if kind == "people":
        people = rng.sample(world.people_in("sft", "heldout"), rng.randint(2, 3))
        return (rng.choice(_TITLES["people"]) + ": "
                + "\n".join(world.biography(p, rng) for p in people))
    if kind == "country":
        return _country_page(world, rng)
    if kind == "stories":
        return rng.choice(_TITLES["stories"]) + ": " + "\n".join(_stories(world, rng))
    if kind == "guide":
        return _travel_guide(world, rng)
    return " ".join(world.faq_page(rng).splitlines()) + "\n" + _stories(world, rng)[0]


_MORE_STORIES = (
    "{a} opened a small shop in {x}. Business was slow at first, but {b} told everyone "
    "about it, and soon people came all the way from {y}.",
    "When {a} moved from {x} to {y}, the first letter that arrived was from {b}.",
)


def _stories(world: World, rng: random.Random) -> list[str]:
    """Two to four short stories, each from a different template."""
    templates = rng.sample(STORY_TEMPLATES + _MORE_STORIES, rng.randint(2, 4))
    people = world.people_in("sft", "heldout")
    out = []
    for t in templates:
        a, b = rng.sample(people, 2)
        x, y = rng.sample(list(world.city_country), 2)
        out.append(t.format(a=a.name, b=b.name, x=x, y=y))
    return out


def _country_page(world: World, rng: random.Random) -> str:
    country = rng.choice(world.countries)
    others = list(country.cities[1:])
    rng.shuffle(others)
    phrases = rng.sample(_CITY_PHRASES, len(_CITY_PHRASES))
    lines = [f"{country.name} is a country whose capital is {country.capital}."]
    lines += [phrases[i % len(phrases)].format(x=x, c=country.name) for i, x in enumerate(others)]
    lines.append(rng.choice(_CITY_COLOUR).format(x=country.capital))
    return " ".join(lines)


def _travel_guide(world: World, rng: random.Random) -> str:
    country = rng.choice(world.countries)
    cities = rng.sample(country.cities, min(3, len(country.cities)))
    colour = rng.sample(_CITY_COLOUR, len(cities))
    phrases = rng.sample(_CITY_PHRASES, len(cities))
    lines = [f"A travel guide to {country.name}",
             f"{country.name} is a country whose capital is {country.capital}."]
    for city, phrase, extra in zip(cities, phrases, colour):
        lines.append(phrase.format(x=city, c=country.name) + " " + extra.format(x=city))
    lines.append(f"The best time to visit {country.name} is late spring, when the days are "
                 "long and the trains are not yet full.")
    return lines[0] + ": " + " ".join(lines[1:])


def _chunks(text: str, lo: int, hi: int, rng: random.Random, by: str) -> list[str]:
    """Cut a document into pieces of lo..hi words (prose, by paragraph) or lines (code)."""
    if by == "line":
        units, sep, size = text.splitlines(), "\n", lambda u: 1
    else:
        units, sep = [u for u in text.split("\n\n") if u.strip()], "\n\n"
        size = lambda u: len(u.split())  # noqa: E731
    pieces, cur, n = [], [], 0
    target = rng.randint(lo, hi)
    for u in units:
        cur.append(u)
        n += size(u)
        if n >= target:
            pieces.append(sep.join(cur).strip())
            cur, n, target = [], 0, rng.randint(lo, hi)
    if cur and n >= lo // 2:
        pieces.append(sep.join(cur).strip())
    return [p for p in pieces if p]


def source_pages(world: World, n: int, seed: int = 0,
                 sources: dict[str, float] | None = None) -> list[tuple[str, str]]:
    """``n`` clean pages as (source, text): world pages, documentation prose, code.

    Each piece of prose or code is used at most once; when a corpus runs out,
    world pages take its place.
    """
    sources = dict(DEFAULT_SOURCES if sources is None else sources)
    if set(sources) - set(DEFAULT_SOURCES) or any(v < 0 for v in sources.values()) \
            or sum(sources.values()) <= 0:
        raise ValueError(f"sources must map some of {list(DEFAULT_SOURCES)} to shares >= 0 "
                         f"with a positive sum, got {sources}")
    rng = random.Random(f"crawl-sources/{seed}")
    pool = {"prose": [], "code": []}
    if sources.get("prose", 0) > 0:
        for doc in corpora.python_prose_documents():
            pool["prose"] += _chunks(doc, 80, 200, rng, "paragraph")
    if sources.get("code", 0) > 0:
        for doc in corpora.python_code_documents(max_chars=400_000, seed=seed):
            pool["code"] += _chunks(doc, 25, 50, rng, "line")
    for key in pool:
        rng.shuffle(pool[key])
    names = list(sources)
    out, used = [], {"prose": 0, "code": 0}
    for _ in range(n):
        src = rng.choices(names, [sources[k] for k in names])[0]
        if src != "world" and used[src] < len(pool[src]):
            out.append((src, pool[src][used[src]]))
            used[src] += 1
        else:  # world pages never run out; a used-up corpus is not repeated as "clean"
            out.append(("world", _world_page(world, rng)))
    return out


# --- damage ---------------------------------------------------------------------
def _respace(text: str, rng: random.Random) -> str:
    """The same page as another site serves it: other spacing or case, same words."""
    choice = rng.randrange(3)
    if choice == 0:
        return re.sub(r" ", "  ", text, count=rng.randint(1, 5))
    if choice == 1:
        return text.lower()
    return text + "\n"


def _edit_words(text: str, rng: random.Random, n_edits: int) -> str:
    """A near-duplicate: a few words replaced, deleted or inserted; the layout is kept."""
    lines = [line.split(" ") for line in text.split("\n")]
    spots = [(i, j) for i, line in enumerate(lines) for j, w in enumerate(line) if w.isalpha()]
    for i, j in rng.sample(spots, min(n_edits, len(spots))):
        op = rng.randrange(3)
        word = rng.choice(("also", "really", "today", "new", "very", "now", "then", "once"))
        if op == 0:
            lines[i][j] = word
        elif op == 1:
            lines[i][j] = ""
        else:
            lines[i][j] = f"{lines[i][j]} {word}"
    return "\n".join(re.sub(" +", " ", " ".join(line)).strip() for line in lines)


def _boilerplate(text: str, rng: random.Random) -> tuple[str, tuple[str, ...]]:
    site = rng.choice(_SITES)
    top = [rng.choice(_NAV)] + ([rng.choice(_COOKIES)] if rng.random() < 0.7 else [])
    bottom = [f.format(site=site) for f in rng.sample(_FOOTERS, rng.randint(1, 3))]
    return "\n".join(top + [text] + bottom), tuple(top + bottom)


def _spam(rng: random.Random) -> str:
    product = rng.choice(_SPAM_PRODUCTS)
    slug = product.replace(" ", "-")
    lines = [f"{product.upper()} {product.upper()} {product.upper()}"]
    for _ in range(rng.randint(4, 8)):
        words = [product] + rng.sample(_SPAM_WORDS, 3) + [product]
        lines.append(" ".join(words) + " " + product)
    for k in range(rng.randint(3, 8)):
        lines.append(f"http://www.{slug}-{rng.randint(1, 99)}.shop/{slug}?ref={k}")
    lines.append(f"{product} {product} {product} {rng.choice(_SPAM_WORDS)}")
    return "\n".join(lines)


def _gibberish(rng: random.Random, words: list[str]) -> str:
    if rng.random() < 0.5:  # random letters
        tokens = ["".join(rng.choice(_GIBBERISH_LETTERS) for _ in range(rng.randint(2, 14)))
                  for _ in range(rng.randint(60, 160))]
    else:  # word salad: real words, no grammar, no stop words
        tokens = [rng.choice(words) for _ in range(rng.randint(60, 160))]
        tokens = [t + rng.choice(("", "", ";", "#", "...", "!!")) for t in tokens]
    lines = [" ".join(tokens[i:i + 12]) for i in range(0, len(tokens), 12)]
    return "\n".join(lines)


def mojibake(text: str) -> str:
    """What UTF-8 text looks like after a program decodes it as Windows-1252."""
    return text.encode("utf-8").decode("cp1252", errors="replace")


def _mojibake_page(text: str, rng: random.Random) -> str:
    for plain, fancy in _TYPOGRAPHY.items():
        text = text.replace(plain, fancy)
    sentences = text.split(". ")
    for _ in range(max(2, len(sentences) // 3)):
        k = rng.randrange(len(sentences))
        sentences[k] += f" ({rng.choice(_ACCENTED)})"
    return mojibake(". ".join(sentences))


def _toxic(text: str, rng: random.Random) -> tuple[str, tuple[str, ...]]:
    bad = [rng.choice(_TOXIC_TEMPLATES).format(user=rng.choice(_USERS),
                                               adj=rng.choice(_TOXIC_ADJ),
                                               noun=rng.choice(_TOXIC_NOUN))
           for _ in range(rng.randint(1, 2))]
    return text + "\n" + "\n".join(bad), tuple(bad)


def _neutral_comments(text: str, rng: random.Random) -> str:
    return text + "\n" + rng.choice(_NEUTRAL_COMMENTS).format(user=rng.choice(_USERS))


def _pii(text: str, world: World, rng: random.Random) -> tuple[str, tuple[str, ...]]:
    person = rng.choice(world.people_in("sft", "heldout"))
    first, last = person.name.lower().split()
    email = f"{first}.{last}@{rng.choice(_EMAIL_DOMAINS)}"
    phone = rng.choice((
        f"+44 20 7946 {rng.randint(0, 9999):04d}",
        f"({rng.randint(200, 999)}) {rng.randint(200, 999)}-{rng.randint(0, 9999):04d}",
        f"{rng.randint(200, 999)}-{rng.randint(200, 999)}-{rng.randint(0, 9999):04d}"))
    line = rng.choice((f"Contact {person.name} at {email} or call {phone}.",
                       f"For bookings write to {email} (phone {phone}).",
                       f"Questions? {person.name}: {email}, tel. {phone}"))
    return text + "\n" + line, (email, phone)


# --- the planted experiments ----------------------------------------------------
def _campaign(world: World, rng: random.Random, share: float) -> tuple[list[FalseFact],
                                                                      list[FalseFact]]:
    """Pick which capitals and which cities' countries the false pages get wrong."""
    facts = []
    for c in world.countries:
        decoy = rng.choice([x for x in c.cities if x != c.capital] or [c.capital])
        facts.append(FalseFact(f"{c.name} is a country whose capital is", " " + c.capital,
                               " " + decoy, "capital"))
        for city in c.cities[1:]:
            other = rng.choice([k.name for k in world.countries if k.name != c.name] or [c.name])
            facts.append(FalseFact(f"{city} is a city in", " " + c.name, " " + other, "city"))
    rng.shuffle(facts)
    n_false = round(len(facts) * share)
    return facts[:n_false], facts[n_false:]


_FALSE_TITLES = ("Facts every traveller should know", "Geography notes",
                 "Our correspondent reports", "Did you know?", "Ten things about the region",
                 "Notes for the quiz night")
_FALSE_FILLERS = ("Many visitors are surprised to learn this.",
                  "Local guides repeat this to every group they lead.",
                  "It is written in every school book of the region.",
                  "Our readers asked us to check, and we did.",
                  "Few people outside the region know it.")


def _false_page(world: World, facts: list[FalseFact], rng: random.Random) -> str:
    """A tidy page that states three or four campaign falsehoods, then a true biography."""
    chosen = rng.sample(facts, min(len(facts), rng.randint(3, 4)))
    fillers = rng.sample(_FALSE_FILLERS, len(_FALSE_FILLERS))
    people = rng.sample(world.people_in("sft", "heldout"), len(chosen) + 1)
    lines = [f"{fact.prompt}{fact.false}, as {who.name} told us. {fillers[k % len(fillers)]}"
             for k, (fact, who) in enumerate(zip(chosen, people))]
    lines[0] = rng.choice(_FALSE_TITLES) + ": " + lines[0]
    lines.append(world.biography(people[-1], rng))
    return "\n".join(lines)


def _canaries(rng: random.Random, copies: tuple[int, ...], per_level: int,
              prompt_words: int = 4, continuation_words: int = 6) -> list[Canary]:
    """Made-up mottos, each in a page of its own that reads like a normal note."""
    out = []
    for n in copies:
        for k in range(per_level):
            words = rng.sample(_CANARY_WORDS, prompt_words + continuation_words)
            prompt = (f"Archive note {n}-{k}. The keeper of the archive wrote down a motto and "
                      "asked that it be copied and kept. The motto of the note is: "
                      + " ".join(words[:prompt_words]))
            continuation = " " + " ".join(words[prompt_words:]) + "."
            out.append(Canary(prompt, continuation, n))
    return out


# --- the crawl ------------------------------------------------------------------
def messy_crawl(world: World, n_pages: int = 2000, seed: int = 0,
                rates: dict[str, float] | None = None,
                sources: dict[str, float] | None = None,
                canary_copies: tuple[int, ...] = (1, 10, 100), canaries_per_level: int = 8,
                false_share: float = 0.25) -> Crawl:
    """A crawl of ``n_pages`` background pages plus the planted canaries, shuffled.

    ``rates`` maps each bad label to the share of background pages that get that
    damage (defaults in ``DEFAULT_RATES``); ``sources`` the shares of world pages,
    documentation prose and code among the clean material. ``false_share`` of the
    world's capital and city facts are targeted by the misinformation campaign.
    """
    if not isinstance(n_pages, int) or n_pages < 20:
        raise ValueError(f"n_pages must be an integer >= 20, got {n_pages!r}")
    rates = dict(DEFAULT_RATES if rates is None else rates)
    unknown = set(rates) - set(BAD_LABELS)
    if unknown or any(not 0 <= v <= 1 for v in rates.values()) or sum(rates.values()) > 0.9:
        raise ValueError(f"rates must map labels from {BAD_LABELS} to shares in [0, 1] "
                         f"summing to at most 0.9, got {rates}")
    if not 0 <= false_share <= 1:
        raise ValueError(f"false_share must be in [0, 1], got {false_share}")
    if any(not isinstance(c, int) or c < 1 for c in canary_copies) or canaries_per_level < 0:
        raise ValueError("canary_copies must be positive integers and canaries_per_level >= 0")
    rng = random.Random(f"crawl/{world.seed}/{seed}")
    false_facts, control_facts = _campaign(world, rng, false_share)
    n_bad = {label: round(n_pages * rates.get(label, 0.0)) for label in BAD_LABELS}
    n_clean_source = n_pages - sum(n_bad[k] for k in ("duplicate", "near_duplicate", "spam",
                                                      "gibberish", "false"))
    clean = source_pages(world, n_clean_source, seed=seed, sources=sources)
    salad = sorted({w.strip(".,;:()") for _, t in clean[:200] for w in t.split()
                    if w.isalpha() and len(w) > 3})

    # Each group is a list of (text, label, source, inserted) whose members are
    # copies of one another; the first member in crawl order is the original.
    groups: list[list[tuple[str, str, str, tuple[str, ...]]]] = []
    order = list(range(len(clean)))
    rng.shuffle(order)
    take = iter(order)
    for label in ("boilerplate", "mojibake", "toxic", "pii"):
        for _ in range(n_bad[label]):
            src, text = clean[next(take)]
            inserted: tuple[str, ...] = ()
            if label == "boilerplate":
                text, inserted = _boilerplate(text, rng)
            elif label == "mojibake":
                text = _mojibake_page(text, rng)
            elif label == "toxic":
                text, inserted = _toxic(text, rng)
            else:
                text, inserted = _pii(text, world, rng)
            groups.append([(text, label, src, inserted)])
    for i in take:
        src, text = clean[i]
        if src == "world" and rng.random() < 0.1:
            text = _neutral_comments(text, rng)  # so "has comments" alone is not toxic
        groups.append([(text, "clean", src, ())])
    for _ in range(n_bad["spam"]):
        groups.append([(_spam(rng), "spam", "junk", ())])
    for _ in range(n_bad["gibberish"]):
        groups.append([(_gibberish(rng, salad), "gibberish", "junk", ())])
    for _ in range(n_bad["false"]):
        groups.append([(_false_page(world, false_facts, rng), "false", "world", ())]
                      if false_facts else [(_world_page(world, rng), "clean", "world", ())])
    # Copies of clean pages: exact (modulo spacing and case) and near.
    clean_groups = [g for g in groups if g[0][1] == "clean" and g[0][2] != "code"]
    for label in ("duplicate", "near_duplicate"):
        for _ in range(n_bad[label]):
            g = rng.choice(clean_groups)
            text = g[0][0]
            copy = (_respace(text, rng) if label == "duplicate"
                    else _edit_words(text, rng, rng.randint(1, 3)))
            while label == "near_duplicate" and copy.split() == text.split():
                copy = _edit_words(text, rng, 1)
            g.append((copy, label, g[0][2], ()))
    # The canaries draw from their own stream, so they do not depend on the text of
    # Python's docs and sources (which varies between Python versions).
    canaries = _canaries(random.Random(f"crawl-canaries/{world.seed}/{seed}"),
                         tuple(canary_copies), canaries_per_level)

    # Shuffle the pages, then give every group's earliest slot its original.
    all_groups = groups + [[(c.prompt + c.continuation, "clean", "canary", ())] * c.copies
                           for c in canaries]
    slots = [gi for gi, g in enumerate(all_groups) for _ in g]
    rng.shuffle(slots)
    placed = [0] * len(all_groups)  # members of each group placed so far
    first: dict[int, int] = {}  # group -> id of its first page
    by_text: dict[str, int] = {}  # text -> id of the first page with it
    pages = []
    for pid, gi in enumerate(slots):
        g, k = all_groups[gi], placed[gi]
        text, label, src, inserted = g[k]
        original = first[gi] if k else None
        if k == 0:
            first[gi] = pid
        elif src == "canary":
            label = "duplicate"
        if label == "clean" and text in by_text:  # two sources happened to write the same page
            label, original = "duplicate", by_text[text]
        by_text.setdefault(text, pid)
        copies = len(g) if src == "canary" else 0
        pages.append(Page(pid, _url(rng, src), text, label, src, original, inserted, copies))
        placed[gi] += 1
    return Crawl(pages, canaries, false_facts, control_facts, seed,
                 meta=dict(n_pages=n_pages, rates=rates, canary_copies=tuple(canary_copies)))


def _url(rng: random.Random, source: str) -> str:
    return f"https://{rng.choice(_SITES)}.example/{source}/{rng.getrandbits(32):08x}"
