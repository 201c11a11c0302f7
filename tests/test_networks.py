import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jaxtyping import TypeCheckError

from pdqn.layers import Conv3x3, LayerNorm
from pdqn.networks import QNetwork


def test_patch_convolution_equals_lax_convolution():
    key_x, key_w = jax.random.split(jax.random.PRNGKey(0))
    x = jax.random.normal(key_x, (5, 10, 10, 4))
    conv = Conv3x3(4, 16, key=key_w)
    kernel = conv.kernel.weight.reshape(3, 3, 4, 16)  # (row, col, in, out): the patch order
    expected = jax.lax.conv_general_dilated(
        x, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
    ) + conv.kernel.bias
    np.testing.assert_allclose(conv(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("channels, actions", [(4, 3), (7, 3), (10, 6)])
def test_q_network_maps_observations_to_action_values(channels, actions):
    net = QNetwork((10, 10, channels), actions, key=jax.random.PRNGKey(0))
    assert net(jnp.zeros((8, 10, 10, channels))).shape == (8, actions)
    assert net.conv.kernel.weight.shape == (9 * channels, 16)
    assert net.hidden.weight.shape == (8 * 8 * 16, 128)


def test_layer_norm_normalises_the_last_axis():
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 5, 16)) * 7 + 2
    y = LayerNorm(16)(x)
    np.testing.assert_allclose(jnp.mean(y, -1), 0, atol=1e-5)
    np.testing.assert_allclose(jnp.std(y, -1), 1, atol=1e-3)


def test_norm_none_has_no_norm_parameters():
    net = QNetwork((10, 10, 4), 3, key=jax.random.PRNGKey(0), norm="none")
    assert net.conv_norm.norm is None and net.hidden_norm.norm is None


def test_shapes_are_checked_at_runtime():
    net = QNetwork((10, 10, 4), 3, key=jax.random.PRNGKey(0))
    with pytest.raises(TypeCheckError):
        net(jnp.zeros((10, 10, 4)))  # missing batch axis
