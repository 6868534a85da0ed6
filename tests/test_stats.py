import pytest

from foundation.stats import intervals_overlap, mean_interval, sigmoid, wilson_interval


def test_wilson_interval_known_values():
    # 81 wins of 100: the textbook Wilson interval is [0.7222, 0.8749]
    low, high = wilson_interval(0.81, 100)
    assert low == pytest.approx(0.7222, abs=1e-4) and high == pytest.approx(0.8749, abs=1e-4)
    # 10 prompts cannot tell 0.6 from 0.95: the interval of 0.8 on 10 is about ±0.25
    low, high = wilson_interval(0.8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(1.0, 20)[1] == 1.0 and wilson_interval(0.0, 20)[0] == 0.0
    assert wilson_interval(0.5, 0) == (0.0, 1.0)


def test_mean_interval_and_overlap():
    low, high = mean_interval([1.0, 2.0, 3.0, 4.0])
    assert (low + high) / 2 == pytest.approx(2.5) \
        and high - low == pytest.approx(2 * 1.959964 * 1.2910 / 2, rel=1e-3)
    assert mean_interval([3.0]) == (3.0, 3.0)
    assert intervals_overlap((0.1, 0.5), (0.4, 0.9)) and not intervals_overlap((0.1, 0.3), (0.4, 0.9))
    assert sigmoid(0.0) == 0.5 and sigmoid(1000.0) == pytest.approx(1.0) and sigmoid(-1000.0) >= 0.0


def test_dense_ranks():
    from foundation.stats import dense_ranks

    assert dense_ranks([3.0, 1.0, 3.0, 2.5]) == [1, 3, 1, 2]          # higher first, ties share
    assert dense_ranks([1, 1, 3], higher_first=False) == [1, 1, 2]      # no gap after a tie
