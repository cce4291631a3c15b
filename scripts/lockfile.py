"""The dependency lock's helper for scripts/lock.sh (write it) and scripts/setup.sh (check it).

The lock (requirements/lock-*.txt) is a pip constraints file: one `name==version` a line, and a header
recording which extras it covers and a hash of pyproject.toml's dependency tables, so an install can
refuse a lock that pyproject.toml has moved past. Standard library only (runs before any venv exists).

    lockfile.py hash                                  the hash of pyproject.toml's dependency tables
    lockfile.py extras [--require a,b]                every extra of pyproject.toml, comma-separated
    lockfile.py requirement NAME                      pyproject.toml's requirement on NAME (e.g. torch==2.13.0)
    lockfile.py version REPORT NAME                   NAME's version in a `pip install --report` file
    lockfile.py write REPORT LOCK --extras a,b        the report's packages as pins (refuses CUDA packages)
    lockfile.py check LOCK --extras a,b               exit 1, saying what to run, when LOCK is stale
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
REFRESH = "bash scripts/lock.sh"
# what a CUDA torch build pulls in; the lock is for the CPU build and must hold none of them
CUDA_PACKAGE = re.compile(r"^(nvidia-.*|cuda-.*|triton)$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def project() -> dict:
    return tomllib.loads(PYPROJECT.read_text())["project"]


def deps_hash() -> str:
    """sha256 of the parsed tables (comments, layout and the rest of pyproject.toml don't count)."""
    p = project()
    tables = {key: p.get(key) for key in ("requires-python", "dependencies", "optional-dependencies")}
    return hashlib.sha256(json.dumps(tables, sort_keys=True).encode()).hexdigest()


def split(extras: str) -> list[str]:
    return sorted({e.strip() for e in extras.split(",") if e.strip()})


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(1)


def all_extras(require: str) -> str:
    extras = sorted(project().get("optional-dependencies", {}))
    missing = [e for e in split(require) if e not in extras]
    if missing:
        fail(f"pyproject.toml has no extra {', '.join(missing)} (scripts/deps.sh HAR_DEV_EXTRAS names it)")
    return ",".join(extras)


def requirement(name: str) -> str:
    p = project()
    for req in [*p.get("dependencies", []), *(r for rs in p.get("optional-dependencies", {}).values() for r in rs)]:
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
        if match and canonical(match.group(1)) == canonical(name):
            return req.split(";")[0].strip()
    fail(f"pyproject.toml does not require {name}")
    return ""


def report_packages(report: Path) -> dict[str, str]:
    data = json.loads(report.read_text())
    return {canonical(item["metadata"]["name"]): item["metadata"]["version"] for item in data["install"]}


def write(report: Path, lock: Path, extras: str) -> None:
    data = json.loads(report.read_text())
    packages = report_packages(report)
    packages.pop(canonical(project()["name"]), None)  # the project itself is installed from the checkout
    cuda = sorted(name for name in packages if CUDA_PACKAGE.match(name))
    if cuda:
        fail(f"the resolve pulled CUDA packages ({', '.join(cuda)}): torch {packages.get('torch')} is not the CPU "
             "build; the lock is not written")
    local = {name: version for name, version in packages.items() if "+" in version}
    notes = ", ".join(f"{name} {version}" for name, version in sorted(local.items()))
    shown = lock.relative_to(ROOT) if lock.is_relative_to(ROOT) else lock
    lines = [
        "# har-assets: exact versions of every package its install needs, as a pip constraints file:",
        f'#   pip install -e ".[extras]" -c {shown}',
        "# for linux x86_64, CPython 3.11 and torch's CPU build (no nvidia-* / CUDA packages).",
        f"# Written by `{REFRESH}` from pyproject.toml; do not edit. scripts/setup.sh and the Dockerfile use it.",
        f"# extras: {','.join(split(extras))}",
        f"# pyproject-sha256: {deps_hash()}  (its requires-python, dependencies and optional-dependencies)",
    ]
    if notes:
        lines.append(f"# resolved as {notes}: pinned without the local label (+...), so the same pin takes the CPU "
                     "index's build, the registry's, or a CUDA image's")
    lines.append(f"pip=={data['pip_version']}")
    lines += [f"{name}=={version.split('+')[0]}" for name, version in sorted(packages.items()) if name != "pip"]
    lock.write_text("\n".join(lines) + "\n")
    print(f"{shown}: {len(packages)} packages pinned")


def check(lock: Path, extras: str) -> None:
    if not lock.is_file():
        fail(f"{lock} is missing: run `{REFRESH}` and commit it")
    header = dict(re.findall(r"^# (extras|pyproject-sha256): (\S*)", lock.read_text(), re.MULTILINE))
    if header.get("pyproject-sha256") != deps_hash():
        fail(f"pyproject.toml's dependencies changed since {lock} was written: run `{REFRESH}` (linux x86_64, "
             "Python 3.11, a few minutes) and commit the new lock with pyproject.toml")
    missing = [e for e in split(extras) if e not in split(header.get("extras", ""))]
    if missing:
        fail(f"{lock} does not cover the extra(s) {', '.join(missing)} that scripts/setup.sh installs: run `{REFRESH}`")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("hash")
    p = sub.add_parser("extras")
    p.add_argument("--require", default="")
    p = sub.add_parser("requirement")
    p.add_argument("name")
    p = sub.add_parser("version")
    p.add_argument("report", type=Path)
    p.add_argument("name")
    for command in ("write", "check"):
        p = sub.add_parser(command)
        if command == "write":
            p.add_argument("report", type=Path)
        p.add_argument("lock", type=Path)
        p.add_argument("--extras", required=True)
    args = parser.parse_args()
    if args.command == "hash":
        print(deps_hash())
    elif args.command == "extras":
        print(all_extras(args.require))
    elif args.command == "requirement":
        print(requirement(args.name))
    elif args.command == "version":
        version = report_packages(args.report).get(canonical(args.name))
        if version is None:
            fail(f"{args.name} is not in {args.report}")
        print(version)
    elif args.command == "write":
        write(args.report, args.lock.resolve(), args.extras)
    else:
        check(args.lock, args.extras)


if __name__ == "__main__":
    main()
