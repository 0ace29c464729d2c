"""Fails when a test reads anything outside the repository.

usage: repo_self_contained.py scan SRC
       repo_self_contained.py trace SRC BUILD CTEST TEST...

scan   reads every file that decides what a test touches (tests/, every
       CMakeLists.txt, scripts/, .ci/, Makefile) and rejects references to the
       old shared folder (its CMake variable, a relative path up into shared/) and absolute paths into
       user or project trees (/work, /home, /root, /mnt, /opt, /srv, the
       folder that holds this checkout). A clone must pass with nothing
       beside it.
trace  runs the named CTest tests (their command, working directory and
       environment, read from `ctest --show-only=json-v1`) under strace -f
       and rejects every file-system access (opened or only tried) outside
       the source tree, the build tree and the system folders (/usr, /lib,
       /etc, /proc, /sys, /dev, /tmp, ...). This proves what the scan can
       only suggest. Exits 77 (CTest skip) without strace, which
       scripts/install-deps.sh installs.

bench/ is not checked: benchmarks may read larger corpora from outside and
say where to get them. Docs and tests/data/README.md name sources, not paths
a test reads.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

SELF = os.path.abspath(__file__)
DENIED_TOPS = ("work", "home", "root", "mnt", "opt", "srv", "media", "scratch", "shared", "data", "nfs")
SYSTEM = ("/usr/", "/lib/", "/lib64/", "/lib32/", "/bin/", "/sbin/", "/etc/", "/proc/", "/sys/", "/dev/",
          "/tmp/", "/var/tmp/", "/run/", "/var/run/", "/var/lib/dpkg/")


def scanned_files(src):
    out = subprocess.run(["git", "-C", src, "ls-files", "-co", "--exclude-standard"], capture_output=True,
                         text=True)
    names = out.stdout.split() if out.returncode == 0 else []
    if not names:  # not a git checkout (a source tarball): walk the tree
        for d, dirs, files in os.walk(src):
            dirs[:] = [x for x in dirs if not x.startswith(".") or x == ".ci"]
            dirs[:] = [x for x in dirs if x not in ("node_modules",) and not x.startswith("build")]
            names += [os.path.relpath(os.path.join(d, f), src) for f in files]
    for n in names:
        if n.startswith("bench/") or n.startswith("docs/") or n == "tests/data/README.md":
            continue
        if (n.startswith("tests/") or n.startswith("scripts/") or n.startswith(".ci/") or n == "Makefile"
                or os.path.basename(n) == "CMakeLists.txt"):
            path = os.path.join(src, n)
            if os.path.abspath(path) != SELF and os.path.isfile(path):
                yield n, path


def scan(src):
    src = os.path.abspath(src)
    parent = os.path.dirname(src)
    rules = [
        (re.compile(r"CINFER_" + r"SHARED"), "the old shared-folder variable"),  # split: this file must not match itself
        (re.compile(r"\.\.[\\/\"', ]+[\"']?shared\b"), "a path up into shared/"),
        (re.compile(r"(?:^|(?<=[\s\"'=(,\[]))/(?:%s)(?:/|\b)" % "|".join(DENIED_TOPS)), "an absolute path outside the repository"),
    ]
    if parent not in ("/", "") and not any((parent + "/").startswith(p) for p in SYSTEM):  # e.g. a clone in /tmp
        rules.append((re.compile(r"(?:^|(?<=[\s\"'=(,\[]))" + re.escape(parent) + r"(?:/|\b)"),
                      "the folder that holds this checkout"))
    bad, n_files = [], 0
    for name, path in scanned_files(src):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError as e:
            bad.append(f"{name}: unreadable: {e}")
            continue
        n_files += 1
        for i, line in enumerate(lines, 1):
            if "://" in line:  # URLs (https://huggingface.co/...) are not file paths
                line = re.sub(r"\w+://\S+", "", line)
            for rx, why in rules:
                if rx.search(line):
                    bad.append(f"{name}:{i}: {why}: {line.strip()[:160]}")
    for b in bad:
        print(b)
    print(f"scanned {n_files} files: {len(bad)} reference(s) outside the repository")
    return 1 if bad or n_files == 0 else 0


# ------------------------------------------------------------------ trace

LINE = re.compile(r"^(\d+)\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()(.*)$")
STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
RET = re.compile(r"\)\s+=\s+(-?\d+)")


def unescape(s):
    return bytes(s, "latin-1").decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")


METADATA = ("readlink", "readlinkat", "stat", "lstat", "newfstatat", "statx", "access", "faccessat", "faccessat2")


def allowed(call, path, roots):
    p = os.path.normpath(path)
    if p in ("/", "/tmp", "/usr", "/etc", "/proc", "/dev", "/sys"):
        return True
    if any(p == r or p.startswith(r + "/") for r in roots) or any(p.startswith(s) for s in SYSTEM):
        return True
    if p == "/nonexistent" or p.startswith("/nonexistent/"):  # tests of a missing path
        return True
    if call in METADATA:
        # realpath() of the tree walks its parents; a shell looks up commands in $PATH;
        # Python probes its user site folder. None of these reads data.
        if any(r.startswith(p + "/") for r in roots):
            return True
        if os.path.dirname(p) in os.environ.get("PATH", "").split(":"):
            return True
        home = os.path.expanduser("~")
        if re.match(re.escape(home) + r"/\.local/lib/python3[.\d]*/site-packages$", p):
            return True
    return False


def check_log(log, cwd0, roots):
    """Resolves every path argument of a file syscall against the calling
    process's working directory (tracked through chdir and fork) and returns
    the accesses outside `roots`."""
    cwd, bad = {}, set()
    first = None
    with open(log, encoding="latin-1") as f:
        for raw in f:
            m = LINE.match(raw)
            if not m:
                continue
            pid, call, rest = int(m.group(1)), m.group(2) or m.group(3), m.group(4)
            if first is None:
                first = pid
            here = cwd.get(pid, cwd.get(first, cwd0))
            r = RET.search(rest)
            if call in ("clone", "clone3", "fork", "vfork") and r and int(r.group(1)) > 0:
                cwd.setdefault(int(r.group(1)), here)
                continue
            if m.group(2):  # a resumed call: its path was on the unfinished line
                continue
            s = STRING.search(rest)
            if not s:
                continue
            path = unescape(s.group(1))
            if call in ("openat", "newfstatat", "faccessat", "faccessat2", "statx", "readlinkat", "mkdirat",
                        "unlinkat", "execveat", "name_to_handle_at", "utimensat", "fchmodat", "fchownat"):
                # relative to a directory fd other than AT_FDCWD: the fd was checked when opened
                if not rest.startswith("AT_FDCWD") and not path.startswith("/"):
                    continue
            full = path if path.startswith("/") else os.path.join(here, path)
            if call == "chdir" and r and r.group(1) == "0":
                cwd[pid] = os.path.normpath(full)
            if not allowed(call, full, roots):
                bad.add(f"{call}({path!r}) -> {os.path.normpath(full)}")
    return sorted(bad)


def trace(src, build, ctest, names):
    strace = shutil.which("strace")
    if not strace:
        print("SKIP: strace is not installed (scripts/install-deps.sh installs it); the scan test still runs")
        return 77
    src, build = os.path.abspath(src), os.path.abspath(build)
    info = json.loads(subprocess.run([ctest, "--show-only=json-v1"], cwd=build, capture_output=True,
                                     text=True, check=True).stdout)
    tests = {t["name"]: t for t in info["tests"]}
    roots = [src, build]
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            t = tests.get(name)
            if not t:
                print(f"{name}: no such test")
                failed += 1
                continue
            props = {p["name"]: p["value"] for p in t.get("properties", [])}
            env = dict(os.environ)
            for kv in props.get("ENVIRONMENT", []):
                k, _, v = kv.partition("=")
                env[k] = v
            wd = props.get("WORKING_DIRECTORY", build)
            log = os.path.join(tmp, name + ".strace")
            cmd = [strace, "-f", "-qq", "-o", log, "-e", "trace=%file,chdir,clone,clone3,fork,vfork"] + t["command"]
            rc = subprocess.run(cmd, cwd=wd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
            skip = str(props.get("SKIP_RETURN_CODE", ""))
            bad = check_log(log, wd, roots)
            state = "skipped" if skip and str(rc) == skip else ("passed" if rc == 0 else f"failed (exit {rc})")
            print(f"{name}: {state} under strace, {len(bad)} access(es) outside the repository")
            for b in bad[:40]:
                print("   ", b)
            if bad or (rc != 0 and not (skip and str(rc) == skip)):
                failed += 1
    return 1 if failed else 0


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "scan":
        return scan(sys.argv[2])
    if len(sys.argv) >= 6 and sys.argv[1] == "trace":
        return trace(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
