"""The loop's built-in prompts (`prompts: builtin:reviews`): review requests over products and places,
split into training and held-out prompts with a fixed seed, so that evaluation never sees a training
prompt."""

from __future__ import annotations

import random

__all__ = ["review_prompts"]

PRODUCTS = ["coffee grinder", "rain jacket", "electric kettle", "hiking boots", "desk lamp", "backpack",
            "bluetooth speaker", "cast iron pan", "yoga mat", "fountain pen", "board game", "tent",
            "road bike", "office chair", "teapot", "headphones", "sketchbook", "water bottle"]
PLACES = ["bakery in Lyon", "museum in Madrid", "beach in Crete", "cafe in Vienna", "park in Kyoto",
          "bookshop in Dublin", "hotel in Lisbon", "market in Marrakesh", "library in Prague",
          "ramen bar in Osaka", "zoo in Berlin", "lake in Ontario"]


def review_prompts() -> tuple[list[str], list[str]]:
    """Training and held-out prompts over every product and place, split 2:1 with a fixed seed."""
    prompts = [f"Write a short review of the {s}." for s in PRODUCTS + PLACES]
    random.Random(0).shuffle(prompts)
    cut = len(prompts) * 2 // 3
    return prompts[:cut], prompts[cut:]
