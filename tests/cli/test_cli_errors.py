"""CLI errors as a user sees them: the real ``fetalscope`` process, a narrow terminal, one whole line per
message, exit status 2, never a traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _run(args: list[str], columns: int = 20, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": str(columns), "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "fetalscope", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def _run_in_pty(args: list[str], columns: int = 20, timeout: float = 180) -> tuple[int, str]:
    """Run the CLI on a pseudo-terminal ``columns`` wide (what Rich measures when it writes to a terminal);
    the exit status and everything it printed, colour codes removed."""
    import fcntl
    import pty
    import select
    import struct
    import termios
    import time

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    proc = subprocess.Popen([sys.executable, "-m", "fetalscope", *args], stdin=slave, stdout=slave, stderr=slave,
                            env={**env, "TERM": "xterm-256color"}, close_fds=True)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return code, ANSI.sub("", b"".join(chunks).decode("utf-8", "replace")).replace("\r\n", "\n")


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fetalscope.data.labels import PLANE_CLASSES
    from fetalscope.models import create_model
    from fetalscope.models.bundle import save_bundle

    folder = tmp_path_factory.mktemp("bundle")
    return save_bundle(create_model("small_cnn", num_classes=6), folder,
                       {"name": "tiny-test", "task": "planes", "classes": list(PLANE_CLASSES)})


def _missing(tmp_path: Path) -> Path:
    # longer than the terminal, with square brackets that are a Rich closing tag if not escaped
    return tmp_path / "a-folder-with-a-rather-long-name" / "scan [/x] of today.png"


def test_missing_file_error_is_one_whole_line_on_a_narrow_pipe(tmp_path: Path) -> None:
    missing = _missing(tmp_path)
    proc = _run(["predict", str(missing)], columns=20)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.splitlines() == [f"error: {missing}: no such file or folder"]


def test_missing_file_error_is_one_whole_line_on_a_narrow_terminal(tmp_path: Path) -> None:
    missing = _missing(tmp_path)
    code, output = _run_in_pty(["predict", str(missing)], columns=20)
    assert code == 2, output
    assert "Traceback" not in output
    assert [line for line in output.splitlines() if line.strip()] == [f"error: {missing}: no such file or folder"]


def test_corrupt_vr_pixel_spacing_dicom_exits_2_with_whole_lines(tiny_bundle: Path, tmp_path: Path) -> None:
    """The DICOM whose PixelSpacing has an unknown value representation (pydicom fails only when the element
    is read): a "skipped" line naming the file and the element, the error line, exit 2, no traceback."""
    from fetalscope.data.phantoms import make_phantom
    from fuzzing import corrupt_vr_pixel_spacing_dicom

    scan = tmp_path / "a-folder-with-a-rather-long-name" / "scan-0001.dcm"
    scan.parent.mkdir()
    scan.write_bytes(corrupt_vr_pixel_spacing_dicom(make_phantom("Fetal brain", np.random.default_rng(0),
                                                                 (96, 128))))
    proc = _run(["predict", str(scan), "--model", str(tiny_bundle)], columns=20)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"skipped {scan}: DICOM element PixelSpacing (0028,0030) is corrupt and cannot be read (Unknown Value "
        "Representation 'ZZ' in tag (0028,0030))",
        "error: none of the 1 input(s) could be analysed; nothing written",
    ]


def test_long_runs_show_a_progress_bar_on_a_terminal_only(tiny_bundle: Path, tmp_path: Path) -> None:
    """On a terminal, predict shows a progress bar with the count, the rate and the time left; through a pipe
    (logs, CI) it prints none of that."""
    import numpy as np
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (64, 80), dtype=np.uint8)).save(folder / f"im{i}.png")
    code, output = _run_in_pty(["predict", str(folder), "--model", str(tiny_bundle)], columns=120)
    assert code == 0, output
    assert "predict" in output and "3/3" in output and "images/s" in output
    piped = _run(["predict", str(folder), "--model", str(tiny_bundle)])
    assert piped.returncode == 0 and "3/3" not in piped.stderr and "images/s" not in piped.stderr
    assert len([line for line in piped.stdout.splitlines() if line.strip()]) == 3  # one line per image


def test_an_output_that_cannot_be_written_and_a_port_out_of_range_are_one_line_each(tiny_bundle: Path,
                                                                                      tmp_path: Path) -> None:
    from PIL import Image

    from fetalscope.data.phantoms import make_phantom

    image = tmp_path / "brain.png"
    Image.fromarray(make_phantom("Fetal brain", np.random.default_rng(0), (96, 128))).save(image)
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    for option in ("--output", "--pdf"):  # an output under a file: no folder can be made there
        out = a_file / ("results.csv" if option == "--output" else "reports")
        proc = _run(["predict", str(image), "--model", str(tiny_bundle), option, str(out)], columns=20)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr + proc.stdout, proc.stderr
        (line,) = proc.stderr.splitlines()
        assert line.startswith(f"error: cannot create {a_file}"), line
        assert line.endswith("(a file stands where a folder is needed)"), line
    proc = _run(["serve", "--port", "-5"], columns=20)
    assert proc.returncode == 2 and proc.stderr.splitlines() == ["error: --port must be in 0-65535, got -5"]
