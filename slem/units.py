"""Physical constants for converting pw.x's atomic units (CODATA 2018, as Quantum ESPRESSO 6.7 uses) to
the project's eV and Angstrom: one definition for every module and benchmark."""

BOHR_ANGSTROM = 0.529177210903
HARTREE_EV = 27.211386245988
RYDBERG_EV = HARTREE_EV / 2.0
