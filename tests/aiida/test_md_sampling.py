"""MdSamplingWorkChain: protocol builder, input refusal, and a real fast run on Si8."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida.plugins import WorkflowFactory
from aiida_slem.workflows.md_sampling import harmonic_start
from aiida_test_helpers import si8_structure
from ase import Atoms
from ase.build import bulk

from aiida_slem.pseudos import DEBIAN_PSEUDO_DIR

MdSamplingWorkChain = WorkflowFactory("slem.md_sampling")


def sic_structure() -> orm.StructureData:
    return orm.StructureData(ase=bulk("SiC", "zincblende", a=4.36))


def test_small_cells_get_more_snapshots(codes, pseudo_family, si8):
    """fast: training snapshots hold >= 48 atoms; Si8 keeps 4 per trajectory, SiC (2 atoms) gets 12."""
    fast = MdSamplingWorkChain.get_builder_from_protocol
    assert fast(codes["pw"], si8, protocol="fast").n_snapshots.value == 4
    assert fast(codes["pw"], sic_structure(), protocol="fast").n_snapshots.value == 12
    plain = fast(codes["pw"], sic_structure(), protocol="fast", overrides={"training_atoms": None})
    assert plain.n_snapshots.value == 4


def test_protocol_builder(codes, pseudo_family, si8):
    builder = MdSamplingWorkChain.get_builder_from_protocol(
        codes["pw"], si8, protocol="fast", overrides={"n_snapshots": 3}
    )
    parameters = builder.md.pw.parameters.get_dict()
    assert parameters["CONTROL"]["calculation"] == "md"
    assert parameters["SYSTEM"]["occupations"] == "fixed" and parameters["SYSTEM"]["nosym"] is True
    assert builder.n_snapshots.value == 3 and builder.temperatures.get_list() == [400.0, 800.0]
    assert builder.held_out_temperatures.get_list() == [600.0]
    assert builder.md.pw.metadata.options["parser_name"] == "slem.md"
    assert builder.md.kpoints.get_kpoints_mesh() == ([1, 1, 1], [0.5, 0.5, 0.5])
    assert builder.max_concurrent.value == 2  # the 2 cores; balanced and precise: every run at once
    # reproducible by default: a thermostat that runs from the seeded velocities, and a harmonic start
    assert parameters["IONS"]["ion_temperature"] == "andersen" and builder.einstein_frequency.value == 10.0
    assert "einstein_frequency" not in MdSamplingWorkChain.get_builder_from_protocol(
        codes["pw"], si8, protocol="fast", overrides={"einstein_frequency": None}
    )
    balanced = MdSamplingWorkChain.get_builder_from_protocol(codes["pw"], si8, protocol="balanced")
    assert balanced.supercell.get_list() == [2, 2, 2] and balanced.max_concurrent.value == 0
    with pytest.raises(ValueError, match="unknown protocol"):
        MdSamplingWorkChain.get_builder_from_protocol(codes["pw"], si8, protocol="quick")


def _builder(codes, structure, pseudos=None):
    overrides = {"pseudos": pseudos} if pseudos else None
    return MdSamplingWorkChain.get_builder_from_protocol(
        codes["pw"], structure, protocol="fast", overrides=overrides
    )


def test_refuses_non_periodic_structure(codes, pseudo_family):
    structure = si8_structure()
    structure.pbc = (True, True, False)
    with pytest.raises(ValueError, match="3D-periodic"):
        run_get_node(_builder(codes, structure))


def test_refuses_overlapping_atoms(codes, pseudo_family):
    atoms = si8_structure().get_ase()
    atoms.positions[1] = atoms.positions[0] + [0.1, 0.0, 0.0]
    with pytest.raises(ValueError, match="apart"):
        run_get_node(_builder(codes, orm.StructureData(ase=atoms)))


def test_refuses_element_without_pseudo(codes, pseudo_family, si_upf):
    atoms = Atoms("SiGe", positions=[[0, 0, 0], [1.4, 1.4, 1.4]], cell=np.eye(3) * 5.43, pbc=True)
    with pytest.raises(ValueError, match="cannot cover|no pseudopotential"):
        _builder(codes, orm.StructureData(ase=atoms))
    builder = _builder(codes, si8_structure())
    builder.structure = orm.StructureData(ase=atoms)
    with pytest.raises(ValueError, match=r"no pseudopotential for kind\(s\) \['Ge'\]"):
        run_get_node(builder)


def test_refuses_ultrasoft_pseudo(codes, pseudo_family):
    from aiida_pseudo.data.pseudo import UpfData

    us = UpfData(DEBIAN_PSEUDO_DIR / "Si.pbe-nl-rrkjus_psl.1.0.0.UPF")
    builder = _builder(codes, si8_structure(), pseudos={"Si": us})
    with pytest.raises(ValueError, match="ultrasoft"):
        run_get_node(builder)


def test_refuses_a_non_positive_einstein_frequency(codes, pseudo_family):
    builder = _builder(codes, si8_structure())
    builder.einstein_frequency = orm.Float(0.0)
    with pytest.raises(ValueError, match=r"einstein_frequency must be a positive frequency in THz.*leave"):
        run_get_node(builder)


@pytest.mark.parametrize(
    ("frequency", "match"),
    [({"Si": 10.0}, r"no frequency for \['C'\].*one per element"),
     ({"Si": 10.0, "C": -1.0}, r"positive frequencies in THz, got \{'C': -1.0\}")],
)
def test_refuses_per_element_frequencies_that_do_not_fit(codes, pseudo_family, frequency, match):
    builder = MdSamplingWorkChain.get_builder_from_protocol(
        codes["pw"], sic_structure(), protocol="fast", overrides={"einstein_frequency": frequency}
    )
    assert isinstance(builder.einstein_frequency, orm.Dict)
    with pytest.raises(ValueError, match=match):
        run_get_node(builder)


def test_harmonic_start_per_element_frequencies(aiida_profile):
    """A Dict gives each element its own stiffness: at equal temperature the stiffer element moves less,
    by the ratio of the frequencies times the square root of the masses."""
    supercell = orm.StructureData(ase=bulk("SiC", "zincblende", a=4.36).repeat((6, 6, 6)))
    moved = harmonic_start(supercell, orm.Float(900.0), orm.Dict({"Si": 8.0, "C": 24.0}), orm.List([1, 2]))
    shift = np.array([s.position for s in moved.sites]) - np.array([s.position for s in supercell.sites])
    symbols = [supercell.get_kind(s.kind_name).symbol for s in supercell.sites]
    si = shift[[k for k, e in enumerate(symbols) if e == "Si"]]
    c = shift[[k for k, e in enumerate(symbols) if e == "C"]]
    expected = (24.0 / 8.0) * np.sqrt(12.011 / 28.0855)
    assert si.std() / c.std() == pytest.approx(expected, rel=0.1)
    assert moved.creator.process_label == "harmonic_start"


# The real MD run is exercised (and its snapshots checked) in test_dataset.py's pipeline test.


def _short_md(
    codes, structure, seed: int, thermostat: str = "andersen", einstein_frequency=None, strains=(), run=True
):
    builder = MdSamplingWorkChain.get_builder_from_protocol(
        codes["pw"],
        structure,
        protocol="fast",
        overrides={
            "equilibration_steps": 2,
            "stride": 1,
            "n_snapshots": 2,
            "training_atoms": None,
            "temperatures": [600.0],
            "held_out_temperatures": [],
            "einstein_frequency": einstein_frequency,
            "pw_parameters": {"IONS": {"ion_temperature": thermostat, "nraise": 10}},
            "strains": list(strains),
        },
    )
    builder.seed = orm.Int(seed)
    if not run:
        return builder
    results, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    return results["trajectories"]["train_T600"]


def test_md_is_reproducible_from_its_seed(codes, pseudo_family, si2):
    """pw.x alone starts a thermostatted MD from clock-seeded velocities (two runs differ); here the
    seeded input velocities and the Andersen thermostat make the same inputs give the same trajectory."""
    from aiida.manage.caching import disable_caching

    with disable_caching():  # other tests of the session turn caching on for pw.x
        first, again = _short_md(codes, si2, seed=0), _short_md(codes, si2, seed=0)
    assert not again.creator.base.caching.is_created_from_cache  # pw.x really ran twice
    assert first.creator.uuid != again.creator.uuid
    assert np.array_equal(first.get_array("positions"), again.get_array("positions"))
    other = _short_md(codes, si2, seed=1)
    assert not np.allclose(first.get_array("positions")[1:], other.get_array("positions")[1:], atol=1e-4)

    md_calc = first.creator
    velocities = np.array(md_calc.inputs.settings["ATOMIC_VELOCITIES"])
    masses = np.full(len(velocities), si2.kinds[0].mass)
    assert np.abs((masses[:, None] * velocities).sum(0)).max() < 1e-12  # zero total momentum
    parameters = md_calc.inputs.parameters.get_dict()["IONS"]
    assert parameters["ion_velocities"] == "from_input" and parameters["ion_temperature"] == "andersen"


def test_rescaling_thermostat_runs_from_pw_x_own_velocities(codes, pseudo_family, si2):
    """pw.x 6.7 cannot start 'rescaling' from input velocities (NaN positions), so none are passed,
    and the report says the run is not reproducible; two such runs differ."""
    trajectory = _short_md(codes, si2, seed=0, thermostat="rescaling")
    md_calc = trajectory.creator
    assert "settings" not in md_calc.inputs or "ATOMIC_VELOCITIES" not in md_calc.inputs.settings.get_dict()
    assert "ion_velocities" not in md_calc.inputs.parameters.get_dict()["IONS"]
    assert np.isfinite(trajectory.get_array("positions")).all()
    workchain = md_calc.caller.caller
    assert any("not reproducible" in log.message for log in orm.Log.collection.get_logs_for(workchain))


def test_harmonic_start_is_seeded_and_in_the_provenance(codes, pseudo_family, si2):
    """With einstein_frequency, each run starts from positions drawn by the harmonic_start calcfunction
    (linked between the supercell and the MD), displaced by the Einstein-model amount for the run's
    temperature; the same seed gives the same start and trajectory."""
    from aiida.manage.caching import disable_caching

    from slem.qe.md import AMU_KG, BOLTZMANN_J_PER_K

    with disable_caching():
        first = _short_md(codes, si2, seed=0, einstein_frequency=10.0)
        again = _short_md(codes, si2, seed=0, einstein_frequency=10.0)
    assert np.array_equal(first.get_array("positions"), again.get_array("positions"))
    start = first.creator.inputs.structure
    maker = start.creator
    assert maker.process_label == "harmonic_start"
    supercell = maker.inputs.structure
    assert maker.inputs.temperature.value == 600.0 and maker.inputs.frequency.value == 10.0
    shift = np.array(start.sites[0].position) - np.array(supercell.sites[0].position)
    omega = 2 * np.pi * 10e12
    sigma = np.sqrt(BOLTZMANN_J_PER_K * 600.0 / (si2.kinds[0].mass * AMU_KG * omega**2)) * 1e10
    assert 1e-4 < np.abs(shift).max() < 5 * sigma
    assert not np.allclose(first.get_array("positions")[0], np.array([s.position for s in supercell.sites]))


def test_strained_cells_get_runs_of_their_own(codes, pseudo_family, si2):
    """Each strain adds a training run on the strained supercell (a calcfunction in the provenance), whose
    snapshots keep the strained cell; +-3 % volume is the 'volume' preset."""
    from aiida_slem.workflows.strain import preset_strains

    strains = preset_strains(["volume"])
    builder = _short_md(codes, si2, seed=0, einstein_frequency=10.0, strains=strains, run=False)
    _, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    volume = si2.get_cell_volume()
    runs = {"train_T600": 1.0, "train_T600_strain1": 1.03, "train_T600_strain2": 0.97}
    assert set(node.outputs.trajectories) == set(runs)
    for label, ratio in runs.items():
        train = node.outputs.snapshots.train
        snapshots = [s for name, s in train.items() if name.startswith(f"{label}_frame")]
        assert len(snapshots) == 2
        for snapshot in snapshots:
            # the cell comes back from pw.x's output, printed to 9 digits
            assert snapshot.get_cell_volume() == pytest.approx(ratio * volume, rel=1e-6)
    made = [n for n in node.called if n.process_label == "strained_cell"]
    assert sorted(n.outputs.result.base.extras.get("strain")[0] > 0 for n in made) == [False, True]


@pytest.mark.parametrize(
    ("strains", "match"),
    [
        ([[0.01, 0.01, 0.01]], "six numbers"),
        ([[0.2, 0, 0, 0, 0, 0]], "another phase"),
    ],
)
def test_refuses_strains_that_are_not_small_voigt_strains(codes, pseudo_family, si2, strains, match):
    builder = _short_md(codes, si2, seed=0, strains=strains, run=False)
    error = MdSamplingWorkChain.spec().inputs.validate(builder._inputs(prune=True))
    assert error is not None and match in error.message


def test_refuses_strains_on_a_sheet_and_unknown_presets(codes, pseudo_family):
    from aiida_slem.workflows.strain import preset_strains

    from aiida_slem.materials import MATERIALS

    sheet = orm.StructureData(ase=MATERIALS["graphene"].build())
    builder = _short_md(codes, sheet, seed=0, strains=[[0.01, 0.01, 0, 0, 0, 0]], run=False)
    error = MdSamplingWorkChain.spec().inputs.validate(builder._inputs(prune=True))
    assert error is not None and "bulk crystals" in error.message
    with pytest.raises(ValueError, match="unknown strain preset"):
        preset_strains(["volume", "twist"])
