"""Parser of ``slem.spectrum``: the JSON result becomes a summary Dict, ArrayData for the DOS and the band
edges, and the DOS plot a SinglefileData."""

from __future__ import annotations

import json

import numpy as np
from aiida import orm
from aiida.engine import ExitCode
from aiida.parsers import Parser
from aiida_slem.calcjobs.spectrum import PLOT_FILE, RESULT_FILE, STDERR

from .common import stderr_tail

ARRAYS = ("energies_eV", "dos_states_per_eV", "integrated_dos", "edge_eigenvalues_eV")
CHANNEL_ARRAYS = {"dos_up_states_per_eV": "dos_up", "dos_down_states_per_eV": "dos_down"}


def summary_of(result: dict) -> dict:
    """The scalars of the result, edges and KPM flattened to queryable keys (energies in eV)."""
    skipped = {*ARRAYS, *CHANNEL_ARRAYS, "edges", "kpm"}
    summary = {k: v for k, v in result.items() if k not in skipped}
    kpm = result.get("kpm") or {}
    for key in (
        "n_moments",
        "n_vectors",
        "resolution_eV",
        "fermi_level_eV",
        "states_below_midgap",
        "states_below_midgap_error",
        "overlap_solver",
        "magnetization_mub",
        "magnetization_error_mub",
    ):
        if key in kpm:
            summary[f"kpm_{key}"] = kpm[key]
    edges = result.get("edges")
    if edges:
        for key in ("homo_eV", "lumo_eV", "gap_eV", "n_occupied_states", "sigma_eV", "inertia_checked"):
            summary[key] = edges[key]
        summary["factorizations"] = len(edges.get("factorizations", []))
        # a spin-polarised frame: each channel's occupied states at this k, exact (inertia)
        for key in ("occupied_up", "occupied_down", "magnetization_mub", "magnetization_range_mub"):
            if key in edges:
                summary[key] = edges[key]
        if "fermi_multiplet" in edges:  # states N and N + 1 degenerate: the multiplet filled equally
            multiplet = edges["fermi_multiplet"]
            summary["fermi_multiplet_states"] = multiplet["states_up"] + multiplet["states_down"]
            summary["fermi_multiplet_electrons"] = multiplet["electrons"]
    return summary


class SlemSpectrumParser(Parser):
    def parse(self, **kwargs) -> ExitCode | None:
        files = set(self.retrieved.base.repository.list_object_names())
        if RESULT_FILE not in files:
            return self.exit_codes.ERROR_MISSING_OUTPUT.format(message=stderr_tail(self, STDERR))
        try:
            result = json.loads(self.retrieved.base.repository.get_object_content(RESULT_FILE, mode="r"))
            if not isinstance(result, dict):
                raise ValueError(f"{RESULT_FILE} holds a {type(result).__name__}, not an object")
            arrays = {name: np.asarray(result[name], dtype=np.float64) for name in ARRAYS}
        except (ValueError, KeyError, TypeError) as exc:
            return self.exit_codes.ERROR_INVALID_OUTPUT.format(message=f"{type(exc).__name__}: {exc}")
        if len({len(arrays[name]) for name in ("energies_eV", "dos_states_per_eV", "integrated_dos")}) != 1:
            return self.exit_codes.ERROR_INVALID_OUTPUT.format(message="the DOS arrays differ in length")

        dos = orm.ArrayData()
        dos.set_array("energies", arrays["energies_eV"])
        dos.set_array("dos", arrays["dos_states_per_eV"])
        dos.set_array("integrated_dos", arrays["integrated_dos"])
        for key, name in CHANNEL_ARRAYS.items():
            if key in result:
                dos.set_array(name, np.asarray(result[key], dtype=np.float64))
        # a spinor H's states, and a spin channel's, each hold one electron; a scalar H's are counted once
        # for both spins
        counted = "states/eV per cell, spin not counted"
        if result.get("spinor"):
            counted = "spinor states/eV per cell"
        elif len(result.get("spin_channels") or []) > 1:
            counted = "states/eV per cell, both channels (dos_up + dos_down)"
        dos.base.attributes.set("units", {"energies": "eV", "dos": counted})
        self.out("dos", dos)
        edges = result.get("edges")
        if edges:
            node = orm.ArrayData()
            node.set_array("eigenvalues", arrays["edge_eigenvalues_eV"])
            node.set_array("indices", np.asarray(edges.get("eigenvalue_indices", []), dtype=np.int64))
            for key, name in (("homo_eV", "homo"), ("lumo_eV", "lumo"), ("gap_eV", "gap")):
                node.base.attributes.set(name, float(edges[key]))
            node.base.attributes.set("inertia_checked", bool(edges.get("inertia_checked")))
            self.out("edges", node)
        self.out("output_parameters", orm.Dict(summary_of(result)))
        if PLOT_FILE in files:
            with self.retrieved.base.repository.open(PLOT_FILE, "rb") as handle:
                self.out("dos_plot", orm.SinglefileData(handle, filename=PLOT_FILE))
        return None
