"""The studies layer: how a comparison of models is declared, run stage by stage, read back from its committed
records and rendered as tables, retention figures and verdicts. It sits above the runners (it calls
`longwin eval` / `longwin train` and reads what they wrote) and below the entry points (`longwin demo`).

A study in `experiments/` is a declaration: its rows (`rows.ModelRow`), its stages (`stages.Study`), its tables
(`tables`) and its verdict functions, whose thresholds are named values (`verdicts.Bar`).

One results folder layout for every study, under `benchmarks/results/<study>/` (a demo: its `--out`):

    <row>/<record>/cells.jsonl     one line per evaluated cell (`longwin eval`), keyed by (key, fingerprint)
    <row>/<record>/results.csv     the finished cells: the fingerprints it lists are the record's (`records`)
    <row>/<record>/results.json    the task summaries of the same run
    <row>/<record>/training.json   the training card of the model that record evaluated (a trained row only)
    training-<stage>.json          a study-wide training stage's card (a model shared by several rows)
    <anything else>/               probes, benchmarks and pilots, read by the study's own sections

`<row>` is a row's name, `<record>` the stage kind that wrote it (`ppl`, `passkey`, `copy`, ...; a pilot
adds a suffix: `passkey-chat-pilot`). Cells of another fingerprint in the same file (a rerun with other
settings) are never mixed into a record (`records.read_cells`).

Runs that evaluate every task of a row at once and are not committed whole (`longwin demo --out`, the toy
reproduction's `--work`) keep the harness's run folder: `eval/<row>/` (one record, every task) and
`models/<row>/`; the demo's report compares those records' results.json (`comparison`).
"""
