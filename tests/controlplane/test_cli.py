"""The `kubetrio` command line: the README's demo and `apply`."""

from __future__ import annotations

import yaml
from click.testing import CliRunner

from controlplane.cli import main


def test_demo_shows_stored_objects_events_and_a_refusal():
    result = CliRunner().invoke(main, ["demo", "--seed", "7"])
    assert result.exit_code == 0, result.output
    out = result.output
    for kind in ("Namespace", "ConfigMap", "Deployment", "Service", "Pod"):
        assert f"\n{kind} " in out
    refusal = 'spec.containers[0].resources.limits.cpu: invalid quantity "5x"'
    assert f'Invalid: Pod "bad" is invalid: {refusal}' in out
    assert "ADDED" in out and "DELETED" in out
    assert "progressDeadlineSeconds: 600" in out  # defaulted by admission
    again = CliRunner().invoke(main, ["demo", "--seed", "7"])
    assert again.output == out  # deterministic from the seed


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
