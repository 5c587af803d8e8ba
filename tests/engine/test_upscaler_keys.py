from engine.upscaler_keys import is_fooocus_upscaler, rename_fooocus_upscaler_keys


def test_rename_fooocus_keys():
    sd = {"model.0.weight": 1, "model.1.sub.0.residual_block_1.conv1.0.weight": 2,
          "model.1.sub.3.residual_block_3.conv5.0.bias": 3}
    assert is_fooocus_upscaler(sd)
    out = rename_fooocus_upscaler_keys(sd)
    assert out == {"model.0.weight": 1, "model.1.sub.0.RDB1.conv1.0.weight": 2, "model.1.sub.3.RDB3.conv5.0.bias": 3}
    assert not is_fooocus_upscaler(out)
    assert rename_fooocus_upscaler_keys(out) == out
