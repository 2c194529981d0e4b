"""A tiny static shell: turns a container's command line into a :class:`Program`.

Real manifests run things like ``sh -c "echo start; sleep 5; exit 1"`` or
``while true; do date; sleep 10; done``. Every command this fake knows has a fixed
outcome (``sleep`` takes its time and succeeds, ``false`` fails, an unknown command is
127), so a script can be *evaluated ahead of time* into a :class:`Timeline` — log lines
at offsets, then an exit or an endless loop — and run with no task at all.
:func:`compile_argv` is pure and cached by the caller.

Supported: ``;``, newlines, ``&&``, ``||``, ``while``/``until ... do ... done`` (with
``break``), ``$VAR``/``${VAR}``/``$?``/``$1`` expansion, quoting, comments,
redirections (stdout sent to a file is not logged), ``VAR=x``/``export``, ``set -e``,
``trap ... TERM``, ``exec``, nested ``sh -c``; utilities ``echo``, ``printf``,
``sleep`` (``s/m/h/d`` suffixes, ``infinity``), ``true``, ``false``, ``:``, ``exit``,
``tail -f``, ``date``, ``env``/``printenv``, and silent no-ops (``touch``, ``rm``,
``mkdir``, ``cat``, ...). Anything else (``if``, ``for``, pipes, ``&``, ``$(...)``) makes
the shell exit 2 with a line saying the fake does not support it. A loop iteration is
assumed to repeat identically; a loop without ``sleep`` is taken to take
:data:`BUSY_LOOP_PERIOD` per iteration.

Shells as PID 1 ignore SIGTERM (as in Docker), so their ``term_exit_code`` is None unless
the script traps TERM.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import attrs

from runtime.programs import DATE_MARK, MiB, Program, Timeline

__all__ = ["BUSY_LOOP_PERIOD", "SHELLS", "UTILITIES", "compile_argv", "tokenize"]

SHELLS = frozenset({"sh", "bash", "ash", "dash", "ksh", "zsh"})
UTILITIES = frozenset(
    {
        "sleep", "echo", "printf", "true", "false", "tail", "date", "env", "printenv",
        "cat", "touch", "rm", "mkdir", "cp", "mv", "ln", "chmod", "chown", "ls", "sync",
        "pause",
    }
)  # fmt: skip
_NOOP_BUILTINS = frozenset({"cd", "wait", "unset", "ulimit", "umask", "shift", "set"})
_SILENT_UTILITIES = frozenset(
    {"cat", "touch", "rm", "mkdir", "cp", "mv", "ln", "chmod", "chown", "ls", "sync"}
)

BUSY_LOOP_PERIOD = 1.0

_SHELL_PROGRAM_MEMORY = 1 * MiB
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", re.S)
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([smhd]?)")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


# ----- tokens -----


class Unsupported(Exception):
    """The script uses shell syntax the fake does not evaluate."""


@attrs.frozen
class Var:
    """A ``$NAME`` (or ``$?``, ``$1``) inside a word, expanded when the command runs."""

    name: str


@attrs.frozen
class Word:
    parts: tuple[str | Var, ...]

    def literal(self) -> str | None:
        """The word's text if it has no expansions (used to spot keywords)."""
        if all(isinstance(p, str) for p in self.parts):
            return "".join(self.parts)  # type: ignore[arg-type]
        return None


@attrs.frozen
class Op:
    text: str  # ; && || | & ( ) \n


@attrs.frozen
class Redir:
    fd: int | None
    op: str  # > >> < >& &>


Token = Word | Op | Redir


def _read_var(script: str, i: int, out: list[str | Var]) -> int:
    """``script[i]`` is ``$``: append the expansion to ``out``; return the next index."""
    n = len(script)
    nxt = script[i + 1] if i + 1 < n else ""
    if nxt == "{":
        end = script.find("}", i + 2)
        if end < 0:
            raise Unsupported("unterminated ${")
        name = script[i + 2 : end]
        if not (_NAME.fullmatch(name) or name in {"?", "#", "@"} or name.isdigit()):
            raise Unsupported(f"parameter expansion ${{{name}}}")
        out.append(Var(name))
        return end + 1
    if nxt == "(":
        raise Unsupported("command substitution $(...)")
    m = _NAME.match(script, i + 1)
    if m:
        out.append(Var(m.group()))
        return m.end()
    if nxt and (nxt.isdigit() or nxt in "?#@$"):
        out.append(Var(nxt))
        return i + 2
    out.append("$")
    return i + 1


def tokenize(script: str) -> list[Token]:
    """Split a script into words, operators and redirections (quotes removed,
    expansions kept as :class:`Var`). Raises :class:`Unsupported`."""
    tokens: list[Token] = []
    parts: list[str | Var] = []
    lit: list[str] = []
    state = {"in_word": False, "quoted": False}

    def flush() -> None:
        if lit:
            parts.append("".join(lit))
            lit.clear()

    def end_word() -> None:
        flush()
        if state["in_word"]:
            tokens.append(Word(tuple(parts)))
        parts.clear()
        state["in_word"] = state["quoted"] = False

    i, n = 0, len(script)
    while i < n:
        c = script[i]
        if c in " \t\r":
            end_word()
            i += 1
        elif c == "#" and not state["in_word"]:
            while i < n and script[i] != "\n":
                i += 1
        elif c in "\n;&|()":
            end_word()
            two = script[i : i + 2]
            if two == "&>":
                tokens.append(Redir(None, "&>"))
                i += 2
            elif two in ("&&", "||", ";;"):
                tokens.append(Op(two))
                i += 2
            else:
                tokens.append(Op(c))
                i += 1
        elif c in "<>":
            flush()
            fd: int | None = None
            word = "".join(p for p in parts if isinstance(p, str))
            if state["in_word"] and not state["quoted"] and word.isdigit() and len(parts) == 1:
                fd = int(word)
                parts.clear()
                state["in_word"] = False
            end_word()
            two = script[i : i + 2]
            if two == "<<":
                raise Unsupported("here-documents")
            op = two if two in (">>", ">&") else c
            tokens.append(Redir(fd, op))
            i += len(op)
        elif c == "\\":
            if i + 1 < n and script[i + 1] == "\n":
                i += 2
                continue
            state["in_word"] = True
            lit.append(script[i + 1] if i + 1 < n else "\\")
            i += 2
        elif c == "'":
            end = script.find("'", i + 1)
            if end < 0:
                raise Unsupported("unterminated quote")
            state["in_word"] = state["quoted"] = True
            lit.append(script[i + 1 : end])
            i = end + 1
        elif c == '"':
            state["in_word"] = state["quoted"] = True
            i += 1
            while True:
                if i >= n:
                    raise Unsupported("unterminated quote")
                c = script[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\" and i + 1 < n and script[i + 1] in '"\\$`\n':
                    if script[i + 1] != "\n":
                        lit.append(script[i + 1])
                    i += 2
                elif c == "$":
                    flush()
                    i = _read_var(script, i, parts)
                elif c == "`":
                    raise Unsupported("command substitution `...`")
                else:
                    lit.append(c)
                    i += 1
        elif c == "$":
            state["in_word"] = True
            flush()
            i = _read_var(script, i, parts)
        elif c == "`":
            raise Unsupported("command substitution `...`")
        else:
            state["in_word"] = True
            lit.append(c)
            i += 1
    end_word()
    return tokens


# ----- syntax tree -----


@attrs.frozen
class Simple:
    words: tuple[Word, ...]
    redirs: tuple[tuple[Redir, Word], ...]


@attrs.frozen
class AndOr:
    first: Simple | Loop
    rest: tuple[tuple[str, Simple | Loop], ...]


@attrs.frozen
class Loop:
    cond: tuple[AndOr, ...]
    body: tuple[AndOr, ...]
    until: bool


_RESERVED_UNSUPPORTED = {
    "if": "if",
    "for": "for loops",
    "case": "case",
    "select": "select",
    "function": "functions",
    "{": "{ ... } groups",
    "!": "! negation",
}


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def keyword(self) -> str | None:
        tok = self.peek()
        return tok.literal() if isinstance(tok, Word) else None

    def skip_separators(self) -> None:
        while isinstance(self.peek(), Op) and self.peek().text in (";", "\n"):  # type: ignore[union-attr]
            self.i += 1

    def parse_list(self, stop: frozenset[str]) -> tuple[AndOr, ...]:
        items: list[AndOr] = []
        while True:
            self.skip_separators()
            tok = self.peek()
            if tok is None or self.keyword() in stop:
                return tuple(items)
            items.append(self.parse_and_or())
            tok = self.peek()
            if tok is None:
                continue
            if isinstance(tok, Op) and tok.text in (";", "\n"):
                continue
            if isinstance(tok, Op) and tok.text == "&":
                raise Unsupported("background jobs (&)")
            if self.keyword() in stop:
                continue
            raise Unsupported(f"unexpected {self._show(tok)}")

    def parse_and_or(self) -> AndOr:
        first = self.parse_command()
        rest: list[tuple[str, Simple | Loop]] = []
        while isinstance(self.peek(), Op) and self.peek().text in ("&&", "||"):  # type: ignore[union-attr]
            op = self.tokens[self.i].text  # type: ignore[union-attr]
            self.i += 1
            while isinstance(self.peek(), Op) and self.peek().text == "\n":  # type: ignore[union-attr]
                self.i += 1
            rest.append((op, self.parse_command()))
        if isinstance(self.peek(), Op) and self.peek().text == "|":  # type: ignore[union-attr]
            raise Unsupported("pipes (|)")
        return AndOr(first, tuple(rest))

    def parse_command(self) -> Simple | Loop:
        kw = self.keyword()
        if kw in ("while", "until"):
            self.i += 1
            cond = self.parse_list(frozenset({"do"}))
            self.expect("do")
            body = self.parse_list(frozenset({"done"}))
            self.expect("done")
            return Loop(cond, body, until=kw == "until")
        if kw in _RESERVED_UNSUPPORTED:
            raise Unsupported(_RESERVED_UNSUPPORTED[kw])
        tok = self.peek()
        if isinstance(tok, Op):
            raise Unsupported(
                "subshells ( ... )" if tok.text == "(" else f"unexpected {self._show(tok)}"
            )
        words: list[Word] = []
        redirs: list[tuple[Redir, Word]] = []
        while True:
            tok = self.peek()
            if isinstance(tok, Word):
                words.append(tok)
                self.i += 1
            elif isinstance(tok, Redir):
                self.i += 1
                target = self.peek()
                if not isinstance(target, Word):
                    raise Unsupported(f"redirection {tok.op} without a target")
                redirs.append((tok, target))
                self.i += 1
            else:
                break
        if not words and not redirs:
            raise Unsupported(f"unexpected {self._show(tok)}")
        return Simple(tuple(words), tuple(redirs))

    def expect(self, keyword: str) -> None:
        if self.keyword() != keyword:
            raise Unsupported(f"expected {keyword!r}, got {self._show(self.peek())}")
        self.i += 1

    @staticmethod
    def _show(tok: Token | None) -> str:
        if tok is None:
            return "end of script"
        if isinstance(tok, Op):
            return "newline" if tok.text == "\n" else repr(tok.text)
        if isinstance(tok, Redir):
            return repr(tok.op)
        return repr(tok.literal() or "word")


def parse(script: str) -> tuple[AndOr, ...]:
    """Parse a script into and-or lists. Raises :class:`Unsupported`."""
    parser = _Parser(tokenize(script))
    items = parser.parse_list(frozenset())
    if parser.peek() is not None:
        raise Unsupported(f"unexpected {parser._show(parser.peek())}")
    return items


# ----- evaluation -----


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class _Forever(Exception):
    pass


class _LoopForever(Exception):
    def __init__(self, start: float, period: float, lines: tuple[tuple[float, str], ...]):
        self.start = start
        self.period = period
        self.lines = lines


class _Break(Exception):
    pass


def parse_duration(text: str) -> float | None:
    """``sleep``'s argument in seconds (``inf``/``infinity`` gives inf), or None."""
    if text in ("inf", "infinity"):
        return float("inf")
    m = _DURATION.fullmatch(text)
    return float(m.group(1)) * _UNIT[m.group(2)] if m else None


class _Shell:
    """Evaluates a parsed script against a virtual clock, collecting log lines."""

    def __init__(
        self,
        name: str,
        env: Mapping[str, str],
        positional: Sequence[str],
        lines: list[tuple[float, str]],
        t: float = 0.0,
    ) -> None:
        self.name = name
        self.vars: dict[str, str] = dict(env)
        self.positional = list(positional)
        self.lines = lines
        self.t = t
        self.status = 0
        self.errexit = False
        self.term_exit_code: int | None = None
        self.last_error = ""

    def out(self, line: str) -> None:
        self.lines.append((self.t, line))

    def err(self, line: str) -> None:
        self.lines.append((self.t, line))
        self.last_error = line

    # -- structure --

    def run_list(self, items: Sequence[AndOr], *, errexit: bool = True) -> int:
        for item in items:
            self.run_and_or(item, errexit=errexit)
        return self.status

    def run_and_or(self, item: AndOr, *, errexit: bool) -> None:
        status = self.run_command(item.first)
        last = 0
        for index, (op, cmd) in enumerate(item.rest, start=1):
            if (op == "&&") == (status == 0):
                status = self.run_command(cmd)
                last = index
        self.status = status
        if errexit and self.errexit and status != 0 and last == len(item.rest):
            raise _Exit(status)

    def run_command(self, cmd: Simple | Loop) -> int:
        if isinstance(cmd, Loop):
            return self.run_loop(cmd)
        return self.run_simple(cmd)

    def run_loop(self, loop: Loop) -> int:
        start, mark = self.t, len(self.lines)
        try:
            cond = self.run_list(loop.cond, errexit=False)
            if (cond == 0) == loop.until:
                return 0
            self.run_list(loop.body)
        except _Break:
            return 0
        # One full iteration ran; every later one is the same, forever.
        period = self.t - start or BUSY_LOOP_PERIOD
        lines = tuple((t - start, line) for t, line in self.lines[mark:])
        del self.lines[mark:]
        raise _LoopForever(start, period, lines)

    # -- commands --

    def expand(self, word: Word) -> str:
        out: list[str] = []
        for part in word.parts:
            if isinstance(part, str):
                out.append(part)
            elif part.name == "?":
                out.append(str(self.status))
            elif part.name == "#":
                out.append(str(len(self.positional) - 1))
            elif part.name == "@":
                out.append(" ".join(self.positional[1:]))
            elif part.name == "$":
                out.append("1")  # PID 1
            elif part.name.isdigit():
                index = int(part.name)
                out.append(self.positional[index] if index < len(self.positional) else "")
            else:
                out.append(self.vars.get(part.name, ""))
        return "".join(out)

    def run_simple(self, cmd: Simple) -> int:
        argv = [self.expand(w) for w in cmd.words]
        while argv and (m := _ASSIGN.fullmatch(argv[0])) and cmd.words[0].parts:
            self.vars[m.group(1)] = m.group(2)
            argv.pop(0)
        to_log = True
        for redir, target in cmd.redirs:
            path = self.expand(target)
            if redir.op == "&>" or (
                redir.op in (">", ">>") and redir.fd in (None, 1) and path != "/dev/stdout"
            ):
                to_log = path in ("/dev/stdout", "/dev/stderr", "/proc/1/fd/1")
        if not argv:
            self.status = 0
            return 0
        self.status = self.run_argv(argv, to_log=to_log)
        return self.status

    def run_argv(self, argv: Sequence[str], *, to_log: bool = True) -> int:
        """Run one command; returns its status or raises a terminal outcome."""
        name, args = argv[0], list(argv[1:])
        base = name.rsplit("/", 1)[-1] if "/" in name else name

        def say(line: str) -> None:
            if to_log:
                self.out(line)

        if name in ("true", ":") or base == "true":
            return 0
        if name == "false" or base == "false":
            return 1
        if name == "exit":
            if not args:
                raise _Exit(self.status)
            if not args[0].lstrip("-").isdigit():
                self.err(f"{self.name}: exit: Illegal number: {args[0]}")
                raise _Exit(2)
            raise _Exit(int(args[0]) & 0xFF)
        if name == "break":
            raise _Break
        if name == "exec":
            if not args:
                return 0
            raise _Exit(self.run_argv(args, to_log=to_log))
        if name == "export":
            for arg in args:
                if m := _ASSIGN.fullmatch(arg):
                    self.vars[m.group(1)] = m.group(2)
            return 0
        if name == "set":
            for arg in args:
                if (arg.startswith("-") and "e" in arg) or arg == "errexit":
                    self.errexit = True
                elif arg.startswith("+") and "e" in arg:
                    self.errexit = False
            return 0
        if name == "trap":
            if len(args) >= 2 and any(s in ("TERM", "SIGTERM", "15") for s in args[1:]):
                action = args[0].split()
                if not action:
                    self.term_exit_code = None  # trap '' TERM: ignore it
                elif action[0] == "exit" and len(action) > 1 and action[1].isdigit():
                    self.term_exit_code = int(action[1]) & 0xFF
                else:
                    self.term_exit_code = 143
            return 0
        if name in _NOOP_BUILTINS:
            return 0
        if base in SHELLS:
            return self.run_subshell(base, args)
        if base == "sleep":
            if not args:
                self.err("sleep: missing operand")
                return 1
            total = 0.0
            for arg in args:
                seconds = parse_duration(arg)
                if seconds is None:
                    self.err(f"sleep: invalid time interval '{arg}'")
                    return 1
                total += seconds
            if total == float("inf"):
                raise _Forever
            self.t += total
            return 0
        if base == "pause":
            raise _Forever
        if base == "echo":
            newline_escapes = False
            while args and re.fullmatch(r"-[neE]+", args[0]):
                newline_escapes = newline_escapes or "e" in args[0]
                args.pop(0)
            text = " ".join(args)
            if newline_escapes:
                text = text.replace("\\n", "\n").replace("\\t", "\t")
            for line in text.split("\n"):
                say(line)
            return 0
        if base == "printf":
            if not args:
                self.err("printf: missing format")
                return 1
            fmt, values = args[0], iter(args[1:])
            text = re.sub(r"%[sdi]", lambda _: next(values, ""), fmt)
            text = text.replace("\\n", "\n").replace("\\t", "\t").replace("%%", "%")
            for line in text.split("\n")[:-1] if text.endswith("\n") else text.split("\n"):
                say(line)
            return 0
        if base == "tail":
            if any(a in ("-f", "-F") or a.startswith("--follow") for a in args):
                raise _Forever
            return 0
        if base == "date":
            say(DATE_MARK)
            return 0
        if base in ("env", "printenv"):
            if base == "printenv" and args:
                if args[0] not in self.vars:
                    return 1
                say(self.vars[args[0]])
                return 0
            for key in sorted(self.vars):
                say(f"{key}={self.vars[key]}")
            return 0
        if base in _SILENT_UTILITIES:
            return 0
        if self.name == "bash":
            self.err(f"bash: {name}: command not found")
        else:
            self.err(f"{self.name}: {name}: not found")
        return 127

    def run_subshell(self, shell: str, args: list[str]) -> int:
        child = _Shell(shell, self.vars, [shell], self.lines, self.t)
        try:
            code = child.invoke(args)
        finally:
            self.t = child.t
        if code is None:
            return 0
        if code != 0 and child.last_error:
            self.last_error = child.last_error
        return code

    def invoke(self, args: Sequence[str]) -> int | None:
        """Run ``sh ARGS``: ``-c SCRIPT [NAME ARGS...]``; returns the exit status, or
        None when it is ``sh FILE`` (a script file the fake cannot read).

        Raises a terminal outcome for endless scripts and :class:`Unsupported`.
        """
        args = list(args)
        script: str | None = None
        command_mode = False
        while args and args[0][:1] in ("-", "+") and args[0] not in ("-", "--"):
            flag = args.pop(0)
            if flag in ("-o", "+o") and args:
                if args.pop(0) == "errexit":
                    self.errexit = flag == "-o"
                continue
            if "c" in flag:
                command_mode = True
            if "e" in flag:
                self.errexit = flag.startswith("-")
        if args and args[0] in ("-", "--"):
            args.pop(0)
        if command_mode:
            if not args:
                self.err(f"{self.name}: -c requires an argument")
                return 2
            script = args.pop(0)
            self.positional = args if args else [self.name]
        elif args:
            return None
        else:
            return 0  # no script and an empty stdin: exits at once
        try:
            items = parse(script)
        except Unsupported as exc:
            self.err(f"{self.name}: {exc} is not supported by the fake runtime's shell")
            return 2
        try:
            self.run_list(items)
        except _Exit as exc:
            return exc.code
        return self.status


def compile_argv(argv: Sequence[str], env: Mapping[str, str]) -> Program | None:
    """The program for an exec-form command line, or None if ``argv[0]`` is neither a
    shell nor a utility this fake knows (then the image's own program runs: a manifest
    naming its image's binary, ``["/app/server", "--port=80"]``, just works).

    Pure: the same arguments give an equal Program.
    """
    if not argv:
        return None
    name = argv[0]
    base = name.rsplit("/", 1)[-1]
    if base not in SHELLS and base not in UTILITIES:
        return None
    lines: list[tuple[float, str]] = []
    shell = _Shell(base if base in SHELLS else "sh", env, [base], lines)
    timeline: Timeline
    try:
        if base in SHELLS:
            code = shell.invoke(argv[1:])
            if code is None:
                return None
        else:
            code = shell.run_argv(argv)
    except _Forever:
        timeline = Timeline(lines=tuple(lines))
    except _LoopForever as loop:
        timeline = Timeline(
            lines=tuple(lines),
            loop_lines=loop.lines,
            loop_start=loop.start,
            loop_period=loop.period,
        )
    except _Exit as exc:  # `exit` or `exec` at the top of an exec-form command
        timeline = _exit_timeline(lines, shell, exc.code)
    else:
        timeline = _exit_timeline(lines, shell, code)
    return Program(
        timeline=timeline,
        serve=False,
        cpu=0.0,
        memory=_SHELL_PROGRAM_MEMORY,
        term_exit_code=shell.term_exit_code,
    )


def _exit_timeline(lines: list[tuple[float, str]], shell: _Shell, code: int) -> Timeline:
    return Timeline(
        lines=tuple(lines),
        exit_at=shell.t,
        exit_code=code,
        message=shell.last_error if code != 0 else "",
    )
