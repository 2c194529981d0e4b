import pytest

from controlplane.client.ratelimit import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    default_controller_rate_limiter,
)


def test_item_exponential_doubles_from_5ms_and_caps_at_1000s():
    limiter = ItemExponentialFailureRateLimiter(0.005, 1000.0)
    delays = [limiter.when("a", 0.0) for _ in range(22)]
    assert delays[:4] == [0.005, 0.010, 0.020, 0.040]
    assert delays[17] == pytest.approx(0.005 * 2**17)  # 655.36 s, still under the cap
    assert delays[18:] == [1000.0] * 4
    assert limiter.num_requeues("a") == 22
    assert limiter.num_requeues("b") == 0


def test_item_exponential_is_per_key_and_forget_resets():
    limiter = ItemExponentialFailureRateLimiter(0.005, 1000.0)
    assert [limiter.when("a", 0.0) for _ in range(3)] == [0.005, 0.010, 0.020]
    assert limiter.when("b", 0.0) == 0.005
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0
    assert limiter.when("a", 0.0) == 0.005
    limiter.forget("never-seen")  # no error


def test_item_exponential_does_not_overflow():
    limiter = ItemExponentialFailureRateLimiter(0.005, 1000.0)
    for _ in range(3000):
        delay = limiter.when("a", 0.0)
    assert delay == 1000.0


def test_bucket_burst_then_10_qps():
    bucket = BucketRateLimiter(qps=10.0, burst=100)
    assert [bucket.when(i, 0.0) for i in range(100)] == [0.0] * 100
    assert bucket.when("x", 0.0) == pytest.approx(0.1)
    assert bucket.when("y", 0.0) == pytest.approx(0.2)
    # 1 s later 10 tokens came back, repaying the 2 of debt: 8 free, then debt again.
    assert [bucket.when(i, 1.0) for i in range(8)] == [0.0] * 8
    assert bucket.when("z", 1.0) == pytest.approx(0.1)
    # A long idle period refills to the burst, never beyond.
    assert [bucket.when(i, 1000.0) for i in range(100)] == [0.0] * 100
    assert bucket.when("w", 1000.0) == pytest.approx(0.1)
    assert bucket.num_requeues("x") == 0


def test_max_of_takes_the_longest_and_consults_all():
    limiter = default_controller_rate_limiter()
    assert [limiter.when("a", 0.0) for _ in range(3)] == [0.005, 0.010, 0.020]
    # 97 distinct keys use up the rest of the burst (3 tokens already taken by "a").
    for i in range(97):
        assert limiter.when(i, 0.0) == 0.005
    assert limiter.when("b", 0.0) == pytest.approx(0.1)  # bucket dominates now
    assert limiter.num_requeues("a") == 3
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0


def test_max_of_needs_a_limiter():
    with pytest.raises(ValueError, match=r"^MaxOfRateLimiter needs at least one limiter$"):
        MaxOfRateLimiter()
