import os
import tempfile

import pytest

# one kernel cache per test session unless the caller chose one
os.environ.setdefault("EPCAL_CACHE_DIR", os.path.join(tempfile.gettempdir(), "epcal-test-cache"))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Under CI=true a test marked ``lammps`` fails when LAMMPS is missing, instead of skipping
    (a CI without LAMMPS would otherwise hide the atomistic tests behind a green run)."""
    if os.environ.get("CI") != "true" or item.get_closest_marker("lammps") is None:
        return
    from epcal.reference.lammps_driver import LammpsUnavailable, load_lammps

    try:
        load_lammps()
    except LammpsUnavailable as exc:
        pytest.fail(f"CI=true and this test needs LAMMPS: {exc}", pytrace=False)
