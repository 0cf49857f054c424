"""LinearHistone scores L-BFGS's repeated evaluations from the batch's moments (epx.models.linear).

The moments' mean squared error must equal the forward's (value and gradients), the module's
``objective_loss`` must choose it only for the regression objective's own loss and only when a
batch is evaluated again (or its rows come back in another order), and a full-batch L-BFGS fit
must reach the same weights either way.
"""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
import torch.nn.functional as F

from epx.models.linear import LinearHistone, RidgeMoments
from epx.train.module import objective_loss
from epx.train.objectives import Classification, Regression


def ridge_data(n=300, m=3, length=20, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    level = torch.rand(n, m, 1, generator=g, dtype=torch.float64) * 3
    x = level * torch.rand(1, 1, length, generator=g, dtype=torch.float64) + torch.rand(n, m, length, generator=g, dtype=torch.float64)
    y = x.flatten(1) @ (torch.randn(m * length, generator=g, dtype=torch.float64) * 0.1) + torch.randn(n, generator=g, dtype=torch.float64) + 2.0
    return x.to(dtype), y.to(dtype)


def batch_of(x, y, gene=None):
    return {"x": {"x": x}, "y": y, "gene": torch.arange(len(y)) if gene is None else gene}


def grads(net, loss):
    net.zero_grad()
    loss.backward()
    return net.linear.weight.grad.clone(), net.linear.bias.grad.clone()


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 2e-5)])
def test_moments_loss_and_gradients_equal_the_forward(dtype, tol):
    x, y = ridge_data(dtype=dtype)
    net = LinearHistone(n_marks=3, n_bins=20).to(dtype)
    torch.manual_seed(1)
    with torch.no_grad():
        net.linear.weight.normal_(0, 0.1)
        net.linear.bias.fill_(0.7)
    moments = RidgeMoments(x, y, None)
    direct = F.mse_loss(net(x).squeeze(-1), y)
    own = moments.mean_squared_error(net.linear.weight, net.linear.bias)
    assert own.dtype == torch.float64
    torch.testing.assert_close(own.to(dtype), direct, rtol=tol, atol=0)
    for a, b in zip(grads(net, direct), grads(net, own.to(dtype))):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * float(b.abs().max()))


def test_objective_loss_uses_moments_from_the_second_evaluation_and_for_reordered_rows():
    x, y = ridge_data()
    net = LinearHistone(n_marks=3, n_bins=20)
    batch = batch_of(x, y)
    objective = Regression()
    assert net.objective_loss(objective, batch) is None  # first sight: the forward
    first = objective_loss(net, objective, batch)
    torch.testing.assert_close(first, objective.loss(net(x), batch))
    moments = net._moments
    assert moments is not None and moments.holds(x, y)
    # the next epoch's batch: the same genes shuffled, new tensors
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(3))
    shuffled = batch_of(x[order].clone(), y[order].clone(), gene=order)
    again = net.objective_loss(objective, shuffled)
    assert again is not None and net._moments is moments
    torch.testing.assert_close(again, objective.loss(net(shuffled["x"]["x"]), shuffled))
    # other rows (one value changed), a modified tensor, another objective: the forward
    changed = shuffled["x"]["x"].clone()
    changed[0, 0, 0] += 1.0
    assert net.objective_loss(objective, batch_of(changed, shuffled["y"], gene=order)) is None
    assert net._moments is moments
    x[0, 0, 0] += 1.0  # in place: the version moves, so the moments no longer hold
    assert net.objective_loss(objective, batch) is None


def test_only_the_regression_objectives_own_loss_uses_moments():
    x, y = ridge_data()

    class Huber(Regression):
        def loss(self, out, batch):
            return F.huber_loss(out.squeeze(-1), batch["y"])

    for objective, net in ((Huber(), LinearHistone(n_marks=3, n_bins=20)),
                           (Classification(), LinearHistone(n_marks=3, n_bins=20, out_dim=2))):
        batch = batch_of(x, (y > y.median()).long() if isinstance(objective, Classification) else y)
        for _ in range(3):
            assert net.objective_loss(objective, batch) is None
    with torch.no_grad():  # evaluation never takes it
        net = LinearHistone(n_marks=3, n_bins=20)
        batch = batch_of(x, y)
        assert net.objective_loss(Regression(), batch) is None and net.objective_loss(Regression(), batch) is None


def lbfgs_fit(own: bool, x, y):
    net = LinearHistone(n_marks=3, n_bins=20, l2=0.1)
    optimizer = torch.optim.LBFGS(net.parameters(), lr=1.0, max_iter=50, line_search_fn="strong_wolfe")
    objective, batch = Regression(), batch_of(x, y)

    def closure():
        loss = (objective_loss(net, objective, batch) if own else objective.loss(net(x), batch)) + net.penalty()
        optimizer.zero_grad()
        loss.backward()
        return loss

    for _ in range(3):
        optimizer.step(closure)
    return net, float(closure().detach())


def test_lbfgs_fit_from_moments_matches_the_forward():
    x, y = ridge_data(n=500)
    direct, direct_loss = lbfgs_fit(False, x, y)
    own, own_loss = lbfgs_fit(True, x, y)
    assert own._moments is not None
    assert own_loss == pytest.approx(direct_loss, rel=1e-6)
    # The features are collinear (one shared profile scaled per gene), so the ridge objective is
    # flat along some weight directions: 150 L-BFGS iterations from float32 evaluations that round
    # differently stop ~2e-4 apart there (seen on one CPU, not another). The fit is what must agree.
    with torch.no_grad():
        torch.testing.assert_close(own(x), direct(x), rtol=1e-4, atol=2e-3)
    torch.testing.assert_close(own.linear.weight, direct.linear.weight, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(own.linear.bias, direct.linear.bias, rtol=1e-3, atol=1e-3)


def test_cached_batches_are_not_part_of_the_model():
    x, y = ridge_data()
    net = LinearHistone(n_marks=3, n_bins=20)
    batch = batch_of(x, y)
    for _ in range(2):
        objective_loss(net, Regression(), batch)
    assert net._moments is not None
    restored = pickle.loads(pickle.dumps(net))
    assert restored._moments is None and restored._last is None
    assert set(net.state_dict()) == {"linear.weight", "linear.bias"}
    torch.testing.assert_close(copy.deepcopy(net).linear.weight, net.linear.weight)  # deepcopy works with them
