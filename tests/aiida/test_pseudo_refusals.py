"""pw.x cutoffs from the family's recommended cutoffs per protocol stringency, the pipeline's family
option, and the refusals that come before any DFT runs (no process node is created). No pw.x runs here."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida_pseudo.data.pseudo import UpfData
from aiida_slem.workflows.md_sampling import MdSamplingWorkChain
from aiida_slem.workflows.operator import OperatorWorkChain
from aiida_slem.workflows.pipeline import SlemPipelineWorkChain
from aiida_test_helpers import write_test_basis
from ase import Atoms
from ase.build import bulk

import submit_pipeline
from aiida_slem.data import BasisData
from aiida_slem.pseudo_families import folder_hints, install_family, read_upf_files
from aiida_slem.pseudos import DEBIAN_PSEUDO_DIR, DEFAULT_FAMILY_EXTRA, set_default_family

DOJO = Path(__file__).resolve().parents[1] / "data" / "pseudos" / "pseudodojo-nlcc"


def _si8() -> orm.StructureData:
    return orm.StructureData(ase=bulk("Si", "diamond", a=5.43, cubic=True))


def _cutoffs(parameters: orm.Dict) -> tuple:
    system = parameters.get_dict()["SYSTEM"]
    return system["ecutwfc"], system.get("ecutrho")


@pytest.fixture
def dojo_family(aiida_profile):
    files = read_upf_files(list(DOJO.glob("*.upf")))
    family, _ = install_family(files, f"test/dojo/{uuid.uuid4().hex[:8]}", folder_hints(DOJO, files), "test")
    yield family
    if DEFAULT_FAMILY_EXTRA in family.base.extras.keys():
        family.base.extras.delete(DEFAULT_FAMILY_EXTRA)


@pytest.mark.parametrize(
    ("protocol", "expected"), [("fast", (20, 80)), ("balanced", (30, 120)), ("precise", (36, 144))]
)
def test_debian_si_cutoffs_per_protocol_are_unchanged(codes, pseudo_family, protocol, expected):
    md = MdSamplingWorkChain.get_builder_from_protocol(codes["pw"], _si8(), protocol=protocol)
    scf = OperatorWorkChain.get_builder_from_protocol(
        codes["pw"], codes["pp"], codes["slem"], _si8(), protocol=protocol
    )
    assert _cutoffs(md.md.pw.parameters) == expected and _cutoffs(scf.scf.pw.parameters) == expected


def test_explicit_ecutwfc_wins_and_ecutrho_is_left_to_pw(codes, pseudo_family):
    builder = MdSamplingWorkChain.get_builder_from_protocol(
        codes["pw"], _si8(), protocol="fast", overrides={"pw_parameters": {"SYSTEM": {"ecutwfc": 25.0}}}
    )
    assert _cutoffs(builder.md.pw.parameters) == (25.0, None)


def test_pipeline_takes_the_family_and_its_largest_cutoffs(codes, pseudo_family, dojo_family):
    gaas = orm.StructureData(ase=bulk("GaAs", "zincblende", a=5.65, cubic=True))
    builder = SlemPipelineWorkChain.get_builder_from_protocol(
        codes, {"gaas": gaas}, protocol="fast", overrides={"pseudo_family": dojo_family.label}
    )
    # PseudoDojo 'low' hints: Ga 36 Ha, As 38 Ha -> the larger, 76 Ry, and 4 x for the density
    assert _cutoffs(builder.md.md.pw.parameters) == (76, 304)
    assert _cutoffs(builder.dataset.operator.scf.pw.parameters) == (76, 304)
    assert builder.md.md.pw.pseudos["As"].md5 == dojo_family.get_pseudo("As").md5
    assert builder.builder_parameters["overrides"]["pseudo_family"] == dojo_family.label


def test_the_family_recorded_by_setup_is_the_default(codes, pseudo_family, dojo_family):
    set_default_family(dojo_family)
    builder = MdSamplingWorkChain.get_builder_from_protocol(codes["pw"], _si8(), protocol="balanced")
    assert builder.md.pw.pseudos["Si"].md5 == dojo_family.get_pseudo("Si").md5
    assert _cutoffs(builder.md.pw.parameters) == (36, 144)  # Si 'normal' 18 Ha


def _pair(symbols: str) -> orm.StructureData:
    atoms = Atoms(symbols, positions=[[0, 0, 0], [1.4, 1.4, 1.4]], cell=[5.43] * 3, pbc=True)
    return orm.StructureData(ase=atoms)


def _basis(tmp_path) -> BasisData:
    return BasisData(write_test_basis(tmp_path / "basis.h5"))


def _refused(builder, message: str) -> None:
    """Building (a callable) or launching ``builder`` raises ``message`` and leaves no process node behind."""
    before = orm.QueryBuilder().append(orm.ProcessNode).count()
    with pytest.raises(ValueError, match=message):
        run_get_node(builder() if callable(builder) else builder)
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == before


def test_element_missing_from_the_family_names_it_and_the_fix(codes, pseudo_family):
    sige = _pair("SiGe")
    with pytest.raises(ValueError, match=r"'SLEM/NC/PBE/Debian' has no pseudopotential for Ge; .*pseudo-dir"):
        SlemPipelineWorkChain.get_builder_from_protocol(codes, {"sige": sige}, protocol="fast")
    builder = SlemPipelineWorkChain.get_builder_from_protocol(codes, {"si": _si8()}, protocol="fast")
    builder.structures = {"sige": sige}
    _refused(builder, r"no pseudopotential for kind\(s\) \['Ge'\].*aiida-slem setup --pseudo-dir")


def _fully_relativistic(_) -> UpfData:
    return UpfData(DOJO.parent / "pseudodojo-fr" / "Si.upf")


@pytest.mark.parametrize(
    ("element", "pseudo", "message"),
    [
        ("Si", lambda _: UpfData(DEBIAN_PSEUDO_DIR / "Si.pbe-nl-rrkjus_psl.1.0.0.UPF"), "ultrasoft"),
        ("B", lambda _: UpfData(DEBIAN_PSEUDO_DIR / "B.pbe-n-kjpaw_psl.1.0.0.UPF"), "a PAW"),
        ("Si", _fully_relativistic, r"fully relativistic pseudopotential\(s\) for \['Si'\] without lspinorb"),
    ],
)
def test_unusable_pseudopotentials_are_refused(codes, pseudo_family, tmp_path, element, pseudo, message):
    structure = _pair(element * 2)
    overrides = {"pseudos": {element: pseudo(tmp_path)}, "pw_parameters": {"SYSTEM": {"ecutwfc": 30.0}}}
    md = MdSamplingWorkChain.get_builder_from_protocol(codes["pw"], structure, "fast", overrides)
    _refused(md, message)
    _refused(
        OperatorWorkChain.get_builder_from_protocol(
            codes["pw"], codes["pp"], codes["slem"], structure, _basis(tmp_path), "fast", overrides
        ),
        message,
    )


# what slem project cannot split into spin channels, refused before any pw.x run (collinear nspin=2 with
# smearing and a starting magnetisation is accepted: test_magnetism.py)
SPIN = [
    ({"nspin": 2, "starting_magnetization": {"Si": 0.5}}, "nspin=2 with occupations='fixed'"),
    ({"starting_magnetization(1)": 0.5}, "starting_magnetization is set but nspin is 1"),
    ({"noncolin": True}, "non-collinear magnetism .*noncolin=True"),
    ({"lspinorb": True}, "lspinorb=True needs noncolin=True"),
    ({"noncolin": True, "lspinorb": True, "starting_magnetization": {"Si": 0.5}}, "spin-orbit .*with magnet"),
    ({"noncolin": True, "lspinorb": True}, "scalar-relativistic pseudopotentials only"),
    ({"tot_magnetization": 2}, "tot_magnetization=2 fixes the moment"),
]


@pytest.mark.parametrize(("system", "message"), SPIN)
def test_spin_requests_slem_cannot_project_are_refused_everywhere(
    codes, pseudo_family, tmp_path, system, message
):
    overrides = {"pw_parameters": {"SYSTEM": system}}
    _refused(MdSamplingWorkChain.get_builder_from_protocol(codes["pw"], _si8(), "fast", overrides), message)
    _refused(
        OperatorWorkChain.get_builder_from_protocol(
            codes["pw"], codes["pp"], codes["slem"], _si8(), _basis(tmp_path), "fast", overrides
        ),
        message,
    )
    build = SlemPipelineWorkChain.get_builder_from_protocol
    for section in ({"md": overrides}, {"dataset": {"operator": overrides}}):
        # the dataset's operator namespace keeps OperatorWorkChain's validator: the builder itself refuses
        _refused(lambda s=section: build(codes, _si8(), "fast", s), message)


def test_unknown_override_keys_are_refused_with_a_suggestion(codes, pseudo_family):
    with pytest.raises(ValueError, match="unknown override 'n_snapshot' .*did you mean 'n_snapshots'"):
        MdSamplingWorkChain.get_builder_from_protocol(codes["pw"], _si8(), "fast", {"n_snapshot": 3})
    with pytest.raises(ValueError, match="unknown override 'trian' .*did you mean 'train'"):
        SlemPipelineWorkChain.get_builder_from_protocol(codes, _si8(), "fast", {"trian": {}})


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--pseudo-family", "no/such"], "refused: pseudopotential family 'no/such' is not installed"),
        (["--overrides", '{"md": {"pw_parameters": {"SYSTEM": {"nspin": 2}}}}'], "refused: SYSTEM nspin=2"),
        (["--magnetization", "Fe=0.4"], "refused: magnetization .* gives none of the structure's elements"),
        (["--material", "C", "--pseudo-family", "DOJO"], "refused: family 'DOJO' has no pseudopotential"),
        # issue #18 item 9: misspelt or foreign keys and bad values anywhere in the overrides
        (["--overrides", '{"trian": {}}'], "refused: unknown override 'trian' .*did you mean 'train'"),
        (["--overrides", '{"md": {"n_snapshot": 3}}'], "unknown override 'n_snapshot' .*'n_snapshots'"),
        (["--overrides", '{"train": {"config": {"training": {"learning_rate": 0.1}}}}'], "did you mean 'lr'"),
        (["--overrides", '{"train": {"config": {"training": {"lr": -1}}}}'], "'training.lr' must be"),
        (["--overrides", '{"train": {"config": {"model": {"n_layers": "three"}}}}'], "'model.n_layers' must"),
    ],
)
def test_submit_pipeline_refuses_before_storing_anything(codes, pseudo_family, dojo_family, argv, message):
    argv = [dojo_family.label if a == "DOJO" else a for a in argv]
    message = message.replace("DOJO", dojo_family.label)
    args = submit_pipeline.parse_args(argv)
    overrides = submit_pipeline.pipeline_overrides(args)
    before = orm.QueryBuilder().append(orm.Node).count()
    with pytest.raises(SystemExit, match=message):
        submit_pipeline.checked_builder(
            SlemPipelineWorkChain, codes, submit_pipeline.load_structures(args), "fast", overrides, None, None
        )
    assert orm.QueryBuilder().append(orm.Node).count() == before
