"""The plain progress line's ETA is the pace of the stage it is in: the extra rounds, cheaper per
case than the base rounds (round 0 also gates), are not estimated at the base rounds' pace."""

from bench.sweep import progress


def test_the_eta_of_the_extra_rounds_is_their_own_pace(monkeypatch, capsys):
    clock = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(
        progress,
        "console",
        progress.Console(file=None, stderr=True, force_terminal=False, width=200),
    )
    with progress.Bar() as bar:
        bar.live = False
        for done in range(100):  # the base rounds: 100 case-rounds, 6 s each
            bar.update("a", 0, done, 100)
            clock[0] += 6.0
        for done in range(10):  # the extra rounds: 10 case-rounds, 1 s each
            bar.update("b", 5, done, 10)
            clock[0] += 1.0
    lines = capsys.readouterr().err.splitlines()
    assert lines[100].endswith("(elapsed 600 s, ETA ?)")
    # 8 left at 1 s; the run's pace (602 s / 2) said 2408 s
    assert lines[102] == "[2/10] round 6: b  (elapsed 602 s, ETA 8 s)"
    assert lines[50] == "[50/100] round 1: a  (elapsed 300 s, ETA 300 s)"
