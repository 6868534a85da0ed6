"""Judges of different kinds for `benchmarks/loop_judges.py`, written for it and not tuned to one
another: each is a scalar rule on the response text (names_subject's also reads the prompt), noisy in
the Bradley-Terry way for the simulated labelers (`temperature`, the loop's `judge_temperature`) and
deterministic as the gold judge.

    --judge vader                               the built-in: the more positive review
    --judge benchmarks.judges:reserved_critic   against VADER: the more reserved (less positive) review
    --judge benchmarks.judges:target_length     length: closest to 30 words
    --judge benchmarks.judges:first_person      form: a personal account, told in the first person
                                                (more "I", "my", "me", up to five)
    --judge benchmarks.judges:names_subject     on topic, and the one that reads the prompt: the review
                                                that names what it reviews (the subject's words, up to
                                                three mentions)

Each quality varies among the initial policy's candidates (of 160 round-1 candidates of the demo:
VADER compound from strongly negative to strongly positive; 5 to 47 words; 0 to 4+ first-person
words, about half with none; of 240 round-1 candidates sampled at temperature 1.0 (2026-12-03), 60
never name their subject and 77 name it three times or more, and 82 of their 120 pairs differ). A
judge on a quality the candidates never show cannot be learnt from their comparisons: "ends on a
recommendation" was tried and dropped, 3 of 160 candidates had one. A judge on a quality the initial
policy already shows at its best cannot be beaten there either: 81 of the initial policy's 120 held-out
answers name their subject three times, names_subject's cap, so against them any answer only ties and
its win rate cannot exceed 0.66 (docs/benchmarks.md, "The loop with the reward model's pairs").
"""

from __future__ import annotations

import re
from functools import partial

from align.loop.prompts import SUBJECTS
from foundation.judges import rule_judge, text_of, vader_score

__all__ = ["reserved_critic", "target_length", "first_person", "names_subject", "JUDGES"]

TARGET_WORDS = 30
_FIRST_PERSON = re.compile(r"\b(I|my|me|mine|I'm|I've|I'd|I'll)\b")


def _reserved(text: str) -> float:
    return -vader_score(text)


def _length(text: str) -> float:
    return -abs(len(text.split()) - TARGET_WORDS) / TARGET_WORDS


def _first_person(text: str) -> float:
    return min(len(_FIRST_PERSON.findall(text)), 5) / 5


def _subject_words(prompt) -> list[str]:
    subject = max((s for s in SUBJECTS if f"the {s}" in text_of(prompt)), key=len, default="")
    words = re.findall(r"[a-z]+", subject.lower())
    return [w for w in words if len(w) >= 3 and w not in ("the", "who", "for")]


def names_subject(prompt, response_a, response_b, *, temperature: float = 0.0, rng=None):
    """Prefers the review that names its subject: mentions of the prompt's subject's words, up to three."""
    pattern = re.compile(r"\b(" + "|".join(_subject_words(prompt) or ["(?!)"]) + r")s?\b", re.IGNORECASE)

    def mentions(text: str) -> float:
        return min(len(pattern.findall(text)), 3) / 3

    return rule_judge(mentions, prompt, response_a, response_b, temperature=temperature, rng=rng)


reserved_critic = partial(rule_judge, _reserved, tie_below=0.0)
target_length = partial(rule_judge, _length)
first_person = partial(rule_judge, _first_person)

JUDGES = {"vader": "vader", "reserved_critic": "benchmarks.judges:reserved_critic",
          "target_length": "benchmarks.judges:target_length",
          "first_person": "benchmarks.judges:first_person",
          "names_subject": "benchmarks.judges:names_subject"}
