"""Records named by a timestamp never overwrite one another (atomic.claim_new_stem)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from qdsbench.atomic import atomic_write_json, claim_new_stem


def test_a_taken_name_gets_a_suffix_and_the_old_record_is_kept(tmp_path):
    atomic_write_json(tmp_path / "2026-12-02T04-00-00+00-00.json", {"kept": True})
    stem = claim_new_stem(tmp_path, "2026-12-02T04-00-00+00-00", ".json")
    assert stem == "2026-12-02T04-00-00+00-00_1"
    assert (tmp_path / "2026-12-02T04-00-00+00-00.json").read_text().strip().endswith("}")
    assert '"kept": true' in (tmp_path / "2026-12-02T04-00-00+00-00.json").read_text()


def test_claims_of_one_stem_in_the_same_second_are_all_distinct(tmp_path):
    """Two evaluations finishing in the same second (or a copied run's records) must get two files."""
    with ThreadPoolExecutor(8) as pool:
        stems = list(pool.map(lambda _: claim_new_stem(tmp_path / "eval", "stamp", ".json"), range(20)))
    assert len(set(stems)) == 20
    assert sorted(p.stem for p in (tmp_path / "eval").glob("*.json")) == sorted(stems)
