"""``pancreas-node demo``: the main job end to end on one machine.

Generates a phantom study, starts a real Orthanc from ``deploy/orthanc``, sends the study with
DCMTK ``storescu`` and waits until Orthanc lists it over DICOMweb. Later stages (the node's
SCP, analysis, SEG/SR/PDF) extend :func:`run_demo` step by step.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from orthanc_plugin import OrthancConfig, OrthancServer

__all__ = ["DemoError", "DemoOptions", "run_demo"]

_STORESCU = "storescu"


class DemoError(RuntimeError):
    """A demo step failed; the message says which and why."""


@dataclass(frozen=True)
class DemoOptions:
    """What the demo does and where."""

    work_dir: Path
    keep: bool = False
    seed: int = 7
    http_port: int = 8042
    dicom_port: int = 4242
    timeout_s: float = 120.0


def run_demo(options: DemoOptions, console: Console) -> None:
    """Run the demo; stop every process it started unless ``options.keep``.

    Raises
    ------
    DemoError
        If a step fails.
    """
    if shutil.which(_STORESCU) is None:
        raise DemoError("storescu not found: install the Debian package 'dcmtk' (make demo does)")
    options.work_dir.mkdir(parents=True, exist_ok=True)
    study_dir, study_uid = _make_phantom_study(options, console)
    orthanc_config = OrthancConfig(
        work_dir=options.work_dir / "orthanc",
        http_port=options.http_port,
        dicom_port=options.dicom_port,
    )
    server = OrthancServer(orthanc_config)
    console.print(
        f"[bold]2/4[/] starting Orthanc on HTTP {options.http_port}, DICOM {options.dicom_port}"
    )
    server.start()
    try:
        console.print("[bold]3/4[/] sending the study with storescu")
        _send_with_storescu(study_dir, "ORTHANC", options.dicom_port)
        console.print("[bold]4/4[/] waiting for the study in Orthanc's DICOMweb")
        _wait_for_study(server, study_uid, options.timeout_s)
        _print_summary(server, study_uid, console)
        if options.keep:
            console.print(
                f"Orthanc keeps running (admin password: {orthanc_config.admin_password}); "
                "press Ctrl-C to stop."
            )
            _wait_forever()
    finally:
        server.stop()


def _make_phantom_study(options: DemoOptions, console: Console) -> tuple[Path, str]:
    from inference.phantom import PhantomOptions, generate_cohort

    out = options.work_dir / "phantom"
    console.print(f"[bold]1/4[/] generating a phantom study in {out}")
    if out.exists():
        shutil.rmtree(out)
    cohort = generate_cohort(out, 1, options.seed, PhantomOptions())
    patient = cohort.patients[0]
    return patient.dicom_dir, patient.study_uid


def _send_with_storescu(folder: Path, called_aet: str, port: int) -> None:
    cmd = [
        _STORESCU,
        "-aet",
        "PHANTOM_SCU",
        "-aec",
        called_aet,
        "+sd",
        "+r",
        "127.0.0.1",
        str(port),
        str(folder),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise DemoError(f"storescu failed ({result.returncode}): {last}")


def _wait_for_study(server: OrthancServer, study_uid: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        studies = server.get_json("/dicom-web/studies")
        if any(_study_uid(entry) == study_uid for entry in studies):
            return
        time.sleep(0.5)
    raise DemoError(f"the study did not appear in Orthanc within {timeout_s:.0f} s")


def _study_uid(entry: dict[str, dict[str, list[str]]]) -> str | None:
    # DICOM JSON model (PS3.18 F.2): tag 0020000D = StudyInstanceUID.
    values = entry.get("0020000D", {}).get("Value", [])
    return values[0] if values else None


def _print_summary(server: OrthancServer, study_uid: str, console: Console) -> None:
    lookup = server.request(
        "/tools/lookup", method="POST", data=study_uid.encode(), content_type="text/plain"
    )
    orthanc_ids = [item["ID"] for item in json.loads(lookup[1]) if item["Type"] == "Study"]
    table = Table(title="Study stored in Orthanc")
    table.add_column("Series")
    table.add_column("Modality")
    table.add_column("Instances", justify="right")
    for series_id in server.get_json(f"/studies/{orthanc_ids[0]}")["Series"]:
        series = server.get_json(f"/series/{series_id}")
        table.add_row(
            series["MainDicomTags"].get("SeriesDescription", ""),
            series["MainDicomTags"].get("Modality", ""),
            str(len(series["Instances"])),
        )
    console.print(table)
    console.print(f"StudyInstanceUID: {study_uid}")
    console.print(f"DICOMweb: {server.url}/dicom-web/studies/{study_uid}/series")
    console.print(f"Viewer:   {server.url}/app/explorer.html#study?uuid={orthanc_ids[0]}")


def _wait_forever() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return
