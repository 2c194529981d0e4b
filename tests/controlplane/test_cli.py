"""The `kubetrio` command line: the README's demo and `apply`."""

from __future__ import annotations

import yaml
from click.testing import CliRunner

from controlplane.cli import main


def test_demo_shows_pods_doing_what_pods_do_and_why():
    result = CliRunner().invoke(main, ["demo", "--seed", "7"])
    assert result.exit_code == 0, result.output
    out = result.output
    table = out[out.index("$ kubectl get pods") : out.index("Why --")]
    rows = {line.split()[0]: line.split() for line in table.splitlines()[2:] if line.strip()}
    assert rows["web-1"][1:3] == ["1/1", "Running"]
    assert rows["web-2"][1:3] == ["1/1", "Running"]
    assert rows["crashy"][2] == "CrashLoopBackOff" and int(rows["crashy"][3]) >= 4
    assert rows["batch"][2] == "Completed"
    assert rows["hungry"][2] == "Pending" and rows["hungry"][5] == "<none>"
    assert rows["leaky"][2] in ("CrashLoopBackOff", "OOMKilled")
    assert rows["typo"][2] in ("ImagePullBackOff", "ErrImagePull")
    assert "last Terminated (OOMKilled, exit code 137)" in out
    assert "0/3 nodes are available: 3 Insufficient cpu." in out
    assert "Back-off restarting failed container app in pod crashy_default" in out
    assert 'Failed to pull image "registry.example.com/ngnix:1.27"' in out
    refusal = 'spec.containers[0].resources.limits.cpu: invalid quantity "5x"'
    assert f'Invalid: Pod "bad" is invalid: {refusal}' in out
    again = CliRunner().invoke(main, ["demo", "--seed", "7"])
    assert again.output == out  # deterministic from the seed


def test_demo_scales_with_load_pods():
    result = CliRunner().invoke(main, ["demo", "--nodes", "5", "--pods", "60", "--minutes", "1"])
    assert result.exit_code == 0, result.output
    assert "... and 60 load pods: 60 Running" in result.output


def test_apply_prints_what_was_stored(tmp_path):
    path = tmp_path / "cm.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: v}\n")
    result = CliRunner().invoke(main, ["apply", "-f", str(path)])
    assert result.exit_code == 0, result.output
    stored = yaml.safe_load(result.output)
    assert stored["metadata"]["namespace"] == "default"
    assert stored["metadata"]["resourceVersion"]
    assert stored["data"] == {"k": "v"}


def test_apply_reports_bad_input(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("apiVersion: v1\nkind: Gizmo\nmetadata: {name: c}\n")
    result = CliRunner().invoke(main, ["apply", "-f", str(path)])
    assert result.exit_code == 1
    assert "Error: BadRequest: document 0: unknown kind 'Gizmo' in apiVersion 'v1'" in result.output


def _demo_manifest(name: str) -> str:
    from importlib.resources import files

    return str(files("controlplane.demo") / name)


def test_rolling_update_prints_kubectls_steps_and_ends_on_the_new_pods():
    args = ["rolling-update", _demo_manifest("rc-v1.yaml"), _demo_manifest("rc-v2.yaml")]
    result = CliRunner().invoke(main, [*args, "--update-period", "10"])
    assert result.exit_code == 0, result.output
    out = result.output
    steps = [line.split("] ", 1)[1] for line in out.splitlines() if line.startswith("[")]
    assert steps[1:4] == [
        "Created web-v2",
        "Scaling up web-v2 from 0 to 3, scaling down web-v1 from 3 to 0"
        " (keep 3 pods available, don't exceed 4 pods)",
        "Scaling web-v2 up to 1",
    ]
    assert steps[-2:] == [
        "Update succeeded. Deleting web-v1",
        "replicationcontroller/web-v1 rolling updated to web-v2",
    ]
    pods = out[out.index("$ kubectl get pods") :].strip().splitlines()[2:]
    assert len(pods) == 3 and all(p.startswith("web-v2-") and "Running" in p for p in pods)


def test_rolling_update_can_be_aborted_and_refuses_bad_input():
    v1, v2 = _demo_manifest("rc-v1.yaml"), _demo_manifest("rc-v2.yaml")
    result = CliRunner().invoke(
        main, ["rolling-update", v1, v2, "--update-period", "10", "--abort-after", "15"]
    )
    assert result.exit_code == 0, result.output
    assert "replicationcontroller/web-v1 rolled back" in result.output
    pods = result.output[result.output.index("$ kubectl get pods") :].strip().splitlines()[2:]
    assert len(pods) == 3 and all(p.startswith("web-v1-") for p in pods)
    same = CliRunner().invoke(main, ["rolling-update", v1, v1])
    assert same.exit_code == 1
    assert "metadata.name: must differ" in same.output
