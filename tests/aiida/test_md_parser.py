"""``slem.md`` parser on a real pw.x MD output: temperatures parsed, velocities rebuilt and consistent."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.plugins import ParserFactory
from aiida_slem.parsers.md import kinetic_temperature, parse_temperatures
from aiida_test_helpers import si8_structure

EXPECTED_TEMPERATURES = [600.0, 618.49595061, 638.15335631, 658.54376458, 679.22939544, 699.74444422]


@pytest.fixture
def md_calc_node(aiida_localhost, fixtures_dir):
    """A finished PwCalculation node whose retrieved folder holds the stored real MD output."""
    structure = si8_structure(rattle=0.05, seed=1).store()
    parameters = orm.Dict(
        {
            "CONTROL": {"calculation": "md", "dt": 20, "nstep": 6},
            "SYSTEM": {"ecutwfc": 16, "occupations": "fixed", "nosym": True},
            "IONS": {"ion_temperature": "initial", "tempw": 600},
        }
    ).store()
    node = orm.CalcJobNode(computer=aiida_localhost, process_type="aiida.calculations:quantumespresso.pw")
    node.set_option("resources", {"num_machines": 1})
    node.set_option("output_filename", "aiida.out")
    node.base.links.add_incoming(structure, LinkType.INPUT_CALC, "structure")
    node.base.links.add_incoming(parameters, LinkType.INPUT_CALC, "parameters")
    node.store()
    retrieved = orm.FolderData()
    for name in ("aiida.out", "data-file-schema.xml"):
        retrieved.base.repository.put_object_from_file(str(fixtures_dir / "pw_md_si8" / name), name)
    retrieved.base.links.add_incoming(node, LinkType.CREATE, "retrieved")
    retrieved.store()
    return node


def test_temperatures_regex_reads_every_step(fixtures_dir):
    stdout = (fixtures_dir / "pw_md_si8" / "aiida.out").read_text()
    np.testing.assert_allclose(parse_temperatures(stdout), EXPECTED_TEMPERATURES)


def test_md_parser_adds_velocities_and_temperatures(md_calc_node):
    parser = ParserFactory("slem.md")
    results, calcfunction = parser.parse_from_node(md_calc_node, store_provenance=False)
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    trajectory = results["output_trajectory"]
    positions = trajectory.get_array("positions")
    velocities = trajectory.get_array("velocities")
    temperatures = trajectory.get_array("temperatures")
    assert positions.shape == (6, 8, 3) and velocities.shape == (6, 8, 3)
    np.testing.assert_allclose(temperatures, EXPECTED_TEMPERATURES)
    np.testing.assert_allclose(trajectory.get_array("times"), np.arange(6) * 20 * 4.8378e-5, rtol=1e-4)
    # The reconstruction is checked against pw.x's own numbers, not against itself.
    masses = np.full(8, 28.0855)
    np.testing.assert_allclose(kinetic_temperature(velocities, masses), EXPECTED_TEMPERATURES, rtol=1e-5)
    assert trajectory.base.attributes.get("velocity_temperature_max_relative_error") < 1e-4
    # pw.x removes the centre-of-mass motion: total momentum vanishes
    np.testing.assert_allclose(velocities.sum(axis=1), 0.0, atol=1e-6)
    # positions and forces of the stock parser are kept
    assert trajectory.get_array("forces").shape == (6, 8, 3)


def test_md_parser_leaves_scf_runs_alone():
    from aiida_quantumespresso.parsers.pw import PwParser
    from aiida_slem.parsers.md import SlemMdParser

    assert issubclass(SlemMdParser, PwParser)
    assert ParserFactory("slem.md") is SlemMdParser


def logged_messages(parser_name: str, node) -> list[str]:
    import logging

    class Collect(logging.Handler):
        def __init__(self):
            super().__init__(logging.DEBUG)
            self.messages: list[str] = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    handler = Collect()
    logger = logging.getLogger("aiida")  # AiiDA's loggers do not propagate to the root logger
    logger.addHandler(handler)
    try:
        _, calcfunction = ParserFactory(parser_name).parse_from_node(node, store_provenance=False)
    finally:
        logger.removeHandler(handler)
    assert calcfunction.is_finished_ok
    return handler.messages


def test_md_reaching_nstep_is_not_logged_as_an_error(md_calc_node):
    """A fixed-length MD ends at nstep; the stock parser logs that as an ionic-convergence error
    (printed as "Error: ..." during a successful pipeline run), ours does not."""
    assert "ERROR_IONIC_CONVERGENCE_NOT_REACHED" in logged_messages("quantumespresso.pw", md_calc_node)
    assert not [m for m in logged_messages("slem.md", md_calc_node) if "IONIC_CONVERGENCE" in m]
