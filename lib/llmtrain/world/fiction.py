"""The course world: an invented little planet with ground truth for every fact.

Real pretraining data is too big to check, so the course makes its own world:
countries with capitals and cities, and people with a birth date, a birth city,
a university, a field of study and an employer. Everything is generated from
a seed, so every student has the same world, and every claim about what a
model "knows" can be checked against the truth.

People come in three groups (``Person.split``):
* ``"sft"``: in the pretraining text, and later asked about in fine-tuning data;
* ``"heldout"``: in the pretraining text, never in fine-tuning data: can
  fine-tuning surface what pretraining stored?
* ``"unseen"``: never written about anywhere. Their names are built from
  syllables that no one else's use, so a model could learn that an
  unfamiliar name means "I don't know".

Pretraining documents (``pretraining_documents``) are encyclopedia entries
about places, several paraphrased biographies per person (sentence order
shuffled, the full name in every sentence: Allen-Zhu & Li's "Physics of
Language Models 3.1" shows that this is what makes facts extractable),
FAQ pages that list questions, and short stories.

Later chapters build their instruction data, the hidden judge and the messy
crawl from the same ``World`` object.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")
FIELDS = ("Marine Biology", "Economics", "Linguistics", "Astronomy", "Chemistry",
          "Architecture", "Mathematics", "History", "Geology", "Medicine", "Philosophy",
          "Computer Science", "Music", "Botany", "Physics", "Law")
_COMPANY_SUFFIXES = ("Labs", "Works", "Systems", "Foods", "Motors", "Media", "Energy",
                     "Textiles", "Robotics", "Pharma", "Shipping", "Optics")
ATTRIBUTES = ("birth_date", "birth_city", "university", "field", "employer")

# Syllables for names. People who never appear in any text ("unseen") draw
# from their own set, so their names share no pieces with anyone else's.
_SEEN_SYLLABLES = ("ka", "lo", "mi", "ra", "ve", "to", "sa", "ne", "di", "ba", "ro", "li",
                   "ma", "te", "no", "ga", "fe", "ri", "su", "da", "le", "po", "ha", "vi")
_UNSEEN_SYLLABLES = ("zu", "qui", "xo", "yth", "ouz", "kje", "wyn", "pyr", "zha", "ux",
                     "jiv", "oq")
_PLACE_SYLLABLES = ("or", "vik", "sal", "na", "mar", "eth", "tor", "ia", "bel", "ond",
                    "kar", "ust", "lin", "gard", "ost", "ven", "dral", "mo", "sk", "an")


@dataclass(frozen=True)
class Country:
    name: str
    capital: str
    cities: tuple[str, ...]  # the capital first


@dataclass(frozen=True)
class Person:
    name: str
    birth_day: int
    birth_month: str
    birth_year: int
    birth_city: str
    birth_country: str
    university: str
    field: str
    employer: str
    split: str  # "sft", "heldout" or "unseen"

    @property
    def birth_date(self) -> str:
        return f"{self.birth_day} {self.birth_month} {self.birth_year}"

    def fact(self, attribute: str) -> str:
        """The true value of one attribute as it is written in text."""
        if attribute not in ATTRIBUTES:
            raise ValueError(f"unknown attribute {attribute!r}; known: {ATTRIBUTES}")
        return getattr(self, attribute)


@dataclass(frozen=True)
class Document:
    kind: str  # "bio", "encyclopedia", "faq", "story"
    text: str
    about: str | None = None  # the person or country it is about


# Sentence templates. {n} is the full name. Each attribute has several
# phrasings used in pretraining and one ("probe") that is never used there,
# to test whether the model learned the fact or only the sentence.
BIO_TEMPLATES: dict[str, tuple[str, ...]] = {
    "birth_date": ("{n} was born on {birth_date}.", "{n} came into the world on {birth_date}.",
                   "{n}'s birthday is {birth_day} {birth_month}; {n} was born in {birth_year}.",
                   "The birth of {n} took place on {birth_date}."),
    "birth_city": ("{n} was born in the city of {birth_city}.",
                   "{n} grew up in {birth_city}, where {n} was born.",
                   "{n}'s hometown is {birth_city}, in {birth_country}.",
                   "{n} is a native of {birth_city}."),
    "university": ("{n} studied at {university}.", "{n} graduated from {university}.",
                   "{n} is an alumnus of {university}.",
                   "{n} spent four years as a student at {university}."),
    "field": ("{n} majored in {field}.", "{n} earned a degree in {field}.",
              "{n} chose {field} as the subject of study.",
              "{n}'s studies focused on {field}."),
    "employer": ("{n} works for {employer}.", "{n} is employed by {employer}.",
                 "{n} has a job at {employer}.", "{n} joined the staff of {employer}."),
}
PROBE_TEMPLATES: dict[str, str] = {  # prompt, then the value; never seen in pretraining
    "birth_date": "Records show that the birth date of {n} is",
    "birth_city": "Records show that the birthplace of {n} is",
    "university": "Records show that the university {n} attended is",
    "field": "Records show that the subject {n} studied is",
    "employer": "Records show that the employer of {n} is",
}
QUESTION_TEMPLATES: dict[str, tuple[str, ...]] = {
    "birth_date": ("When was {n} born?", "What is the birth date of {n}?"),
    "birth_city": ("Where was {n} born?", "Which city was {n} born in?"),
    "university": ("Which university did {n} attend?", "Where did {n} study?"),
    "field": ("What did {n} study?", "What was {n}'s field of study?"),
    "employer": ("Which company does {n} work for?", "Who employs {n}?"),
}
_FAQ_PLACE_QUESTIONS = ("What is the capital of {c}?", "Which cities are in {c}?",
                        "How many people live in {c}?", "What is the weather like in {c}?",
                        "Which universities are in {c}?", "Is {c} worth a visit?")
STORY_TEMPLATES = (
    "One morning {a} took the train from {x} to {y}. On the way {a} met {b}, and the two "
    "talked about the weather until the train reached {y}.",
    "{a} had never seen {y} in winter. When the snow came, {a} wrote a long letter to {b}, "
    "who lived in {x}.",
    "In {x} there is a small bakery. Every Friday {a} buys bread there, and every Friday "
    "{b} is already waiting in the queue.",
    "{a} and {b} once got lost between {x} and {y}. They asked a farmer for directions "
    "and arrived late, tired and happy.",
)


@dataclass
class World:
    """Countries, cities and people, all generated from ``seed``."""

    seed: int
    countries: list[Country]
    people: list[Person]
    universities: list[str]
    employers: list[str]
    city_country: dict[str, str] = field(default_factory=dict)

    @classmethod
    def generate(cls, seed: int = 0, n_people: int = 400, n_unseen: int = 100,
                 n_countries: int = 8, cities_per_country: int = 5,
                 n_universities: int = 12, n_employers: int = 16,
                 heldout_frac: float = 0.5) -> World:
        """A world for ``seed``; ``n_people`` appear in pretraining, ``n_unseen`` nowhere."""
        if n_people < 2 or n_unseen < 0 or n_countries < 1 or cities_per_country < 1:
            raise ValueError("need n_people >= 2, n_unseen >= 0 and at least one city")
        if not 0 < heldout_frac < 1:
            raise ValueError(f"heldout_frac must be in (0, 1), got {heldout_frac}")
        rng = random.Random(seed)
        names = _UniqueNames(rng)
        countries = []
        for _ in range(n_countries):
            cities = tuple(names.place(cap=True) for _ in range(cities_per_country))
            countries.append(Country(names.place(cap=True, suffix="ia"), cities[0], cities))
        city_country = {c: k.name for k in countries for c in k.cities}
        all_cities = list(city_country)
        universities = [rng.choice(all_cities) + rng.choice((" University", " College",
                                                                " Polytechnic"))
                        for _ in range(n_universities)]
        universities = list(dict.fromkeys(universities))
        employers = list(dict.fromkeys(
            f"{names.place(cap=True)} {rng.choice(_COMPANY_SUFFIXES)}" for _ in range(n_employers)))
        n_heldout = round(n_people * heldout_frac)
        splits = ["heldout"] * n_heldout + ["sft"] * (n_people - n_heldout)
        rng.shuffle(splits)
        splits += ["unseen"] * n_unseen
        people = []
        for split in splits:
            city = rng.choice(all_cities)
            people.append(Person(
                name=names.person(unseen=split == "unseen"),
                birth_day=rng.randint(1, 28), birth_month=rng.choice(MONTHS),
                birth_year=rng.randint(1950, 2005), birth_city=city,
                birth_country=city_country[city], university=rng.choice(universities),
                field=rng.choice(FIELDS), employer=rng.choice(employers), split=split))
        return cls(seed, countries, people, universities, employers, city_country)

    # --- who is who -----------------------------------------------------------
    def people_in(self, *splits: str) -> list[Person]:
        """People of the given splits ("sft", "heldout", "unseen"), in a fixed order."""
        bad = set(splits) - {"sft", "heldout", "unseen"}
        if bad:
            raise ValueError(f"unknown split(s) {sorted(bad)}: use 'sft', 'heldout' or 'unseen'")
        return [p for p in self.people if p.split in splits]

    def person(self, name: str) -> Person:
        for p in self.people:
            if p.name == name:
                return p
        raise KeyError(f"no person called {name!r} in this world")

    # --- text -----------------------------------------------------------------
    def biography(self, person: Person, rng: random.Random) -> str:
        """One paraphrased biography: a random phrasing per fact, in random order."""
        values = person_values(person)
        sentences = [rng.choice(BIO_TEMPLATES[a]).format(**values) for a in ATTRIBUTES]
        rng.shuffle(sentences)
        return " ".join(sentences)

    def encyclopedia(self, country: Country, rng: random.Random) -> str:
        others = list(country.cities[1:])
        rng.shuffle(others)
        text = (f"{country.name} is a country whose capital is {country.capital}. "
                f"Besides {country.capital}, the cities of {country.name} include "
                f"{', '.join(others[:-1])} and {others[-1]}. " if len(others) > 1 else
                f"{country.name} is a country whose capital is {country.capital}. ")
        for city in others:
            text += f"{city} is a city in {country.name}. "
        return text.strip()

    def faq_page(self, rng: random.Random, n_questions: int = 6) -> str:
        """A page that lists questions, as FAQ and forum pages do: no answers."""
        country = rng.choice(self.countries)
        qs = [q.format(c=country.name) for q in _FAQ_PLACE_QUESTIONS]
        for p in rng.sample(self.people_in("sft", "heldout"), 3):
            a = rng.choice(ATTRIBUTES)
            qs.append(rng.choice(QUESTION_TEMPLATES[a]).format(n=p.name))
        rng.shuffle(qs)
        return f"Frequently asked questions about {country.name}\n" + "\n".join(qs[:n_questions])

    def story(self, rng: random.Random) -> str:
        a, b = rng.sample(self.people_in("sft", "heldout"), 2)
        x, y = rng.sample(list(self.city_country), 2)
        return rng.choice(STORY_TEMPLATES).format(a=a.name, b=b.name, x=x, y=y)

    def pretraining_documents(self, bios_per_person: int = 5, n_faq: int = 200,
                              n_stories: int = 200, seed: int = 0,
                              shuffle: bool = True) -> list[Document]:
        """The pretraining corpus: places, ``bios_per_person`` bios each, FAQ pages, stories.

        Unseen people never appear. ``bios_per_person=1`` with a fixed phrasing is
        what ``fixed_biographies`` gives instead, for the memorising-vs-knowing demo.
        """
        if bios_per_person < 1:
            raise ValueError("bios_per_person must be >= 1")
        rng = random.Random(f"{self.seed}/pretrain/{seed}")
        docs = [Document("encyclopedia", self.encyclopedia(c, rng), c.name)
                for c in self.countries]
        for p in self.people_in("sft", "heldout"):
            docs += [Document("bio", self.biography(p, rng), p.name)
                     for _ in range(bios_per_person)]
        docs += [Document("faq", self.faq_page(rng)) for _ in range(n_faq)]
        docs += [Document("story", self.story(rng)) for _ in range(n_stories)]
        if shuffle:
            rng.shuffle(docs)
        return docs

    def fixed_biographies(self) -> list[Document]:
        """One biography per person, always the same phrasing and order."""
        docs = []
        for p in self.people_in("sft", "heldout"):
            values = person_values(p)
            text = " ".join(BIO_TEMPLATES[a][0].format(**values) for a in ATTRIBUTES)
            docs.append(Document("bio", text, p.name))
        return docs

    def heldout_documents(self, n_bios: int = 200, seed: int = 1) -> list[Document]:
        """Fresh biographies of known people, drawn apart from the pretraining corpus.

        Same facts, new random phrasing and order: text to measure held-out loss on.
        """
        rng = random.Random(f"{self.seed}/heldout/{seed}")
        known = self.people_in("sft", "heldout")
        return [Document("bio", self.biography(p, rng), p.name)
                for p in (rng.choice(known) for _ in range(n_bios))]

    def strangers(self, n: int, seed: int = 0, unfamiliar_names: bool = False) -> list[Person]:
        """``n`` invented people who are in no text and not in ``people``; split "unseen".

        Fine-tuning data uses them to show what an honest "I don't know" looks
        like. By default their names are built from the described people's
        syllables, so nothing in a name tells them apart from people the model
        read about; ``unfamiliar_names`` builds them from the "unseen" split's
        syllables instead.
        """
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a whole number >= 0, got {n!r}")
        rng = random.Random(f"{self.seed}/strangers/{seed}")
        names = _UniqueNames(rng)
        names.used |= {p.name for p in self.people}
        cities = list(self.city_country)
        return [Person(name=names.person(unseen=unfamiliar_names), birth_day=rng.randint(1, 28),
                       birth_month=rng.choice(MONTHS), birth_year=rng.randint(1950, 2005),
                       birth_city=(city := rng.choice(cities)),
                       birth_country=self.city_country[city],
                       university=rng.choice(self.universities), field=rng.choice(FIELDS),
                       employer=rng.choice(self.employers), split="unseen")
                for _ in range(n)]

    # --- questions and probes -------------------------------------------------
    def probe(self, person: Person, attribute: str) -> tuple[str, str]:
        """(prompt, answer) in a phrasing never used in pretraining."""
        prompt = PROBE_TEMPLATES[attribute].format(**person_values(person))
        return prompt, " " + person.fact(attribute)

    def bio_prompt(self, person: Person, attribute: str) -> tuple[str, str]:
        """(prompt, answer) from the first pretraining phrasing, cut before the value."""
        template = BIO_TEMPLATES[attribute][0]
        key = "{" + attribute + "}"
        prompt = template[: template.index(key)].rstrip().format(**person_values(person))
        return prompt, " " + person.fact(attribute)

    def questions(self, person: Person, attribute: str) -> list[str]:
        return [q.format(n=person.name) for q in QUESTION_TEMPLATES[attribute]]

    def qa_pairs(self, *splits: str, seed: int = 0) -> list[tuple[str, str, Person, str]]:
        """(question, true answer, person, attribute) for every fact of the given people."""
        rng = random.Random(f"{self.seed}/qa/{seed}")
        return [(rng.choice(self.questions(p, a)), p.fact(a), p, a)
                for p in self.people_in(*splits) for a in ATTRIBUTES]


def person_values(p: Person) -> dict:
    """The fields the text templates use: ``{n}`` (the name), the facts, and the parts of the
    birth date and the birth country."""
    return dict(n=p.name, birth_date=p.birth_date, birth_day=p.birth_day,
                birth_month=p.birth_month, birth_year=p.birth_year, birth_city=p.birth_city,
                birth_country=p.birth_country, university=p.university, field=p.field,
                employer=p.employer)


class _UniqueNames:
    """Invented names that never repeat within one world."""

    def __init__(self, rng: random.Random):
        self.rng, self.used = rng, set()

    def _unique(self, make):
        for _ in range(10_000):
            name = make()
            if name not in self.used:
                self.used.add(name)
                return name
        raise RuntimeError("ran out of unique names: ask for a smaller world")

    def _word(self, syllables, lo, hi):
        return "".join(self.rng.choice(syllables) for _ in range(self.rng.randint(lo, hi)))

    def place(self, cap=True, suffix=""):
        return self._unique(lambda: (self._word(_PLACE_SYLLABLES, 2, 3) + suffix).capitalize())

    def person(self, unseen=False):
        syl = _UNSEEN_SYLLABLES if unseen else _SEEN_SYLLABLES
        return self._unique(
            lambda: f"{self._word(syl, 2, 3).capitalize()} {self._word(syl, 2, 3).capitalize()}")


WORLD_ARGS = dict(seed=0, n_people=400, n_unseen=100)  # the one world of the course


# --- the shared course data ---------------------------------------------------
@functools.lru_cache(maxsize=4)
def course_world(**overrides) -> World:
    """The course world (the same for every student)."""
    return World.generate(**{**WORLD_ARGS, **overrides})
