"""The static shell: command lines to timelines (pure, no trio)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.images import resolve_argv
from runtime.programs import DATE_MARK, Program, Timeline
from runtime.shell import BUSY_LOOP_PERIOD, Var, Word, compile_argv, tokenize


def sh(script: str, env: dict[str, str] | None = None) -> Program:
    program = compile_argv(["sh", "-c", script], env or {})
    assert program is not None
    return program


def test_sequence_with_sleep_and_exit() -> None:
    timeline = sh("echo start; sleep 5; echo bye; exit 3").timeline
    assert timeline == Timeline(
        lines=((0.0, "start"), (5.0, "bye")), exit_at=5.0, exit_code=3, message=""
    )


@pytest.mark.parametrize(
    ("argv", "lines", "exit_at", "code"),
    [
        (["sleep", "10"], (), 10.0, 0),
        (["/bin/sleep", "1m"], (), 60.0, 0),
        (["sleep", "1", "0.5"], (), 1.5, 0),
        (["true"], (), 0.0, 0),
        (["false"], (), 0.0, 1),
        (["echo", "hello", "world"], ((0.0, "hello world"),), 0.0, 0),
        (["echo", "-n", "x"], ((0.0, "x"),), 0.0, 0),
        (["sh", "-c", "exit 7"], (), 0.0, 7),
        (["sh", "-c", "exit 300"], (), 0.0, 44),
        (["sh", "-c", "false"], (), 0.0, 1),
        (["sh", "-c", "false; exit"], (), 0.0, 1),
        (["sh", "-c", "sleep 2 && echo ok || echo no"], ((2.0, "ok"),), 2.0, 0),
        (["sh", "-c", "false && echo no || echo yes"], ((0.0, "yes"),), 0.0, 0),
        (["sh", "-c", "false || exit 4; echo unreachable"], (), 0.0, 4),
        (["/bin/bash", "-c", "echo a\necho b  # comment\n"], ((0.0, "a"), (0.0, "b")), 0.0, 0),
        (["sh", "-ec", "echo a; false; echo b"], ((0.0, "a"),), 0.0, 1),
        (["sh", "-c", "set -e; false || true; echo b"], ((0.0, "b"),), 0.0, 0),
        (["sh", "-c", "exec sleep 3; echo never"], (), 3.0, 0),
        (["sh", "-c", "sh -c 'echo in; exit 2'; echo out $?"], ((0, "in"), (0, "out 2")), 0, 0),
        (["sh", "-c", "echo n >/x; echo a 2>&1; echo b >>/dev/stdout"], ((0, "a"), (0, "b")), 0, 0),
        (["sh", "-c", "printf '%s-%s\\n' a b"], ((0.0, "a-b"),), 0.0, 0),
        (["sh", "-c", 'echo "it\'s \\"q\\""; echo \'$H\''], ((0, 'it\'s "q"'), (0, "$H")), 0, 0),
        (["sh", "-c", "touch /tmp/healthy; rm -f /tmp/x; mkdir -p /d; cat /etc/hosts"], (), 0.0, 0),
        (["sh", "-c", "sleep abc"], ((0.0, "sleep: invalid time interval 'abc'"),), 0.0, 1),
    ],
)  # fmt: skip
def test_command_outcomes(argv: list[str], lines: tuple, exit_at: float, code: int) -> None:
    program = compile_argv(argv, {})
    assert program is not None
    timeline = program.timeline
    assert (timeline.lines, timeline.exit_at, timeline.exit_code) == (lines, exit_at, code)


def test_unknown_command_is_127_with_a_log_line_and_message() -> None:
    timeline = sh("echo before; foo --bar; echo after").timeline
    assert timeline.lines == ((0.0, "before"), (0.0, "sh: foo: not found"), (0.0, "after"))
    assert timeline.exit_code == 0  # the last command decides
    timeline = sh("echo before; foo --bar").timeline
    assert (timeline.exit_code, timeline.message) == (127, "sh: foo: not found")
    timeline = compile_argv(["bash", "-c", "nope"], {}).timeline  # type: ignore[union-attr]
    assert (timeline.exit_code, timeline.message) == (127, "bash: nope: command not found")


@pytest.mark.parametrize(
    ("script", "what"),
    [
        ("if true; then echo; fi", "if"),
        ("for i in 1 2; do echo $i; done", "for loops"),
        ("echo a | grep a", "pipes (|)"),
        ("sleep 10 &", "background jobs (&)"),
        ("echo $(date)", "command substitution $(...)"),
        ("(echo sub)", "subshells ( ... )"),
        ("echo 'open", "unterminated quote"),
    ],
)
def test_unsupported_syntax_exits_2_and_says_why(script: str, what: str) -> None:
    timeline = sh(script).timeline
    message = f"sh: {what} is not supported by the fake runtime's shell"
    assert timeline == Timeline(lines=((0.0, message),), exit_at=0.0, exit_code=2, message=message)


def test_while_true_loop_runs_forever_logging() -> None:
    timeline = sh("echo boot; while true; do echo tick; sleep 10; done").timeline
    assert timeline.exit_at is None
    assert timeline.lines == ((0.0, "boot"),)
    assert (timeline.loop_start, timeline.loop_period) == (0.0, 10.0)
    assert timeline.loop_lines == ((0.0, "tick"),)
    assert timeline.lines_until(25) == ["boot", "tick", "tick", "tick"]


def test_loop_forms() -> None:
    # `while sleep N` counts the condition's time in the period
    assert sh("while sleep 5; do echo x; done").timeline.loop_lines == ((5.0, "x"),)
    assert sh("while :; do echo fast; done").timeline.loop_period == BUSY_LOOP_PERIOD
    assert sh("until false; do sleep 1; done").timeline.loop_period == 1.0
    # a loop whose condition fails at once does not run
    assert sh("while false; do echo x; done; echo after").timeline.lines == ((0.0, "after"),)
    # break and exit inside the body end it
    assert sh("while true; do echo once; break; done; exit 5").timeline.exit_code == 5
    exiting = sh("while true; do sleep 2; exit 9; done").timeline
    assert (exiting.exit_at, exiting.exit_code) == (2.0, 9)


def test_forever_forms() -> None:
    for argv in (
        ["sleep", "infinity"],
        ["tail", "-f", "/dev/null"],
        ["sh", "-c", "echo up; exec tail -F /var/log/x"],
        ["/pause"],
    ):
        program = compile_argv(argv, {})
        assert program is not None
        assert program.timeline.exit_at is None, argv
        assert program.timeline.loop_period == 0


def test_variables_and_positional_arguments() -> None:
    env = {"NAME": "web", "EMPTY": ""}
    timeline = sh('echo "hi $NAME ${NAME}-x $UNSET."; X=1; echo $X; export Y=2; echo $Y', env)
    assert [line for _, line in timeline.timeline.lines] == ["hi web web-x .", "1", "2"]
    program = compile_argv(["sh", "-c", 'echo "$0 got $1 $#"', "me", "arg"], {})
    assert program is not None
    assert program.timeline.lines == ((0.0, "me got arg 1"),)
    printenv = compile_argv(["printenv", "NAME"], env)
    assert printenv is not None
    assert printenv.timeline.lines == ((0.0, "web"),)


def test_date_is_rendered_when_logs_are_read() -> None:
    timeline = sh("date; sleep 61; date").timeline
    assert timeline.lines == ((0.0, DATE_MARK), (61.0, DATE_MARK))
    assert timeline.lines_until(100, started_at=3600) == [
        "Wed Jan 01 01:00:00 UTC 2025",
        "Wed Jan 01 01:01:01 UTC 2025",
    ]


def test_sigterm_behaviour() -> None:
    assert sh("sleep 100").term_exit_code is None  # a shell as PID 1 ignores SIGTERM
    assert compile_argv(["sleep", "100"], {}).term_exit_code is None  # type: ignore[union-attr]
    assert sh("trap 'exit 0' TERM; sleep 100").term_exit_code == 0
    assert sh("trap 'echo bye' SIGTERM; sleep 100").term_exit_code == 143
    assert sh("trap '' TERM; sleep 100").term_exit_code is None


def test_shell_programs_do_not_serve() -> None:
    assert sh("sleep 1").serve is False


def test_exec_form_unknown_binaries_and_script_files_run_the_image_program() -> None:
    assert compile_argv(["/app/server", "--port=80"], {}) is None
    assert compile_argv(["nginx", "-g", "daemon off;"], {}) is None
    assert compile_argv(["sh", "/scripts/start.sh"], {}) is None
    assert compile_argv([], {}) is None


def test_sh_without_a_script_exits_at_once() -> None:
    assert sh("").timeline.exit_code == 0
    program = compile_argv(["sh"], {})
    assert program is not None
    assert (program.timeline.exit_at, program.timeline.exit_code) == (0.0, 0)


@pytest.mark.parametrize(
    ("command", "args", "argv"),
    [
        ((), (), ()),
        (("sh", "-c"), ("sleep 5; exit 1",), ("sh", "-c", "sleep 5; exit 1")),
        ((), ("sleep", "3600"), ("sleep", "3600")),  # busybox-style: args are the command
        ((), ("--port", "80"), ()),  # args for the image's own entrypoint
        (("/app",), ("-v",), ("/app", "-v")),
    ],
)
def test_resolve_argv_follows_docker(
    command: tuple[str, ...], args: tuple[str, ...], argv: tuple[str, ...]
) -> None:
    assert resolve_argv(command, args) == argv


def test_tokenize_keeps_expansions_and_strips_quotes() -> None:
    tokens = tokenize("echo \"a $X\"'b'")
    assert tokens == [Word(("echo",)), Word(("a ", Var("X"), "b"))]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab ;&|()<>$'\"\\\n#{}!=`-e0123"))))
def test_any_script_compiles_to_a_program(script: str) -> None:
    """Whatever the script, the shell gives a program (maybe an exit-2 one), never raises."""
    program = compile_argv(["sh", "-c", script], {"a": "1"})
    assert isinstance(program, Program)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["echo", "sleep"]), st.integers(min_value=0, max_value=9)),
        max_size=8,
    )
)
def test_time_is_the_sum_of_sleeps(steps: list[tuple[str, int]]) -> None:
    script = "; ".join(f"{cmd} {n}" for cmd, n in steps) or "true"
    timeline = sh(script).timeline
    assert timeline.exit_at == sum(n for cmd, n in steps if cmd == "sleep")
    assert [line for _, line in timeline.lines] == [str(n) for cmd, n in steps if cmd == "echo"]
