"""The judge interface: who decides which of two responses is better, given by name.

A judge compares two responses: `judge(prompt, response_a, response_b) -> (choice, strength)` with
choice "A", "B", "tie" or "both_bad" and strength 1-4 (the labeling app's scale). Prompts and
responses arrive as chat messages or text. Judges stand in for labelers (simulation) and give the
gold win rate of an evaluation; `vader` is built in, any `module:function` plugs in.
"""

from __future__ import annotations

import importlib
import random
from functools import lru_cache, partial
from typing import Callable, Literal, Protocol

from foundation.errors import ConfigError
from foundation.stats import sigmoid

__all__ = ["Judge", "load_judge", "load_rater", "import_callable", "rule_judge", "vader_score", "vader_judge",
           "text_of"]


Choice = Literal["A", "B", "tie", "both_bad"]


class Judge(Protocol):
    """What `load_judge` returns and `--judge module:function` must be."""

    def __call__(self, prompt, response_a, response_b) -> tuple[Choice, int]: ...


def text_of(value) -> str:
    """The text of a response given as a string or as chat messages."""
    if isinstance(value, str):
        return value
    return "\n".join(m["content"] for m in value)


@lru_cache(maxsize=1)
def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def vader_score(text: str) -> float:
    """VADER compound sentiment in [-1, 1]."""
    return _vader().polarity_scores(text)["compound"]


def vader_judge(prompt, response_a, response_b, *, temperature: float = 0.0,
                rng: random.Random | None = None):
    """Prefers the more positive response (VADER compound). With `temperature > 0` the choice is
    drawn from Bradley-Terry: P(A) = σ((s_A − s_B) / temperature), like a noisy human labeler."""
    return rule_judge(vader_score, prompt, response_a, response_b, temperature=temperature, rng=rng,
                      tie_below=0.0)


def import_callable(spec: str, what: str) -> Callable:
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ConfigError(f"{what} {spec!r} must be `vader` or `module:function` "
                          f"(importable from PYTHONPATH).")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"cannot load {what} {spec!r}: {e}. "
                          f"Check the module is on PYTHONPATH and defines `{name}`.") from None
    if not callable(fn):
        raise ConfigError(f"{what} {spec!r} is not callable.")
    return fn


def load_judge(spec: str, *, temperature: float = 0.0) -> Callable:
    """`vader` or `module:function`. With `temperature > 0` (simulated labelers) the judge is noisy in the
    Bradley-Terry way, for `vader` and for any judge function that takes a `temperature` keyword; other
    functions are used as they are (their own noise, if any, is theirs)."""
    judge = vader_judge if spec == "vader" else import_callable(spec, "judge")
    if temperature > 0 and _takes_temperature(judge):
        return partial(judge, temperature=temperature)
    return judge


def _takes_temperature(fn: Callable) -> bool:
    import inspect

    try:
        return "temperature" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def rule_judge(score: Callable[[str], float], prompt, response_a, response_b, *, temperature: float = 0.0,
               rng: random.Random | None = None, tie_below: float = 1e-9):
    """A judge from a scalar `score(text)` (higher is better): the higher score wins; with
    `temperature > 0` the choice is drawn from Bradley-Terry, P(A) = σ((s_A − s_B) / temperature), like a
    noisy labeler. Strength 1-4 grows with the gap. Build judges as `partial(rule_judge, my_score)`."""
    diff = score(text_of(response_a)) - score(text_of(response_b))
    if temperature > 0:
        choice = "A" if (rng or random).random() < sigmoid(diff / temperature) else "B"
    else:
        choice = "A" if diff > tie_below else "B" if diff < -tie_below else "tie"
    gap = abs(diff)
    return choice, 1 if gap < 0.1 else 2 if gap < 0.3 else 3 if gap < 0.6 else 4


def load_rater(spec: str, *, threshold: float = 0.0) -> Callable:
    """A rater for single-response ratings, `rater(prompt, response) -> "good" | "bad"`: `vader` rates
    good above `threshold` (VADER compound); a judge built as `partial(rule_judge, score)` rates its
    score against `threshold`; any other `module:function` taking (prompt, response) is used as it is
    (returning "good"/"bad", a bool, or a number compared with `threshold`)."""
    fn = vader_judge if spec == "vader" else import_callable(spec, "rater")
    if fn is vader_judge:
        return lambda prompt, response: "good" if vader_score(text_of(response)) > threshold else "bad"
    if isinstance(fn, partial) and fn.func is rule_judge and fn.args:
        score = fn.args[0]
        return lambda prompt, response: "good" if score(text_of(response)) > threshold else "bad"

    if _required_positional(fn) > 2:
        raise ConfigError(f"{spec!r} is a pairwise judge (prompt, response_a, response_b); ratings need a "
                          f"rater (prompt, response), or a judge built as partial(rule_judge, score).")

    def rater(prompt, response):
        out = fn(prompt, response)
        if isinstance(out, str) and out in ("good", "bad"):
            return out
        if isinstance(out, (bool, int, float)):
            return "good" if (out is True or (out is not False and out > threshold)) else "bad"
        raise ConfigError(f"rater {spec!r} returned {out!r}; return \"good\", \"bad\", a bool or a number.")
    return rater


def _required_positional(fn: Callable) -> int:
    import inspect

    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 0
    return sum(p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
               for p in params)
