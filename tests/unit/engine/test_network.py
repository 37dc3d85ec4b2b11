import torch

from n2n_core.engine.network import UNet, count_parameters


def test_parameter_count_matches_paper():
    # The paper's network has ~0.99 M parameters (RGB in/out).
    assert count_parameters(UNet(3)) == 991_203
    assert count_parameters(UNet(1)) == 988_609


def test_layer_shapes():
    net = UNet(3)
    shapes = {
        n: tuple(m.weight.shape) for n, m in net.named_modules() if isinstance(m, torch.nn.Conv2d)
    }
    assert shapes["enc_conv0"] == (48, 3, 3, 3)
    for i in range(1, 7):
        assert shapes[f"enc_conv{i}"] == (48, 48, 3, 3)
    assert shapes["dec_conv5"] == (96, 96, 3, 3)  # upsampled 48 + pool4 48
    for i in (4, 3, 2):
        assert shapes[f"dec_conv{i}"] == (96, 144, 3, 3)  # upsampled 96 + pool 48
        assert shapes[f"dec_conv{i}b"] == (96, 96, 3, 3)
    assert shapes["dec_conv1a"] == (64, 99, 3, 3)  # upsampled 96 + raw input 3
    assert shapes["dec_conv1b"] == (32, 64, 3, 3)
    assert shapes["dec_conv1"] == (3, 32, 3, 3)


def test_output_shape_and_channels():
    x = torch.randn(2, 1, 64, 96)
    assert UNet(1)(x).shape == (2, 1, 64, 96)


def test_he_init_and_zero_bias():
    torch.manual_seed(0)
    net = UNet(3)
    w = net.dec_conv2.weight
    fan_in = w.shape[1] * 9
    assert abs(w.std().item() - (2.0 / fan_in) ** 0.5) < 0.01
    out = net.dec_conv1.weight  # linear output layer: gain 1
    assert abs(out.std().item() - (1.0 / (32 * 9)) ** 0.5) < 0.02
    assert all(
        float(m.bias.detach().abs().max()) == 0
        for m in net.modules()
        if isinstance(m, torch.nn.Conv2d)
    )


def test_leaky_relu_slope():
    # A network whose first layer is the identity: negative inputs pass with slope 0.1.
    net = UNet(1)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.zero_()
        net.dec_conv1a.weight[0, 96, 1, 1] = 1.0  # copy the raw input
        net.dec_conv1b.weight[0, 0, 1, 1] = 1.0
        net.dec_conv1.weight[0, 0, 1, 1] = 1.0
    x = torch.full((1, 1, 32, 32), -1.0)
    with torch.no_grad():
        # two LeakyReLU(0.1) layers (dec_conv1a, dec_conv1b), then a linear output
        assert torch.allclose(net(x), torch.full_like(x, -0.01))
        assert torch.allclose(net(-x), -x)


def test_residual_unet_adds_its_input_and_nothing_else():
    """Same weights, same parameter count; the residual one returns input + correction."""
    import pytest

    torch.manual_seed(0)
    plain, resid = UNet(3), UNet(3, residual=True)
    resid.load_state_dict(plain.state_dict())
    assert count_parameters(plain) == count_parameters(resid)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(resid(x), x + plain(x), atol=1e-6)
        for p in (resid.dec_conv1.weight, resid.dec_conv1.bias):
            p.zero_()
        assert torch.equal(resid(x), x)  # no correction learned: the input as it was
    with pytest.raises(ValueError, match="as many output channels"):
        UNet(3, out_channels=1, residual=True)


def test_snapshot_remembers_a_residual_replicate_padded_network(tmp_path):
    """validate / evaluate / infer / freeze build the network a snapshot was trained as."""
    import pytest

    from n2n_core.engine.snapshots import load_network, save_snapshot
    from n2n_core.errors import UserError

    torch.manual_seed(1)
    net = UNet(3, residual=True, padding="replicate")
    meta = {"step": 5, "residual": True, "padding": "replicate"}
    path = save_snapshot(tmp_path / "s.safetensors", net, meta)
    loaded, snap = load_network(path)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert snap.residual and loaded.residual and loaded.padding == "replicate"
        assert torch.allclose(loaded(x), net(x), atol=1e-6)
        # the same weights zero-padded are another function: the key is what rebuilds it
        zeros = UNet(3, residual=True)
        zeros.load_state_dict(net.state_dict())
        assert not torch.allclose(zeros(x), net(x), atol=1e-3)
    old = save_snapshot(tmp_path / "old.safetensors", UNet(3), {"step": 5})
    old_net = load_network(old)[0]  # snapshots from before the keys: the paper's U-Net
    assert old_net.residual is False and old_net.padding == "zeros"
    bad = save_snapshot(tmp_path / "bad.safetensors", net, {"step": 5, "residual": "yes"})
    with pytest.raises(UserError, match="'residual' is not true or false"):
        load_network(bad)
    bad = save_snapshot(tmp_path / "bad2.safetensors", net, {"step": 5, "padding": "reflect"})
    with pytest.raises(UserError, match="'padding' is not one of zeros, replicate"):
        load_network(bad)


def test_replicate_padding_keeps_a_flat_picture_flat_at_any_size():
    """A flat region larger than any training crop is what a crop-trained zero-padded
    network has never seen (every deep position of a 64-pixel crop touches the zero
    border); replicate padding makes the inside of a flat field look like its edge."""
    torch.manual_seed(3)
    net = UNet(3, residual=True, padding="replicate")
    zeros = UNet(3, residual=True)
    zeros.load_state_dict(net.state_dict())
    colour = torch.tensor([0.3, -0.1, -0.4]).view(1, 3, 1, 1)
    with torch.no_grad():
        small = net(colour.expand(1, 3, 64, 64).contiguous())
        large = net(colour.expand(1, 3, 256, 192).contiguous())
        assert torch.allclose(small, small[..., :1, :1].expand_as(small), atol=1e-5)
        assert torch.allclose(large[..., :1, :1], small[..., :1, :1], atol=1e-5)
        assert torch.allclose(large, large[..., :1, :1].expand_as(large), atol=1e-5)
        z = zeros(colour.expand(1, 3, 256, 192).contiguous())
        assert (z - z[..., 128:129, 96:97]).abs().max() > 1e-3  # zero padding: not so
        # a 1x1 deepest map (crop 32) is fine too: replicate needs no neighbour
        assert net(torch.rand(1, 3, 32, 32)).shape == (1, 3, 32, 32)
