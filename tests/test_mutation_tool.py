"""scripts/mutate.py's inputs: the hand-written verdicts must parse and name mutants of the modules it mutates."""

import fnmatch
import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _mutate_module():
    spec = importlib.util.spec_from_file_location("mutate_script", REPO / "scripts" / "mutate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_verdict_names_a_mutant_of_a_mutated_module():
    mutate = _mutate_module()
    verdicts, notes = mutate.load_verdicts()
    assert len(verdicts) > 100 and set(notes) <= set(mutate.MODULES)
    globs = [p.removesuffix(".py").replace("/", ".") for paths, _ in mutate.MODULES.values() for p in paths]
    for mutant, why in verdicts.items():
        module = mutant.split(".x", 1)[0]  # qdsbench.attention.delta.x_pair_counts__mutmut_3 -> qdsbench...delta
        # a package's own __init__.py (qdsbench/attention/* covers it) names its mutants after the package
        in_module = any(fnmatch.fnmatch(module, g) or module == g.removesuffix(".*") for g in globs)
        assert "__mutmut_" in mutant and in_module, mutant
        kind, _, reason = why.partition(": ")
        assert kind and reason, f"{mutant}: a verdict reads '<kind>: <reason>' (equivalent, hole, ...): {why!r}"


def test_function_of_strips_the_mutant_number_only():
    mutate = _mutate_module()
    assert (
        mutate.function_of("qdsbench.attention.delta.x_pair_counts__mutmut_38")
        == "qdsbench.attention.delta.x_pair_counts"
    )
    method = "qdsbench.attention.qr.x\u01c1QRAttention\u01c1__init____mutmut_3"
    assert mutate.function_of(method) == "qdsbench.attention.qr.x\u01c1QRAttention\u01c1__init__"


RULE_CASES = [  # (change as the report writes it, index of the rule that judges it, or None: left to a person)
    ("`v = torch.ones(n, dtype=torch.bool, device=q.device)` -> `v = torch.ones(n, dtype=torch.bool, device=None)`", 0),
    ("`v = torch.ones(n, dtype=torch.bool, device=q.device)` -> `v = torch.ones(n, dtype=torch.bool, )`", 0),
    (
        "`v = torch.ones(n, dtype=torch.bool, device=q.device)` -> `v = torch.ones(n, dtype=None, device=q.device)`",
        None,
    ),
    ('`y = torch.einsum("...mij,...mjd->...imd", r, v)` -> `y = torch.einsum("...MIJ,...MJD->...IMD", r, v)`', 1),
    ('`p = p.masked_fill(~mask, float("-inf"))` -> `p = p.masked_fill(~mask, float("-INF"))`', 1),
    ('`if self.vec_order == "row":` -> `if self.vec_order == "ROW":`', None),  # a real change of behaviour
    ("`n = q.shape[-2]` -> `n = q.shape[+2]`", 2),
    ("`n = q.shape[-2]` -> `n = q.shape[-3]`", None),
    ("`x = a.any(-1)` -> `x = a.any(+1)`", None),
]


def test_a_retest_reruns_changed_functions_and_survivors_and_keeps_every_other_verdict():
    mutate = _mutate_module()
    f, g, h = "pkg.mod.x_f", "pkg.mod.x_g", "pkg.mod.x_h"
    recorded = {
        f"{f}__mutmut_1": "killed",  # f changed: rerun although killed
        f"{g}__mutmut_1": "killed",  # g unchanged and killed: kept
        f"{g}__mutmut_2": "survived",  # a survivor: rerun (a new test may kill it)
        f"{g}__mutmut_3": "not checked",  # left out by --only: rerun
        f"{h}__mutmut_1": "timeout",  # h was deleted: gone from the merged picture
    }
    current = {f"{f}__mutmut_1": "killed", f"{f}__mutmut_2": "not checked"}  # f gained a mutant
    current |= {f"{g}__mutmut_{i}": "not checked" for i in (1, 2, 3)}
    rerun = mutate.to_rerun(recorded, {f}, current)
    assert rerun == [f"{f}__mutmut_1", f"{f}__mutmut_2", f"{g}__mutmut_2", f"{g}__mutmut_3"]
    fresh = {**current, f"{f}__mutmut_1": "survived", f"{f}__mutmut_2": "killed", f"{g}__mutmut_2": "killed"}
    fresh[f"{g}__mutmut_3"] = "survived"
    assert mutate.merge_verdicts(recorded, fresh, current, rerun) == {
        f"{f}__mutmut_1": "survived",
        f"{f}__mutmut_2": "killed",
        f"{g}__mutmut_1": "killed",
        f"{g}__mutmut_2": "killed",
        f"{g}__mutmut_3": "survived",
    }


def test_equivalence_rules_judge_only_their_own_class_of_mutant():
    mutate = _mutate_module()
    whys = [why for _, why in mutate.RULES]
    for change, want in RULE_CASES:
        verdict = mutate.rule_verdict(change)
        assert (None if verdict is None else whys.index(verdict)) == want, change
