"""The operators a frame may hold, and how a spin-polarised frame names its channels.

A spin-unpolarised frame holds H, S and D. A collinear spin-polarised (nspin=2) frame holds one
Hamiltonian and one density matrix per spin channel, H_up, H_down, D_up and D_down, and one S: the
basis, and so the overlap, is the same for both channels. D_sigma holds the occupation f (not 2f) of
each state, so sum_R Tr((D_up + D_down) S) = N_electrons and sum_R Tr((D_up - D_down) S) = M (Bohr
magnetons). Each channel's blocks transform under rotations as H's and D's do.

A non-magnetic spin-orbit frame holds H, S and D and the real spin-orbit parts H_so_x, H_so_y, H_so_z and
D_so_x, D_so_y, D_so_z: the spinor H is H (x) 1 + i sum_a H_so_a (x) sigma_a (slem.spinor), and
sum (D H + sum_a D_so_a H_so_a) is the band energy (slem.projection.spin_orbit, docs/spin-orbit.md).
"""

from __future__ import annotations

from collections.abc import Iterable

SPIN_CHANNELS = ("up", "down")
BASE_OPERATORS = ("H", "S", "D")
SPIN_OPERATORS = tuple(f"{base}_{c}" for base in ("H", "D") for c in SPIN_CHANNELS)
SPIN_ORBIT_AXES = ("x", "y", "z")
SPIN_ORBIT_OPERATORS = tuple(f"{base}_so_{a}" for base in ("H", "D") for a in SPIN_ORBIT_AXES)
OPERATORS = BASE_OPERATORS + SPIN_OPERATORS + SPIN_ORBIT_OPERATORS


def base_operator(name: str) -> str:
    """H, S or D: the kind of ``name`` (H_up -> H), which fixes its unit and its role."""
    return name.split("_", 1)[0]


def channel_names(operators: Iterable[str], base: str) -> list[str]:
    """The operators of kind ``base`` present: [base], or its spin channels in the order up, down."""
    present = set(operators)
    if base in present:
        return [base]
    return [f"{base}_{c}" for c in SPIN_CHANNELS if f"{base}_{c}" in present]


def is_spin_polarised(operators: Iterable[str]) -> bool:
    return any(name in SPIN_OPERATORS for name in operators)


def spin_orbit_names(base: str) -> list[str]:
    """H_so_x, H_so_y, H_so_z (or D's)."""
    return [f"{base}_so_{a}" for a in SPIN_ORBIT_AXES]


def has_spin_orbit(operators: Iterable[str]) -> bool:
    return any(name in SPIN_ORBIT_OPERATORS for name in operators)


def without_spin_orbit(operators: dict) -> dict:
    """The operators with the spin-orbit parts dropped: H and D are then the j-averaged scalar-relativistic
    ones, an ordinary spin-unpolarised frame's (what a band inversion is measured against)."""
    return {name: values for name, values in operators.items() if name not in SPIN_ORBIT_OPERATORS}


def partner_sign(name: str) -> float:
    """X_ji(-R) = sign * X_ij(R)^T: +1 for the Hermitian H, S, D (and their spin channels), -1 for a
    spin-orbit part H_so_a, D_so_a, which is antisymmetric (its X(k) anti-Hermitian)."""
    return -1.0 if "_so_" in name else 1.0


def check_operator_set(operators: Iterable[str]) -> None:
    """Refuse a frame that mixes H with H_up, holds one spin channel without the other, or part of a
    spin-orbit set (H_so_x without H_so_y, H_so_z or without H)."""
    names = set(operators)
    for base in ("H", "D"):
        parts = set(spin_orbit_names(base))
        if names & parts and not (parts <= names and base in names):
            raise ValueError(
                f"a spin-orbit frame holds {base} with all of {sorted(parts)}; it holds {sorted(names)}"
            )
    for base in ("H", "D"):
        channels = {f"{base}_{c}" for c in SPIN_CHANNELS}
        if base in names and names & channels:
            raise ValueError(f"a frame holds either {base} or {sorted(channels)}, not both")
        if names & channels and not channels <= names:
            raise ValueError(
                f"a spin-polarised frame needs both {sorted(channels)}; it holds {sorted(names)}"
            )


def spin_channel_operators(operators: dict, channel: str) -> dict:
    """One channel of a spin-polarised frame's operators under the plain names (H_up -> H, D_up -> D, S),
    for formats that hold one Hamiltonian per structure (DeePTB, DeepH)."""
    if channel not in SPIN_CHANNELS:
        raise ValueError(f"spin channel {channel!r} is not one of {SPIN_CHANNELS}")
    if not is_spin_polarised(operators):
        raise ValueError("the frame is not spin-polarised; export it without a spin channel")
    out = {"S": operators["S"]} if "S" in operators else {}
    for base in ("H", "D"):
        if f"{base}_{channel}" in operators:
            out[base] = operators[f"{base}_{channel}"]
    return out


def select_spin_channel(frames, channel: str) -> None:
    """Turn each spin-polarised frame, in place, into its ``channel`` (``spin_channel_operators``), recorded
    in its metadata: what the one-channel export formats then write."""
    for frame in frames:
        frame.operators = spin_channel_operators(frame.operators, channel)
        frame.metadata = {**frame.metadata, "spin_channel": channel}


def refuse_spin_frames(frames, where: str, spinor: bool = False) -> None:
    """``where`` (a one-channel format) cannot hold both channels: name the way to export them. Unless it
    holds spinors (``spinor``), it cannot hold spin-orbit parts either, which exporting would drop."""
    if not spinor and any(has_spin_orbit(frame.operators) for frame in frames):
        raise ValueError(
            f"the frames hold spin-orbit parts (H_so_x, H_so_y, H_so_z); {where} would keep only their "
            "j-averaged H, as it has no spinor layout: export them with --format deeph (isspinful)"
        )
    if any(is_spin_polarised(frame.operators) for frame in frames):
        raise ValueError(
            f"the frames are spin-polarised (H_up, H_down); {where} holds one Hamiltonian per structure: "
            "export each channel into its own folder (--spin up, then --spin down)"
        )
