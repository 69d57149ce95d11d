"""``pancreas-node board ...``: tumor boards from the command line (issue 26).

``create``, ``list``, ``add``, ``remove`` and ``decide`` call the node database's board
repositories (every change audited, the actor ``cli:<OS user>``); ``packet`` gathers each
case's ``result.json``, CT files, AI SEG, newest review and decision, draws the board packet
(:func:`inference.board_packet.write_board_packet`) to ``<data>/boards/<id>/packet.pdf``, where
the Orthanc plugin serves it, and queues the ``packet-ready`` notification; ``csv`` writes the
decisions as the plugin's ``decisions.csv`` route does.

What a board command prints (UIDs, decisions) goes to the terminal only, never to a log.
"""

from __future__ import annotations

import getpass
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import SQLAlchemyError

import db
import orthanc_plugin
from db import BoardCaseInfo, BoardInfo, NodeDatabase
from inference.board_packet import (
    AI_SEG_FILE,
    BoardPacket,
    PacketCase,
    PacketDecision,
    PacketReview,
    write_board_packet,
)
from pancreas_contracts import Settings, load_settings
from pancreas_contracts.boards import (
    BOARD_CATEGORY_TEXT,
    AutoRule,
    BoardCategory,
    BoardInput,
    CaseInput,
    DecisionInput,
    NotificationEvent,
    Treatment,
)
from pancreas_contracts.result import AnalysisResult
from pancreas_node._cli_errors import CliError

__all__ = ["board_app", "cli_actor", "packet_path"]

board_app = typer.Typer(
    help="Tumor boards: schedule, cases, decisions, the packet (PDF) and the decision CSV.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

_ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="Settings TOML file (PANCREAS_AI_* variables also apply)."),
]
_BoardId = Annotated[int, typer.Argument(help="The board's id (see `pancreas-node board list`).")]
_StudyUid = Annotated[str, typer.Argument(help="The study's StudyInstanceUID.")]
_Model = TypeVar("_Model", bound=BaseModel)
_Code = TypeVar("_Code", BoardCategory, Treatment)


def cli_actor() -> str:
    """The audit actor of a command-line change: ``cli:<OS user>``."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        user = "unknown"
    return f"cli:{user}"


def packet_path(settings: Settings, board_id: int) -> Path:
    """Where the node keeps a board's newest packet (the Orthanc plugin serves it)."""
    return settings.data_dir / "boards" / str(board_id) / "packet.pdf"


@contextmanager
def _node(config: Path | None) -> Iterator[tuple[Settings, NodeDatabase]]:
    settings = load_settings(config)
    database = NodeDatabase(settings.resolved_database_url)
    try:
        yield settings, database
    except SQLAlchemyError as exc:
        raise CliError(
            f"node database {database.url}: {type(exc).__name__} (a new data directory? "
            "run `pancreas-node db upgrade` first)"
        ) from exc
    finally:
        database.dispose()


def _valid(build: type[_Model], **values: object) -> _Model:
    """Build a contract value object; its first complaint becomes a one-line error."""
    try:
        return build(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or build.__name__
        raise CliError(f"{where}: {first['msg']}") from None


def _date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CliError(f"{option} must be a date YYYY-MM-DD, not {value!r}") from None


def _choice(kind: type[_Code], value: str, option: str) -> _Code:
    try:
        return kind(value)
    except ValueError:
        known = ", ".join(item.value for item in kind)
        raise CliError(f"{option} {value!r} is not one of: {known}") from None


def _board(database: NodeDatabase, board_id: int) -> BoardInfo:
    board = db.get_board(database, board_id)
    if board is None:
        raise CliError(f"no board {board_id}")
    return board


def _board_line(board: BoardInfo) -> str:
    rule = "" if board.auto_rule is None else "  (auto rule)"
    return (
        f"{board.id:>4}  {board.board_date.isoformat()}  {board.title}  "
        f"cases {board.case_count}, decided {board.decided_count}{rule}"
    )


@board_app.command("create")
def create_command(
    board_date: Annotated[str, typer.Option("--date", help="The board's date YYYY-MM-DD.")],
    title: Annotated[str, typer.Option(help="The board's name, e.g. 'HPB tumor board'.")],
    member: Annotated[list[str] | None, typer.Option(help="A member (repeat).")] = None,
    auto_outcome: Annotated[
        list[str] | None,
        typer.Option(help="Auto rule: a result outcome that qualifies (repeat; e.g. done)."),
    ] = None,
    min_pdac: Annotated[
        float | None, typer.Option(help="Auto rule: the PDAC likelihood at least this.")
    ] = None,
    auto_category: Annotated[
        list[str] | None, typer.Option(help="Auto rule: an NCCN category that qualifies.")
    ] = None,
    referring_service: Annotated[
        list[str] | None, typer.Option(help="Auto rule: a requesting service that qualifies.")
    ] = None,
    config: _ConfigOption = None,
) -> None:
    """Schedule a board; any --auto-*/--min-pdac/--referring-service option adds an auto rule."""
    rule = None
    if auto_outcome or min_pdac is not None or auto_category or referring_service:
        categories = [_choice(BoardCategory, c, "--auto-category") for c in auto_category or ()]
        rule = _valid(
            AutoRule,
            **({"outcomes": tuple(auto_outcome)} if auto_outcome else {}),
            min_pdac_likelihood=min_pdac,
            categories=tuple(categories),
            referring_services=tuple(referring_service or ()),
        )
    board = _valid(
        BoardInput,
        board_date=_date(board_date, "--date"),
        title=title,
        members=tuple(member or ()),
        auto_rule=rule,
    )
    with _node(config) as (_, database):
        created = db.create_board(database, board, actor=cli_actor())
    typer.echo(f"board {created.id}: {created.board_date.isoformat()} {created.title}")


@board_app.command("list")
def list_command(
    date_from: Annotated[str | None, typer.Option("--from", help="First date YYYY-MM-DD.")] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="Last date YYYY-MM-DD.")] = None,
    config: _ConfigOption = None,
) -> None:
    """List boards by date (id, date, title, cases, decided)."""
    start, end = _date(date_from, "--from"), _date(date_to, "--to")
    with _node(config) as (_, database):
        boards = db.list_boards(database, date_from=start, date_to=end)
    for board in boards:
        typer.echo(_board_line(board))
    if not boards:
        typer.echo("no boards")


@board_app.command("add")
def add_command(board_id: _BoardId, study_uid: _StudyUid, config: _ConfigOption = None) -> None:
    """Put a study on a board (at the end of its order)."""
    case_input = _valid(CaseInput, study_instance_uid=study_uid)
    with _node(config) as (_, database):
        try:
            case, created = db.add_case(database, board_id, case_input, actor=cli_actor())
        except LookupError:
            raise CliError(f"no board {board_id}") from None
    state = "added" if created else "already on the board"
    typer.echo(f"board {board_id}: study {study_uid} {state}, position {case.position}")


@board_app.command("remove")
def remove_command(board_id: _BoardId, study_uid: _StudyUid, config: _ConfigOption = None) -> None:
    """Take a study off a board (its decision goes with it; the audit trail keeps both)."""
    with _node(config) as (_, database):
        _board(database, board_id)
        if not db.remove_case(database, board_id, study_uid, actor=cli_actor()):
            raise CliError(f"the study is not on board {board_id}")
    typer.echo(f"board {board_id}: study {study_uid} removed")


@board_app.command("decide")
def decide_command(
    board_id: _BoardId,
    study_uid: _StudyUid,
    category: Annotated[
        str, typer.Option(help="resectable, borderline, locally-advanced or metastatic.")
    ],
    treatment: Annotated[
        list[str] | None, typer.Option(help="A coded treatment (repeat), e.g. biopsy.")
    ] = None,
    text: Annotated[str | None, typer.Option(help="The decision's free text.")] = None,
    config: _ConfigOption = None,
) -> None:
    """Record (or replace) the board's decision on a case."""
    decision = _valid(
        DecisionInput,
        category=_choice(BoardCategory, category, "--category"),
        treatments=tuple(_choice(Treatment, t, "--treatment") for t in treatment or ()),
        text=text,
    )
    with _node(config) as (_, database):
        _board(database, board_id)
        try:
            db.record_decision(database, board_id, study_uid, decision, actor=cli_actor())
        except LookupError:
            raise CliError(f"the study is not on board {board_id}") from None
    typer.echo(
        f"board {board_id}: study {study_uid} decided {BOARD_CATEGORY_TEXT[decision.category]}"
    )


def _case_result(
    database: NodeDatabase, case: BoardCaseInfo, actor: str
) -> tuple[db.ResultInfo, db.JobInfo] | None:
    """The study's newest analysis with a result (as the plugin's board routes and CSV show).

    The job the case was added with is the fallback: the study may have been re-analysed since.
    """
    entries = db.list_study_jobs(database, case.study_instance_uid)
    jobs = sorted((e.job for e in entries if e.job), key=lambda j: j.created_at, reverse=True)
    candidates = [j.id for j in jobs] + ([case.job_id] if case.job_id else [])
    for job_id in dict.fromkeys(candidates):
        stored = db.get_result(database, job_id, actor=actor)  # audited as result.read
        job = None if stored is None else db.get_job(database, job_id)
        if stored is not None and job is not None:
            return stored, job
    return None


def _read_result(stored: db.ResultInfo, position: int) -> AnalysisResult | None:
    try:
        return AnalysisResult.model_validate_json(Path(stored.result_json_path).read_bytes())
    except (OSError, ValidationError) as exc:
        # The packet is still built: the case is shown without AI results, and the user told.
        typer.echo(
            f"warning: case {position}: result.json of job {stored.job_id} unreadable "
            f"({type(exc).__name__}); shown without AI results",
            err=True,
        )
        return None


def _review(info: db.ReviewInfo | None) -> PacketReview | None:
    if info is None:
        return None
    return PacketReview(info.verdict, info.category, info.reason, info.reviewer, info.created_at)


def _decision(info: db.DecisionInfo | None) -> PacketDecision | None:
    if info is None:
        return None
    return PacketDecision(
        info.category, info.treatments, info.text, info.decided_by, info.decided_at
    )


def _packet_case(
    settings: Settings, database: NodeDatabase, case: BoardCaseInfo, actor: str
) -> PacketCase:
    """One case as the packet shows it: result, CT files, AI SEG, review and decision."""
    study = db.get_study(database, case.study_instance_uid)
    found = _case_result(database, case, actor)
    result, seg = None, None
    ct_files: tuple[Path, ...] = ()
    if found is not None:
        stored, job = found
        result = _read_result(stored, case.position)
        paths = db.series_instance_paths(
            database, job.series_instance_uid, max_version=job.series_version
        )
        ct_files = tuple(Path(p) for p in paths if Path(p).is_file())
        seg = settings.results_dir / job.id / AI_SEG_FILE
    return PacketCase(
        position=case.position,
        study_instance_uid=case.study_instance_uid,
        study_date=None if study is None else study.study_date,
        ct_files=ct_files,
        seg_file=seg,
        result=result,
        review=_review(db.latest_review(database, case.study_instance_uid)),
        decision=_decision(case.decision),
    )


@board_app.command("packet")
def packet_command(
    board_id: _BoardId,
    out: Annotated[Path | None, typer.Option(help="Also copy the packet here.")] = None,
    config: _ConfigOption = None,
) -> None:
    """Build the board packet (PDF): cover, then each case's key images, AI, review, decision."""
    actor = cli_actor()
    with _node(config) as (settings, database):
        board = _board(database, board_id)
        cases = db.list_board_cases(database, board_id)
        packet = BoardPacket(
            board_id=board.id,
            title=board.title,
            board_date=board.board_date,
            members=board.members,
            cases=tuple(_packet_case(settings, database, c, actor) for c in cases),
        )
        target = packet_path(settings, board_id)
        write_board_packet(packet, target)
        db.queue_notification(
            database,
            NotificationEvent.PACKET_READY,
            object_type="board",
            object_id=str(board_id),
            detail={"board_id": board_id, "case_count": len(cases)},
        )
    typer.echo(f"board {board_id}: packet with {len(cases)} case(s) at {target}")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(target, out)
        typer.echo(f"copied to {out}")


@board_app.command("csv")
def csv_command(
    board_id: _BoardId,
    out: Annotated[
        Path | None, typer.Option(help="Write the CSV here (default: standard output).")
    ] = None,
    config: _ConfigOption = None,
) -> None:
    """The board's decisions as CSV, one row per case (as the plugin's decisions.csv)."""
    with _node(config) as (_, database):
        board = _board(database, board_id)
        rows = orthanc_plugin.case_rows(database, board_id, actor=cli_actor())
        text = orthanc_plugin.decisions_csv(board, rows)
    if out is None:
        typer.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    partial.write_text(text, encoding="utf-8", newline="")
    partial.replace(out)
    typer.echo(f"board {board_id}: {len(rows)} case(s) written to {out}")
