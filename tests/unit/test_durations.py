"""The poll window learned from recent durations (aigc.domain.durations), with the catalog as the prior."""
from aigc.core.catalog import get_model
from aigc.domain.durations import MIN_SAMPLES, estimate

OUTPAINT = get_model("image-out-painting")  # expectedSeconds 20


def test_without_enough_samples_the_catalog_is_the_prior():
    window = estimate(OUTPAINT, [3.0] * (MIN_SAMPLES - 1))
    assert window.typical == 20 and window.start == 5.0


def test_the_window_starts_before_the_fastest_recent_jobs():
    samples = [20.0 + i % 5 for i in range(30)]
    window = estimate(OUTPAINT, samples)
    assert 13 <= window.start < 20  # waits most of the way, polls before the fastest ended
    assert window.typical == 22


def test_short_jobs_pull_the_window_down_to_a_second():
    window = estimate(OUTPAINT, [1.0, 2.0, 30.0, 30.0, 31.0, 45.0, 90.0])
    assert window.start == 1.0
    assert window.typical == 30.0
