"""Model collapse: models trained on their own output, generation after generation.

The experiment (after Shumailov et al., Nature 2024, "AI models collapse when
trained on recursively generated data"):

1. generation 0 is trained on real text: short biographies of invented people;
2. it writes a synthetic corpus (sampled at some temperature);
3. a fresh model, generation 1, is trained on that corpus, optionally mixed
   with the real text; it writes the next corpus; and so on.

Every corpus is measured the same way (``CollapseLab.stats``, on its first
``word_budget`` words): distinct word 3-grams, vocabulary used, people named,
share of true sentences. Every model is asked about every fact
(``fact_recall``), separately for *rare* people (mentioned once in the real
text) and *common* people, and scored on real held-out text it never saw
(fresh biographies, same facts).

The world is small and of its own (``CollapseLab``), and the tokens are whole
words (``WordTokenizer``), so a generation trains in a few seconds on a CPU and
"vocabulary used" is simply the number of different tokens a corpus contains.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ..core.batches import LMBatches, evaluate_loss
from ..core.model import GPT, preset
from ..core.train import TrainConfig, Trainer
from ..world.fiction import BIO_TEMPLATES, Person, World, person_values

ATTRIBUTES = ("birth_city", "university", "field", "employer")  # the facts a biography states
_WORD = re.compile(r"'s|\w+|[^\w\s]")


def words(text: str) -> list[str]:
    """Words and punctuation marks: ``"Ana's job."`` -> ``["Ana", "'s", "job", "."]``."""
    return _WORD.findall(text)


class WordTokenizer:
    """One token per word or punctuation mark of a fixed vocabulary, plus ``<|endoftext|>``.

    Built from the real corpus, so a model can only ever write words that
    occur in it: what it can lose is which words it uses and how it combines
    them. ``decode(encode(t)) == t`` for text with single spaces.
    """

    def __init__(self, texts: Sequence[str]):
        self.words = sorted({w for t in texts for w in words(t)})
        if not self.words:
            raise ValueError("texts contain no words: pass the real corpus")
        self.ids = {w: i for i, w in enumerate(self.words)}
        self.eot_id = len(self.words)
        self.pad_id = self.eot_id

    @property
    def vocab_size(self) -> int:
        return len(self.words) + 1

    def encode(self, text: str) -> list[int]:
        ws = words(text)
        unknown = sorted({w for w in ws if w not in self.ids})
        if unknown:
            raise ValueError(f"words {unknown[:5]} are not in the vocabulary of the real corpus")
        return [self.ids[w] for w in ws]

    def decode(self, ids: Sequence[int]) -> str:
        return _join([self.words[i] for i in ids if 0 <= i < len(self.words)])

    def stream(self, texts: Sequence[str]) -> torch.Tensor:
        """One 1-D token stream: every document preceded by ``<|endoftext|>``."""
        ids: list[int] = []
        for t in texts:
            ids += [self.eot_id] + self.encode(t)
        return torch.tensor(ids + [self.eot_id])


def biography(person: Person, rng: random.Random) -> str:
    """Four facts about ``person`` in random phrasings (the course's templates), random order."""
    values = person_values(person)
    sentences = [rng.choice(BIO_TEMPLATES[a]).format(**values) for a in ATTRIBUTES]
    rng.shuffle(sentences)
    return " ".join(sentences)


def zipf_mentions(people: Sequence[Person], top: int = 20, exponent: float = 1.0) -> dict:
    """How many biographies each person gets: ``max(1, round(top / rank ** exponent))``.

    A few people are written about often, most only once: the long tail that
    real text has, and that a collapsing model loses first.
    """
    if not isinstance(top, int) or top < 1 or exponent < 0:
        raise ValueError(f"need top >= 1 and exponent >= 0, got {top!r} and {exponent!r}")
    return {p.name: max(1, round(top / (rank + 1) ** exponent)) for rank, p in enumerate(people)}


@dataclass(frozen=True)
class CorpusStats:
    """How varied one corpus is, on its first ``n_words`` words.

    distinct_3grams: different word 3-grams; vocabulary: different words;
    people: different people named; true_sentences: share of its sentences
    that a real biography could contain word for word (the rest mix up
    people and facts, or are broken).
    """

    n_words: int
    distinct_3grams: int
    vocabulary: int
    people: int
    true_sentences: float


@dataclass
class CollapseConfig:
    """How each generation is trained and how it writes the next corpus."""

    preset: str = "nano"  # model.PRESETS name
    steps: int = 150  # optimizer steps per generation, every model trained from scratch
    batch_size: int = 16  # windows per step
    block_size: int = 64  # tokens per window (and the model's context)
    lr: float = 1e-2
    temperature: float = 0.8  # sampling temperature of the synthetic corpora
    word_budget: int = 3000  # every corpus is measured on its first this many words
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self):
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be a positive integer, got {self.steps!r}")
        if not 0 < self.temperature <= 2:
            raise ValueError(f"temperature must be in (0, 2], got {self.temperature}")
        if not isinstance(self.word_budget, int) or self.word_budget < 100:
            raise ValueError(f"word_budget must be a whole number >= 100, got {self.word_budget}")


@dataclass
class Generation:
    """One model of the chain and the corpus it wrote."""

    index: int  # 0: trained on real text
    real_share: float  # share of its training documents that were real
    heldout_loss: float  # nats per token on real held-out biographies
    rare_recall: float  # share of fact prompts about rare people completed correctly
    common_recall: float  # the same for the people mentioned more than once
    stats: CorpusStats  # of the corpus it wrote
    corpus: list[str] = field(repr=False, default_factory=list)


class CollapseLab:
    """The small world, its real corpus and held-out text, and the generational loop.

    ``run(real_share, generations)`` gives the chain of ``Generation`` s.
    Runs are cached by their settings (a longer run continues a shorter
    one), and generation 0, trained on real text only, is shared by every
    run with the same model and training settings, so comparing mixes or
    temperatures trains it once.
    """

    def __init__(self, seed: int = 0, n_people: int = 60, top_mentions: int = 20,
                 exponent: float = 1.0):
        if not isinstance(n_people, int) or not 4 <= n_people <= 400:
            raise ValueError(f"n_people must be a whole number from 4 to 400, got {n_people!r}")
        self.world = World.generate(seed=seed, n_people=n_people, n_unseen=0, n_countries=3,
                                    cities_per_country=4, n_universities=6, n_employers=6)
        self.people = self.world.people_in("sft", "heldout")
        self.mentions = zipf_mentions(self.people, top_mentions, exponent)
        self.rare = {p.name for p in self.people if self.mentions[p.name] == 1}
        self.real = self._corpus(random.Random(f"collapse/real/{seed}"))
        self.heldout = self._corpus(random.Random(f"collapse/heldout/{seed}"))
        self.tokenizer = WordTokenizer(self.real + self.heldout)
        self.heldout_tokens = self.tokenizer.stream(self.heldout)
        # every true sentence a biography can contain -> (person, attribute, phrasing)
        self._true_sentences = {t.format(**person_values(p)): (p.name, a, t) for p in self.people
                                for a in ATTRIBUTES for t in BIO_TEMPLATES[a]}
        # the phrasings the real corpus used for each fact: how fact_recall asks for it
        self.real_phrasings = sorted({self._true_sentences[s] for d in self.real
                                      for s in re.split(r"(?<=\.)\s+", d)})
        self._gen0: dict[tuple, GPT] = {}
        self._runs: dict[tuple, list[Generation]] = {}

    def _corpus(self, rng: random.Random) -> list[str]:
        docs = [biography(p, rng) for p in self.people for _ in range(self.mentions[p.name])]
        rng.shuffle(docs)
        return docs

    # --- measuring ------------------------------------------------------------
    def stats(self, texts: Sequence[str], word_budget: int = 3000) -> CorpusStats:
        """``CorpusStats`` of the first ``word_budget`` words of ``texts`` (documents kept whole
        up to the one that crosses the budget, which is cut)."""
        kept, n = [], 0
        for t in texts:
            ws = words(t)
            if n + len(ws) > word_budget:
                kept.append(ws[: word_budget - n])
                n = word_budget
                break
            kept.append(ws)
            n += len(ws)
        grams = {tuple(ws[i : i + 3]) for ws in kept for i in range(len(ws) - 2)}
        vocab = {w for ws in kept for w in ws}
        text = "\n".join(_join(ws) for ws in kept)
        named = {p.name for p in self.people if _value_in(p.name, text)}
        sentences = re.split(r"(?<=\.)\s+", text)
        true = sum(s in self._true_sentences for s in sentences) / max(1, len(sentences))
        return CorpusStats(n, len(grams), len(vocab), len(named), true)

    @torch.no_grad()
    def fact_recall(self, model: GPT) -> tuple[float, float]:
        """(rare, common): share of fact prompts the model completes with the true value.

        Each fact is asked in every phrasing the real corpus used for it ("Ana
        Ro studied at"), greedily, after ``<|endoftext|>`` as a document would
        start: can the model still say what the real text said? Rare people
        are those the real corpus mentions once.
        """
        device = next(model.parameters()).device
        people = {p.name: p for p in self.people}
        by_phrasing: dict[str, list] = {}
        for name, a, template in self.real_phrasings:
            by_phrasing.setdefault(template, []).append((people[name], a))
        right = {True: [0, 0], False: [0, 0]}  # rare? -> [correct, asked]
        for template, facts in by_phrasing.items():
            a = facts[0][1]
            prefix = template[: template.index("{" + a + "}")].rstrip()
            prompts = [[self.tokenizer.eot_id]
                       + self.tokenizer.encode(prefix.format(**person_values(p)))
                       for p, _ in facts]
            values = [self.tokenizer.encode(" " + p.fact(a)) for p, _ in facts]
            idx = torch.tensor(prompts, device=device)  # (n, T): names are always two words
            width = max(len(v) for v in values)
            out = model.generate(idx, width, temperature=0)[:, idx.shape[1]:].tolist()
            for (p, _), v, o in zip(facts, values, out):
                r = right[p.name in self.rare]
                r[0] += o[: len(v)] == v
                r[1] += 1
        return right[True][0] / max(1, right[True][1]), right[False][0] / max(1, right[False][1])

    def guess_recall(self) -> tuple[float, float]:
        """(rare, common) recall of a model that knows no person at all: it completes every
        fact with the value the real corpus states most often for that attribute."""
        stated = Counter((a, p.fact(a)) for p in self.people for a in ATTRIBUTES
                         for _ in range(self.mentions[p.name]))
        best = {a: max((v for (b, v) in stated if b == a), key=lambda v: stated[a, v])
                for a in ATTRIBUTES}
        people = {p.name: p for p in self.people}
        right = {True: [0, 0], False: [0, 0]}
        for name, a, _ in self.real_phrasings:
            r = right[name in self.rare]
            r[0] += people[name].fact(a) == best[a]
            r[1] += 1
        return right[True][0] / max(1, right[True][1]), right[False][0] / max(1, right[False][1])

    # --- one generation -------------------------------------------------------
    def train(self, texts: Sequence[str], config: CollapseConfig, seed: int) -> GPT:
        """A fresh model trained on ``texts`` for ``config.steps`` steps (through the Trainer)."""
        torch.manual_seed(seed)
        model = GPT(preset(config.preset, vocab_size=self.tokenizer.vocab_size,
                           block_size=config.block_size))
        batches = LMBatches(self.tokenizer.stream(texts), config.block_size, config.batch_size,
                            seed=seed)
        cfg = TrainConfig(max_steps=config.steps, lr=config.lr, device=config.device, seed=seed,
                          progress=False, log_every=config.steps)
        Trainer(model, batches, cfg).fit()
        return model.eval()

    @torch.no_grad()
    def sample(self, model: GPT, n_docs: int, min_words: int, temperature: float,
               seed: int) -> list[str]:
        """At least ``n_docs`` documents and ``min_words`` words, each sampled from
        ``<|endoftext|>`` until the model writes it again (or fills its context)."""
        g = torch.Generator().manual_seed(seed)
        eot, docs, n = self.tokenizer.eot_id, [], 0
        device = next(model.parameters()).device
        while len(docs) < n_docs or n < min_words:
            start = torch.full((128, 1), eot, dtype=torch.long, device=device)
            rows = model.generate(start, model.config.block_size - 1, temperature=temperature,
                                  stop_tokens=[eot], pad_id=eot, generator=g)[:, 1:]
            for row in rows.tolist():
                row = row[: row.index(eot)] if eot in row else row
                if row:
                    docs.append(self.tokenizer.decode(row))
                    n += len(row)
        return docs

    # --- the chain ------------------------------------------------------------
    def run(self, real_share: float, generations: int,
            config: CollapseConfig | None = None) -> list[Generation]:
        """Generations 0 .. ``generations - 1``; from generation 1 on, each model trains on
        all the real documents plus synthetic ones from the model before, so many
        that real documents are ``real_share`` of the total (0: synthetic only)."""
        config = config or CollapseConfig()
        if not 0 <= real_share <= 1:
            raise ValueError(f"real_share must be in [0, 1], got {real_share}")
        if not isinstance(generations, int) or generations < 1:
            raise ValueError(f"generations must be a positive integer, got {generations!r}")
        key = (real_share, *vars(config).values())
        chain = self._runs.setdefault(key, [])  # a longer run extends a shorter one
        n_real = len(self.real)
        n_synthetic = n_real if real_share == 0 else round(n_real * (1 - real_share) / real_share)
        for g in range(len(chain), generations):
            if g == 0:
                model = self._generation0(config)
            else:  # all the real text (unless none is kept) and the last generation's corpus
                data = (list(self.real) if real_share > 0 else []) + chain[-1].corpus[:n_synthetic]
                model = self.train(data, config, seed=config.seed * 1000 + g)
            corpus = self.sample(model, n_synthetic, config.word_budget, config.temperature,
                                 seed=config.seed * 1000 + g)
            chain.append(Generation(
                g, 1.0 if g == 0 else real_share,
                evaluate_loss(model, self.heldout_tokens, config.block_size, max_windows=None),
                *self.fact_recall(model), self.stats(corpus, config.word_budget), corpus))
        return chain[:generations]

    def _generation0(self, config: CollapseConfig) -> GPT:
        key = tuple(v for k, v in vars(config).items() if k not in ("temperature",))
        if key not in self._gen0:
            self._gen0[key] = self.train(self.real, config, seed=config.seed * 1000)
        return self._gen0[key]


def gaussian_refit(generations: int = 1000, n_samples: int = 100, real_share: float = 0.0,
                   chains: int = 100, seed: int = 0) -> torch.Tensor:
    """The smallest model collapse: a normal distribution refitted to its own samples.

    Generation 0 is N(0, 1), the "real data". Each generation draws
    ``n_samples`` points from the current fit, replaces ``real_share`` of
    them by fresh draws from N(0, 1), and fits mean and standard deviation
    to them. Returns the fitted standard deviations, (chains, generations + 1),
    one row per independent chain.
    """
    if not 0 <= real_share <= 1:
        raise ValueError(f"real_share must be in [0, 1], got {real_share}")
    if n_samples < 2 or generations < 1 or chains < 1:
        raise ValueError("need n_samples >= 2, generations >= 1 and chains >= 1")
    g = torch.Generator().manual_seed(seed)
    mean, sd = torch.zeros(chains, 1, dtype=torch.float64), torch.ones(chains, 1,
                                                                      dtype=torch.float64)
    n_real = round(real_share * n_samples)
    sds = [sd.squeeze(1)]
    for _ in range(generations):
        x = mean + sd * torch.randn(chains, n_samples, generator=g, dtype=torch.float64)
        x[:, :n_real] = torch.randn(chains, n_real, generator=g, dtype=torch.float64)
        mean, sd = x.mean(dim=1, keepdim=True), x.std(dim=1, keepdim=True)
        sds.append(sd.squeeze(1))
    return torch.stack(sds, dim=1)


def _join(ws: Sequence[str]) -> str:
    """Words back to text, with the spacing ``WordTokenizer.decode`` gives."""
    return re.sub(r" (?=[.,]|'s\b)", "", " ".join(ws))


def _value_in(value: str, sentence: str) -> bool:
    """Is ``value`` in ``sentence`` as whole words?"""
    return re.search(rf"(?<!\w){re.escape(value)}(?!\w)", sentence) is not None
