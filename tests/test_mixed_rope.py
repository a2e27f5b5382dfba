"""Mixed context windows (`--native-rope original`): the replayed share runs on the base's own RoPE."""

from __future__ import annotations

import json

import pytest
import torch

from longwin.cli import main
from longwin.methods.positions.mixed_rope import mix_rope
from longwin.models import load_model
from longwin.rope import describe_rope, scale_rope


def _pair(rope: str = "yarn") -> tuple:
    base, _ = load_model("toy", dtype="float32")
    scaled_config = scale_rope(base.config, rope, 2048)
    scaled, _ = load_model("toy", dtype="float32", config=scaled_config)
    return base.eval(), scaled.eval(), scaled_config


@pytest.mark.parametrize("rope", ["yarn", "linear"])
def test_native_examples_get_the_base_logits_and_the_others_the_scaled_ones(rope):
    base, scaled, config = _pair(rope)
    torch.manual_seed(0)
    ids = torch.randint(0, base.config.vocab_size, (3, 64))
    positions = torch.stack([torch.arange(64), torch.arange(64) * 20, torch.arange(64)])  # native, spread, native
    flag = torch.tensor([1, 0, 1])
    with torch.no_grad():
        want_base = base(input_ids=ids, position_ids=positions).logits
        want_scaled = scaled(input_ids=ids, position_ids=positions).logits
        undo = mix_rope(scaled, scale_rope(config, "none", 2048))
        got = scaled(input_ids=ids, position_ids=positions, native_rope=flag).logits
        undo()
        after = scaled(input_ids=ids, position_ids=positions).logits
    assert not torch.allclose(want_base[0], want_scaled[0], atol=1e-3)  # the check can fail
    torch.testing.assert_close(got[0], want_base[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got[2], want_base[2], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got[1], want_scaled[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(after, want_scaled)  # undone: the scaled RoPE everywhere, as saved


def test_the_chunked_loss_path_sees_the_flag_too():
    from longwin.models.loss import causal_lm_loss

    base, scaled, config = _pair()
    ids = torch.randint(0, base.config.vocab_size, (1, 48))
    inputs = {"input_ids": ids, "labels": ids, "position_ids": torch.arange(48)[None]}
    with torch.no_grad():
        want = base(**inputs).loss
        mix_rope(scaled, scale_rope(config, "none", 2048))
        got = causal_lm_loss(scaled, {**inputs, "native_rope": torch.tensor([1])})
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_mixed_windows_train_end_to_end_and_the_card_says_so(tmp_path):
    out = tmp_path / "m"
    args = ["train", "--config", "cream-toy-2048", "--max-steps", "2", "--output-dir", str(out), "--save-steps", "100"]
    assert main([*args, "--native-fraction", "0.5", "--native-rope", "original", "--distill-weight", "0"]) == 0
    card = json.loads((out / "longwin_training.json").read_text())
    assert (card["native_fraction"], card["native_rope"]) == (0.5, "original")
    reloaded, _ = load_model(str(out), dtype="float32")  # saved as a stock model with the scaled RoPE
    assert type(reloaded.get_decoder().rotary_emb).__name__ != "MixedRotary"
    assert describe_rope(reloaded.config)["method"] == "yarn"


def test_original_rope_without_a_native_share_is_refused(tmp_path, capsys):
    args = ["train", "--config", "cream-toy-2048", "--max-steps", "1", "--output-dir", str(tmp_path / "x")]
    assert main([*args, "--native-rope", "original"]) == 2
    assert "--native-fraction" in capsys.readouterr().err
