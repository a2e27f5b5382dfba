"""experiments/toy_needle_probe.py: the cut keeps the needle-to-question text and is skipped when it would drop
the needle."""

from __future__ import annotations

import toy_needle_probe as probe


def test_probe_cuts_only_where_the_needle_survives_and_reports_every_head(tiny_setup, one_thread):
    model_dir, _ = tiny_setup
    result = probe.probe(str(model_dir), [192, 256], ["0", "100"], samples=2, cut=32, seed=0)
    cells = {(c["length"], c["depth"]): c for c in result["cells"]}
    assert cells[(256, "0")]["cut_correct"] is None  # the needle opens the haystack: a cut drops it
    assert cells[(256, "100")]["cut_correct"] in (0, 1, 2) and cells[(256, "100")]["cut_length"] == 224
    assert all(0 <= c["full_correct"] <= 2 for c in cells.values())
    full, cut = result["bos_mass_at_longest"]["full"], result["bos_mass_at_longest"]["cut"]
    assert len(full) == len(cut) == 2 and len(full[0]) == 4  # layers x heads of the tiny Llama
    assert all(0 <= m <= 1 for row in full + cut for m in row)
    text = probe.summary(result)
    assert "| 256 | 0 | " in text and "needle cut" in text and "layer.head" in text
