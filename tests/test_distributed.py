"""DDP plumbing on the CPU with gloo and two real processes (the way torchrun runs them)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

from paulow import distributed


def test_single_process_is_a_no_op(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert (distributed.world_size(), distributed.rank(), distributed.is_main()) == (1, 0, True)
    assert distributed.broadcast({"stop": True}) == {"stop": True}
    assert distributed.any_rank(False) is False and distributed.gather(3) == [3]
    assert distributed.local_device("cuda") == "cuda" and not distributed.init("cpu")


def test_shard_by_key_keeps_same_stems_on_one_rank():
    items = ["a.png", "a.tif", "b.tif", "c.tif", "d.tif"]
    stem = lambda name: name.split(".")[0]  # noqa: E731
    shares = [distributed.shard(items, r, 2, key=stem) for r in range(2)]
    assert shares == [["a.png", "a.tif", "c.tif"], ["b.tif", "d.tif"]]


def test_finetune_refuses_torchrun(tmp_path, monkeypatch, capsys):
    from paulow.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")  # torchrun sets both (one alone is refused: tests/test_safety.py)
    assert main(["finetune", "--root", str(tmp_path)]) == 2
    assert "start it without torchrun" in capsys.readouterr().err


def test_shard_gives_every_item_to_exactly_one_rank():
    items = list("abcdefg")
    shares = [distributed.shard(items, r, 3) for r in range(3)]
    assert shares == [["a", "d", "g"], ["b", "e"], ["c", "f"]]
    assert sorted(sum(shares, [])) == items


WORKER = textwrap.dedent("""
    import json, sys
    from paulow import distributed
    distributed.init("cpu")
    r = distributed.rank()
    plan = distributed.broadcast({"folds": 3} if r == 0 else {"folds": -1})
    stop = distributed.any_rank(r == 1)  # only rank 1 ran out of time
    files = distributed.shard(["f0", "f1", "f2", "f3", "f4"])
    done = distributed.gather(files)
    decided = distributed.decide(r == 1)  # rank 0 says no
    name = distributed.on_main(lambda: "answer of rank 0")
    calls = []
    first = distributed.main_first(lambda: calls.append(r) or f"own {r}")
    from paulow.errors import UsageError

    def refuse():
        raise UsageError("a model 'x.pth' exists already")
    try:
        distributed.on_main(refuse)
        error = None
    except UsageError as exc:
        error = [str(exc), getattr(exc, "reported_by_main", False)]
    print(json.dumps({"rank": r, "world": distributed.world_size(), "plan": plan, "stop": stop,
                      "done": done, "main": distributed.is_main(), "decided": decided, "name": name,
                      "first": first, "calls": calls, "error": error}))
    distributed.shutdown()
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_agree_on_decisions(tmp_path):
    import json

    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    port = _free_port()
    procs = []
    for r in range(2):
        env = {
            **os.environ,
            "WORLD_SIZE": "2",
            "RANK": str(r),
            "LOCAL_RANK": str(r),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.getcwd(),
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, str(script)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    for r, result in enumerate(results):
        assert result["rank"] == r and result["world"] == 2 and result["main"] == (r == 0)
        assert result["plan"] == {"folds": 3} and result["stop"] is True
        assert result["done"] == [["f0", "f2", "f4"], ["f1", "f3"]]
        assert result["decided"] is False and result["name"] == "answer of rank 0"
        assert result["first"] == f"own {r}" and result["calls"] == [r]
        # every rank raises rank 0's error; rank 0 prints it, the others only exit with it
        assert result["error"] == ["a model 'x.pth' exists already", r == 1]


def test_exit_process_flushes_output_and_logs_then_exits_with_the_code(tmp_path):
    script = textwrap.dedent(f"""
        import logging, sys
        from paulow import distributed
        logging.basicConfig(filename={str(tmp_path / "run.log")!r}, level=logging.INFO)
        logging.getLogger("paulow").info("logged line")
        sys.stdout.write("buffered line")  # no newline, no flush: exit_process must flush it
        distributed.exit_process(3)
        print("never reached")
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    assert (done.returncode, done.stdout) == (3, "buffered line")
    assert "logged line" in (tmp_path / "run.log").read_text()
