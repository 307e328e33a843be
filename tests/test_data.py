import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from torch_rnnsin.lesson.data import make_stream_chunks, make_windows, sine_wave, split_series


def test_reference_shapes():
    df = sine_wave()
    assert list(df.columns) == ["t", "sin_t", "sin_t_clean"]
    assert len(df) == 5001
    train, test = split_series(df["sin_t"].to_numpy(), 0.25)
    assert (len(train), len(test)) == (3750, 1251)
    X, y = make_windows(train, 2)
    Xv, yv = make_windows(test, 2)
    assert X.shape == (3748, 2, 1)
    assert y.shape == (3748, 1)
    assert Xv.shape == (1249, 2, 1)
    assert yv.shape == (1249, 1)
    assert X.dtype == np.float32
    assert y.dtype == np.float32


def test_clean_wave_formula_and_phase_noise():
    df = sine_wave(steps_per_cycle=10, number_of_cycles=3, random_factor=0.0)
    t = np.arange(31)
    np.testing.assert_allclose(df["sin_t"], np.sin(t * 2 * np.pi / 10))
    noisy = sine_wave(10, 3, random_factor=0.4, seed=7)
    u = np.random.default_rng(7).uniform(-1, 1, 31)
    np.testing.assert_allclose(noisy["sin_t"], np.sin(t * 2 * np.pi / 10 + 0.4 * u))
    np.testing.assert_allclose(noisy["sin_t_clean"], df["sin_t_clean"])
    # the noise is on the phase: values stay inside [-1, 1]
    assert np.abs(sine_wave(10, 50, random_factor=2.0, seed=1)["sin_t"]).max() <= 1.0


def test_seed_reproducible_and_different():
    a = sine_wave(random_factor=0.2, seed=3)["sin_t"]
    b = sine_wave(random_factor=0.2, seed=3)["sin_t"]
    c = sine_wave(random_factor=0.2, seed=4)["sin_t"]
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_windows_content():
    v = np.arange(10, dtype=np.float32)
    X, y = make_windows(v, 3)
    assert X.shape == (7, 3, 1)
    for i in range(7):
        assert np.array_equal(X[i, :, 0], v[i : i + 3])
        assert y[i, 0] == v[i + 3]


@pytest.mark.parametrize("seq_len", [0, -3, 10, 2.5])
def test_windows_reject_bad_seq_len(seq_len):
    with pytest.raises(ValueError, match="seq_len"):
        make_windows(np.arange(10.0), seq_len)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_windows_reject_non_finite(bad):
    v = np.arange(10.0)
    v[4] = bad
    with pytest.raises(ValueError, match="index 4"):
        make_windows(v, 2)


@pytest.mark.parametrize("test_size", [0, 1, 1.5, -0.1])
def test_split_rejects_bad_test_size(test_size):
    with pytest.raises(ValueError, match="test_size"):
        split_series(np.arange(10.0), test_size)


def test_stream_chunks_continue_each_other():
    v = np.arange(103, dtype=np.float32)  # 4 streams of 25, 3 leftover points dropped
    X, y = make_stream_chunks(v, seq_len=3, streams=4, targets="last")
    K = (25 - 1) // 3
    assert X.shape == (K, 4, 3, 1)
    assert y.shape == (K, 4, 1)
    for k in range(K):
        for i in range(4):
            start = i * 25 + k * 3
            assert np.array_equal(X[k, i, :, 0], v[start : start + 3])
            assert y[k, i, 0] == v[start + 3]
    # sample i of batch k+1 continues sample i of batch k
    assert np.array_equal(X[1, :, 0, 0], X[0, :, -1, 0] + 1)
    Xs, ys = make_stream_chunks(v, 3, 4, targets="seq")
    assert np.array_equal(Xs, X)
    assert ys.shape == (K, 4, 3, 1)
    assert np.array_equal(ys[..., 0], X[..., 0] + 1)


def test_stream_chunks_trap_seq_len_5_targets_all_zero():
    """The lesson's trap: seq_len 5 on the period-10 wave, 50 streams of 75 points; every
    target is a zero crossing."""
    train, _ = split_series(sine_wave()["sin_t"].to_numpy())
    _, y = make_stream_chunks(train, 5, 50, targets="last")
    assert np.abs(y).max() < 1e-9
    _, ys = make_stream_chunks(train, 5, 50, targets="seq")
    assert np.abs(ys).max() > 0.9


@settings(max_examples=80, deadline=None)
@given(
    values=arrays(np.float64, st.integers(2, 60), elements=st.floats(-1e3, 1e3)),
    seq_len=st.integers(1, 70),
)
def test_windows_property(values, seq_len):
    """Any finite series: N = n - L windows, each the slice before its target; or a ValueError."""
    n = len(values)
    if seq_len >= n:
        with pytest.raises(ValueError, match="seq_len"):
            make_windows(values, seq_len)
        return
    X, y = make_windows(values, seq_len)
    v32 = values.astype(np.float32)
    assert X.shape == (n - seq_len, seq_len, 1)
    assert y.shape == (n - seq_len, 1)
    i = np.arange(n - seq_len)
    assert np.array_equal(X[:, 0, 0], v32[i])
    assert np.array_equal(X[:, -1, 0], v32[i + seq_len - 1])
    assert np.array_equal(y[:, 0], v32[i + seq_len])


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 300), seq_len=st.integers(1, 12), streams=st.integers(1, 20))
def test_stream_chunks_property(n, seq_len, streams):
    """Every chunk is contiguous in the series, the target follows it, streams don't overlap."""
    v = np.arange(n, dtype=np.float32)
    S = n // streams
    if streams > n or (S - 1) // seq_len < 1:
        with pytest.raises(ValueError, match="leave no chunk of seq_len"):
            make_stream_chunks(v, seq_len, streams)
        return
    X, y = make_stream_chunks(v, seq_len, streams, targets="last")
    K = (S - 1) // seq_len
    assert X.shape == (K, streams, seq_len, 1)
    assert np.array_equal(np.diff(X[..., 0], axis=2), np.ones((K, streams, seq_len - 1)))
    assert np.array_equal(y[..., 0], X[:, :, -1, 0] + 1)
    assert X.max() < streams * S  # leftovers at the end are dropped
    starts = X[0, :, 0, 0]
    assert np.array_equal(starts, np.arange(streams) * S)


def test_wave_parts_is_the_split_noisy_series():
    from torch_rnnsin.lesson.data import wave_parts

    tr, te = wave_parts(10, 40, 0.3, 5, 0.25)
    want = split_series(sine_wave(10, 40, 0.3, seed=5)["sin_t"].to_numpy(), 0.25)
    assert np.array_equal(tr, want[0])
    assert np.array_equal(te, want[1])
