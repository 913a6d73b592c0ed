"""write_folder: a result folder appears whole, replaces an earlier output whole, and refuses anything else."""

import pytest

from diffcore.errors import DiffcoreError
from diffcore.tour import write_folder


def test_a_new_folder_and_an_earlier_output_are_written_whole(tmp_path):
    out = tmp_path / "run"
    write_folder(out, {"measurement_pinv.png": b"x", "metrics.json": "{}"})
    write_folder(out, {"measurement.png": b"y", "metrics.json": '{"a": 1}'})
    assert sorted(p.name for p in out.iterdir()) == ["measurement.png", "metrics.json"]  # no file of the earlier run is left
    assert (out / "metrics.json").read_text() == '{"a": 1}'
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no temporary folders left behind


def test_other_paths_are_refused_and_a_failure_leaves_the_earlier_output(tmp_path):
    (tmp_path / "file").write_text("keep")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    for target in ("file", "mine"):
        with pytest.raises(DiffcoreError, match="exists and is"):
            write_folder(tmp_path / target, {"metrics.json": "{}"})
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    out = tmp_path / "run"
    write_folder(out, {"metrics.json": "old"})

    with pytest.raises(TypeError):
        write_folder(out, {"metrics.json": "new", "bad": 3})
    assert (out / "metrics.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "mine", "run"]


def test_a_tour_section_adds_an_animation_that_plays(tmp_path):
    import torch

    from diffcore.tour import Tour

    tour = Tour(tmp_path, "demo")
    frames = torch.linspace(-1, 1, 4).reshape(4, 1, 1, 1).expand(4, 3, 8, 8)
    path = tour.animation("fade", frames, caption="a fade")
    from PIL import Image

    with Image.open(path) as gif:
        assert gif.n_frames == 4 and gif.size == (8, 8)
    assert tour.animation("again", path.read_bytes()).read_bytes() == path.read_bytes()
    with pytest.raises(DiffcoreError, match="not a GIF"):
        tour.animation("bad", b"\x89PNG....")


def test_result_names_replace_only_a_folder_that_holds_nothing_else(tmp_path):
    out = tmp_path / "run"
    write_folder(out, {"a.png": b"1", "metrics.json": b"{}"}, result_names=("a.png", "b.png", "metrics.json"))
    write_folder(out, {"b.png": b"2"}, result_names=("a.png", "b.png", "metrics.json"))  # no marker needed
    assert sorted(p.name for p in out.iterdir()) == ["b.png"]
    (out / "notes.txt").write_text("keep")
    with pytest.raises(DiffcoreError, match=r"holds files that are not an earlier result \(notes.txt\)"):
        write_folder(out, {"a.png": b"3", "metrics.json": b"{}"}, result_names=("a.png", "b.png", "metrics.json"))
    assert sorted(p.name for p in out.iterdir()) == ["b.png", "notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
