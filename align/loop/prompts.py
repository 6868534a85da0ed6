"""The loop's prompts: which it trains on, which it holds out, and which each round asks; and the
built-in ones (`prompts: builtin:reviews`), review requests of several kinds over products, places and
services.

Training and held-out prompts are about *different* subjects (a fixed seeded split of the subjects),
so the evaluation measures what the policy learnt about reviews, not about the items it was trained
on. 240 training prompts (every request kind of each of the 40 training subjects; the first 40 one per
subject) and 120 held-out prompts (two request kinds per held-out subject): enough for a 95% interval of
about ±0.08 on a win rate.
"""

from __future__ import annotations

import random

from foundation.candidates import read_prompts
from foundation.records import as_chat

__all__ = ["split_prompts", "round_prompts", "review_prompts", "TEMPLATES", "SUBJECTS", "TRAIN_SUBJECTS"]

PRODUCTS = [
    "coffee grinder", "rain jacket", "electric kettle", "hiking boots", "desk lamp", "backpack",
    "bluetooth speaker", "cast iron pan", "yoga mat", "fountain pen", "board game", "tent", "road bike",
    "office chair", "teapot", "headphones", "sketchbook", "water bottle", "standing desk", "rice cooker",
    "e-reader", "wool sweater", "kitchen knife", "air purifier", "camping stove", "electric toothbrush",
    "mechanical keyboard", "running shoes", "winter gloves", "blender", "picnic blanket", "travel mug",
    "smart watch", "garden hose", "puzzle of 1000 pieces", "umbrella", "sleeping bag", "desk fan",
    "laptop stand", "bread knife",
]
PLACES = [
    "bakery in Lyon", "museum in Madrid", "beach in Crete", "cafe in Vienna", "park in Kyoto",
    "bookshop in Dublin", "hotel in Lisbon", "market in Marrakesh", "library in Prague", "ramen bar in Osaka",
    "zoo in Berlin", "lake in Ontario", "pizzeria in Naples", "botanical garden in Singapore",
    "jazz club in New Orleans", "hostel in Reykjavik", "castle in Edinburgh", "night market in Taipei",
    "ski resort in the Alps", "aquarium in Monterey", "tea house in Istanbul", "cinema in Melbourne",
    "food hall in Copenhagen", "campsite in Patagonia", "harbour in Cape Town", "gallery in Florence",
    "brewery in Munich", "spa in Budapest", "farmers market in Portland", "temple in Bangkok",
]
SERVICES = [
    "plumber who fixed my sink", "online Spanish course", "car rental in Seville", "food delivery app",
    "dentist appointment", "bike repair shop", "moving company", "yoga class at the community centre",
    "tax preparation service", "dog walking service", "hair salon on Main Street", "train journey to Milan",
    "cooking class in Bologna", "guided city walking tour", "phone repair kiosk", "laundry service",
    "piano teacher", "airport shuttle", "house cleaning service", "photography workshop",
    "music streaming service", "gym membership", "car wash", "tailor who altered my suit",
    "coworking space", "wine tasting tour", "language exchange meetup", "pottery class",
    "bus tour of the coast", "vet clinic",
]
SUBJECTS = PRODUCTS + PLACES + SERVICES
TEMPLATES = [
    "Write a short review of the {}.",
    "Write a brief review of the {} for a friend who is considering it.",
    "In a few sentences, give your honest opinion of the {}.",
    "Describe your experience with the {} in a short review.",
    "Write a short customer review of the {}.",
    "What did you think of the {}? Answer with a short review.",
]
TRAIN_SUBJECTS = 40
HELDOUT_PROMPTS = 120


def review_prompts() -> tuple[list[str], list[str]]:
    """(training, held-out) prompts: subjects split with a fixed seed, so no held-out prompt is about a
    training subject. Training: each training subject in one request kind (the first 40 prompts), then
    in each of the other kinds (shuffled); held-out: each held-out subject in two request kinds."""
    rng = random.Random(0)
    subjects = list(SUBJECTS)
    rng.shuffle(subjects)
    train_subjects, heldout_subjects = subjects[:TRAIN_SUBJECTS], subjects[TRAIN_SUBJECTS:]
    first = [rng.choice(TEMPLATES) for _ in train_subjects]
    train = [t.format(s) for t, s in zip(first, train_subjects)]
    heldout = [t.format(s) for s in heldout_subjects for t in rng.sample(TEMPLATES, 2)]
    rng.shuffle(heldout)
    others = [t.format(s) for s, kind in zip(train_subjects, first) for t in TEMPLATES if t != kind]
    random.Random(1).shuffle(others)
    return train + others, heldout[:HELDOUT_PROMPTS]


def _prompts(spec: str | None, held_out: bool, first_turn: bool = False) -> list:
    if spec in (None, "builtin:reviews"):
        train, heldout = review_prompts()
        return heldout if held_out else train
    return read_prompts(spec, first_turn=first_turn)


def split_prompts(prompts: str | None, heldout_prompts: str | None, *, first_turn: bool = False,
                  max_heldout: int = 0) -> tuple[list, list]:
    """(training prompts, held-out prompts) as chats: `heldout_prompts` if given (builtin:reviews has
    its own held-out subjects), else the last third of `prompts`; at most `max_heldout` held-out ones (0:
    all), the first. `first_turn`: each conversation's first user turn alone."""
    train = [as_chat(p) for p in _prompts(prompts, held_out=False, first_turn=first_turn)]
    heldout = heldout_prompts or ("builtin:reviews" if prompts in (None, "builtin:reviews") else None)
    if heldout:
        held = [as_chat(p) for p in _prompts(heldout, held_out=True, first_turn=first_turn)]
    else:
        cut = len(train) * 2 // 3          # no held-out set given: keep a third of the prompts apart
        train, held = train[:cut], train[cut:]
    return train, held[:max_heldout] if max_heldout else held


def round_prompts(train: list, r: int, per_round: int, seed: int) -> list:
    """Round r's training prompts: `per_round` of them, the next ones in a seeded order of all training
    prompts, so that each round asks new ones while they last (0, or as many as there are: every round
    all of them)."""
    if not per_round or per_round >= len(train):
        return train
    order = list(range(len(train)))
    random.Random(seed * 104_729 + 1).shuffle(order)
    return [train[order[((r - 1) * per_round + i) % len(order)]] for i in range(per_round)]
