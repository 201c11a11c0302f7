"""The shared minibatch update: weighted TD loss and optimiser behaviour."""

import jax
import jax.numpy as jnp
import numpy as np

from pdqn.networks import QNetwork
from pdqn.q_update import QBatch, batch_mean_td_loss, q_optimiser, sgd_epochs, td_loss


def batch(weight: float) -> QBatch:
    key = jax.random.PRNGKey(0)
    return QBatch(
        obs=jax.random.bernoulli(key, 0.3, (16, 5, 5, 2)).astype(jnp.float32),
        action=jnp.arange(16) % 3,
        target=jnp.linspace(-1.0, 1.0, 16),
        weight=jnp.full(16, weight),
    )


def test_weighted_td_loss_ignores_zero_weight_rows():
    net = QNetwork((5, 5, 2), 3, key=jax.random.PRNGKey(1))
    full = batch(1.0)
    half = QBatch(obs=full.obs, action=full.action, target=full.target, weight=(jnp.arange(16) < 8).astype(jnp.float32))
    first = QBatch(obs=full.obs[:8], action=full.action[:8], target=full.target[:8], weight=jnp.ones(8))
    np.testing.assert_allclose(td_loss(net, half)[0], td_loss(net, first)[0], rtol=1e-6)
    q_sa = net(full.obs)[jnp.arange(16), full.action]
    np.testing.assert_allclose(td_loss(net, full)[0], 0.5 * jnp.mean((q_sa - full.target) ** 2), rtol=1e-6)


def test_batch_mean_td_loss_divides_by_all_rows_so_sparse_minibatches_weigh_less():
    net = QNetwork((5, 5, 2), 3, key=jax.random.PRNGKey(1))
    full = batch(1.0)
    quarter = QBatch(obs=full.obs, action=full.action, target=full.target, weight=(jnp.arange(16) < 4).astype(jnp.float32))
    q_sa = net(full.obs)[jnp.arange(16), full.action]
    by_hand = 0.5 * jnp.sum((q_sa[:4] - full.target[:4]) ** 2) / 16
    np.testing.assert_allclose(batch_mean_td_loss(net, quarter)[0], by_hand, rtol=1e-6)
    np.testing.assert_allclose(batch_mean_td_loss(net, quarter)[0], td_loss(net, quarter)[0] / 4, rtol=1e-6)
    np.testing.assert_allclose(batch_mean_td_loss(net, full)[0], td_loss(net, full)[0], rtol=1e-6)
    np.testing.assert_allclose(batch_mean_td_loss(net, quarter)[1], jnp.mean(q_sa[:4]), rtol=1e-6)


def test_minibatches_without_weight_leave_network_and_optimiser_unchanged():
    net = QNetwork((5, 5, 2), 3, key=jax.random.PRNGKey(1))
    optimiser = q_optimiser(10.0)
    opt_state = optimiser.init(net)
    key = jax.random.PRNGKey(2)
    # One real step first, so that Adam's momentum is non-zero.
    net, opt_state, _ = sgd_epochs(td_loss, optimiser, net, opt_state, batch(1.0), key=key, learning_rate=jnp.asarray(1e-2), num_epochs=1, num_minibatches=1)
    after, after_state, _ = sgd_epochs(td_loss, optimiser, net, opt_state, batch(0.0), key=key, learning_rate=jnp.asarray(1e-2), num_epochs=2, num_minibatches=2)
    for a, b in zip(jax.tree.leaves((net, opt_state)), jax.tree.leaves((after, after_state))):
        np.testing.assert_array_equal(a, b)
    moved, _, _ = sgd_epochs(td_loss, optimiser, net, opt_state, batch(1.0), key=key, learning_rate=jnp.asarray(1e-2), num_epochs=1, num_minibatches=2)
    assert not all(jnp.array_equal(a, b) for a, b in zip(jax.tree.leaves(net), jax.tree.leaves(moved)))


def test_extra_minibatches_beyond_one_epoch_draw_shuffled_passes():
    """The wall-clock-matched control can take more extra steps than a batch holds: every row is drawn once per
    pass before any repeats."""
    from pdqn.learner import subsample

    data = jnp.arange(10)
    drawn = np.asarray(subsample(jax.random.PRNGKey(0), data, 25))
    assert sorted(drawn[:10]) == list(range(10)) and sorted(drawn[10:20]) == list(range(10))
    assert len(set(drawn[20:])) == 5
    assert not np.array_equal(drawn[:10], drawn[10:20])  # each pass is shuffled afresh
