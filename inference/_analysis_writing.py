"""The DICOM objects of one analysis, the SEGs in a helper process when there is one.

Without a writer process everything is written here, in order: the lymph-node SEG, the SEG,
``label.nii.gz``, the PDF, the detection SEG, then the SR. With one
(:mod:`inference._output_process`, ``Settings.parallel_writing``) the helper writes the
label-map SEG as soon as the task's label map exists (:attr:`TaskContext.on_label_map`, while
the task measures it and the optional models run), then the lymph-node SEG; this process
writes the label map, the PDF and the detection SEG meanwhile, then the SR, which cites the SEG
header the helper sends back. When the networks run on a GPU the detector's lesion SEG goes to
the helper too, as soon as the detector has answered (:meth:`SegWriting.start_lesions`, beside
the staging networks); on the CPU it would only slow them (measured: ``make bench-inference``
gave 0.85 s less in total instead of 2.6 s), so there it is written here after the result.

An analysis that fails after a SEG was started waits for the helper and removes what it wrote,
so a failed analysis leaves no SEG behind (as before the helper).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from inference._analysis_detection import DetectorOutput
from inference._analysis_lymph_nodes import LymphNodeOutput
from inference._analysis_outputs import (
    DETECTION_SEG_NAME,
    SEG_NAME,
    DetectionSegTarget,
    WrittenFiles,
    write_label_and_pdf,
    write_sr_citing,
)
from inference._output_process import (
    LesionSegJob,
    LymphNodeSegJob,
    PendingWrite,
    SegJob,
    SegWritten,
    WriterProcess,
    write_seg_job,
)
from inference.volume import Volume
from inference.volume_io import DicomVolume
from pancreas_contracts.result import AnalysisResult, BundleRef

__all__ = ["SegWriting"]


class SegWriting:
    """The DICOM objects of one analysis of a DICOM series (see the module notes).

    Parameters
    ----------
    writer
        The analyzer's writer process, or ``None`` (everything written in this process).
    dicom
        The series read.
    headers
        Its headers (one per instance).
    bundle
        The staging model (the SEG's algorithm identification).
    out_dir
        The analysis' output folder.
    """

    def __init__(
        self,
        writer: WriterProcess | None,
        dicom: DicomVolume,
        headers: tuple[Dataset, ...],
        bundle: BundleRef,
        out_dir: Path,
    ) -> None:
        self._writer = writer
        self._dicom = dicom
        self._headers = headers
        self._bundle = bundle
        self._out_dir = out_dir
        #: The label-map SEG's SOP Instance UID (the result's ``outputs.seg_sop_uid``).
        self.seg_sop_uid = generate_uid()
        #: The lesion SEG's (``outputs.detection_seg_sop_uid``, when the detector reports one).
        self.detection_seg_sop_uid = generate_uid()
        self._early: PendingWrite | None = None
        self._early_lesions: PendingWrite | None = None
        self._finishing = False

    def start_lesions(self, detected: DetectorOutput) -> None:
        """Start the detector's lesion SEG in the helper, if it reports lesions; once."""
        if self._writer is None or detected.lesions is None or self._early_lesions is not None:
            return
        if not self._made_out_dir():
            return
        lesions = self._lesion_job(
            detected, _copied(detected.lesions, detected.lesions.array.dtype)
        )
        job = SegJob(
            self._bundle, self.seg_sop_uid, None, self._headers, self._out_dir, lesions=lesions
        )
        self._early_lesions = self._writer.submit(job)

    def _lesion_job(self, detected: DetectorOutput, lesions: Volume) -> LesionSegJob:
        """The lesion SEG of ``detected`` (its ``lesions`` map on the CT grid)."""
        return LesionSegJob(
            self._dicom.to_native(lesions),
            tuple(x.probability for x in detected.detection.lesions),
            detected.bundle,
            DetectionSegTarget(self._out_dir, self.detection_seg_sop_uid),
        )

    def _made_out_dir(self) -> bool:
        try:
            self._out_dir.mkdir(parents=True, exist_ok=True)
        except OSError:
            return False  # written later, where the analysis names the failure
        return True

    def start(self, label: Volume) -> None:
        """Start the label-map SEG in the helper (a task's ``on_label_map``); once, if any.

        ``label`` is copied: the task goes on with its own.
        """
        if self._writer is None or self._early is not None or not self._made_out_dir():
            return
        native = self._dicom.to_native(_copied(label, np.dtype(np.uint8)))
        job = SegJob(self._bundle, self.seg_sop_uid, native, self._headers, self._out_dir)
        self._early = self._writer.submit(job)

    def abandon(self) -> None:
        """After a failed analysis: wait for the SEGs started early, and remove those written."""
        if self._finishing:
            return
        for pending, name in ((self._early, SEG_NAME), (self._early_lesions, DETECTION_SEG_NAME)):
            if pending is not None:
                pending.settle()
                (self._out_dir / name).unlink(missing_ok=True)
        self._early = self._early_lesions = None

    def finish(
        self,
        result: AnalysisResult,
        image: Volume,
        label: Volume,
        extras: tuple[DetectorOutput | None, LymphNodeOutput | None],
        timings: dict[str, float],
    ) -> WrittenFiles:
        """Write every object; SEG, SR, PDF, then the detection and lymph-node SEGs if any.

        Raises
        ------
        ValueError
            If a writer refuses its input (label off the grid, no foreground, ...).
        """
        self._finishing = True
        detected, nodes = extras
        node_job = None
        if nodes is not None and nodes.nodes is not None:
            node_job = LymphNodeSegJob(
                self._dicom.to_native(nodes.nodes),
                tuple(nodes.assessment.nodes),
                nodes.bundle,
                DetectionSegTarget(self._out_dir, result.outputs.lymph_node_seg_sop_uid),
            )
        seg_label = None if self._early is not None else self._dicom.to_native(label)
        late = SegJob(
            self._bundle, self.seg_sop_uid, seg_label, self._headers, self._out_dir, node_job
        )
        pending = [p for p in (self._early_lesions, self._early) if p is not None]
        written: list[SegWritten] = []
        if seg_label is not None or node_job is not None:
            if self._writer is None:
                written.append(write_seg_job(late))
                timings.update(written[-1].timings_s)
            else:
                pending.append(self._writer.submit(late))
        try:
            rest = self._write_rest(result, image, label, detected, timings)
            written += [job.result(timings, result.job_id) for job in pending]
        except BaseException:
            for job in pending:  # no helper goes on writing into a failed analysis' folder
                job.settle()
            raise
        return self._with_sr(result, written, rest, timings)

    def _write_rest(
        self,
        result: AnalysisResult,
        image: Volume,
        label: Volume,
        detected: DetectorOutput | None,
        timings: dict[str, float],
    ) -> tuple[Path, ...]:
        """``label.nii.gz``, the PDF and the detection SEG: the PDF's and that SEG's paths."""
        headers = self._headers
        pdf = write_label_and_pdf(result, image, label, headers, self._out_dir, timings)
        if detected is None or detected.lesions is None or self._early_lesions is not None:
            return (pdf,)
        return (pdf, self._lesion_job(detected, detected.lesions).write(headers, timings))

    def _with_sr(
        self,
        result: AnalysisResult,
        written: Sequence[SegWritten],
        rest: tuple[Path, ...],
        timings: dict[str, float],
    ) -> WrittenFiles:
        """Write the SR citing the SEGs ``written``; every object's path."""
        seg, header = next((w.seg, w.header) for w in written if w.seg and w.header is not None)
        node_seg = next((w.lymph_node_seg for w in written if w.lymph_node_seg is not None), None)
        lesion_seg = next((w.detection_seg for w in written if w.detection_seg is not None), None)
        sr = write_sr_citing(
            result, header, self._headers, self._out_dir, timings, lymph_node_seg=node_seg
        )
        later = tuple(p for p in (lesion_seg, node_seg) if p is not None)
        return WrittenFiles((seg, sr, *rest, *later))


def _copied(volume: Volume, dtype: np.dtype[Any]) -> Volume:
    """A copy of ``volume`` as ``dtype``, for the helper: the analysis goes on with its own."""
    return Volume(np.array(volume.array, dtype=dtype, copy=True), volume.affine)
