"""Where the gate was started from: the project's pytest settings and the caller's relative paths.

pytest decides its rootdir and reads its settings (``[tool.pytest.ini_options]``: testpaths, markers,
addopts) *before* it loads plugins, from the arguments that look like paths (pytest 9.0,
``Config.parse`` calls ``determine_setup`` and only then ``load_setuptools_entrypoints``). At that
moment the gate's options are unknown, so in ``--targets-file /srv/infra/targets.toml`` the value
is taken for a test path: the rootdir becomes ``/srv/infra``, the project's settings are never read,
and pytest would collect the whole folder it was started in. Our entry-point plugin is loaded just
after that, and ``pytest_load_initial_conftests`` is the first hook that sees the arguments parsed
with our options known. :func:`repair_rootdir` redoes pytest's own decision there, with pytest's
own ``determine_setup``, and applies what ``Config.parse`` would have applied.

It touches pytest's private attributes (``_rootpath``, ``_inipath``, ``_inicfg``, ``_inicache``),
which is why pytest is pinned to 9.0.x (pyproject.toml) and why the selftests run the gate with
outside paths in both argument forms (selftest/test_e2e_invocation.py): a pytest that changes this
breaks them, not the operator.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

# The project folder when the distribution is installed from a checkout (editable, as bin/bootstrap
# does); for any other install there is no project here and nothing is repaired.
PROJECT = Path(__file__).resolve().parents[1]


def project_ini() -> Path | None:
    ini = PROJECT / "pyproject.toml"
    return ini if (PROJECT / "tests").is_dir() and ini.is_file() else None


def repair_rootdir(config: "pytest.Config", args: list[str]) -> bool:
    """Make the project the rootdir when pytest mistook an option's value for a test path.

    Only when pytest was started inside the project folder, no ``-c``/``--rootdir`` was given, and
    pytest's decision with the arguments parsed properly is the project's own settings file. Returns
    whether it changed anything.
    """
    from _pytest.config.findpaths import determine_setup

    ini = project_ini()
    ns = config.known_args_namespace
    invocation = Path(config.invocation_params.dir)
    if ini is None or config.inipath == ini or ns.inifilename or ns.rootdir:
        return False
    if not invocation.is_relative_to(PROJECT):
        return False
    rootpath, inipath, inicfg, ignored = determine_setup(
        inifile=None, override_ini=ns.override_ini, args=list(ns.file_or_dir), rootdir_cmd_arg=None,
        invocation_dir=invocation)
    if inipath != ini:
        return False
    config._rootpath, config._inipath, config._inicfg = rootpath, inipath, inicfg
    config._ignored_config_files = ignored
    config._inicache.clear()
    config._parser.extra_info["rootdir"] = str(rootpath)
    config._parser.extra_info["inifile"] = str(inipath)
    # What Config.parse does with the settings once found: addopts before the command line (so
    # `-p no:cacheprovider` and `--strict-markers` hold), pythonpath, and conftest discovery cut at
    # the settings file's folder.
    addopts = config._validate_args(config.getini("addopts"), "via addopts config")
    args[:] = addopts + args
    config.known_args_namespace = config._parser.parse_known_args(args, namespace=copy.copy(config.option))
    config._configure_python_path()
    config.pluginmanager.consider_preparse(addopts, exclude_only=False)
    config.known_args_namespace.confcutdir = str(inipath.parent)
    return True


def default_tests(config: "pytest.Config", args: list[str]) -> bool:
    """Started outside the project (``/opt/goldenpath/bin/gate`` from an infrastructure repository)
    with no test path: run the gate's tests, not whatever is in the caller's folder. pytest itself
    uses ``testpaths`` only when started in the rootdir."""
    ini = project_ini()
    invocation = Path(config.invocation_params.dir)
    if ini is None or config.inipath != ini or invocation.is_relative_to(PROJECT):
        return False
    if config.known_args_namespace.file_or_dir:
        return False
    paths = [str(PROJECT / p) for p in config.getini("testpaths")]
    args.extend(paths)
    config.known_args_namespace.file_or_dir = paths
    return True


def is_gate_run(config: "pytest.Config") -> bool:
    """Whether this pytest run is the gate's: its rootdir is the gate's project, or it names a targets
    file. An installed plugin is loaded into every pytest run of its environment; any other run (a
    test suite of its own, pytest's pytester) sees the gate's options and nothing else."""
    return Path(config.rootpath) == PROJECT or getattr(config.option, "gp_targets_file", None) is not None


def from_caller(cwd: Path, value: str | None) -> Path | None:
    """A path option as the operator meant it: relative to the folder the gate was started in."""
    if value is None:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else cwd / path
