"""Accounting checked against bounds computed here from first principles, not from dp_accounting.

- q = 1 (full batch): T Gaussian steps with multiplier sigma are one Gaussian mechanism with
  mu = sqrt(T) / sigma, whose exact (eps, delta) curve is the analytic Gaussian mechanism
  (Balle & Wang 2018). PLD must match it; RDP must not be below it.
- q < 1, one step: the privacy loss of the Poisson-subsampled Gaussian is monotone in the
  output, so its hockey-stick divergence has a closed form in Phi (both directions).
- the classical RDP bound of the Gaussian, min_a T a / (2 sigma^2) + log(1/delta) / (a - 1),
  is an upper bound that the RDP accountant (which converts more tightly) must not exceed.
"""
from __future__ import annotations

import math

import pytest

from securepipe.training import accounting


def _phi_c(x: float) -> float:
    return 0.5 * math.erfc(x / math.sqrt(2))


def _bisect_epsilon(delta_of_eps, delta: float) -> float:
    low, high = 0.0, 200.0
    for _ in range(200):
        mid = (low + high) / 2
        if delta_of_eps(mid) > delta:
            low = mid
        else:
            high = mid
    return high


def _exact_gaussian_epsilon(mu: float, delta: float) -> float:
    def delta_of(eps):
        return _phi_c(eps / mu - mu / 2) - math.exp(eps) * _phi_c(eps / mu + mu / 2)

    return _bisect_epsilon(delta_of, delta)


def _exact_subsampled_one_step_epsilon(sigma: float, q: float, delta: float) -> float:
    """One Poisson-subsampled Gaussian step, add/remove neighbours, sensitivity 1."""

    def delta_of(eps):
        # P = (1-q) N(0, s) + q N(1, s) versus Q = N(0, s); loss increases with x.
        x = sigma**2 * math.log((math.exp(eps) - (1 - q)) / q) + 0.5
        d_pq = (1 - q) * _phi_c(x / sigma) + q * _phi_c((x - 1) / sigma) - math.exp(eps) * _phi_c(x / sigma)
        d_qp = 0.0
        if math.exp(-eps) > 1 - q:  # Q over P exceeds e^eps only where P's bump is absent
            x2 = sigma**2 * math.log((math.exp(-eps) - (1 - q)) / q) + 0.5
            d_qp = (1 - _phi_c(x2 / sigma)) - math.exp(eps) * (
                (1 - q) * (1 - _phi_c(x2 / sigma)) + q * (1 - _phi_c((x2 - 1) / sigma))
            )
        return max(d_pq, d_qp)

    return _bisect_epsilon(delta_of, delta)


def _classical_rdp_bound(sigma: float, steps: int, delta: float) -> float:
    return min(steps * a / (2 * sigma**2) + math.log(1 / delta) / (a - 1) for a in [1 + i / 10 for i in range(1, 2000)])


@pytest.mark.parametrize("sigma, steps, delta", [(1.0, 1, 1e-5), (5.0, 50, 1e-5), (20.0, 400, 1e-6), (2.0, 10, 1e-3)])
def test_full_batch_epsilon_matches_analytic_gaussian(sigma, steps, delta):
    exact = _exact_gaussian_epsilon(math.sqrt(steps) / sigma, delta)
    pld = accounting.epsilon_for_steps(sigma, 1.0, steps, delta, "pld")
    rdp = accounting.epsilon_for_steps(sigma, 1.0, steps, delta, "rdp")
    assert exact - 1e-4 <= pld <= exact * 1.005 + 1e-4  # PLD rounds pessimistically, never below the truth
    assert exact <= rdp <= _classical_rdp_bound(sigma, steps, delta) + 1e-9


@pytest.mark.parametrize("sigma, q, delta", [(1.0, 0.01, 1e-5), (0.8, 0.1, 1e-5), (2.0, 0.5, 1e-6)])
def test_one_subsampled_step_matches_closed_form(sigma, q, delta):
    exact = _exact_subsampled_one_step_epsilon(sigma, q, delta)
    pld = accounting.epsilon_for_steps(sigma, q, 1, delta, "pld")
    rdp = accounting.epsilon_for_steps(sigma, q, 1, delta, "rdp")
    assert exact - 1e-4 <= pld <= exact * 1.005 + 1e-4
    assert rdp >= exact - 1e-4  # an upper bound may be loose, never below the exact value


def test_subsampling_amplifies_and_more_noise_or_fewer_steps_spend_less():
    base = accounting.epsilon_spent(10_000, 100, 5, 1.0, 1e-5)
    assert base < accounting.epsilon_for_steps(1.0, 1.0, accounting.steps_for(10_000, 100, 5), 1e-5)
    assert accounting.epsilon_spent(10_000, 100, 5, 1.5, 1e-5) < base
    assert accounting.epsilon_spent(10_000, 100, 2, 1.0, 1e-5) < base
    assert accounting.epsilon_spent(10_000, 100, 5, 1.0, 1e-4) < base
    assert accounting.epsilon_spent(10_000, 100, 5, 0.0, 1e-5) == math.inf


@pytest.mark.parametrize("accountant", accounting.ACCOUNTANTS)
@pytest.mark.parametrize("target, n, batch, epochs", [(3.0, 4000, 256, 20), (1.0, 455, 128, 30), (8.0, 50_000, 512, 3)])
def test_noise_search_reaches_the_target(accountant, target, n, batch, epochs):
    plan = accounting.noise_for_epsilon(target, n, batch, epochs, 1e-5, accountant)
    assert plan.epsilon <= target
    assert plan.epsilon >= target * 0.99  # not wastefully noisy
    # slightly less noise must overshoot: the search found the boundary
    assert accounting.epsilon_spent(n, batch, epochs, plan.noise_multiplier * 0.98, 1e-5, accountant) > target
    assert plan.steps == epochs * math.ceil(n / batch)
    assert plan.sampling_rate == pytest.approx(batch / n)


def test_pld_is_tighter_than_rdp():
    pld = accounting.noise_for_epsilon(3.0, 4000, 256, 20, 1e-5, "pld")
    rdp = accounting.noise_for_epsilon(3.0, 4000, 256, 20, 1e-5, "rdp")
    assert pld.noise_multiplier < rdp.noise_multiplier < pld.noise_multiplier * 1.2


def test_loose_target_gets_the_search_floor_not_less_noise():
    plan = accounting.noise_for_epsilon(1000.0, 1000, 100, 1, 1e-5)
    assert plan.noise_multiplier == accounting.NOISE_SEARCH_BRACKET[0]
    assert plan.epsilon <= 1000.0


@pytest.mark.parametrize("kwargs, message", [
    ({"target_epsilon": 0.0}, "target epsilon"),
    ({"target_epsilon": math.inf}, "target epsilon"),
    ({"n": 0}, "empty"),
    ({"batch_size": 0}, "batch size"),
    ({"batch_size": 101}, "batch size"),
    ({"epochs": 0}, "epochs"),
    ({"delta": 0.0}, "delta"),
    ({"delta": 1.0}, "delta"),
    ({"accountant": "moments"}, "accountant"),
    ({"target_epsilon": 1e-4, "epochs": 50, "batch_size": 100}, "unreachable"),
])
def test_bad_plans_are_refused(kwargs, message):
    args = {"target_epsilon": 3.0, "n": 100, "batch_size": 10, "epochs": 2, "delta": 1e-5, **kwargs}
    with pytest.raises(ValueError, match=message):
        accounting.noise_for_epsilon(**args)


def test_default_delta_is_well_below_one_over_n():
    for n in (10, 1000, 10**6):
        assert accounting.default_delta(n) <= 1 / (10 * n)
        assert accounting.default_delta(n) <= 1e-5


def test_statement_states_the_sampling_and_numbers():
    plan = accounting.noise_for_epsilon(3.0, 4000, 256, 20, 1e-5)
    assert plan.sampling == "poisson"
    text = accounting.privacy_statement(plan, 3.0)
    assert "Poisson sampling" in text and "no other release was accounted" in text
    assert f"{plan.epsilon:.3f}" in text and "PLD" in text and str(plan.steps) in text


def test_scaling_and_accuracy_releases_are_inside_the_accountants_epsilon():
    releases = accounting.release_noise(3.0, 1e-5)
    assert set(releases) == {"scaling", "accuracy"}
    for name, sigma in releases.items():  # each alone costs its stated share of the target
        assert accounting.gaussian_epsilon(sigma, 1e-5) == pytest.approx(
            accounting.RELEASE_EPSILON_SHARES[name] * 3.0, rel=0.02)
    plan = accounting.noise_for_epsilon(3.0, 4000, 256, 20, 1e-5, releases=releases)
    assert plan.epsilon <= 3.0 and plan.releases == releases
    # the figure is the composition: recomputable from the card's numbers, and more than DP-SGD alone
    recomputed = accounting.epsilon_spent(4000, 256, 20, plan.noise_multiplier, 1e-5, releases=plan.releases)
    assert recomputed == pytest.approx(plan.epsilon)
    assert accounting.epsilon_spent(4000, 256, 20, plan.noise_multiplier, 1e-5) < plan.epsilon
    assert plan.noise_multiplier > accounting.noise_for_epsilon(3.0, 4000, 256, 20, 1e-5).noise_multiplier
    text = accounting.privacy_statement(plan, 3.0)
    assert "All released numbers within epsilon" in text and "input scaling" in text and "held-out accuracy" in text
