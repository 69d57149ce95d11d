"""``pancreas-node demo``: the main job end to end on one machine.

Generates a phantom study, starts a real Orthanc from ``deploy/orthanc`` and the node (SCP,
series assembly, routing rules, job queue; SQLite, in-process worker), sends the study with
DCMTK ``storescu`` to both, as a scanner routing to its PACS and to the AI node would, and waits
until Orthanc lists the study over DICOMweb and the node has routed the series and queued its
analysis job. With a demo bundle in ``bundles/demo/`` the node also analyses the series (registry
lookup, analysis, SEG + SR + PDF delivered to Orthanc) and the demo prints the category, the
contact angles and the timings; without one the job stays queued and the demo says so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from rich.console import Console
from rich.table import Table

from db import (
    NodeDatabase,
    RegistryConfig,
    SeriesStatus,
    get_result,
    get_series,
    list_recent_jobs,
    load_registry_config,
)
from db.registry import RegistryBridge, seed_demo_registry
from dicom_node.node import Node
from pancreas_contracts import JobState, Settings, load_settings
from pancreas_contracts.result import AnalysisResult
from pancreas_node._cli_analyze import DEMO_BUNDLE, spread_text
from pancreas_node._demo_inbox import DemoInbox, demo_inbox
from pancreas_node._ports import check_can_listen, started_node
from pancreas_node.analysis_runner import AnalysisRunner
from pancreas_node.correction_runner import correction_loop
from pancreas_node.orthanc_server import OrthancConfig, OrthancServer, PythonPluginConfig

__all__ = ["DemoError", "DemoOptions", "check_ports", "dcmtk_storescu", "run_demo"]

_STORESCU = "storescu"
_REGISTRY_MAPPING = (
    Path(__file__).resolve().parents[1] / "deploy" / "registry" / "example-registry.toml"
)
#: The OHIF viewer with the PancreasAI extension, prepared by ``make viewer`` (issue 8).
_OHIF_VIEWER = Path(__file__).resolve().parents[1] / "build" / "ohif"
#: Where the demo's servers listen; Orthanc itself binds every interface.
_LOOPBACK = "127.0.0.1"
_ANY_ADDRESS = "0.0.0.0"  # only ever bound to test that a port of Orthanc is free


def _port_change(option: str) -> str:
    # `make demo` passes DEMO_ARGS on to `pancreas-node demo`.
    return f"choose another with {option} (make demo DEMO_ARGS='{option} N')"


_NODE_PORT_CHANGE = _port_change("--node-port")


_ANALYSIS_TIMEOUT_S = 900.0


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
    node_port: int = 11112
    timeout_s: float = 120.0


def run_demo(options: DemoOptions, console: Console) -> None:
    """Run the demo; stop every process it started unless ``options.keep``.

    Raises
    ------
    DemoError
        If a step fails.
    """
    # Before the phantom is generated: a taken port should cost a second, not a minute.
    check_ports(options)
    storescu = dcmtk_storescu()
    if storescu is None:
        raise DemoError("storescu not found: install the Debian package 'dcmtk' (make demo does)")
    options.work_dir.mkdir(parents=True, exist_ok=True)
    study_dir, study_uid = _make_phantom_study(options, console)
    node_toml = options.work_dir / "node.toml"
    # The plugin reads the node's database for its /pancreas-ai/ routes and labels; it does not
    # submit stable series here because the demo's "scanner" already sends to both.
    node_toml.write_text(f'data_dir = "{(options.work_dir / "node").resolve()}"\n', "utf-8")
    orthanc_config = OrthancConfig(
        work_dir=options.work_dir / "orthanc",
        http_port=options.http_port,
        dicom_port=options.dicom_port,
        node_port=options.node_port,
        serve_folders={"/ohif": _OHIF_VIEWER} if _OHIF_VIEWER.is_dir() else {},
        python_plugin=PythonPluginConfig(node_config=node_toml, submit=False),
    )
    server = OrthancServer(orthanc_config)
    bundle = DEMO_BUNDLE if (DEMO_BUNDLE / "bundle.json").is_file() else None
    registry_config = _seed_registry(options, study_dir)
    console.print(
        f"[bold]2/5[/] starting Orthanc on HTTP {options.http_port}, DICOM {options.dicom_port}"
    )
    server.start()
    try:
        with demo_inbox(options.work_dir / "notifications.jsonl", _announcer(console)) as inbox:
            _run_node(
                _Demo(options, server, study_dir, study_uid, storescu, registry_config),
                bundle,
                inbox,
                orthanc_config.admin_password,
                console,
            )
    finally:
        server.stop()
    if options.keep:
        console.print("Orthanc and the node have stopped.")
    else:
        # The URLs would be dead by the time anyone opened them: say how to keep them alive.
        console.print(
            "Orthanc and the node have stopped. To open the study in the viewer, run "
            "`make demo KEEP=1` (or `pancreas-node demo --keep`): the servers then keep running "
            "until Ctrl-C and the demo prints the viewer, DICOMweb and results URLs.",
            soft_wrap=True,
        )


@dataclass(frozen=True)
class _Demo:
    """What the node half of the demo works with."""

    options: DemoOptions
    server: OrthancServer
    study_dir: Path
    study_uid: str
    storescu: str
    registry: RegistryConfig


def _announcer(console: Console) -> Callable[[dict[str, Any]], None]:
    def announce(message: dict[str, Any]) -> None:
        title = str(message.get("title", "")) or "(no title)"
        console.print(f"[bold]notification received[/] (demo webhook inbox): {title}")

    return announce


def _run_node(
    demo: _Demo, bundle: Path | None, inbox: DemoInbox, password: str, console: Console
) -> None:
    """Start the node (notifying the demo's inbox), send the study, wait for its analysis."""
    options = demo.options
    settings = load_settings(
        data_dir=options.work_dir / "node",
        port=options.node_port,
        quiet_period_s=3.0,
        destinations=[{"ae_title": "ORTHANC", "host": "127.0.0.1", "port": options.dicom_port}],
        bundle_path=bundle,
        notify_channels=[{"name": "demo-inbox", "url": inbox.url}],
        notify_viewer_url=f"{demo.server.url}/ohif/pancreas-ai-worklist",
        notify_poll_s=0.5,
    )
    console.print(
        f"[bold]3/5[/] starting the node {settings.ae_title} on DICOM {options.node_port}"
    )
    runner_db = NodeDatabase(settings.resolved_database_url)
    runner, members = _demo_runner(settings, runner_db, demo.registry, console)
    try:
        with (
            started_node(settings, runner, _NODE_PORT_CHANGE) as node,
            correction_loop(settings, runner_db),
        ):
            console.print("[bold]4/5[/] sending the study with storescu to Orthanc and to the node")
            _send_with_storescu(demo.study_dir, demo.storescu, "ORTHANC", options.dicom_port)
            _send_with_storescu(demo.study_dir, demo.storescu, settings.ae_title, options.node_port)
            console.print(
                "[bold]5/5[/] waiting for Orthanc's DICOMweb and the node's routing decision"
            )
            _wait_for_study(demo.server, demo.study_uid, options.timeout_s)
            _wait_for_routing(node, demo.study_dir, options.timeout_s)
            _print_node_summary(node, demo.study_dir, console)
            _demo_registry(demo.registry, demo.study_dir, console)
            if runner is not None:
                _wait_for_analysis(node, demo.study_dir, options, members, console)
                _wait_for_notification(inbox, options.timeout_s)
            _print_summary(demo.server, demo.study_uid, options.keep, console)
            if options.keep:
                console.print("The tumor board's loop on this demo: scripts/board_demo.sh")
                console.print(
                    f"Orthanc and the node keep running (Orthanc admin password: {password}); "
                    "press Ctrl-C to stop.",
                    soft_wrap=True,
                )
                _wait_forever()
    finally:
        if runner is not None:
            runner.close()
        runner_db.dispose()


def _wait_for_notification(inbox: DemoInbox, timeout_s: float) -> None:
    """Wait until the inbox has the result's notification (the node sends it after the job)."""
    deadline = time.monotonic() + timeout_s
    while not inbox.messages:
        if time.monotonic() > deadline:
            raise DemoError("the node's result notification did not reach the demo inbox")
        time.sleep(0.2)


def check_ports(options: DemoOptions) -> None:
    """Fail before any work if one of the demo's ports is taken (naming port and option)."""
    http, dicom = options.http_port, options.dicom_port
    check_can_listen("Orthanc's HTTP port", _ANY_ADDRESS, http, _port_change("--http-port"))
    check_can_listen("Orthanc's DICOM port", _ANY_ADDRESS, dicom, _port_change("--dicom-port"))
    check_can_listen("the node's DICOM port", _LOOPBACK, options.node_port, _NODE_PORT_CHANGE)


def _seed_registry(options: DemoOptions, study_dir: Path) -> RegistryConfig:
    """Seed the demo registry from the phantom's clinical.csv; return its mapping."""
    header = _first_header(study_dir)
    study_date = datetime.strptime(str(header.StudyDate), "%Y%m%d").date()
    url = f"sqlite:///{(options.work_dir / 'registry.db').resolve()}"
    seed_demo_registry(options.work_dir / "phantom" / "clinical.csv", url, ct_date=study_date)
    config = load_registry_config(_REGISTRY_MAPPING)
    return config.model_copy(update={"registry": config.registry.model_copy(update={"url": url})})


def _first_header(study_dir: Path) -> Dataset:
    from pydicom import dcmread

    return dcmread(next(iter(sorted(study_dir.glob("*.dcm")))), stop_before_pixels=True)


def _demo_registry(config: RegistryConfig, study_dir: Path, console: Console) -> None:
    """Look the demo patient up in the seeded registry."""
    header = _first_header(study_dir)
    study_date = datetime.strptime(str(header.StudyDate), "%Y%m%d").date()
    with RegistryBridge(config) as bridge:
        result = bridge.lookup_study(
            patient_id=str(header.PatientID), accession_number=None, study_date=study_date
        )
    present = result.variables.present
    console.print(
        f"Clinical registry ({config.registry.url}): {result.status.value}, "
        f"{len(present)} of 17 variables found, "
        f"missing: {', '.join(result.variables.missing) or 'none'}",
        soft_wrap=True,
    )


def _demo_runner(
    settings: Settings, database: NodeDatabase, registry: RegistryConfig, console: Console
) -> tuple[AnalysisRunner | None, int]:
    """The analysis runner with the demo bundle and its number of models, or ``(None, 0)``."""
    if settings.bundle_path is None:
        return None, 0
    from inference.analysis import Analyzer  # torch only with a bundle
    from inference.landmark_store import LandmarkStore

    console.print(f"Model bundle: {settings.bundle_path}")
    analyzer = Analyzer(
        settings.bundle_path,
        settings.device,
        landmark_store=LandmarkStore(settings.landmarks_dir),
        parallel_writing=settings.parallel_writing,
    )
    runner = AnalysisRunner(database, analyzer, settings, RegistryBridge(registry))
    return runner, len(analyzer.bundle.members)


def _wait_for_analysis(
    node: Node, study_dir: Path, options: DemoOptions, members: int, console: Console
) -> None:
    """Wait until the series' job is delivered (or failed) and print its result."""
    series_uid = _series_uid(study_dir)
    console.print("Analysing the series (CPU: this can take a minute) and delivering to Orthanc")
    deadline = time.monotonic() + max(options.timeout_s, _ANALYSIS_TIMEOUT_S)
    final = {JobState.DELIVERED, JobState.FAILED}
    while time.monotonic() < deadline:
        jobs = [j for j in list_recent_jobs(node.database) if j.series_instance_uid == series_uid]
        done = [j for j in jobs if j.state in final]
        if done:
            break
        time.sleep(1.0)
    else:
        raise DemoError("the analysis was not delivered in time")
    job = done[0]
    if job.state is JobState.FAILED:
        raise DemoError(f"the analysis failed: {job.failure_reason}")
    stored = get_result(node.database, job.id, actor="demo")
    if stored is None and job.failure_reason:  # done without a result: a refusal
        raise DemoError(f"the analysis {job.failure_reason}")
    if stored is None:
        raise DemoError("the delivered job has no stored result")
    result = AnalysisResult.model_validate_json(Path(stored.result_json_path).read_text())
    _print_result(result, members, console)


def _print_result(result: AnalysisResult, members: int, console: Console) -> None:
    if result.category is None:  # no tumor, no PDAC, or withheld out of the training domain
        console.print(f"NCCN category: [bold]none[/] ({result.no_category_note()})", soft_wrap=True)
    else:
        probs = ", ".join(f"{p:.2f}" for p in result.category.probabilities)
        console.print(
            f"NCCN category (network): [bold]{result.category.label}[/] (p = {probs}, "
            f"{spread_text(result.category.uncertainty, members, result.category.passes)}); "
            f"rule category: {result.rule_category or 'none'}; "
            f"disagreement: {result.disagreement}",
            soft_wrap=True,
        )
    table = Table(title="Tumor-vessel contact (degrees)")
    for vessel in result.measurements.contact_deg:
        table.add_column(vessel, justify="right")
    table.add_row(
        *("-" if v is None else f"{v:.0f}" for v in result.measurements.contact_deg.values())
    )
    console.print(table)
    console.print(
        "Timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in result.timings_s.items()),
        soft_wrap=True,
    )
    console.print(
        f"SEG {result.outputs.seg_sop_uid}, SR {result.outputs.sr_sop_uid}, "
        f"PDF {result.outputs.pdf_sop_uid} sent to Orthanc. {result.notice}",
        soft_wrap=True,
    )


def _series_uid(study_dir: Path) -> str:
    from pydicom import dcmread

    first = next(iter(sorted(study_dir.glob("*.dcm"))))
    return str(dcmread(first, stop_before_pixels=True).SeriesInstanceUID)


def _wait_for_routing(node: Node, study_dir: Path, timeout_s: float) -> None:
    series_uid = _series_uid(study_dir)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = get_series(node.database, series_uid)
        if info is not None and info.status is SeriesStatus.COMPLETE:
            return
        time.sleep(0.5)
    raise DemoError(f"the node did not complete the series within {timeout_s:.0f} s")


def _print_node_summary(node: Node, study_dir: Path, console: Console) -> None:
    info = get_series(node.database, _series_uid(study_dir))
    if info is None:
        raise DemoError("the node has no record of the series")
    table = Table(title="Series received by the node")
    table.add_column("Instances", justify="right")
    table.add_column("Decision")
    table.add_column("Job")
    jobs = [
        job
        for job in list_recent_jobs(node.database)
        if job.series_instance_uid == info.series_instance_uid
    ]
    job_text = ", ".join(f"{job.id[:8]} {job.state.value}" for job in jobs) or "none"
    table.add_row(str(info.instance_count), info.routing_decision.value, job_text)
    console.print(table)
    console.print(f"Routing reason: {info.routing_reason}", soft_wrap=True)
    if node.worker is None:
        console.print(
            "No model bundle is configured yet: the job waits in the queue (no job is lost)."
        )


def _make_phantom_study(options: DemoOptions, console: Console) -> tuple[Path, str]:
    from phantom import PhantomOptions, generate_cohort

    out = options.work_dir / "phantom"
    console.print(f"[bold]1/5[/] generating a phantom study in {out}")
    if out.exists():
        shutil.rmtree(out)
    cohort = generate_cohort(out, 1, options.seed, PhantomOptions())
    patient = cohort.patients[0]
    return patient.dicom_dir, patient.study_uid


def dcmtk_storescu() -> str | None:
    """DCMTK's ``storescu`` on ``PATH``, or ``None``.

    pynetdicom installs a ``storescu`` script of its own into the virtual environment's
    ``bin``, which comes first on ``PATH`` once the environment is activated; its arguments
    differ from DCMTK's, so that folder is skipped.
    """
    skip = (Path(sys.prefix) / "bin").resolve()
    folders = [
        entry
        for entry in os.environ.get("PATH", "").split(os.pathsep)
        if entry and Path(entry).resolve() != skip
    ]
    return shutil.which(_STORESCU, path=os.pathsep.join(folders)) if folders else None


def _send_with_storescu(folder: Path, storescu: str, called_aet: str, port: int) -> None:
    cmd = [
        storescu,
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


def _print_summary(server: OrthancServer, study_uid: str, keep: bool, console: Console) -> None:
    """The study as Orthanc stored it; with ``keep``, the URLs to open while the servers run."""
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
    console.print(f"StudyInstanceUID: {study_uid}", soft_wrap=True)
    route = f"/pancreas-ai/studies/{study_uid}/results"
    status, _ = server.request(route)
    if not keep:
        console.print(
            f"Orthanc lists the study over DICOMweb; the results route of the PancreasAI "
            f"plugin answers (plugin route, HTTP {status}).",
            soft_wrap=True,
        )
        return
    console.print(f"DICOMweb: {server.url}/dicom-web/studies/{study_uid}/series", soft_wrap=True)
    console.print(
        f"Viewer:   {server.url}/app/explorer.html#study?uuid={orthanc_ids[0]}", soft_wrap=True
    )
    console.print(f"Results:  {server.url}{route} (plugin route, HTTP {status})", soft_wrap=True)
    if _OHIF_VIEWER.is_dir():
        console.print(
            f"OHIF (pancreas-ai mode): {server.url}/ohif/pancreas-ai?StudyInstanceUIDs={study_uid}",
            soft_wrap=True,
        )
        console.print(f"Tumor-board worklist:    {server.url}/ohif/pancreas-ai-worklist")


def _wait_forever() -> None:
    try:
        while True:
            # Short sleeps: a Ctrl-C that lands just as a sleep begins is acted on when that
            # sleep ends (see serve_command), a second later rather than an hour later.
            time.sleep(1.0)
    except KeyboardInterrupt:
        return
