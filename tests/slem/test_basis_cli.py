"""``slem basis``: one file for all elements, a readable table and the JSON summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from slem.basis.orbital import read_basis
from slem.cli.main import cli

PSEUDO = Path("/usr/share/espresso/pseudo")
SI = PSEUDO / "Si.pbe-rrkj.UPF"
C = PSEUDO / "C.pbe-mt_gipaw.UPF"

pytestmark = pytest.mark.skipif(not SI.is_file(), reason="QE pseudopotentials missing")


def test_cli_writes_basis_table_and_json(tmp_path):
    out, summary = tmp_path / "basis.h5", tmp_path / "summary.json"
    args = ["basis", str(SI), str(C), "--preset", "SZP", "--radius", "Si=4.2", "--radius", "C.p=3.1"]
    result = CliRunner().invoke(cli, [*args, "-o", str(out), "--json-summary", str(summary)])
    assert result.exit_code == 0, result.output
    assert "Si      SZP   1s1p1d" in result.output and "eigenvalues (eV)" in result.output
    bases = read_basis(out)
    assert sorted(bases) == ["C", "Si"]
    assert bases["Si"].params["radii"] == pytest.approx({"s": 4.2, "p": 4.2, "d": 4.2})
    assert bases["C"].params["radii"]["p"] == pytest.approx(3.1)
    assert bases["C"].params["radii"]["d"] == pytest.approx(3.1)
    data = json.loads(summary.read_text())
    assert data["elements"] == ["C", "Si"] and data["label"] == "SZP"
    assert data["shells"] == {"C": "1s1p1d", "Si": "1s1p1d"}
    assert data["radii"]["Si"] == pytest.approx(4.2)
    assert data["upf_md5"]["Si"] == bases["Si"].upf_md5 and len(data["upf_md5"]["C"]) == 32


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--radius", "0.8"], "not bound"),
        (["--radius", "Ge=4"], "no UPF for it"),
        (["--radius", "Si=big"], "expected 4.0"),
    ],
)
def test_cli_errors_are_clear(tmp_path, extra, message):
    result = CliRunner().invoke(cli, ["basis", str(SI), *extra, "-o", str(tmp_path / "b.h5")])
    assert result.exit_code != 0
    assert message in result.output
    assert not (tmp_path / "b.h5").exists()


def test_cli_rejects_ultrasoft(tmp_path):
    us = PSEUDO / "Si.pbe-nl-rrkjus_psl.1.0.0.UPF"
    result = CliRunner().invoke(cli, ["basis", str(us), "-o", str(tmp_path / "b.h5")])
    assert result.exit_code != 0 and "norm-conserving" in result.output
