#!/usr/bin/env python3
"""The hostile cases of the hardening issue, against the real binaries.

Run as root from the repository (make build first):
    python3 scripts/hostile.py [--kills 50] [--out runs/hostile]

It prints one figure per case, as the README gives them:
  1. SIGKILLs at random moments, many inside checkpoint writes: clean
     restores out of N, and the most steps lost (at most one checkpoint
     interval is allowed);
  2. model.prototypes changed across restarts with keep_checkpoints 1: the
     old checkpoint is set aside whole, the new one kept and resumed from;
  3. 16 concurrent decompression bombs on /v1/assign: swavd's peak RSS
     against its budget (daemon.memory_limit_mib + 100 MiB) and camera
     frames dropped;
  4. 200 idle plus 200 slow-body connections: how many are closed within
     the timeouts, while root's `swavctl checkpoint` succeeds;
  5. the writer group: a client under another uid holding the group only as
     a supplementary group (200), and one without it (403).
"""
import argparse
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

BIN = "bin"
SOCK_DIR = None  # a directory every user can traverse (case 5)


def swavctl(sock, *args, timeout=60):
    return subprocess.run([f"{BIN}/swavctl", "--socket", sock, *args], capture_output=True, text=True, timeout=timeout)


def status(sock):
    r = swavctl(sock, "--json", "status", timeout=10)
    return json.loads(r.stdout) if r.returncode == 0 else None


def start(state, sock, env_extra, log, preset="tiny"):
    env = {**os.environ, "SWAVD_DAEMON_FPS": "60", **env_extra}
    return subprocess.Popen([f"{BIN}/swavd", "run", "--preset", preset, "--socket", sock, "--state-dir", state],
                            env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_up(sock, proc, deadline=60):
    end = time.time() + deadline
    while time.time() < end:
        if proc.poll() is not None:
            return None
        st = status(sock)
        if st:
            return st
        time.sleep(0.1)
    return None


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def kills(out, n, interval):
    state, sock = f"{out}/kill-state", f"{SOCK_DIR}/kill.sock"
    shutil.rmtree(state, ignore_errors=True)
    env = {"SWAVD_DAEMON_CHECKPOINT_STEPS": str(interval), "SWAVD_DAEMON_MIN_REPLAY": "64"}
    clean, worst, resumed_prev = 0, 0, -1
    with open(f"{out}/kills.log", "w") as log:
        for i in range(n):
            p = start(state, sock, env, log)
            st = wait_up(sock, p)
            if st is None:
                print(f"   kill {i}: the daemon did not come back", flush=True)
                p.kill()
                p.wait()
                continue
            ck = st.get("last_checkpoint")
            resumed = ck["step"] if ck and ck.get("restored") else 0
            if resumed >= resumed_prev:
                clean += 1
            else:
                print(f"   kill {i}: resumed at {resumed}, before the previous restore at {resumed_prev}", flush=True)
            if i > 0:
                worst = max(worst, last_step - resumed)
            resumed_prev = resumed
            time.sleep(random.uniform(0.5, 3.0))
            st = status(sock) or st
            last_step = st["training"]["step"]
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
    return clean, worst


def config_change(out):
    state, sock = f"{out}/change-state", f"{SOCK_DIR}/change.sock"
    shutil.rmtree(state, ignore_errors=True)
    base = {"SWAVD_DAEMON_KEEP_CHECKPOINTS": "1", "SWAVD_DAEMON_MIN_REPLAY": "64", "SWAVD_DAEMON_CHECKPOINT_STEPS": "20"}
    steps = []
    with open(f"{out}/change.log", "w") as log:
        for k in ("32", "48", "48"):
            p = start(state, sock, {**base, "SWAVD_MODEL_PROTOTYPES": k}, log)
            st = wait_up(sock, p)
            ck = (st or {}).get("last_checkpoint") or {}
            time.sleep(4)
            stop(p)
            steps.append((k, ck.get("step", 0) if ck.get("restored") else 0))
    aside = os.listdir(f"{state}/checkpoints/incompatible") if os.path.isdir(f"{state}/checkpoints/incompatible") else []
    kept = [d for d in os.listdir(f"{state}/checkpoints") if d.startswith("ckpt-")]
    return steps, aside, kept


def png_bomb(w, h):
    """A valid PNG of w x h black RGB pixels: tiny on the wire, w*h*3 bytes decoded."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + bytes(3 * w) for _ in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0


def bombs(out):
    state, sock = f"{out}/bomb-state", f"{SOCK_DIR}/bomb.sock"
    shutil.rmtree(state, ignore_errors=True)
    big = png_bomb(2048, 2048)  # the most daemon.max_upload_pixels lets through
    huge = png_bomb(4096, 4096)  # refused from its header
    for name, b in (("bomb-2048.png", big), ("bomb-4096.png", huge)):
        with open(f"{out}/{name}", "wb") as f:
            f.write(b)
    with open(f"{out}/bombs.log", "w") as log:
        p = start(state, sock, {"SWAVD_DAEMON_FPS": "30"}, log, preset="edge-small")
        st = wait_up(sock, p)
        time.sleep(5)
        before = status(sock)["camera"]
        procs = [subprocess.Popen([f"{BIN}/swavctl", "--socket", sock, "assign", f"{out}/bomb-{2048 if i % 2 else 4096}.png"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for i in range(16)]
        codes = [q.wait(120) for q in procs]
        after = status(sock)["camera"]
        rss = peak_rss_mib(p.pid)
        stop(p)
    return len(big), len(huge), rss, after["dropped"] - before["dropped"], after["frames_in"] - before["frames_in"], codes.count(0)


def flood_as_stranger(sock, timeout, w):
    """In a child running as uid 4242: open 200 idle and 200 slow-body
    connections, say how many opened, then how many the daemon closed
    within timeout + 3 s (as JSON on w)."""
    os.setgroups([])
    os.setgid(4242)
    os.setuid(4242)
    conns, closed_at, lock = [], {}, threading.Lock()
    t0 = time.time()

    def watch(c, i):
        try:
            while c.recv(4096):
                pass
        except OSError:
            pass
        with lock:
            closed_at[i] = time.time() - t0

    def trickle(c):
        try:
            c.sendall(b"POST /v1/assign HTTP/1.1\r\nHost: swavd\r\nContent-Length: 100000\r\n\r\n")
            while True:
                c.send(b"x")
                time.sleep(2)
        except OSError:
            pass

    for i in range(400):
        c = socket.socket(socket.AF_UNIX)
        try:
            c.connect(sock)
        except OSError:
            continue
        conns.append(c)
        threading.Thread(target=watch, args=(c, i), daemon=True).start()
        if i >= 200:
            threading.Thread(target=trickle, args=(c,), daemon=True).start()
    os.write(w, f"{len(conns)}\n".encode())
    time.sleep(timeout + 5)
    with lock:
        idle = sum(1 for i in range(200) if i in closed_at and closed_at[i] <= timeout + 3)
        slow = sum(1 for i in range(200, 400) if i in closed_at and closed_at[i] <= timeout + 3)
        refused = sum(1 for v in closed_at.values() if v < 1)
    os.write(w, json.dumps({"idle": idle, "slow": slow, "refused": refused}).encode())


def floods(out):
    state, sock = f"{out}/flood-state", f"{SOCK_DIR}/flood.sock"
    shutil.rmtree(state, ignore_errors=True)
    timeout = 10
    env = {"SWAVD_DAEMON_READ_TIMEOUT": f"{timeout}s", "SWAVD_DAEMON_IDLE_TIMEOUT": f"{timeout}s", "SWAVD_DAEMON_MIN_REPLAY": "64"}
    with open(f"{out}/flood.log", "w") as log:
        p = start(state, sock, env, log)
        wait_up(sock, p)
        os.chmod(sock, 0o666)  # the flood comes from another user who may read the API
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                flood_as_stranger(sock, timeout, w)
            finally:
                os._exit(0)
        os.close(w)
        rf = os.fdopen(r)
        opened = int(rf.readline())
        t = time.time()
        res = swavctl(sock, "checkpoint", timeout=120)
        ck_ok, ck_s = res.returncode == 0, time.time() - t
        if not ck_ok:
            print(f"   swavctl checkpoint: {res.stderr.strip()}", flush=True)
        closed = json.loads(rf.read())
        os.waitpid(pid, 0)
        stop(p)
    return opened, closed["idle"], closed["slow"], closed["refused"], timeout, ck_ok, ck_s


def groups(out):
    state = f"{out}/group-state"
    sock = f"{SOCK_DIR}/group.sock"
    shutil.rmtree(state, ignore_errors=True)
    import grp
    gid = grp.getgrnam("nogroup").gr_gid
    results = {}
    with open(f"{out}/group.log", "w") as log:
        p = start(state, sock, {"SWAVD_DAEMON_SOCKET_GROUP": "nogroup", "SWAVD_DAEMON_MIN_REPLAY": "64"}, log)
        wait_up(sock, p)
        os.chmod(sock, 0o666)  # past the file mode: the daemon's own check is what is tried
        for name, gs in (("supplementary group", [gid]), ("no group", [])):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(r)
                try:
                    os.setgroups(gs)
                    os.setgid(4242)
                    os.setuid(4242)
                    c = socket.socket(socket.AF_UNIX)
                    c.connect(sock)
                    c.sendall(b"POST /v1/checkpoint HTTP/1.1\r\nHost: swavd\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    resp = b""
                    while True:
                        b = c.recv(4096)
                        if not b:
                            break
                        resp += b
                    os.write(w, resp.split(b"\r\n", 1)[0])
                except Exception as e:
                    os.write(w, str(e).encode())
                os._exit(0)
            os.close(w)
            msg = b""
            while True:
                b = os.read(r, 4096)
                if not b:
                    break
                msg += b
            os.waitpid(pid, 0)
            results[name] = msg.decode()
        stop(p)
    return results


def main():
    global SOCK_DIR
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=50)
    ap.add_argument("--interval", type=int, default=10, help="checkpoint every N steps in the kill case")
    ap.add_argument("--out", default="runs/hostile")
    a = ap.parse_args()
    if os.getuid() != 0:
        sys.exit("hostile.py: run as root (cases 4 and 5 need another uid and root's reserve)")
    os.makedirs(a.out, exist_ok=True)
    SOCK_DIR = tempfile.mkdtemp(prefix="swavd-hostile-")
    os.chmod(SOCK_DIR, 0o755)
    try:
        clean, worst = kills(a.out, a.kills, a.interval)
        print(f"1. {a.kills} SIGKILLs at random moments (checkpoint every {a.interval} steps): {clean} of {a.kills} restored cleanly; "
              f"at most {worst} steps lost", flush=True)
        steps, aside, kept = config_change(a.out)
        print(f"2. model.prototypes 32, then 48 twice, keep_checkpoints 1: the runs resumed at steps {[s for _, s in steps]} "
              f"(the second starts over: a new model); set aside whole in checkpoints/incompatible: {aside}; kept: {kept}", flush=True)
        big, huge, rss, dropped, frames, ok = bombs(a.out)
        print(f"3. 16 concurrent bombs ({big} B PNG of 2048x2048, {huge} B PNG of 4096x4096, alternating): {ok} assigned, "
              f"the rest refused; swavd peak RSS {rss:.0f} MiB (budget 300 MiB for edge-small); {dropped} of {frames} frames dropped",
              flush=True)
        opened, idle, slow, refused, timeout, ck_ok, ck_s = floods(a.out)
        print(f"4. another user opens {opened} connections (200 idle, 200 slow bodies; max_connections 256, timeouts {timeout} s): "
              f"{refused} refused at once, and all in all {idle} idle and {slow} slow closed within {timeout + 3} s; "
              f"root's swavctl checkpoint meanwhile {'succeeded' if ck_ok else 'FAILED'} in {ck_s:.2f} s", flush=True)
        res = groups(a.out)
        print("5. writer group nogroup, client uid 4242: " + "; ".join(f"{k}: {v}" for k, v in res.items()), flush=True)
    finally:
        shutil.rmtree(SOCK_DIR, ignore_errors=True)


if __name__ == "__main__":
    main()
