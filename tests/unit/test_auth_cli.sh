#!/usr/bin/env bash
# test_auth_cli.sh KVORUM: `kvorum user-add FILE USER ROLE` through the real
# CLI binary; no node is involved (user-add edits a file).
#
# Checks, with the password from KVORUM_PASSWORD: a missing file is created
# 0600 with one "USER ROLE pbkdf2-sha256$..." line and the message "user U
# (R) added to F"; the same user again is "replaced in F" and stays one
# line; comments and other users are kept; --json; the password never shows
# in the file, on stdout or on stderr. Usage errors (bad role, bad user
# name, missing arguments) exit 2; an empty KVORUM_PASSWORD, no password
# and no terminal, a file that does not parse (left unchanged, its line
# named, the bad field not quoted) and a missing directory exit 1. Through a
# pseudo-terminal (python3's pty): the password is asked twice with echo
# off, two different answers exit 1, and Ctrl-C at the prompt ends the CLI
# with the terminal's echo back on. A trap removes the temporary directory.
# Prints "N passed, M failed".
set -u

CLI=${1:?usage: test_auth_cli.sh KVORUM}
PW='s3cret-Pw'
TMP=$(mktemp -d "${TMPDIR:-/tmp}/kvorum-auth-cli.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
trap 'exit 1' INT TERM HUP
F=$TMP/users
HASH_RE='pbkdf2-sha256\$[0-9]+\$[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}='

passed=0
failed=0
check() { # check DESCRIPTION COMMAND...
  local what=$1
  shift
  if "$@"; then
    passed=$((passed + 1))
    echo "ok   $what"
  else
    failed=$((failed + 1))
    echo "FAIL $what"
    echo "     stdout: $(cat "$TMP/out" 2>/dev/null)"
    echo "     stderr: $(cat "$TMP/err" 2>/dev/null)"
  fi
}
# run EXPECTED_STATUS ARGS...: runs the CLI, stdout to $TMP/out, stderr to
# $TMP/err; true when it exits EXPECTED_STATUS and the password shows in
# neither.
run() {
  local want=$1 status=0
  shift
  "$CLI" "$@" >"$TMP/out" 2>"$TMP/err" </dev/null || status=$?
  [ "$status" -eq "$want" ] && ! grep -qF -- "$PW" "$TMP/out" "$TMP/err"
}
out_is() { [ "$(cat "$TMP/out")" = "$1" ]; }
err_has() { grep -qF -- "$1" "$TMP/err"; }
lines_of() { grep -c "^$1 " "$F"; }

export KVORUM_PASSWORD=$PW
check "add to a missing file" run 0 user-add "$F" alice read
check "added message" out_is "user alice (read) added to $F"
check "created with mode 0600" [ "$(stat -c %a "$F")" = 600 ]
check "one hashed line" grep -qE "^alice read $HASH_RE\$" "$F"
check "no password in the file" bash -c "! grep -qF -- '$PW' '$F'"
check "replace" run 0 user-add "$F" alice write
check "replaced message" out_is "user alice (write) replaced in $F"
check "still one alice line" [ "$(lines_of alice)" = 1 ]
check "with the new role" grep -qE "^alice write $HASH_RE\$" "$F"
{ echo "# kvorum users"; echo; cat "$F"; } >"$TMP/f2" && mv "$TMP/f2" "$F"
check "--host is ignored, --json" run 0 --host 127.0.0.1:1 --json \
  user-add "$F" bob admin
check "json answer" out_is \
  "{\"user\": \"bob\", \"role\": \"admin\", \"file\": \"$F\", \"action\": \"added\"}"
check "comment and alice kept" bash -c \
  "head -n 3 '$F' | grep -qx '# kvorum users' && sed -n 2p '$F' | grep -qx '' \
   && sed -n 3p '$F' | grep -qE '^alice write '"
check "bob appended" grep -qE "^bob admin $HASH_RE\$" "$F"

cp "$F" "$TMP/before"
check "bad role exits 2" run 2 user-add "$F" carol root
check "bad role message" err_has 'bad role "root"'
check "bad user exits 2" run 2 user-add "$F" "ca rol" read
check "bad user message" err_has "bad user name"
check "missing argument exits 2" run 2 user-add "$F" carol
check "help names the variable" run 0 user-add --help
check "help text" grep -qF KVORUM_PASSWORD "$TMP/out"
check "usage lists user-add" run 0 --help
check "usage text" grep -qF "user-add" "$TMP/out"
check "empty KVORUM_PASSWORD exits 1" bash -c \
  "KVORUM_PASSWORD= '$CLI' user-add '$F' carol read >'$TMP/out' 2>'$TMP/err'
   [ \$? = 1 ]"
check "empty message" err_has "KVORUM_PASSWORD is empty"
# env -u: no password; setsid: no controlling terminal, so no prompt.
check "no password, no terminal exits 1" bash -c \
  "env -u KVORUM_PASSWORD setsid -w '$CLI' user-add '$F' carol read \
   </dev/null >'$TMP/out' 2>'$TMP/err'; [ \$? = 1 ]"
check "no password message" err_has "set KVORUM_PASSWORD or run on a terminal"
check "file unchanged by the failures" cmp -s "$F" "$TMP/before"

printf '# x\nmallory read hunter2\n' >"$TMP/broken"
check "a broken file exits 1" run 1 user-add "$TMP/broken" carol read
check "its line is named" err_has "$TMP/broken:2: "
check "the bad field is not quoted" bash -c "! grep -qF hunter2 '$TMP/err'"
check "the broken file is left alone" bash -c \
  "[ \"\$(cat '$TMP/broken')\" = \"\$(printf '# x\nmallory read hunter2')\" ]"
check "a missing directory exits 1" run 1 user-add "$TMP/no/dir/users" carol read
check "its message" err_has "$TMP/no/dir/users"
check "no temporary files left" [ "$(ls -A "$TMP" | grep -c '^users\.')" = 0 ]

# The prompt, through a pseudo-terminal (python3's pty gives the CLI a
# controlling terminal). One python3 run plays three sessions and writes,
# for each, what the terminal showed to $TMP/pty-NAME.out and a line
# "NAME STATUS ECHO_OFF_WHILE_ASKED ECHO_ON_AFTER" to $TMP/pty.status
# (STATUS: the exit status, or -SIGNAL): "same" answers the two prompts
# alike, "differ" gives two passwords, "intr" types Ctrl-C at the first.
PTY_PY='
import os, pty, sys, select, time, termios
cli, path, tmp = sys.argv[1:4]
env = {k: v for k, v in os.environ.items() if k != "KVORUM_PASSWORD"}
def session(name, user, answers):
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(cli, [cli, "user-add", path, user, "write"], env)
    out, echo_off = b"", True
    def read_until(token):
        nonlocal out
        deadline = time.time() + 5
        while token not in out and time.time() < deadline:
            if not select.select([fd], [], [], 0.1)[0]:
                continue
            try:
                data = os.read(fd, 1024)
            except OSError:
                return
            if not data:
                return
            out += data
    prompts = [b"Password for " + user.encode() + b": ", b"Again: "]
    for prompt, answer in zip(prompts, answers):
        read_until(prompt)
        echo_off = echo_off and not termios.tcgetattr(fd)[3] & termios.ECHO
        os.write(fd, answer)
    read_until(b"\0")  # to the end
    _, status = os.waitpid(pid, 0)
    echo_on = bool(termios.tcgetattr(fd)[3] & termios.ECHO)
    os.close(fd)
    code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    with open(os.path.join(tmp, "pty-" + name + ".out"), "wb") as f:
        f.write(out.replace(b"\r", b""))
    with open(os.path.join(tmp, "pty.status"), "a") as f:
        f.write("%s %d %d %d\n" % (name, code, echo_off, echo_on))
session("same", "erin", [b"tty-Pw1\n", b"tty-Pw1\n"])
session("differ", "frank", [b"tty-Pw1\n", b"tty-Pw2\n"])
session("intr", "grace", [b"\x03"])
'
pty_status() { grep -qx "$1" "$TMP/pty.status"; }
if command -v python3 >/dev/null; then
  cp "$F" "$TMP/before"
  python3 -c "$PTY_PY" "$CLI" "$F" "$TMP" >"$TMP/out" 2>"$TMP/err"
  check "prompt: asked twice, echo off, exit 0" pty_status "same 0 1 1"
  check "prompt: added" grep -qF "user erin (write) added to $F" \
    "$TMP/pty-same.out"
  check "prompt: hashed" grep -qE "^erin write $HASH_RE\$" "$F"
  check "prompt: different answers exit 1" pty_status "differ 1 1 1"
  check "prompt: mismatch message" grep -qF "passwords do not match" \
    "$TMP/pty-differ.out"
  check "prompt: Ctrl-C ends it, echo back on" pty_status "intr -2 1 1"
  check "prompt: no password shown" bash -c \
    "! grep -qF tty-Pw '$TMP'/pty-*.out"
  check "prompt: only erin added" bash -c \
    "[ \"\$(grep -v '^erin ' '$F')\" = \"\$(cat '$TMP/before')\" ]"
fi

echo "test_auth_cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
