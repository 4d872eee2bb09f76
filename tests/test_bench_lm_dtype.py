"""The float32 / bfloat16 benchmark's summary: medians, speedup and identical answers per task and length."""

from qdsbench.bench.lm_dtype import markdown, summary_rows


def _row(task, length, f32, bf16, same, score=100.0):
    return {
        "task": task,
        "length": length,
        "float32_seconds": f32,
        "bfloat16_seconds": bf16,
        "float32_score": score,
        "bfloat16_score": score if same else 0.0,
        "same_answer": same,
    }


def test_summary_is_per_task_and_length_with_medians_and_the_share_of_identical_answers():
    rows = [_row("vt", 1024, 10.0, 4.0, True), _row("vt", 1024, 30.0, 5.0, False), _row("vt", 1024, 12.0, 6.0, True)]
    rows.append(_row("vt", 2048, 20.0, 10.0, True))
    first, second = summary_rows(rows)
    assert (first["task"], first["length"], first["n"]) == ("vt", 1024, 3)
    assert (first["float32 s"], first["bfloat16 s"], first["speedup"]) == (12.0, 5.0, 2.4)  # medians, then ratio
    assert first["same answer"] == "2/3" and first["bfloat16 score"] == round(200 / 3, 1)
    assert (second["length"], second["speedup"], second["same answer"]) == (2048, 2.0, "1/1")
    meta = {"command": "c", "measured": "m", "machine": "x", "cpu_flags": "f", "threads": 1, "torch": "t", "minutes": 1}
    text = markdown(rows, meta)
    assert "identical on 3 of 4" in text and f"({72 / 25:.2f}x faster)" in text  # 72 s vs 25 s in all


def test_the_table_rebuilt_from_its_csv_record_counts_the_same_identical_answers(tmp_path):
    import json

    from qdsbench.bench.lm_dtype import render
    from qdsbench.tables import write_csv

    rows = [_row("vt", 1024, 10.0, 4.0, True), _row("vt", 1024, 30.0, 5.0, False)]
    write_csv(tmp_path / "lm_dtype.csv", rows)  # "False" as text must not read back as a true value
    meta = {"command": "c", "measured": "m", "machine": "x", "cpu_flags": "f", "threads": 1, "torch": "t", "minutes": 1}
    (tmp_path / "lm_dtype.meta.json").write_text(json.dumps(meta))
    assert "| 1/2 |" in render(tmp_path).read_text()
