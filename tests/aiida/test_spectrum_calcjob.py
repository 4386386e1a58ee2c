"""``slem.spectrum``: inputs are checked, the command line is built, the parser stores the DOS, the band edges
and the plot as nodes, and a real run on the Si8 frame gives the dense band edges."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import run_get_node
from aiida.plugins import CalculationFactory, ParserFactory

from aiida_slem.data.dataset import DatasetData
from aiida_slem.data.operator import OperatorData
from slem.data.frame import read_frames, write_frames
from slem.spectrum import BlochPattern

SlemSpectrumCalculation = CalculationFactory("slem.spectrum")
SlemSpectrumParser = ParserFactory("slem.spectrum")

SI8 = Path(__file__).parents[1] / "data" / "si8_frames.h5"
METADATA = {"options": {"resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1}}}


@pytest.fixture
def si8_operators(aiida_profile, tmp_path) -> OperatorData:
    return OperatorData(write_frames(tmp_path / "si8.h5", read_frames(SI8, [0]))).store()


@pytest.fixture
def si8_dataset(aiida_profile, tmp_path) -> DatasetData:
    return DatasetData(write_frames(tmp_path / "si8x2.h5", read_frames(SI8, [0, 1]))).store()


def refused(**inputs) -> str:
    with pytest.raises(ValueError) as info:
        run_get_node(SlemSpectrumCalculation, metadata=METADATA, **inputs)
    return str(info.value)


def test_inputs_are_checked_before_submission(slem_code, si8_operators, si8_dataset):
    assert "exactly one of" in refused(code=slem_code)
    assert "exactly one of" in refused(code=slem_code, operators=si8_operators, dataset=si8_dataset)
    assert "with dataset only" in refused(code=slem_code, operators=si8_operators, index=orm.Int(1))
    assert "holds 2 frame" in refused(code=slem_code, dataset=si8_dataset, index=orm.Int(2))
    for parameters, message in (
        ({"moment": 64}, "unknown spectrum parameter"),
        ({"supercell": [2, 2]}, "three numbers"),
        ({"supercell": [2, 0, 1]}, "positive integers"),
        ({"edges": 1}, "must be"),
        ({"overlap_solver": "cholesky"}, "auto, cg or lu"),
    ):
        assert message in refused(code=slem_code, operators=si8_operators, parameters=orm.Dict(parameters))


def test_command_line(generate_calc_job, slem_code, si8_dataset):
    parameters = {"supercell": [2, 2, 2], "moments": 128, "edges": False, "kpoint": [0.5, 0, 0]}
    _, calc_info = generate_calc_job(
        SlemSpectrumCalculation,
        {
            "code": slem_code,
            "dataset": si8_dataset,
            "index": orm.Int(1),
            "parameters": orm.Dict(parameters),
            "metadata": METADATA,
        },
    )
    arguments = calc_info.codes_info[0].cmdline_params
    assert arguments[:6] == ["spectrum", "frames.h5", "-o", "spectrum.json", "--plot", "dos.png"]
    assert arguments[6:] == [
        "--index",
        "1",
        "--no-edges",
        "--kpoint",
        "0.5",
        "0",
        "0",
        "--moments",
        "128",
        "--supercell",
        "2",
        "2",
        "2",
    ]
    assert calc_info.local_copy_list == [(si8_dataset.uuid, si8_dataset.filename, "frames.h5")]
    assert {"spectrum.json", "dos.png"} <= set(calc_info.retrieve_list)


@pytest.fixture
def spectrum_node(aiida_localhost):
    """A finished-looking CalcJobNode with the given files retrieved."""

    def factory(files: dict[str, bytes]):
        node = orm.CalcJobNode(computer=aiida_localhost, process_type="aiida.calculations:slem.spectrum")
        node.set_option("resources", {"num_machines": 1})
        node.set_option("output_filename", "slem-spectrum.out")
        node.store()
        retrieved = orm.FolderData()
        for name, content in files.items():
            retrieved.base.repository.put_object_from_bytes(content, name)
        retrieved.base.links.add_incoming(node, LinkType.CREATE, "retrieved")
        retrieved.store()
        return node

    return factory


def test_parser_stores_dos_edges_and_plot(spectrum_node, tmp_path):
    from slem.cli.spectrum import plot_dos, write_result
    from slem.spectrum import frame_spectrum

    result = frame_spectrum(read_frames(SI8, [0])[0], n_moments=64, n_vectors=2, points=101)
    write_result(tmp_path / "spectrum.json", result)
    plot_dos(tmp_path / "dos.png", result)
    node = spectrum_node({name: (tmp_path / name).read_bytes() for name in ("spectrum.json", "dos.png")})
    outputs, calcfunction = SlemSpectrumParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    assert outputs["dos"].get_array("dos").shape == (101,)
    assert outputs["edges"].base.attributes.get("gap") == pytest.approx(result["edges"]["gap_eV"])
    np.testing.assert_allclose(outputs["edges"].get_array("eigenvalues"), result["edge_eigenvalues_eV"])
    summary = outputs["output_parameters"].get_dict()
    assert summary["homo_eV"] == pytest.approx(result["edges"]["homo_eV"]) and summary["n_atoms"] == 8
    assert summary["kpm_n_moments"] == 64
    assert outputs["dos_plot"].filename == "dos.png"


def test_parser_keeps_both_spin_channels(spectrum_node, tmp_path):
    import dataclasses

    from slem.cli.spectrum import plot_dos, write_result
    from slem.spectrum import frame_spectrum

    frame = read_frames(SI8, [0])[0]
    h, overlap = frame.operators["H"], frame.operators["S"]
    spin = dataclasses.replace(
        frame, operators={"H_up": h + 1.5 * overlap, "H_down": h - 1.5 * overlap, "S": overlap}
    )
    result = frame_spectrum(spin, n_moments=64, n_vectors=2, points=101)
    write_result(tmp_path / "spectrum.json", result)
    plot_dos(tmp_path / "dos.png", result)
    node = spectrum_node({name: (tmp_path / name).read_bytes() for name in ("spectrum.json", "dos.png")})
    outputs, calcfunction = SlemSpectrumParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    dos = outputs["dos"]
    np.testing.assert_allclose(
        dos.get_array("dos_up") + dos.get_array("dos_down"), dos.get_array("dos"), atol=1e-9
    )
    assert "both channels" in dos.base.attributes.get("units")["dos"]
    summary = outputs["output_parameters"].get_dict()
    assert summary["spin_channels"] == ["H_up", "H_down"] and summary["electrons_per_state"] == 1
    assert summary["occupied_up"] + summary["occupied_down"] == 32
    assert summary["magnetization_mub"] == summary["occupied_up"] - summary["occupied_down"] < 0
    assert "dos_up_states_per_eV" not in summary and "kpm_magnetization_mub" in summary
    # identical channels and an odd count: states N and N + 1 are one up-down pair holding one electron
    same = dataclasses.replace(spin, operators={"H_up": h, "H_down": h, "S": overlap})
    write_result(tmp_path / "spectrum.json", frame_spectrum(same, n_electrons=31, n_moments=64, n_vectors=2))
    node = spectrum_node({name: (tmp_path / name).read_bytes() for name in ("spectrum.json", "dos.png")})
    outputs = SlemSpectrumParser.parse_from_node(node, store_provenance=False)[0]
    summary = outputs["output_parameters"].get_dict()
    assert (summary["occupied_up"], summary["magnetization_mub"], summary["magnetization_range_mub"]) == (
        15.5, 0.0, [-1.0, 1.0])
    assert (summary["fermi_multiplet_states"], summary["fermi_multiplet_electrons"]) == (2, 1.0)


def test_parser_exit_codes(spectrum_node):
    stderr = b"slem spectrum: the frame holds ['H']; a spectrum needs H and S\n"
    _, calcfunction = SlemSpectrumParser.parse_from_node(
        spectrum_node({"slem-spectrum.err": stderr}), store_provenance=False
    )
    assert calcfunction.exit_status == SlemSpectrumCalculation.exit_codes.ERROR_MISSING_OUTPUT.status
    assert "needs H and S" in calcfunction.exit_message
    _, calcfunction = SlemSpectrumParser.parse_from_node(
        spectrum_node({"spectrum.json": json.dumps({"energies_eV": [0.0]}).encode()}), store_provenance=False
    )
    assert calcfunction.exit_status == SlemSpectrumCalculation.exit_codes.ERROR_INVALID_OUTPUT.status


def test_run_on_the_si8_frame_gives_the_dense_band_edges(slem_code, si8_operators):
    """'slem spectrum' on localhost: the 2x2x2 supercell of the Si8 frame (64 atoms) at Gamma."""
    parameters = orm.Dict({"supercell": [2, 2, 2], "moments": 64, "vectors": 2})
    results, node = run_get_node(
        SlemSpectrumCalculation,
        code=slem_code,
        operators=si8_operators,
        parameters=parameters,
        metadata=METADATA,
    )
    assert node.is_finished_ok, node.exit_message
    pattern = BlochPattern(read_frames(SI8, [0])[0])
    mesh = np.array([[a, b, c] for a in range(2) for b in range(2) for c in range(2)]) / 2.0
    dense = np.sort(
        np.concatenate(
            [
                scipy.linalg.eigh(
                    pattern.matrix("H", k).toarray(), pattern.matrix("S", k).toarray(), eigvals_only=True
                )
                for k in mesh
            ]
        )
    )  # the supercell's Gamma spectrum is the primitive one on the folded mesh
    edges = results["edges"]
    assert edges.base.attributes.get("homo") == pytest.approx(dense[127], abs=1e-8)
    assert edges.base.attributes.get("lumo") == pytest.approx(dense[128], abs=1e-8)
    assert results["output_parameters"]["n_orbitals"] == 256
    assert results["dos_plot"].filename == "dos.png"
