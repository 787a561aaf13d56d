#!/usr/bin/env python3
"""readline_complete.py - what a person gets from TAB, through a real interactive bash.

    python3 tests/readline_complete.py COMPLETION_FILE 'sockhook refresh acc' [FRAMEWORK]

An interactive bash on a pseudo-terminal sources COMPLETION_FILE; the line is typed, then TAB
and Enter. `sockhook` in that shell is a function that prints its arguments as the shell
parsed them, one `<ARG>` each, so the output (one line, e.g. `<refresh><acc see bind>`) shows
what readline inserted and how the shell split it: a name with spaces that comes back as three
words is three words here. FRAMEWORK (bash-completion's bash_completion) is sourced first
when given. The domain names come from whatever `virsh` is first on PATH.
Exits 1 if no such line appears within 30 seconds (a bound, not a timing check).
"""
import os
import pty
import re
import select
import sys
import time

completion, line = sys.argv[1], sys.argv[2]
framework = sys.argv[3] if len(sys.argv) > 3 else ""
pid, fd = pty.fork()
if pid == 0:
    os.environ["PS1"] = "$ "
    os.environ["INPUTRC"] = "/dev/null"
    os.environ.pop("PROMPT_COMMAND", None)
    os.execvp("bash", ["bash", "--norc", "--noprofile", "-i"])

setup = (
    "bind 'set enable-bracketed-paste off' 2>/dev/null\n"
    "sockhook() { printf '<%s>' \"$@\"; printf '\\n'; }\n"
    + (f"source '{framework}'\n" if framework else "")
    + f"source '{completion}'\n"
)
# Readline handles the keys in order: TAB's completion (which runs virsh) ends before Enter.
os.write(fd, setup.encode() + line.encode() + b"\t\n")
out = b""
deadline = time.monotonic() + 30
found = None
while time.monotonic() < deadline and found is None:
    ready, _, _ = select.select([fd], [], [], 0.2)
    if ready:
        try:
            out += os.read(fd, 4096)
        except OSError:
            break
    for text in out.decode(errors="replace").splitlines():
        if re.fullmatch(r"(<[^\n]*>)+\r?", text) and not text.startswith("<%s>"):
            found = text.rstrip("\r")
            break
os.write(fd, b"exit\n")
try:
    os.waitpid(pid, 0)
except ChildProcessError:
    pass
if found is None:
    sys.stderr.write("readline_complete: no answer; the terminal showed: %r\n" % out[-500:])
    sys.exit(1)
print(found)
