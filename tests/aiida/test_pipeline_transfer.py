"""End to end with real pw.x: one tiny pipeline over three compositions (Si, C, SiC) that holds out the
composition SiC and a larger Si and C cell, and reports each transfer split apart."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida_test_helpers import TINY_PIPELINE
from ase.build import bulk

pytestmark = pytest.mark.slow

TINY = {
    "md": {
        "temperatures": [600.0],
        "equilibration_steps": 2,
        "stride": 2,
        "n_snapshots": 2,
        "training_atoms": None,
        "n_held_out": 1,
    },
    **TINY_PIPELINE,
    "hold_out_elements": ["Si", "C"],
    "larger_cells": [2, 1, 1],
}


@pytest.fixture(scope="module")
def transfer(module_codes):
    from aiida.engine import run_get_node
    from aiida_slem.workflows.pipeline import SlemPipelineWorkChain

    structures = {
        "si": orm.StructureData(ase=bulk("Si", "diamond", a=5.43)),
        "c": orm.StructureData(ase=bulk("C", "diamond", a=3.567)),
        "sic": orm.StructureData(ase=bulk("SiC", "zincblende", a=4.36)),
    }
    builder = SlemPipelineWorkChain.get_builder_from_protocol(
        module_codes, structures, protocol="fast", overrides=TINY
    )
    # the larger cells are compared with their own LCAO reference only, as a 64-atom cell would be
    builder.validation.pw_max_atoms = orm.Int(2 * int(np.prod(builder.md.supercell.get_list())))
    _, node = run_get_node(builder)
    return node


def test_one_model_is_trained_on_two_compositions_and_tested_on_a_third(transfer):
    assert transfer.is_finished_ok, transfer.exit_message
    dataset = transfer.outputs.dataset
    assert set(dataset.base.attributes.get("elements")) == {"Si", "C"}
    assert set(transfer.outputs.basis.base.attributes.get("elements", ["Si", "C"])) == {"Si", "C"}
    trained = {f.metadata["label"] for split in ("train", "validation") for f in dataset.get_frames(split)}
    assert trained and not any(label.startswith("sic_") for label in trained)
    assert {label.split("_")[0] for label in trained} == {"si", "c"}
    # the training split's own statistics: Si and C atoms, no Si-C block (that pair gets a prior)
    statistics = dataset.base.attributes.get("train_statistics")
    assert set(statistics["atoms_per_element"]) == {"C", "Si"}
    assert set(statistics["blocks_per_element_pair"]) == {"C-C", "Si-Si"}


def test_every_scf_gets_its_own_elements_and_the_union_cutoffs(transfer):
    scfs = [
        n
        for n in transfer.called_descendants
        if n.process_label == "PwCalculation" and n.inputs.parameters["CONTROL"]["calculation"] == "scf"
    ]
    assert scfs
    for calc in scfs:
        kinds = set(calc.inputs.structure.get_kind_names())
        assert set(calc.inputs.pseudos) == kinds
        # Debian's fast cutoffs: Si 20 Ry, C 40 Ry; an Si-only SCF of this dataset takes 40 too
        assert calc.inputs.parameters["SYSTEM"]["ecutwfc"] == 40.0


def test_each_split_is_reported_apart_and_the_verdict_takes_in_distribution(transfer):
    metrics = transfer.outputs.metrics.get_dict()
    splits = metrics["splits"]
    assert set(splits) == {"in_distribution", "held_out_composition", "larger_cells"}
    assert splits["held_out_composition"]["frames"] and all(
        f.startswith("sic_") for f in splits["held_out_composition"]["frames"]
    )
    assert sorted(splits["larger_cells"]["frames"]) == ["c_larger_000", "si_larger_000"]
    assert all(not f.startswith("sic_") for f in splits["in_distribution"]["frames"])
    for split in splits.values():
        assert split["summary"]["H_mae_meV"] > 0.0
        assert split["summary"]["valence_mae_vs_lcao_meV"] is not None
    # block errors per element pair: the unseen Si-C pair has its own entry
    assert "C-Si" in splits["held_out_composition"]["blocks"]["H"]
    assert metrics["verdict"]["frames"] == "in_distribution"
    checked = metrics["verdict"]["checks"]["H_mae_meV"]["value"]
    assert checked == pytest.approx(splits["in_distribution"]["summary"]["H_mae_meV"])
    for name in ("parity_in_distribution", "parity_held_out_composition", "parity_larger_cells"):
        assert transfer.outputs.plots[name].get_content(mode="rb")[:4] == b"\x89PNG"


def test_larger_cells_are_new_thermal_configurations_in_the_provenance(transfer):
    validation = next(n for n in transfer.called if n.process_label == "SlemValidationWorkChain")
    larger = validation.inputs.frames["si_larger_000"]
    assert larger.base.attributes.get("n_atoms") == 4
    made = [n for n in transfer.called if n.process_label == "thermal_supercell"]
    assert len(made) == 2
    # its SCF samples the training cells' points: fast takes 0.6 / A, 4x4x4 for Si2 and 6x6x6 for C2 (Gamma-
    # centred), so the [2, 1, 1] supercells take 2x4x4 and 3x6x6 (slem/qe/kpoints.py)
    dataset = next(n for n in transfer.called if n.process_label == "DatasetWorkChain")
    larger = {"c_larger_000": [2, 1, 1], "si_larger_000": [2, 1, 1]}
    assert dataset.inputs.supercell_frames.get_dict() == larger
    scf = {
        link.link_label: link.node.inputs.scf
        for link in dataset.base.links.get_outgoing().all()
        if link.link_label.startswith("operator_held_out_")
    }
    assert scf["operator_held_out_si_larger_000"].kpoints.get_kpoints_mesh() == ([2, 4, 4], [0.0, 0.0, 0.0])
    assert scf["operator_held_out_c_larger_000"].kpoints.get_kpoints_mesh() == ([3, 6, 6], [0.0, 0.0, 0.0])
    others = [inputs for label, inputs in scf.items() if "_larger_" not in label]
    assert others
    assert all(inputs.kpoints_distance.value == 0.6 and "kpoints" not in inputs for inputs in others)
    for node in made:
        assert len(node.outputs.result.sites) == 4
        assert node.inputs.structure.pk in {s.pk for s in transfer.inputs.structures.values()}


def test_frames_above_pw_max_atoms_are_compared_with_lcao_only(transfer):
    metrics = transfer.outputs.metrics.get_dict()
    small = {label for label in metrics["bands"] if "_larger_" not in label}
    assert small and small != set(metrics["bands"])
    for label, entry in metrics["bands"].items():
        assert ("vs_pw" in entry) == (label in small), label
        assert "vs_lcao" in entry
    validation = next(c for c in transfer.called if c.process_label == "SlemValidationWorkChain")
    assert set(validation.outputs.pw_bands) == small
