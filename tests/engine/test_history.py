"""history.jsonl and training_curves.png: rows, resume truncation, crash-cut lines."""

import json

import cv2

from ppdet.engine.history import TrainingHistory, curves_image, read_rows


def test_rows_are_written_and_drawn(tmp_path):
    h = TrainingHistory(str(tmp_path))
    for it in (10, 20, 30):
        h.log_train(it, 0.01 * it, {"loss": 3.0 / it, "loss_cls": 1.0 / it})
    h.log_eval(30, {"AP": 0.25, "AP50": 0.5, "primary_metric": "AP", "flag": True})
    rows = read_rows(str(tmp_path / "history.jsonl"))
    assert [r["iter"] for r in rows] == [10, 20, 30, 30]
    assert rows[0] == {"iter": 10, "lr": 0.1, "loss": 0.3, "loss_cls": 0.1}
    assert rows[3] == {"iter": 30, "eval": {"AP": 0.25, "AP50": 0.5}}  # numbers only
    path = h.draw()
    img = cv2.imread(path)
    assert img.shape == (480, 3 * 640, 3)  # losses, lr, eval side by side


def test_resume_keeps_rows_up_to_the_resume_point(tmp_path):
    h = TrainingHistory(str(tmp_path))
    for it in (10, 20, 30):
        h.log_train(it, 0.1, {"loss": 1.0})
    # the process died while writing a line
    with open(tmp_path / "history.jsonl", "a") as f:
        f.write('{"iter": 40, "lr": 0.')
    h2 = TrainingHistory(str(tmp_path), resume_from=20)
    h2.log_train(30, 0.1, {"loss": 0.5})
    rows = read_rows(str(tmp_path / "history.jsonl"))
    assert [(r["iter"], r["loss"]) for r in rows] == [(10, 1.0), (20, 1.0), (30, 0.5)]


def test_a_new_run_starts_a_new_history(tmp_path):
    (tmp_path / "history.jsonl").write_text(json.dumps({"iter": 5, "lr": 1, "loss": 1}) + "\n")
    TrainingHistory(str(tmp_path))
    assert read_rows(str(tmp_path / "history.jsonl")) == []


def test_nothing_to_draw():
    assert curves_image([]) is None
