"""Window API: exact values on hand-set signal, strand mirroring, padding masks."""

import numpy as np
import pytest

from epx.data.tracks import SignalTracks


def ramp_tracks(n_bins=1000, marks=("A", "B")):
    """Base bin i of mark j holds (i + 1000 j): every window value says where it came from."""
    base = np.stack([np.arange(n_bins) + 1000.0 * j for j in range(len(marks))], axis=1).astype(np.float32)
    return SignalTracks({"chr1": base, "chr2": base[:50].copy()}, marks, base_bp=100)


def raw(x):
    return np.expm1(x)


def test_tss_window_plus_strand_is_centred_and_exact():
    t = ramp_tracks()
    x = t.tss_windows(["chr1"], [50_050], ["+"], window_bp=1000, bin_bp=100)
    assert x.shape == (1, 2, 10)
    np.testing.assert_allclose(raw(x[0, 0]), np.arange(495, 505), rtol=1e-5)  # TSS bin 500 at index 5
    np.testing.assert_allclose(raw(x[0, 1]), np.arange(495, 505) + 1000, rtol=1e-5)


def test_minus_strand_is_mirrored_with_tss_at_same_index():
    t = ramp_tracks()
    x = t.tss_windows(["chr1"], [50_050], ["-"], window_bp=1000, bin_bp=100)
    np.testing.assert_allclose(raw(x[0, 0]), np.arange(505, 495, -1), rtol=1e-5)
    assert raw(x[0, 0, 5]) == pytest.approx(500)


def test_strand_symmetry_on_mirrored_genome():
    rng = np.random.default_rng(0)
    fwd = rng.random((300, 3)).astype(np.float32)
    a = SignalTracks({"c": fwd}, "XYZ").tss_windows(["c"], [12_345], ["+"], window_bp=4000, bin_bp=500)
    mirrored_tss = 300 * 100 - 1 - 12_345
    b = SignalTracks({"c": fwd[::-1].copy()}, "XYZ").tss_windows(["c"], [mirrored_tss], ["-"], window_bp=4000, bin_bp=500)
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_coarse_bins_are_means_of_base_bins():
    t = ramp_tracks()
    x = t.tss_windows(["chr1"], [50_000], ["+"], window_bp=2000, bin_bp=500)
    assert x.shape == (1, 2, 4)
    np.testing.assert_allclose(raw(x[0, 0]), [492, 497, 502, 507], rtol=1e-5)


def test_off_chromosome_bins_are_zero():
    t = ramp_tracks()
    x = t.tss_windows(["chr2", "chrUn"], [200, 100], ["+", "+"], window_bp=1000, bin_bp=100)
    # TSS base bin 2 at index 5: bins -3..-1 are off-chromosome
    np.testing.assert_allclose(raw(x[0, 0])[:3], 0)
    np.testing.assert_allclose(raw(x[0, 0])[3:], np.arange(0, 7), rtol=1e-5)
    assert not x[1].any()


def test_region_windows_centre_pad_and_mask():
    t = ramp_tracks()
    x, mask = t.region_windows(["chr1"], [10_000], [10_300], length_bp=1000, bin_bp=100)
    assert mask[0].tolist() == [False, False, False, True, True, True, False, False, False, False]
    np.testing.assert_allclose(raw(x[0, 0, 3:6]), [100, 101, 102], rtol=1e-5)
    assert not x[0, :, ~mask[0]].any()


def test_region_longer_than_window_is_centre_cropped():
    t = ramp_tracks()
    x, mask = t.region_windows(["chr1"], [0], [2000], length_bp=1000, bin_bp=100)
    assert mask.all()
    np.testing.assert_allclose(raw(x[0, 0]), np.arange(5, 15), rtol=1e-5)


def test_chrom_track_at_coarse_resolution():
    t = ramp_tracks(n_bins=1000)
    track = t.chrom_track("chr2", bin_bp=1000)
    assert track.shape == (2, 5)
    np.testing.assert_allclose(raw(track[0]), [4.5, 14.5, 24.5, 34.5, 44.5], rtol=1e-5)


def test_extraction_is_vectorised_over_many_genes():
    t = ramp_tracks()
    n = 500
    rng = np.random.default_rng(1)
    tss = rng.integers(0, 100_000, n)
    strands = rng.choice(["+", "-"], n)
    many = t.tss_windows(["chr1"] * n, tss, strands, window_bp=2000, bin_bp=100)
    one = np.concatenate([t.tss_windows(["chr1"], [s], [d], window_bp=2000, bin_bp=100) for s, d in zip(tss[:20], strands[:20])])
    np.testing.assert_allclose(many[:20], one)


def test_reversed_region_mirrors_exactly_including_odd_padding():
    rng = np.random.default_rng(2)
    fwd = rng.random((500, 2)).astype(np.float32)
    t = SignalTracks({"f": fwd, "r": fwd[::-1].copy()}, "AB")
    length = 500 * 100
    for s, e in [(1_000, 3_000), (1_050, 2_333), (0, 30_000)]:
        a, ma = t.region_windows(["f"], [s], [e], length_bp=8_000, bin_bp=500)
        b, mb = t.region_windows(["r"], [length - e], [length - s], length_bp=8_000, bin_bp=500, reverse=[True])
        np.testing.assert_allclose(a, b, rtol=1e-6)
        assert (ma == mb).all()
