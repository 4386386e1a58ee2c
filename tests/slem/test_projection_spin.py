"""Collinear spin (nspin=2): H_up, H_down, D_up, D_down and one S from a spin-polarised pw.x SCF.

bcc Fe, one atom, the official PseudoDojo noCC Fe-sp.upf of tests/data (16 electrons, see its MANIFEST), at
90 Ry (PseudoDojo's normal hint; at 60 Ry the grid quadrature of the compact 3d and semicore orbitals puts the
d bands 0.3 eV low), cold smearing 0.02 Ry. pw.x and D use one 12x12x12 mesh: the moment moves by 0.05 mu_B
between 8x8x8 and 12x12x12 meshes, far more than the basis error this test measures.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from slem.bands import band_energies
from slem.basis.generate import generate_basis
from slem.basis.orbital import write_basis
from slem.cli.project import project as project_command
from slem.data.frame import Frame, FrameFormatError, read_frames, write_frames
from slem.projection.occupations import fermi_level
from slem.projection.project import ProjectionError, project
from slem.qe.inputs import pp_input, pw_input, run_qe
from slem.qe.potential import read_filplot
from slem.qe.upf import read_upf
from slem.qe.xml import QeXmlError, read_qe_xml

pytestmark = pytest.mark.slow

HARTREE_EV = 27.211386245988
PSEUDO_DIR = Path(__file__).resolve().parents[1] / "data" / "pseudos" / "pseudodojo-nlcc"
FE_CELL = 0.5 * 2.83 * np.array([[-1.0, 1.0, 1.0], [1.0, -1.0, 1.0], [1.0, 1.0, -1.0]])
SPIN = {
    "occupations": "smearing",
    "smearing": "mv",
    "degauss": 0.02,
    "nspin": 2,
    "starting_magnetization(1)": 0.4,
}
ECUT = 90.0
OFF_MESH_K = np.vstack(
    [np.random.default_rng(5).uniform(-0.5, 0.5, (12, 3)), [[0.5, -0.5, 0.5], [0.0, 0.0, 0.5]]]
)
MESH = (12, 12, 12)
# measured (DZP): |M - M_pw.x| 0.0045 mu_B on this mesh (0.013 on 9x9x9); the target is 0.01
MAGNETIZATION_TOLERANCE_MUB = 0.01
WINDOW_MEAN_TOLERANCE_EV = 0.06


def _needs_qe() -> None:
    if shutil.which("pw.x") is None or shutil.which("pp.x") is None:
        pytest.skip("pw.x/pp.x not installed (Debian package quantum-espresso)")


def _pw(folder: Path, name: str, kpoints, **kwargs) -> float:
    text = pw_input(
        ["Fe"],
        np.zeros((1, 3)),
        FE_CELL,
        {"Fe": "Fe-sp.upf"},
        ECUT,
        kpoints,
        pseudo_dir=PSEUDO_DIR,
        system=SPIN,
        **kwargs,
    )
    return run_qe("pw.x", text, folder, name)


def _inputs(folder: Path):
    scf = read_qe_xml(folder / "out" / "pwscf.save")
    upfs = {label: read_upf(PSEUDO_DIR / name) for label, name in scf.pseudo_files.items()}
    return scf, upfs


def _train_tiny(
    tmp_path: Path,
    operators: list[str],
    steps: int,
    basis: Path | None = None,
    dataset: str = "fe.h5",
    **model,
) -> Path:
    """The output folder of a tiny model trained for ``steps`` on tmp_path/``dataset`` with one thread."""
    import torch

    from slem.train.config import validate_config
    from slem.train.trainer import Trainer

    config = {
        "dataset": {"path": str(tmp_path / dataset)},
        "operators": operators,
        "output_dir": str(tmp_path / "run"),
        "model": {
            "n_layers": 1,
            "hidden_irreps": "4x0e+4x1o+4x2e+2x3o+2x4e",
            "latent_dim": 8,
            "latent_hidden": [8],
            "n_radial": 4,
            "avg_num_neighbors": 8.0,
            **model,
        },
        "training": {"max_steps": steps, "validate_every": steps, "seed": 0},
    }
    if basis is not None:
        config["dataset"]["basis_path"] = str(basis)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        Trainer(validate_config(config), progress=False).run()
    finally:
        torch.set_num_threads(threads)
    return tmp_path / "run"


@pytest.fixture(scope="module")
def iron(tmp_path_factory):
    _needs_qe()
    folder = tmp_path_factory.mktemp("fe_spin")
    _pw(folder, "scf", MESH, conv_thr=1e-9)
    for component in (0, 1, 2):
        run_qe(
            "pp.x", pp_input(filplot=f"v{component}.dat", spin_component=component), folder, f"pp{component}"
        )
    basis = {"Fe": generate_basis(PSEUDO_DIR / "Fe-sp.upf", preset="DZP")}
    write_basis(folder / "basis.h5", basis)
    scf, upfs = _inputs(folder)
    potentials = [read_filplot(folder / f"v{c}.dat") for c in (1, 2)]
    result = project(scf, potentials, basis, upfs, kmesh=MESH)
    shutil.copytree(folder / "out", folder / "bands" / "out")
    _pw(folder / "bands", "bands", OFF_MESH_K, calculation="bands", nbnd=14)
    bands = read_qe_xml(folder / "bands" / "out" / "pwscf.save").spin_eigenvalues_ha() * HARTREE_EV
    return folder, scf, upfs, basis, result, bands


def test_fe_moment_sum_rules_and_bands_per_spin(iron):
    _, scf, _, _, result, qe_bands = iron
    frame, checks = result.frame, result.checks
    assert set(frame.operators) == {"H_up", "H_down", "S", "D_up", "D_down"}
    assert checks["n_spin"] == 2 and scf.lsda
    assert abs(checks["sum_tr_ds"] - 16.0) < 1e-8
    assert checks["electrons_up"] + checks["electrons_down"] == pytest.approx(16.0, abs=1e-8)
    assert checks["sum_tr_dh_ev"] == pytest.approx(checks["band_energy_ev"], abs=1e-7)
    e_f = checks["qe_fermi_energy_ev"]
    lines = []
    for channel, reference in zip(("up", "down"), qe_bands, strict=True):
        ours = band_energies(frame, OFF_MESH_K, hamiltonian=f"H_{channel}", n_bands=reference.shape[1])
        near = np.abs(reference - e_f) < 1.0
        errors = np.abs(ours - reference)[near]
        lines.append(
            f"{channel}: {errors.size} states within 1 eV of E_F, mean {errors.mean() * 1000:.0f} "
            f"max {errors.max() * 1000:.0f} meV"
        )
        assert errors.size >= 10 and errors.mean() < WINDOW_MEAN_TOLERANCE_EV, lines[-1]
    print(
        f"Fe bcc DZP, 90 Ry: M = {checks['magnetization_mub']:.4f} mu_B vs pw.x "
        f"{checks['qe_magnetization_mub']:.4f}; E_F {checks['fermi_energy_ev']:.4f} vs pw.x {e_f:.4f} eV; "
        + "; ".join(lines)
    )
    assert abs(checks["magnetization_error_mub"]) < MAGNETIZATION_TOLERANCE_MUB
    assert checks["magnetization_mub"] == pytest.approx(checks["electrons_up"] - checks["electrons_down"])
    # exchange splitting: the majority (up) 3d level lies about 2 eV below the minority one
    d = slice(8, 13)  # orbital order 3s 4s 4s' | 3p 4p 4p' ... : the first d shell follows 3 s and 2 p shells
    onsite = frame.block_offsets[
        np.flatnonzero((frame.pairs[:, 0] == frame.pairs[:, 1]) & ~frame.cell_shifts.any(axis=1))[0]
    ]
    n = 19
    h_up = frame.operators["H_up"][onsite : onsite + n * n].reshape(n, n)
    h_down = frame.operators["H_down"][onsite : onsite + n * n].reshape(n, n)
    splitting = float(np.diag(h_down)[d].mean() - np.diag(h_up)[d].mean())
    assert 1.0 < splitting < 3.5, splitting


def test_fermi_level_of_both_channels_reproduces_pw_x(iron):
    """One E_F over both channels, each state holding f (not 2f): on pw.x's eigenvalues it is pw.x's E_F."""
    _, scf, *_ = iron
    eps = scf.spin_eigenvalues_ha()
    both = np.concatenate([eps[0], eps[1]], axis=1)
    e_f = fermi_level(both, scf.kweights, scf.n_electrons, scf.degauss_ha, scf.smearing, degeneracy=1.0)
    assert e_f == pytest.approx(scf.fermi_energy_ha, abs=1e-8)


def test_frame_file_keeps_spin_channels(iron, tmp_path):
    *_, result, _ = iron
    write_frames(tmp_path / "fe.h5", [result.frame])
    back = read_frames(tmp_path / "fe.h5")[0]
    assert set(back.operators) == set(result.frame.operators)
    for name, values in result.frame.operators.items():
        assert np.array_equal(back.operators[name], values)


def test_swapped_or_averaged_potentials_are_refused(iron):
    folder, scf, upfs, basis, _, _ = iron
    up, down, mean = (read_filplot(folder / f"v{c}.dat") for c in (1, 2, 0))
    with pytest.raises(ProjectionError, match="spin_component=1"):
        project(scf, [down, up], basis, upfs)
    with pytest.raises(ProjectionError, match="not this run's up and down"):
        project(scf, [mean, mean], basis, upfs)
    with pytest.raises(ProjectionError, match="nspin=2 but 1 potential"):
        project(scf, up, basis, upfs)


def test_cli_projects_spin_and_refuses_mixed_options(iron, tmp_path):
    folder, *_ = iron
    common = [
        "--scf-dir",
        str(folder / "out" / "pwscf.save"),
        "--basis",
        str(folder / "basis.h5"),
        "--pseudo-dir",
        str(PSEUDO_DIR),
        "-o",
        str(tmp_path / "fe.h5"),
    ]
    spin = ["--potential-up", str(folder / "v1.dat"), "--potential-down", str(folder / "v2.dat")]
    result = CliRunner().invoke(project_command, common + spin)
    assert result.exit_code == 0, result.output
    assert "magnetisation" in result.output and "mu_B" in result.output
    mixed = CliRunner().invoke(project_command, common + spin + ["--potential", str(folder / "v0.dat")])
    assert mixed.exit_code != 0 and "--potential-up and --potential-down" in mixed.output
    one = CliRunner().invoke(project_command, common + ["--potential", str(folder / "v0.dat")])
    assert one.exit_code != 0 and "spin_component=1, then 2" in one.output


def test_fixed_magnetisation_and_noncollinear_xml_are_refused(iron, tmp_path):
    folder, *_ = iron
    source = (folder / "out" / "pwscf.save" / "data-file-schema.xml").read_text()
    two = source.replace(
        "<fermi_energy>", "<two_fermi_energies>0.6 0.7</two_fermi_energies><fermi_energy>", 1
    )
    (tmp_path / "two.xml").write_text(two)
    with pytest.raises(QeXmlError, match="tot_magnetization"):
        read_qe_xml(tmp_path / "two.xml")
    root = ET.fromstring(source)
    for element in root.iter():
        if element.tag.endswith("noncolin"):
            element.text = "true"
    (tmp_path / "nc.xml").write_text(ET.tostring(root, encoding="unicode"))
    with pytest.raises(QeXmlError, match="non-collinear"):
        read_qe_xml(tmp_path / "nc.xml")


def test_frame_refuses_mixed_or_half_spin_operators():
    packed = np.zeros(1)
    common = dict(
        numbers=[1],
        positions=np.zeros((1, 3)),
        cell=np.eye(3) * 5,
        pbc=[True] * 3,
        basis={"H": "1s"},
        pairs=[[0, 0]],
        cell_shifts=[[0, 0, 0]],
    )
    Frame(**common, operators={"H_up": packed, "H_down": packed, "S": packed})
    with pytest.raises(FrameFormatError, match="either H or"):
        Frame(**common, operators={"H": packed, "H_up": packed, "H_down": packed})
    with pytest.raises(FrameFormatError, match="needs both"):
        Frame(**common, operators={"D_up": packed, "S": packed})


def test_spin_model_trains_predicts_and_validates_per_channel(iron, tmp_path):
    """A model with one head per spin channel trains on the Fe frame; slem validate compares each channel's
    bands and solves one E_F over both (on the reference: the projection's E_F to the k-sampling)."""
    import json

    from slem.cli.validate import run_validation
    from slem.predict import predict_frames

    *_, result, _ = iron
    write_frames(tmp_path / "fe.h5", [result.frame])
    run = _train_tiny(
        tmp_path, ["H_up", "H_down", "S", "D_up", "D_down"], 40, r_cut={"Fe": 4.5}, overlap_hidden=[8]
    )
    curve = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [row["H_up"] for row in curve if row["kind"] == "train"]
    assert losses[-1] < 0.5 * losses[0]
    predicted = predict_frames(run / "model.pt", [result.frame])
    assert set(predicted[0].operators) == set(result.frame.operators)
    write_frames(tmp_path / "pred.h5", predicted)
    report = run_validation(
        str(tmp_path / "pred.h5"),
        str(tmp_path / "fe.h5"),
        tmp_path / "report.json",
        tmp_path / "plots",
        {},
        {},
        {},
        {},
    )
    entry = next(iter(report["bands"].values()))
    assert entry["spin_channels"] == ["up", "down"] and entry["electronic_type"] == "metal"
    assert abs(entry["fermi"]["mesh_fermi_energy_eV"] - result.checks["fermi_energy_ev"]) < 0.05
    assert {"bands_0_up", "bands_0_down"} <= set(report["plots"])
    summary = report["summary"]
    assert summary["H_mae_meV"] == pytest.approx(0.5 * (summary["H_up_mae_meV"] + summary["H_down_mae_meV"]))


def test_exports_take_one_spin_channel_at_a_time(iron, tmp_path):
    """DeePTB and DeepH hold one Hamiltonian per structure: a spin frame is refused without --spin, and each
    channel's export reads back as that channel's H and D."""
    from slem.cli.export import export
    from slem.data.deeptb import read_deeptb

    *_, result, _ = iron
    write_frames(tmp_path / "fe.h5", [result.frame])
    for fmt in ("deeptb", "deeph"):
        refused = CliRunner().invoke(
            export, [str(tmp_path / "fe.h5"), "--format", fmt, "-o", str(tmp_path / fmt)]
        )
        assert refused.exit_code != 0 and "--spin up" in refused.output
        assert not (tmp_path / fmt).exists()
    for channel in ("up", "down"):
        out = tmp_path / f"dptb_{channel}"
        done = CliRunner().invoke(
            export, [str(tmp_path / "fe.h5"), "--format", "deeptb", "--spin", channel, "-o", str(out)]
        )
        assert done.exit_code == 0, done.output
        back = read_deeptb(out)[0]
        for base in ("H", "D"):
            ours, theirs = result.frame.blocks(f"{base}_{channel}"), back.blocks(base)
            assert set(ours) <= set(theirs)
            assert max(float(np.abs(ours[k] - theirs[k]).max()) for k in ours) < 1e-12


def test_validate_refuses_a_one_channel_prediction_of_a_spin_reference(iron, tmp_path):
    import dataclasses

    from slem.cli.validate import run_validation
    from slem.data.operators import spin_channel_operators

    *_, result, _ = iron
    one = dataclasses.replace(result.frame, operators=spin_channel_operators(result.frame.operators, "up"))
    write_frames(tmp_path / "ref.h5", [result.frame])
    write_frames(tmp_path / "pred.h5", [one])
    with pytest.raises(ValueError, match=r"reference holds \['H_up', 'H_down'\] but the prediction \['H'\]"):
        run_validation(
            str(tmp_path / "pred.h5"), str(tmp_path / "ref.h5"), tmp_path / "r.json", tmp_path, {}, {}, {}, {}
        )
    assert not (tmp_path / "r.json").exists()


def test_bands_cli_draws_one_spin_channel_and_asks_for_it(iron, tmp_path):
    """``slem bands`` of a spin model needs --spin; each channel's bands are that channel's H(k)."""
    import json

    from slem.cli.bands import bands

    *_, result, _ = iron
    write_frames(tmp_path / "fe.h5", [result.frame])
    # S reaches r_s + r_s = 8.6 A (Fe DZP 4s): the model's edges must cover it for S(k) > 0
    run = _train_tiny(
        tmp_path, ["H_up", "H_down", "S"], 2, iron[0] / "basis.h5", r_cut={"Fe": 8.6}, overlap="basis"
    )
    model = str(run / "model.pt")
    common = [model, str(tmp_path / "fe.h5"), "--npoints", "8", "--reference", "0"]
    missing = CliRunner().invoke(bands, [*common, "-o", str(tmp_path / "x.png")])
    assert missing.exit_code == 2 and "--spin up or --spin down" in missing.output
    energies = {}
    for channel in ("up", "down"):
        out = tmp_path / f"{channel}.json"
        done = CliRunner().invoke(
            bands, [*common, "--spin", channel, "-o", str(tmp_path / "b.png"), "--data", str(out)]
        )
        assert done.exit_code == 0, done.output
        energies[channel] = np.array(json.loads(out.read_text())["reference_energies_eV"])
    # the reference is the projected frame: its majority d bands lie below its minority ones
    assert energies["up"][:, 4:9].mean() < energies["down"][:, 4:9].mean() - 1.0
