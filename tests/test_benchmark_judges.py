"""The benchmark's judges prefer what they say they prefer, as gold judges and as noisy labelers."""

import random

from foundation.judges import load_judge

PROMPT = [{"role": "user", "content": "Write a short review of the fountain pen."}]


def test_each_judge_prefers_its_own_quality():
    plain, glowing = "It writes. The ink is blue.", "Wonderful! I love it, an amazing and delightful joy!"
    cases = {
        "reserved_critic": (plain, glowing),
        "target_length": (" ".join(["word"] * 29), " ".join(["word"] * 60)),
        "first_person": ("I bought it and my letters look neat to me.", "It writes neatly."),
        "names_subject": ("This fountain pen beats my old pens.", "It writes neatly and the ink flows."),
    }
    for name, (better, worse) in cases.items():
        judge = load_judge(f"benchmarks.judges:{name}")
        assert judge(PROMPT, better, worse)[0] == "A", name
        assert judge(PROMPT, worse, better)[0] == "B", name
    assert load_judge("vader")(PROMPT, glowing, plain)[0] == "A"


def test_names_subject_reads_the_prompt_and_is_noisy_as_a_labeler():
    judge = load_judge("benchmarks.judges:names_subject")
    kettle = [{"role": "user", "content": "What did you think of the electric kettle? Answer briefly."}]
    about_kettle, about_pen = "The kettle boils fast; an electric kettle to keep.", "A fine fountain pen."
    assert judge(kettle, about_kettle, about_pen)[0] == "A"
    assert judge(PROMPT, about_kettle, about_pen)[0] == "B"
    assert judge(PROMPT, "Nice.", "Good.")[0] == "tie"          # neither names it
    noisy = load_judge("benchmarks.judges:names_subject", temperature=0.5)
    rng = random.Random(0)
    choices = [noisy(PROMPT, about_pen, "Nice.", rng=rng)[0] for _ in range(200)]
    assert 0.65 < choices.count("A") / 200 < 0.92          # two mentions to none: σ((2/3) / 0.5) ≈ 0.79
